//! Redis: the `LexicalIndex` port — BM25 postings in sorted sets, so every replica ranks alike
//! and a lexical query costs Redis a few short range reads, never a scan.
//!
//! | key (after `{prefix}:lex:{INDEX}:`) | type | holds |
//! |---|---|---|
//! | `meta` | hash | `chunks`, `length` (sum of chunk lengths), `next` (last number handed out) |
//! | `num` | hash | chunk id → number |
//! | `id` | hash | number → chunk id |
//! | `doc` | hash | number → `"length term term …"`, what removing the chunk must undo |
//! | `t:{term}` | sorted set | number by weight: the term's postings, best first |
//!
//! Chunks are numbered (a fresh number per write) so postings hold short integers, not URLs.
//! Every key of one index shares the hash tag `{INDEX}`, and every script names all the keys it
//! touches, so the same code runs on Redis Cluster.
//!
//! A write reads what it replaces (one read-only script), computes the weights here, and applies
//! them with a script that first checks nothing it read has changed meanwhile (else it reads
//! again). A query is the threshold algorithm over the postings, heads first: read the top of
//! each query term's list, keep the chunks whose best possible score can still reach the k-th
//! best certain one, and read deeper (four times as far) until no chunk not yet seen could;
//! then look up the survivors' missing weights, once. Exact, a few round trips whatever the
//! collection's size, and each list travels as one string (parsing replies cost more here
//! than Redis spent answering them).
//!
//! Size: one file on purpose. The Lua scripts and the Rust that builds their arguments and reads
//! their replies share the key layout above; split apart, a change to one side would not show the
//! other.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use aurora_actors::lexical::{self, TermCounts};
use aurora_actors::ports::{LexicalDoc, LexicalIndex, Ranked, StateError, Vocabulary};
use futures::future::BoxFuture;
use redis::Script;
use redis::aio::ConnectionManager;

use super::redis::classify;

/// Chunks per write script: bounds how long one script holds Redis (a chunk is ~100 ZADDs).
const WRITE_BATCH: usize = 64;
/// Postings read per term on a query's first pass, at least.
const FIRST_DEPTH: usize = 32;
/// Relative slack on score bounds: sums taken in another order round differently.
const MARGIN: f32 = 1e-5;
/// Attempts of a write whose inputs another writer changed meanwhile.
const WRITE_ATTEMPTS: usize = 8;

/// KEYS: meta, num, doc. ARGV: chunk ids. Returns {chunks, length, then per id: number or '',
/// doc entry or ''}.
static LOOKUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local out = {redis.call('HGET', KEYS[1], 'chunks') or '0',
                     redis.call('HGET', KEYS[1], 'length') or '0'}
        for i = 1, #ARGV do
            local number = redis.call('HGET', KEYS[2], ARGV[i])
            if number then
                out[#out + 1] = number
                out[#out + 1] = redis.call('HGET', KEYS[3], number) or ''
            else
                out[#out + 1] = ''
                out[#out + 1] = ''
            end
        end
        return out",
    )
});

/// KEYS: meta, num, id, doc, ver, then every postings key a chunk below names (by position in
/// KEYS); each of those lists' version is moved.
/// ARGV: n, then per chunk: id, expected number ('' = none), old length, n old postings, their
/// KEYS positions, new entry ('' = remove only), new length, n new postings, (KEYS position,
/// weight) pairs. Returns 0, changing nothing, when a chunk's number is not the expected one.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local meta, nums, ids, docs, versions = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
        local n = tonumber(ARGV[1])
        local at = 2
        for _ = 1, n do
            if (redis.call('HGET', nums, ARGV[at]) or '') ~= ARGV[at + 1] then return 0 end
            local old = tonumber(ARGV[at + 3])
            local new = tonumber(ARGV[at + 6 + old])
            at = at + 7 + old + 2 * new
        end
        at = 2
        for _ = 1, n do
            local id, expected = ARGV[at], ARGV[at + 1]
            local old = tonumber(ARGV[at + 3])
            if expected ~= '' then
                for i = 1, old do
                    redis.call('ZREM', KEYS[tonumber(ARGV[at + 3 + i])], expected)
                end
                redis.call('HDEL', docs, expected)
                redis.call('HDEL', ids, expected)
                redis.call('HDEL', nums, id)
                redis.call('HINCRBY', meta, 'chunks', -1)
                redis.call('HINCRBY', meta, 'length', -tonumber(ARGV[at + 2]))
            end
            at = at + 4 + old
            local entry, length, new = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
            if entry ~= '' then
                local number = redis.call('HINCRBY', meta, 'next', 1)
                for i = 0, new - 1 do
                    redis.call('ZADD', KEYS[tonumber(ARGV[at + 3 + 2 * i])],
                        ARGV[at + 4 + 2 * i], number)
                end
                redis.call('HSET', docs, number, entry)
                redis.call('HSET', ids, number, id)
                redis.call('HSET', nums, id, number)
                redis.call('HINCRBY', meta, 'chunks', 1)
                redis.call('HINCRBY', meta, 'length', length)
            end
            at = at + 3 + 2 * new
        end
        for i = 6, #KEYS do
            redis.call('HINCRBY', versions, string.match(KEYS[i], ':t:(%d+)$'), 1)
        end
        return 1",
    )
});

