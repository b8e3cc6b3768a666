//! Near-duplicate detection, the pure half: MinHash signatures over word 3-shingles, their
//! similarity (an estimate of the shingle sets' Jaccard index) and LSH band keys that find
//! candidates without comparing every pair. Signatures and keys are stored, so every hash here
//! is written out by hand and fixed: the same text gives the same bytes on every machine, in
//! every process and in every future version. Changing any of it orphans stored signatures.

use super::{Scan, words};

/// Estimated Jaccard similarity from which a document is a near-duplicate.
pub const NEAR_DUPLICATE: f32 = 0.5;

const HASHES: usize = 128;
const BANDS: usize = 32;
const ROWS: usize = HASHES / BANDS;
/// Fewer distinct shingles than this is a paragraph, not a document: any two short texts on
/// one subject would look alike.
const MIN_SHINGLES: usize = 20;
const SHINGLE: usize = 3;

/// The minimum of each of 128 hash functions over a text's shingles; two texts agree in a slot
/// with probability equal to their shingle sets' Jaccard index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub [u32; HASHES]);

impl Signature {
    /// `None` when the text has too few shingles to judge. Markdown syntax, punctuation, case
    /// and link targets do not count.
    pub fn of(markdown: &str) -> Option<Signature> {
        let scan = Scan::of(markdown);
        let mut tokens = words(&scan.prose);
        tokens.extend(words(&scan.code));
        let mut shingles: Vec<u64> = tokens.windows(SHINGLE).map(shingle_hash).collect();
        shingles.sort_unstable();
        shingles.dedup();
        if shingles.len() < MIN_SHINGLES {
            return None;
        }
        let mut mins = [u32::MAX; HASHES];
        for (i, min) in mins.iter_mut().enumerate() {
            let seed = splitmix64(i as u64);
            for &shingle in &shingles {
                // The low half of a well-mixed 64-bit hash is itself a good 32-bit hash.
                *min = (*min).min(mix(shingle ^ seed) as u32);
            }
        }
        Some(Signature(mins))
    }

    /// Fraction of equal slots: the estimated Jaccard index of the two shingle sets.
    pub fn similarity(&self, other: &Signature) -> f32 {
        let equal = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count();
        equal as f32 / HASHES as f32
    }

    /// 512 bytes: the slots in order, little endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|slot| slot.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Signature> {
        if bytes.len() != HASHES * 4 {
            return None;
        }
        let mut slots = [0u32; HASHES];
        for (slot, chunk) in slots.iter_mut().zip(bytes.chunks_exact(4)) {
            *slot = u32::from_le_bytes(chunk.try_into().ok()?);
        }
        Some(Signature(slots))
    }

    /// One key per band of four slots, `"{band:02}:{hash:016x}"`. Documents sharing a key are
    /// candidates: at similarity 0.5 they share at least one with probability 0.87, at 0.2 with
    /// 0.05 (1 − (1 − s⁴)³²).
    pub fn bands(&self) -> Vec<String> {
        self.0
            .chunks_exact(ROWS)
            .enumerate()
            .map(|(band, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|row| row.to_le_bytes()).collect();
                format!("{band:02}:{:016x}", fnv1a(&bytes))
            })
            .collect()
    }
}

/// Words joined by a unit separator, which no word contains, so ("ab", "c") ≠ ("a", "bc").
fn shingle_hash(words: &[String]) -> u64 {
    let mut bytes = Vec::with_capacity(words.iter().map(|w| w.len() + 1).sum());
    for word in words {
        bytes.extend_from_slice(word.as_bytes());
        bytes.push(0x1f);
    }
    fnv1a(&bytes)
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's output for state `i`: the seed of hash function `i`.
fn splitmix64(i: u64) -> u64 {
    mix(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// SplitMix64's finaliser: every input bit affects every output bit, which FNV alone does not
/// give the low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::super::{Rejection, tests::ENGLISH};
    use super::*;

    const ARTICLE: &str = include_str!("../../../../tests/fixtures/documents/src/article.md");
    const VARIANT: &str =
        include_str!("../../../../tests/fixtures/documents/src/article-variant.md");
    const OTHER: &str = include_str!("../../../../tests/fixtures/documents/src/article-other.md");

    fn signature(text: &str) -> Signature {
        Signature::of(text).expect("long enough")
    }

    fn shared_bands(a: &Signature, b: &Signature) -> usize {
        a.bands()
            .iter()
            .zip(b.bands())
            .filter(|(x, y)| **x == *y)
            .count()
    }

    #[test]
    fn hashes_are_the_published_ones() {
        // FNV-1a 64 test vectors (draft-eastlake-fnv), and SplitMix64 from state 0.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(1), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn signatures_are_stable() {
        // Stored signatures must keep matching: these values may never change.
        let sig = signature(ENGLISH);
        assert_eq!(
            &sig.0[..4],
            &[50_253_751, 56_824_040, 25_278_252, 56_341_105]
        );
        assert_eq!(sig.bands()[0], "00:e61c0880058caa97");
    }

    #[test]
    fn the_same_article_under_another_masthead_is_a_near_duplicate() {
        let (article, variant, other) = (signature(ARTICLE), signature(VARIANT), signature(OTHER));
        let near = article.similarity(&variant);
        let far = article.similarity(&other);
        println!(
            "article~variant {near:.3} ({} bands), article~other {far:.3} ({} bands), \
             variant~other {:.3}",
            shared_bands(&article, &variant),
            shared_bands(&article, &other),
            variant.similarity(&other)
        );
        assert!(near >= NEAR_DUPLICATE, "{near}");
        assert!(shared_bands(&article, &variant) > 0);
        assert!(far < 0.2, "{far}");
        assert_eq!(shared_bands(&article, &other), 0);
        let rejection = Rejection::near_duplicate("https://glaciers.example/valleys", near);
        assert_eq!(rejection.label(), "near_duplicate");
        assert!(
            rejection
                .to_string()
                .starts_with("near-duplicate of https://glaciers.example/valleys ("),
            "{rejection}"
        );
    }

    #[test]
    fn identical_texts_match_fully_and_formatting_does_not_count() {
        let sig = signature(ENGLISH);
        assert_eq!(sig.similarity(&signature(ENGLISH)), 1.0);
        let shouted = ENGLISH
            .to_uppercase()
            .replace(". ", "! ")
            .replace(", ", " — ");
        assert_eq!(sig.similarity(&signature(&shouted)), 1.0);
        assert_eq!(sig.bands(), signature(&shouted).bands());
    }

    #[test]
    fn short_texts_have_no_signature() {
        assert_eq!(Signature::of(""), None);
        assert_eq!(
            Signature::of("Glaciers carve valleys. The ice moves slowly downhill, plucking rock."),
            None
        );
    }

    #[test]
    fn bytes_round_trip() {
        let sig = signature(ARTICLE);
        let bytes = sig.to_bytes();
        assert_eq!(bytes.len(), 512);
        assert_eq!(&bytes[..4], &sig.0[0].to_le_bytes());
        assert_eq!(Signature::from_bytes(&bytes), Some(sig));
        assert_eq!(Signature::from_bytes(&bytes[1..]), None);
    }

    #[test]
    fn bands_are_32_short_stable_keys() {
        let bands = signature(ARTICLE).bands();
        assert_eq!(bands.len(), 32);
        assert!(bands[0].starts_with("00:") && bands[31].starts_with("31:"));
        assert!(bands.iter().all(|key| key.len() == 19), "{bands:?}");
    }
}
