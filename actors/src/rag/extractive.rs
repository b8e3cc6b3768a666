//! The built-in extractive answerer: the default [`Generator`], needing no model. It answers with
//! the sentences of the sources that best cover the question, each followed by its citation
//! (`… [2]`), and declines when no sentence covers enough of it.
//!
//! Scoring: the question's content words (lower-cased, stop words dropped, light suffix
//! stripping) are weighted by their rarity across the candidate sentences (IDF), so `argparse`
//! counts for more than `module`. A sentence scores the share of that weight it covers (a word
//! found only in its page's title or heading path counts half), worth less the lower its source
//! ranks, with a small bonus for sentences that look like definitions. Up to
//! three sentences are picked greedily, each penalised by its overlap with those already picked
//! (maximal marginal relevance), then put back in source order. Deterministic: same input, same
//! answer.

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;

use crate::lexical;
use crate::ports::{GenerateError, GenerateRequest, Generation, Generator, Usage};

/// Sentences in an answer at most.
const MAX_SENTENCES: usize = 3;
/// A sentence must cover this share of the question's weight to be an answer at all (its score,
/// so a lower source needs more)… Low, because what declines a question is retrieval's floors
/// and the unheard-words gate: on eval/python-docs the hard set's paraphrased questions share few
/// words with their answers, and 0.34 declined all but 7 % of them.
pub const MIN_COVERAGE: f32 = 0.1;
/// …and later sentences at least this share of the best one's score.
const FOLLOW_SHARE: f32 = 0.6;
/// Overlap penalty weight (MMR λ).
const REDUNDANCY: f32 = 0.7;
/// What a question word found only in the sentence's page title or heading path counts for,
/// against one in the sentence itself.
const CONTEXT_SHARE: f32 = 0.5;
/// How much less each later source's sentences are worth: the search ranked the sources with
/// far more evidence (meaning as well as words) than sentence coverage has.
const RANK_DECAY: f32 = 0.1;

/// What [`Extractive`] says when nothing answers the question.
pub const DONT_KNOW: &str = "I don't know: the sources I have do not answer that.";

#[derive(Debug, Default, Clone, Copy)]
pub struct Extractive;

impl Generator for Extractive {
    fn id(&self) -> &str {
        "extractive"
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, GenerateError>> {
        Box::pin(async move {
            let text = answer(&request).unwrap_or_else(|| DONT_KNOW.to_string());
            let prompt_tokens = request
                .sources
                .iter()
                .map(|s| words(&s.text))
                .sum::<usize>()
                + words(&request.question);
            Ok(Generation {
                usage: Usage {
                    prompt_tokens: prompt_tokens as u32,
                    completion_tokens: words(&text) as u32,
                },
                text,
            })
        })
    }
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// One candidate sentence.
struct Sentence {
    /// 1-based source number.
    source: usize,
    position: usize,
    text: String,
    terms: HashSet<String>,
    /// Terms of its source's title and heading path: what the sentence is about when it does
    /// not repeat it ("Return a random URL-safe text string" under "secrets > Generating tokens").
    context: std::rc::Rc<HashSet<String>>,
}

/// The answer, or `None` when no sentence covers enough of the question.
pub fn answer(request: &GenerateRequest) -> Option<String> {
    answer_with_floor(request, MIN_COVERAGE)
}

/// [`answer`] with another floor on the best sentence's coverage: how the eval tunes it.
pub fn answer_with_floor(request: &GenerateRequest, min_coverage: f32) -> Option<String> {
    let question: HashSet<String> = terms(&request.question).collect();
    if question.is_empty() {
        return None;
    }
    let sentences: Vec<Sentence> = request
        .sources
        .iter()
        .flat_map(|source| {
            let context = std::rc::Rc::new(
                terms(&source.title)
                    .chain(terms(&source.heading))
                    .collect::<HashSet<_>>(),
            );
            sentences(&source.text)
                .into_iter()
                .enumerate()
                .map(move |(position, text)| Sentence {
                    source: source.n,
                    position,
                    terms: terms(&text).collect(),
                    context: context.clone(),
                    text,
                })
        })
        .collect();
    if sentences.is_empty() {
        return None;
    }
    let weight = idf(&question, &sentences);
    let total: f32 = question.iter().map(|t| weight[t.as_str()]).sum();
    let scores: Vec<f32> = sentences
        .iter()
        .map(|s| {
            let covered: f32 = question
                .iter()
                .map(|t| match (s.terms.contains(t), s.context.contains(t)) {
                    (true, _) => weight[t.as_str()],
                    (false, true) => CONTEXT_SHARE * weight[t.as_str()],
                    (false, false) => 0.0,
                })
                .sum();
            let coverage = covered / total;
            let rank = (1.0 - RANK_DECAY * (s.source as f32 - 1.0)).max(0.5);
            let definition = [" is ", " are ", " means ", " returns ", " lets "]
                .iter()
                .any(|cue| s.text.contains(cue));
            coverage * rank * if definition { 1.05 } else { 1.0 }
        })
        .collect();

    let mut picked: Vec<usize> = Vec::new();
    let mut best = 0.0f32;
    while picked.len() < MAX_SENTENCES {
        let next = (0..sentences.len())
            .filter(|i| !picked.contains(i))
            .map(|i| {
                let redundancy = picked
                    .iter()
                    .map(|&p| jaccard(&sentences[i].terms, &sentences[p].terms))
                    .fold(0.0f32, f32::max);
                (i, scores[i] - REDUNDANCY * redundancy)
            })
            // Ties go to the earlier sentence, so the answer is deterministic.
            .fold(None::<(usize, f32)>, |acc, (i, s)| match acc {
                Some((_, best)) if best >= s => acc,
                _ => Some((i, s)),
            });
        let Some((i, score)) = next else { break };
        let enough = match picked.is_empty() {
            true => scores[i] >= min_coverage,
            false => score >= FOLLOW_SHARE * best,
        };
        if !enough {
            break;
        }
        if picked.is_empty() {
            best = scores[i];
        }
        picked.push(i);
    }
    if picked.is_empty() {
        return None;
    }
    picked.sort_by_key(|&i| (sentences[i].source, sentences[i].position));
    let parts: Vec<String> = picked
        .iter()
        .map(|&i| {
            let s = &sentences[i];
            let text = s.text.trim_end();
            let ends = text.ends_with(['.', '!', '?', ':']);
            format!("{text}{} [{}]", if ends { "" } else { "." }, s.source)
        })
        .collect();
    Some(parts.join(" "))
}

/// Inverse document frequency of each question term over the candidate sentences.
fn idf<'a>(question: &'a HashSet<String>, sentences: &[Sentence]) -> HashMap<&'a str, f32> {
    let n = sentences.len() as f32;
    question
        .iter()
        .map(|t| {
            let df = sentences.iter().filter(|s| s.terms.contains(t)).count() as f32;
            (t.as_str(), (1.0 + n / (1.0 + df)).ln())
        })
        .collect()
}

