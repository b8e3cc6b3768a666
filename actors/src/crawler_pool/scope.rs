//! Which discovered URLs belong to a crawl: the caller's rules (domain, path prefix, include and
//! exclude patterns, depth) and the trap bounds that keep a generated site from running forever.

use regex::Regex;
use serde::{Deserialize, Serialize};
use url::Url;

use super::urls;

/// The caller's rules, as Firecrawl names them. Serialisable: they travel with the job to every
/// replica that works on it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScopeRules {
    /// A URL must match one of these (when any are given)…
    #[serde(with = "patterns")]
    pub include_paths: Vec<Regex>,
    /// …and none of these.
    #[serde(with = "patterns")]
    pub exclude_paths: Vec<Regex>,
    /// Match the patterns against the whole URL rather than its path.
    pub regex_on_full_url: bool,
    /// Path segments allowed below the start URL's (v1 `maxDepth`).
    pub max_depth: Option<usize>,
    /// Link hops from the start URL (`maxDiscoveryDepth`).
    pub max_discovery_depth: Option<usize>,
    /// Follow links outside the start URL's path (`crawlEntireDomain`/`allowBackwardLinks`).
    pub crawl_entire_domain: bool,
    pub allow_external_links: bool,
    pub allow_subdomains: bool,
    pub ignore_query_parameters: bool,
    pub deduplicate_similar_urls: bool,
}

/// Regular expressions as their source text (checked when the job was accepted).
mod patterns {
    use regex::Regex;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(patterns: &[Regex], to: S) -> Result<S::Ok, S::Error> {
        let sources: Vec<&str> = patterns.iter().map(Regex::as_str).collect();
        sources.serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<Regex>, D::Error> {
        Vec::<String>::deserialize(from)?
            .iter()
            .map(|source| Regex::new(source).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Bounds against crawler traps, from settings.
#[derive(Debug, Clone)]
pub struct TrapBounds {
    pub max_url_length: usize,
    /// Most times one path segment may appear in a URL.
    pub max_segment_repeats: usize,
    /// Most pages in a row, each found only on the one before, that share a URL shape (digits
    /// and query values abstracted): a calendar's "next month" chain. Sibling pages of one
    /// shape (`/p1.html` … `/p500.html` linked from an index) are not a run.
    pub max_shape_run: usize,
}

impl Default for TrapBounds {
    fn default() -> Self {
        Self {
            max_url_length: 2048,
            max_segment_repeats: 3,
            max_shape_run: 50,
        }
    }
}

/// Why a discovered URL is not crawled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotHttp,
    External,
    OutsideStartPath,
    Excluded,
    NotIncluded,
    TooDeep,
    Asset,
    /// A trap bound: the URL is left out, and the crawl's errors say so once per bound.
    Trap(Trap),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trap {
    UrlTooLong,
    RepeatedSegments,
    ShapeRun,
}

impl Trap {
    pub fn label(self) -> &'static str {
        match self {
            Trap::UrlTooLong => "url_too_long",
            Trap::RepeatedSegments => "repeated_segments",
            Trap::ShapeRun => "shape_run",
        }
    }

    /// The line the crawl's errors carry.
    pub fn explain(self, bounds: &TrapBounds, url: &Url) -> String {
        match self {
            Trap::UrlTooLong => format!(
                "crawler trap: URLs longer than {} characters are not followed (first: {url})",
                bounds.max_url_length
            ),
            Trap::RepeatedSegments => format!(
                "crawler trap: URLs repeating a path segment more than {} times are not followed \
                 (first: {url})",
                bounds.max_segment_repeats
            ),
            Trap::ShapeRun => format!(
                "crawler trap: more than {} pages in a row of one URL pattern, each linking to \
                 the next (e.g. a calendar); not followed further (first left out: {url})",
                bounds.max_shape_run
            ),
        }
    }
}

/// A crawl's scope: its rules plus the counts its trap bounds need.
#[derive(Debug)]
pub struct Scope {
    rules: ScopeRules,
    bounds: TrapBounds,
    start: Url,
    start_depth: usize,
    /// The start URL's directory: without `crawl_entire_domain`, only URLs below it.
    start_prefix: String,
    /// Follow links to recordings (a transcriber is configured).
    media: bool,
}

impl Scope {
    pub fn new(start: &Url, rules: ScopeRules, bounds: TrapBounds) -> Self {
        let path = start.path();
        let start_prefix = match path.rfind('/') {
            Some(i) => path[..=i].to_string(),
            None => "/".to_string(),
        };
        Self {
            start_depth: urls::path_depth(start),
            start: start.clone(),
            rules,
            bounds,
            start_prefix,
            media: false,
        }
    }

    /// Follows links to recordings too (when a transcriber can read them).
    pub fn with_media(mut self, media: bool) -> Self {
        self.media = media;
        self
    }

    pub fn bounds(&self) -> &TrapBounds {
        &self.bounds
    }

    /// The normal form of `url` if the crawl's rules take it at link distance `hops`. New URLs
    /// must then pass [`Scope::shape_run`].
    pub fn admit(&self, url: &Url, hops: usize) -> Result<Url, Skip> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Skip::NotHttp);
        }
        let url = urls::normalise(url, self.rules.ignore_query_parameters);
        self.check_rules(&url, hops)?;
        if url.as_str().len() > self.bounds.max_url_length {
            return Err(Skip::Trap(Trap::UrlTooLong));
        }
        if urls::max_segment_repeats(&url) > self.bounds.max_segment_repeats {
            return Err(Skip::Trap(Trap::RepeatedSegments));
        }
        Ok(url)
    }

