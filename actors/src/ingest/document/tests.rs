//! Parsing tests on files made by Debian's tools (`scripts/fixtures`, described in
//! `tests/fixtures/documents/README.md`) and on hostile input built here.

use std::io::Write;

use super::*;
use crate::model::Unit;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/documents");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture (scripts/fixtures makes it)")
}

fn parse_file(name: &str) -> Result<Parsed, DocumentError> {
    parse(
        &fixture(name),
        Hint {
            content_type: None,
            file_name: Some(name),
        },
        &Limits::default(),
    )
}

/// The position of each needle in `haystack`, asserting all are there and in this order.
fn in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let at = haystack[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing (after byte {from}) in:\n{haystack}"));
        from += at + needle.len();
    }
}

/// The guide's section headings, in order.
const GUIDE_HEADINGS: &[&str] = &[
    "## Where to watch",
    "## Camera settings",
    "## Measuring storms",
];

/// Zip entries (name, bytes), deflated.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, bytes) in entries {
        zip.start_file(*name, options).expect("zip entry");
        zip.write_all(bytes).expect("zip write");
    }
    zip.finish().expect("zip finish");
    out.into_inner()
}

/// The least a DOCX needs for a reader to open its document part.
const DOCX_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
const DOCX_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

#[test]
fn text_kinds_are_told_apart_by_content_then_name() {
    let hint = |name| Hint {
        content_type: None,
        file_name: Some(name),
    };
    assert_eq!(
        detect(b"<!doctype html><p>x</p>", hint("a.txt")),
        Ok(Kind::Html)
    );
    assert_eq!(
        detect(b"# Title\n\nBody", hint("notes.md")),
        Ok(Kind::Markdown)
    );
    assert_eq!(
        detect(b"# Title\n\nBody", hint("notes.txt")),
        Ok(Kind::Text)
    );
    let typed = Hint {
        content_type: Some("text/markdown; charset=utf-8"),
        file_name: None,
    };
    assert_eq!(detect(b"plain words", typed), Ok(Kind::Markdown));
    // The name says PDF; the content says text.
    assert_eq!(detect(b"just words", hint("report.pdf")), Ok(Kind::Text));
}

#[test]
fn binary_and_images_are_unsupported_with_their_type() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    assert_eq!(
        detect(png, Hint::default()),
        Err(DocumentError::Unsupported("image/png".into()))
    );
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let err = parse(&junk, Hint::default(), &Limits::default()).unwrap_err();
    assert!(matches!(err, DocumentError::Unsupported(_)), "{err}");
}

#[test]
fn a_zip_that_is_no_document_is_unsupported() {
    let zip = zip_of(&[("readme.txt", b"hello")]);
    assert_eq!(
        detect(&zip, Hint::default()),
        Err(DocumentError::Unsupported("application/zip".into()))
    );
}

#[test]
fn markdown_and_text_pass_through_with_a_title() {
    let parsed = parse(
        "# Leave policy\n\nSixteen weeks of parental leave.".as_bytes(),
        Hint {
            content_type: Some("text/markdown"),
            file_name: None,
        },
        &Limits::default(),
    )
    .expect("markdown");
    assert_eq!(parsed.kind, Some(Kind::Markdown));
    assert_eq!(parsed.title.as_deref(), Some("Leave policy"));
    assert!(parsed.markdown.contains("Sixteen weeks"));
    assert!(parsed.marks.is_empty());
}

#[test]
fn oversized_and_empty_files_are_refused() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse(b"more than ten bytes", Hint::default(), &limits),
        Err(DocumentError::TooLarge { size: 19, max: 10 })
    );
    assert_eq!(
        parse(b"  \n ", Hint::default(), &Limits::default()),
        Err(DocumentError::Empty)
    );
}

#[test]
fn a_zip_bomb_disguised_as_docx_is_refused_before_it_inflates() {
    let zeros = vec![0u8; 8 << 20];
    let bomb = zip_of(&[
        ("[Content_Types].xml", DOCX_TYPES.as_bytes()),
        ("_rels/.rels", DOCX_RELS.as_bytes()),
        ("word/document.xml", &zeros),
    ]);
    assert!(
        bomb.len() < 64 << 10,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let limits = Limits {
        max_inflated: 1 << 20,
        ..Limits::default()
    };
    let err = parse(&bomb, Hint::default(), &limits).unwrap_err();
    assert!(
        matches!(err, DocumentError::Inflates { kind: "docx", .. }),
        "{err}"
    );
}

#[test]
fn an_odt_bomb_is_refused_at_the_cap() {
    let zeros = vec![b' '; 8 << 20];
    let bomb = zip_of(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("content.xml", &zeros),
    ]);
    let limits = Limits {
        max_inflated: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        parse(&bomb, Hint::default(), &limits),
        Err(DocumentError::Inflates {
            kind: "ODT",
            max: 1 << 20
        })
    );
}

#[test]
fn garbage_after_a_pdf_header_is_a_corrupt_pdf() {
    let err = parse(b"%PDF-1.7\n garbage", Hint::default(), &Limits::default()).unwrap_err();
    assert!(
        matches!(err, DocumentError::Corrupt { kind: "PDF", .. }),
        "{err}"
    );
}

#[test]
fn hostile_bytes_never_panic_or_hang() {
    // A cheap, deterministic stand-in for the fuzz targets: every prefix and thousands of byte
    // flips of each real fixture must give a document or a clean error.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limits = Limits {
        deadline: std::time::Duration::from_secs(5),
        ..Limits::default()
    };
    for name in [
        "guide.pdf",
        "guide.docx",
        "guide.odt",
        "guide.epub",
        "slides.pptx",
    ] {
        let original = fixture(name);
        for cut in (0..original.len()).step_by(original.len() / 40 + 1) {
            let _ = parse(&original[..cut], Hint::default(), &limits);
        }
        for _ in 0..60 {
            let mut mutant = original.clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % mutant.len();
                mutant[at] = next() as u8;
            }
            let _ = parse(&mutant, Hint::default(), &limits);
        }
    }
}

