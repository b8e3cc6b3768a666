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
//! each query term's list, look up the missing weights of the chunks seen, and stop once the
//! k-th best score beats anything a chunk not yet seen could reach; else read deeper. Exact, and
//! usually two or three round trips whatever the collection's size.

use std::collections::HashMap;
use std::sync::LazyLock;

use aurora_actors::lexical::{self, TermCounts};
use aurora_actors::ports::{LexicalDoc, LexicalIndex, Ranked, StateError};
use futures::future::BoxFuture;
use redis::Script;
use redis::aio::ConnectionManager;

use super::redis::classify;

/// Chunks per write script: bounds how long one script holds Redis (a chunk is ~100 ZADDs).
const WRITE_BATCH: usize = 64;
/// Postings read per term on a query's first pass, at least.
const FIRST_DEPTH: usize = 32;
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

/// KEYS: meta, num, id, doc, then every postings key a chunk below names (by position in KEYS).
/// ARGV: n, then per chunk: id, expected number ('' = none), old length, n old postings, their
/// KEYS positions, new entry ('' = remove only), new length, n new postings, (KEYS position,
/// weight) pairs. Returns 0, changing nothing, when a chunk's number is not the expected one.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local meta, nums, ids, docs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
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
        return 1",
    )
});

pub struct RedisLexical {
    connection: ConnectionManager,
    prefix: String,
    shown: String,
}

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
    pub(super) fn new(connection: ConnectionManager, prefix: &str, shown: &str) -> Self {
        Self {
            connection,
            prefix: prefix.to_string(),
            shown: shown.to_string(),
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

    /// `ZMSCORE` of `numbers` in each term's postings, as weights (`None` = absent).
    async fn weights(
        &self,
        index: &str,
        lookups: &[(u32, Vec<u64>)],
    ) -> Result<Vec<Vec<Option<f32>>>, StateError> {
        if lookups.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (term, numbers) in lookups {
            pipe.cmd("ZMSCORE")
                .arg(self.term_key(index, *term))
                .arg(numbers);
        }
        let mut connection = self.connection.clone();
        let replies: Vec<Vec<Option<f64>>> = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        Ok(replies
            .into_iter()
            .map(|r| r.into_iter().map(|w| w.map(|w| w as f32)).collect())
            .collect())
    }

    /// Chunk ids of `numbers` (`None` for one removed meanwhile).
    async fn ids(&self, index: &str, numbers: &[u64]) -> Result<Vec<Option<String>>, StateError> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        redis::cmd("HMGET")
            .arg(self.key(index, "id"))
            .arg(numbers)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.error(e))
    }

    /// The query's terms that some chunk holds, ascending, with their idf: the live chunk count
    /// and each term's document frequency, read in one round trip.
    async fn query_terms(&self, index: &str, all: &[u32]) -> Result<Vec<QueryTerm>, StateError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.key(index, "meta")).arg("chunks");
        for &term in all {
            pipe.cmd("ZCARD").arg(self.term_key(index, term));
        }
        let mut connection = self.connection.clone();
        // HGET answers a number or nil, ZCARD a number: both read as Option<u64>.
        let reply: Vec<Option<u64>> = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| self.error(e))?;
        let mut values = reply.into_iter();
        let chunks = values.next().flatten().unwrap_or(0);
        Ok(all
            .iter()
            .zip(values)
            .filter_map(|(&term, df)| {
                let df = df.filter(|&df| df > 0)?;
                Some(QueryTerm {
                    term,
                    idf: lexical::idf(chunks, df),
                    df: df as usize,
                    read: 0,
                    floor: 0.0,
                })
            })
            .collect())
    }
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
            // number → each term's weight: Some(Some(w)) known, Some(None) absent, None unknown.
            let mut seen: HashMap<u64, Vec<Option<Option<f32>>>> = HashMap::new();
            let mut depth = (limit * 2).max(FIRST_DEPTH);
            loop {
                // Read every unfinished list down to `depth`.
                let mut pipe = redis::pipe();
                let reading: Vec<usize> = (0..terms.len())
                    .filter(|&i| !terms[i].exhausted() && terms[i].read < depth)
                    .collect();
                for &i in &reading {
                    pipe.cmd("ZREVRANGE")
                        .arg(self.term_key(index, terms[i].term))
                        .arg(terms[i].read)
                        .arg(depth - 1)
                        .arg("WITHSCORES");
                }
                let mut connection = self.connection.clone();
                let lists: Vec<Vec<(u64, f64)>> = pipe
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| self.error(e))?;
                let width = terms.len();
                for (&i, list) in reading.iter().zip(lists) {
                    let term = &mut terms[i];
                    // A list shorter than expected shrank meanwhile: it is exhausted.
                    term.read = if list.len() < depth - term.read {
                        term.df
                    } else {
                        depth
                    };
                    if let Some(&(_, last)) = list.last() {
                        term.floor = last as f32;
                    }
                    for (number, weight) in list {
                        seen.entry(number).or_insert_with(|| vec![None; width])[i] =
                            Some(Some(weight as f32));
                    }
                }
                // Unknown weights in unfinished lists: look them up. In a finished list a
                // chunk not read is a chunk without the term.
                let mut lookups: Vec<(usize, Vec<u64>)> = Vec::new();
                for (i, term) in terms.iter().enumerate() {
                    let missing: Vec<u64> = seen
                        .iter()
                        .filter(|(_, w)| w[i].is_none())
                        .map(|(&n, _)| n)
                        .collect();
                    if missing.is_empty() {
                        continue;
                    }
                    if term.exhausted() {
                        for number in missing {
                            if let Some(w) = seen.get_mut(&number) {
                                w[i] = Some(None);
                            }
                        }
                    } else {
                        lookups.push((i, missing));
                    }
                }
                let asked: Vec<(u32, Vec<u64>)> = lookups
                    .iter()
                    .map(|(i, numbers)| (terms[*i].term, numbers.clone()))
                    .collect();
                for ((i, numbers), found) in lookups.iter().zip(self.weights(index, &asked).await?)
                {
                    for (number, weight) in numbers.iter().zip(found) {
                        if let Some(w) = seen.get_mut(number) {
                            w[*i] = Some(weight);
                        }
                    }
                }
                // Done when the limit-th best beats whatever an unseen chunk could score.
                let mut scores: Vec<f32> = seen
                    .values()
                    .map(|w| {
                        let known: Vec<Option<f32>> = w.iter().map(|x| x.flatten()).collect();
                        total(&terms, &known)
                    })
                    .collect();
                let ceiling: f32 = terms
                    .iter()
                    .filter(|t| !t.exhausted())
                    .map(|t| t.idf * t.floor)
                    .sum();
                let finished = terms.iter().all(QueryTerm::exhausted);
                let enough = scores.len() >= limit && {
                    scores.sort_by(|a, b| b.total_cmp(a));
                    // A margin for the rounding of sums taken in another order.
                    scores[limit - 1] > ceiling * (1.0 + 1e-5)
                };
                if finished || enough {
                    break;
                }
                depth *= 4;
            }
            // Rank by score, then id (ids of every chunk seen: ties at the cut need them).
            let numbers: Vec<u64> = seen.keys().copied().collect();
            let ids = self.ids(index, &numbers).await?;
            let mut ranked: Vec<Ranked> = numbers
                .iter()
                .zip(ids)
                .filter_map(|(number, id)| {
                    let weights: Vec<Option<f32>> =
                        seen[number].iter().map(|x| x.flatten()).collect();
                    Some(Ranked {
                        id: id?,
                        score: total(&terms, &weights),
                    })
                })
                .collect();
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
            ranked.truncate(limit);
            Ok(ranked)
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
