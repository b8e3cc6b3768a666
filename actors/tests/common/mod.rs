//! What the actor tests share: a small tree configuration and in-process ports.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use aurora_actors::TreeConfig;
use aurora_actors::crawler_pool::CrawlerConfig;
use aurora_actors::ingest::quality::Rules;
use aurora_actors::knowledge::{EmbedContext, KnowledgeConfig};
use aurora_actors::local::{EmbeddedStore, HashingEmbedder, MemoryJobs, MemoryState};
use aurora_actors::ports::{Fetcher, Ports};
use aurora_actors::rag::AnswerConfig;
use aurora_actors::rag::extractive::Extractive;
use aurora_actors::session::{HashCost, Secret, SessionConfig};
use aurora_actors::supervisor::RestartPolicy;

pub fn config() -> TreeConfig {
    TreeConfig {
        ingest_workers: 1,
        rag_workers: 1,
        knowledge: KnowledgeConfig {
            documents: Default::default(),
            chunk_size: 500,
            chunk_overlap: 50,
            quality: Rules {
                min_chars: 20,
                max_link_ratio: 0.7,
                min_unique_words: 0,
                ..Default::default()
            },
            near_duplicates: false,
            embed_context: EmbedContext::TitleAndHeading,
            embed_batch: 16,
            cache_ttl: Duration::from_secs(60),
            candidates: 20,
            rrf_k: 60.0,
            dense_weight: 1.0,
            lexical_weight: 1.0,
            pages: Default::default(),
        },
        ingest_timeout: Duration::from_secs(30),
        search_timeout: Duration::from_secs(30),
        answer_timeout: Duration::from_secs(30),
        answer: AnswerConfig {
            // The hashing embedder's similarities run lower than a real model's.
            min_relevance: 0.1,
            ..AnswerConfig::default()
        },
        crawler: CrawlerConfig::default(),
        session: SessionConfig {
            // Cheap hashes: actor tests run unoptimised.
            hash_cost: HashCost {
                memory_kib: 64,
                passes: 1,
                lanes: 1,
            },
            admin_password: Some(Secret("actor-test-password".into())),
            ..SessionConfig::default()
        },
        restart: RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(5),
            backoff_max: Duration::from_millis(50),
        },
        max_in_flight: 8,
        scraper_workers: 2,
        browser: aurora_actors::browser::BrowserConfig {
            pool_size: 1,
            max_pages: 10,
        },
        call_margin: Duration::from_secs(5),
        lookup_grace: Duration::from_secs(1),
        transcription_allowance: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(1),
    }
}

/// Ports on in-process backends; the embedded store lives in a folder that lasts the test.
pub fn ports(fetcher: impl Fetcher) -> Ports {
    let dir = Box::leak(Box::new(tempfile::tempdir().expect("temp dir")));
    Ports {
        fetcher: Arc::new(fetcher),
        browser: Arc::new(aurora_actors::local::NoBrowser::new(
            "actor tests run without one",
        )),
        state: Arc::new(MemoryState::new()),
        jobs: Arc::new(MemoryJobs::new()),
        vectors: Arc::new(EmbeddedStore::open(dir.path()).expect("store opens")),
        embedder: Arc::new(HashingEmbedder::new(256)),
        generator: Arc::new(Extractive),
        transcriber: Arc::new(aurora_actors::local::NoTranscriber),
        health_checks: Vec::new(),
    }
}
