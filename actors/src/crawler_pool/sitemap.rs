//! Sitemaps: the URLs a site lists for crawlers, from robots.txt's `Sitemap:` lines and
//! `/sitemap.xml`, following sitemap indexes and gunzipping `.xml.gz` files.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::time::Duration;

use url::Url;

use super::politeness::HostLimits;
use crate::ports::{FetchRequest, Fetcher};

/// The most sitemap files read for one crawl (indexes can fan out to thousands).
const MAX_FILES: usize = 50;
/// The most bytes one decompressed sitemap may take (the protocol's own limit is 50 MB).
const MAX_XML_BYTES: u64 = 50 * 1024 * 1024;

/// What one sitemap file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Sitemap {
    Urls(Vec<String>),
    Index(Vec<String>),
}

/// Parses a sitemap (`<urlset>`) or sitemap index (`<sitemapindex>`), gzipped or not.
pub fn parse(body: &[u8]) -> Result<Sitemap, String> {
    let xml = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_XML_BYTES)
            .read_to_string(&mut out)
            .map_err(|e| format!("not valid gzip: {e}"))?;
        out
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let doc = roxmltree::Document::parse(&xml).map_err(|e| format!("not valid XML: {e}"))?;
    let root = doc.root_element();
    let locs = || {
        root.children()
            .filter(|n| n.is_element())
            .filter_map(|entry| {
                entry
                    .children()
                    .find(|n| n.tag_name().name() == "loc")
                    .and_then(|loc| loc.text())
                    .map(|t| t.trim().to_string())
            })
            .filter(|t| !t.is_empty())
            .collect()
    };
    match root.tag_name().name() {
        "urlset" => Ok(Sitemap::Urls(locs())),
        "sitemapindex" => Ok(Sitemap::Index(locs())),
        other => Err(format!("`<{other}>` is not a sitemap")),
    }
}

/// Every page URL the sitemaps starting at `roots` list, up to `max_urls`; unreadable sitemaps
/// are reported in the second list and skipped.
pub async fn discover(
    fetcher: &dyn Fetcher,
    hosts: &HostLimits,
    roots: Vec<Url>,
    max_urls: usize,
    timeout: Duration,
) -> (Vec<Url>, Vec<String>) {
    let mut queue: VecDeque<Url> = roots.into();
    let mut read = HashSet::new();
    let mut pages = Vec::new();
    let mut problems = Vec::new();
    while let Some(sitemap_url) = queue.pop_front() {
        if pages.len() >= max_urls || read.len() >= MAX_FILES {
            break;
        }
        if !read.insert(sitemap_url.clone()) {
            continue;
        }
        hosts
            .until_ready(sitemap_url.host_str().unwrap_or_default())
            .await;
        let response = fetcher
            .fetch(FetchRequest {
                url: sitemap_url.clone(),
                headers: Vec::new(),
                timeout,
                skip_tls_verification: false,
            })
            .await;
        let body = match response {
            Ok(r) if (200..300).contains(&r.status) => r.body,
            // A missing /sitemap.xml is normal; only listed sitemaps that fail are worth a line.
            Ok(r) if r.status == 404 => continue,
            Ok(r) => {
                problems.push(format!("sitemap {sitemap_url}: HTTP {}", r.status));
                continue;
            }
            Err(e) => {
                problems.push(format!("sitemap {sitemap_url}: {e}"));
                continue;
            }
        };
        match parse(&body) {
            Ok(Sitemap::Urls(urls)) => {
                let room = max_urls - pages.len();
                pages.extend(
                    urls.iter()
                        .filter_map(|u| sitemap_url.join(u).ok())
                        .take(room),
                );
            }
            Ok(Sitemap::Index(children)) => {
                queue.extend(children.iter().filter_map(|u| sitemap_url.join(u).ok()));
            }
            Err(e) => problems.push(format!("sitemap {sitemap_url}: {e}")),
        }
    }
    (pages, problems)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::local::StaticSite;

    const INDEX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>http://site.test/sitemap-a.xml</loc></sitemap>
  <sitemap><loc>http://site.test/sitemap-b.xml.gz</loc><lastmod>2026-01-01</lastmod></sitemap>
</sitemapindex>"#;

    fn urlset(urls: &[&str]) -> String {
        let entries: String = urls
            .iter()
            .map(|u| format!("<url><loc> {u} </loc><priority>0.5</priority></url>"))
            .collect();
        format!(
            r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>"#
        )
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn parses_urlsets_and_indexes_plain_or_gzipped() {
        assert_eq!(
            parse(INDEX.as_bytes()).unwrap(),
            Sitemap::Index(vec![
                "http://site.test/sitemap-a.xml".into(),
                "http://site.test/sitemap-b.xml.gz".into()
            ])
        );
        let set = urlset(&["http://site.test/a", "http://site.test/b"]);
        let want = Sitemap::Urls(vec![
            "http://site.test/a".into(),
            "http://site.test/b".into(),
        ]);
        assert_eq!(parse(set.as_bytes()).unwrap(), want);
        assert_eq!(parse(&gzip(&set)).unwrap(), want);
        assert!(
            parse(b"<html></html>")
                .unwrap_err()
                .contains("not a sitemap")
        );
        assert!(parse(b"<urlset").unwrap_err().contains("not valid XML"));
    }

    #[tokio::test]
    async fn discovery_follows_indexes_and_reports_broken_sitemaps() {
        let site = StaticSite::new([
            (
                "http://site.test/sitemap.xml",
                200,
                "application/xml",
                INDEX.as_bytes().to_vec(),
            ),
            (
                "http://site.test/sitemap-a.xml",
                200,
                "application/xml",
                urlset(&["http://site.test/a", "/relative"]).into_bytes(),
            ),
            (
                "http://site.test/sitemap-b.xml.gz",
                200,
                "application/gzip",
                gzip(&urlset(&["http://site.test/b"])),
            ),
            (
                "http://site.test/broken.xml",
                200,
                "application/xml",
                b"<urlset".to_vec(),
            ),
        ]);
        let roots = vec![
            Url::parse("http://site.test/sitemap.xml").unwrap(),
            Url::parse("http://site.test/broken.xml").unwrap(),
            Url::parse("http://site.test/missing.xml").unwrap(),
        ];
        let (pages, problems) = discover(
            &site,
            &HostLimits::new(std::sync::Arc::new(crate::local::MemoryState::new()), 0.0),
            roots,
            100,
            Duration::from_secs(5),
        )
        .await;
        let pages: Vec<String> = pages.into_iter().map(String::from).collect();
        assert_eq!(
            pages,
            [
                "http://site.test/a",
                "http://site.test/relative",
                "http://site.test/b"
            ]
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("broken.xml"));

        let roots = vec![Url::parse("http://site.test/sitemap.xml").unwrap()];
        let (pages, _) = discover(
            &site,
            &HostLimits::new(std::sync::Arc::new(crate::local::MemoryState::new()), 0.0),
            roots,
            1,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(pages.len(), 1);
    }
}
