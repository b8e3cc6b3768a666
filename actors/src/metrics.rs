//! The engine's metrics and their help texts. Naming follows `aurora::telemetry`'s convention:
//! `aurora_<subsystem>_<what>_<unit>`, counters end in `_total`, durations are histograms in
//! seconds, and every label has a small fixed set of values.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Registers help texts (Prometheus `# HELP`). Idempotent.
pub fn describe() {
    describe_counter!(
        "aurora_auth_logins_total",
        "Login attempts, by outcome (success, invalid, locked, throttled)."
    );
    describe_counter!(
        "aurora_auth_refreshes_total",
        "Refresh-token uses, by outcome (rotated, reused, invalid)."
    );
    describe_counter!(
        "aurora_auth_password_checks_total",
        "argon2 password verifications (an unknown user costs one too)."
    );
    describe_counter!(
        "aurora_auth_rate_limited_total",
        "Requests refused by a rate limit, by scope (api, login_ip, login_account)."
    );
    describe_counter!(
        "aurora_actor_restarts_total",
        "Restarts of supervised actors, by actor (session, router, scraper, ingest, rag and their workers)."
    );
    describe_counter!(
        "aurora_scrapes_total",
        "Scrapes finished, by outcome (ok, http_error, timeout, blocked, unreachable, redirect_error, invalid_request, unsupported_content_type, document_error, transcription_error, unavailable, internal, render_error, cancelled)."
    );
    describe_counter!(
        "aurora_render_decisions_total",
        "Smart-mode decisions on pages fetched with render=auto, by decision (http: a static page, browser: an application shell rendered, http_no_browser: one that would have been)."
    );
    describe_counter!(
        "aurora_browser_renders_total",
        "Pages rendered by the browser pool, by outcome (ok, timeout, crashed, blocked, navigation_error, action_error, unavailable)."
    );
    describe_histogram!(
        "aurora_browser_render_seconds",
        Unit::Seconds,
        "Time to render a page in the browser, session start included when it had to start one."
    );
    describe_histogram!(
        "aurora_browser_launch_seconds",
        Unit::Seconds,
        "Time to start one browser session (driver, browser, WebDriver session)."
    );
    describe_gauge!("aurora_browser_sessions", "Browser sessions running.");
    describe_gauge!(
        "aurora_browser_sessions_busy",
        "Browser sessions rendering a page right now."
    );
    describe_counter!(
        "aurora_browser_session_restarts_total",
        "Browser sessions replaced, by reason (recycled after max pages, failed during a render, died_idle: found dead before one)."
    );
    describe_counter!(
        "aurora_browser_proxy_requests_total",
        "Requests of the browser through the guarded proxy, by kind (http, connect) and outcome (allowed, blocked, unreachable)."
    );
    describe_histogram!(
        "aurora_scrape_fetch_duration_seconds",
        Unit::Seconds,
        "Time to fetch a page: resolution, connect, redirects and body."
    );
    describe_histogram!(
        "aurora_scrape_extract_duration_seconds",
        Unit::Seconds,
        "Time to decode and extract a fetched page."
    );
    describe_counter!(
        "aurora_scrape_fetched_bytes_total",
        Unit::Bytes,
        "Body bytes fetched by scrapes (after decompression)."
    );
    describe_counter!(
        "aurora_router_rejections_total",
        "Requests the router refused, by reason (overloaded, unavailable)."
    );
    describe_gauge!(
        "aurora_router_in_flight",
        "Requests admitted by the router and not yet answered."
    );
    describe_counter!(
        "aurora_ingest_documents_total",
        "Documents handled by ingestion, by outcome (ingested, skipped, rejected)."
    );
    describe_counter!(
        "aurora_ingest_rejected_total",
        "Documents rejected, by reason: the quality filter (empty, too_short, encoding, low_information, mostly_links, language, boilerplate, near_duplicate), a file that could not be read (encrypted, corrupt, too_large, inflates, unsupported, timeout, audio) or transcribed (transcription)."
    );
    describe_counter!(
        "aurora_documents_parsed_total",
        "Files read by the document step (scrapes, crawls, uploads), by kind (pdf, docx, pptx, xlsx, doc, ppt, xls, odt, epub, html, markdown, text, audio) and outcome (ok, encrypted, corrupt, too_large, inflates, unsupported, empty, timeout, audio)."
    );
    describe_histogram!(
        "aurora_document_parse_duration_seconds",
        Unit::Seconds,
        "Time to read one file into Markdown, by kind."
    );
    describe_counter!(
        "aurora_transcriptions_total",
        "Recordings sent to the transcriber, by engine (openai, local, none) and outcome (ok, unavailable, rejected, timeout, failed)."
    );
    describe_histogram!(
        "aurora_transcription_duration_seconds",
        Unit::Seconds,
        "Time to transcribe one recording, by engine."
    );
    describe_counter!(
        "aurora_transcribed_audio_seconds_total",
        "Seconds of audio transcribed, by engine (divide the duration histogram's sum by it for the real-time factor)."
    );
    describe_counter!(
        "aurora_transcription_pieces_total",
        "Pieces of long recordings transcribed, by engine (a recording over transcription.piece_secs goes in pieces)."
    );
    describe_counter!("aurora_ingest_chunks_total", "Chunks written by ingestion.");
    describe_histogram!(
        "aurora_ingest_duration_seconds",
        Unit::Seconds,
        "Time to ingest one request's documents."
    );
    describe_counter!(
        "aurora_embedding_cache_total",
        "Embedding cache lookups, by outcome (hit, miss)."
    );
    describe_histogram!(
        "aurora_embedding_batch_duration_seconds",
        Unit::Seconds,
        "Time to embed one batch of texts."
    );
    describe_histogram!(
        "aurora_search_duration_seconds",
        Unit::Seconds,
        "Time to answer one hybrid search."
    );
    describe_counter!(
        "aurora_crawl_jobs_total",
        "Crawl and batch jobs finished, by kind (crawl, batch) and status (completed, failed, cancelled)."
    );
    describe_gauge!(
        "aurora_crawl_queue_items",
        "Work items of all active jobs, cluster-wide, by state (queued, leased), as this replica last read them."
    );
    describe_gauge!(
        "aurora_crawl_jobs_active",
        "Crawl and batch jobs listed as active in the job queue, cluster-wide."
    );
    describe_gauge!(
        "aurora_crawl_job_backlog_max_items",
        "The largest backlog (items queued or leased) of any one active job; each job's own is in its status."
    );
    describe_gauge!(
        "aurora_crawl_items_in_flight",
        "Work items this replica holds leases on."
    );
    describe_counter!(
        "aurora_crawl_queue_leased_total",
        "Work items leased by this replica."
    );
    describe_counter!(
        "aurora_crawl_queue_reclaimed_total",
        "Expired leases (their consumer stopped renewing) this replica put back in the queue."
    );
    describe_histogram!(
        "aurora_crawl_lease_age_seconds",
        Unit::Seconds,
        "How long this replica held an item's lease, from lease to result or release."
    );
    describe_histogram!(
        "aurora_crawl_job_duration_seconds",
        Unit::Seconds,
        "Time from a job's start to its end."
    );
    describe_counter!(
        "aurora_crawl_pages_total",
        "Pages a job finished, by outcome (ok, robots, http_4xx, http_5xx, timeout, blocked, unreachable, redirect_error, unsupported_content_type, cancelled, other)."
    );
    describe_counter!(
        "aurora_crawl_bytes_total",
        Unit::Bytes,
        "Body bytes of the pages crawl and batch jobs fetched."
    );
    describe_counter!(
        "aurora_crawl_skipped_urls_total",
        "Discovered URLs a crawl left out, by reason (not_http, external, outside_start_path, excluded, not_included, too_deep, asset, url_too_long, repeated_segments, shape_run)."
    );
    describe_counter!(
        "aurora_crawl_robots_fetches_total",
        "robots.txt fetches, by outcome (parsed, absent, unavailable)."
    );
    describe_counter!("aurora_crawl_maps_total", "Site maps answered.");
    describe_counter!(
        "aurora_crawl_map_pages_total",
        "Pages a map read for their links, by outcome (ok, dead, failed, robots)."
    );
    describe_counter!(
        "aurora_crawl_map_budget_spent_total",
        "Maps that ran out of time and answered with what they had found."
    );
    describe_histogram!(
        "aurora_crawl_map_duration_seconds",
        Unit::Seconds,
        "Time to answer a map, sitemaps and link crawl together."
    );
    describe_counter!(
        "aurora_webhook_deliveries_total",
        "Webhook delivery attempts, by event (started, page, completed, failed) and outcome (delivered, failed_attempt, gave_up, dropped)."
    );
    describe_histogram!(
        "aurora_webhook_delivery_duration_seconds",
        Unit::Seconds,
        "Time of one webhook delivery attempt."
    );
    describe_counter!(
        "aurora_answers_total",
        "Answers, by outcome (answered, unknown, cancelled, error)."
    );
    describe_counter!(
        "aurora_answer_cache_total",
        "Answer cache lookups, by outcome (hit, miss)."
    );
    describe_histogram!(
        "aurora_answer_duration_seconds",
        Unit::Seconds,
        "Time of one answer: retrieval and generation."
    );
}