#[test]
fn a_pdf_keeps_its_pages_metadata_and_words_in_order() {
    let parsed = parse_file("guide.pdf").expect("guide.pdf");
    assert_eq!(parsed.kind, Some(Kind::Pdf));
    assert_eq!(parsed.title.as_deref(), Some("Aurora Field Guide"));
    assert_eq!(parsed.author.as_deref(), Some("Ingrid Solberg"));
    assert_eq!(parsed.parts, Some(3));
    let pages: Vec<(u64, &str)> = parsed
        .marks
        .iter()
        .enumerate()
        .map(|(i, mark)| {
            let end = parsed
                .marks
                .get(i + 1)
                .map_or(parsed.markdown.len(), |m| m.offset);
            assert_eq!(mark.locator.unit, Unit::Page);
            (mark.locator.start, &parsed.markdown[mark.offset..end])
        })
        .collect();
    assert_eq!(pages.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2, 3]);
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat(pages[0].1).contains("The quiet fjord of Lyngen glows green on clear winter nights.")
    );
    assert!(
        flat(pages[1].1)
            .contains("Photographers should set an exposure of eight seconds at ISO 1600.")
    );
    assert!(flat(pages[2].1).contains("recorded a disturbance of 450 nanotesla."));
    in_order(
        &flat(&parsed.markdown),
        &["Where to watch", "Camera settings", "Measuring storms"],
    );
}

#[test]
fn an_encrypted_pdf_is_refused_as_encrypted() {
    assert_eq!(
        parse_file("guide-encrypted.pdf"),
        Err(DocumentError::Encrypted)
    );
}

#[test]
fn a_truncated_pdf_is_refused_as_cut_short() {
    // lopdf alone would rebuild the first 40 % and say nothing of what is missing.
    assert_eq!(
        parse_file("guide-truncated.pdf"),
        Err(DocumentError::Corrupt {
            kind: "PDF",
            detail: "the file is cut short (it has no end-of-file marker)".to_string()
        })
    );
}

#[test]
fn docx_keeps_headings_and_tables() {
    let parsed = parse_file("guide.docx").expect("guide.docx");
    assert_eq!(parsed.kind, Some(Kind::Docx));
    assert_eq!(parsed.title.as_deref(), Some("Aurora Field Guide"));
    assert_eq!(parsed.author.as_deref(), Some("Ingrid Solberg"));
    let md = &parsed.markdown;
    in_order(md, GUIDE_HEADINGS);
    assert!(md.contains("| Town"), "a pipe table:\n{md}");
    assert!(md.contains("The quiet fjord of Lyngen glows green on clear winter nights."));
}

#[test]
fn odt_keeps_headings_and_tables() {
    let parsed = parse_file("guide.odt").expect("guide.odt");
    assert_eq!(parsed.kind, Some(Kind::Odt));
    assert_eq!(parsed.title.as_deref(), Some("Aurora Field Guide"));
    let md = &parsed.markdown;
    in_order(md, GUIDE_HEADINGS);
    assert!(md.contains("| Town |"), "a pipe table:\n{md}");
    assert!(md.contains("| --- |"), "a header rule:\n{md}");
    assert!(md.contains("The quiet fjord of Lyngen glows green on clear winter nights."));
}

#[test]
fn epub_is_read_chapter_by_chapter() {
    let parsed = parse_file("guide.epub").expect("guide.epub");
    assert_eq!(parsed.kind, Some(Kind::Epub));
    assert_eq!(parsed.title.as_deref(), Some("Aurora Field Guide"));
    assert_eq!(parsed.author.as_deref(), Some("Ingrid Solberg"));
    assert!(!parsed.marks.is_empty());
    assert!(parsed.marks.iter().all(|m| m.locator.unit == Unit::Chapter));
    in_order(
        &parsed.markdown,
        &[
            "The quiet fjord of Lyngen glows green",
            "Photographers should set an exposure",
            "450 nanotesla",
        ],
    );
}

#[test]
fn pptx_is_one_section_per_slide() {
    let parsed = parse_file("slides.pptx").expect("slides.pptx");
    assert_eq!(parsed.kind, Some(Kind::Pptx));
    assert_eq!(parsed.parts, Some(parsed.marks.len() as u32));
    let slide = |n: u64| {
        let i = parsed
            .marks
            .iter()
            .position(|m| m.locator == Locator::one(Unit::Slide, n))
            .expect("slide mark");
        let end = parsed
            .marks
            .get(i + 1)
            .map_or(parsed.markdown.len(), |m| m.offset);
        &parsed.markdown[parsed.marks[i].offset..end]
    };
    let second = (1..=parsed.marks.len() as u64)
        .find(|&n| {
            slide(n).contains("Auroral ovals expand toward the equator during strong storms.")
        })
        .expect("the sentence is on a slide");
    assert!(
        slide(second).contains("## "),
        "the slide has its title:\n{}",
        slide(second)
    );
}

#[test]
fn html_files_become_their_main_content() {
    let parsed = parse_file("guide.html").expect("guide.html");
    assert_eq!(parsed.kind, Some(Kind::Html));
    assert_eq!(parsed.title.as_deref(), Some("Aurora Field Guide"));
    assert!(
        parsed
            .markdown
            .contains("The quiet fjord of Lyngen glows green on clear winter nights.")
    );
}
