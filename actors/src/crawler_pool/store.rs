//! Crawl and batch job state in the state store, so any replica sharing it can answer a job's
//! status, pages and errors. One job, several keys, all under the job's Redis Cluster hash tag
//! and all expiring with the job:
//!
//! | key                    | value                                           | written by   |
//! |------------------------|-------------------------------------------------|--------------|
//! | `crawl:{ID}:job`       | [`JobRecord`] (JSON): status, counters, expiry  | the job only |
//! | `crawl:{ID}:doc:{n}`   | the n-th scraped page (LZ4 JSON), n = 0, 1, …   | the job only |
//! | `crawl:{ID}:err:{n}`   | the n-th [`JobError`] (JSON)                    | the job only |
//! | `crawl:{ID}:cancel`    | present once someone asked to cancel            | any replica  |
//! | `crawl-key:{KEY}`      | an `x-idempotency-key` already used             | any replica  |
//!
//! The job is the only writer of its record, so counters never race; a cancel from another
//! replica is a separate key the job polls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::model::Page;
use crate::ports::{StateError, StateStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Crawl,
    Batch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Scraping,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Scraping => "scraping",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// A job's status and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    /// The start URL (crawl) or the first URL (batch).
    pub url: String,
    pub status: JobStatus,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Last write by the job: its heartbeat.
    pub updated_at: u64,
    pub expires_at: u64,
    /// Pages the job will fetch (discovered and admitted so far, within the limit).
    pub total: u64,
    /// Pages finished, scraped or failed.
    pub completed: u64,
    /// Pages that failed (their errors are in the error list).
    pub failed: u64,
    /// Pages stored: `doc:0 .. doc:documents`.
    pub documents: u64,
    /// Entries stored: `err:0 .. err:errors`.
    pub errors: u64,
    /// Bytes of content fetched.
    pub bytes: u64,
    /// Pages handed to the knowledge base, and those it took (new or changed).
    pub ingest_sent: u64,
    pub ingested: u64,
    pub collection: Option<String>,
    /// Why the job stopped early (a bound, cancellation), or why it failed.
    pub end_reason: Option<String>,
}

/// One line of a job's error list, as Firecrawl's `/errors` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Unix milliseconds.
    pub timestamp: u64,
    pub url: String,
    pub kind: ErrorKind,
    /// A machine-readable code (`HTTP_500`, `ROBOTS`, `TRAP_SHAPE_VARIANTS`…).
    pub code: String,
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The page could not be scraped.
    Page,
    /// robots.txt forbids the URL.
    Robots,
    /// A trap bound or job bound stopped part of the crawl.
    Bound,
    /// The page was scraped but the knowledge base did not take it.
    Ingest,
    /// A sitemap could not be read.
    Sitemap,
    /// Webhook events were lost (the receiver fell behind).
    Webhook,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads and writes job state; cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    state: Arc<dyn StateStore>,
}

