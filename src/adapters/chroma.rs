//! ChromaDB (v2 REST API). For now only its readiness probe; the vector store port lands with the
//! knowledge base.

use std::time::Duration;

use aurora_actors::ports::HealthCheck;
use futures::future::BoxFuture;

pub struct ChromaProbe {
    heartbeat: url::Url,
    client: reqwest::Client,
}

impl ChromaProbe {
    pub fn new(base: &str) -> Result<Self, String> {
        let base = url::Url::parse(base).map_err(|e| e.to_string())?;
        let heartbeat = base.join("api/v2/heartbeat").map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { heartbeat, client })
    }
}

impl HealthCheck for ChromaProbe {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let response = self
                .client
                .get(self.heartbeat.clone())
                .send()
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.heartbeat))?;
            match response.status().is_success() {
                true => Ok(()),
                false => Err(format!("heartbeat answered {}", response.status())),
            }
        })
    }
}