    /// The shape run of `url` found on a page at `parent` whose own run was `parent_run`: one
    /// longer when both share a shape, else 0; refused past the bound.
    pub fn shape_run(&self, parent: &Url, parent_run: usize, url: &Url) -> Result<usize, Skip> {
        if urls::shape(parent) != urls::shape(url) {
            return Ok(0);
        }
        let run = parent_run + 1;
        if run > self.bounds.max_shape_run {
            return Err(Skip::Trap(Trap::ShapeRun));
        }
        Ok(run)
    }

    fn check_rules(&self, url: &Url, hops: usize) -> Result<(), Skip> {
        let rules = &self.rules;
        let host = urls::site_host(url);
        let start_host = urls::site_host(&self.start);
        let same_site = host == start_host && url.port() == self.start.port();
        let subdomain = host.ends_with(&format!(".{start_host}"));
        if !(same_site || rules.allow_external_links || (rules.allow_subdomains && subdomain)) {
            return Err(Skip::External);
        }
        if same_site && !rules.crawl_entire_domain && !url.path().starts_with(&self.start_prefix) {
            return Err(Skip::OutsideStartPath);
        }
        if urls::is_asset(url, self.media) {
            return Err(Skip::Asset);
        }
        let subject = if rules.regex_on_full_url {
            url.as_str()
        } else {
            url.path()
        };
        if rules.exclude_paths.iter().any(|re| re.is_match(subject)) {
            return Err(Skip::Excluded);
        }
        if !rules.include_paths.is_empty()
            && !rules.include_paths.iter().any(|re| re.is_match(subject))
        {
            return Err(Skip::NotIncluded);
        }
        let too_deep = rules
            .max_depth
            .is_some_and(|max| urls::path_depth(url) > self.start_depth + max)
            || rules.max_discovery_depth.is_some_and(|max| hops > max);
        if too_deep {
            return Err(Skip::TooDeep);
        }
        Ok(())
    }

