//! [`MemoryJobs`]: the in-process [`JobQueue`] — the embedded default and the actor-test backend.
//! The same semantics as the Redis queue (one conformance suite runs against both), kept in one
//! map under one lock: every operation is a few map updates, never I/O-bound work.
//!
//! Opened with [`MemoryJobs::open`], the queue is durable: every change that matters after a
//! restart (a job created, a result recorded, a job ended or retired) is appended to a journal
//! under the data directory and replayed on start. Leases are deliberately not journaled: after a
//! restart no consumer of the old process exists, so a leased item is simply queued again, which
//! is exactly what replaying without its lease yields (counters included). Appends reach the OS at
//! once and the disk at least every second (like Redis' `appendfsync everysec`): a killed process
//! loses nothing, a power cut at most the last second, and the journal stays a consistent prefix.
//! The journal is rewritten from the live state when it is opened, dropping expired jobs.
//!
//! Documents (the crawled pages, most of a job's bytes) do not stay in memory in a durable queue:
//! each is appended to a documents file beside the journal and only its place is kept, so a
//! process that crawls all day keeps a flat footprint. The documents file is rewritten with the
//! journal, under a new name that the new journal records, so the switch is one atomic rename.
//! Expired jobs leave memory at the next job creation.
//!
//! Size: one file on purpose. It follows the Redis queue (`aurora::adapters::redis_jobs`) operation
//! by operation, and the journal replays exactly those operations; each operation and its replay
//! sit side by side.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ports::{
    JOB_RUNNING, JobQueue, JobSnapshot, LeaseRef, Leased, LeasedItem, NewItem, NewJob, Outcome,
    Recorded, Renewed, StateError,
};

/// At most this long between an append and its fsync.
const SYNC_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct MemoryJobs {
    /// Everything, under one lock: each operation is short and must be atomic as a whole.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Active job ids in the order they were created.
    active: Vec<String>,
    /// Distinguishes leases of one item over time.
    lease_seq: u64,
    journal: Option<Journal>,
    /// Where documents go in a durable queue; without one they stay in memory.
    documents: Option<Documents>,
    /// The documents file the replayed journal named.
    documents_file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Job {
    meta: String,
    limit: u64,
    expires_at: u64,
    status: String,
    reason: Option<String>,
    updated_at: u64,
    counters: BTreeMap<String, i64>,
    seq: u64,
    /// Payloads of queued and leased items.
    items: HashMap<u64, String>,
    queue: VecDeque<u64>,
    /// Item → (token, deadline in Unix ms). Never journaled (see the module doc).
    #[serde(skip)]
    leased: HashMap<u64, (String, u64)>,
    seen: HashSet<String>,
    done: HashSet<String>,
    once: HashSet<String>,
    /// Each document, or where it is in the documents file (see [`DocRef`]).
    documents: Vec<Vec<u8>>,
    errors: Vec<String>,
}

/// One journal record: a change replayed in order on start.
#[derive(Serialize, Deserialize)]
enum Entry {
    Create {
        job: NewJobImage,
        now: u64,
    },
    Record {
        job: String,
        item: u64,
        outcome: OutcomeImage,
        now: u64,
    },
    Finish {
        job: String,
        status: String,
        reason: String,
        error: Option<String>,
        now: u64,
    },
    Retire {
        job: String,
    },
    /// A whole job, as a rewrite of the journal stores it.
    Image {
        id: String,
        job: Box<Job>,
        active: bool,
    },
    /// The documents file the entries after this one point into (journals from before documents
    /// left memory have none: their documents are inline).
    Documents {
        file: String,
    },
}

/// Where a document is in the documents file, stored in the document's place. It is recognised
/// by its first byte: a stored document starts with `{` (JSON) or 0x04 (compressed), never 0xFF,
/// so a journal written before documents left memory replays unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DocRef {
    at: u64,
    len: u32,
}

impl DocRef {
    const MARK: u8 = 0xFF;
    const SIZE: usize = 13;

