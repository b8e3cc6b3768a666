//! What types alone cannot say about the settings: each section checks its own keys, and a check
//! that spans sections lives with the section whose key it names. Every error names the key.
//!
//! Size: one check per key with its error message; they read best as one list.

use crate::adapters::ssrf::AllowList;

use super::*;

/// `Err` naming `key` unless `ok`.
fn check(ok: bool, key: &'static str, reason: &str) -> Result<(), SettingsError> {
    match ok {
        true => Ok(()),
        false => Err(SettingsError::Invalid {
            key,
            reason: reason.to_string(),
        }),
    }
}

fn check_url(value: &str, key: &'static str, schemes: &[&str]) -> Result<(), SettingsError> {
    if value.is_empty() {
        return Ok(());
    }
    let invalid = |reason: String| SettingsError::Invalid { key, reason };
    let url =
        url::Url::parse(value).map_err(|e| invalid(format!("`{value}` is not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(format!(
            "scheme `{}` is not one of {}",
            url.scheme(),
            schemes.join(", ")
        )));
    }
    Ok(())
}

impl ServerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let s = self;
        check(
            s.body_limit_bytes >= 1024,
            "server.body_limit_bytes",
            "must be at least 1024",
        )?;
        check(
            s.header_read_timeout_secs >= 1,
            "server.header_read_timeout_secs",
            "must be at least 1",
        )?;
        AllowList::parse(&s.trusted_proxies).map_err(|reason| SettingsError::Invalid {
            key: "server.trusted_proxies",
            reason,
        })?;
        Ok(())
    }
}

impl LogSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        tracing_subscriber::EnvFilter::try_new(&self.level).map_err(|e| {
            SettingsError::Invalid {
                key: "log.level",
                reason: e.to_string(),
            }
        })?;
        Ok(())
    }
}

impl ActorSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let a = self;
        check(
            a.restart_window_secs >= 1,
            "actors.restart_window_secs",
            "must be at least 1",
        )?;
        check(
            a.backoff_initial_ms <= a.backoff_max_ms,
            "actors.backoff_initial_ms",
            "must not exceed actors.backoff_max_ms",
        )?;
        Ok(())
    }
}

impl RouterSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check(
            self.max_in_flight >= 1,
            "router.max_in_flight",
            "must be at least 1",
        )?;
        Ok(())
    }
}

impl ScraperSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let sc = self;
        check(
            (1..=1024).contains(&sc.workers),
            "scraper.workers",
            "must be between 1 and 1024",
        )?;
        check(
            sc.default_timeout_ms >= 1 && sc.default_timeout_ms <= sc.max_timeout_ms,
            "scraper.default_timeout_ms",
            "must be between 1 and scraper.max_timeout_ms",
        )?;
        Ok(())
    }
}

impl BrowserSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let b = self;
        check(
            (1..=64).contains(&b.pool_size),
            "browser.pool_size",
            "must be between 1 and 64",
        )?;
        check(
            b.max_pages_per_session >= 1,
            "browser.max_pages_per_session",
            "must be at least 1",
        )?;
        check(
            b.launch_timeout_ms >= 100,
            "browser.launch_timeout_ms",
            "must be at least 100",
        )?;
        Ok(())
    }
}

impl FetchSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let f = self;
        check(
            !f.user_agent.trim().is_empty()
                && reqwest::header::HeaderValue::from_str(&f.user_agent).is_ok(),
            "fetch.user_agent",
            "must be a non-empty, valid header value",
        )?;
        check(
            f.max_redirects <= 100,
            "fetch.max_redirects",
            "must be at most 100",
        )?;
        check(
            f.max_body_bytes >= 1024,
            "fetch.max_body_bytes",
            "must be at least 1024",
        )?;
        AllowList::parse(&f.allow_private).map_err(|reason| SettingsError::Invalid {
            key: "fetch.allow_private",
            reason,
        })?;
        Ok(())
    }
}