/// KEYS: postings keys. ARGV: per key, the first and last rank to read. Returns per key one
/// string `"number weight number weight …"` in Redis' exact renderings: a deep read costs one
/// bulk string per term to parse here, not two replies per posting.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local out = {}
        for i = 1, #KEYS do
            out[i] = table.concat(
                redis.call('ZREVRANGE', KEYS[i], ARGV[2 * i - 1], ARGV[2 * i], 'WITHSCORES'), ' ')
        end
        return out",
    )
});

/// KEYS: ver, then postings keys. ARGV: their term ids. Returns per key its version and the whole
/// list as one string (as READ), read together.
static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local out = {}
        for i = 2, #KEYS do
            out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i - 1]) or '0'
            out[#out + 1] = table.concat(
                redis.call('ZREVRANGE', KEYS[i], 0, -1, 'WITHSCORES'), ' ')
        end
        return out",
    )
});

/// KEYS: postings keys. ARGV: per key, how many numbers follow, then the numbers. Returns per
/// key one string of the numbers' weights in that list, `-` for absent.
static WEIGHTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local out, at = {}, 1
        for i = 1, #KEYS do
            local n, weights = tonumber(ARGV[at]), {}
            -- In slices: unpack has a stack limit.
            for first = 1, n, 1000 do
                local last = math.min(first + 999, n)
                local found = redis.call('ZMSCORE', KEYS[i], unpack(ARGV, at + first, at + last))
                for j = 1, last - first + 1 do
                    weights[#weights + 1] = found[j] or '-'
                end
            end
            out[i] = table.concat(weights, ' ')
            at = at + n + 1
        end
        return out",
    )
});

pub struct RedisLexical {
    connection: ConnectionManager,
    prefix: String,
    shown: String,
    /// Whole posting lists by (index, term), each with the version it was read at: a query
    /// checks versions (one short round trip) and reads from Redis only the lists written since.
    /// Per replica, like any cache; bounded by postings held.
    lists: quick_cache::sync::Cache<(String, u32), Arc<Postings>, ByPostings>,
    /// Chunk ids by (index, number). Numbers are never reused, so an entry never goes stale.
    ids: quick_cache::sync::Cache<(String, u64), Arc<str>>,
    /// Longer lists are not cached (one would push out many others): read from Redis by rank.
    max_cached_list: usize,
}

/// A posting list as cached: (number, weight), best first, and the version it was read at.
struct Postings {
    version: u64,
    list: Vec<(u64, f32)>,
}

#[derive(Clone)]
struct ByPostings;

impl quick_cache::Weighter<(String, u32), Arc<Postings>> for ByPostings {
    fn weight(&self, _: &(String, u32), postings: &Arc<Postings>) -> u64 {
        postings.list.len() as u64 + 1
    }
}

/// Bytes a cached posting takes, roughly (the pair, its share of the vector and the entry).
const POSTING_BYTES: usize = 16;
/// Chunk ids cached per replica.
const CACHED_IDS: usize = 200_000;

/// What a chunk's earlier version left in the index.
struct Stored {
    number: String,
    length: u64,
    terms: Vec<u32>,
}

/// A write of one chunk: what it replaces and what it stores (`None` removes only).
struct Change<'a> {
    id: &'a str,
    old: Option<&'a Stored>,
    new: Option<(u32, Vec<(u32, f32)>)>,
}

