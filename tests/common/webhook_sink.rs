//! A webhook receiver on 127.0.0.1:0 that keeps every delivery (headers and JSON body, in arrival
//! order) and answers 500 to the first `failures` of them, so retries can be watched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    /// The exact bytes, for signature checks.
    pub raw: Vec<u8>,
    pub body: Value,
    /// What the receiver answered.
    pub accepted: bool,
}

pub struct WebhookSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _stop: oneshot::Sender<()>,
}

impl WebhookSink {
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("sink lock").clone()
    }

    /// Waits until `done` holds for what has arrived (or panics after ~60 s).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..3000 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("webhook sink never saw {what}: {:#?}", self.received());
    }
}

pub async fn spawn_webhook_sink(failures: usize) -> WebhookSink {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = received.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let routes = warp::path("hook")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |headers: HeaderMap, raw: bytes::Bytes| {
            let accepted = count.fetch_add(1, Ordering::SeqCst) >= failures;
            let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            log.lock().expect("sink lock").push(Received {
                headers,
                raw: raw.to_vec(),
                body,
                accepted,
            });
            let status = match accepted {
                true => StatusCode::OK,
                false => StatusCode::INTERNAL_SERVER_ERROR,
            };
            warp::reply::with_status("", status)
        });
    let stop = super::serve_until_dropped(listener, routes);
    WebhookSink {
        addr,
        received,
        _stop: stop,
    }
}