impl EmbeddingSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let e = self;
        check(
            (1..=512).contains(&e.batch_size),
            "embedding.batch_size",
            "must be between 1 and 512",
        )?;
        check(
            e.threads <= 256,
            "embedding.threads",
            "must be at most 256 (0 = one per core)",
        )?;
        match e.provider {
            EmbeddingProvider::Minilm
            | EmbeddingProvider::MinilmInt8
            | EmbeddingProvider::Static => {}
            EmbeddingProvider::Openai => {
                check_url(
                    &e.openai.base_url,
                    "embedding.openai.base_url",
                    &["http", "https"],
                )?;
                check(
                    !e.openai.base_url.is_empty(),
                    "embedding.openai.base_url",
                    "must be set when embedding.provider is openai",
                )?;
                check(
                    !e.openai.model.is_empty() && e.openai.dimensions >= 1,
                    "embedding.openai.model",
                    "model and dimensions must be set when embedding.provider is openai",
                )?;
            }
            EmbeddingProvider::Gemini => {
                check_url(
                    &e.gemini.base_url,
                    "embedding.gemini.base_url",
                    &["http", "https"],
                )?;
                check(
                    !e.gemini.api_key.is_empty(),
                    "embedding.gemini.api_key",
                    "must be set (AURORA__EMBEDDING__GEMINI__API_KEY) when embedding.provider is gemini",
                )?;
                check(
                    !e.gemini.model.is_empty() && e.gemini.dimensions >= 1,
                    "embedding.gemini.model",
                    "model and dimensions must be set when embedding.provider is gemini",
                )?;
            }
        }
        Ok(())
    }
}

impl IngestSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let i = self;
        check(
            (1..=256).contains(&i.workers),
            "ingest.workers",
            "must be between 1 and 256",
        )?;
        check(
            (100..=100_000).contains(&i.chunk_size),
            "ingest.chunk_size",
            "must be between 100 and 100000 characters",
        )?;
        check(
            i.chunk_overlap < i.chunk_size,
            "ingest.chunk_overlap",
            "must be smaller than ingest.chunk_size",
        )?;
        check(
            (0.0..=1.0).contains(&i.max_link_ratio),
            "ingest.max_link_ratio",
            "must be between 0 and 1",
        )?;
        check(
            (0.0..=1.0).contains(&i.max_garbage_ratio)
                && (0.0..=1.0).contains(&i.max_boilerplate_ratio),
            "ingest.max_garbage_ratio",
            "max_garbage_ratio and max_boilerplate_ratio must be between 0 and 1",
        )?;
        if let Some(bad) = i
            .languages
            .iter()
            .find(|l| aurora_actors::ingest::quality::language::normalise(l).is_none())
        {
            return Err(SettingsError::Invalid {
                key: "ingest.languages",
                reason: format!("`{bad}` is not an ISO 639-1 code of a language Aurora detects"),
            });
        }
        check(
            i.max_documents >= 1,
            "ingest.max_documents",
            "must be at least 1",
        )?;
        check(
            i.max_file_bytes >= 1024 && i.max_file_bytes <= i.upload_limit_bytes,
            "ingest.max_file_bytes",
            "must be at least 1024 and at most ingest.upload_limit_bytes",
        )?;
        check(
            i.max_inflated_bytes >= 1 << 20,
            "ingest.max_inflated_bytes",
            "must be at least 1 MiB",
        )?;
        check(
            i.max_document_parts >= 1 && i.max_document_chars >= 1000,
            "ingest.max_document_parts",
            "max_document_parts must be at least 1 and max_document_chars at least 1000",
        )?;
        check(
            i.document_timeout_secs >= 1,
            "ingest.document_timeout_secs",
            "must be at least 1",
        )?;
        Ok(())
    }
}