impl RedisLexical {
    /// `cache_bytes`: how much memory the posting-list cache may take (0 = none).
    pub(super) fn new(
        connection: ConnectionManager,
        prefix: &str,
        shown: &str,
        cache_bytes: usize,
    ) -> Self {
        let postings = (cache_bytes / POSTING_BYTES).max(1);
        Self {
            connection,
            prefix: prefix.to_string(),
            shown: shown.to_string(),
            lists: quick_cache::sync::Cache::with_weighter(
                (postings / 256).max(16),
                postings as u64,
                ByPostings,
            ),
            ids: quick_cache::sync::Cache::new(CACHED_IDS),
            max_cached_list: if cache_bytes == 0 { 0 } else { postings / 8 },
        }
    }

    fn key(&self, index: &str, suffix: &str) -> String {
        format!("{}:lex:{{{index}}}:{suffix}", self.prefix)
    }

    fn term_key(&self, index: &str, term: u32) -> String {
        self.key(index, &format!("t:{term}"))
    }

    fn error(&self, error: redis::RedisError) -> StateError {
        classify(&self.shown, error)
    }

    /// The index's counts and what each id holds now.
    async fn lookup(
        &self,
        index: &str,
        ids: &[&str],
    ) -> Result<(u64, u64, Vec<Option<Stored>>), StateError> {
        let mut connection = self.connection.clone();
        let reply: Vec<String> = LOOKUP
            .key(self.key(index, "meta"))
            .key(self.key(index, "num"))
            .key(self.key(index, "doc"))
            .arg(ids)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        let number = |i: usize| {
            reply
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let stored = reply[2..]
            .chunks(2)
            .map(|pair| {
                let [number, entry] = pair else { return None };
                if number.is_empty() {
                    return None;
                }
                let mut fields = entry.split(' ');
                let length = fields.next().and_then(|l| l.parse().ok()).unwrap_or(0);
                Some(Stored {
                    number: number.clone(),
                    length,
                    terms: fields.filter_map(|t| t.parse().ok()).collect(),
                })
            })
            .collect();
        Ok((number(0), number(1), stored))
    }

    /// Applies `changes` (one script); `false` if one of them was overtaken by another writer.
    async fn apply(&self, index: &str, changes: &[Change<'_>]) -> Result<bool, StateError> {
        let mut keys = vec![
            self.key(index, "meta"),
            self.key(index, "num"),
            self.key(index, "id"),
            self.key(index, "doc"),
            self.key(index, "ver"),
        ];
        let mut positions: HashMap<u32, usize> = HashMap::new();
        let mut position = |term: u32, keys: &mut Vec<String>| {
            *positions.entry(term).or_insert_with(|| {
                keys.push(self.term_key(index, term));
                keys.len()
            })
        };
        let mut script = WRITE.prepare_invoke();
        script.arg(changes.len());
        for change in changes {
            script.arg(change.id);
            match &change.old {
                Some(old) => {
                    script.arg(&old.number).arg(old.length).arg(old.terms.len());
                    for &term in &old.terms {
                        script.arg(position(term, &mut keys));
                    }
                }
                None => {
                    script.arg("").arg(0).arg(0);
                }
            }
            match &change.new {
                Some((length, weights)) => {
                    let mut entry = length.to_string();
                    for (term, _) in weights {
                        entry.push(' ');
                        entry.push_str(&term.to_string());
                    }
                    script.arg(entry).arg(*length).arg(weights.len());
                    for &(term, weight) in weights {
                        // As a double, exactly: Redis hands it back bit for bit.
                        script.arg(position(term, &mut keys)).arg(f64::from(weight));
                    }
                }
                None => {
                    script.arg("").arg(0).arg(0);
                }
            }
        }
        for key in &keys {
            script.key(key);
        }
        let mut connection = self.connection.clone();
        let applied: i64 = script
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        Ok(applied == 1)
    }

    /// Writes (`docs`) or removes (`ids` without docs) chunks, retrying what another writer
    /// overtook. Every chunk is weighed with one average: the index's after the whole call.
    async fn write(
        &self,
        index: &str,
        ids: &[&str],
        docs: Option<&HashMap<&str, &LexicalDoc>>,
    ) -> Result<(), StateError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (chunks, length, stored) = self.lookup(index, ids).await?;
        let average = estimate(chunks, length, &stored, ids, docs);
        let mut stored = stored.into_iter();
        for part in ids.chunks(WRITE_BATCH) {
            let mut current: Vec<Option<Stored>> = stored.by_ref().take(part.len()).collect();
            let mut attempt = 1;
            loop {
                let changes: Vec<Change> = part
                    .iter()
                    .zip(&current)
                    .map(|(id, old)| Change {
                        id,
                        old: old.as_ref(),
                        new: docs.and_then(|d| d.get(id)).map(|doc| {
                            (doc.terms.length, lexical::doc_vector(&doc.terms, average))
                        }),
                    })
                    .filter(|c| c.old.is_some() || c.new.is_some())
                    .collect();
                if changes.is_empty() || self.apply(index, &changes).await? {
                    break;
                }
                if attempt >= WRITE_ATTEMPTS {
                    return Err(StateError::Backend(format!(
                        "lexical index `{index}`: chunks kept changing under this write"
                    )));
                }
                attempt += 1;
                current = self.lookup(index, part).await?.2;
            }
        }
        Ok(())
    }

    /// The weights of `numbers` in each term's postings (`None` = absent), one list per lookup.
    async fn weights(
        &self,
        index: &str,
        lookups: &[(u32, Vec<u64>)],
    ) -> Result<Vec<Vec<Option<f32>>>, StateError> {
        if lookups.is_empty() {
            return Ok(Vec::new());
        }
        let mut script = WEIGHTS.prepare_invoke();
        for (term, numbers) in lookups {
            script.key(self.term_key(index, *term));
            script.arg(numbers.len()).arg(numbers);
        }
        let mut connection = self.connection.clone();
        let replies: Vec<String> = script
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        Ok(replies
            .iter()
            .map(|reply| {
                reply
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .map(|w| w.parse::<f64>().ok().map(|w| w as f32))
                    .collect()
            })
            .collect())
    }

    /// Postings `from..=to` (by rank) of each term: (number, weight), best first.
    async fn read(
        &self,
        index: &str,
        ranges: &[(u32, usize, usize)],
    ) -> Result<Vec<Vec<(u64, f32)>>, StateError> {
        let mut script = READ.prepare_invoke();
        for &(term, from, to) in ranges {
            script.key(self.term_key(index, term)).arg(from).arg(to);
        }
        let mut connection = self.connection.clone();
        let replies: Vec<String> = script
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        Ok(replies.iter().map(|reply| parse_postings(reply)).collect())
    }

    /// Fills in the unknown weights of `numbers` (ZMSCORE in the lists concerned).
    async fn look_up(
        &self,
        index: &str,
        terms: &[QueryTerm],
        candidates: &mut Candidates,
        numbers: &[u64],
    ) -> Result<(), StateError> {
        let lookups: Vec<(usize, Vec<u64>)> = (0..terms.len())
            .map(|i| {
                let unknown = numbers
                    .iter()
                    .copied()
                    .filter(|n| candidates.seen.get(n).is_some_and(|w| w[i].is_none()))
                    .collect::<Vec<u64>>();
                (i, unknown)
            })
            .filter(|(_, unknown)| !unknown.is_empty())
            .collect();
        let asked: Vec<(u32, Vec<u64>)> = lookups
            .iter()
            .map(|(i, unknown)| (terms[*i].term, unknown.clone()))
            .collect();
        for ((i, unknown), found) in lookups.iter().zip(self.weights(index, &asked).await?) {
            for (number, weight) in unknown.iter().zip(found) {
                if let Some(w) = candidates.seen.get_mut(number) {
                    w[*i] = Some(weight);
                }
            }
        }
        Ok(())
    }

    /// The `limit` best of `scored` (number, score), as `Ranked`: by score, then id (ids are
    /// fetched for the best and whatever ties the last of them).
    async fn best(
        &self,
        index: &str,
        mut scored: Vec<(u64, f32)>,
        limit: usize,
    ) -> Result<Vec<Ranked>, StateError> {
        // The limit-th best score, found in linear time; then what scores at least that.
        if limit > 0 && scored.len() > limit {
            let (_, &mut (_, cut), _) =
                scored.select_nth_unstable_by(limit - 1, |a, b| b.1.total_cmp(&a.1));
            scored.retain(|(_, s)| *s >= cut);
        }
        let numbers: Vec<u64> = scored.iter().map(|(n, _)| *n).collect();
        let ids = self.ids(index, &numbers).await?;
        let mut ranked: Vec<Ranked> = scored
            .into_iter()
            .zip(ids)
            .filter_map(|((_, score), id)| Some(Ranked { id: id?, score }))
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        ranked.truncate(limit);
        Ok(ranked)
    }

    /// Chunk ids of `numbers` (`None` for one removed meanwhile).
    async fn ids(&self, index: &str, numbers: &[u64]) -> Result<Vec<Option<String>>, StateError> {
        let mut ids: Vec<Option<String>> = numbers
            .iter()
            .map(|&n| {
                self.ids
                    .get(&(index.to_string(), n))
                    .map(|id| id.to_string())
            })
            .collect();
        let missing: Vec<u64> = numbers
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.is_none())
            .map(|(&n, _)| n)
            .collect();
        if missing.is_empty() {
            return Ok(ids);
        }
        let mut connection = self.connection.clone();
        let found: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(index, "id"))
            .arg(&missing)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        let found: HashMap<u64, String> = missing
            .into_iter()
            .zip(found)
            .filter_map(|(n, id)| Some((n, id?)))
            .collect();
        for (number, id) in numbers.iter().zip(ids.iter_mut()) {
            if id.is_none()
                && let Some(known) = found.get(number)
            {
                self.ids
                    .insert((index.to_string(), *number), Arc::from(known.as_str()));
                *id = Some(known.clone());
            }
        }
        Ok(ids)
    }

    /// The query's terms that some chunk holds, ascending, with their idf and the version of
    /// their lists: the live chunk count, each term's document frequency and list version, read
    /// in one round trip.
    async fn query_terms(&self, index: &str, all: &[u32]) -> Result<Vec<QueryTerm>, StateError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.key(index, "meta")).arg("chunks");
        let versions = self.key(index, "ver");
        for &term in all {
            pipe.cmd("ZCARD").arg(self.term_key(index, term));
            pipe.cmd("HGET").arg(&versions).arg(term);
        }
        let mut connection = self.connection.clone();
        // HGET answers a number or nil, ZCARD a number: both read as Option<u64>.
        let reply: Vec<Option<u64>> = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        let chunks = reply.first().copied().flatten().unwrap_or(0);
        Ok(all
            .iter()
            .zip(reply[1..].chunks(2))
            .filter_map(|(&term, pair)| {
                let df = pair.first().copied().flatten().filter(|&df| df > 0)?;
                Some(QueryTerm {
                    term,
                    idf: lexical::idf(chunks, df),
                    df: df as usize,
                    version: pair.get(1).copied().flatten().unwrap_or(0),
                    read: 0,
                    floor: 0.0,
                })
            })
            .collect())
    }

    /// The whole lists of `terms`, from this replica's cache when their version is current, else
    /// read from Redis (and cached) when they are short enough; `None` for the longer ones.
    async fn whole_lists(
        &self,
        index: &str,
        terms: &[QueryTerm],
    ) -> Result<Vec<Option<Arc<Postings>>>, StateError> {
        let mut lists: Vec<Option<Arc<Postings>>> = terms
            .iter()
            .map(|t| {
                self.lists
                    .get(&(index.to_string(), t.term))
                    .filter(|cached| cached.version == t.version)
            })
            .collect();
        let missing: Vec<usize> = (0..terms.len())
            .filter(|&i| lists[i].is_none() && terms[i].df <= self.max_cached_list)
            .collect();
        metrics::counter!("aurora_lexical_lists_total", "source" => "cache")
            .increment((terms.len() - missing.len()) as u64);
        if missing.is_empty() {
            return Ok(lists);
        }
        metrics::counter!("aurora_lexical_lists_total", "source" => "redis")
            .increment(missing.len() as u64);
        let mut script = FETCH.prepare_invoke();
        script.key(self.key(index, "ver"));
        for &i in &missing {
            script
                .key(self.term_key(index, terms[i].term))
                .arg(terms[i].term);
        }
        let mut connection = self.connection.clone();
        let reply: Vec<String> = script
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        for (&i, pair) in missing.iter().zip(reply.chunks(2)) {
            let [version, list] = pair else { continue };
            let postings = Arc::new(Postings {
                version: version.parse().unwrap_or(0),
                list: parse_postings(list),
            });
            self.lists
                .insert((index.to_string(), terms[i].term), postings.clone());
            lists[i] = Some(postings);
        }
        Ok(lists)
    }
}

