//! Redis: the `JobQueue` port — crawl and batch jobs as durable work that every replica consumes.
//!
//! Lists with leases rather than Streams: recording a result must, in one atomic step, acknowledge
//! the item, store the page once, admit new links into the frontier, move the job's counters and
//! complete the job when it empties. That is one Lua script over the job's keys whatever the
//! queue structure, and a list + a lease sorted set keep it small. Every key of one job shares the
//! hash tag `{ID}`, so the scripts also run on Redis Cluster. Time is Redis' own (`TIME`), so
//! replicas with skewed clocks agree on lease deadlines.
//!
//! | key (after `{prefix}:crawl:{ID}:`) | type | holds |
//! |---|---|---|
//! | `meta` | string | the job's description (opaque JSON) |
//! | `state` | hash | `status`, `reason`, `limit`, `expires_at`, `updated_at`, `seq`, counters `c:*` |
//! | `queue` | list | ids of queued items, in frontier order |
//! | `items` | hash | id → payload, for queued and leased items |
//! | `leased` | sorted set | id by lease deadline (ms) |
//! | `owner` | hash | id → token of the lease that holds it |
//! | `seen` / `done` / `once` | sets | frontier keys admitted / result keys stored / one-time errors |
//! | `docs` / `errs` | hashes | n → document / error entry |
//!
//! plus `{prefix}:crawl:active`, a sorted set of job ids by creation time. Every job key expires
//! at the job's `expires_at`.
//!
//! Size: one file on purpose. The Lua scripts and the Rust around them share the key layout above,
//! and the conformance suite (`tests/conformance/jobs.rs`) holds them to the in-process queue's
//! semantics.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use aurora_actors::ports::{
    JobQueue, JobSnapshot, LeaseRef, Leased, LeasedItem, NewItem, NewJob, Outcome, Recorded,
    Renewed, StateError,
};
use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

/// Helpers every script shares: Redis' clock, admitting items, completing a job, expiry.
const COMMON: &str = r"
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function counter(state, name)
    return tonumber(redis.call('HGET', state, 'c:' .. name) or '0')
end
-- ARGV[first..] holds n triples (key, payload, counted). A key already stored as a result
-- (a redirect's target) is not queued either.
local function enqueue(state, queue, items, seen, done, first, n)
    for i = 0, n - 1 do
        local at = first + 3 * i
        if redis.call('SISMEMBER', done, ARGV[at]) == 0
            and redis.call('SADD', seen, ARGV[at]) == 1 then
            local id = redis.call('HINCRBY', state, 'seq', 1)
            redis.call('HSET', items, id, ARGV[at + 1])
            redis.call('RPUSH', queue, id)
            if ARGV[at + 2] == '1' then
                redis.call('HINCRBY', state, 'c:admitted', 1)
            end
        end
    end
end
local function complete_if_done(state, queue, leased, now)
    if redis.call('HGET', state, 'status') ~= 'scraping' then return false end
    local limit = tonumber(redis.call('HGET', state, 'limit'))
    local exhausted = redis.call('LLEN', queue) == 0 or counter(state, 'started') >= limit
    if not exhausted or redis.call('ZCARD', leased) > 0 then return false end
    local status = 'completed'
    if counter(state, 'documents') == 0 and counter(state, 'failed') > 0 then
        status = 'failed'
        redis.call('HSET', state, 'reason', 'no page could be scraped; see the job\'s errors')
    end
    redis.call('HSET', state, 'status', status, 'updated_at', now)
    return status
end
local function expire(state)
    local at = redis.call('HGET', state, 'expires_at')
    if not at then return end
    for i = 1, #KEYS do
        if KEYS[i] ~= state then redis.call('PEXPIREAT', KEYS[i], at) end
    end
    redis.call('PEXPIREAT', state, at)
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

/// KEYS: state queue items seen meta done. ARGV: meta limit expires_at n (key payload counted)×n.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('SET', KEYS[5], ARGV[1])
        redis.call('HSET', KEYS[1], 'status', 'scraping', 'limit', ARGV[2],
            'expires_at', ARGV[3], 'updated_at', now_ms(), 'c:started', 0)
        enqueue(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], 5, tonumber(ARGV[4]))
        expire(KEYS[1])
        return 1",
    )
});

