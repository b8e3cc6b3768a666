//! OpenDocument text (ODT): `content.xml` walked into Markdown — outline headings as headings,
//! lists as lists, tables as pipe tables — with the title and author of `meta.xml`. No
//! permissively licensed crate reads ODT; the format's text model is small enough to walk.

use roxmltree::{Document, Node};

use super::zipped::Archive;
use super::{DocumentError, Limits, Parsed};

const KIND: &str = "ODT";
const TEXT: &str = "urn:oasis:names:tc:opendocument:xmlns:text:1.0";
const TABLE: &str = "urn:oasis:names:tc:opendocument:xmlns:table:1.0";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const META: &str = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0";

pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Parsed, DocumentError> {
    let mut archive = Archive::open(bytes, KIND, limits.max_inflated)?;
    let content = archive
        .read_text("content.xml")?
        .ok_or_else(|| corrupt("no content.xml".to_string()))?;
    let xml = Document::parse(&content).map_err(|e| corrupt(format!("content.xml: {e}")))?;
    let mut out = String::new();
    blocks(xml.root_element(), &mut out);
    let (mut title, mut author) = (None, None);
    if let Some(meta) = archive.read_text("meta.xml")?
        && let Ok(meta) = Document::parse(&meta)
    {
        let text_of = |ns: &str, name: &str| {
            meta.descendants()
                .find(|n| n.has_tag_name((ns, name)))
                .map(|n| inline(n))
                .filter(|t| !t.trim().is_empty())
        };
        title = text_of(DC, "title");
        author = text_of(DC, "creator").or_else(|| text_of(META, "initial-creator"));
    }
    Ok(Parsed {
        title,
        author,
        markdown: out,
        ..Parsed::default()
    })
}

fn corrupt(detail: String) -> DocumentError {
    DocumentError::Corrupt { kind: KIND, detail }
}

/// Block-level content of `node`, appended to `out` as Markdown blocks.
fn blocks(node: Node<'_, '_>, out: &mut String) {
    for child in node.children().filter(Node::is_element) {
        let name = child.tag_name();
        match (name.namespace(), name.name()) {
            (Some(TEXT), "h") => {
                let level = child
                    .attribute((TEXT, "outline-level"))
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(1)
                    .clamp(1, 6);
                block(
                    out,
                    &format!("{} {}", "#".repeat(level), inline(child).trim()),
                );
            }
            (Some(TEXT), "p") => block(out, inline(child).trim()),
            (Some(TEXT), "list") => {
                let mut list = String::new();
                for item in child
                    .children()
                    .filter(|n| n.has_tag_name((TEXT, "list-item")))
                {
                    let mut body = String::new();
                    blocks(item, &mut body);
                    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !body.is_empty() {
                        list.push_str(&format!("- {body}\n"));
                    }
                }
                block(out, list.trim_end());
            }
            (Some(TABLE), "table") => block(out, &table(child)),
            // Notes, annotations and change records are not the text.
            (Some(TEXT), "note" | "tracked-changes" | "sequence-decls")
            | (Some("urn:oasis:names:tc:opendocument:xmlns:office:1.0"), "annotation") => {}
            _ => blocks(child, out),
        }
    }
}

fn block(out: &mut String, markdown: &str) {
    if markdown.trim().is_empty() {
        return;
    }
    out.push_str(markdown);
    out.push_str("\n\n");
}

/// The text of a paragraph or heading, spaces and tabs restored.
fn inline(node: Node<'_, '_>) -> String {
    let mut text = String::new();
    for child in node.children() {
        if child.is_text() {
            text.push_str(child.text().unwrap_or_default());
            continue;
        }
        let name = child.tag_name();
        match (name.namespace(), name.name()) {
            (Some(TEXT), "s") => {
                let count = child
                    .attribute((TEXT, "c"))
                    .and_then(|c| c.parse::<usize>().ok())
                    .unwrap_or(1)
                    .min(8);
                text.push_str(&" ".repeat(count));
            }
            (Some(TEXT), "tab" | "line-break") => text.push(' '),
            (Some(TEXT), "note") => {}
            _ => text.push_str(&inline(child)),
        }
    }
    text
}

/// A table as a Markdown pipe table; its first row is the header.
fn table(node: Node<'_, '_>) -> String {
    let rows: Vec<Vec<String>> = node
        .descendants()
        .filter(|n| n.has_tag_name((TABLE, "table-row")))
        .map(|row| {
            row.children()
                .filter(|c| c.has_tag_name((TABLE, "table-cell")))
                .map(|cell| {
                    let mut body = String::new();
                    blocks(cell, &mut body);
                    body.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .replace('|', "\\|")
                })
                .collect()
        })
        .filter(|cells: &Vec<String>| !cells.is_empty())
        .collect();
    pipe_table(&rows)
}

/// Rows as a Markdown pipe table, padded to the widest row.
fn pipe_table(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for i in 0..width {
            s.push(' ');
            s.push_str(cells.get(i).map_or("", String::as_str));
            s.push_str(" |");
        }
        s
    };
    let mut out = vec![line(&rows[0]), format!("|{}", " --- |".repeat(width))];
    out.extend(rows[1..].iter().map(|r| line(r)));
    out.join("\n")
}
