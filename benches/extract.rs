//! Extraction speed on real-size pages: everything a scraper worker does after the fetch
//! (charset decoding, parsing, metadata, links, main content, Markdown).
//!
//! `cargo bench --bench extract` — the goal is ≥ 1000 pages/s of ~100 KB pages on one core.

use std::time::Duration;

use aurora_actors::model::{Formats, ScrapeRequest};
use aurora_actors::ports::FetchResponse;
use aurora_actors::scraper::build_page;
use aurora_actors::scraper::extract::Selectors;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PAGES: &[(&str, &[u8])] = &[
    ("cargo-semver", include_bytes!("fixtures/cargo-semver.html")),
    (
        "std-binaryheap",
        include_bytes!("fixtures/std-binaryheap.html"),
    ),
];

fn extraction(c: &mut Criterion) {
    let mut group = c.benchmark_group("extract");
    group.measurement_time(Duration::from_secs(8));
    for (name, html) in PAGES {
        let url: url::Url = format!("https://doc.example/{name}.html")
            .parse()
            .expect("valid URL");
        let fetched = FetchResponse {
            final_url: url.clone(),
            status: 200,
            content_type: Some("text/html; charset=utf-8".to_string()),
            body: html.to_vec(),
            truncated: false,
            redirects: Vec::new(),
            retry_after: None,
        };
        let selectors = Selectors::default();
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name} ({} KB) markdown", html.len() / 1024), |b| {
            b.iter(|| {
                let request = ScrapeRequest::new(url.clone());
                build_page(request, fetched.clone(), &selectors).expect("fixture is HTML")
            })
        });
        group.bench_function(
            format!("{name} ({} KB) links only", html.len() / 1024),
            |b| {
                b.iter(|| {
                    let request = ScrapeRequest {
                        formats: Formats {
                            markdown: false,
                            html: false,
                            raw_html: false,
                            links: true,
                        },
                        ..ScrapeRequest::new(url.clone())
                    };
                    build_page(request, fetched.clone(), &selectors).expect("fixture is HTML")
                })
            },
        );
        group.bench_function(
            format!("{name} ({} KB) all formats", html.len() / 1024),
            |b| {
                b.iter(|| {
                    let request = ScrapeRequest {
                        formats: Formats {
                            markdown: true,
                            html: true,
                            raw_html: true,
                            links: true,
                        },
                        ..ScrapeRequest::new(url.clone())
                    };
                    build_page(request, fetched.clone(), &selectors).expect("fixture is HTML")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, extraction);
criterion_main!(benches);
