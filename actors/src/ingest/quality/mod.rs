//! Whether a cleaned document is worth indexing: enough text, readable characters, enough
//! distinct words, not mostly link lists (index pages, tag clouds, navigation that survived
//! extraction), in one of the collection's languages; for documents of many parts (PDF pages,
//! slides), not mostly running headers and footers. Also the pure half of near-duplicate
//! detection (MinHash signatures and their LSH band keys; the lookups are the store's). A
//! rejection carries its reason; the ingest report, crawl errors and
//! `aurora_ingest_rejected_total{reason}` say what was turned away and why.

pub mod boilerplate;
pub mod garbage;
pub mod info;
pub mod language;
pub mod near_dup;

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Fewest characters of text (links reduced to their text, markup removed).
    pub min_chars: usize,
    /// Largest share of the text that may sit in link-only lines.
    pub max_link_ratio: f32,
    /// Fewest distinct words (lowercased, two characters or more).
    pub min_unique_words: usize,
    /// Largest share of the characters that may be replacement characters, control codes or
    /// mojibake.
    pub max_garbage_ratio: f32,
    /// Largest share of a many-part document's text that may repeat on most parts.
    pub max_boilerplate_ratio: f32,
    /// ISO 639-1 codes the collection accepts; empty accepts every language.
    pub languages: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            min_chars: 80,
            max_link_ratio: 0.6,
            min_unique_words: 10,
            max_garbage_ratio: 0.05,
            max_boilerplate_ratio: 0.6,
            languages: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("empty: no text left after cleaning")]
    Empty,
    #[error("too short: {chars} characters of text (minimum {min})")]
    TooShort { chars: usize, min: usize },
    #[error(
        "encoding garbage: {percent}% of the characters are replacement characters, control \
         codes or mojibake (maximum {max}%)"
    )]
    Garbled { percent: u32, max: u32 },
    #[error("too little information: {unique} distinct words (minimum {min})")]
    TooRepetitive { unique: usize, min: usize },
    #[error("mostly links: {percent}% of the text is in link lists (maximum {max}%)")]
    MostlyLinks { percent: u32, max: u32 },
    #[error("language `{found}` is not in the collection's allow-list ({allowed})")]
    Language { found: String, allowed: String },
    #[error("mostly boilerplate: {percent}% of the text repeats on every page (maximum {max}%)")]
    Boilerplate { percent: u32, max: u32 },
    #[error("near-duplicate of {of} ({percent}% similar)")]
    NearDuplicate { of: String, percent: u32 },
}

impl Rejection {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooShort { .. } => "too_short",
            Rejection::Garbled { .. } => "encoding",
            Rejection::TooRepetitive { .. } => "low_information",
            Rejection::MostlyLinks { .. } => "mostly_links",
            Rejection::Language { .. } => "language",
            Rejection::Boilerplate { .. } => "boilerplate",
            Rejection::NearDuplicate { .. } => "near_duplicate",
        }
    }

    /// `of` is the URL or file name of the document already stored; `similarity` the estimate
    /// of [`near_dup::Signature::similarity`].
    pub fn near_duplicate(of: impl Into<String>, similarity: f32) -> Rejection {
        Rejection::NearDuplicate {
            of: of.into(),
            percent: percent(similarity),
        }
    }
}

/// Checks one text. The cheap, certain rules run first, so a page is turned away for the most
/// basic of its faults: empty, too short, garbled, low information, mostly links, language.
pub fn check(markdown: &str, rules: &Rules) -> Result<(), Rejection> {
    let scan = Scan::of(markdown);
    if scan.text_chars == 0 {
        return Err(Rejection::Empty);
    }
    if scan.text_chars < rules.min_chars {
        return Err(Rejection::TooShort {
            chars: scan.text_chars,
            min: rules.min_chars,
        });
    }
    garbage::check(markdown, rules)?;
    info::check(&scan, rules)?;
    let ratio = scan.link_line_chars as f32 / scan.text_chars as f32;
    if ratio > rules.max_link_ratio {
        return Err(Rejection::MostlyLinks {
            percent: percent(ratio),
            max: percent(rules.max_link_ratio),
        });
    }
    language::check(&scan.prose, rules)
}