    /// The de-duplication key of an admitted URL.
    pub fn seen_key(&self, url: &Url) -> String {
        if self.rules.deduplicate_similar_urls {
            urls::similar_key(url)
        } else {
            url.as_str().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn scope(start: &str, rules: ScopeRules) -> Scope {
        Scope::new(&u(start), rules, TrapBounds::default())
    }

    #[test]
    fn stays_on_the_site_and_below_the_start_path_by_default() {
        let s = scope("http://site.test/docs/intro.html", ScopeRules::default());
        assert!(s.admit(&u("http://site.test/docs/a/b.html"), 1).is_ok());
        assert!(s.admit(&u("http://www.site.test/docs/c.html"), 1).is_ok());
        assert_eq!(
            s.admit(&u("http://site.test/blog/"), 1),
            Err(Skip::OutsideStartPath)
        );
        assert_eq!(
            s.admit(&u("http://other.test/docs/"), 1),
            Err(Skip::External)
        );
        assert_eq!(
            s.admit(&u("http://api.site.test/docs/"), 1),
            Err(Skip::External)
        );
        assert_eq!(s.admit(&u("mailto:a@site.test"), 1), Err(Skip::NotHttp));
        assert_eq!(
            s.admit(&u("http://site.test/docs/x.png"), 1),
            Err(Skip::Asset)
        );
    }

    #[test]
    fn domain_rules_open_up_on_request() {
        let s = scope(
            "http://site.test/docs/",
            ScopeRules {
                crawl_entire_domain: true,
                allow_subdomains: true,
                ..ScopeRules::default()
            },
        );
        assert!(s.admit(&u("http://site.test/blog/"), 1).is_ok());
        assert!(s.admit(&u("http://api.site.test/x"), 1).is_ok());
        assert_eq!(
            s.admit(&u("http://evil-site.test/"), 1),
            Err(Skip::External)
        );
        let s = scope(
            "http://site.test/",
            ScopeRules {
                allow_external_links: true,
                ..ScopeRules::default()
            },
        );
        assert!(s.admit(&u("http://other.test/"), 1).is_ok());
    }

    #[test]
    fn patterns_and_depths() {
        let s = scope(
            "http://site.test/",
            ScopeRules {
                include_paths: vec![Regex::new("^/docs/").unwrap()],
                exclude_paths: vec![Regex::new("/private").unwrap()],
                max_depth: Some(2),
                max_discovery_depth: Some(3),
                ..ScopeRules::default()
            },
        );
        assert!(s.admit(&u("http://site.test/docs/a"), 1).is_ok());
        assert_eq!(
            s.admit(&u("http://site.test/blog"), 1),
            Err(Skip::NotIncluded)
        );
        assert_eq!(
            s.admit(&u("http://site.test/docs/private/a"), 1),
            Err(Skip::Excluded)
        );
        assert_eq!(
            s.admit(&u("http://site.test/docs/a/b"), 1),
            Err(Skip::TooDeep)
        );
        assert_eq!(
            s.admit(&u("http://site.test/docs/b"), 4),
            Err(Skip::TooDeep)
        );
        let full = scope(
            "http://site.test/",
            ScopeRules {
                include_paths: vec![Regex::new(r"\?lang=en").unwrap()],
                regex_on_full_url: true,
                ..ScopeRules::default()
            },
        );
        assert!(full.admit(&u("http://site.test/p?lang=en"), 1).is_ok());
        assert_eq!(
            full.admit(&u("http://site.test/p?lang=de"), 1),
            Err(Skip::NotIncluded)
        );
    }

    #[test]
    fn traps_are_bounded() {
        let s = Scope::new(
            &u("http://site.test/"),
            ScopeRules::default(),
            TrapBounds {
                max_url_length: 60,
                max_segment_repeats: 2,
                max_shape_run: 5,
            },
        );
        let mut run = 0;
        for month in 1..=5 {
            let parent = u(&format!("http://site.test/cal?m={}", month - 1));
            run = s
                .shape_run(&parent, run, &u(&format!("http://site.test/cal?m={month}")))
                .unwrap();
        }
        assert_eq!(run, 5);
        assert_eq!(
            s.shape_run(
                &u("http://site.test/cal?m=5"),
                run,
                &u("http://site.test/cal?m=6")
            ),
            Err(Skip::Trap(Trap::ShapeRun))
        );
        assert_eq!(
            s.shape_run(
                &u("http://site.test/cal?m=5"),
                run,
                &u("http://site.test/about")
            ),
            Ok(0),
            "another shape starts a new run"
        );
        assert_eq!(
            s.admit(&u("http://site.test/a/b/a/b/a/"), 1),
            Err(Skip::Trap(Trap::RepeatedSegments))
        );
        let long = format!("http://site.test/{}", "x".repeat(60));
        assert_eq!(s.admit(&u(&long), 1), Err(Skip::Trap(Trap::UrlTooLong)));
    }

    #[test]
    fn similar_urls_dedupe_only_when_asked() {
        let plain = scope("http://site.test/", ScopeRules::default());
        assert_ne!(
            plain.seen_key(&u("http://site.test/a/")),
            plain.seen_key(&u("http://site.test/a"))
        );
        let similar = scope(
            "http://site.test/",
            ScopeRules {
                deduplicate_similar_urls: true,
                ..ScopeRules::default()
            },
        );
        assert_eq!(
            similar.seen_key(&u("http://site.test/a/")),
            similar.seen_key(&u("http://site.test/a"))
        );
    }
}
