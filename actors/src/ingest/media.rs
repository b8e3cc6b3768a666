//! Audio and video: a recording becomes a transcript through the [`Transcriber`] port, and the
//! transcript a document whose segments are each marked with their time range, so a passage
//! cites `t=01:23–01:41` and a player can start there. A recording longer than the engine's
//! piece length is cut into pieces ([`pieces`]), transcribed one after another with progress
//! reported, and put back together on one timeline.

pub mod pieces;

use std::time::Instant;

use super::document::{Kind, Parsed};
use crate::model::{Locator, ProgressSink, TranscriptionProgress, Unit};
use crate::ports::{Audio, Segment, TranscribeError, Transcriber, Transcript};

/// Transcribes `audio` into a document (see [`from_transcript`]), in pieces when it is long.
pub async fn transcribe(
    transcriber: &dyn Transcriber,
    audio: Audio,
    progress: Option<&ProgressSink>,
) -> Result<Parsed, TranscribeError> {
    let engine = transcriber.id();
    let mime = audio.mime.clone();
    let span = tracing::info_span!("transcribe", engine, file = %audio.file_name, bytes = audio.bytes.len());
    let started = Instant::now();
    let budget = transcriber.pieces().recording_timeout;
    let result = tracing::Instrument::instrument(
        tokio::time::timeout(budget, in_pieces(transcriber, audio, progress)),
        span,
    )
    .await
    .unwrap_or(Err(TranscribeError::Timeout(budget)));
    let outcome = match &result {
        Ok(_) => "ok",
        Err(TranscribeError::Unavailable(_)) => "unavailable",
        Err(TranscribeError::Rejected(_)) => "rejected",
        Err(TranscribeError::Timeout(_)) => "timeout",
        Err(TranscribeError::Failed(_)) => "failed",
    };
    metrics::counter!("aurora_transcriptions_total", "engine" => engine, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("aurora_transcription_duration_seconds", "engine" => engine)
        .record(started.elapsed().as_secs_f64());
    let transcript = result?;
    if let Some(seconds) = transcript.duration {
        metrics::counter!("aurora_transcribed_audio_seconds_total", "engine" => engine)
            .increment(seconds.round() as u64);
    }
    from_transcript(&transcript, kind(&mime))
}

/// The whole recording when it is short (or cannot be decoded here: the engine may still read
/// it), otherwise piece by piece, each piece's segments moved to where the piece starts.
async fn in_pieces(
    transcriber: &dyn Transcriber,
    audio: Audio,
    progress: Option<&ProgressSink>,
) -> Result<Transcript, TranscribeError> {
    let plan = transcriber.pieces();
    // Without an engine there is nothing to cut for: its refusal says how to configure one.
    if !transcriber.available() || !pieces::decodable(&audio.mime) {
        return transcriber.transcribe(audio).await;
    }
    let (bytes, mime) = (audio.bytes.clone(), audio.mime.clone());
    let max = u64::from(plan.max_recording_secs);
    // Decoding is CPU work: off the async threads, and a decoder panic costs this file only.
    let decoded = tokio::task::spawn_blocking(move || pieces::decode(bytes, &mime, max)).await;
    let samples = match decoded {
        Ok(Ok(samples)) => samples,
        Ok(Err(pieces::PieceError::TooLong(max))) => {
            return Err(TranscribeError::Rejected(format!(
                "the recording is longer than the {max} s allowed (transcription.max_recording_secs)"
            )));
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "sent whole: the recording could not be cut here");
            return transcriber.transcribe(audio).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "sent whole: the decoder failed on this recording");
            return transcriber.transcribe(audio).await;
        }
    };
    let piece_len = plan.seconds.max(1) as usize * pieces::RATE as usize;
    if samples.len() <= piece_len {
        return transcriber.transcribe(audio).await;
    }
    let ranges = pieces::cuts(&samples, piece_len);
    let seconds = |samples: usize| samples as f64 / f64::from(pieces::RATE);
    let total = ranges.len() as u32;
    let report = |done: u32, at: usize| {
        if let Some(sink) = progress {
            sink.report(TranscriptionProgress {
                pieces_done: done,
                pieces_total: total,
                seconds_done: seconds(at),
                seconds_total: seconds(samples.len()),
            });
        }
    };
    report(0, 0);
    let stem = audio
        .file_name
        .rsplit_once('.')
        .map_or(audio.file_name.as_str(), |(stem, _)| stem);
    let mut whole = Transcript {
        language: audio.language.clone(),
        duration: Some(seconds(samples.len())),
        segments: Vec::new(),
    };
    for (n, range) in ranges.iter().enumerate() {
        let offset_ms = (seconds(range.start) * 1000.0).round() as u64;
        let piece = Audio {
            bytes: pieces::wav(&samples[range.clone()]),
            file_name: format!("{stem}.part{}.wav", n + 1),
            mime: "audio/wav".to_string(),
            // The first piece's language holds for the rest: one recording, one language.
            language: whole.language.clone(),
        };
        let span = tracing::info_span!("piece", n = n + 1, of = total, offset_ms);
        let transcript = tracing::Instrument::instrument(transcriber.transcribe(piece), span)
            .await
            .map_err(|e| in_piece(e, n + 1, total, offset_ms))?;
        metrics::counter!("aurora_transcription_pieces_total", "engine" => transcriber.id())
            .increment(1);
        whole.language = whole.language.or(transcript.language);
        whole
            .segments
            .extend(transcript.segments.into_iter().map(|s| Segment {
                start_ms: s.start_ms + offset_ms,
                end_ms: s.end_ms + offset_ms,
                text: s.text,
            }));
        report(n as u32 + 1, range.end);
    }
    Ok(whole)
}