/// Checks a document of several parts (PDF pages, slides): first that it is not mostly lines
/// repeated across the parts, then [`check`] on the parts without those lines, as they are
/// what gets indexed.
pub fn check_parts(parts: &[&str], rules: &Rules) -> Result<(), Rejection> {
    boilerplate::check(parts, rules)?;
    check(&boilerplate::strip_repeated(parts).join("\n\n"), rules)
}

fn percent(ratio: f32) -> u32 {
    (ratio * 100.0).round() as u32
}

/// What one pass over the Markdown finds: sizes for the length and link rules, and the text the
/// word-level rules read.
pub(crate) struct Scan {
    text_chars: usize,
    link_line_chars: usize,
    /// Text outside code blocks, links reduced to their text and bare URLs dropped.
    pub(crate) prose: String,
    /// The text of code blocks: words for the information count and near-duplicates, but no
    /// natural language to detect.
    pub(crate) code: String,
}

impl Scan {
    pub(crate) fn of(markdown: &str) -> Scan {
        let mut scan = Scan {
            text_chars: 0,
            link_line_chars: 0,
            prose: String::new(),
            code: String::new(),
        };
        let mut in_fence = false;
        for line in markdown.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                in_fence = !in_fence;
                continue;
            }
            let (chars, link_chars) = if in_fence {
                scan.code.push_str(trimmed);
                scan.code.push('\n');
                (trimmed.chars().filter(|c| !c.is_whitespace()).count(), 0)
            } else {
                let measured = measure(trimmed, &mut scan.prose);
                scan.prose.push('\n');
                measured
            };
            scan.text_chars += chars;
            // A line whose text is (almost) all link text is a link list entry.
            if chars > 0 && link_chars * 10 >= chars * 9 {
                scan.link_line_chars += chars;
            }
        }
        scan
    }
}

/// (visible non-space characters, of which inside link text) of one Markdown line; its text,
/// without link targets, goes to `text`.
fn measure(line: &str, text: &mut String) -> (usize, usize) {
    let line = line.trim_start_matches(['-', '*', '+', '>', '#', '|', ' ']);
    let (mut chars, mut link_chars) = (0, 0);
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        chars += visible(&rest[..open]);
        push_words(&rest[..open], text);
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else {
            chars += visible(after);
            push_words(after, text);
            return (chars, link_chars);
        };
        let link_text = visible(&after[..close]);
        chars += link_text;
        link_chars += link_text;
        push_words(&after[..close], text);
        let target = &after[close + 2..];
        rest = target.find(')').map_or("", |end| &target[end + 1..]);
    }
    chars += visible(rest);
    push_words(rest, text);
    (chars, link_chars)
}

/// Bare URLs are identifiers, not words: they would pass for information, shift shingles and
/// confuse language detection.
fn push_words(s: &str, text: &mut String) {
    for piece in s.split_whitespace().filter(|piece| !piece.contains("://")) {
        text.push_str(piece);
        text.push(' ');
    }
}

fn visible(s: &str) -> usize {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '_' | '`' | '|' | '!'))
        .count()
}

/// Lowercased word tokens: runs of letters and digits. Chinese and Japanese put no spaces
/// between words, so each of their ideographs and kana is a token of its own.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if is_ideographic(c) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            words.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

pub(crate) fn is_ideographic(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}' // hiragana, katakana
        | '\u{3400}'..='\u{4dbf}'
        | '\u{4e00}'..='\u{9fff}'
        | '\u{f900}'..='\u{faff}'
        | '\u{20000}'..='\u{2ffff}')
}

#[cfg(test)]
mod tests;
