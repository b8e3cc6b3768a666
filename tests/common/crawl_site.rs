//! A generated site to crawl, served on 127.0.0.1:0 with a log of every request it answers:
//! 10 sections × 50 pages, duplicate links (fragments, tracking parameters), a robots.txt with a
//! disallowed folder and an optional Crawl-delay, a sitemap index with a gzipped child listing a
//! page nothing links to, a redirect, non-HTML files, a failing page and an endless calendar.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;
use warp::Filter;
use warp::http::{Response, StatusCode};

pub const SECTIONS: usize = 10;
pub const PAGES: usize = 50;

pub struct CrawlSite {
    pub addr: SocketAddr,
    /// (when, path with query) of every request, in arrival order.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    _stop: oneshot::Sender<()>,
}

impl CrawlSite {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<(Instant, String)> {
        self.log.lock().expect("log lock").clone()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|(_, p)| p == path).count()
    }
}

fn page(title: &str, links: &[String]) -> String {
    let links: String = links
        .iter()
        .map(|l| format!("<li><a href=\"{l}\">{l}</a></li>"))
        .collect();
    format!(
        "<!doctype html><html><head><title>{title}</title></head><body><nav><a href=\"/\">Home</a></nav>\
         <main><h1>{title}</h1><p>This is the page called {title}. It has a paragraph of text so \
         that it reads like a real page, and a list of links.</p><ul>{links}</ul></main></body></html>"
    )
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .expect("valid response")
}

fn html(body: String) -> Response<Vec<u8>> {
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        body.into_bytes(),
    )
}

fn urlset(base: &str, paths: &[String]) -> String {
    let urls: String = paths
        .iter()
        .map(|p| format!("<url><loc>{base}{p}</loc></url>"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>"#
    )
}

fn answer(base: &str, crawl_delay: Option<f64>, path: &str, query: &str) -> Response<Vec<u8>> {
    let not_found = || {
        respond(
            StatusCode::NOT_FOUND,
            "text/html",
            b"<h1>Not found</h1>".to_vec(),
        )
    };
    match path {
        "/robots.txt" => {
            let delay = crawl_delay
                .map(|d| format!("Crawl-delay: {d}\n"))
                .unwrap_or_default();
            let body = format!(
                "User-agent: *\nDisallow: /private/\n{delay}\nSitemap: {base}/sitemap_index.xml\n"
            );
            respond(StatusCode::OK, "text/plain", body.into_bytes())
        }
        "/sitemap_index.xml" => {
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>{base}/sitemap-main.xml</loc></sitemap><sitemap><loc>{base}/sitemap-extra.xml.gz</loc></sitemap></sitemapindex>"#
            );
            respond(StatusCode::OK, "application/xml", body.into_bytes())
        }
        "/sitemap-main.xml" => {
            let sections: Vec<String> = (0..SECTIONS).map(|s| format!("/docs/s{s}/")).collect();
            respond(
                StatusCode::OK,
                "application/xml",
                urlset(base, &sections).into_bytes(),
            )
        }
        "/sitemap-extra.xml.gz" => {
            let xml = urlset(base, &["/orphan.html".to_string()]);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(xml.as_bytes()).expect("gzip");
            respond(
                StatusCode::OK,
                "application/gzip",
                gz.finish().expect("gzip"),
            )
        }
        "/" => {
            let mut links: Vec<String> = vec!["/docs/".into()];
            links.extend((0..SECTIONS).map(|s| format!("/docs/s{s}/")));
            links.extend([
                "/private/secret.html".to_string(),
                "/files/report.pdf".into(),
                "/files/archive.zip".into(),
                "/moved".into(),
                "/broken".into(),
                "/calendar?month=0".into(),
                "http://example.invalid/elsewhere".into(),
                "mailto:someone@example.org".into(),
            ]);
            html(page("Home", &links))
        }
        "/docs/" => {
            let links: Vec<String> = (0..SECTIONS).map(|s| format!("s{s}/")).collect();
            html(page("Documentation", &links))
        }
        "/orphan.html" => html(page("Orphan", &[])),
        "/moved" => Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header("location", "/landing.html")
            .body(Vec::new())
            .expect("valid response"),
        "/landing.html" => html(page("Landing", &[])),
        "/private/secret.html" => html(page("Secret", &[])),
        "/broken" => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html",
            b"<h1>Oops</h1>".to_vec(),
        ),
        "/files/report.pdf" => respond(StatusCode::OK, "application/pdf", b"%PDF-1.7 ...".to_vec()),
        "/files/archive.zip" => respond(StatusCode::OK, "application/zip", b"PK..".to_vec()),
        "/calendar" => {
            let month: u64 = query
                .strip_prefix("month=")
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            html(page(
                &format!("Calendar month {month}"),
                &[format!("/calendar?month={}", month + 1)],
            ))
        }
        _ => {
            let Some(rest) = path.strip_prefix("/docs/s") else {
                return not_found();
            };
            let (section, file) = rest.split_once('/').unwrap_or((rest, ""));
            let Ok(s) = section.parse::<usize>() else {
                return not_found();
            };
            if s >= SECTIONS {
                return not_found();
            }
            if file.is_empty() {
                let links: Vec<String> = (0..PAGES).map(|p| format!("p{p}.html")).collect();
                return html(page(&format!("Section {s}"), &links));
            }
            let Some(p) = file
                .strip_prefix('p')
                .and_then(|f| f.strip_suffix(".html"))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|p| *p < PAGES)
            else {
                return not_found();
            };
            let links = vec![
                "/".to_string(),
                format!("p{}.html#details", (p + 1) % PAGES),
                format!(
                    "p{}.html?utm_source=newsletter&utm_medium=email",
                    (p + 2) % PAGES
                ),
                "../".to_string(),
                "/private/secret.html".to_string(),
            ];
            html(page(&format!("Page {s}.{p} about topic{s}x{p}"), &links))
        }
    }
}

/// Serves the site; `crawl_delay` goes into robots.txt.
pub async fn spawn_crawl_site(crawl_delay: Option<f64>) -> CrawlSite {
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let seen = log.clone();
    let routes = warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |path: warp::path::FullPath, query: String| {
            let full = if query.is_empty() {
                path.as_str().to_string()
            } else {
                format!("{}?{query}", path.as_str())
            };
            seen.lock().expect("log lock").push((Instant::now(), full));
            answer(&base, crawl_delay, path.as_str(), &query)
        });
    let stop = super::serve_until_dropped(listener, routes);
    CrawlSite {
        addr,
        log,
        _stop: stop,
    }
}
