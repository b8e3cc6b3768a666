//! What both scrape routes share: turning the caller's URL, timeout and headers into a
//! `ScrapeRequest`, and shaping page facts (meta tags, timestamps) for JSON.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aurora_actors::model::ScrapeRequest;
use url::Url;

use super::Limits;
use super::error::ApiError;

/// Declares a scrape body with the page options every scrape body carries (main content only,
/// tags kept and removed, headers, TLS checks), written once here.
///
/// The options are spliced into each body rather than kept in one `#[serde(flatten)]` struct,
/// for two reasons: each API spells them its own way (the core's `only_main_content`,
/// Firecrawl's `onlyMainContent`: the body's `rename_all` applies to the spliced fields), and
/// serde's `flatten` lets unknown keys through silently, where a body must name them in a 400.
/// The body gets `page_request(url)`: an engine request with these options applied.
macro_rules! scrape_body {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        pub struct $name {
            $($fields)*
            /// Keep only the main content: drop navigation, headers, footers, asides, forms and
            /// cookie banners. Default: true.
            #[serde(default = "crate::http::scrape_input::yes")]
            pub only_main_content: bool,
            /// CSS selectors (tags, `.class`, `#id`…): when given, only matching elements make up
            /// the content.
            #[serde(default)]
            pub include_tags: Vec<String>,
            /// CSS selectors removed from the content.
            #[serde(default)]
            pub exclude_tags: Vec<String>,
            /// Extra headers sent to the target (cookies, credentials for the target site).
            #[serde(default)]
            pub headers: std::collections::BTreeMap<String, String>,
            /// Accept invalid TLS certificates on the target.
            #[serde(default)]
            pub skip_tls_verification: bool,
        }

        impl $name {
            /// An engine request for `url` with the page options applied; the body sets the rest.
            fn page_request(&self, url: url::Url) -> aurora_actors::model::ScrapeRequest {
                crate::http::scrape_input::page_request(
                    url,
                    self.only_main_content,
                    &self.include_tags,
                    &self.exclude_tags,
                    &self.headers,
                    self.skip_tls_verification,
                )
            }
        }
    };
}
pub(crate) use scrape_body;

pub(crate) fn yes() -> bool {
    true
}

pub(crate) fn page_request(
    url: Url,
    only_main_content: bool,
    include_tags: &[String],
    exclude_tags: &[String],
    headers: &BTreeMap<String, String>,
    skip_tls_verification: bool,
) -> ScrapeRequest {
    ScrapeRequest {
        only_main_content,
        include_tags: include_tags.to_vec(),
        exclude_tags: exclude_tags.to_vec(),
        headers: headers.clone().into_iter().collect(),
        skip_tls_verification,
        ..ScrapeRequest::new(url)
    }
}

/// `wait_for` as a duration: below the timeout (and `most`, when the API has a cap), so the page
/// has time left to be read. `names` are the two fields as the API spells them.
pub fn wait_for(
    ms: u64,
    timeout: Duration,
    most: Option<u64>,
    names: (&str, &str),
) -> Result<Duration, ApiError> {
    let (wait_name, timeout_name) = names;
    let wait = Duration::from_millis(ms);
    if most.is_some_and(|most| ms > most) || wait >= timeout {
        let cap = most
            .map(|m| format!("at most {m} and "))
            .unwrap_or_default();
        return Err(ApiError::InvalidRequest(format!(
            "`{wait_name}` ({ms} ms) must be {cap}less than `{timeout_name}` ({} ms)",
            timeout.as_millis()
        )));
    }
    Ok(wait)
}

