//! Redis: the `StateStore` port (caches with TTL, counter sets, sets, compare-and-swap, rate
//! limits) and its `/ready` probe.
//!
//! One lazy `ConnectionManager` per process: Aurora starts even when Redis is down, reconnects on
//! its own, and every call has a response timeout. Keys are `{prefix}:{logical key}`. What must be
//! one atomic step across replicas (compare-and-swap, a windowed counter, a GCRA decision) is one
//! Lua script touching one key, so it also runs unchanged on Redis Cluster.

use std::sync::LazyLock;
use std::time::Duration;

use aurora_actors::ports::{HealthCheck, Quota, StateError, StateStore, Throttle};
use futures::future::BoxFuture;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// `replace_if`: SET only when the current value is exactly the expected one.
static REPLACE_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        if ARGV[3] == '' then
            redis.call('SET', KEYS[1], ARGV[2])
        else
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        end
        return 1",
    )
});

/// `increment`: a counter whose window starts with its first increment.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local value = redis.call('INCRBY', KEYS[1], ARGV[1])
        local left = redis.call('PTTL', KEYS[1])
        if left < 0 then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            left = tonumber(ARGV[2])
        end
        return {value, left}",
    )
});

/// GCRA (the generic cell rate algorithm), as governor does it in process. The key holds the
/// theoretical arrival time (TAT) in microseconds of Redis' clock, so replicas with skewed
/// clocks still agree. ARGV: emission interval (µs), limit (burst), cost.
/// Returns {allowed, remaining, retry_after_us, reset_after_us}.
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local interval = tonumber(ARGV[1])
        local limit = tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local tolerance = interval * limit
        local tat = tonumber(redis.call('GET', KEYS[1]) or now)
        if tat < now then tat = now end
        local new_tat = tat + interval * cost
        local slack = now - (new_tat - tolerance)
        if slack < 0 then
            return {0, 0, -slack, tat - now}
        end
        redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
        return {1, math.floor(slack / interval), 0, new_tat - now}",
    )
});

pub struct RedisState {
    connection: ConnectionManager,
    prefix: String,
    /// The URL without its password, for messages.
    shown: String,
}

impl RedisState {
    /// Does not connect yet: the first command (or `/ready`) does.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let shown = match url::Url::parse(url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                parsed.to_string()
            }
            Err(_) => "redis".to_string(),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let client = redis::Client::open(url)?;
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: prefix.to_string(),
            shown,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// `SADD` or `SREM` of `members` (nothing to send for none).
    async fn set_command(
        &self,
        command: &str,
        key: &str,
        members: &[String],
    ) -> Result<(), StateError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        redis::cmd(command)
            .arg(self.key(key))
            .arg(members)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| self.error(e))
    }

    fn error(&self, error: redis::RedisError) -> StateError {
        classify(&self.shown, error)
    }

    /// The job queue on the same connection (and key prefix).
    pub fn jobs(&self) -> super::redis_jobs::RedisJobs {
        super::redis_jobs::RedisJobs::new(self.connection.clone(), &self.prefix, &self.shown)
    }

    /// The lexical index on the same connection (and key prefix), caching up to `cache_bytes`
    /// of posting lists in this process.
    pub fn lexical(&self, cache_bytes: usize) -> super::redis_lexical::RedisLexical {
        super::redis_lexical::RedisLexical::new(
            self.connection.clone(),
            &self.prefix,
            &self.shown,
            cache_bytes,
        )
    }
}

/// Unreachable (callers pause and retry) versus a real failure, naming the server.
pub(super) fn classify(shown: &str, error: redis::RedisError) -> StateError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        // A restarted Redis answers LOADING while it replays its append-only file.
        || error.code() == Some("LOADING")
    {
        StateError::Unavailable(format!("{shown}: {error}"))
    } else {
        StateError::Backend(format!("{shown}: {error}"))
    }
}

