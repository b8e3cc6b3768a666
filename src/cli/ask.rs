//! `aurora ask "QUESTION"`: a cited answer streamed to the terminal, its sources listed under
//! it (as clickable links where the terminal supports OSC 8). With `--server` it asks a running
//! Aurora over HTTP (`POST /v1/query`, streaming) with the API key in `AURORA_API_KEY`; without,
//! it answers in-process on the configured stores (the embedded ones on a bare machine).
//!
//! Exit codes: 0 answered, 1 the collection holds no answer ("I don't know"), 2 an error (bad
//! key, no such collection, server unreachable).

use std::io::{IsTerminal, Write};

use anyhow::Context;
use aurora_actors::rag::{AnswerEvent, AnswerRequest};
use clap::Args;
use futures::StreamExt;
use serde::Deserialize;

use crate::http::core::search::deep_link;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The collection to answer from (default: answer.default_collection).
    #[arg(long, short = 'c')]
    pub collection: Option<String>,
    /// A running Aurora's core URL (e.g. http://127.0.0.1:8080); the key comes from
    /// AURORA_API_KEY. Without it, Aurora answers in-process on the configured stores.
    #[arg(long, env = "AURORA_SERVER")]
    pub server: Option<String>,
    /// Sources to give the answerer (default: answer.default_k).
    #[arg(long)]
    pub k: Option<usize>,
}

/// How `aurora ask` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Answered,
    /// Nothing in the collection answers the question.
    Unknown,
}

impl Asked {
    pub fn exit_code(self) -> i32 {
        match self {
            Asked::Answered => 0,
            Asked::Unknown => 1,
        }
    }
}

/// One source as it is printed.
#[derive(Debug, Deserialize)]
struct Source {
    n: usize,
    title: String,
    source_url: String,
    link: String,
    #[serde(default)]
    locator: Option<Label>,
}

#[derive(Debug, Deserialize)]
struct Label {
    label: String,
}

/// The end of an answer: what the `done` event (or the in-process answer) says.
#[derive(Debug, Deserialize)]
struct Finished {
    answered: bool,
    citations: Vec<Source>,
}

#[derive(Debug, Deserialize)]
struct Piece {
    text: String,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(Debug, Deserialize)]
struct EnvelopeError {
    message: String,
}

pub async fn ask(settings: &Settings, args: AskArgs) -> anyhow::Result<Asked> {
    let collection = args
        .collection
        .clone()
        .unwrap_or_else(|| settings.answer.default_collection.clone());
    let k = args.k.unwrap_or(settings.answer.default_k);
    let mut out = std::io::stdout().lock();
    let finished = match &args.server {
        Some(server) => over_http(server, &args.question, &collection, k, &mut out).await?,
        None => in_process(settings, &args.question, &collection, k, &mut out).await?,
    };
    print_sources(&mut out, &finished, links_supported())?;
    Ok(if finished.answered {
        Asked::Answered
    } else {
        Asked::Unknown
    })
}

async fn over_http(
    server: &str,
    question: &str,
    collection: &str,
    k: usize,
    out: &mut impl Write,
) -> anyhow::Result<Finished> {
    let url = format!("{}/v1/query", server.trim_end_matches('/'));
    let mut request = reqwest::Client::builder()
        .build()
        .context("HTTP client")?
        .post(&url)
        .json(&serde_json::json!({
            "question": question, "collection": collection, "k": k, "stream": true,
        }));
    if let Ok(key) = std::env::var("AURORA_API_KEY")
        && !key.trim().is_empty()
    {
        request = request.bearer_auth(key.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("could not reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Envelope>(&body)
            .map(|e| e.error.message)
            .unwrap_or(body);
        let hint = match status.as_u16() {
            401 => " (set AURORA_API_KEY to a valid API key)",
            403 => " (the API key's role is too small)",
            _ => "",
        };
        anyhow::bail!("{url} answered {status}: {message}{hint}");
    }
    let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
    while let Some(event) = events.next().await {
        let event = event.context("reading the answer stream")?;
        match event.event.as_str() {
            "token" => {
                let piece: Piece = serde_json::from_str(&event.data)?;
                write!(out, "{}", piece.text)?;
                out.flush()?;
            }
            "done" => {
                writeln!(out)?;
                return Ok(serde_json::from_str(&event.data)?);
            }
            "error" => {
                let envelope: Envelope = serde_json::from_str(&event.data)?;
                anyhow::bail!("the answer failed: {}", envelope.error.message);
            }
            _ => {}
        }
    }
    anyhow::bail!("the server ended the answer stream before it was done")
}

async fn in_process(
    settings: &Settings,
    question: &str,
    collection: &str,
    k: usize,
    out: &mut impl Write,
) -> anyhow::Result<Finished> {
    let tree = crate::startup::spawn_engine(settings).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let mut request = AnswerRequest::new(collection, question, k);
    request.stream = Some(tx);
    let router = tree.handles().router();
    let answering = tokio::spawn(async move { router.answer(request).await });
    while let Some(event) = rx.recv().await {
        if let AnswerEvent::Text(text) = event {
            write!(out, "{text}")?;
            out.flush()?;
        }
    }
    let answer = answering
        .await
        .context("the answer task")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    writeln!(out)?;
    let citations = answer
        .citations
        .into_iter()
        .map(|c| Source {
            link: deep_link(&c.source_url, c.locator),
            locator: c.locator.map(|l| Label {
                label: l.to_string(),
            }),
            n: c.n,
            title: c.title,
            source_url: c.source_url,
        })
        .collect();
    tree.shutdown().await;
    Ok(Finished {
        answered: answer.answered,
        citations,
    })
}

/// Whether stdout is a terminal that shows OSC 8 hyperlinks (most do; `dumb` does not).
fn links_supported() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
        && std::env::var_os("NO_COLOR").is_none()
}

fn print_sources(out: &mut impl Write, finished: &Finished, links: bool) -> std::io::Result<()> {
    if finished.citations.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nSources:")?;
    for source in &finished.citations {
        let title = if source.title.trim().is_empty() {
            &source.source_url
        } else {
            &source.title
        };
        let place = source
            .locator
            .as_ref()
            .map(|l| format!(" ({})", l.label))
            .unwrap_or_default();
        // The link only when the terminal shows it as one; the URL is printed either way.
        let shown = if links {
            format!("\x1b]8;;{}\x1b\\{title}\x1b]8;;\x1b\\", source.link)
        } else {
            title.to_string()
        };
        writeln!(
            out,
            "  [{}] {shown}{place}\n      {}",
            source.n, source.link
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> Finished {
        Finished {
            answered: true,
            citations: vec![Source {
                n: 1,
                title: "Guide".into(),
                source_url: "http://x/guide.pdf".into(),
                link: "http://x/guide.pdf#page=3".into(),
                locator: Some(Label {
                    label: "page 3".into(),
                }),
            }],
        }
    }

    #[test]
    fn sources_print_with_and_without_terminal_links() {
        let mut plain = Vec::new();
        print_sources(&mut plain, &finished(), false).unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert_eq!(
            plain,
            "\nSources:\n  [1] Guide (page 3)\n      http://x/guide.pdf#page=3\n"
        );
        let mut linked = Vec::new();
        print_sources(&mut linked, &finished(), true).unwrap();
        let linked = String::from_utf8(linked).unwrap();
        assert!(linked.contains("\x1b]8;;http://x/guide.pdf#page=3\x1b\\Guide\x1b]8;;\x1b\\"));
    }
}
