//! [`Transcriber`] over any OpenAI-compatible `POST {base_url}/audio/transcriptions` server
//! (OpenAI, Groq, faster-whisper-server, whisper.cpp's server, LocalAI, and Aurora's own local
//! engine, `whisper_sidecar`).
//!
//! It asks for `verbose_json` with segment timestamps, which carries the time of every segment;
//! a server that refuses that format (OpenAI's `gpt-4o-*-transcribe` models accept only `json`
//! and `text`) is asked again for `json`, and the transcript is then one segment spanning the
//! recording. 429 and 5xx are retried as every remote call is (`remote::send`).

use std::time::Duration;

use aurora_actors::ports::{Audio, Pieces, Segment, TranscribeError, Transcriber, Transcript};
use futures::future::BoxFuture;
use reqwest::{Client, StatusCode};
use serde::Deserialize;

use super::remote::{self, RemoteError, RetryPolicy};

const SERVICE: &str = "transcription";

#[derive(Debug, Clone)]
pub struct OpenAiTranscriberConfig {
    /// Up to and including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// One request: a recording, or one piece of a long one.
    pub timeout: Duration,
    /// `openai` for a configured server, `local` for Aurora's own engine.
    pub id: &'static str,
    pub pieces: Pieces,
}

pub struct OpenAiTranscriber {
    client: Client,
    config: OpenAiTranscriberConfig,
    policy: RetryPolicy,
}

/// `verbose_json`: the fields Aurora reads (servers add more).
#[derive(Debug, Deserialize)]
struct Verbose {
    text: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    segments: Option<Vec<VerboseSegment>>,
    /// OpenAI's `json` answer says how long the recording was only here.
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
}

impl OpenAiTranscriber {
    pub fn new(config: OpenAiTranscriberConfig) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .build()?;
        Ok(Self {
            client,
            config,
            policy: RetryPolicy::default(),
        })
    }

    async fn request(&self, audio: &Audio, verbose: bool) -> Result<Verbose, RemoteError> {
        let url = format!(
            "{}/audio/transcriptions",
            self.config.base_url.trim_end_matches('/')
        );
        let response = remote::send(SERVICE, &self.policy, || {
            let file = reqwest::multipart::Part::bytes(audio.bytes.clone())
                .file_name(audio.file_name.clone())
                .mime_str(&audio.mime)
                .unwrap_or_else(|_| reqwest::multipart::Part::bytes(audio.bytes.clone()));
            let mut form = reqwest::multipart::Form::new()
                .part("file", file)
                .text("model", self.config.model.clone())
                .text(
                    "response_format",
                    if verbose { "verbose_json" } else { "json" },
                );
            if verbose {
                form = form.text("timestamp_granularities[]", "segment");
            }
            if let Some(language) = &audio.language {
                form = form.text("language", language.clone());
            }
            let request = self.client.post(&url).multipart(form);
            match &self.config.api_key {
                Some(key) => request.bearer_auth(key),
                None => request,
            }
        })
        .await?;
        let text = response
            .text()
            .await
            .map_err(|e| RemoteError::Unreachable {
                service: SERVICE,
                message: e.to_string(),
            })?;
        serde_json::from_str(&text).map_err(|e| RemoteError::Malformed {
            service: SERVICE,
            message: format!("{e}: {}", text.chars().take(200).collect::<String>()),
        })
    }
}

impl Transcriber for OpenAiTranscriber {
    fn available(&self) -> bool {
        true
    }

    fn id(&self) -> &'static str {
        self.config.id
    }

    fn pieces(&self) -> Pieces {
        self.config.pieces
    }

    fn transcribe(&self, audio: Audio) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move {
            let answer = match self.request(&audio, true).await {
                Err(RemoteError::Status {
                    status: StatusCode::BAD_REQUEST,
                    message,
                    ..
                }) if message.contains("response_format") || message.contains("verbose_json") => {
                    tracing::info!(%message, "the server refuses verbose_json; asking for json");
                    self.request(&audio, false).await
                }
                other => other,
            }
            .map_err(|e| error(e, self.config.timeout))?;
            Ok(transcript(answer))
        })
    }
}

fn transcript(answer: Verbose) -> Transcript {
    let ms = |seconds: f64| (seconds.max(0.0) * 1000.0).round() as u64;
    let duration = answer
        .duration
        .or_else(|| answer.usage.as_ref().and_then(|u| u.seconds));
    let segments = match answer.segments {
        Some(segments) if !segments.is_empty() => segments
            .into_iter()
            .map(|s| Segment {
                start_ms: ms(s.start),
                end_ms: ms(s.end),
                text: s.text.trim().to_string(),
            })
            .collect(),
        _ => vec![Segment {
            start_ms: 0,
            end_ms: ms(duration.unwrap_or(0.0)),
            text: answer.text.trim().to_string(),
        }],
    };
    Transcript {
        language: answer.language,
        duration,
        segments,
    }
}

fn error(e: RemoteError, timeout: Duration) -> TranscribeError {
    match e {
        RemoteError::Status {
            status, message, ..
        } if status.is_client_error() => TranscribeError::Rejected(format!("{status}: {message}")),
        RemoteError::Unreachable { message, .. } if message.contains("timed out") => {
            TranscribeError::Timeout(timeout)
        }
        other => TranscribeError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_without_segments_is_one_segment_over_the_recording() {
        let answer: Verbose = serde_json::from_str(
            r#"{"text": " Hello there. ", "usage": {"type": "duration", "seconds": 2.5}}"#,
        )
        .expect("json");
        let t = transcript(answer);
        assert_eq!(
            t.segments,
            [Segment {
                start_ms: 0,
                end_ms: 2500,
                text: "Hello there.".into()
            }]
        );
    }

    #[test]
    fn verbose_segments_keep_their_times() {
        let answer: Verbose = serde_json::from_str(
            r#"{"task":"transcribe","language":"english","duration":6.17,"text":"A. B.",
                "segments":[{"id":0,"seek":0,"start":0.0,"end":3.04,"text":" A.","tokens":[1],
                "temperature":0.0,"avg_logprob":-0.2,"compression_ratio":1.0,"no_speech_prob":0.01},
                {"id":1,"seek":0,"start":3.04,"end":6.16,"text":" B.","tokens":[2],
                "temperature":0.0,"avg_logprob":-0.2,"compression_ratio":1.0,"no_speech_prob":0.01}]}"#,
        )
        .expect("json");
        let t = transcript(answer);
        assert_eq!(t.language.as_deref(), Some("english"));
        assert_eq!(
            t.segments
                .iter()
                .map(|s| (s.start_ms, s.end_ms))
                .collect::<Vec<_>>(),
            [(0, 3040), (3040, 6160)]
        );
    }
}
