//! robots.txt: fetched once per origin, parsed with `texting_robots`, cached for every crawl in
//! the process. Unreachable or failing robots.txt means "crawl nothing" and a missing one means
//! "crawl anything" (RFC 9309 §2.3.1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use texting_robots::Robot;
use tokio::sync::OnceCell;
use url::Url;

use super::politeness::HostLimits;
use crate::ports::{FetchRequest, Fetcher};

/// What one origin's robots.txt says.
pub enum Rules {
    AllowAll,
    /// Nothing may be fetched; the reason goes into the crawl's errors.
    DisallowAll(String),
    Parsed(Box<Robot>),
}

impl Rules {
    pub fn allowed(&self, url: &Url) -> bool {
        match self {
            Rules::AllowAll => true,
            Rules::DisallowAll(_) => false,
            Rules::Parsed(robot) => robot.allowed(url.as_str()),
        }
    }

    /// `Crawl-delay` for our agent, if any (capped: a day-long delay would stall a crawl).
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Rules::Parsed(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(60.0))),
            _ => None,
        }
    }

    pub fn sitemaps(&self) -> &[String] {
        match self {
            Rules::Parsed(robot) => &robot.sitemaps,
            _ => &[],
        }
    }

    /// Why a URL was refused, for the crawl's robots-blocked list.
    pub fn refusal(&self) -> &str {
        match self {
            Rules::DisallowAll(reason) => reason,
            _ => "disallowed by robots.txt",
        }
    }
}

/// An origin's rules, fetched at most once at a time.
type Entry = Arc<OnceCell<(Instant, Arc<Rules>)>>;

/// The process-wide robots.txt cache.
pub struct RobotsCache {
    fetcher: Arc<dyn Fetcher>,
    /// robots.txt requests count against the host's rate like any other.
    hosts: Arc<HostLimits>,
    /// The product token robots.txt groups are matched against (`AuroraBot`).
    agent: String,
    ttl: Duration,
    timeout: Duration,
    /// One cell per origin, so concurrent crawls of a site fetch its robots.txt once.
    entries: DashMap<String, Entry>,
}

impl RobotsCache {
    pub fn new(
        fetcher: Arc<dyn Fetcher>,
        hosts: Arc<HostLimits>,
        agent: String,
        ttl: Duration,
    ) -> Self {
        Self {
            fetcher,
            hosts,
            agent,
            ttl,
            timeout: Duration::from_secs(10),
            entries: DashMap::new(),
        }
    }

    /// The rules for `url`'s origin.
    pub async fn rules(&self, url: &Url) -> Arc<Rules> {
        let origin = url.origin().ascii_serialization();
        loop {
            let cell = self.entries.entry(origin.clone()).or_default().clone();
            let (fetched, rules) = cell.get_or_init(|| self.fetch(url)).await;
            if fetched.elapsed() < self.ttl {
                return rules.clone();
            }
            // Stale: drop this cell (unless another caller already replaced it) and fetch anew.
            self.entries
                .remove_if(&origin, |_, current| Arc::ptr_eq(current, &cell));
        }
    }

    async fn fetch(&self, url: &Url) -> (Instant, Arc<Rules>) {
        let mut robots_url = url.clone();
        robots_url.set_path("/robots.txt");
        robots_url.set_query(None);
        robots_url.set_fragment(None);
        self.hosts
            .until_ready(robots_url.host_str().unwrap_or_default())
            .await;
        let result = self
            .fetcher
            .fetch(FetchRequest {
                url: robots_url.clone(),
                headers: Vec::new(),
                timeout: self.timeout,
                skip_tls_verification: false,
            })
            .await;
        let rules = match result {
            Ok(response) if (200..300).contains(&response.status) => {
                match Robot::new(&self.agent, &response.body) {
                    Ok(robot) => Rules::Parsed(Box::new(robot)),
                    Err(e) => {
                        tracing::warn!(url = %robots_url, error = %e, "unparsable robots.txt; crawling as if absent");
                        Rules::AllowAll
                    }
                }
            }
            Ok(response) if (400..500).contains(&response.status) => Rules::AllowAll,
            Ok(response) => Rules::DisallowAll(format!(
                "robots.txt answered HTTP {}; the site is not crawled until it answers",
                response.status
            )),
            Err(e) => Rules::DisallowAll(format!("robots.txt could not be fetched: {e}")),
        };
        metrics::counter!("aurora_crawl_robots_fetches_total", "outcome" => match &rules {
            Rules::AllowAll => "absent",
            Rules::DisallowAll(_) => "unavailable",
            Rules::Parsed(_) => "parsed",
        })
        .increment(1);
        (Instant::now(), Arc::new(rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::StaticSite;

    #[tokio::test]
    async fn rules_come_from_the_site_and_are_fetched_once() {
        let site = Arc::new(StaticSite::new([(
            "http://site.test/robots.txt",
            200,
            "text/plain",
            "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n\
             Sitemap: http://site.test/sitemap_index.xml\n\n\
             User-agent: AuroraBot\nDisallow: /no-aurora/\nCrawl-delay: 0.5\n",
        )]));
        let cache = RobotsCache::new(
            site.clone(),
            Arc::new(HostLimits::new(
                Arc::new(crate::local::MemoryState::new()),
                0.0,
            )),
            "AuroraBot".into(),
            Duration::from_secs(60),
        );
        let u = |s: &str| Url::parse(s).unwrap();
        let rules = cache.rules(&u("http://site.test/a")).await;
        assert!(
            rules.allowed(&u("http://site.test/private/x")),
            "our group wins"
        );
        assert!(!rules.allowed(&u("http://site.test/no-aurora/x")));
        assert_eq!(rules.crawl_delay(), Some(Duration::from_millis(500)));
        assert_eq!(rules.sitemaps(), ["http://site.test/sitemap_index.xml"]);
        let again = cache.rules(&u("http://site.test/b")).await;
        assert!(Arc::ptr_eq(&rules, &again));
        assert_eq!(site.requests("http://site.test/robots.txt"), 1);

        let absent = cache.rules(&u("http://other.test/")).await;
        assert!(absent.allowed(&u("http://other.test/anything")));
    }
}