/// Shared words over all words of two sets.
pub(crate) fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f32 / union as f32
}

/// Readable sentences of a Markdown chunk: links reduced to their text, markup dropped, code
/// blocks and tables skipped.
fn sentences(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_code = !in_code;
            continue;
        }
        if in_code || line.starts_with('|') || line.starts_with('#') || line.is_empty() {
            continue;
        }
        let line = line.trim_start_matches(['>', '*', '-', '+', ' ']);
        let text = crate::ingest::plain::link_text(line).replace(['*', '`'], "");
        for sentence in split_sentences(&text) {
            let length = sentence.chars().count();
            if (20..=400).contains(&length) && sentence.split_whitespace().count() >= 4 {
                out.push(sentence);
            }
        }
    }
    out
}

/// Splits after `.`, `!` or `?` followed by a space and an upper-case letter or digit, so that
/// `e.g. this` and `os.path.join` stay whole.
fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..chars.len() {
        let boundary = matches!(chars[i], '.' | '!' | '?')
            && chars.get(i + 1) == Some(&' ')
            && chars
                .get(i + 2)
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
        if boundary {
            out.push(
                chars[start..=i]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string(),
            );
            start = i + 2;
        }
    }
    let rest: String = chars[start.min(chars.len())..].iter().collect();
    if !rest.trim().is_empty() {
        out.push(rest.trim().to_string());
    }
    out
}

/// Words the search index keeps but that say nothing about an answer's subject.
const QUESTION_WORDS: &[&str] = &[
    "about", "from", "its", "me", "my", "should", "so", "when", "where", "who", "why", "your",
    "use", "used", "using", "get",
];

/// Content words: the search's terms, less question words and single letters.
fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    lexical::words(text)
        .filter(|w| w.len() >= 2 && !QUESTION_WORDS.contains(&w.as_str()))
        .map(|w| lexical::stem(&w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Source;

    fn source(n: usize, text: &str) -> Source {
        Source {
            n,
            url: format!("http://docs.test/{n}"),
            title: format!("Page {n}"),
            heading: String::new(),
            text: text.to_string(),
            ..Source::default()
        }
    }

    fn ask(question: &str, sources: Vec<Source>) -> Option<String> {
        answer(&GenerateRequest {
            question: question.to_string(),
            sources,
            max_tokens: None,
            temperature: None,
        })
    }

    #[test]
    fn answers_with_the_covering_sentence_and_its_citation() {
        let sources = vec![
            source(
                1,
                "The json module encodes Python objects as JSON text. It is part of the standard library.",
            ),
            source(
                2,
                "# argparse\nThe argparse module makes it easy to write user-friendly command-line interfaces. \
                 It also generates help and usage messages.",
            ),
        ];
        let got = ask("Which module writes command-line interfaces?", sources).unwrap();
        assert!(
            got.starts_with("The argparse module makes it easy"),
            "{got}"
        );
        assert!(got.contains("[2]") && !got.contains("[1]"), "{got}");
    }

    #[test]
    fn declines_when_nothing_covers_the_question() {
        let sources = vec![source(
            1,
            "The json module encodes Python objects as JSON text and decodes them again.",
        )];
        assert_eq!(ask("What is the boiling point of mercury?", sources), None);
        assert_eq!(ask("the of and", vec![]), None);
    }

    #[test]
    fn sentences_keep_dotted_names_and_drop_markup() {
        let got = sentences(
            "Use [os.path.join](../os.html \"x\") to join paths, e.g. parts of a name. Then open it!\n\
             ```\ncode block line that is long enough to count\n```\n| a | b |",
        );
        assert_eq!(
            got,
            vec![
                "Use os.path.join to join paths, e.g. parts of a name.".to_string(),
                "Then open it!".to_string()
            ]
            .into_iter()
            .filter(|s| s.len() >= 20)
            .collect::<Vec<_>>()
        );
    }
}