impl SearchSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let q = self;
        check(
            (1..=256).contains(&q.workers),
            "search.workers",
            "must be between 1 and 256",
        )?;
        check(
            q.default_k >= 1 && q.default_k <= q.max_k,
            "search.default_k",
            "must be between 1 and search.max_k",
        )?;
        check(
            q.candidates >= 1 && q.rrf_k >= 0.0,
            "search.candidates",
            "candidates must be at least 1 and rrf_k not negative",
        )?;
        for (key, weight) in [
            ("search.dense_weight", q.dense_weight),
            ("search.lexical_weight", q.lexical_weight),
        ] {
            check(
                weight.is_finite() && weight >= 0.0,
                key,
                "must be a number, 0 or more",
            )?;
        }
        check(
            q.dense_weight + q.lexical_weight > 0.0,
            "search.dense_weight",
            "dense_weight and lexical_weight cannot both be 0: nothing would rank",
        )?;
        check(
            (0.0..=1.0).contains(&q.page_evidence),
            "search.page_evidence",
            "must be between 0 and 1",
        )?;
        check(
            q.same_page_discount > 0.0 && q.same_page_discount <= 1.0,
            "search.same_page_discount",
            "must be above 0 and at most 1",
        )?;
        Ok(())
    }
}

impl CrawlerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let c = self;
        check(
            (1..=4096).contains(&c.max_concurrency),
            "crawler.max_concurrency",
            "must be between 1 and 4096",
        )?;
        check(
            c.job_concurrency >= 1 && c.job_concurrency <= c.max_concurrency,
            "crawler.job_concurrency",
            "must be between 1 and crawler.max_concurrency",
        )?;
        check(
            c.per_host_rps >= 0.0 && c.per_host_rps.is_finite(),
            "crawler.per_host_rps",
            "must be 0 (unlimited) or a positive number",
        )?;
        check(
            !c.robots_agent.is_empty()
                && c.robots_agent
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch)),
            "crawler.robots_agent",
            "must be a robots.txt product token (letters, digits, - and _)",
        )?;
        check(
            c.max_url_length >= 64 && c.max_segment_repeats >= 1 && c.max_shape_run >= 1,
            "crawler.max_url_length",
            "trap bounds must be positive (max_url_length at least 64)",
        )?;
        check(
            c.cancel_poll_ms >= 10
                && c.retries <= 10
                && c.backoff_ms <= c.max_backoff_ms
                && c.lease_ms >= 2 * c.cancel_poll_ms
                && c.poll_ms >= 1,
            "crawler.cancel_poll_ms",
            "cancel_poll_ms must be at least 10, retries at most 10, backoff_ms at most max_backoff_ms, lease_ms at least twice cancel_poll_ms, poll_ms at least 1",
        )?;
        check(
            c.max_limit >= 1 && c.ingest_batch >= 1,
            "crawler.max_limit",
            "max_limit and ingest_batch must be at least 1",
        )?;
        check(
            c.webhook_timeout_ms >= 1
                && c.webhook_queue >= 1
                && c.webhook_concurrency >= 1
                && c.webhook_retry_delays_ms.len() <= 10,
            "crawler.webhook_timeout_ms",
            "webhook_timeout_ms, webhook_queue and webhook_concurrency must be at least 1; at most 10 retry delays",
        )?;
        if !c.default_ingest_collection.is_empty() {
            aurora_actors::ports::validate_collection_name(&c.default_ingest_collection).map_err(
                |e| SettingsError::Invalid {
                    key: "crawler.default_ingest_collection",
                    reason: e.to_string(),
                },
            )?;
        }
        Ok(())
    }
}

impl AnswerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let a = self;
        check(
            (-1.0..=1.0).contains(&a.min_relevance),
            "answer.min_relevance",
            "must be a cosine similarity, -1 to 1",
        )?;
        check(
            a.default_k >= 1
                && a.default_k <= a.max_k
                && a.candidates_per_source >= 1
                && a.max_chunks_per_page >= 1
                && a.max_question_chars >= 1,
            "answer.default_k",
            "default_k must be 1..=max_k; candidates_per_source, max_chunks_per_page and max_question_chars at least 1",
        )?;
        Ok(())
    }
}