    fn encode(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::SIZE);
        bytes.push(Self::MARK);
        bytes.extend_from_slice(&self.at.to_le_bytes());
        bytes.extend_from_slice(&self.len.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::SIZE || bytes[0] != Self::MARK {
            return None;
        }
        let at = u64::from_le_bytes(bytes[1..9].try_into().ok()?);
        let len = u32::from_le_bytes(bytes[9..13].try_into().ok()?);
        Some(Self { at, len })
    }
}

/// The append-only documents file of a durable queue.
struct Documents {
    dir: PathBuf,
    /// Its name in `dir` (`documents.N`), recorded in the journal.
    name: String,
    /// Shared with readers, who read outside the queue's lock (`pread` needs no cursor).
    file: Arc<File>,
    end: u64,
}

impl Documents {
    fn open(dir: &Path, name: &str) -> Result<Self, StateError> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| backend_error(&path.display().to_string(), e))?;
        let end = file
            .metadata()
            .map_err(|e| backend_error(&path.display().to_string(), e))?
            .len();
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            file: Arc::new(file),
            end,
        })
    }

    /// Appends `bytes`; their place goes where they would have been.
    fn put(&mut self, bytes: &[u8]) -> Result<Vec<u8>, StateError> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| StateError::Backend("a document over 4 GiB".into()))?;
        (&*self.file)
            .write_all(bytes)
            .map_err(|e| backend_error(&self.dir.join(&self.name).display().to_string(), e))?;
        let place = DocRef { at: self.end, len };
        self.end += u64::from(len);
        Ok(place.encode())
    }

    fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// A document as stored in a job: itself, or read from `file` at its place.
fn resolve(file: Option<&File>, stored: Vec<u8>) -> Result<Vec<u8>, StateError> {
    match (DocRef::decode(&stored), file) {
        (Some(place), Some(file)) => {
            let mut bytes = vec![0; place.len as usize];
            file.read_exact_at(&mut bytes, place.at)
                .map_err(|e| backend_error("reading a crawled document", e))?;
            Ok(bytes)
        }
        _ => Ok(stored),
    }
}

#[derive(Serialize, Deserialize)]
struct NewJobImage {
    id: String,
    meta: String,
    limit: u64,
    expires_at: u64,
    items: Vec<(String, String, bool)>,
}

#[derive(Serialize, Deserialize)]
struct OutcomeImage {
    result_key: Option<String>,
    document: Option<Vec<u8>>,
    counts: Vec<(String, i64)>,
    errors: Vec<(Option<String>, String)>,
    max_errors: u64,
    new_items: Vec<(String, String, bool)>,
    unstart: bool,
}

struct Journal {
    path: PathBuf,
    file: File,
    last_sync: Instant,
    dirty: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn backend_error(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Backend(format!("{what}: {e}"))
}

fn items_image(items: &[NewItem]) -> Vec<(String, String, bool)> {
    items
        .iter()
        .map(|i| (i.key.clone(), i.payload.clone(), i.counted))
        .collect()
}

impl MemoryJobs {
    /// A queue that lives only as long as the process (actor tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// A durable queue journaled in `dir` (created if missing): unfinished jobs of an earlier
    /// process are back, their leased items queued again.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| backend_error(&dir.display().to_string(), e))?;
        let path = dir.join("jobs.journal");
        let mut inner = Inner::default();
        match File::open(&path) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .map_err(|e| backend_error(&path.display().to_string(), e))?;
                inner.replay(&bytes);
                if let Some(name) = inner.documents_file.clone() {
                    inner.documents = Some(Documents::open(dir, &name)?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend_error(&path.display().to_string(), e)),
        }
        inner.drop_expired(now_ms());
        inner.journal = Some(Journal::rewrite(dir, &path, &mut inner)?);
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StateError::Backend("the job queue's lock was poisoned".into()))?;
        f(&mut inner)
    }
}

