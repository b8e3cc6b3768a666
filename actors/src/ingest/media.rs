//! Audio and video: a recording becomes a transcript through the [`Transcriber`] port, and the
//! transcript a document whose segments are each marked with their time range, so a passage
//! cites `t=01:23–01:41` and a player can start there.

use std::time::Instant;

use super::document::{Kind, Parsed};
use crate::model::{Locator, Unit};
use crate::ports::{Audio, TranscribeError, Transcriber, Transcript};

/// Transcribes `audio` into a document (see [`from_transcript`]).
pub async fn transcribe(
    transcriber: &dyn Transcriber,
    audio: Audio,
) -> Result<Parsed, TranscribeError> {
    let engine = transcriber.id();
    let mime = audio.mime.clone();
    let span = tracing::info_span!("transcribe", engine, file = %audio.file_name, bytes = audio.bytes.len());
    let started = Instant::now();
    let result = tracing::Instrument::instrument(transcriber.transcribe(audio), span).await;
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
    use crate::ports::Segment;

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
