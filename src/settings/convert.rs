//! Turns the settings into the engine's configuration types: what `spawn_tree` and the session
//! pool are given. Pure mapping; every value was validated when the settings were loaded.

use std::time::Duration;

use aurora_actors::TreeConfig;
use aurora_actors::crawler_pool::CrawlerConfig;
use aurora_actors::crawler_pool::scope::TrapBounds;
use aurora_actors::crawler_pool::webhook::DeliveryConfig;
use aurora_actors::ingest::document::Limits as DocumentLimits;
use aurora_actors::ingest::quality::Rules;
use aurora_actors::knowledge::{EmbedContext, KnowledgeConfig, PageRanking};
use aurora_actors::ports::Quota;
use aurora_actors::rag::AnswerConfig;
use aurora_actors::session::{HashCost, Secret, SessionConfig, SigningKey};
use aurora_actors::supervisor::RestartPolicy;

use super::{EmbedContextSetting, JwtAlgorithm, Settings};

impl Settings {
    pub fn tree_config(&self) -> TreeConfig {
        let a = &self.actors;
        TreeConfig {
            restart: RestartPolicy {
                max_restarts: a.max_restarts,
                within: Duration::from_secs(a.restart_window_secs),
                backoff_initial: Duration::from_millis(a.backoff_initial_ms),
                backoff_max: Duration::from_millis(a.backoff_max_ms),
            },
            max_in_flight: self.router.max_in_flight,
            scraper_workers: self.scraper.workers,
            browser: aurora_actors::browser::BrowserConfig {
                pool_size: self.browser.pool_size,
                max_pages: self.browser.max_pages_per_session,
            },
            ingest_workers: self.ingest.workers,
            rag_workers: self.search.workers,
            knowledge: KnowledgeConfig {
                documents: DocumentLimits {
                    max_bytes: self.ingest.max_file_bytes as usize,
                    max_inflated: self.ingest.max_inflated_bytes as usize,
                    max_parts: self.ingest.max_document_parts,
                    max_chars: self.ingest.max_document_chars,
                    deadline: Duration::from_secs(self.ingest.document_timeout_secs),
                },
                chunk_size: self.ingest.chunk_size,
                chunk_overlap: self.ingest.chunk_overlap,
                quality: Rules {
                    min_chars: self.ingest.min_chars,
                    max_link_ratio: self.ingest.max_link_ratio,
                    min_unique_words: self.ingest.min_unique_words,
                    max_garbage_ratio: self.ingest.max_garbage_ratio,
                    max_boilerplate_ratio: self.ingest.max_boilerplate_ratio,
                    languages: self.ingest.languages.clone(),
                },
                near_duplicates: self.ingest.near_duplicates,
                embed_context: match self.ingest.embed_context {
                    EmbedContextSetting::TitleHeading => EmbedContext::TitleAndHeading,
                    EmbedContextSetting::None => EmbedContext::None,
                },
                embed_batch: self.embedding.batch_size,
                cache_ttl: Duration::from_secs(self.embedding.cache_ttl_secs),
                candidates: self.search.candidates,
                rrf_k: self.search.rrf_k,
                dense_weight: self.search.dense_weight,
                lexical_weight: self.search.lexical_weight,
                pages: PageRanking {
                    evidence: self.search.page_evidence,
                    same_page: self.search.same_page_discount,
                    evidence_chunks: 3,
                },
            },
            crawler: self.crawler_config(),
            session: self.session_config(),
            answer: AnswerConfig {
                min_relevance: self.answer.min_relevance,
                candidates_per_source: self.answer.candidates_per_source,
                max_chunks_per_page: self.answer.max_chunks_per_page,
                unheard_min_chunks: self.answer.unheard_min_chunks,
                cache_ttl: (self.answer.cache_ttl_secs > 0)
                    .then(|| Duration::from_secs(self.answer.cache_ttl_secs)),
            },
            answer_timeout: Duration::from_secs(self.answer.timeout_secs),
            call_margin: Duration::from_millis(self.scraper.call_margin_ms),
            ingest_timeout: Duration::from_secs(self.ingest.timeout_secs),
            search_timeout: Duration::from_secs(self.search.timeout_secs),
            lookup_grace: Duration::from_millis(a.lookup_grace_ms),
            // Set by the tree from the transcriber it is given.
            transcription_allowance: Duration::ZERO,
            shutdown_timeout: Duration::from_millis(a.shutdown_timeout_ms),
        }
    }
}

