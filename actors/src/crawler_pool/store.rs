//! Crawl and batch job state, kept as durable work in the [`JobQueue`] port so that any replica
//! can run, answer for and cancel any job. This module owns the encodings: the job's `meta`
//! ([`JobMeta`]: its record's fixed fields and the spec every replica works from), each work
//! item's payload ([`Work`]), stored pages (LZ4-compressed JSON) and error entries (JSON). The
//! record a client sees ([`JobRecord`]) is assembled from the meta, the status and the counters
//! the queue keeps. Idempotency keys (`crawl-key:{KEY}`) and the progress of long items
//! (`job-progress:{id}`, a set of URLs, and `job-progress:{id}:{url}`) live in the state store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use url::Url;

use crate::model::{Page, TranscriptionProgress};
use crate::ports::{
    JOB_RUNNING, JobQueue, JobSnapshot, NewError, NewItem, NewJob, StateError, StateStore,
};

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
            JobStatus::Scraping => JOB_RUNNING,
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(status: &str) -> JobStatus {
        match status {
            JOB_RUNNING => JobStatus::Scraping,
            "completed" => JobStatus::Completed,
            "cancelled" => JobStatus::Cancelled,
            _ => JobStatus::Failed,
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
    /// Items under way that report how far they have got: long recordings being transcribed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<ItemProgress>,
}

/// How far one item of a job has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemProgress {
    pub url: String,
    pub transcription: TranscriptionProgress,
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

/// A job's fixed description: what its record shows and the spec every replica works from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobMeta {
    pub id: String,
    pub kind: JobKind,
    pub url: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub collection: Option<String>,
    pub spec: super::JobSpec,
}

/// One work item of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Work {
    /// Fetch a page; `hops` links from the start, `run` pages of one shape in a row (traps).
    Page { url: Url, hops: usize, run: usize },
    /// Read the site's sitemaps and queue what they list.
    Sitemaps { start: Url },
}

impl Work {
    /// A frontier candidate: queued if `key` is new to the job.
    pub fn item(&self, key: String, counted: bool) -> Result<NewItem, StateError> {
        Ok(NewItem {
            key,
            payload: serde_json::to_string(self)
                .map_err(|e| StateError::Backend(format!("encoding a work item: {e}")))?,
            counted,
        })
    }
}

/// The set of job ids `recent` lists (every replica adds its jobs to it).
const RECENT_JOBS: &str = "crawl:recent";

/// Reads and writes job state; cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    pub(crate) queue: Arc<dyn JobQueue>,
    state: Arc<dyn StateStore>,
}

impl JobStore {
    pub fn new(queue: Arc<dyn JobQueue>, state: Arc<dyn StateStore>) -> Self {
        Self { queue, state }
    }

    pub(crate) async fn create(
        &self,
        meta: &JobMeta,
        items: Vec<NewItem>,
    ) -> Result<(), StateError> {
        self.queue
            .create(NewJob {
                id: meta.id.clone(),
                meta: encode_text(meta)?,
                limit: meta.spec.limit as u64,
                expires_at: meta.expires_at,
                items,
            })
            .await?;
        // The index the web interface lists jobs from; trimmed of expired jobs as it is read.
        self.state
            .set_add(RECENT_JOBS, std::slice::from_ref(&meta.id))
            .await
    }

