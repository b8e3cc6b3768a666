use super::*;

/// Ordinary prose, for "real text passes" in every rule's tests.
pub(super) const ENGLISH: &str = "# How auroras form\n\n\
    Auroras appear when charged particles from the sun meet the upper atmosphere, mostly in \
    two rings around the magnetic poles. The particles travel with the solar wind, and the \
    Earth's magnetic field steers them down along its lines. When they strike oxygen high up, \
    the air glows green; lower down, nitrogen adds a purple fringe.\n\n\
    The best nights are dark, cold and clear. Find a place away from street lights, let your \
    eyes adjust for twenty minutes, and look north. A long exposure on a camera often shows \
    colours that the eye barely notices — see [the field guide](https://x.test/guide) for \
    settings.\n";

pub(super) const GERMAN: &str = "Gletscher entstehen dort, wo im Winter mehr Schnee fällt, als \
    im Sommer schmilzt. Jahr für Jahr wächst die Schneedecke, und das Gewicht der oberen \
    Schichten presst die unteren zu dichtem, blauem Eis. „Ein Gletscher ist ein Fluss aus Eis“, \
    schrieb ein Forscher, „nur unendlich langsamer.“ Sobald das Eis dick genug ist, fließt es \
    talwärts und schleift den Boden ab. Über Jahrtausende entstehen so die breiten Trogtäler, \
    die man heute in den Alpen überall sieht; die Größe der Täler überrascht viele Besucher.\n";

pub(super) const FRENCH: &str = "Les glaciers naissent là où la neige de l’hiver ne fond pas \
    entièrement pendant l’été. Année après année, les couches s’accumulent et le poids des \
    couches supérieures transforme la neige en glace bleue et dense. « Un glacier est une \
    rivière de glace », écrivait un géologue, « mais bien plus lente. » Dès que la glace est \
    assez épaisse, elle s’écoule vers la vallée et creuse la roche. Au fil des millénaires, \
    elle élargit les vallées en forme de U que l’on voit aujourd’hui dans les Alpes françaises.\n";

pub(super) const NORWEGIAN: &str = "Isbreene i Norge har formet landskapet i mange tusen år. \
    Når snøen som faller om vinteren ikke smelter om sommeren, blir den til is, og isen begynner \
    å bevege seg nedover dalen. «Breen er en elv av is», sa en forsker, «bare mye langsommere.» \
    På veien river den løs steiner og sliper fjellet, slik at dalene blir brede og dype. Når \
    isen trekker seg tilbake, står fjordene igjen, fylt med sjøvann og omgitt av bratte \
    fjellsider som går rett ned i vannet.\n";

#[test]
fn defaults() {
    let rules = Rules::default();
    assert_eq!(rules.min_chars, 80);
    assert_eq!(rules.max_link_ratio, 0.6);
    assert_eq!(rules.min_unique_words, 10);
    assert_eq!(rules.max_garbage_ratio, 0.05);
    assert_eq!(rules.max_boilerplate_ratio, 0.6);
    assert!(rules.languages.is_empty());
}

#[test]
fn real_prose_passes() {
    for text in [ENGLISH, GERMAN, FRENCH, NORWEGIAN] {
        assert_eq!(check(text, &Rules::default()), Ok(()), "{text}");
    }
}

#[test]
fn empty_and_short_pages_are_rejected() {
    let rules = Rules::default();
    assert_eq!(check("  \n\n", &rules), Err(Rejection::Empty));
    assert_eq!(check("[](https://x.test)", &rules), Err(Rejection::Empty));
    let err = check("# Hi\n\nShort.", &rules).expect_err("short");
    assert_eq!(err, Rejection::TooShort { chars: 8, min: 80 });
    assert_eq!(err.label(), "too_short");
}

#[test]
fn link_lists_are_rejected() {
    let nav: String = (0..20)
        .map(|i| format!("- [Chapter {i}: {}](https://x.test/{i})\n", WORDS[i]))
        .collect();
    let err = check(&format!("# Contents\n\n{nav}"), &Rules::default()).expect_err("link list");
    assert!(
        matches!(err, Rejection::MostlyLinks { percent, max: 60 } if percent > 90),
        "{err}"
    );
    assert_eq!(err.label(), "mostly_links");
}

const WORDS: [&str; 20] = [
    "ice",
    "snow",
    "rivers",
    "valleys",
    "moraines",
    "fjords",
    "cirques",
    "erratics",
    "till",
    "striations",
    "meltwater",
    "crevasses",
    "seracs",
    "calving",
    "drumlins",
    "eskers",
    "kettles",
    "tarns",
    "horns",
    "aretes",
];

#[test]
fn code_counts_as_text() {
    let code = "```rust\nfn main() {\n    let glaciers = load(\"alps.csv\").expect(\"readable\");\n    \
                for glacier in glaciers.iter().filter(|g| g.area_km2 > 10.0) {\n        \
                println!(\"{} retreated {} metres\", glacier.name, glacier.retreat);\n    }\n}\n```\n";
    assert_eq!(check(code, &Rules::default()), Ok(()));
}

#[test]
fn rules_apply_in_order() {
    let rules = Rules {
        languages: vec!["fr".into()],
        ..Rules::default()
    };
    // Garbled, repetitive, all links and German: garbled wins.
    let worst = "- [Ã¤Ã¶Ã¼ Ã¤Ã¶Ã¼ Ã¤Ã¶Ã¼](https://x.test)\n".repeat(10);
    assert_eq!(
        check(&worst, &rules).expect_err("worst").label(),
        "encoding"
    );
    // Repetitive, all links and English: low information before links.
    let nav = "- [Home page](https://x.test/a)\n".repeat(20);
    assert_eq!(
        check(&nav, &rules).expect_err("nav").label(),
        "low_information"
    );
    // Links before language.
    let list: String = WORDS
        .iter()
        .map(|w| format!("- [All about {w}](https://x.test/{w})\n"))
        .collect();
    assert_eq!(
        check(&list, &rules).expect_err("list").label(),
        "mostly_links"
    );
    assert_eq!(
        check(ENGLISH, &rules).expect_err("English").label(),
        "language"
    );
    assert_eq!(check(FRENCH, &rules), Ok(()));
}

#[test]
fn labels_are_bounded_and_reasons_readable() {
    let all = [
        Rejection::Empty,
        Rejection::TooShort { chars: 1, min: 2 },
        Rejection::Garbled { percent: 9, max: 5 },
        Rejection::TooRepetitive { unique: 3, min: 20 },
        Rejection::MostlyLinks {
            percent: 90,
            max: 60,
        },
        Rejection::Language {
            found: "de".into(),
            allowed: "en".into(),
        },
        Rejection::Boilerplate {
            percent: 90,
            max: 60,
        },
        Rejection::near_duplicate("guide.pdf", 0.734),
    ];
    let labels: std::collections::HashSet<_> = all.iter().map(Rejection::label).collect();
    assert_eq!(labels.len(), all.len());
    assert_eq!(
        all[2].to_string(),
        "encoding garbage: 9% of the characters are replacement characters, control codes or \
         mojibake (maximum 5%)"
    );
    assert_eq!(
        all[6].to_string(),
        "mostly boilerplate: 90% of the text repeats on every page (maximum 60%)"
    );
    assert_eq!(
        all[7].to_string(),
        "near-duplicate of guide.pdf (73% similar)"
    );
}