fn key(id: &str, rest: &str) -> String {
    // `{id}` is the hash tag: every key of a job lands on one Redis Cluster slot.
    format!("crawl:{{{id}}}:{rest}")
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|e| StateError::Backend(format!("encoding job state: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StateError> {
    let json = match bytes.split_first() {
        Some((&COMPRESSED, packed)) => lz4_flex::decompress_size_prepended(packed)
            .map_err(|e| StateError::Backend(format!("decompressing job state: {e}")))?,
        _ => bytes.to_vec(),
    };
    serde_json::from_slice(&json)
        .map_err(|e| StateError::Backend(format!("decoding job state: {e}")))
}

/// First byte of a compressed value; JSON never starts with it.
const COMPRESSED: u8 = 0x04;

/// Pages are most of a job's state (Markdown, ~3× smaller compressed): kept compressed, they
/// cost a third of the memory in Redis or in process.
fn encode_compressed<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    let json = encode(value)?;
    let mut packed = vec![COMPRESSED];
    packed.extend_from_slice(&lz4_flex::compress_prepend_size(&json));
    Ok(packed)
}

impl JobStore {
    pub fn new(state: Arc<dyn StateStore>) -> Self {
        Self { state }
    }

    /// Time left before the job's keys expire (at least a second, so a write never lands
    /// already expired).
    fn ttl(record: &JobRecord) -> Option<Duration> {
        let left = record.expires_at.saturating_sub(now_ms()).max(1000);
        Some(Duration::from_millis(left))
    }

    pub async fn save(&self, record: &mut JobRecord) -> Result<(), StateError> {
        record.updated_at = now_ms();
        self.state
            .set_many(
                vec![(key(&record.id, "job"), encode(record)?)],
                Self::ttl(record),
            )
            .await
    }

    /// Stores page number `record.documents` and the record counting it, in one write.
    pub async fn add_page(&self, record: &mut JobRecord, page: &Page) -> Result<(), StateError> {
        let doc = (
            key(&record.id, &format!("doc:{}", record.documents)),
            encode_compressed(page)?,
        );
        record.documents += 1;
        record.updated_at = now_ms();
        let job = (key(&record.id, "job"), encode(record)?);
        self.state.set_many(vec![doc, job], Self::ttl(record)).await
    }

    /// Stores error number `record.errors` and the record counting it.
    pub async fn add_error(
        &self,
        record: &mut JobRecord,
        error: &JobError,
    ) -> Result<(), StateError> {
        let entry = (
            key(&record.id, &format!("err:{}", record.errors)),
            encode(error)?,
        );
        record.errors += 1;
        record.updated_at = now_ms();
        let job = (key(&record.id, "job"), encode(record)?);
        self.state
            .set_many(vec![entry, job], Self::ttl(record))
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, StateError> {
        let keys = [key(id, "job")];
        match self.state.get_many(&keys).await?.pop().flatten() {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Pages `from..to` of the job, in order (expired ones are skipped).
    pub async fn pages(&self, id: &str, from: u64, to: u64) -> Result<Vec<Page>, StateError> {
        self.list(id, "doc", from, to).await
    }

    /// Errors `from..to` of the job, in order.
    pub async fn errors(&self, id: &str, from: u64, to: u64) -> Result<Vec<JobError>, StateError> {
        self.list(id, "err", from, to).await
    }

    async fn list<T: for<'de> Deserialize<'de>>(
        &self,
        id: &str,
        kind: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<T>, StateError> {
        let keys: Vec<String> = (from..to)
            .map(|n| key(id, &format!("{kind}:{n}")))
            .collect();
        self.state
            .get_many(&keys)
            .await?
            .into_iter()
            .flatten()
            .map(|bytes| decode(&bytes))
            .collect()
    }

    /// Asks the job to stop, wherever it runs.
    pub async fn request_cancel(&self, record: &JobRecord) -> Result<(), StateError> {
        self.state
            .set_many(
                vec![(key(&record.id, "cancel"), b"1".to_vec())],
                Self::ttl(record),
            )
            .await
    }

    /// Takes idempotency key `key` for `ttl`; false when some start already took it.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StateError> {
        self.state
            .set_if_absent(format!("crawl-key:{key}"), b"1".to_vec(), Some(ttl))
            .await
    }

    pub async fn release(&self, key: &str) -> Result<(), StateError> {
        self.state
            .delete(&[format!("crawl-key:{key}")])
            .await
            .map(drop)
    }

    pub async fn cancel_requested(&self, id: &str) -> Result<bool, StateError> {
        let keys = [key(id, "cancel")];
        Ok(self.state.get_many(&keys).await?.pop().flatten().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_and_plain_values_both_decode() {
        let error = JobError {
            timestamp: 1,
            url: "http://a.test/".into(),
            kind: ErrorKind::Page,
            code: "HTTP_500".into(),
            error: "the page answered HTTP 500 ".repeat(50),
        };
        let packed = encode_compressed(&error).unwrap();
        let plain = encode(&error).unwrap();
        assert!(
            packed.len() * 3 < plain.len(),
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        assert_eq!(decode::<JobError>(&packed).unwrap(), error);
        assert_eq!(decode::<JobError>(&plain).unwrap(), error);
        assert!(decode::<JobError>(&[COMPRESSED, 1, 2]).is_err());
    }
}
