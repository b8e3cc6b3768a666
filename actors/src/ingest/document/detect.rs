//! What a file is, from its content: magic bytes first, then the parts a zip holds (DOCX, PPTX,
//! ODT and EPUB are all zips), then text. The Content-Type and the file name only decide
//! between kinds of text (HTML, Markdown, plain).

use super::{DocumentError, Hint, zipped};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pdf,
    Docx,
    Pptx,
    Xlsx,
    /// The legacy binary Office formats (OLE compound files).
    Doc,
    Ppt,
    Xls,
    Odt,
    Epub,
    Html,
    Markdown,
    Text,
    /// Audio or video, by its media type.
    Audio(&'static str),
}

impl Kind {
    /// Bounded metric label and the name users see.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Docx => "docx",
            Kind::Pptx => "pptx",
            Kind::Xlsx => "xlsx",
            Kind::Doc => "doc",
            Kind::Ppt => "ppt",
            Kind::Xls => "xls",
            Kind::Odt => "odt",
            Kind::Epub => "epub",
            Kind::Html => "html",
            Kind::Markdown => "markdown",
            Kind::Text => "text",
            Kind::Audio(_) => "audio",
        }
    }

    /// Whether a page of this kind is a document rather than a web page.
    pub fn is_document(self) -> bool {
        !matches!(self, Kind::Html)
    }
}

/// The kind of `bytes`, or why Aurora cannot read them.
pub fn detect(bytes: &[u8], hint: Hint<'_>) -> Result<Kind, DocumentError> {
    // A PDF may have junk before its header; readers accept it within the first kilobyte.
    if bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return Ok(Kind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return zipped::kind(bytes);
    }
    if let Some(found) = infer::get(bytes) {
        return match found.mime_type() {
            "application/msword" => Ok(Kind::Doc),
            "application/vnd.ms-powerpoint" => Ok(Kind::Ppt),
            "application/vnd.ms-excel" => Ok(Kind::Xls),
            "audio/x-wav" | "audio/wav" => Ok(Kind::Audio("audio/wav")),
            "audio/mpeg" => Ok(Kind::Audio("audio/mpeg")),
            "audio/ogg" | "audio/opus" => Ok(Kind::Audio("audio/ogg")),
            "audio/x-flac" => Ok(Kind::Audio("audio/flac")),
            "audio/m4a" | "audio/x-m4a" | "video/mp4" | "audio/mp4" => Ok(Kind::Audio("audio/mp4")),
            "video/webm" => Ok(Kind::Audio("audio/webm")),
            text if text.starts_with("text/") => Ok(text_kind(bytes, hint)),
            other => Err(DocumentError::Unsupported(other.to_string())),
        };
    }
    if looks_binary(bytes) {
        let declared = hint
            .content_type
            .map(crate::model::media_type)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_string());
        return Err(DocumentError::Unsupported(declared));
    }
    Ok(text_kind(bytes, hint))
}

/// HTML, Markdown or plain text: the content says HTML; otherwise the declared type or the
/// file name's extension says Markdown; otherwise plain text.
fn text_kind(bytes: &[u8], hint: Hint<'_>) -> Kind {
    let media = hint
        .content_type
        .map(crate::model::media_type)
        .unwrap_or_default();
    if crate::scraper::extract::is_html(&media, bytes)
        || (media.is_empty() && crate::scraper::extract::is_html("", bytes))
    {
        return Kind::Html;
    }
    let extension = hint
        .file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match (media.as_str(), extension.as_str()) {
        ("text/markdown" | "text/x-markdown", _) | (_, "md" | "markdown" | "mdown") => {
            Kind::Markdown
        }
        (_, "html" | "htm" | "xhtml") => Kind::Html,
        _ => Kind::Text,
    }
}

/// Text has no NUL bytes and few control characters in its first 8 KB.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        // UTF-16 text has NULs too; it carries a byte-order mark.
        return !(head.starts_with(b"\xff\xfe") || head.starts_with(b"\xfe\xff"));
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b))
        .count();
    controls * 20 > head.len().max(1)
}