impl Settings {
    /// The session settings. An EdDSA or RS256 key is read from its files by the composition
    /// root (`startup::signing_key`); here only an HS256 secret is known.
    fn session_config(&self) -> SessionConfig {
        let a = &self.auth;
        let per_minute = |limit: u32| Quota {
            limit,
            period: Duration::from_secs(60),
        };
        SessionConfig {
            signing: (a.jwt_algorithm == JwtAlgorithm::HS256 && !a.jwt_secret.is_empty())
                .then(|| SigningKey::Hs256(a.jwt_secret.as_bytes().to_vec())),
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            leeway: Duration::from_secs(a.leeway_secs),
            access_ttl: Duration::from_secs(a.access_ttl_secs),
            refresh_ttl: Duration::from_secs(a.refresh_ttl_secs),
            session_max: Duration::from_secs(a.session_max_secs),
            admin_password: Some(a.admin_password.clone())
                .filter(|p| !p.is_empty())
                .map(Secret),
            hash_cost: HashCost {
                memory_kib: a.hash_memory_kib,
                passes: a.hash_passes,
                lanes: 1,
            },
            min_password_chars: a.min_password_chars,
            login_per_ip: per_minute(a.login_per_ip_per_minute),
            login_per_account: per_minute(a.login_per_account_per_minute),
            lockout_failures: a.lockout_failures,
            lockout_ip_failures: a.lockout_ip_failures,
            lockout_window: Duration::from_secs(a.lockout_secs),
            api: per_minute(a.requests_per_minute),
            workers: a.workers,
            timeout: Duration::from_secs(30),
            max_pending: 256,
        }
    }

    fn crawler_config(&self) -> CrawlerConfig {
        let c = &self.crawler;
        CrawlerConfig {
            // Set by the tree from the transcriber it is given.
            follow_media: false,
            max_concurrency: c.max_concurrency,
            job_concurrency: c.job_concurrency,
            per_host_rps: c.per_host_rps,
            robots_agent: c.robots_agent.clone(),
            robots_ttl: Duration::from_secs(c.robots_cache_secs),
            traps: TrapBounds {
                max_url_length: c.max_url_length,
                max_segment_repeats: c.max_segment_repeats,
                max_shape_run: c.max_shape_run,
            },
            max_bytes_per_job: c.max_bytes_per_job,
            max_job_duration: Duration::from_secs(c.max_job_secs),
            max_errors_per_job: c.max_errors_per_job,
            job_ttl: Duration::from_secs(c.job_ttl_secs),
            retries: c.retries,
            backoff: Duration::from_millis(c.backoff_ms),
            max_backoff: Duration::from_millis(c.max_backoff_ms),
            cancel_poll: Duration::from_millis(c.cancel_poll_ms),
            cancel_wait: Duration::from_millis(c.cancel_wait_ms),
            lease: Duration::from_millis(c.lease_ms),
            poll: Duration::from_millis(c.poll_ms),
            ingest_batch: c.ingest_batch,
            webhooks: DeliveryConfig {
                timeout: Duration::from_millis(c.webhook_timeout_ms),
                retry_delays: c
                    .webhook_retry_delays_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
                queue: c.webhook_queue,
                concurrency: c.webhook_concurrency,
                secret: Some(c.webhook_secret.clone()).filter(|s| !s.is_empty()),
                user_agent: self.fetch.user_agent.clone(),
                // The HTTP layer plugs in Firecrawl's document shape (startup).
                ..DeliveryConfig::default()
            },
        }
    }
}