/// The URL to scrape. Like Firecrawl, a bare host gets `http://` in front
/// (`example.com/page`); anything relative, or not http(s), is refused.
pub fn target_url(raw: &str) -> Result<Url, ApiError> {
    let raw = raw.trim();
    let invalid = |why: String| ApiError::InvalidRequest(format!("`url`: {why}"));
    if raw.is_empty() {
        return Err(invalid("must not be empty".to_string()));
    }
    let url = if raw.contains("://") {
        Url::parse(raw).map_err(|e| invalid(format!("`{raw}` is not a valid URL: {e}")))?
    } else if raw.starts_with(['/', '.', '#', '?']) {
        return Err(invalid(format!(
            "`{raw}` is relative; give an absolute http(s) URL"
        )));
    } else if let Some((scheme, rest)) = raw.split_once(':')
        && !rest.starts_with(|c: char| c.is_ascii_digit())
        && !scheme.contains(['/', '.'])
    {
        // `mailto:x`, `file:/etc/passwd`, `javascript:…` — a scheme, not a host:port.
        return Err(invalid(format!(
            "unsupported scheme `{scheme}`: only http and https"
        )));
    } else {
        let url = Url::parse(&format!("http://{raw}"))
            .map_err(|e| invalid(format!("`{raw}` is not a valid URL: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        if !(host.contains('.') || host == "localhost" || host.starts_with('[')) {
            return Err(invalid(format!(
                "`{raw}` is not an absolute URL (no scheme, and `{host}` is not a host name)"
            )));
        }
        url
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "unsupported scheme `{}`: only http and https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("`{raw}` has no host")));
    }
    Ok(url)
}

/// The request's timeout: the default when absent, refused when zero or above the maximum.
pub fn timeout(ms: Option<u64>, field: &str, limits: &Limits) -> Result<Duration, ApiError> {
    let Some(ms) = ms else {
        return Ok(limits.default_timeout);
    };
    let max = limits.max_timeout.as_millis() as u64;
    if ms == 0 || ms > max {
        return Err(ApiError::InvalidRequest(format!(
            "`{field}` must be between 1 and {max} ms, got {ms}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// One meta tag's values: a string, or an array when the page repeats the tag.
pub fn meta_value(values: &[String]) -> serde_json::Value {
    match values {
        [one] => serde_json::Value::String(one.clone()),
        many => serde_json::Value::from(many.to_vec()),
    }
}

/// `2026-11-26T18:39:33.123Z`
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Limits for unit tests: small, distinct numbers.
    pub(crate) fn limits() -> Limits {
        Limits {
            body_bytes: 1,
            ingest_body_bytes: 1,
            upload_bytes: 1,
            max_file_bytes: 1,
            max_documents: 1,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(60),
            default_k: 10,
            max_k: 100,
            crawl_max_limit: 10,
            crawl_default_ingest: None,
            crawl_page_bytes: 1,
            answer_default_k: 5,
            answer_max_k: 20,
            max_question_chars: 100,
            min_password_chars: 12,
            default_collection: "default".into(),
            cookie_max_age: 3600,
            auth_enabled: true,
        }
    }

    #[test]
    fn accepts_absolute_and_bare_host_urls() {
        for (raw, expected) in [
            ("https://example.org/a?b#c", "https://example.org/a?b#c"),
            ("  http://127.0.0.1:8080/x ", "http://127.0.0.1:8080/x"),
            ("example.org/page", "http://example.org/page"),
            ("localhost:3000/x", "http://localhost:3000/x"),
        ] {
            assert_eq!(target_url(raw).unwrap().as_str(), expected, "{raw}");
        }
    }

    #[test]
    fn refuses_relative_empty_and_foreign_schemes() {
        for (raw, needle) in [
            ("", "empty"),
            ("/relative/path", "relative"),
            ("./x", "relative"),
            ("ftp://example.org/file", "unsupported scheme `ftp`"),
            ("file:///etc/passwd", "unsupported scheme `file`"),
            ("file:/etc/passwd", "unsupported scheme `file`"),
            ("javascript:alert(1)", "unsupported scheme `javascript`"),
            ("mailto:a@example.org", "unsupported scheme `mailto`"),
            ("justaword", "not an absolute URL"),
            ("http://", "not a valid URL"),
        ] {
            let err = target_url(raw).unwrap_err().to_string();
            assert!(err.contains(needle), "{raw}: {err}");
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        let limits = limits();
        assert_eq!(
            timeout(None, "timeout", &limits).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            timeout(Some(500), "timeout", &limits).unwrap(),
            Duration::from_millis(500)
        );
        assert!(timeout(Some(0), "timeout", &limits).is_err());
        assert!(timeout(Some(60_001), "timeout", &limits).is_err());
    }
}