/// KEYS: state queue items leased owner. ARGV: consumer max lease_ms.
/// Returns {'ended'} | {'completed', status} | {'items', reclaimed, (id token payload)…}.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local status = redis.call('HGET', KEYS[1], 'status')
        if status ~= 'scraping' then return {'ended'} end
        local now = now_ms()
        local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
        for i = #expired, 1, -1 do
            local id = expired[i]
            redis.call('ZREM', KEYS[4], id)
            redis.call('HDEL', KEYS[5], id)
            redis.call('LPUSH', KEYS[2], id)
            redis.call('HINCRBY', KEYS[1], 'c:started', -1)
        end
        local limit = tonumber(redis.call('HGET', KEYS[1], 'limit'))
        local room = math.min(tonumber(ARGV[2]), limit - counter(KEYS[1], 'started'))
        local out = {'items', #expired}
        local deadline = now + tonumber(ARGV[3])
        for _ = 1, room do
            local id = redis.call('LPOP', KEYS[2])
            if not id then break end
            local token = ARGV[1] .. ':' .. redis.call('HINCRBY', KEYS[1], 'lease_seq', 1)
            redis.call('ZADD', KEYS[4], deadline, id)
            redis.call('HSET', KEYS[5], id, token)
            redis.call('HINCRBY', KEYS[1], 'c:started', 1)
            out[#out + 1] = id
            out[#out + 1] = token
            out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
        end
        if #out == 2 then
            local done = complete_if_done(KEYS[1], KEYS[2], KEYS[4], now)
            if done then return {'completed', done} end
        end
        expire(KEYS[1])
        return out",
    )
});

/// KEYS: state leased owner. ARGV: lease_ms (id token)…. Returns {running, held…}.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local running = 0
        if redis.call('HGET', KEYS[1], 'status') == 'scraping' then running = 1 end
        local deadline = now_ms() + tonumber(ARGV[1])
        local out = {running}
        for i = 2, #ARGV, 2 do
            if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[i + 1] then
                redis.call('ZADD', KEYS[2], 'XX', deadline, ARGV[i])
                out[#out + 1] = 1
            else
                out[#out + 1] = 0
            end
        end
        return out",
    )
});

/// KEYS: state queue items leased owner seen done once docs errs.
/// ARGV: id result_key has_doc doc max_errors unstart
///       n_counts (name delta)… n_errors (once entry)… n_items (key payload counted)….
/// Returns {'ended'} | {'duplicate'} | {'stored', doc_index|-1, completed|'', state…}.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        local status = redis.call('HGET', KEYS[1], 'status')
        local id = ARGV[1]
        if not status then return {'ended'} end
        if status ~= 'scraping' then
            redis.call('ZREM', KEYS[4], id)
            redis.call('HDEL', KEYS[5], id)
            redis.call('LREM', KEYS[2], 1, id)
            redis.call('HDEL', KEYS[3], id)
            return {'ended'}
        end
        if redis.call('ZREM', KEYS[4], id) == 1 then
            -- Ours, or taken over after our lease expired: either way this result is first.
            redis.call('HDEL', KEYS[5], id)
        elseif redis.call('LREM', KEYS[2], 1, id) == 1 then
            -- Reclaimed and not handed out again yet: it counts as started by this result.
            redis.call('HINCRBY', KEYS[1], 'c:started', 1)
        else
            return {'duplicate'}
        end
        redis.call('HDEL', KEYS[3], id)
        local now = now_ms()
        local fresh = true
        if ARGV[2] ~= '' then fresh = redis.call('SADD', KEYS[7], ARGV[2]) == 1 end
        local doc = -1
        if fresh and ARGV[3] == '1' then
            doc = redis.call('HINCRBY', KEYS[1], 'c:documents', 1) - 1
            redis.call('HSET', KEYS[9], doc, ARGV[4])
        end
        local max_errors = tonumber(ARGV[5])
        local at = 7
        local n = tonumber(ARGV[at])
        for i = 0, n - 1 do
            redis.call('HINCRBY', KEYS[1], 'c:' .. ARGV[at + 1 + 2 * i], ARGV[at + 2 + 2 * i])
        end
        at = at + 1 + 2 * n
        n = tonumber(ARGV[at])
        for i = 0, n - 1 do
            local once, entry = ARGV[at + 1 + 2 * i], ARGV[at + 2 + 2 * i]
            if once == '' or redis.call('SADD', KEYS[8], once) == 1 then
                local count = counter(KEYS[1], 'errors')
                if count < max_errors then
                    redis.call('HSET', KEYS[10], count, entry)
                    redis.call('HINCRBY', KEYS[1], 'c:errors', 1)
                end
            end
        end
        at = at + 1 + 2 * n
        enqueue(KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[7], at + 1, tonumber(ARGV[at]))
        if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[1], 'c:started', -1) end
        redis.call('HSET', KEYS[1], 'updated_at', now)
        local done = complete_if_done(KEYS[1], KEYS[2], KEYS[4], now) or ''
        expire(KEYS[1])
        return {'stored', doc, done, redis.call('HGETALL', KEYS[1])}",
    )
});