/// `"number weight number weight …"` as the scripts render lists.
fn parse_postings(reply: &str) -> Vec<(u64, f32)> {
    let mut fields = reply.split(' ').filter(|f| !f.is_empty());
    let mut list = Vec::new();
    while let (Some(number), Some(weight)) = (fields.next(), fields.next()) {
        if let (Ok(number), Ok(weight)) = (number.parse(), weight.parse::<f64>()) {
            list.push((number, weight as f32));
        }
    }
    list
}

/// The average chunk length after writing `ids` (their `docs`, or nothing for a removal) over
/// an index of `chunks` chunks of `length` in all, where `stored` is what the ids hold now.
fn estimate(
    chunks: u64,
    length: u64,
    stored: &[Option<Stored>],
    ids: &[&str],
    docs: Option<&HashMap<&str, &LexicalDoc>>,
) -> f32 {
    let (mut chunks, mut length) = (chunks, length);
    for old in stored.iter().flatten() {
        chunks = chunks.saturating_sub(1);
        length = length.saturating_sub(old.length);
    }
    for id in ids {
        if let Some(doc) = docs.and_then(|d| d.get(id)) {
            chunks += 1;
            length += u64::from(doc.terms.length);
        }
    }
    lexical::average(chunks, length)
}

/// A query term being read: its id, idf and document frequency, and how far its postings
/// have been read.
struct QueryTerm {
    term: u32,
    idf: f32,
    df: usize,
    /// Its list's version (moved by every write to it).
    version: u64,
    /// Postings read so far (from the head).
    read: usize,
    /// The weight of the last posting read: no chunk further down weighs more.
    floor: f32,
}

