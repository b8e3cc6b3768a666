//! A job's webhook: Firecrawl's `started`, `page`, `completed` and `failed` events, posted to the
//! caller's URL as `{success, type, id, webhookId, data, metadata, error?}` with `type` like
//! `crawl.page` or `batch_scrape.completed`.
//!
//! Delivery never holds up the crawl. The job hands events to a [`Notifier`] without waiting;
//! a task of its own posts them (a few at a time) and retries failures later, on the schedule
//! from settings (Firecrawl's: 1, 5 and 15 minutes). A receiver too slow to keep up loses page
//! events (counted, and noted once in the job's errors) rather than growing memory. `started`
//! goes out before any page and the terminal event after every page's first attempt, so a
//! receiver can close its books on it. Every delivery carries its own `webhookId`, the same on
//! each retry, to de-duplicate on. With `crawler.webhook_secret` set, each body is signed:
//! `X-Firecrawl-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Retries live in this process: if it stops, pending retries are lost (the job's state and
//! pages stay in the store for polling).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use super::store::{JobKind, JobStatus};
use crate::model::Page;
use crate::ports::{Fetcher, PostRequest};

/// Events a webhook can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Started,
    Page,
    Completed,
    Failed,
}

impl Event {
    pub const ALL: [Event; 4] = [Event::Started, Event::Page, Event::Completed, Event::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Page => "page",
            Event::Completed => "completed",
            Event::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }

    fn terminal(self) -> bool {
        matches!(self, Event::Completed | Event::Failed)
    }
}

/// Where and what to notify; built by the HTTP layer from Firecrawl's `webhook` option.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Webhook {
    pub url: Url,
    /// Sent with every delivery (e.g. the receiver's own auth).
    pub headers: Vec<(String, String)>,
    /// Echoed in every payload's `metadata`.
    pub metadata: serde_json::Map<String, Value>,
    /// The events wanted; all when the request named none.
    pub events: Vec<Event>,
}

/// How deliveries behave (from the crawler's settings).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// A receiver must answer within this.
    pub timeout: Duration,
    /// Waits before each retry of a failed delivery; its length is the number of retries.
    pub retry_delays: Vec<Duration>,
    /// Events waiting per job; beyond it page events are dropped.
    pub queue: usize,
    /// First attempts in flight per job.
    pub concurrency: usize,
    /// Signs bodies (`X-Firecrawl-Signature`) when set.
    pub secret: Option<String>,
    pub user_agent: String,
    /// A stored page as the API shows it (the same document `GET /v1/crawl/{id}` returns); the
    /// HTTP layer plugs its own in.
    pub render: fn(&Page) -> Value,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_delays: [60, 300, 900].map(Duration::from_secs).to_vec(),
            queue: 1024,
            concurrency: 4,
            secret: None,
            user_agent: "AuroraBot".to_string(),
            render: |page| serde_json::to_value(page).unwrap_or(Value::Null),
        }
    }
}

/// One payload, serialised once and posted as often as it takes.
struct Delivery {
    event: Event,
    body: Arc<Vec<u8>>,
}

/// The job's side: hands events over without waiting.
pub(crate) struct Notifier {
    webhook: Arc<Webhook>,
    job: String,
    /// `crawl` or `batch_scrape`, the prefix of every event type.
    family: &'static str,
    /// Bounded (see the module doc); the sending task owns the receiver.
    tx: mpsc::Sender<Delivery>,
    /// Page events lost because the receiver fell behind.
    pub dropped: u64,
    render: fn(&Page) -> Value,
    /// The sending task, until [`Notifier::open`] spawns it: events queue meanwhile.
    idle: Option<(Sender, mpsc::Receiver<Delivery>)>,
}

impl Notifier {
    /// The notifier of job `job`; nothing is posted before [`Notifier::open`], so a job that
    /// fails to be created announces nothing.
    pub fn new(
        fetcher: Arc<dyn Fetcher>,
        config: DeliveryConfig,
        shutdown: CancellationToken,
        webhook: Webhook,
        job: String,
        kind: JobKind,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let render = config.render;
        let webhook = Arc::new(webhook);
        let sender = Sender {
            fetcher,
            config: Arc::new(config),
            webhook: webhook.clone(),
            shutdown,
        };
        Self {
            webhook,
            job,
            family: match kind {
                JobKind::Crawl => "crawl",
                JobKind::Batch => "batch_scrape",
            },
            tx,
            dropped: 0,
            render,
            idle: Some((sender, rx)),
        }
    }

    /// Starts posting, in the order events were handed over.
    pub fn open(&mut self) {
        if let Some((sender, rx)) = self.idle.take() {
            tokio::spawn(sender.run(rx));
        }
    }

    pub fn started(&mut self) {
        self.push(Event::Started, true, Vec::new(), None);
    }

    pub fn page(&mut self, page: &Page) {
        let document = (self.render)(page);
        self.push(Event::Page, true, vec![document], None);
    }

    /// A page that could not be scraped: a `page` event with `success: false`.
    pub fn page_failed(&mut self, url: &Url, error: &str) {
        let data = vec![
            json!({ "metadata": { "url": url.as_str(), "sourceURL": url.as_str(), "error": error } }),
        ];
        self.push(Event::Page, false, data, Some(error));
    }

