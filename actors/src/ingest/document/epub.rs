//! EPUB: the container names the package (OPF); the package's spine lists the chapters in
//! reading order; each chapter is XHTML, turned into Markdown like any web page and marked as a
//! chapter. Title and author come from the package's Dublin Core metadata. (The `epub` crate is
//! GPL; the format is a zip of XML that the shared zip reader and roxmltree handle.)

use std::collections::HashMap;

use roxmltree::Document;

use super::zipped::Archive;
use super::{Budget, DocumentError, Limits, Parsed, Parts};
use crate::model::{Locator, Unit};

const KIND: &str = "EPUB";
const OPF: &str = "http://www.idpf.org/2007/opf";
const DC: &str = "http://purl.org/dc/elements/1.1/";

pub(super) fn parse(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Budget,
) -> Result<Parsed, DocumentError> {
    let mut archive = Archive::open(bytes, KIND, limits.max_inflated)?;
    let container = archive
        .read_text("META-INF/container.xml")?
        .ok_or_else(|| corrupt("no META-INF/container.xml"))?;
    let container =
        Document::parse(&container).map_err(|e| corrupt(&format!("container.xml: {e}")))?;
    let opf_path = container
        .descendants()
        .find(|n| n.tag_name().name() == "rootfile")
        .and_then(|n| n.attribute("full-path"))
        .ok_or_else(|| corrupt("the container names no package"))?
        .to_string();
    let opf = archive
        .read_text(&opf_path)?
        .ok_or_else(|| corrupt(&format!("no package at {opf_path}")))?;
    let opf = Document::parse(&opf).map_err(|e| corrupt(&format!("{opf_path}: {e}")))?;
    let base = opf_path.rsplit_once('/').map_or("", |(dir, _)| dir);

    let text_of = |ns: &str, name: &str| {
        opf.descendants()
            .find(|n| n.has_tag_name((ns, name)))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    let manifest: HashMap<&str, (&str, &str)> = opf
        .descendants()
        .filter(|n| n.has_tag_name((OPF, "item")))
        .filter_map(|n| {
            Some((
                n.attribute("id")?,
                (
                    n.attribute("href")?,
                    n.attribute("media-type").unwrap_or_default(),
                ),
            ))
        })
        .collect();
    let spine: Vec<&str> = opf
        .descendants()
        .filter(|n| n.has_tag_name((OPF, "itemref")) && n.attribute("linear") != Some("no"))
        .filter_map(|n| n.attribute("idref"))
        .collect();
    if spine.is_empty() {
        return Err(corrupt("the package's spine is empty"));
    }

    let mut chapters = Parts::default();
    let mut warnings = Vec::new();
    let mut number = 0u64;
    for idref in &spine {
        deadline.check()?;
        let Some((href, media)) = manifest.get(idref) else {
            continue;
        };
        if !media.contains("html") {
            continue;
        }
        if number as usize == limits.max_parts {
            warnings.push(format!(
                "the book has {} chapters; the first {} were read",
                spine.len(),
                limits.max_parts
            ));
            break;
        }
        let path = resolve(base, href);
        let Some(xhtml) = archive.read_text(&path)? else {
            warnings.push(format!("chapter `{path}` is missing from the package"));
            continue;
        };
        let chapter = super::html_content(&xhtml);
        if chapter.trim().is_empty() {
            continue;
        }
        number += 1;
        chapters.push(Locator::one(Unit::Chapter, number), &chapter);
    }
    Ok(Parsed {
        title: text_of(DC, "title"),
        author: text_of(DC, "creator"),
        markdown: chapters.markdown,
        marks: chapters.marks,
        parts: Some(number as u32),
        warnings,
        ..Parsed::default()
    })
}

fn corrupt(detail: &str) -> DocumentError {
    DocumentError::Corrupt {
        kind: KIND,
        detail: detail.to_string(),
    }
}

/// `href` (relative to the package's folder, maybe percent-encoded) as a path in the zip.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let href = url::form_urlencoded::parse(format!("x={}", href.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| href.to_string(), |(_, v)| v.into_owned());
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for piece in href.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(resolve("EPUB", "text/ch001.xhtml"), "EPUB/text/ch001.xhtml");
        assert_eq!(
            resolve("OEBPS/content", "../Text/a%20b.xhtml#x"),
            "OEBPS/Text/a b.xhtml"
        );
        assert_eq!(resolve("", "ch1.html"), "ch1.html");
    }
}
