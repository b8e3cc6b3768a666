//! Language identification (whatlang's trigram model) against a collection's allow-list of ISO
//! 639-1 codes. Only a confident verdict rejects: short or mixed-language pages pass.

use whatlang::Lang;

use super::{Rejection, Rules, Scan};

/// Below this many letters the trigram statistics are too thin to trust.
const MIN_LETTERS: usize = 200;

/// The ISO 639-1 code of the text's language, or `None` when the text is short, mixed or
/// otherwise not identified with confidence. Markdown link targets and code blocks are ignored.
pub fn detect(markdown: &str) -> Option<String> {
    detect_prose(&Scan::of(markdown).prose).map(str::to_string)
}

pub(super) fn check(prose: &str, rules: &Rules) -> Result<(), Rejection> {
    if rules.languages.is_empty() {
        return Ok(());
    }
    let Some(found) = detect_prose(prose) else {
        return Ok(());
    };
    if rules
        .languages
        .iter()
        .any(|allowed| normalise(allowed) == Some(found))
    {
        return Ok(());
    }
    Err(Rejection::Language {
        found: found.to_string(),
        allowed: rules.languages.join(", "),
    })
}

fn detect_prose(prose: &str) -> Option<&'static str> {
    if prose.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    let info = whatlang::detect(prose)?;
    info.is_reliable().then(|| iso639_1(info.lang()))
}

/// An allow-list entry as the ISO 639-1 code `detect` would give, or `None` for a code of no
/// language Aurora detects (settings refuse it). Lenient about what people write in settings:
/// case, the macrolanguage `no` (whatlang only knows Bokmål) and ISO 639-3.
pub fn normalise(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_lowercase();
    if code == "no" {
        return Some("nb");
    }
    if let Some(lang) = Lang::all().iter().find(|lang| iso639_1(**lang) == code) {
        return Some(iso639_1(*lang));
    }
    Lang::from_code(code).map(iso639_1)
}

/// Exhaustive, so a whatlang upgrade that adds a language does not compile until it is mapped.
fn iso639_1(lang: Lang) -> &'static str {
    match lang {
        Lang::Epo => "eo",
        Lang::Eng => "en",
        Lang::Rus => "ru",
        Lang::Cmn => "zh",
        Lang::Spa => "es",
        Lang::Por => "pt",
        Lang::Ita => "it",
        Lang::Ben => "bn",
        Lang::Fra => "fr",
        Lang::Deu => "de",
        Lang::Ukr => "uk",
        Lang::Kat => "ka",
        Lang::Ara => "ar",
        Lang::Hin => "hi",
        Lang::Jpn => "ja",
        Lang::Heb => "he",
        Lang::Yid => "yi",
        Lang::Pol => "pl",
        Lang::Amh => "am",
        Lang::Jav => "jv",
        Lang::Kor => "ko",
        Lang::Nob => "nb",
        Lang::Dan => "da",
        Lang::Swe => "sv",
        Lang::Fin => "fi",
        Lang::Tur => "tr",
        Lang::Nld => "nl",
        Lang::Hun => "hu",
        Lang::Ces => "cs",
        Lang::Ell => "el",
        Lang::Bul => "bg",
        Lang::Bel => "be",
        Lang::Mar => "mr",
        Lang::Kan => "kn",
        Lang::Ron => "ro",
        Lang::Slv => "sl",
        Lang::Hrv => "hr",
        Lang::Srp => "sr",
        Lang::Mkd => "mk",
        Lang::Lit => "lt",
        Lang::Lav => "lv",
        Lang::Est => "et",
        Lang::Tam => "ta",
        Lang::Vie => "vi",
        Lang::Urd => "ur",
        Lang::Tha => "th",
        Lang::Guj => "gu",
        Lang::Uzb => "uz",
        Lang::Pan => "pa",
        Lang::Aze => "az",
        Lang::Ind => "id",
        Lang::Tel => "te",
        Lang::Pes => "fa",
        Lang::Mal => "ml",
        Lang::Ori => "or",
        Lang::Mya => "my",
        Lang::Nep => "ne",
        Lang::Sin => "si",
        Lang::Khm => "km",
        Lang::Tuk => "tk",
        Lang::Aka => "ak",
        Lang::Zul => "zu",
        Lang::Sna => "sn",
        Lang::Afr => "af",
        Lang::Lat => "la",
        Lang::Slk => "sk",
        Lang::Cat => "ca",
        Lang::Tgl => "tl",
        Lang::Hye => "hy",
        Lang::Cym => "cy",
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ENGLISH, FRENCH, GERMAN};
    use super::*;

    fn allow(codes: &[&str]) -> Rules {
        Rules {
            languages: codes.iter().map(|c| c.to_string()).collect(),
            ..Rules::default()
        }
    }

    #[test]
    fn detects_iso_639_1() {
        assert_eq!(detect(ENGLISH).as_deref(), Some("en"));
        assert_eq!(detect(GERMAN).as_deref(), Some("de"));
        assert_eq!(detect(FRENCH).as_deref(), Some("fr"));
    }

    #[test]
    fn every_whatlang_language_has_a_distinct_two_letter_code() {
        let codes: std::collections::HashSet<_> =
            Lang::all().iter().map(|l| iso639_1(*l)).collect();
        assert_eq!(codes.len(), Lang::all().len());
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 2 && c.chars().all(|c| c.is_ascii_lowercase()))
        );
    }

    #[test]
    fn languages_outside_the_allow_list_are_rejected() {
        let err = super::super::check(GERMAN, &allow(&["en", "fr"])).expect_err("German");
        assert_eq!(
            err,
            Rejection::Language {
                found: "de".into(),
                allowed: "en, fr".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "language `de` is not in the collection's allow-list (en, fr)"
        );
        assert_eq!(err.label(), "language");
    }

    #[test]
    fn allowed_languages_and_an_empty_list_pass() {
        assert_eq!(super::super::check(ENGLISH, &allow(&["en", "fr"])), Ok(()));
        assert_eq!(super::super::check(FRENCH, &allow(&[" FR "])), Ok(()));
        assert_eq!(super::super::check(GERMAN, &allow(&["deu"])), Ok(()));
        assert_eq!(super::super::check(GERMAN, &Rules::default()), Ok(()));
    }

    #[test]
    fn short_text_is_unknown_and_allowed() {
        let short = "Die Gletscher der Alpen schmelzen jedes Jahr schneller, und das Wasser fehlt \
                     im Sommer in vielen Tälern.";
        assert_eq!(detect(short), None);
        assert_eq!(check(&Scan::of(short).prose, &allow(&["en"])), Ok(()));
    }

    #[test]
    fn link_targets_and_code_are_not_detected_on() {
        // English prose, German link targets and a German code block: still English.
        let page = format!(
            "{ENGLISH}\n[see also](https://beispiel.de/gletscher-und-täler-schmelzen-schneller)\n\
             ```\n{GERMAN}\n```\n"
        );
        assert_eq!(detect(&page).as_deref(), Some("en"));
    }
}
