//! Boilerplate of documents in parts (PDF pages, slides): lines that repeat on most parts are
//! running headers, footers and page numbers. They are noise to search, and a document made
//! mostly of them (a form, a scanned PDF whose only text layer is its header) says little.

use std::collections::{HashMap, HashSet};

use super::{Rejection, Rules, percent};

/// With fewer parts, "most parts" is one or two, and a line shared by two pages is as likely
/// content as a header.
const MIN_PARTS: usize = 3;

/// The normalised lines (trimmed, each run of digits one `#`, so "Page 3 of 10" and "Page 12 of
/// 10" match) found on at least half of the parts; none for fewer than three parts.
pub fn repeated_lines(parts: &[&str]) -> HashSet<String> {
    if parts.len() < MIN_PARTS {
        return HashSet::new();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for part in parts {
        let lines: HashSet<String> = part.lines().filter_map(normalise).collect();
        for line in lines {
            *counts.entry(line).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, count)| count * 2 >= parts.len())
        .map(|(line, _)| line)
        .collect()
}

/// The parts without their [`repeated_lines`].
pub fn strip_repeated(parts: &[&str]) -> Vec<String> {
    let repeated = repeated_lines(parts);
    parts
        .iter()
        .map(|part| {
            part.lines()
                .filter(|line| normalise(line).is_none_or(|line| !repeated.contains(&line)))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Share of the parts' non-whitespace characters that sit in [`repeated_lines`].
pub fn boilerplate_ratio(parts: &[&str]) -> f32 {
    let repeated = repeated_lines(parts);
    let (mut total, mut boilerplate) = (0usize, 0usize);
    for line in parts.iter().flat_map(|part| part.lines()) {
        let chars = line.chars().filter(|c| !c.is_whitespace()).count();
        total += chars;
        if normalise(line).is_some_and(|line| repeated.contains(&line)) {
            boilerplate += chars;
        }
    }
    if total == 0 {
        return 0.0;
    }
    boilerplate as f32 / total as f32
}

pub(super) fn check(parts: &[&str], rules: &Rules) -> Result<(), Rejection> {
    let ratio = boilerplate_ratio(parts);
    if ratio > rules.max_boilerplate_ratio {
        return Err(Rejection::Boilerplate {
            percent: percent(ratio),
            max: percent(rules.max_boilerplate_ratio),
        });
    }
    Ok(())
}

/// `None` for lines without a letter or digit: blank lines, rules, table separators and code
/// fences repeat by nature, and removing them would break the Markdown around them.
fn normalise(line: &str) -> Option<String> {
    let line = line.trim();
    if !line.chars().any(char::is_alphanumeric) {
        return None;
    }
    let mut normal = String::with_capacity(line.len());
    for c in line.chars() {
        if !c.is_ascii_digit() {
            normal.push(c);
        } else if !normal.ends_with('#') {
            normal.push('#');
        }
    }
    Some(normal)
}

#[cfg(test)]
mod tests {
    use super::super::{check_parts, tests::ENGLISH};
    use super::*;

    const HEADER: &str = "Aurora Field Guide · Ingrid Solberg";

    fn pages(bodies: &[&str]) -> Vec<String> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                format!(
                    "{HEADER}\n\n{body}\n\n---\n\nPage {} of {}\n",
                    i + 1,
                    bodies.len() + 7
                )
            })
            .collect()
    }

    fn refs(pages: &[String]) -> Vec<&str> {
        pages.iter().map(String::as_str).collect()
    }

    const BODIES: [&str; 4] = [
        "The quiet fjord of Lyngen glows green on clear winter nights, far from the lights of \
         the town and the harbour.",
        "Photographers should set an exposure of eight seconds at ISO 1600, with the lens \
         focused at infinity.",
        "The magnetometer in Tromsø recorded a disturbance of 450 nanotesla during the storm \
         of the ninth of March.",
        "Dress in layers, bring a thermos of something hot, and let your eyes adapt to the dark \
         for twenty minutes.",
    ];

    #[test]
    fn running_headers_and_page_numbers_repeat() {
        let pages = pages(&BODIES);
        let repeated = repeated_lines(&refs(&pages));
        let expected: HashSet<String> = [HEADER.to_string(), "Page # of #".to_string()].into();
        assert_eq!(repeated, expected);
        let stripped = strip_repeated(&refs(&pages));
        assert_eq!(stripped.len(), 4);
        for (page, body) in stripped.iter().zip(BODIES) {
            assert_eq!(page.trim(), format!("{body}\n\n---"), "{page}");
        }
        let ratio = boilerplate_ratio(&refs(&pages));
        assert!(ratio > 0.2 && ratio < 0.4, "{ratio}");
    }

    #[test]
    fn two_parts_have_no_boilerplate() {
        let pages = pages(&BODIES[..2]);
        assert!(repeated_lines(&refs(&pages)).is_empty());
        assert_eq!(boilerplate_ratio(&refs(&pages)), 0.0);
    }

    #[test]
    fn lines_on_fewer_than_half_the_parts_are_content() {
        let mut bodies = BODIES.to_vec();
        bodies.push(BODIES[0]);
        let pages = pages(&bodies);
        // On 2 of 5 pages.
        assert!(!repeated_lines(&refs(&pages)).contains(BODIES[0]));
    }

    #[test]
    fn pages_of_headers_are_rejected_and_real_pages_pass() {
        let pages = pages(&BODIES);
        assert_eq!(check_parts(&refs(&pages), &Rules::default()), Ok(()));
        let long = [ENGLISH, ENGLISH, ENGLISH];
        assert_eq!(
            check_parts(&long, &Rules::default())
                .expect_err("identical pages")
                .label(),
            "boilerplate"
        );

        let forms: Vec<String> = (1..=5)
            .map(|i| {
                format!(
                    "{HEADER}\nApplication form for a night-sky observation permit\nName:\n\
                     Signature:\nDate: {i}\n{}\n",
                    ["Approved", "Pending", "Declined", "Approved", "Withdrawn"][i - 1]
                )
            })
            .collect();
        let err = check_parts(&refs(&forms), &Rules::default()).expect_err("forms");
        assert!(
            matches!(err, Rejection::Boilerplate { percent, max: 60 } if percent > 80),
            "{err}"
        );
        assert!(err.to_string().starts_with("mostly boilerplate: "), "{err}");
    }
}
