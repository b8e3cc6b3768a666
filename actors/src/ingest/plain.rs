//! Markdown as knowledge stores it: every link and image reduced to its text, and links that are
//! only a permalink mark (`¶`, `#`, `§`, `🔗`, or no text at all) dropped, with a map from
//! offsets in the original to offsets in the result.
//!
//! Why: link targets are many tokens of little meaning. In a chunk they crowd a small model's
//! window (MiniLM reads 256 tokens), in a heading path they turn `## Theory[¶](…#theory
//! "Permalink to this heading")` into `Theory¶`, and shown to a reader they are noise. The page's
//! links are still known to the crawler; knowledge does not need them.
//!
//! Parsing is pulldown-cmark's (already in the tree through text-splitter): link destinations
//! hold balanced parentheses and quoted titles (`[heapq](#m "heapq: a (priority) queue.")`), which
//! a hand-written scan gets wrong.

use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Markdown with its links reduced to their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlinked {
    pub text: String,
    /// (start, end) in the original of each replaced span, and where its replacement starts
    /// and how long it is in `text`; in order.
    edits: Vec<Edit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    start: usize,
    end: usize,
    new_start: usize,
    new_len: usize,
}

impl Unlinked {
    /// Where byte `offset` of the original is in `text`: an offset inside a replaced link maps
    /// to the start of its replacement.
    pub fn map(&self, offset: usize) -> usize {
        let i = self.edits.partition_point(|e| e.end <= offset);
        match self.edits.get(i) {
            Some(e) if e.start <= offset => e.new_start,
            _ => match i {
                0 => offset,
                i => {
                    let last = self.edits[i - 1];
                    last.new_start + last.new_len + (offset - last.end)
                }
            },
        }
    }
}

/// What a link reads as when it is only a permalink mark.
fn is_permalink_mark(text: &str) -> bool {
    matches!(text.trim(), "" | "¶" | "#" | "§" | "🔗" | "Permalink")
}

/// `markdown` with every link and image replaced by its text (its inline markup kept).
pub fn unlink(markdown: &str) -> Unlinked {
    let mut text = String::with_capacity(markdown.len());
    let mut edits = Vec::new();
    let mut copied = 0; // original bytes up to here are in `text`
    // The outermost link being read: its span, and the span of the text inside it.
    let mut open: Option<(Range<usize>, Option<Range<usize>>)> = None;
    let mut depth = 0usize;
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Link { .. } | Tag::Image { .. }) => {
                if depth == 0 {
                    open = Some((range, None));
                }
                depth += 1;
            }
            Event::End(TagEnd::Link | TagEnd::Image) => {
                depth = depth.saturating_sub(1);
                if depth > 0 {
                    continue;
                }
                let Some((span, inner)) = open.take() else {
                    continue;
                };
                if span.start < copied {
                    continue; // overlapping spans (should not happen): keep the text as it is
                }
                let keep = inner
                    .map(|inner| &markdown[inner])
                    .filter(|t| !is_permalink_mark(t))
                    .unwrap_or("");
                text.push_str(&markdown[copied..span.start]);
                edits.push(Edit {
                    start: span.start,
                    end: span.end,
                    new_start: text.len(),
                    new_len: keep.len(),
                });
                text.push_str(keep);
                copied = span.end;
            }
            // Leaves inside a link widen the span of its text.
            _ if depth > 0 => {
                if let Some((_, inner)) = &mut open {
                    *inner = Some(match inner.take() {
                        Some(seen) => seen.start.min(range.start)..seen.end.max(range.end),
                        None => range,
                    });
                }
            }
            _ => {}
        }
    }
    text.push_str(&markdown[copied..]);
    Unlinked { text, edits }
}

/// Links and images reduced to their text: `[os.walk()](../library/os.html#os.walk)` →
/// `os.walk()`, `![a chart](c.png)` → `a chart`, `[¶](#x)` → nothing.
pub fn link_text(markdown: &str) -> String {
    unlink(markdown).text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_their_text_and_permalinks_go() {
        assert_eq!(
            link_text(
                "Use [`os.walk()`](../library/os.html#os.walk \"os.walk\") or ![a chart](c.png). \
                 [not a link] and a[i] stay."
            ),
            "Use `os.walk()` or a chart. [not a link] and a[i] stay."
        );
        // The heading that read `heapq.") — Heap queue algorithm¶`.
        assert_eq!(
            link_text(
                "# [`heapq`](#module-heapq \"heapq: Heap queue algorithm (a.k.a. priority queue).\") \
                 — Heap queue algorithm[¶](#module-heapq \"Permalink to this heading\")"
            ),
            "# `heapq` — Heap queue algorithm"
        );
        assert_eq!(
            link_text(
                "## Theory[¶](http://x.test/heapq.html#theory \"Permalink to this heading\")\n\nText."
            ),
            "## Theory\n\nText."
        );
        assert_eq!(
            link_text("[![logo](l.png)](https://x.test/) and [a (b) c](https://x.test/a_(b))"),
            "logo and a (b) c"
        );
    }

    #[test]
    fn code_is_left_alone() {
        let markdown = "```\n[x](y) stays in code\n```\n\nand `[x](y)` in a span\n";
        assert_eq!(link_text(markdown), markdown);
    }

    #[test]
    fn offsets_map_into_the_result() {
        let markdown = "ab [cd](http://x.test/) ef [¶](#p) gh";
        let unlinked = unlink(markdown);
        assert_eq!(unlinked.text, "ab cd ef  gh");
        for (original, expected) in [(0, 0), (3, 3), (10, 3), (23, 5), (24, 6), (34, 9), (35, 9)] {
            assert_eq!(unlinked.map(original), expected, "offset {original}");
        }
        let gh = markdown.find("gh").unwrap_or_default();
        assert_eq!(&unlinked.text[unlinked.map(gh)..], "gh");
    }
}
