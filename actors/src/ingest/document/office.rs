//! Microsoft Office files (DOCX, PPTX, XLSX and the legacy binary DOC, PPT, XLS) through
//! office_oxide, whose Markdown keeps headings as headings and tables as tables. A presentation
//! becomes one section per slide, each marked so a passage cites its slide. office_oxide's own
//! limits bound what a package may inflate to, so a zip bomb is refused before it is inflated.

use std::io::Cursor;

use office_oxide::ir::DocumentIR;
use office_oxide::options::ParseOptions;
use office_oxide::{DocumentFormat, OfficeError};

use super::{Budget, DocumentError, Kind, Limits, Parsed, Parts};
use crate::model::{Locator, Unit};

pub(super) fn parse(
    kind: Kind,
    bytes: &[u8],
    limits: &Limits,
    deadline: &Budget,
) -> Result<Parsed, DocumentError> {
    let format = match kind {
        Kind::Docx => DocumentFormat::Docx,
        Kind::Pptx => DocumentFormat::Pptx,
        Kind::Xlsx => DocumentFormat::Xlsx,
        Kind::Doc => DocumentFormat::Doc,
        Kind::Ppt => DocumentFormat::Ppt,
        _ => DocumentFormat::Xls,
    };
    let label = kind.label();
    let mut options = ParseOptions::default();
    let cap = limits.max_inflated as u64;
    options.limits.part_bytes = cap;
    options.limits.package_bytes = cap.saturating_mul(4);
    options.limits.package_entries = 20_000;
    options.limits.embedded_depth = 1;
    options.limits.embedded_packages = 16;
    options.limits.text_chars = limits.max_chars;
    options.limits.memory_bytes = cap.saturating_mul(4);
    let document =
        office_oxide::Document::from_reader_with(Cursor::new(bytes.to_vec()), format, &options)
            .map_err(|e| error(e, label, limits))?;
    deadline.check()?;
    let ir = document.to_ir();
    let (title, author) = (ir.metadata.title.clone(), ir.metadata.author.clone());
    let parts = ir.sections.len() as u32;
    if !matches!(kind, Kind::Pptx | Kind::Ppt) {
        return Ok(Parsed {
            title,
            author,
            markdown: ir.to_markdown(),
            ..Parsed::default()
        });
    }
    let mut slides = Parts::default();
    let mut warnings = Vec::new();
    for (i, section) in ir.sections.iter().enumerate() {
        if i == limits.max_parts {
            warnings.push(format!(
                "the presentation has {parts} slides; the first {} were read",
                limits.max_parts
            ));
            break;
        }
        deadline.check()?;
        let one = DocumentIR {
            metadata: ir.metadata.clone(),
            sections: vec![section.clone()],
        };
        slides.push(Locator::one(Unit::Slide, i as u64 + 1), &one.to_markdown());
    }
    Ok(Parsed {
        title,
        author,
        markdown: slides.markdown,
        marks: slides.marks,
        parts: Some(parts),
        warnings,
        ..Parsed::default()
    })
}

fn error(e: OfficeError, kind: &'static str, limits: &Limits) -> DocumentError {
    let message = e.to_string();
    // The limit errors arrive wrapped in each format's own error type: their text is stable.
    if message.contains("decompression limit exceeded")
        || message.contains("package limit exceeded")
    {
        return DocumentError::Inflates {
            kind,
            max: limits.max_inflated,
        };
    }
    if message.contains("ncrypt") || message.contains("assword") {
        return DocumentError::Encrypted;
    }
    match e {
        OfficeError::UnsupportedFormat(what) => DocumentError::Unsupported(what),
        _ => DocumentError::Corrupt {
            kind,
            detail: message,
        },
    }
}