impl Journal {
    /// Writes the live state as a new journal (temp file, fsync, rename) and opens it to append.
    /// The live documents move to a new documents file first, which the new journal names: until
    /// the rename, the old journal and its documents file are untouched and whole.
    fn rewrite(dir: &Path, path: &Path, inner: &mut Inner) -> Result<Journal, StateError> {
        let shown = path.display().to_string();
        let old = inner.documents.take();
        let generation = old
            .as_ref()
            .and_then(|d| d.name.strip_prefix("documents.")?.parse::<u64>().ok())
            .map_or(0, |n| n + 1);
        let name = format!("documents.{generation}");
        let _ = std::fs::remove_file(dir.join(&name)); // a leftover of an interrupted rewrite
        let mut documents = Documents::open(dir, &name)?;
        let old_file = old.as_ref().map(|d| d.file.clone());
        for job in inner.jobs.values_mut() {
            for stored in &mut job.documents {
                let bytes = resolve(old_file.as_deref(), std::mem::take(stored))?;
                *stored = documents.put(&bytes)?;
            }
        }
        documents
            .sync()
            .map_err(|e| backend_error(&dir.join(&name).display().to_string(), e))?;
        let temp = path.with_extension("tmp");
        let mut bytes = Vec::new();
        frame(&mut bytes, &Entry::Documents { file: name.clone() })?;
        for (id, job) in &inner.jobs {
            let entry = Entry::Image {
                id: id.clone(),
                job: Box::new(job.clone()),
                active: inner.active.contains(id),
            };
            frame(&mut bytes, &entry)?;
        }
        let write = || -> std::io::Result<File> {
            let mut file = File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            OpenOptions::new().append(true).open(path)
        };
        let file = write().map_err(|e| backend_error(&shown, e))?;
        inner.documents = Some(documents);
        // The old documents (and any other generation) are no longer named by the journal.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                if file.starts_with("documents.") && file != name {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            last_sync: Instant::now(),
            dirty: false,
        })
    }

    /// Appends `entry`; the documents it points to are synced with it.
    fn append(&mut self, entry: &Entry, documents: Option<&Documents>) -> Result<(), StateError> {
        let mut bytes = Vec::new();
        frame(&mut bytes, entry)?;
        let shown = || self.path.display().to_string();
        self.file
            .write_all(&bytes)
            .map_err(|e| backend_error(&shown(), e))?;
        self.dirty = true;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            if let Some(documents) = documents {
                documents.sync().map_err(|e| backend_error(&shown(), e))?;
            }
            self.file
                .sync_data()
                .map_err(|e| backend_error(&shown(), e))?;
            self.last_sync = Instant::now();
            self.dirty = false;
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.dirty {
            let _ = self.file.sync_data();
        }
    }
}

