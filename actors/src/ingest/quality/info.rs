//! Minimum information: how many distinct words a text uses. Spam that repeats a phrase ("buy
//! now buy now …") and pages of one word over and over have length but nothing to find.

use std::collections::HashSet;

use super::{Rejection, Rules, Scan, is_ideographic, words};

/// Distinct lowercased words of two characters or more (a single ideograph counts: it is a
/// word), in the text and its code blocks; link targets and bare URLs are not words.
pub fn unique_words(markdown: &str) -> usize {
    count(&Scan::of(markdown))
}

pub(super) fn check(scan: &Scan, rules: &Rules) -> Result<(), Rejection> {
    let unique = count(scan);
    if unique < rules.min_unique_words {
        return Err(Rejection::TooRepetitive {
            unique,
            min: rules.min_unique_words,
        });
    }
    Ok(())
}

fn count(scan: &Scan) -> usize {
    let mut seen = HashSet::new();
    for text in [&scan.prose, &scan.code] {
        seen.extend(
            words(text)
                .into_iter()
                .filter(|w| w.chars().count() >= 2 || w.chars().any(is_ideographic)),
        );
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::super::{check, tests::ENGLISH};
    use super::*;

    #[test]
    fn repeated_phrases_are_rejected() {
        let spam = "Buy now! Best price, buy now. ".repeat(20);
        let err = check(&spam, &Rules::default()).expect_err("spam");
        assert_eq!(err, Rejection::TooRepetitive { unique: 4, min: 10 });
        assert_eq!(
            err.to_string(),
            "too little information: 4 distinct words (minimum 10)"
        );
        assert_eq!(err.label(), "low_information");
    }

    #[test]
    fn prose_has_enough_words() {
        assert!(unique_words(ENGLISH) > 50, "{}", unique_words(ENGLISH));
        assert_eq!(check(ENGLISH, &Rules::default()), Ok(()));
    }

    #[test]
    fn words_are_case_folded_and_short_tokens_and_urls_ignored() {
        let text =
            "The THE the a I x 42 42 [Glacier](https://glaciers.example/ice-age) https://x.test/y";
        // the, 42, glacier
        assert_eq!(unique_words(text), 3);
    }

    #[test]
    fn chinese_characters_count_one_by_one() {
        // No spaces between words; one run would be a single "word".
        let text = "冰川是由积雪经过长期压实和重新结晶形成的冰体，它在重力作用下沿着山谷缓慢流动。";
        assert!(unique_words(text) > 20, "{}", unique_words(text));
    }
}