impl QueryTerm {
    fn exhausted(&self) -> bool {
        self.read >= self.df
    }
}

/// What a chunk that no list has shown yet could score at most.
fn ceiling(terms: &[QueryTerm]) -> f32 {
    terms
        .iter()
        .filter(|t| !t.exhausted())
        .map(|t| t.idf * t.floor)
        .sum()
}

/// The chunks a query has seen so far, each with its weight per query term: `Some(Some(w))`
/// present, `Some(None)` absent, `None` not known yet.
struct Candidates {
    width: usize,
    seen: HashMap<u64, Vec<Option<Option<f32>>>>,
    /// Chunks dropped for good: the bar they missed only rises, so deeper reads that meet them
    /// again pass them by.
    dropped: std::collections::HashSet<u64>,
}

impl Candidates {
    fn new(width: usize) -> Self {
        Self {
            width,
            seen: HashMap::new(),
            dropped: Default::default(),
        }
    }

    /// Postings read from term `i`'s list.
    fn add(&mut self, i: usize, list: Vec<(u64, f32)>) {
        for (number, weight) in list {
            if self.dropped.contains(&number) {
                continue;
            }
            self.seen
                .entry(number)
                .or_insert_with(|| vec![None; self.width])[i] = Some(Some(weight));
        }
    }