/// KEYS: state queue leased owner. ARGV: (id token)…, queued again at the front in order.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        for i = #ARGV - 1, 1, -2 do
            if redis.call('HGET', KEYS[4], ARGV[i]) == ARGV[i + 1] then
                redis.call('ZREM', KEYS[3], ARGV[i])
                redis.call('HDEL', KEYS[4], ARGV[i])
                redis.call('LPUSH', KEYS[2], ARGV[i])
                redis.call('HINCRBY', KEYS[1], 'c:started', -1)
            end
        end
        return 1",
    )
});

/// KEYS: state errs. ARGV: status reason error ('' for none). Returns 1 when it ended a
/// running job.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
        if redis.call('HGET', KEYS[1], 'status') ~= 'scraping' then return 0 end
        redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'updated_at', now_ms())
        if ARGV[3] ~= '' then
            local n = redis.call('HINCRBY', KEYS[1], 'c:errors', 1) - 1
            redis.call('HSET', KEYS[2], n, ARGV[3])
        end
        expire(KEYS[1])
        return 1",
    )
});

pub struct RedisJobs {
    connection: ConnectionManager,
    prefix: String,
    /// The server, for messages (without its password).
    shown: String,
}

impl RedisJobs {
    pub(crate) fn new(connection: ConnectionManager, prefix: &str, shown: &str) -> Self {
        Self {
            connection,
            prefix: prefix.to_string(),
            shown: shown.to_string(),
        }
    }

    fn key(&self, job: &str, part: &str) -> String {
        // `{job}` is the hash tag: every key of a job lands on one Redis Cluster slot.
        format!("{}:crawl:{{{job}}}:{part}", self.prefix)
    }

    fn keys(&self, job: &str, parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| self.key(job, part)).collect()
    }

    fn active_key(&self) -> String {
        format!("{}:crawl:active", self.prefix)
    }

    fn fail(&self, error: redis::RedisError) -> StateError {
        super::redis::classify(&self.shown, error)
    }

    /// Entries `from..to` of the numbered hash `part` (documents, errors), missing ones skipped.
    async fn entries<T: redis::FromRedisValue>(
        &self,
        job: &str,
        part: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<T>, StateError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let found: Vec<Option<T>> = redis::cmd("HMGET")
            .arg(self.key(job, part))
            .arg((from..to).collect::<Vec<u64>>())
            .query_async(&mut connection)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> Result<Value, StateError> {
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.fail(e))
    }
}

fn malformed(what: &str) -> StateError {
    StateError::Backend(format!(
        "unexpected reply from the job queue script: {what}"
    ))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

fn array(value: Value) -> Result<Vec<Value>, StateError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(malformed(&format!("{other:?}"))),
    }
}

/// Pushes `items` as ARGV triples after their count.
fn push_items(invocation: &mut redis::ScriptInvocation<'_>, items: &[NewItem]) {
    invocation.arg(items.len());
    for item in items {
        invocation
            .arg(&item.key)
            .arg(&item.payload)
            .arg(if item.counted { "1" } else { "0" });
    }
}

