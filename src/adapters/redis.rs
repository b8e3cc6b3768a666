//! Redis: the `StateStore` port (caches with TTL, counter sets) and its `/ready` probe.
//!
//! One lazy `ConnectionManager` per process: Aurora starts even when Redis is down, reconnects on
//! its own, and every call has a response timeout. Keys are `{prefix}:{logical key}`.

use std::time::Duration;

use aurora_actors::ports::{HealthCheck, StateError, StateStore};
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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

    fn error(&self, error: redis::RedisError) -> StateError {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
        {
            StateError::Unavailable(format!("{}: {error}", self.shown))
        } else {
            StateError::Backend(format!("{}: {error}", self.shown))
        }
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
