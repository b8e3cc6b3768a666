//! What the hosted LLM generators (`openai`, `gemini`) share: the prompt — numbered sources and
//! an instruction to cite them — reading a streamed answer's server-sent events, and turning the
//! service's failures into [`GenerateError`]s the HTTP layer can map.

use std::fmt::Write;

use aurora_actors::ports::{GenerateError, GenerateRequest, Piece};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;

use super::remote::RemoteError;

/// The instruction every LLM answers under. The refusal sentence is the extractive answerer's
/// own, so "nothing answers this" reads the same whoever writes the answer.
pub const INSTRUCTIONS: &str = "You answer questions using only the numbered sources you are \
given. After each statement, cite the sources that support it by number in square brackets, \
like [1] or [2][3]. Cite only the numbers given; never invent sources, URLs or facts. If the \
sources do not answer the question, reply exactly: I don't know: the sources I have do not \
answer that. Be concise and answer in the language of the question.";

/// The question with its numbered sources, as the user turn of the prompt.
pub fn prompt(request: &GenerateRequest) -> String {
    let mut prompt = String::from("Sources:\n");
    for source in &request.sources {
        let _ = write!(prompt, "\n[{}] {}", source.n, source.title);
        if !source.heading.is_empty() {
            let _ = write!(prompt, " — {}", source.heading);
        }
        if let Some(locator) = &source.locator {
            let _ = write!(prompt, " ({locator})");
        }
        let _ = write!(prompt, "\nURL: {}\n{}\n", source.url, source.text.trim());
    }
    let _ = write!(prompt, "\nQuestion: {}", request.question);
    prompt
}

/// A failed call as the answer's error: a 429 that outlasted the retries says when to come back.
pub fn generate_error(error: RemoteError) -> GenerateError {
    match error {
        RemoteError::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            ..
        } => GenerateError::RateLimited(retry_after),
        other => GenerateError::Service(other.to_string()),
    }
}

/// The `data` of each server-sent event of a streamed answer, up to OpenAI's `[DONE]`.
/// Dropping the stream closes the connection, which stops the generation upstream.
pub fn events(
    response: reqwest::Response,
    service: &'static str,
) -> BoxStream<'static, Result<String, GenerateError>> {
    response
        .bytes_stream()
        .eventsource()
        .map(move |event| {
            event
                .map(|e| e.data)
                .map_err(|e| GenerateError::Service(format!("{service} broke off its answer: {e}")))
        })
        .take_while(|data| futures::future::ready(!matches!(data, Ok(d) if d == "[DONE]")))
        .boxed()
}

/// A streamed answer as pieces: each event's data read by `parse` (a backend's chunk format);
/// a request that failed before streaming is the stream's one error.
pub fn pieces(
    sent: Result<reqwest::Response, GenerateError>,
    service: &'static str,
    parse: fn(&str) -> Result<Vec<Piece>, GenerateError>,
) -> BoxStream<'static, Result<Piece, GenerateError>> {
    let response = match sent {
        Ok(response) => response,
        Err(e) => return futures::stream::iter([Err(e)]).boxed(),
    };
    events(response, service)
        .flat_map(move |data| {
            let pieces = match data.and_then(|d| parse(&d)) {
                Ok(pieces) => pieces.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(pieces)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_actors::ports::Source;

    #[test]
    fn the_prompt_numbers_every_source() {
        let request = GenerateRequest {
            question: "How long do cats sleep?".into(),
            sources: vec![
                Source {
                    n: 1,
                    url: "https://a.example/cats".into(),
                    title: "Cats".into(),
                    heading: "Sleep".into(),
                    text: "Cats sleep 16 hours a day.".into(),
                    ..Source::default()
                },
                Source {
                    n: 2,
                    url: "https://b.example/dogs".into(),
                    title: "Dogs".into(),
                    heading: String::new(),
                    text: "Dogs sleep less.".into(),
                    ..Source::default()
                },
            ],
            max_tokens: None,
            temperature: None,
        };
        assert_eq!(
            prompt(&request),
            "Sources:\n\n[1] Cats — Sleep\nURL: https://a.example/cats\nCats sleep 16 hours a day.\n\
             \n[2] Dogs\nURL: https://b.example/dogs\nDogs sleep less.\n\nQuestion: How long do cats sleep?"
        );
    }
}