    /// The job ended: `completed`, or `failed` (with why) when it failed or was cancelled.
    pub fn finish(mut self, status: JobStatus, reason: Option<&str>) {
        self.open();
        let (event, success) = match status {
            JobStatus::Completed | JobStatus::Scraping => (Event::Completed, true),
            JobStatus::Failed | JobStatus::Cancelled => (Event::Failed, false),
        };
        let error = (!success).then(|| reason.unwrap_or(status.as_str()));
        let Some(delivery) = self.payload(event, success, Vec::new(), error) else {
            return;
        };
        // Waits for room off the job's path; dropping the sender then ends the task.
        let tx = self.tx;
        tokio::spawn(async move {
            let _ = tx.send(delivery).await;
        });
    }

    fn push(&mut self, event: Event, success: bool, data: Vec<Value>, error: Option<&str>) {
        let Some(delivery) = self.payload(event, success, data, error) else {
            return;
        };
        if self.tx.try_send(delivery).is_err() {
            self.dropped += 1;
            count(event, "dropped");
        }
    }

    /// The payload of `event`, or `None` when the webhook did not ask for it.
    fn payload(
        &self,
        event: Event,
        success: bool,
        data: Vec<Value>,
        error: Option<&str>,
    ) -> Option<Delivery> {
        if !self.webhook.events.contains(&event) {
            return None;
        }
        let mut body = json!({
            "success": success,
            "type": format!("{}.{}", self.family, event.as_str()),
            "id": self.job,
            "webhookId": uuid::Uuid::new_v4().to_string(),
            "data": data,
            "metadata": self.webhook.metadata,
        });
        if let (Some(error), Some(fields)) = (error, body.as_object_mut()) {
            fields.insert("error".to_string(), Value::String(error.to_string()));
        }
        let body = serde_json::to_vec(&body).ok()?;
        Some(Delivery {
            event,
            body: Arc::new(body),
        })
    }
}

/// The delivery task's side.
#[derive(Clone)]
struct Sender {
    fetcher: Arc<dyn Fetcher>,
    config: Arc<DeliveryConfig>,
    webhook: Arc<Webhook>,
    /// Process shutdown: pending retries are abandoned.
    shutdown: CancellationToken,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Delivery>) {
        // First attempts in flight; retries run detached so they never hold up later events.
        let mut first_attempts = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        while let Some(delivery) = rx.recv().await {
            if delivery.event.terminal() {
                while first_attempts.join_next().await.is_some() {}
                self.deliver(delivery).await;
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let sender = self.clone();
            first_attempts.spawn(async move {
                sender.deliver(delivery).await;
                drop(slot);
            });
            while first_attempts.try_join_next().is_some() {}
        }
        while first_attempts.join_next().await.is_some() {}
    }

    /// The first attempt; when it fails, the retries are scheduled in a task of their own.
    async fn deliver(&self, delivery: Delivery) {
        if self.attempt(&delivery, 0).await {
            return;
        }
        let sender = self.clone();
        tokio::spawn(async move {
            for (n, delay) in sender.config.retry_delays.iter().enumerate() {
                tokio::select! {
                    () = sender.shutdown.cancelled() => return,
                    () = tokio::time::sleep(*delay) => {}
                }
                if sender.attempt(&delivery, n + 1).await {
                    return;
                }
            }
            count(delivery.event, "gave_up");
            tracing::warn!(url = %sender.webhook.url, event = delivery.event.as_str(),
                "webhook delivery gave up after every retry");
        });
    }

    /// One post; true when the receiver took it (2xx).
    async fn attempt(&self, delivery: &Delivery, attempt: usize) -> bool {
        let span = tracing::debug_span!("webhook", url = %self.webhook.url,
            event = delivery.event.as_str(), attempt);
        self.post(delivery).instrument(span).await
    }

    async fn post(&self, delivery: &Delivery) -> bool {
        let mut headers = self.webhook.headers.clone();
        headers.push(("User-Agent".to_string(), self.config.user_agent.clone()));
        if let Some(secret) = &self.config.secret {
            headers.push((
                "X-Firecrawl-Signature".to_string(),
                sign(secret, &delivery.body),
            ));
        }
        let request = PostRequest {
            url: self.webhook.url.clone(),
            headers,
            body: delivery.body.clone(),
            timeout: self.config.timeout,
        };
        let started = Instant::now();
        let result = self.fetcher.post(request).await;
        metrics::histogram!("aurora_webhook_delivery_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(status) if (200..300).contains(&status) => {
                count(delivery.event, "delivered");
                true
            }
            Ok(status) => {
                count(delivery.event, "failed_attempt");
                tracing::debug!(status, "webhook receiver refused the delivery");
                false
            }
            Err(e) => {
                count(delivery.event, "failed_attempt");
                tracing::debug!(error = %e, "webhook delivery failed");
                false
            }
        }
    }
}

fn count(event: Event, outcome: &'static str) {
    metrics::counter!("aurora_webhook_deliveries_total",
        "event" => event.as_str(), "outcome" => outcome)
    .increment(1);
}

/// `sha256=<hex>`: Firecrawl's signature header value.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so building one cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn events_parse_by_name() {
        assert_eq!(Event::parse("page"), Some(Event::Page));
        assert_eq!(Event::parse("crawl.page"), None);
        assert!(
            Event::ALL
                .iter()
                .all(|e| Event::parse(e.as_str()) == Some(*e))
        );
    }
}