    /// The newest `max` jobs still stored (running or ended), newest first. Jobs that expired
    /// are dropped from the index on the way.
    pub async fn recent(&self, max: usize) -> Result<Vec<JobRecord>, StateError> {
        let ids = self.state.set_members(RECENT_JOBS).await?;
        let mut records = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for id in ids {
            match self.get(&id).await? {
                Some(record) => records.push(record),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            self.state.set_remove(RECENT_JOBS, &gone).await?;
        }
        records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        records.truncate(max);
        Ok(records)
    }

    /// The job's description and its snapshot, or `None` when unknown or expired.
    pub(crate) async fn load(
        &self,
        id: &str,
    ) -> Result<Option<(JobMeta, JobSnapshot)>, StateError> {
        let Some(snapshot) = self.queue.snapshot(id).await? else {
            return Ok(None);
        };
        let meta: JobMeta = decode(snapshot.meta.as_bytes())?;
        Ok(Some((meta, snapshot)))
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, StateError> {
        let Some((meta, snapshot)) = self.load(id).await? else {
            return Ok(None);
        };
        let mut record = record(&meta, &snapshot);
        if record.status == JobStatus::Scraping {
            record.progress = self.progress(id).await?;
        }
        Ok(Some(record))
    }

    /// Records how far the item fetching `url` has got, until [`JobStore::done_with`].
    pub(crate) async fn report(
        &self,
        id: &str,
        url: &str,
        progress: &TranscriptionProgress,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let entry = ItemProgress {
            url: url.to_string(),
            transcription: *progress,
        };
        self.state
            .set_add(&progress_key(id), &[url.to_string()])
            .await?;
        self.state
            .set_many(vec![(progress_key_of(id, url), encode(&entry)?)], Some(ttl))
            .await
    }

    /// Forgets the progress of the item fetching `url`: it is done (or given back).
    pub(crate) async fn done_with(&self, id: &str, url: &str) -> Result<(), StateError> {
        self.state
            .set_remove(&progress_key(id), &[url.to_string()])
            .await?;
        self.state
            .delete(&[progress_key_of(id, url)])
            .await
            .map(drop)
    }

    /// Every progress report of the job's items under way, by URL.
    async fn progress(&self, id: &str) -> Result<Vec<ItemProgress>, StateError> {
        let mut urls = self.state.set_members(&progress_key(id)).await?;
        if urls.is_empty() {
            return Ok(Vec::new());
        }
        urls.sort();
        let keys: Vec<String> = urls.iter().map(|url| progress_key_of(id, url)).collect();
        let values = self.state.get_many(&keys).await?;
        // An entry that expired (its replica died mid-item) is simply not shown.
        values
            .into_iter()
            .flatten()
            .map(|bytes| decode(&bytes))
            .collect()
    }

    /// Pages `from..to` of the job, in order (expired ones are skipped).
    pub async fn pages(&self, id: &str, from: u64, to: u64) -> Result<Vec<Page>, StateError> {
        self.queue
            .documents(id, from, to)
            .await?
            .iter()
            .map(|bytes| decode(bytes))
            .collect()
    }

    /// Errors `from..to` of the job, in order.
    pub async fn errors(&self, id: &str, from: u64, to: u64) -> Result<Vec<JobError>, StateError> {
        self.queue
            .errors(id, from, to)
            .await?
            .iter()
            .map(|entry| decode(entry.as_bytes()))
            .collect()
    }

    /// Ends a running job (cancel, a bound), recording why; false if it had ended already.
    pub async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        reason: &str,
        error: Option<&JobError>,
    ) -> Result<bool, StateError> {
        let error = error.map(encode_text).transpose()?;
        self.queue.finish(id, status.as_str(), reason, error).await
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
}

/// The record clients see, from the job's description and the queue's counters.
pub(crate) fn record(meta: &JobMeta, snapshot: &JobSnapshot) -> JobRecord {
    let count = |name: &str| snapshot.counters.get(name).copied().unwrap_or(0).max(0) as u64;
    let admitted = count("admitted").saturating_sub(count("robots_blocked"));
    JobRecord {
        id: meta.id.clone(),
        kind: meta.kind,
        url: meta.url.clone(),
        status: JobStatus::parse(&snapshot.status),
        created_at: meta.created_at,
        updated_at: snapshot.updated_at,
        expires_at: meta.expires_at,
        total: admitted.min(meta.spec.limit as u64),
        completed: count("completed"),
        failed: count("failed"),
        documents: count("documents"),
        errors: count("errors"),
        bytes: count("bytes"),
        ingest_sent: count("ingest_sent"),
        ingested: count("ingested"),
        collection: meta.collection.clone(),
        end_reason: snapshot.reason.clone(),
        progress: Vec::new(),
    }
}

fn progress_key(id: &str) -> String {
    format!("job-progress:{id}")
}

fn progress_key_of(id: &str, url: &str) -> String {
    format!("job-progress:{id}:{url}")
}

/// An error entry as the queue stores it.
pub(crate) fn new_error(error: &JobError, once: Option<String>) -> Result<NewError, StateError> {
    Ok(NewError {
        once,
        entry: encode_text(error)?,
    })
}

fn encode_text<T: Serialize>(value: &T) -> Result<String, StateError> {
    serde_json::to_string(value)
        .map_err(|e| StateError::Backend(format!("encoding job state: {e}")))
}

/// A page as stored: compressed, a third of the bytes in Redis or in process.
pub(crate) fn encode_page(page: &Page) -> Result<Vec<u8>, StateError> {
    encode_compressed(page)
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

fn encode_compressed<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    let json = encode(value)?;
    let mut packed = vec![COMPRESSED];
    packed.extend_from_slice(&lz4_flex::compress_prepend_size(&json));
    Ok(packed)
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
