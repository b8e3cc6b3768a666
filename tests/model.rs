//! The built-in embedding models — all-MiniLM-L6-v2 in f32 (candle) and with int8 weights (ONNX
//! Runtime, the default): real sentence embeddings, matching an independent reference.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use aurora::adapters::local_model::MiniLm;
use aurora::adapters::onnx_model::{OnnxConfig, OnnxMiniLm};
use aurora_actors::ports::{EmbedError, EmbedKind, Embedder};

fn models() -> PathBuf {
    std::env::var_os("AURORA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

fn model_dir() -> PathBuf {
    models().join("all-minilm-l6-v2")
}

fn load() -> MiniLm {
    MiniLm::load(&model_dir(), 16).unwrap_or_else(|e| panic!("{e}"))
}

fn int8_config() -> OnnxConfig {
    OnnxConfig {
        runtime: models().join("onnxruntime/libonnxruntime.so.1.31.1"),
        model_dir: models().join("all-minilm-l6-v2-int8"),
        batch_size: 16,
        threads: 2,
    }
}

fn int8() -> OnnxMiniLm {
    OnnxMiniLm::load(int8_config()).unwrap_or_else(|e| panic!("{e}"))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Query/passage pairs on unrelated topics: each query should sit closest to its own passage.
const PAIRS: [(&str, &str); 4] = [
    (
        "How do I reset my account password?",
        "To change a forgotten password, open the login page and click 'Forgot password'.",
    ),
    (
        "The cat is sleeping on the sofa.",
        "A kitten naps on the couch in the living room.",
    ),
    (
        "Stock markets fell sharply after the announcement.",
        "Share prices dropped once the news came out.",
    ),
    (
        "How do I delete a folder and everything in it?",
        "shutil.rmtree removes a directory tree recursively.",
    ),
];

/// Vectors of [`PAIRS`], flattened: query `i` at `2i`, its passage at `2i + 1`.
async fn embed_pairs(model: &dyn Embedder) -> Vec<Vec<f32>> {
    let texts: Vec<String> = PAIRS
        .iter()
        .flat_map(|(a, b)| [a.to_string(), b.to_string()])
        .collect();
    model.embed(&texts, EmbedKind::Document).await.unwrap()
}

#[tokio::test]
async fn related_sentences_score_higher_than_unrelated_ones() {
    related_beat_unrelated(&load()).await;
    related_beat_unrelated(&int8()).await;
}

async fn related_beat_unrelated(model: &dyn Embedder) {
    let pairs = PAIRS;
    let vectors = embed_pairs(model).await;
    assert_eq!(vectors.len(), 8);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
    for (i, _) in pairs.iter().enumerate() {
        let related = cosine(&vectors[2 * i], &vectors[2 * i + 1]);
        for (j, _) in pairs.iter().enumerate().filter(|(j, _)| *j != i) {
            let unrelated = cosine(&vectors[2 * i], &vectors[2 * j + 1]);
            assert!(
                related > unrelated + 0.2,
                "pair {i}: related {related:.3} vs unrelated (with {j}) {unrelated:.3}"
            );
        }
    }
}

#[tokio::test]
async fn batching_and_order_do_not_change_results() {
    batching_is_invisible(&load()).await;
    batching_is_invisible(&int8()).await;
}

async fn batching_is_invisible(model: &dyn Embedder) {
    let texts: Vec<String> = [
        "short",
        "a somewhat longer sentence about rust",
        "mid length text",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let together = model.embed(&texts, EmbedKind::Document).await.unwrap();
    for (text, expected) in texts.iter().zip(&together) {
        let alone = model
            .embed(std::slice::from_ref(text), EmbedKind::Document)
            .await
            .unwrap();
        let diff = alone[0]
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            diff < 1e-5,
            "{}: {text}: padding changed the vector by {diff}",
            model.id()
        );
    }
    assert!(
        model
            .embed(&[], EmbedKind::Document)
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_missing_model_says_how_to_get_it() {
    let err = match MiniLm::load(Path::new("/nonexistent/model"), 8) {
        Err(e) => e,
        Ok(_) => panic!("loaded a model from nowhere"),
    };
    assert!(matches!(err, EmbedError::ModelMissing(_)));
    let message = err.to_string();
    assert!(message.contains("scripts/model"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

/// `tests/fixtures/minilm_reference.json` holds float64 embeddings from an independent numpy
/// implementation of the same model (`scripts/reference-embeddings.py`).
#[tokio::test]
async fn matches_an_independent_reference_implementation() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let sentences: Vec<String> = fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<Vec<f32>> = fixture["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(sentences.len(), 12);
    let model = load();
    let got = model.embed(&sentences, EmbedKind::Document).await.unwrap();
    let int8 = int8().embed(&sentences, EmbedKind::Document).await.unwrap();
    let mut worst = 0.0f32;
    for ((sentence, got), expected) in sentences.iter().zip(&got).zip(&expected) {
        let diff = got
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "{sentence:.40}: max |diff| {diff}");
        worst = worst.max(diff);
    }
    eprintln!("max |candle - reference| over 12 sentences: {worst:e}");

    // int8 weights move every vector a little, never its meaning (the empty text moves most:
    // its only tokens are [CLS] and [SEP]).
    let cosines: Vec<f32> = int8
        .iter()
        .zip(&expected)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    eprintln!("cosine(int8, reference): mean {mean:.5}, each {cosines:.5?}");
    assert!(cosines.iter().all(|&c| c > 0.995), "{cosines:?}");
    assert!(mean > 0.999, "mean cosine {mean}");
}

#[test]
fn the_int8_model_says_what_is_missing() {
    let missing = |config: OnnxConfig| match OnnxMiniLm::new(config) {
        Err(e @ EmbedError::ModelMissing(_)) => e.to_string(),
        Err(e) => panic!("not a missing-model error: {e}"),
        Ok(_) => panic!("accepted missing files"),
    };
    let message = missing(OnnxConfig {
        runtime: "/nonexistent/libonnxruntime.so".into(),
        ..int8_config()
    });
    assert!(
        message.contains("ONNX Runtime") && message.contains("/nonexistent/libonnxruntime.so"),
        "{message}"
    );
    let message = missing(OnnxConfig {
        model_dir: "/nonexistent/int8".into(),
        ..int8_config()
    });
    assert!(
        message.contains("/nonexistent/int8/model.onnx"),
        "{message}"
    );
    assert!(
        message.contains("scripts/model") && !message.contains('\n'),
        "{message}"
    );
}

/// A file that is not a shared library, or a runtime of another version than the one loaded:
/// an error naming it, never a panic.
#[tokio::test]
async fn a_broken_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let model = OnnxMiniLm::new(OnnxConfig {
        runtime: fake.clone(),
        ..int8_config()
    })
    .unwrap();
    let err = model
        .embed(&["text".to_string()], EmbedKind::Document)
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Failed(_)), "{err}");
    assert!(err.to_string().contains(&*fake.to_string_lossy()), "{err}");
}

/// The static tier distilled from the built-in model (into `models/`, once; later runs reuse it):
/// a table lookup that still tells related sentences from unrelated ones, if less sharply.
#[tokio::test]
async fn the_distilled_static_model_keeps_meaning() {
    use aurora::adapters::static_model::{StaticModel, distill};
    let dir = model_dir().with_file_name("static-minilm-l6-v2");
    let model = match StaticModel::load(&dir) {
        Ok(model) => model,
        Err(_) => {
            let done = distill(&model_dir(), &dir, |_, _| {}).unwrap();
            assert_eq!((done.tokens, done.dimension), (30522, 384));
            StaticModel::load(&dir).unwrap()
        }
    };
    assert_eq!(
        (model.id(), model.dimension()),
        ("static-minilm-l6-v2", 384)
    );
    let pairs = PAIRS;
    let vectors = embed_pairs(&model).await;
    let (mut related, mut unrelated, mut first) = (0.0, 0.0, 0);
    for i in 0..pairs.len() {
        let own = cosine(&vectors[2 * i], &vectors[2 * i + 1]);
        let others: Vec<f32> = (0..pairs.len())
            .filter(|&j| j != i)
            .map(|j| cosine(&vectors[2 * i], &vectors[2 * j + 1]))
            .collect();
        eprintln!("pair {i}: related {own:.3}, unrelated {others:.3?}");
        related += own / pairs.len() as f32;
        unrelated += others.iter().sum::<f32>() / (others.len() * pairs.len()) as f32;
        first += usize::from(others.iter().all(|&o| own > o));
    }
    eprintln!("mean related {related:.3}, mean unrelated {unrelated:.3}, {first}/4 ranked first");
    assert!(
        related - unrelated > 0.2,
        "related {related:.3} vs unrelated {unrelated:.3}"
    );
    assert!(first >= 3, "{first}/4 queries rank their own passage first");
    let missing = StaticModel::load(std::path::Path::new("/nonexistent"));
    assert!(
        matches!(missing, Err(EmbedError::ModelMissing(m)) if m.contains("aurora model distill"))
    );
}
