//! The embedded default of the [`Transcriber`] port: none. Audio and video are refused with a
//! clear reason saying how to configure one.

use futures::future::BoxFuture;

use crate::ports::{Audio, TranscribeError, Transcriber, Transcript};

pub struct NoTranscriber;

impl Transcriber for NoTranscriber {
    fn available(&self) -> bool {
        false
    }

    fn id(&self) -> &'static str {
        "none"
    }

    fn transcribe(&self, audio: Audio) -> BoxFuture<'_, Result<Transcript, TranscribeError>> {
        Box::pin(async move {
            Err(TranscribeError::Unavailable(format!(
                "`{}` is audio or video ({}), and no transcriber is configured: set \
                 transcription.engine to \"openai\" (any OpenAI-compatible server) or \"local\"",
                audio.file_name, audio.mime
            )))
        })
    }
}