/// The job hash as the port reports it: counters (the `c:` fields) and the rest.
fn state_fields(values: Vec<Value>) -> (BTreeMap<String, i64>, BTreeMap<String, String>) {
    let mut counters = BTreeMap::new();
    let mut fields = BTreeMap::new();
    let mut pairs = values.into_iter();
    while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
        let (Some(name), Some(value)) = (text(&name), text(&value)) else {
            continue;
        };
        match name.strip_prefix("c:") {
            Some(counter) => {
                counters.insert(counter.to_string(), value.parse().unwrap_or(0));
            }
            None => {
                fields.insert(name, value);
            }
        }
    }
    (counters, fields)
}

impl JobQueue for RedisJobs {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn create(&self, job: NewJob) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            // Listed first: a job that is listed but not yet stored is skipped by consumers
            // until it is, while a stored job missing from the list would never run.
            let mut connection = self.connection.clone();
            redis::cmd("ZADD")
                .arg(self.active_key())
                .arg(job.expires_at)
                .arg(&job.id)
                .query_async::<()>(&mut connection)
                .await
                .map_err(|e| self.fail(e))?;
            let mut invocation = CREATE.prepare_invoke();
            for key in self.keys(
                &job.id,
                &["state", "queue", "items", "seen", "meta", "done"],
            ) {
                invocation.key(key);
            }
            invocation.arg(&job.meta).arg(job.limit).arg(job.expires_at);
            push_items(&mut invocation, &job.items);
            self.run(invocation).await.map(drop)
        })
    }

    fn active(&self) -> BoxFuture<'_, Result<Vec<String>, StateError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("ZRANGE")
                .arg(self.active_key())
                .arg(0)
                .arg(-1)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn retire<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("ZREM")
                .arg(self.active_key())
                .arg(job)
                .query_async::<()>(&mut connection)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    fn lease<'a>(
        &'a self,
        job: &'a str,
        consumer: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Leased, StateError>> {
        Box::pin(async move {
            let mut invocation = LEASE.prepare_invoke();
            for key in self.keys(job, &["state", "queue", "items", "leased", "owner"]) {
                invocation.key(key);
            }
            invocation
                .arg(consumer)
                .arg(max)
                .arg(lease.as_millis() as u64);
            let reply = array(self.run(invocation).await?)?;
            let kind = reply.first().and_then(text).unwrap_or_default();
            match kind.as_str() {
                "ended" => Ok(Leased::Ended),
                "completed" => Ok(Leased::Completed {
                    status: reply.get(1).and_then(text).unwrap_or_default(),
                }),
                "items" => {
                    let reclaimed = reply.get(1).and_then(int).unwrap_or(0).max(0) as u64;
                    let items = reply[2..]
                        .chunks_exact(3)
                        .map(|triple| {
                            Some(LeasedItem {
                                lease: LeaseRef {
                                    item: int(&triple[0])?.try_into().ok()?,
                                    token: text(&triple[1])?,
                                },
                                payload: text(&triple[2])?,
                            })
                        })
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| malformed("leased items"))?;
                    Ok(Leased::Items { items, reclaimed })
                }
                other => Err(malformed(other)),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        job: &'a str,
        items: &'a [LeaseRef],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Renewed, StateError>> {
        Box::pin(async move {
            let mut invocation = RENEW.prepare_invoke();
            for key in self.keys(job, &["state", "leased", "owner"]) {
                invocation.key(key);
            }
            invocation.arg(lease.as_millis() as u64);
            for held in items {
                invocation.arg(held.item).arg(&held.token);
            }
            let reply = array(self.run(invocation).await?)?;
            let flags: Vec<bool> = reply.iter().map(|v| int(v) == Some(1)).collect();
            let (running, held) = flags.split_first().ok_or_else(|| malformed("renewal"))?;
            Ok(Renewed {
                held: held.to_vec(),
                running: *running,
            })
        })
    }

    fn record<'a>(
        &'a self,
        job: &'a str,
        item: LeaseRef,
        outcome: Outcome,
    ) -> BoxFuture<'a, Result<Recorded, StateError>> {
        Box::pin(async move {
            let mut invocation = RECORD.prepare_invoke();
            for key in self.keys(
                job,
                &[
                    "state", "queue", "items", "leased", "owner", "seen", "done", "once", "docs",
                    "errs",
                ],
            ) {
                invocation.key(key);
            }
            invocation
                .arg(item.item)
                .arg(outcome.result_key.unwrap_or_default())
                .arg(if outcome.document.is_some() { "1" } else { "0" })
                .arg(outcome.document.unwrap_or_default())
                .arg(outcome.max_errors)
                .arg(if outcome.unstart { "1" } else { "0" })
                .arg(outcome.counts.len());
            for (name, delta) in &outcome.counts {
                invocation.arg(name).arg(*delta);
            }
            invocation.arg(outcome.errors.len());
            for error in &outcome.errors {
                invocation
                    .arg(error.once.as_deref().unwrap_or_default())
                    .arg(&error.entry);
            }
            push_items(&mut invocation, &outcome.new_items);
            let mut reply = array(self.run(invocation).await?)?.into_iter();
            let kind = reply.next().as_ref().and_then(text).unwrap_or_default();
            match kind.as_str() {
                "ended" => Ok(Recorded::Ended),
                "duplicate" => Ok(Recorded::Duplicate),
                "stored" => {
                    let document = reply.next().as_ref().and_then(int).unwrap_or(-1);
                    let completed = reply.next().as_ref().and_then(text).unwrap_or_default();
                    let state = reply.next().map(array).transpose()?.unwrap_or_default();
                    let (counters, _) = state_fields(state);
                    Ok(Recorded::Stored {
                        document: u64::try_from(document).ok(),
                        counters,
                        completed: (!completed.is_empty()).then_some(completed),
                    })
                }
                other => Err(malformed(other)),
            }
        })
    }

    fn release<'a>(
        &'a self,
        job: &'a str,
        items: &'a [LeaseRef],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            if items.is_empty() {
                return Ok(());
            }
            let mut invocation = RELEASE.prepare_invoke();
            for key in self.keys(job, &["state", "queue", "leased", "owner"]) {
                invocation.key(key);
            }
            for held in items {
                invocation.arg(held.item).arg(&held.token);
            }
            self.run(invocation).await.map(drop)
        })
    }

    fn finish<'a>(
        &'a self,
        job: &'a str,
        status: &'a str,
        reason: &'a str,
        error: Option<String>,
    ) -> BoxFuture<'a, Result<bool, StateError>> {
        Box::pin(async move {
            let mut invocation = FINISH.prepare_invoke();
            invocation
                .key(self.key(job, "state"))
                .key(self.key(job, "errs"));
            invocation
                .arg(status)
                .arg(reason)
                .arg(error.unwrap_or_default());
            Ok(int(&self.run(invocation).await?) == Some(1))
        })
    }

    fn snapshot<'a>(
        &'a self,
        job: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, StateError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("GET")
                .arg(self.key(job, "meta"))
                .cmd("HGETALL")
                .arg(self.key(job, "state"))
                .cmd("LLEN")
                .arg(self.key(job, "queue"))
                .cmd("ZCARD")
                .arg(self.key(job, "leased"));
            let mut connection = self.connection.clone();
            let (meta, state, queued, leased): (Option<String>, Vec<Value>, u64, u64) = pipe
                .query_async(&mut connection)
                .await
                .map_err(|e| self.fail(e))?;
            let Some(meta) = meta else {
                return Ok(None);
            };
            let (counters, fields) = state_fields(state);
            let Some(status) = fields.get("status").cloned() else {
                return Ok(None);
            };
            Ok(Some(JobSnapshot {
                meta,
                status,
                reason: fields.get("reason").cloned(),
                updated_at: fields
                    .get("updated_at")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                counters,
                queued,
                leased,
            }))
        })
    }

    fn documents<'a>(
        &'a self,
        job: &'a str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>, StateError>> {
        Box::pin(self.entries(job, "docs", from, to))
    }

    fn errors<'a>(
        &'a self,
        job: &'a str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Vec<String>, StateError>> {
        Box::pin(self.entries(job, "errs", from, to))
    }
}
