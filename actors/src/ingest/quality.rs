//! Whether a cleaned document is worth indexing: enough text, and not mostly link lists (index
//! pages, tag clouds, navigation that survived extraction). A rejection carries its reason; the
//! ingest report and `aurora_ingest_rejected_total{reason}` say what was turned away and why.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Fewest characters of text (links reduced to their text, markup removed).
    pub min_chars: usize,
    /// Largest share of the text that may sit in link-only lines.
    pub max_link_ratio: f32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("empty: no text left after cleaning")]
    Empty,
    #[error("too short: {chars} characters of text (minimum {min})")]
    TooShort { chars: usize, min: usize },
    #[error("mostly links: {percent}% of the text is in link lists (maximum {max}%)")]
    MostlyLinks { percent: u32, max: u32 },
}

impl Rejection {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooShort { .. } => "too_short",
            Rejection::MostlyLinks { .. } => "mostly_links",
        }
    }
}

pub fn check(markdown: &str, rules: &Rules) -> Result<(), Rejection> {
    let (mut text_chars, mut link_line_chars) = (0usize, 0usize);
    let mut in_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        let (chars, link_chars) = if in_fence {
            (trimmed.chars().filter(|c| !c.is_whitespace()).count(), 0)
        } else {
            measure(trimmed)
        };
        text_chars += chars;
        // A line whose text is (almost) all link text is a link list entry.
        if chars > 0 && link_chars * 10 >= chars * 9 {
            link_line_chars += chars;
        }
    }
    if text_chars == 0 {
        return Err(Rejection::Empty);
    }
    if text_chars < rules.min_chars {
        return Err(Rejection::TooShort {
            chars: text_chars,
            min: rules.min_chars,
        });
    }
    let ratio = link_line_chars as f32 / text_chars as f32;
    if ratio > rules.max_link_ratio {
        return Err(Rejection::MostlyLinks {
            percent: (ratio * 100.0).round() as u32,
            max: (rules.max_link_ratio * 100.0).round() as u32,
        });
    }
    Ok(())
}

/// (visible non-space characters, of which inside link text) of one Markdown line.
fn measure(line: &str) -> (usize, usize) {
    let line = line.trim_start_matches(['-', '*', '+', '>', '#', '|', ' ']);
    let (mut chars, mut link_chars) = (0, 0);
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        chars += visible(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else {
            chars += visible(after);
            return (chars, link_chars);
        };
        let text = visible(&after[..close]);
        chars += text;
        link_chars += text;
        let target = &after[close + 2..];
        rest = target.find(')').map_or("", |end| &target[end + 1..]);
    }
    chars += visible(rest);
    (chars, link_chars)
}

fn visible(s: &str) -> usize {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '_' | '`' | '|' | '!'))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        min_chars: 80,
        max_link_ratio: 0.6,
    };

    #[test]
    fn real_prose_passes() {
        let page = "# Title\n\nAuroras appear when charged particles from the sun meet the upper \
                    atmosphere, mostly near the poles; see [the guide](https://x.test/g).\n";
        assert_eq!(check(page, &RULES), Ok(()));
    }

    #[test]
    fn empty_and_short_pages_are_rejected() {
        assert_eq!(check("  \n\n", &RULES), Err(Rejection::Empty));
        assert_eq!(check("[](https://x.test)", &RULES), Err(Rejection::Empty));
        assert!(matches!(
            check("# Hi\n\nShort.", &RULES),
            Err(Rejection::TooShort { chars: 8, min: 80 })
        ));
    }

    #[test]
    fn link_lists_are_rejected() {
        let nav: String = (0..20)
            .map(|i| format!("- [Chapter number {i}](https://x.test/{i})\n"))
            .collect();
        let err = check(&format!("# Contents\n\n{nav}"), &RULES).unwrap_err();
        assert!(
            matches!(err, Rejection::MostlyLinks { percent, max: 60 } if percent > 90),
            "{err}"
        );
        assert_eq!(err.label(), "mostly_links");
    }

    #[test]
    fn code_counts_as_text() {
        let code = format!("```rust\n{}\n```\n", "let x = compute(42);\n".repeat(10));
        assert_eq!(check(&code, &RULES), Ok(()));
    }
}