impl StateStore for RedisState {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, StateError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
            let mut connection = self.connection.clone();
            redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            for (key, value) in entries {
                let command = pipe.cmd("SET").arg(self.key(&key)).arg(value);
                if let Some(ttl) = ttl {
                    command.arg("PX").arg(ttl.as_millis().max(1) as u64);
                }
                command.ignore();
            }
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn set_if_absent(
        &self,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, StateError>> {
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            command.arg(self.key(&key)).arg(value).arg("NX");
            if let Some(ttl) = ttl {
                command.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            let mut connection = self.connection.clone();
            // `SET … NX` answers OK when it stored the value and nil when the key was taken.
            let reply: Option<String> = command
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            Ok(reply.is_some())
        })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, StateError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(0);
            }
            let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
            let mut connection = self.connection.clone();
            redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn add_counts<'a>(
        &'a self,
        key: &'a str,
        deltas: &'a [(String, i64)],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            if deltas.is_empty() {
                return Ok(());
            }
            let key = self.key(key);
            let mut pipe = redis::pipe();
            for (field, delta) in deltas {
                pipe.cmd("HINCRBY")
                    .arg(&key)
                    .arg(field)
                    .arg(*delta)
                    .ignore();
            }
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn get_counts<'a>(
        &'a self,
        key: &'a str,
        fields: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StateError>> {
        Box::pin(async move {
            if fields.is_empty() {
                return Ok(Vec::new());
            }
            let mut connection = self.connection.clone();
            let counts: Vec<Option<i64>> = redis::cmd("HMGET")
                .arg(self.key(key))
                .arg(fields)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            Ok(counts.into_iter().map(|c| c.unwrap_or(0)).collect())
        })
    }

    fn replace_if(
        &self,
        key: String,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, StateError>> {
        Box::pin(async move {
            let ttl = ttl.map_or(String::new(), |t| (t.as_millis().max(1) as u64).to_string());
            let mut connection = self.connection.clone();
            let replaced: i64 = REPLACE_IF
                .key(self.key(&key))
                .arg(expected)
                .arg(new)
                .arg(ttl)
                .invoke_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            Ok(replaced == 1)
        })
    }

    fn set_add<'a>(
        &'a self,
        key: &'a str,
        members: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.set_command("SADD", key, members))
    }

    fn set_remove<'a>(
        &'a self,
        key: &'a str,
        members: &'a [String],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(self.set_command("SREM", key, members))
    }

    fn set_members<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<String>, StateError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("SMEMBERS")
                .arg(self.key(key))
                .query_async(&mut connection)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn increment(
        &self,
        key: String,
        by: i64,
        window: Duration,
    ) -> BoxFuture<'_, Result<(i64, Duration), StateError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let (value, left_ms): (i64, i64) = INCREMENT
                .key(self.key(&key))
                .arg(by)
                .arg(window.as_millis().max(1) as u64)
                .invoke_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            Ok((value, Duration::from_millis(left_ms.max(0) as u64)))
        })
    }

    fn throttle(
        &self,
        key: String,
        quota: Quota,
        cost: u32,
    ) -> BoxFuture<'_, Result<Throttle, StateError>> {
        Box::pin(async move {
            let interval = (quota.interval().as_micros() as u64).max(1);
            let mut connection = self.connection.clone();
            let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = GCRA
                .key(self.key(&key))
                .arg(interval)
                .arg(quota.limit.max(1))
                .arg(cost.max(1))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| self.error(e))?;
            let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
            Ok(Throttle {
                allowed: allowed == 1,
                limit: quota.limit,
                remaining: remaining.clamp(0, i64::from(quota.limit)) as u32,
                retry_after: micros(retry_us),
                reset_after: micros(reset_us),
            })
        })
    }
}

impl HealthCheck for RedisState {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let pong: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|e| format!("{}: {e}", self.shown))?;
            match pong.as_str() {
                "PONG" => Ok(()),
                other => Err(format!("{}: PING answered {other:?}", self.shown)),
            }
        })
    }
}
