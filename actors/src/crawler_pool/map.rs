//! Map: a site's URLs, found the way a crawl finds them but without keeping any page. The
//! sitemaps are read first (unless `sitemap: skip`); then, unless `sitemap: only`, a link-only
//! breadth-first crawl runs from the start page and the sitemaps' URLs, as polite as a crawl
//! (robots.txt, Crawl-delay, the cluster's per-host rate, this process's fetch slots) and bounded
//! by the crawl's trap rules, until the listing holds `limit` URLs, the frontier is empty or the
//! time budget is spent. Pages are read by the scraper's facts pass (links, title, description;
//! no DOM, no markdown), so a map costs a fraction of a crawl.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use super::politeness::HostClock;
use super::scope::{Scope, ScopeRules};
use super::{CrawlError, Shared, SitemapMode};
use crate::model::{Formats, Page, ScrapeRequest};

/// What a map should list (Firecrawl `map`).
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub url: Url,
    /// Keep only URLs whose address, title or description contains one of these words
    /// (case-insensitive), best matches first.
    pub search: Option<String>,
    pub sitemap: SitemapMode,
    pub include_subdomains: bool,
    pub ignore_query_parameters: bool,
    pub limit: usize,
    /// The whole map's budget: what is found by then is the answer.
    pub timeout: Duration,
}

/// One listed URL, with what its page says about itself when the map read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub url: Url,
    pub title: Option<String>,
    pub description: Option<String>,
}

/// The URLs found so far, in the order found, each once (by the scope's de-duplication key).
struct Listing {
    entries: Vec<Entry>,
    /// Position in `entries` by de-duplication key.
    index: HashMap<String, usize>,
    terms: Vec<String>,
    /// Live entries whose URL matches the search (all live entries without one): the count the
    /// limit is reached by.
    matching: usize,
}

struct Entry {
    link: Mapped,
    /// The URL answered an error or redirected elsewhere: not listed.
    dead: bool,
    url_matches: bool,
}

impl Listing {
    fn new(search: Option<&str>) -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
            terms: search
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_lowercase)
                .collect(),
            matching: 0,
        }
    }

    /// Adds `url` (already admitted by the scope); false when it was listed before.
    fn add(&mut self, scope: &Scope, url: Url) -> bool {
        let key = scope.seen_key(&url);
        if self.index.contains_key(&key) {
            return false;
        }
        let url_matches = self.terms.is_empty() || self.score(url.as_str()) > 0;
        self.matching += usize::from(url_matches);
        self.index.insert(key, self.entries.len());
        self.entries.push(Entry {
            link: Mapped {
                url,
                title: None,
                description: None,
            },
            dead: false,
            url_matches,
        });
        true
    }

    fn entry(&mut self, scope: &Scope, url: &Url) -> Option<&mut Entry> {
        let at = *self.index.get(&scope.seen_key(url))?;
        self.entries.get_mut(at)
    }

    fn bury(&mut self, scope: &Scope, url: &Url) {
        if let Some(entry) = self.entry(scope, url)
            && !entry.dead
        {
            entry.dead = true;
            let matched = entry.url_matches;
            self.matching -= usize::from(matched);
        }
    }

    fn full(&self, limit: usize) -> bool {
        self.matching >= limit
    }

    /// How many of the search's words `text` contains.
    fn score(&self, text: &str) -> usize {
        let text = text.to_lowercase();
        self.terms
            .iter()
            .filter(|t| text.contains(t.as_str()))
            .count()
    }

    /// The answer: live entries, best search matches first (else in the order found).
    fn into_links(self, limit: usize) -> Vec<Mapped> {
        let mut ranked: Vec<(usize, Mapped)> = self
            .entries
            .iter()
            .filter(|e| !e.dead)
            .filter_map(|e| {
                let link = &e.link;
                let text = [
                    Some(link.url.as_str()),
                    link.title.as_deref(),
                    link.description.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
                let matched = self.score(&text);
                (self.terms.is_empty() || matched > 0).then(|| (matched, link.clone()))
            })
            .collect();
        ranked.sort_by_key(|(matched, _)| std::cmp::Reverse(*matched));
        ranked.into_iter().map(|(_, l)| l).take(limit).collect()
    }
}

