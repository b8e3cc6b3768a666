//! Markdown → chunks that each know where they sit in the page.
//!
//! The page is first cut at its headings (ATX `#` lines outside code fences), keeping the path
//! of headings above each section (`Install > From source`); then each section is split by
//! `text-splitter`'s Markdown splitter, which prefers to break between blocks, then sentences,
//! then words, never inside them when it can help it. Sizes are in characters.
//!
//! A document's parts (pages, slides, chapters) are cut points too, so each chunk of a PDF sits
//! on one page and cites it; every chunk knows its byte offset in the Markdown it came from.

use text_splitter::{ChunkConfig, ChunkConfigError, MarkdownSplitter};

use super::plain::link_text;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The heading path of the section the chunk comes from ("" before the first heading).
    pub heading: String,
    pub text: String,
    /// Byte offset of the chunk's text in the Markdown it was cut from.
    pub offset: usize,
}

pub struct Chunker {
    splitter: MarkdownSplitter<text_splitter::Characters>,
}

impl Chunker {
    /// `size`: the most characters in a chunk; `overlap`: characters repeated between
    /// neighbouring chunks of one section (must be smaller than `size`).
    pub fn new(size: usize, overlap: usize) -> Result<Self, ChunkConfigError> {
        let config = ChunkConfig::new(size.max(1)).with_overlap(overlap)?;
        Ok(Self {
            splitter: MarkdownSplitter::new(config),
        })
    }

    pub fn chunk(&self, markdown: &str) -> Vec<Chunk> {
        self.chunk_with_cuts(markdown, &[])
    }

