//! Redis. For now only its readiness probe; the state store port lands with the knowledge base.

use aurora_actors::ports::HealthCheck;
use futures::future::BoxFuture;

pub struct RedisProbe {
    client: redis::Client,
    /// The URL without its password, for messages.
    shown: String,
}

impl RedisProbe {
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let shown = match url::Url::parse(url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                }
                parsed.to_string()
            }
            Err(_) => "redis".to_string(),
        };
        Ok(Self {
            client: redis::Client::open(url)?,
            shown,
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
                .map_err(|e| format!("cannot connect to {}: {e}", self.shown))?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|e| format!("PING to {} failed: {e}", self.shown))?;
            match pong.as_str() {
                "PONG" => Ok(()),
                other => Err(format!("PING answered {other:?}")),
            }
        })
    }
}
