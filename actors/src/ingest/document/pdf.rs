//! PDF: text page by page (lopdf), each page marked so a passage cites its page, with the
//! title and author of the `/Info` dictionary. Lines that repeat on most pages (running headers,
//! footers, page numbers) are dropped: they are noise to search and to the quality filters.

use lopdf::{Document, LoadOptions, Object};

use super::{Budget, DocumentError, Limits, Parsed, Parts};
use crate::model::{Locator, Unit};

const KIND: &str = "PDF";

pub(super) fn parse(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Budget,
) -> Result<Parsed, DocumentError> {
    let options = LoadOptions {
        max_decompressed_size: Some(limits.max_inflated),
        ..LoadOptions::default()
    };
    // A PDF ends with `%%EOF`; without it the file was cut short. lopdf would rebuild what it
    // can, and an index would silently miss the pages that never arrived.
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(DocumentError::Corrupt {
            kind: KIND,
            detail: "the file is cut short (it has no end-of-file marker)".to_string(),
        });
    }
    let document = Document::load_mem_with_options(bytes, options).map_err(|e| error(e, limits))?;
    // An empty user password is opened by the loader itself; anything still locked needs one.
    if document.is_encrypted() {
        return Err(DocumentError::Encrypted);
    }
    deadline.check()?;
    let pages = document.get_pages();
    let mut warnings = Vec::new();
    if pages.len() > limits.max_parts {
        warnings.push(format!(
            "the PDF has {} pages; the first {} were read",
            pages.len(),
            limits.max_parts
        ));
    }
    let mut texts: Vec<(u32, String)> = Vec::new();
    let mut unreadable = Vec::new();
    for &number in pages.keys().take(limits.max_parts) {
        deadline.check()?;
        let mut text = String::new();
        let mut failed = false;
        for chunk in document.extract_text_chunks_with_limit(&[number], limits.max_inflated) {
            match chunk {
                Ok(piece) => text.push_str(&piece),
                Err(lopdf::Error::Decompress(_)) => {
                    return Err(DocumentError::Inflates {
                        kind: KIND,
                        max: limits.max_inflated,
                    });
                }
                Err(_) => failed = true,
            }
        }
        if failed && text.trim().is_empty() {
            unreadable.push(number.to_string());
        }
        texts.push((number, text));
    }
    if !unreadable.is_empty() {
        warnings.push(format!(
            "no text could be read from page(s) {}",
            unreadable.join(", ")
        ));
    }
    let bodies: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    let boilerplate = crate::ingest::quality::boilerplate::boilerplate_ratio(&bodies);
    let cleaned = crate::ingest::quality::boilerplate::strip_repeated(&bodies);
    let mut parts = Parts::default();
    for ((number, _), text) in texts.iter().zip(cleaned) {
        parts.push(
            Locator::one(Unit::Page, u64::from(*number)),
            &markdown(&text),
        );
    }
    if parts.markdown.is_empty() && !texts.is_empty() {
        warnings.push("the PDF has no text layer (a scan?); Aurora does not run OCR".to_string());
    }
    Ok(Parsed {
        title: info(&document, b"Title"),
        author: info(&document, b"Author"),
        markdown: parts.markdown,
        marks: parts.marks,
        parts: Some(pages.len() as u32),
        warnings,
        boilerplate: Some(boilerplate),
        ..Parsed::default()
    })
}

fn error(e: lopdf::Error, limits: &Limits) -> DocumentError {
    match e {
        lopdf::Error::InvalidPassword
        | lopdf::Error::Decryption(_)
        | lopdf::Error::UnsupportedSecurityHandler(_)
        | lopdf::Error::AlreadyEncrypted => DocumentError::Encrypted,
        lopdf::Error::Decompress(_) => DocumentError::Inflates {
            kind: KIND,
            max: limits.max_inflated,
        },
        other => DocumentError::Corrupt {
            kind: KIND,
            detail: other.to_string(),
        },
    }
}

/// A text entry of the document's `/Info` dictionary.
fn info(document: &Document, key: &[u8]) -> Option<String> {
    let info = match document.trailer.get(b"Info").ok()? {
        Object::Reference(id) => document.get_dictionary(*id).ok()?,
        Object::Dictionary(dict) => dict,
        _ => return None,
    };
    lopdf::decode_text_string(info.get(key).ok()?).ok()
}

/// A page's text as Markdown paragraphs: the PDF's lines kept, blank runs collapsed, and lines
/// that Markdown would read as syntax (a leading `#`, `>`, `-`…) escaped.
fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut blank = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with(['#', '>', '-', '+', '*', '=', '|', '`']) {
            out.push('\\');
        }
        out.push_str(trimmed);
        out.push('\n');
    }
    out
}