/// A piece's failure, saying which piece so a user knows how far it got.
fn in_piece(error: TranscribeError, n: usize, total: u32, offset_ms: u64) -> TranscribeError {
    let at = Locator {
        unit: Unit::Time,
        start: offset_ms,
        end: offset_ms,
    };
    let place = format!("piece {n} of {total} (from {at})");
    match error {
        TranscribeError::Rejected(e) => TranscribeError::Rejected(format!("{place}: {e}")),
        TranscribeError::Failed(e) => TranscribeError::Failed(format!("{place}: {e}")),
        other => other,
    }
}

/// The audio kind a media type names (the bounded set detection gives).
fn kind(mime: &str) -> Kind {
    match mime {
        "audio/mpeg" => Kind::Audio("audio/mpeg"),
        "audio/ogg" => Kind::Audio("audio/ogg"),
        "audio/flac" => Kind::Audio("audio/flac"),
        "audio/mp4" => Kind::Audio("audio/mp4"),
        "audio/webm" => Kind::Audio("audio/webm"),
        _ => Kind::Audio("audio/wav"),
    }
}

/// One paragraph per segment, each marked with its time range.
pub fn from_transcript(transcript: &Transcript, kind: Kind) -> Result<Parsed, TranscribeError> {
    let mut markdown = String::new();
    let mut marks = Vec::new();
    for segment in &transcript.segments {
        let text = segment
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() {
            continue;
        }
        if !markdown.is_empty() {
            markdown.push_str("\n\n");
        }
        marks.push(crate::model::Mark {
            offset: markdown.len(),
            locator: Locator {
                unit: Unit::Time,
                start: segment.start_ms,
                end: segment.end_ms.max(segment.start_ms),
            },
        });
        markdown.push_str(&text);
    }
    if markdown.is_empty() {
        return Err(TranscribeError::Rejected(
            "no speech was found in the recording".to_string(),
        ));
    }
    markdown.push('\n');
    Ok(Parsed {
        kind: Some(kind),
        markdown,
        marks,
        ..Parsed::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_become_paragraphs_marked_with_their_time() {
        let transcript = Transcript {
            language: Some("en".into()),
            duration: Some(101.0),
            segments: vec![
                Segment {
                    start_ms: 0,
                    end_ms: 4_000,
                    text: " The northern lights  were brightest at midnight.".into(),
                },
                Segment {
                    start_ms: 4_000,
                    end_ms: 4_000,
                    text: "  ".into(),
                },
                Segment {
                    start_ms: 83_500,
                    end_ms: 101_000,
                    text: "Bring a tripod.".into(),
                },
            ],
        };
        let parsed = from_transcript(&transcript, Kind::Audio("audio/wav")).expect("parsed");
        assert_eq!(
            parsed.markdown,
            "The northern lights were brightest at midnight.\n\nBring a tripod.\n"
        );
        let labels: Vec<(usize, String)> = parsed
            .marks
            .iter()
            .map(|m| (m.offset, m.locator.to_string()))
            .collect();
        assert_eq!(
            labels,
            [(0, "t=00:00–00:04".into()), (49, "t=01:23–01:41".into())]
        );
        let silent = Transcript::default();
        assert!(from_transcript(&silent, Kind::Audio("audio/wav")).is_err());
    }
}
