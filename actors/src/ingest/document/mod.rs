//! Documents from bytes: the one step that turns a file — fetched by a scrape or a crawl, or
//! uploaded — into Markdown with its title, author and the place where each page, slide or
//! chapter starts, so a passage can be cited as "page 12".
//!
//! The kind is decided by the content (magic bytes, the parts of a zip), never by the
//! Content-Type or the file name alone, which only break ties between kinds of text.
//!
//! Untrusted input meets bounded work: the file's size is capped before parsing, inflated zip
//! parts and PDF streams are capped while parsing (a zip bomb costs a few milliseconds), page
//! and slide loops stop at a deadline, and a parser that panics is caught and reported as a
//! corrupt file. Encrypted files are refused with that reason rather than yielding nothing.

mod detect;
mod epub;
mod odt;
mod office;
mod pdf;
mod zipped;

use std::time::{Duration, Instant};

pub use detect::{Kind, detect};

use crate::model::{DocumentFacts, Locator, Mark};

/// What the caller knows about the file besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hint<'a> {
    pub content_type: Option<&'a str>,
    pub file_name: Option<&'a str>,
}

/// Bounds on one document's parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: usize,
    /// Most bytes any one compressed part (zip entry, PDF stream) may inflate to.
    pub max_inflated: usize,
    /// Most pages, slides or chapters read.
    pub max_parts: usize,
    /// Most characters of Markdown produced; the rest is cut with a warning.
    pub max_chars: usize,
    /// Wall-clock budget for one document.
    pub deadline: Duration,
}

impl Limits {
    /// The defaults without the size cap, for a body whose size the fetcher already capped.
    pub fn unbounded_size() -> Self {
        Self {
            max_bytes: usize::MAX,
            ..Self::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_inflated: 64 << 20,
            max_parts: 5_000,
            max_chars: 20_000_000,
            deadline: Duration::from_secs(60),
        }
    }
}

/// A parsed document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub kind: Option<Kind>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub markdown: String,
    /// Where each page, slide or chapter starts in `markdown`, in order; empty for a document
    /// without parts (DOCX, ODT, text).
    pub marks: Vec<Mark>,
    /// Pages, slides or chapters in the file (read or not).
    pub parts: Option<u32>,
    /// Things the caller should know that did not stop the parse.
    pub warnings: Vec<String>,
    /// Share of the text in lines repeated on most parts (removed from `markdown`).
    pub boilerplate: Option<f32>,
}