/// `[u32 little-endian length][postcard]`.
fn frame(out: &mut Vec<u8>, entry: &Entry) -> Result<(), StateError> {
    let body = postcard::to_allocvec(entry).map_err(|e| backend_error("encoding a job", e))?;
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

impl Inner {
    /// Applies every whole entry; a torn tail (the process died mid-append) ends the replay.
    fn replay(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 4 {
            let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            let Some(body) = bytes.get(4..4 + len) else {
                break;
            };
            let Ok(entry) = postcard::from_bytes::<Entry>(body) else {
                tracing::warn!("the job journal ends in a damaged entry; ignoring it");
                break;
            };
            self.apply(entry);
            bytes = &bytes[4 + len..];
        }
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Create { job, now } => self.create(job, now),
            Entry::Record {
                job,
                item,
                outcome,
                now,
            } => {
                self.record(&job, item, outcome, now);
            }
            Entry::Finish {
                job,
                status,
                reason,
                error,
                now,
            } => {
                self.finish(&job, &status, &reason, error, now);
            }
            Entry::Retire { job } => self.active.retain(|id| *id != job),
            Entry::Documents { file } => self.documents_file = Some(file),
            Entry::Image { id, job, active } => {
                if active && !self.active.contains(&id) {
                    self.active.push(id.clone());
                }
                self.jobs.insert(id, *job);
            }
        }
    }

    fn drop_expired(&mut self, now: u64) {
        self.jobs.retain(|_, job| job.expires_at > now);
        let jobs = &self.jobs;
        self.active.retain(|id| jobs.contains_key(id));
    }

    fn journal(&mut self, entry: &Entry) -> Result<(), StateError> {
        match &mut self.journal {
            Some(journal) => journal.append(entry, self.documents.as_ref()),
            None => Ok(()),
        }
    }

    fn live(&mut self, id: &str, now: u64) -> Option<&mut Job> {
        self.jobs.get_mut(id).filter(|job| job.expires_at > now)
    }

    fn create(&mut self, job: NewJobImage, now: u64) {
        // Expired jobs would otherwise stay until the next start: now is as good a time as any.
        self.drop_expired(now);
        let mut state = Job {
            meta: job.meta,
            limit: job.limit,
            expires_at: job.expires_at,
            status: JOB_RUNNING.to_string(),
            updated_at: now,
            ..Job::default()
        };
        state.enqueue(job.items);
        if !self.active.contains(&job.id) {
            self.active.push(job.id.clone());
        }
        self.jobs.insert(job.id, state);
    }

    /// Applies a result whose item is leased or queued (checked by the caller).
    fn record(&mut self, id: &str, item: u64, outcome: OutcomeImage, now: u64) -> Recorded {
        let Some(job) = self.live(id, now) else {
            return Recorded::Ended;
        };
        if job.status != JOB_RUNNING {
            job.forget(item);
            return Recorded::Ended;
        }
        match job.leased.remove(&item) {
            // Ours, or taken over after our lease expired: either way this result is first.
            Some(_) => {}
            None => match job.queue.iter().position(|queued| *queued == item) {
                // Reclaimed and not handed out again yet: it counts as started by this result.
                Some(at) => {
                    job.queue.remove(at);
                    job.bump("started", 1);
                }
                None => return Recorded::Duplicate,
            },
        }
        job.items.remove(&item);
        let fresh = outcome
            .result_key
            .as_ref()
            .is_none_or(|key| job.done.insert(key.clone()));
        let mut document = None;
        if let (true, Some(bytes)) = (fresh, outcome.document) {
            document = Some(job.documents.len() as u64);
            job.documents.push(bytes);
            job.bump("documents", 1);
        }
        for (once, entry) in outcome.errors {
            if once.is_some_and(|key| !job.once.insert(key)) {
                continue;
            }
            if (job.errors.len() as u64) < outcome.max_errors {
                job.errors.push(entry);
                job.bump("errors", 1);
            }
        }
        job.enqueue(outcome.new_items);
        for (name, delta) in outcome.counts {
            job.bump(&name, delta);
        }
        if outcome.unstart {
            job.bump("started", -1);
        }
        job.updated_at = now;
        let completed = job.complete_if_done();
        Recorded::Stored {
            document,
            counters: job.counters.clone(),
            completed,
        }
    }

    fn finish(
        &mut self,
        id: &str,
        status: &str,
        reason: &str,
        error: Option<String>,
        now: u64,
    ) -> bool {
        match self.live(id, now) {
            Some(job) if job.status == JOB_RUNNING => {
                job.status = status.to_string();
                job.reason = Some(reason.to_string());
                job.updated_at = now;
                if let Some(error) = error {
                    job.errors.push(error);
                    job.bump("errors", 1);
                }
                true
            }
            _ => false,
        }
    }
}

impl Job {
    fn bump(&mut self, name: &str, delta: i64) {
        *self.counters.entry(name.to_string()).or_insert(0) += delta;
    }