    /// In a finished list, a chunk not read is a chunk without the term.
    fn settle_finished(&mut self, terms: &[QueryTerm]) {
        for weights in self.seen.values_mut() {
            for (weight, term) in weights.iter_mut().zip(terms) {
                if weight.is_none() && term.exhausted() {
                    *weight = Some(None);
                }
            }
        }
    }

    /// What a chunk scores at least (its known weights) and at most (plus the floor of every
    /// list it may still be in).
    fn bounds(terms: &[QueryTerm], weights: &[Option<Option<f32>>]) -> (f32, f32) {
        let known: Vec<Option<f32>> = weights.iter().map(|w| w.flatten()).collect();
        let slack: f32 = terms
            .iter()
            .zip(weights)
            .filter(|(_, w)| w.is_none())
            .map(|(t, _)| t.idf * t.floor)
            .sum();
        let low = total(terms, &known);
        (low, low + slack)
    }

    /// Drops the chunks that cannot reach the `limit`-th best certain score; that score (less a
    /// rounding margin), once `limit` chunks are known.
    fn prune(&mut self, terms: &[QueryTerm], limit: usize) -> Option<f32> {
        let mut lows: Vec<f32> = self
            .seen
            .values()
            .map(|w| Self::bounds(terms, w).0)
            .collect();
        if lows.len() < limit {
            return None;
        }
        lows.select_nth_unstable_by(limit - 1, |a, b| b.total_cmp(a));
        let bar = lows[limit - 1] * (1.0 - MARGIN);
        let dropped = &mut self.dropped;
        self.seen.retain(|&number, w| {
            let keep = Self::bounds(terms, w).1 >= bar;
            if !keep {
                dropped.insert(number);
            }
            keep
        });
        Some(bar)
    }