impl GeneratorSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let g = self;
        check(
            g.max_tokens >= 1 && (0.0..=2.0).contains(&g.temperature),
            "generator.max_tokens",
            "max_tokens must be at least 1 and temperature 0–2",
        )?;
        match g.provider {
            GeneratorProvider::Extractive => {}
            GeneratorProvider::Openai => {
                check_url(
                    &g.openai.base_url,
                    "generator.openai.base_url",
                    &["http", "https"],
                )?;
                check(
                    !g.openai.base_url.is_empty() && !g.openai.model.is_empty(),
                    "generator.openai.model",
                    "base_url and model must be set when generator.provider is openai",
                )?;
            }
            GeneratorProvider::Gemini => {
                check_url(
                    &g.gemini.base_url,
                    "generator.gemini.base_url",
                    &["http", "https"],
                )?;
                check(
                    !g.gemini.api_key.is_empty(),
                    "generator.gemini.api_key",
                    "must be set (AURORA__GENERATOR__GEMINI__API_KEY) when generator.provider is gemini",
                )?;
                check(
                    !g.gemini.base_url.is_empty() && !g.gemini.model.is_empty(),
                    "generator.gemini.model",
                    "base_url and model must be set when generator.provider is gemini",
                )?;
            }
        }
        Ok(())
    }
}

impl RedisSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_url(&self.url, "redis.url", &["redis", "rediss", "unix"])?;
        check(
            !self.key_prefix.is_empty() && !self.key_prefix.contains(char::is_whitespace),
            "redis.key_prefix",
            "must be non-empty, without spaces",
        )?;
        Ok(())
    }
}

impl ChromaSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_url(&self.url, "chroma.url", &["http", "https"])?;
        Ok(())
    }
}

impl AuthSettings {
    /// Needs the server section: auth may only be off on a loopback address.
    pub(super) fn validate(&self, server: &ServerSettings) -> Result<(), SettingsError> {
        let a = self;
        let invalid = |key: &'static str, reason: &str| SettingsError::Invalid {
            key,
            reason: reason.to_string(),
        };
        if !a.enabled && !server.host.is_loopback() && !a.allow_unauthenticated_bind {
            return Err(invalid(
                "auth.enabled",
                "authentication is off but server.host is not a loopback address: anyone on the network could use Aurora. Bind to 127.0.0.1, turn auth on, or set auth.allow_unauthenticated_bind = true",
            ));
        }
        if !a.jwt_secret.is_empty() && a.jwt_secret.len() < 32 {
            return Err(invalid("auth.jwt_secret", "must be at least 32 bytes"));
        }
        match a.jwt_algorithm {
            JwtAlgorithm::HS256 => {}
            JwtAlgorithm::EdDSA | JwtAlgorithm::RS256 => {
                if a.jwt_private_key_file.as_os_str().is_empty()
                    || a.jwt_public_key_file.as_os_str().is_empty()
                {
                    return Err(invalid(
                        "auth.jwt_private_key_file",
                        "EdDSA and RS256 need jwt_private_key_file and jwt_public_key_file (PEM)",
                    ));
                }
            }
        }
        if a.issuer.is_empty() || a.audience.is_empty() {
            return Err(invalid("auth.issuer", "issuer and audience must be set"));
        }
        if a.access_ttl_secs < 1 || a.refresh_ttl_secs < 1 || a.session_max_secs < 1 {
            return Err(invalid(
                "auth.access_ttl_secs",
                "access_ttl_secs, refresh_ttl_secs and session_max_secs must be at least 1",
            ));
        }
        if !(8..=4_194_304).contains(&a.hash_memory_kib) || a.hash_passes < 1 {
            return Err(invalid(
                "auth.hash_memory_kib",
                "hash_memory_kib must be 8–4194304 and hash_passes at least 1",
            ));
        }
        if !(1..=64).contains(&a.workers) {
            return Err(invalid("auth.workers", "must be between 1 and 64"));
        }
        if a.login_per_ip_per_minute < 1
            || a.login_per_account_per_minute < 1
            || a.requests_per_minute < 1
            || a.lockout_failures < 1
            || a.lockout_ip_failures < 1
            || a.lockout_secs < 1
        {
            return Err(invalid(
                "auth.requests_per_minute",
                "rate limits, lock-out thresholds and lockout_secs must be at least 1",
            ));
        }
        if a.min_password_chars < 8 {
            return Err(invalid("auth.min_password_chars", "must be at least 8"));
        }
        Ok(())
    }
}
