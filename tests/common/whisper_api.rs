//! A local server that speaks OpenAI's `POST /v1/audio/transcriptions` wire format exactly:
//! `multipart/form-data` with `file` (a file part with a name), `model`, `response_format`
//! (`json`, `text`, `verbose_json`), `timestamp_granularities[]` and `language`; answers in the
//! chosen format with the scripted segments, errors in OpenAI's envelope. It can refuse
//! `verbose_json` as OpenAI's `gpt-4o-*-transcribe` models do. Every request is logged. `{n}` in
//! a scripted text becomes the request's number (1, 2, …), so pieces of one recording differ;
//! a gate, when given, holds each request until the test lets one through.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Reply as _, reply};

pub const KEY: &str = "sk-whisper-test";

/// What the server saw in one request.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub fields: Vec<(String, String)>,
    pub file_name: Option<String>,
    pub file_bytes: usize,
    pub authorization: Option<String>,
    /// Bytes of PCM data when the file is a WAV.
    pub wav_data_bytes: Option<usize>,
}

pub struct WhisperApi {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl WhisperApi {
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

/// `segments`: (start s, end s, text). With `verbose` false, `verbose_json` is refused.
pub async fn spawn(segments: Vec<(f64, f64, &'static str)>, verbose: bool) -> WhisperApi {
    spawn_gated(segments, verbose, None).await
}

/// As [`spawn`], each request waiting for a permit of `gate` first.
pub async fn spawn_gated(
    segments: Vec<(f64, f64, &'static str)>,
    verbose: bool,
    gate: Option<Arc<tokio::sync::Semaphore>>,
) -> WhisperApi {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let route = warp::path!("v1" / "audio" / "transcriptions")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::<String>("content-type"))
        .and(warp::body::bytes())
        .then(
            move |auth: Option<String>, content_type: String, body: bytes::Bytes| {
                let (log, segments, gate) = (log.clone(), segments.clone(), gate.clone());
                async move {
                    if let Some(gate) = gate {
                        gate.acquire().await.expect("gate").forget();
                    }
                    let Ok(boundary) = multer::parse_boundary(&content_type) else {
                        return error(StatusCode::BAD_REQUEST, "send multipart/form-data");
                    };
                    let whole = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
                    let mut form = multer::Multipart::new(whole, boundary);
                    let mut request = Seen {
                        authorization: auth,
                        ..Seen::default()
                    };
                    while let Ok(Some(field)) = form.next_field().await {
                        let name = field.name().unwrap_or_default().to_string();
                        if name == "file" {
                            request.file_name = field.file_name().map(str::to_string);
                            let bytes = field.bytes().await.unwrap_or_default();
                            request.file_bytes = bytes.len();
                            request.wav_data_bytes = bytes
                                .starts_with(b"RIFF")
                                .then(|| bytes.get(40..44))
                                .flatten()
                                .and_then(|n| n.try_into().ok())
                                .map(|n| u32::from_le_bytes(n) as usize);
                        } else {
                            let value = field.text().await.unwrap_or_default();
                            request.fields.push((name, value));
                        }
                    }
                    let n = {
                        let mut log = log.lock().expect("log");
                        log.push(request.clone());
                        log.len()
                    };
                    let segments: Vec<(f64, f64, String)> = segments
                        .iter()
                        .map(|(start, end, text)| {
                            (*start, *end, text.replace("{n}", &n.to_string()))
                        })
                        .collect();
                    answer(&request, &segments, verbose)
                }
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind whisper api");
    let addr = listener.local_addr().expect("addr");
    let stop = super::serve_until_dropped(listener, route);
    WhisperApi {
        addr,
        seen,
        _stop: stop,
    }
}

fn field<'a>(request: &'a Seen, name: &str) -> Option<&'a str> {
    request
        .fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn answer(request: &Seen, segments: &[(f64, f64, String)], verbose: bool) -> Response {
    if request.authorization.as_deref() != Some(&format!("Bearer {KEY}")) {
        return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    if request.file_name.is_none() || request.file_bytes == 0 {
        return error(StatusCode::BAD_REQUEST, "'file' is a required property");
    }
    if field(request, "model").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
        );
    }
    let text: String = segments
        .iter()
        .map(|s| s.2.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let duration = segments.last().map_or(0.0, |s| s.1);
    match field(request, "response_format").unwrap_or("json") {
        "verbose_json" if !verbose => error(
            StatusCode::BAD_REQUEST,
            "response_format 'verbose_json' is not compatible with model 'gpt-4o-transcribe'. Use 'json' or 'text' instead.",
        ),
        "verbose_json" => reply::json(&json!({
            "task": "transcribe",
            "language": "english",
            "duration": duration,
            "text": text,
            "segments": segments.iter().enumerate().map(|(i, (start, end, text))| json!({
                "id": i, "seek": 0, "start": start, "end": end, "text": format!(" {text}"),
                "tokens": [50364], "temperature": 0.0, "avg_logprob": -0.25,
                "compression_ratio": 1.2, "no_speech_prob": 0.01,
            })).collect::<Vec<Value>>(),
        }))
        .into_response(),
        "json" => {
            reply::json(&json!({"text": text, "usage": {"type": "duration", "seconds": duration}}))
                .into_response()
        }
        "text" => text.into_response(),
        other => error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid value: '{other}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'."
            ),
        ),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    reply::with_status(
        reply::json(&json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})),
        status,
    )
    .into_response()
}