    /// The `n` chunks with the best upper bounds that still have unknown weights.
    fn front(&self, terms: &[QueryTerm], n: usize) -> Vec<u64> {
        let mut open: Vec<(f32, u64)> = self
            .seen
            .iter()
            .filter(|(_, w)| w.iter().any(Option::is_none))
            .map(|(&number, w)| (Self::bounds(terms, w).1, number))
            .collect();
        open.sort_by(|a, b| b.0.total_cmp(&a.0));
        open.into_iter().take(n).map(|(_, number)| number).collect()
    }
}

/// Scores in ascending term order, as every backend adds them up.
fn total(terms: &[QueryTerm], weights: &[Option<f32>]) -> f32 {
    let mut score = 0.0f32;
    for (term, weight) in terms.iter().zip(weights) {
        if let Some(weight) = weight {
            score += term.idf * weight;
        }
    }
    score
}

impl LexicalIndex for RedisLexical {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn index<'a>(
        &'a self,
        index: &'a str,
        docs: &'a [LexicalDoc],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            // The last version of each id, in first-seen order.
            let mut latest: HashMap<&str, &LexicalDoc> = HashMap::with_capacity(docs.len());
            let mut ids: Vec<&str> = Vec::with_capacity(docs.len());
            for doc in docs {
                if latest.insert(doc.id.as_str(), doc).is_none() {
                    ids.push(doc.id.as_str());
                }
            }
            self.write(index, &ids, Some(&latest)).await
        })
    }

    fn remove<'a>(
        &'a self,
        index: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            ids.sort_unstable();
            ids.dedup();
            self.write(index, &ids, None).await
        })
    }

    fn search<'a>(
        &'a self,
        index: &'a str,
        query: &'a TermCounts,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>> {
        Box::pin(async move {
            let all: Vec<u32> = query.counts.keys().copied().collect();
            if limit == 0 || all.is_empty() {
                return Ok(Vec::new());
            }
            let mut terms = self.query_terms(index, &all).await?;
            if terms.is_empty() {
                return Ok(Vec::new());
            }
            let whole = self.whole_lists(index, &terms).await?;
            if whole.iter().all(Option::is_some) {
                // Every list at hand: scored here exactly as the in-process index scores.
                let postings: usize = whole.iter().flatten().map(|l| l.list.len()).sum();
                let mut scores: HashMap<u64, f32, foldhash::fast::RandomState> =
                    HashMap::with_capacity_and_hasher(postings, Default::default());
                for (term, list) in terms.iter().zip(whole.iter().flatten()) {
                    for &(number, weight) in &list.list {
                        *scores.entry(number).or_insert(0.0) += term.idf * weight;
                    }
                }
                return self.best(index, scores.into_iter().collect(), limit).await;
            }
            // Some list too long to hold: the threshold algorithm, with the lists at hand
            // counted as read to the end.
            let mut candidates = Candidates::new(terms.len());
            for (i, list) in whole.iter().enumerate() {
                if let Some(list) = list {
                    candidates.add(i, list.list.clone());
                    terms[i].df = list.list.len();
                    terms[i].read = list.list.len();
                }
            }
            candidates.settle_finished(&terms);
            let mut depth = limit.max(FIRST_DEPTH);
            'deeper: loop {
                // Read every unfinished list down to `depth`.
                let reading: Vec<usize> = (0..terms.len())
                    .filter(|&i| !terms[i].exhausted() && terms[i].read < depth)
                    .collect();
                let ranges: Vec<(u32, usize, usize)> = reading
                    .iter()
                    .map(|&i| (terms[i].term, terms[i].read, depth - 1))
                    .collect();
                for (&i, list) in reading.iter().zip(self.read(index, &ranges).await?) {
                    let term = &mut terms[i];
                    // A list shorter than asked for is finished (it may have shrunk meanwhile).
                    term.read = if list.len() < depth - term.read {
                        term.df
                    } else {
                        depth
                    };
                    if let Some(&(_, last)) = list.last() {
                        term.floor = last;
                    }
                    candidates.add(i, list);
                }
                candidates.settle_finished(&terms);
                // Done once no chunk unseen could reach the limit-th best; looking up the
                // missing weights of the front runners (once per depth) raises that bar.
                let mut looked_up = false;
                loop {
                    let bar = candidates.prune(&terms, limit);
                    let finished = terms.iter().all(QueryTerm::exhausted);
                    if finished || bar.is_some_and(|bar| ceiling(&terms) < bar) {
                        break 'deeper;
                    }
                    if looked_up {
                        break;
                    }
                    let front = candidates.front(&terms, limit * 2);
                    self.look_up(index, &terms, &mut candidates, &front).await?;
                    looked_up = true;
                }
                depth *= 4;
            }
            // Every score exact: the survivors' weights still unknown, looked up.
            let all: Vec<u64> = candidates.seen.keys().copied().collect();
            self.look_up(index, &terms, &mut candidates, &all).await?;
            let seen = candidates.seen;
            let scored: Vec<(u64, f32)> = seen
                .iter()
                .map(|(&number, w)| (number, Candidates::bounds(&terms, w).0))
                .collect();
            self.best(index, scored, limit).await
        })
    }

    fn score<'a>(
        &'a self,
        index: &'a str,
        query: &'a TermCounts,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Ranked>, StateError>> {
        Box::pin(async move {
            let all: Vec<u32> = query.counts.keys().copied().collect();
            if ids.is_empty() || all.is_empty() {
                return Ok(Vec::new());
            }
            let mut connection = self.connection.clone();
            let numbers: Vec<Option<u64>> = redis::cmd("HMGET")
                .arg(self.key(index, "num"))
                .arg(ids)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            let known: Vec<(&String, u64)> = ids
                .iter()
                .zip(numbers)
                .filter_map(|(id, n)| Some((id, n?)))
                .collect();
            if known.is_empty() {
                return Ok(Vec::new());
            }
            let terms = self.query_terms(index, &all).await?;
            let numbers: Vec<u64> = known.iter().map(|(_, n)| *n).collect();
            let asked: Vec<(u32, Vec<u64>)> =
                terms.iter().map(|t| (t.term, numbers.clone())).collect();
            let found = self.weights(index, &asked).await?;
            Ok(known
                .iter()
                .enumerate()
                .filter_map(|(row, (id, _))| {
                    let weights: Vec<Option<f32>> = found.iter().map(|col| col[row]).collect();
                    weights.iter().any(Option::is_some).then(|| Ranked {
                        id: (*id).clone(),
                        score: total(&terms, &weights),
                    })
                })
                .collect())
        })
    }

    fn len<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<u64, StateError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let chunks: Option<u64> = redis::cmd("HGET")
                .arg(self.key(index, "meta"))
                .arg("chunks")
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            Ok(chunks.unwrap_or(0))
        })
    }

    fn vocabulary<'a>(
        &'a self,
        index: &'a str,
        terms: &'a [u32],
    ) -> BoxFuture<'a, Result<Vocabulary, StateError>> {
        Box::pin(async move {
            // One round trip: the chunk count, then each term's list length.
            let mut pipe = redis::pipe();
            pipe.cmd("HGET").arg(self.key(index, "meta")).arg("chunks");
            for &term in terms {
                pipe.cmd("ZCARD").arg(self.term_key(index, term));
            }
            let mut connection = self.connection.clone();
            let reply: Vec<Option<u64>> = pipe
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            Ok(Vocabulary {
                chunks: reply.first().copied().flatten().unwrap_or(0),
                holds: (0..terms.len())
                    .map(|i| reply.get(i + 1).copied().flatten().unwrap_or(0) > 0)
                    .collect(),
            })
        })
    }

    fn clear<'a>(&'a self, index: &'a str) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            let escaped: String = self
                .key(index, "")
                .chars()
                .flat_map(|c| {
                    let special = matches!(c, '*' | '?' | '[' | ']' | '\\');
                    special.then_some('\\').into_iter().chain(Some(c))
                })
                .collect();
            let pattern = format!("{escaped}*");
            let mut connection = self.connection.clone();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| self.error(e))?;
                if !keys.is_empty() {
                    redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(|e| self.error(e))?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }
}
