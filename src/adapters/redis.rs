//! Redis. For now only its readiness probe; the state store port lands with the knowledge base.

use aurora_actors::ports::HealthCheck;
use futures::future::BoxFuture;

pub struct RedisProbe {
    client: redis::Client,
}

impl RedisProbe {
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
        })
    }
}

impl HealthCheck for RedisProbe {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut connection = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|e| format!("PING failed: {e}"))?;
            match pong.as_str() {
                "PONG" => Ok(()),
                other => Err(format!("PING answered {other:?}")),
            }
        })
    }
}