    fn counter(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn enqueue(&mut self, items: Vec<(String, String, bool)>) {
        for (key, payload, counted) in items {
            // A key already stored as a result (a redirect's target) is not queued either.
            if self.done.contains(&key) || !self.seen.insert(key) {
                continue;
            }
            self.seq += 1;
            self.items.insert(self.seq, payload);
            self.queue.push_back(self.seq);
            if counted {
                self.bump("admitted", 1);
            }
        }
    }

    fn forget(&mut self, item: u64) {
        self.leased.remove(&item);
        self.items.remove(&item);
        self.queue.retain(|queued| *queued != item);
    }

    /// Nothing left to hand out (queue empty or limit reached) and nothing out: the job is done.
    fn complete_if_done(&mut self) -> Option<String> {
        let exhausted = self.queue.is_empty() || self.counter("started") >= self.limit as i64;
        if self.status != JOB_RUNNING || !exhausted || !self.leased.is_empty() {
            return None;
        }
        // Every page failed: the job did not do its work.
        self.status = if self.counter("documents") == 0 && self.counter("failed") > 0 {
            "failed"
        } else {
            "completed"
        }
        .to_string();
        if self.status == "failed" {
            self.reason = Some("no page could be scraped; see the job's errors".to_string());
        }
        Some(self.status.clone())
    }
}

impl JobQueue for MemoryJobs {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn create(&self, job: NewJob) -> BoxFuture<'_, Result<(), StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                let now = now_ms();
                let image = NewJobImage {
                    id: job.id,
                    meta: job.meta,
                    limit: job.limit,
                    expires_at: job.expires_at,
                    items: items_image(&job.items),
                };
                let entry = Entry::Create { job: image, now };
                inner.journal(&entry)?;
                if let Entry::Create { job, now } = entry {
                    inner.create(job, now);
                }
                Ok(())
            })
        })
    }

    fn active(&self) -> BoxFuture<'_, Result<Vec<String>, StateError>> {
        Box::pin(async move { self.with(|inner| Ok(inner.active.clone())) })
    }

    fn retire<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                if inner.active.iter().any(|id| id == job) {
                    inner.journal(&Entry::Retire {
                        job: job.to_string(),
                    })?;
                    inner.active.retain(|id| id != job);
                }
                Ok(())
            })
        })
    }

    fn lease<'a>(
        &'a self,
        id: &'a str,
        consumer: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Leased, StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                let now = now_ms();
                let mut seq = inner.lease_seq;
                let Some(job) = inner.live(id, now) else {
                    return Ok(Leased::Ended);
                };
                if job.status != JOB_RUNNING {
                    return Ok(Leased::Ended);
                }
                let expired: Vec<u64> = job
                    .leased
                    .iter()
                    .filter(|(_, (_, deadline))| *deadline <= now)
                    .map(|(item, _)| *item)
                    .collect();
                for item in &expired {
                    job.leased.remove(item);
                    job.queue.push_front(*item);
                    job.bump("started", -1);
                }
                let room = (job.limit as i64 - job.counter("started")).max(0) as usize;
                let mut items = Vec::new();
                while items.len() < max.min(room) {
                    let Some(item) = job.queue.pop_front() else {
                        break;
                    };
                    seq += 1;
                    let token = format!("{consumer}:{seq}");
                    let deadline = now + lease.as_millis() as u64;
                    job.leased.insert(item, (token.clone(), deadline));
                    job.bump("started", 1);
                    items.push(LeasedItem {
                        lease: LeaseRef { item, token },
                        payload: job.items.get(&item).cloned().unwrap_or_default(),
                    });
                }
                let completed = if items.is_empty() {
                    job.complete_if_done()
                } else {
                    None
                };
                let reason = job.reason.clone();
                inner.lease_seq = seq;
                if let Some(status) = completed {
                    inner.journal(&Entry::Finish {
                        job: id.to_string(),
                        status: status.clone(),
                        reason: reason.unwrap_or_default(),
                        error: None,
                        now,
                    })?;
                    return Ok(Leased::Completed { status });
                }
                Ok(Leased::Items {
                    items,
                    reclaimed: expired.len() as u64,
                })
            })
        })
    }

    fn renew<'a>(
        &'a self,
        id: &'a str,
        items: &'a [LeaseRef],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Renewed, StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                let now = now_ms();
                let Some(job) = inner.live(id, now) else {
                    return Ok(Renewed {
                        held: vec![false; items.len()],
                        running: false,
                    });
                };
                let held = items
                    .iter()
                    .map(|held| match job.leased.get_mut(&held.item) {
                        Some((token, deadline)) if *token == held.token => {
                            *deadline = now + lease.as_millis() as u64;
                            true
                        }
                        _ => false,
                    })
                    .collect();
                Ok(Renewed {
                    held,
                    running: job.status == JOB_RUNNING,
                })
            })
        })
    }

    fn record<'a>(
        &'a self,
        id: &'a str,
        item: LeaseRef,
        outcome: Outcome,
    ) -> BoxFuture<'a, Result<Recorded, StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                let now = now_ms();
                let image = OutcomeImage {
                    result_key: outcome.result_key,
                    document: outcome.document,
                    counts: outcome.counts,
                    errors: outcome
                        .errors
                        .into_iter()
                        .map(|e| (e.once, e.entry))
                        .collect(),
                    max_errors: outcome.max_errors,
                    new_items: items_image(&outcome.new_items),
                    unstart: outcome.unstart,
                };
                // Decide without changing anything, journal, then apply: the journal never
                // holds a change the live state refused, nor the reverse.
                let state = match inner.live(id, now) {
                    None => return Ok(Recorded::Ended),
                    Some(job) if job.status != JOB_RUNNING => {
                        job.forget(item.item);
                        return Ok(Recorded::Ended);
                    }
                    Some(job) => {
                        job.leased.contains_key(&item.item) || job.queue.contains(&item.item)
                    }
                };
                if !state {
                    return Ok(Recorded::Duplicate);
                }
                let mut image = image;
                if let (Some(documents), Some(bytes)) = (&mut inner.documents, &image.document) {
                    image.document = Some(documents.put(bytes)?);
                }
                let entry = Entry::Record {
                    job: id.to_string(),
                    item: item.item,
                    outcome: image,
                    now,
                };
                inner.journal(&entry)?;
                let Entry::Record { outcome, .. } = entry else {
                    return Ok(Recorded::Duplicate);
                };
                // A completion is derived again on replay: nothing more to journal.
                Ok(inner.record(id, item.item, outcome, now))
            })
        })
    }

    fn release<'a>(
        &'a self,
        id: &'a str,
        items: &'a [LeaseRef],
    ) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                let now = now_ms();
                let Some(job) = inner.live(id, now) else {
                    return Ok(());
                };
                for held in items.iter().rev() {
                    if job
                        .leased
                        .get(&held.item)
                        .is_some_and(|(token, _)| *token == held.token)
                    {
                        job.leased.remove(&held.item);
                        job.queue.push_front(held.item);
                        job.bump("started", -1);
                    }
                }
                Ok(())
            })
        })
    }

    fn finish<'a>(
        &'a self,
        id: &'a str,
        status: &'a str,
        reason: &'a str,
        error: Option<String>,
    ) -> BoxFuture<'a, Result<bool, StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                let now = now_ms();
                let running = inner
                    .live(id, now)
                    .is_some_and(|job| job.status == JOB_RUNNING);
                if !running {
                    return Ok(false);
                }
                inner.journal(&Entry::Finish {
                    job: id.to_string(),
                    status: status.to_string(),
                    reason: reason.to_string(),
                    error: error.clone(),
                    now,
                })?;
                Ok(inner.finish(id, status, reason, error, now))
            })
        })
    }

    fn snapshot<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                Ok(inner.live(id, now_ms()).map(|job| JobSnapshot {
                    meta: job.meta.clone(),
                    status: job.status.clone(),
                    reason: job.reason.clone(),
                    updated_at: job.updated_at,
                    counters: job.counters.clone(),
                    queued: job.queue.len() as u64,
                    leased: job.leased.len() as u64,
                }))
            })
        })
    }

    fn documents<'a>(
        &'a self,
        id: &'a str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>, StateError>> {
        Box::pin(async move {
            let (stored, file) = self.with(|inner| {
                let file = inner.documents.as_ref().map(|d| d.file.clone());
                let stored = inner
                    .live(id, now_ms())
                    .map(|job| slice(&job.documents, from, to))
                    .unwrap_or_default();
                Ok((stored, file))
            })?;
            stored
                .into_iter()
                .map(|bytes| resolve(file.as_deref(), bytes))
                .collect()
        })
    }

    fn errors<'a>(
        &'a self,
        id: &'a str,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Vec<String>, StateError>> {
        Box::pin(async move {
            self.with(|inner| {
                Ok(inner
                    .live(id, now_ms())
                    .map(|job| slice(&job.errors, from, to))
                    .unwrap_or_default())
            })
        })
    }
}

fn slice<T: Clone>(all: &[T], from: u64, to: u64) -> Vec<T> {
    let end = (to as usize).min(all.len());
    let start = (from as usize).min(end);
    all[start..end].to_vec()
}
