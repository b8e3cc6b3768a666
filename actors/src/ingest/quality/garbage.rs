//! Encoding garbage: replacement characters (bytes a decoder could not read), control codes
//! (binary read as text) and mojibake (UTF-8 read as Latin-1 or Windows-1252: "Ã©" for "é",
//! "â€™" for "’"). Such text indexes badly and reads worse.

use super::{Rejection, Rules, percent};

/// Share of the non-whitespace characters that are garbage; 0.0 for text without any.
pub fn garbage_ratio(text: &str) -> f32 {
    let chars: Vec<char> = text.chars().collect();
    let (mut total, mut garbage) = (0usize, 0usize);
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = mojibake_at(&chars[i..]) {
            let counted = chars[i..i + len]
                .iter()
                .filter(|c| !c.is_whitespace())
                .count();
            total += counted;
            garbage += counted;
            i += len;
            continue;
        }
        let c = chars[i];
        if is_garbage(c) {
            total += 1;
            garbage += 1;
        } else if !c.is_whitespace() {
            total += 1;
        }
        i += 1;
    }
    if total == 0 {
        return 0.0;
    }
    garbage as f32 / total as f32
}

pub(super) fn check(text: &str, rules: &Rules) -> Result<(), Rejection> {
    let ratio = garbage_ratio(text);
    if ratio > rules.max_garbage_ratio {
        return Err(Rejection::Garbled {
            percent: percent(ratio),
            max: percent(rules.max_garbage_ratio),
        });
    }
    Ok(())
}

fn is_garbage(c: char) -> bool {
    c == char::REPLACEMENT_CHARACTER || (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Length in characters of the mojibake sequence that starts `chars`, if one does: characters
/// whose Windows-1252 bytes form one well-formed multi-byte UTF-8 character. Requiring the
/// whole sequence to be valid UTF-8 is what keeps real accented text out: "é" alone, or "É"
/// before a letter, is not a lead byte followed by continuation bytes.
fn mojibake_at(chars: &[char]) -> Option<usize> {
    let lead = windows_1252(*chars.first()?)?;
    let continuations = match lead {
        // 0xDF is "ß", which German puts before a closing quote („groß“): "ß“" is valid UTF-8
        // (U+07D3) but never what a writer meant.
        0xC2..=0xDE => 1,
        0xE0..=0xEF => 2,
        0xF0..=0xF4 => 3,
        _ => return None,
    };
    let mut bytes = vec![lead];
    for &c in chars.iter().skip(1).take(continuations) {
        match windows_1252(c) {
            Some(byte @ 0x80..=0xBF) => bytes.push(byte),
            _ => break,
        }
    }
    if bytes.len() == continuations + 1 {
        return std::str::from_utf8(&bytes).is_ok().then_some(bytes.len());
    }
    match (bytes.as_slice(), chars.get(1)) {
        // "à" and a no-break space ("Ã\u{a0}", "Â\u{a0}") whose no-break space a later step
        // turned into a plain one.
        ([0xC2 | 0xC3], Some(' ')) => Some(2),
        // "â€" starts most punctuation (’ “ ” – …); its third byte may have been lost or
        // replaced (0x9D, the end of "”", is undefined in Windows-1252).
        ([0xE2, 0x80], _) => Some(2),
        _ => None,
    }
}

/// The Windows-1252 byte that decodes to `c`. Latin-1 decoding gives the C1 controls
/// U+0080–U+009F for 0x80–0x9F, so those map back to their bytes as well.
fn windows_1252(c: char) -> Option<u8> {
    if let Ok(byte) = u8::try_from(c) {
        return Some(byte);
    }
    Some(match c {
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::super::tests::{ENGLISH, FRENCH, GERMAN, NORWEGIAN};
    use super::*;

    /// What a page looks like when its UTF-8 was decoded as Windows-1252.
    fn misread(text: &str) -> String {
        encoding_rs::WINDOWS_1252
            .decode(text.as_bytes())
            .0
            .into_owned()
    }

    #[test]
    fn accented_text_and_typographic_quotes_are_clean() {
        for text in [ENGLISH, FRENCH, GERMAN, NORWEGIAN] {
            assert_eq!(garbage_ratio(text), 0.0, "{text}");
            assert_eq!(check(text, &Rules::default()), Ok(()), "{text}");
        }
        let tricky = "„Groß“, sagte er. »ÄRGER« ‚Fuß‘ – CAFÉ au lait; SÃO PAULO; IRMÃ; Â bientôt.";
        assert!(garbage_ratio(tricky) < 0.05, "{}", garbage_ratio(tricky));
    }

    #[test]
    fn mojibake_is_found() {
        assert_eq!(garbage_ratio("Ã©tÃ©"), 4.0 / 5.0);
        assert_eq!(garbage_ratio("donâ€™t"), 3.0 / 7.0);
        // The closing quote's last byte was lost.
        assert_eq!(garbage_ratio("â€œHiâ€"), 5.0 / 7.0);
        assert_eq!(garbage_ratio("ðŸ˜€"), 1.0);
        assert_eq!(garbage_ratio("ÐŸÑ€Ð¸Ð²ÐµÑ‚"), 1.0);
        assert_eq!(garbage_ratio("voilÃ  tout"), 1.0 / 9.0);
    }

    #[test]
    fn misread_pages_are_rejected() {
        for text in [FRENCH, GERMAN, NORWEGIAN, ENGLISH] {
            let garbled = misread(text);
            println!(
                "misread ratio {:.3}: {}",
                garbage_ratio(&garbled),
                &garbled[..60]
            );
        }
        let err = check(&misread(FRENCH), &Rules::default()).expect_err("misread French");
        assert!(
            matches!(err, Rejection::Garbled { percent, max: 5 } if percent > 5),
            "{err}"
        );
        assert!(err.to_string().starts_with("encoding garbage: "), "{err}");
        assert_eq!(err.label(), "encoding");
    }

    #[test]
    fn replacement_and_control_characters_are_found() {
        assert_eq!(garbage_ratio("a\u{fffd}b\u{0}c\u{1b}d\u{85}\n\r\t"), 0.5);
        let binary = format!("{ENGLISH}{}", "\u{fffd}\u{1}\u{2}\u{fffd}".repeat(100));
        assert!(matches!(
            check(&binary, &Rules::default()),
            Err(Rejection::Garbled { .. })
        ));
    }
}