    /// As [`Chunker::chunk`], and no chunk spans any of `cuts` (byte offsets of line starts,
    /// ascending): where one part of a document ends and the next begins.
    pub fn chunk_with_cuts(&self, markdown: &str, cuts: &[usize]) -> Vec<Chunk> {
        sections(markdown, cuts)
            .into_iter()
            .flat_map(|section| {
                self.splitter
                    .chunk_indices(&section.text)
                    .filter(|(_, text)| !text.trim().is_empty())
                    .map(|(at, text)| Chunk {
                        heading: section.heading.clone(),
                        text: text.to_string(),
                        offset: section.offset + at,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

struct Section {
    heading: String,
    text: String,
    /// Byte offset of `text` in the whole Markdown.
    offset: usize,
}

/// The page cut at its headings (and at `cuts`); each section starts with its own heading line.
/// A section with nothing but its heading is dropped: its title lives on in its subsections'
/// heading paths.
fn sections(markdown: &str, cuts: &[usize]) -> Vec<Section> {
    let mut cuts = cuts.iter().copied().peekable();
    let mut sections = Vec::new();
    // (level, title) of the headings enclosing the current line.
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut fence: Option<&str> = None;
    let heading_path = |path: &[(usize, String)]| {
        path.iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" > ")
    };
    let mut current_heading = String::new();
    let mut current_offset = 0;
    for line in markdown.lines() {
        let at = line.as_ptr() as usize - markdown.as_ptr() as usize;
        let mut cut = false;
        while cuts.next_if(|&c| c <= at).is_some() {
            cut = true;
        }
        if cut {
            close(
                &mut sections,
                &current_heading,
                &mut current,
                current_offset,
            );
            current_offset = at;
            // A new part starts a new fence context: an unclosed fence ends with its page.
            fence = None;
        }
        let trimmed = line.trim_start();
        if let Some(open) = fence {
            if trimmed.starts_with(open) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if let Some((level, title)) = atx_heading(line) {
            close(
                &mut sections,
                &current_heading,
                &mut current,
                current_offset,
            );
            current_offset = at;
            path.retain(|(l, _)| *l < level);
            path.push((level, title));
            current_heading = heading_path(&path);
        }
        current.push_str(line);
        current.push('\n');
    }
    close(
        &mut sections,
        &current_heading,
        &mut current,
        current_offset,
    );
    sections
}

/// Ends the section being built: kept if it has a body, and `current` emptied either way.
fn close(sections: &mut Vec<Section>, heading: &str, current: &mut String, offset: usize) {
    if has_body(current) {
        sections.push(Section {
            heading: heading.to_string(),
            text: std::mem::take(current),
            offset,
        });
    }
    current.clear();
}

/// Whether a section has text besides its heading line.
fn has_body(section: &str) -> bool {
    section
        .lines()
        .filter(|line| !line.trim().is_empty())
        .any(|line| atx_heading(line).is_none())
}

/// `## Title ##` → (2, "Title"); link syntax in the title is reduced to its text.
fn atx_heading(line: &str) -> Option<(usize, String)> {
    if line.starts_with("    ") {
        return None; // indented code
    }
    let line = line.trim_start();
    let level = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None; // "#hashtag"
    }
    let title = rest.trim().trim_end_matches('#').trim();
    let title = plain_text(title);
    (!title.is_empty()).then_some((level, title))
}

/// Markdown inline links and emphasis markers removed: `[Intro](#intro)` → `Intro`.
fn plain_text(markdown: &str) -> String {
    link_text(markdown)
        .replace(['*', '`'], "")
        .replace(['§', '¶'], "")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "Intro line before any heading.\n\n\
        # [Install](https://x.test/#install)\n\nGet it.\n\n\
        ## From source\n\nClone it.\n\n```python\n# not a heading\nprint(1)\n```\n\n\
        ## With pip\n\nRun pip.\n\n\
        # Usage\n\nCall it.\n";

    #[test]
    fn chunks_carry_their_heading_path() {
        let chunks = Chunker::new(1000, 0).unwrap().chunk(PAGE);
        let got: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.heading.as_str(), c.text.lines().next().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                ("", "Intro line before any heading."),
                ("Install", "# [Install](https://x.test/#install)"),
                ("Install > From source", "## From source"),
                ("Install > With pip", "## With pip"),
                ("Usage", "# Usage"),
            ]
        );
        assert!(
            chunks[2].text.contains("# not a heading"),
            "code stays in its section"
        );
    }

    #[test]
    fn long_sections_split_within_size_with_overlap() {
        let body: String = (0..60)
            .map(|i| format!("Sentence number {i} of the section. "))
            .collect();
        let page = format!("# Title\n\n{body}\n");
        let chunks = Chunker::new(300, 60).unwrap().chunk(&page);
        assert!(chunks.len() > 5);
        assert!(
            chunks
                .iter()
                .all(|c| c.text.chars().count() <= 300 && c.heading == "Title")
        );
        // Neighbours share some text.
        let shared = chunks.windows(2).filter(|w| {
            let tail: String = w[0]
                .text
                .chars()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            w[1].text.contains(tail.trim())
        });
        assert!(shared.count() > 0);
    }

    #[test]
    fn heading_only_sections_are_not_chunks() {
        let chunks = Chunker::new(1000, 0)
            .unwrap()
            .chunk("# Leave\n\n## Parental leave\n\nSixteen weeks.\n\n# Empty\n");
        let got: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.heading.as_str(), c.text.trim()))
            .collect();
        assert_eq!(
            got,
            [(
                "Leave > Parental leave",
                "## Parental leave\n\nSixteen weeks."
            )]
        );
    }

    #[test]
    fn heading_titles_are_plain_text() {
        assert_eq!(
            atx_heading("### `os.path` **join** ###"),
            Some((3, "os.path join".into()))
        );
        assert_eq!(atx_heading("#hashtag"), None);
        assert_eq!(atx_heading("####### seven"), None);
        assert_eq!(plain_text("[§](#x)Examples"), "Examples");
    }

    #[test]
    fn parts_are_cut_points_and_offsets_point_into_the_source() {
        let page1 = "# Guide\n\nFirst page text.\n";
        let page2 = "Second page text, same section.\n";
        let markdown = format!("{page1}\n{page2}");
        let chunks = Chunker::new(1000, 0)
            .unwrap()
            .chunk_with_cuts(&markdown, &[0, page1.len() + 1]);
        let got: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.heading.as_str(), c.text.trim()))
            .collect();
        assert_eq!(
            got,
            [
                ("Guide", "# Guide\n\nFirst page text."),
                ("Guide", "Second page text, same section.")
            ]
        );
        for chunk in &chunks {
            assert!(markdown[chunk.offset..].starts_with(&chunk.text));
        }
    }

    #[test]
    fn bad_overlap_is_an_error() {
        assert!(Chunker::new(100, 100).is_err());
    }
}