/// A URL the link crawl should read: its link distance and shape run, as a crawl counts them.
struct Visit {
    url: Url,
    hops: usize,
    run: usize,
}

/// How reading one URL ended.
enum Read {
    Page(Box<Page>),
    /// The scrape failed or the host was busy: not followed, still listed.
    Unread,
    /// The page answered an error, or robots.txt disallows it: not listed.
    Dead,
}

#[tracing::instrument(name = "map", skip_all, fields(url = %spec.url, sitemap = ?spec.sitemap))]
pub(super) async fn map(shared: &Arc<Shared>, spec: MapSpec) -> Result<Vec<Mapped>, CrawlError> {
    shared
        .fetcher
        .admits(&spec.url)
        .await
        .map_err(CrawlError::Refused)?;
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let rules = ScopeRules {
        crawl_entire_domain: true,
        allow_subdomains: spec.include_subdomains,
        ignore_query_parameters: spec.ignore_query_parameters,
        ..ScopeRules::default()
    };
    let scope = Scope::new(&spec.url, rules, shared.config.traps.clone())
        .with_media(shared.config.follow_media);
    let mut listing = Listing::new(spec.search.as_deref());
    let mut frontier = VecDeque::new();
    if spec.sitemap != SitemapMode::Only {
        let start = super::urls::normalise(&spec.url, spec.ignore_query_parameters);
        listing.add(&scope, start.clone());
        frontier.push_back(Visit {
            url: start,
            hops: 0,
            run: 0,
        });
    }
    if spec.sitemap != SitemapMode::Skip {
        for url in sitemap_urls(shared, &spec, deadline).await {
            if let Ok(url) = scope.admit(&url, 1)
                && listing.add(&scope, url.clone())
            {
                frontier.push_back(Visit {
                    url,
                    hops: 1,
                    run: 0,
                });
            }
        }
    }
    if spec.sitemap != SitemapMode::Only {
        crawl(shared, &spec, &scope, &mut listing, frontier, deadline).await;
    }
    metrics::counter!("aurora_crawl_maps_total").increment(1);
    metrics::histogram!("aurora_crawl_map_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    Ok(listing.into_links(spec.limit))
}

/// The URLs the site's sitemaps (robots.txt's, else `/sitemap.xml`) list, within the budget.
async fn sitemap_urls(shared: &Shared, spec: &MapSpec, deadline: Instant) -> Vec<Url> {
    let (urls, problems) = shared
        .sitemap_urls(
            &spec.url,
            spec.limit.saturating_mul(4).max(1000),
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
    for problem in problems {
        tracing::debug!(%problem, "sitemap unreadable");
    }
    urls
}

/// The link-only crawl: reads pages breadth first, up to the crawl's per-job width at a time,
/// until the listing is full, nothing is left to read or the deadline passes (reads still in
/// flight then are dropped).
async fn crawl(
    shared: &Arc<Shared>,
    spec: &MapSpec,
    scope: &Scope,
    listing: &mut Listing,
    mut frontier: VecDeque<Visit>,
    deadline: Instant,
) {
    let clock = Arc::new(HostClock::default());
    let width = shared.config.job_concurrency.max(1);
    let mut reading = JoinSet::new();
    loop {
        while reading.len() < width && !listing.full(spec.limit) {
            let Some(visit) = frontier.pop_front() else {
                break;
            };
            let (shared, clock) = (shared.clone(), clock.clone());
            reading.spawn(async move {
                let read = read(&shared, &clock, &visit.url, deadline).await;
                (visit, read)
            });
        }
        let next = match tokio::time::timeout_at(deadline, reading.join_next()).await {
            Err(_elapsed) => {
                metrics::counter!("aurora_crawl_map_budget_spent_total").increment(1);
                break;
            }
            Ok(None) => break,
            Ok(Some(next)) => next,
        };
        let Ok((visit, read)) = next else { continue };
        let page = match read {
            Read::Page(page) => page,
            Read::Dead => {
                listing.bury(scope, &visit.url);
                continue;
            }
            Read::Unread => continue,
        };
        let here = match scope.admit(&page.url, visit.hops) {
            Ok(landed) if scope.seen_key(&landed) == scope.seen_key(&visit.url) => visit.url,
            // Redirected: the page is listed where it landed, if the map takes that URL.
            landed => {
                listing.bury(scope, &visit.url);
                match landed {
                    Ok(landed) => {
                        listing.add(scope, landed.clone());
                        landed
                    }
                    Err(_) => continue,
                }
            }
        };
        if let Some(entry) = listing.entry(scope, &here) {
            entry.link.title = page.title.clone();
            entry.link.description = page.description.clone();
        }
        for link in page.links.iter().flatten() {
            let Ok(link) = page.url.join(link) else {
                continue;
            };
            let admitted = scope.admit(&link, visit.hops + 1).and_then(|link| {
                let run = scope.shape_run(&here, visit.run, &link)?;
                Ok((link, run))
            });
            if let Ok((link, run)) = admitted
                && listing.add(scope, link.clone())
            {
                frontier.push_back(Visit {
                    url: link,
                    hops: visit.hops + 1,
                    run,
                });
            }
        }
    }
}

/// Reads one page for its links, as politely as a crawl would.
async fn read(shared: &Shared, clock: &HostClock, url: &Url, deadline: Instant) -> Read {
    if shared
        .robots_gate(clock, url, Duration::ZERO, false)
        .await
        .is_err()
    {
        metrics::counter!("aurora_crawl_map_pages_total", "outcome" => "robots").increment(1);
        // A map lists what a crawl may visit.
        return Read::Dead;
    }
    shared.host_turn(clock, url).await;
    let Ok(_slot) = shared.global.acquire().await else {
        return Read::Unread;
    };
    let mut request = ScrapeRequest::new(url.clone());
    request.formats = Formats {
        markdown: false,
        html: false,
        raw_html: false,
        links: true,
    };
    request.timeout = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let (outcome, read) = match shared.router.scrape(request).await {
        // Busy or rate-limited is not gone: the URL stays listed.
        Ok(page) if matches!(page.status_code, 429 | 503) => ("failed", Read::Unread),
        Ok(page) if page.status_code >= 400 => ("dead", Read::Dead),
        Ok(page) => ("ok", Read::Page(Box::new(page))),
        Err(_) => ("failed", Read::Unread),
    };
    metrics::counter!("aurora_crawl_map_pages_total", "outcome" => outcome).increment(1);
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawler_pool::scope::TrapBounds;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_listing_dedups_ranks_by_search_and_drops_the_dead() {
        let scope = Scope::new(
            &u("http://s/"),
            ScopeRules::default(),
            TrapBounds::default(),
        );
        let mut listing = Listing::new(Some("Guide install"));
        assert!(listing.add(&scope, u("http://s/")));
        assert!(listing.add(&scope, u("http://s/install-guide")));
        assert!(listing.add(&scope, u("http://s/about")));
        assert!(listing.add(&scope, u("http://s/gone-guide")));
        assert!(!listing.add(&scope, u("http://s/about")), "listed once");
        assert_eq!(listing.matching, 2, "URL matches count towards the limit");
        listing.bury(&scope, &u("http://s/gone-guide"));
        listing.bury(&scope, &u("http://s/gone-guide"));
        assert_eq!(listing.matching, 1);
        assert!(listing.full(1) && !listing.full(2));
        if let Some(entry) = listing.entry(&scope, &u("http://s/about")) {
            entry.link.description = Some("How to install it".into());
        }
        let urls: Vec<String> = listing
            .into_links(10)
            .into_iter()
            .map(|l| l.url.to_string())
            .collect();
        assert_eq!(urls, ["http://s/install-guide", "http://s/about"]);
    }
}