impl Parsed {
    /// The facts a page or an upload carries about the document it came from.
    pub fn facts(&self, file_name: Option<String>) -> DocumentFacts {
        DocumentFacts {
            kind: self.kind.map(Kind::label).unwrap_or("text").to_string(),
            author: self.author.clone(),
            parts: self.parts,
            file_name,
            marks: self.marks.clone(),
            boilerplate: self.boilerplate,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the file is encrypted (password-protected); Aurora reads only unprotected files")]
    Encrypted,
    #[error("the file is damaged or not a valid {kind}: {detail}")]
    Corrupt { kind: &'static str, detail: String },
    #[error("the file is {size} bytes; the most Aurora reads is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("the {kind} expands past the cap of {max} bytes (a compression bomb?)")]
    Inflates { kind: &'static str, max: usize },
    #[error("unsupported file type `{0}`")]
    Unsupported(String),
    #[error("the file holds no text")]
    Empty,
    #[error("reading the file took longer than {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("{0} is audio or video: it needs a transcriber")]
    NeedsTranscription(String),
}

impl DocumentError {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            DocumentError::Encrypted => "encrypted",
            DocumentError::Corrupt { .. } => "corrupt",
            DocumentError::TooLarge { .. } => "too_large",
            DocumentError::Inflates { .. } => "inflates",
            DocumentError::Unsupported(_) => "unsupported",
            DocumentError::Empty => "empty",
            DocumentError::Timeout(_) => "timeout",
            DocumentError::NeedsTranscription(_) => "audio",
        }
    }
}

/// A [`Hint`] that can cross to a blocking thread.
#[derive(Debug, Clone, Default)]
pub struct OwnedHint {
    pub content_type: Option<String>,
    pub file_name: Option<String>,
}

/// Documents parsed at once, process-wide: one per core. More only holds more files' worth of
/// parsed structure in memory at once.
static SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// [`parse`] on the blocking pool, at most one document per core at a time.
pub async fn parse_blocking(
    bytes: Vec<u8>,
    hint: OwnedHint,
    limits: Limits,
) -> Result<Parsed, DocumentError> {
    let _slot = SLOTS.acquire().await;
    tokio::task::spawn_blocking(move || {
        let hint = Hint {
            content_type: hint.content_type.as_deref(),
            file_name: hint.file_name.as_deref(),
        };
        parse(&bytes, hint, &limits)
    })
    .await
    .unwrap_or_else(|_| {
        Err(DocumentError::Corrupt {
            kind: "document",
            detail: "the parser gave up on it".to_string(),
        })
    })
}

/// Parses `bytes` as whatever they turn out to be. CPU-bound: call it on a blocking thread.
pub fn parse(bytes: &[u8], hint: Hint<'_>, limits: &Limits) -> Result<Parsed, DocumentError> {
    let started = Instant::now();
    if bytes.len() > limits.max_bytes {
        return Err(DocumentError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let kind = detect(bytes, hint)?;
    let deadline = Budget {
        until: started + limits.deadline,
        limit: limits.deadline,
    };
    // The parsers are third-party code reading hostile input; a panic in one must cost this
    // file, not the worker (and the other files of its batch).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_kind(kind, bytes, limits, &deadline)
    }))
    .unwrap_or_else(|_| {
        Err(DocumentError::Corrupt {
            kind: kind.label(),
            detail: "the parser gave up on it".to_string(),
        })
    });
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics::counter!("aurora_documents_parsed_total", "kind" => kind.label(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("aurora_document_parse_duration_seconds", "kind" => kind.label())
        .record(started.elapsed().as_secs_f64());
    let mut parsed = result?;
    parsed.kind = Some(kind);
    finish(&mut parsed, limits);
    if parsed.markdown.trim().is_empty() {
        return Err(DocumentError::Empty);
    }
    Ok(parsed)
}

fn parse_kind(
    kind: Kind,
    bytes: &[u8],
    limits: &Limits,
    deadline: &Budget,
) -> Result<Parsed, DocumentError> {
    match kind {
        Kind::Pdf => pdf::parse(bytes, limits, deadline),
        Kind::Docx | Kind::Pptx | Kind::Xlsx | Kind::Doc | Kind::Ppt | Kind::Xls => {
            office::parse(kind, bytes, limits, deadline)
        }
        Kind::Odt => odt::parse(bytes, limits),
        Kind::Epub => epub::parse(bytes, limits, deadline),
        Kind::Html => Ok(html(&String::from_utf8_lossy(bytes))),
        Kind::Markdown | Kind::Text => Ok(Parsed {
            title: first_heading(&text(bytes)),
            markdown: text(bytes),
            ..Parsed::default()
        }),
        Kind::Audio(mime) => Err(DocumentError::NeedsTranscription(mime.to_string())),
    }
}

/// Whether the bytes are a packaged document (PDF, zip), whatever they were served as.
pub fn looks_packaged(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-") || bytes.starts_with(b"PK\x03\x04")
}

/// A document's Markdown as simple HTML (headings and paragraphs, text escaped), for callers
/// who ask a document for the `html` format.
pub fn to_html(markdown: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::with_capacity(markdown.len() + markdown.len() / 8);
    for block in markdown
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        let level = block.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&level) && block[level..].starts_with(' ') && !block.contains('\n') {
            html.push_str(&format!(
                "<h{level}>{}</h{level}>\n",
                escape(block[level..].trim())
            ));
        } else {
            html.push_str(&format!("<p>{}</p>\n", escape(block)));
        }
    }
    html
}

/// Text in any of the encodings the web uses, as UTF-8.
fn text(bytes: &[u8]) -> String {
    crate::scraper::charset::decode(bytes, None, false).0
}

/// An HTML document's main content as Markdown, with its title.
fn html(source: &str) -> Parsed {
    let (title, markdown) = extract_html(source, true);
    Parsed {
        title,
        markdown,
        ..Parsed::default()
    }
}

/// All of an (X)HTML part's content as Markdown: an e-book chapter is content throughout.
fn html_content(source: &str) -> String {
    extract_html(source, false).1
}

fn extract_html(source: &str, only_main_content: bool) -> (Option<String>, String) {
    let base = url::Url::parse("http://document.invalid/").expect("static URL");
    let selectors = crate::scraper::extract::Selectors::default();
    let page = crate::scraper::extract::extract(
        source,
        &base,
        &crate::scraper::extract::Options {
            only_main_content,
            selectors: &selectors,
            remove_base64_images: true,
            want_html: false,
        },
    );
    (page.title, page.markdown)
}

fn first_heading(markdown: &str) -> Option<String> {
    markdown.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix("# ")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
}

/// Tidies what every parser produced: blank titles dropped, the Markdown cut at the cap.
fn finish(parsed: &mut Parsed, limits: &Limits) {
    parsed.title = parsed
        .title
        .take()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty());
    parsed.author = parsed
        .author
        .take()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if parsed.markdown.len() > limits.max_chars {
        let mut cut = limits.max_chars;
        while !parsed.markdown.is_char_boundary(cut) {
            cut -= 1;
        }
        parsed.markdown.truncate(cut);
        parsed.marks.retain(|m| m.offset < cut);
        parsed.warnings.push(format!(
            "the document's text was cut at {} characters",
            limits.max_chars
        ));
    }
}

/// The time one document may take; checked between pages, slides and chapters.
struct Budget {
    until: Instant,
    limit: Duration,
}

impl Budget {
    fn check(&self) -> Result<(), DocumentError> {
        match Instant::now() > self.until {
            true => Err(DocumentError::Timeout(self.limit)),
            false => Ok(()),
        }
    }
}

/// Builds a document's Markdown part by part, marking where each starts.
#[derive(Default)]
struct Parts {
    markdown: String,
    marks: Vec<Mark>,
}

impl Parts {
    fn push(&mut self, locator: Locator, markdown: &str) {
        let markdown = markdown.trim();
        if markdown.is_empty() {
            return;
        }
        if !self.markdown.is_empty() {
            self.markdown.push_str("\n\n");
        }
        self.marks.push(Mark {
            offset: self.markdown.len(),
            locator,
        });
        self.markdown.push_str(markdown);
        self.markdown.push('\n');
    }
}

#[cfg(test)]
mod tests;
