//! Speech to text (`Transcriber`).

use std::time::Duration;

use futures::future::BoxFuture;

/// Speech to text: an OpenAI-compatible `/v1/audio/transcriptions` server (OpenAI, Groq,
/// faster-whisper-server, whisper.cpp's server, LocalAI, or Aurora's own local engine), or none.
pub trait Transcriber: Send + Sync + 'static {
    /// Whether transcription can work at all (false for the embedded default).
    fn available(&self) -> bool;
    /// Bounded label for metrics and the transcript's provenance: `openai`, `local`, `none`.
    fn id(&self) -> &'static str;
    fn transcribe(&self, audio: Audio) -> BoxFuture<'_, Result<Transcript, TranscribeError>>;
    /// How long recordings are cut up before they reach [`Transcriber::transcribe`].
    fn pieces(&self) -> Pieces {
        Pieces::default()
    }
}

/// Long recordings go to the engine in pieces (a server's upload cap, its timeouts, progress
/// a user can watch); `crate::ingest::media` does the cutting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// Longest piece, in seconds; a recording up to this long goes whole, as it came.
    pub seconds: u32,
    /// Longest recording accepted at all, in seconds.
    pub max_recording_secs: u32,
    /// One recording's transcription, all its pieces, gives up after this long.
    pub recording_timeout: Duration,
}

impl Default for Pieces {
    fn default() -> Self {
        // Ten minutes of 16 kHz 16-bit audio are 19.2 MB: under OpenAI's 25 MB cap.
        Self {
            seconds: 600,
            max_recording_secs: 4 * 3600,
            recording_timeout: Duration::from_secs(900),
        }
    }
}

/// A recording to transcribe.
#[derive(Debug, Clone)]
pub struct Audio {
    pub bytes: Vec<u8>,
    /// A name with the right extension: servers pick their decoder by it.
    pub file_name: String,
    pub mime: String,
    /// ISO 639-1, when known; otherwise the engine detects it.
    pub language: Option<String>,
}

/// What was said, in timed segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub language: Option<String>,
    /// Seconds of audio, when the engine says.
    pub duration: Option<f64>,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscribeError {
    /// No transcriber is configured, or it cannot run here.
    #[error("{0}")]
    Unavailable(String),
    /// The engine refused this recording (format, size, content).
    #[error("the transcriber refused the recording: {0}")]
    Rejected(String),
    #[error("transcription failed: {0}")]
    Failed(String),
    #[error("transcription did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}
