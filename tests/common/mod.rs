//! Test harness: the whole application on ephemeral ports (`spawn_app`), and a small real web
//! site on localhost for it to scrape (`site`).
#![allow(dead_code)] // each test binary uses its own subset

pub mod crawl_site;
pub mod llm_server;
pub mod site;
pub mod trap;
pub mod webhook_sink;
pub mod whisper_api;

use std::path::Path;
use std::time::Duration;

use aurora::settings::Settings;
use aurora::startup::{Application, RunError};
use aurora_actors::Handles;
use aurora_actors::session::{Principal, Role};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The bootstrap admin's password in tests.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// Which listener a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Core,
    Crawler,
}

/// A JSON string's text; a test fails plainly when the value is not a string.
pub fn text(value: &serde_json::Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
}

pub struct TestApp {
    /// The app's own data folder (embedded stores), removed with it.
    pub data: std::sync::Arc<tempfile::TempDir>,
    pub core: String,
    pub crawler: String,
    /// Sends an admin API key with every request (what most tests need).
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    /// The admin API key `client` sends.
    pub admin_key: String,
    pub handles: Handles,
    stop: Option<oneshot::Sender<()>>,
    running: JoinHandle<Result<(), RunError>>,
}

/// The test configuration: `config/default.toml` + `config/test.toml` (ports 0, loopback,
/// 127.0.0.1 allowed through the SSRF guard, fast restarts).
pub fn test_settings() -> Settings {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let figment = Settings::figment(&dir, Some("test")).expect("test config exists");
    let mut settings = Settings::from_figment(figment).expect("test config is valid");
    settings.auth.admin_password = ADMIN_PASSWORD.to_string();
    settings
}

/// The URL of a service `scripts/test` started (Redis, ChromaDB).
pub fn service_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test, which starts Redis and ChromaDB")
    })
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let data = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(data, tweak).await
}

/// An app over an existing data folder (to restart on what an earlier app stored).
pub async fn spawn_app_in(
    data: std::sync::Arc<tempfile::TempDir>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings();
    settings.data_dir = data.path().to_path_buf();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    settings.embedding.model_dir = models.join("all-minilm-l6-v2");
    settings.embedding.int8_model_dir = models.join("all-minilm-l6-v2-int8");
    settings.embedding.onnxruntime = models.join("onnxruntime/libonnxruntime.so.1.31.1");
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let core = format!("http://{}", app.core_addr());
    let crawler = format!("http://{}", app.crawler_addr());
    let handles = app.handles();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    // With the state store down (tests of outages) no key can be made; public routes still work.
    let admin_key = try_create_key(&handles, "test-admin", Role::Admin)
        .await
        .unwrap_or_else(|| "aur_unavailable".to_string());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {admin_key}").parse().expect("header value"),
    );
    TestApp {
        data,
        core,
        crawler,
        client: reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .expect("test client"),
        anonymous: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("test client"),
        admin_key,
        handles,
        stop: Some(stop),
        running,
    }
}

/// An API key with `role`, made directly through the session pool (as an admin would).
pub async fn create_key(handles: &Handles, name: &str, role: Role) -> String {
    try_create_key(handles, name, role)
        .await
        .expect("API key created")
}

async fn try_create_key(handles: &Handles, name: &str, role: Role) -> Option<String> {
    let session = handles.session();
    let created = session.create_key(name.to_string(), role, None, Principal::open());
    Some(created.await.ok()?.key)
}

impl TestApp {
    pub fn url(&self, port: Port, path: &str) -> String {
        match port {
            Port::Core => format!("{}{path}", self.core),
            Port::Crawler => format!("{}{path}", self.crawler),
        }
    }

    pub async fn get(&self, port: Port, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(port, path))
            .send()
            .await
            .expect("request sent")
    }

    /// Firecrawl's `POST /v1/scrape` on the crawler port: (status, JSON answer).
    pub async fn scrape(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.post_json(Port::Crawler, "/v1/scrape", body).await
    }

    /// GETs `path` and reads its JSON answer (any status).
    pub async fn get_json(&self, port: Port, path: &str) -> serde_json::Value {
        let text = self.get(port, path).await.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// POSTs `body` verbatim (it may be malformed on purpose) as JSON.
    pub async fn post_raw(
        &self,
        port: Port,
        path: &str,
        body: impl Into<String>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(port, path))
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs a JSON value and returns the status and the parsed JSON answer.
    pub async fn post_json(
        &self,
        port: Port,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self.post_raw(port, path, body.to_string()).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, json)
    }

    /// The value of one series in `/metrics`, e.g. `aurora_actor_restarts_total{actor="router"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get(Port::Core, "/metrics").await.text().await.ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Polls until `series` reaches `value` (restarts happen after a backoff).
    pub async fn wait_for_metric(&self, series: &str, value: f64) {
        for _ in 0..500 {
            if self.metric(series).await == Some(value) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{series} never reached {value}; last seen {:?}",
            self.metric(series).await
        );
    }

    pub async fn wait_ready(&self) {
        for _ in 0..500 {
            if self.get(Port::Core, "/ready").await.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never became ready");
    }

    /// Asks for a clean shutdown and returns how the application ended.
    pub async fn shutdown(mut self) -> Result<(), RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.running).await.expect("run task")
    }

    /// Waits for the application to stop on its own (escalation).
    pub async fn stopped(mut self) -> Result<(), RunError> {
        tokio::time::timeout(Duration::from_secs(10), &mut self.running)
            .await
            .expect("application stops on its own")
            .expect("run task")
    }
}

/// Serves `routes` on `listener` until the returned sender is dropped (the test's server stops
/// with the value holding it).
pub fn serve_until_dropped<F>(
    listener: tokio::net::TcpListener,
    routes: F,
) -> tokio::sync::oneshot::Sender<()>
where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    stop
}
