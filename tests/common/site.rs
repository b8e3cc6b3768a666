//! A real web site on 127.0.0.1:0 for the scraper to fetch: articles with site chrome,
//! redirects (good, looping, endless, to private addresses), error pages, slow and huge pages,
//! Latin-1 pages, compressed pages, and an echo of the request headers.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use warp::Filter;
use warp::http::{Response, StatusCode};

pub struct Site {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub const ARTICLE: &str = r#"<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Aurora test article</title>
<meta name="description" content="A page about the northern lights">
<meta property="og:title" content="Northern lights">
<meta property="og:site_name" content="Test Site">
<link rel="canonical" href="/article">
<style>body { color: red }</style>
</head><body>
<header class="site-header"><a href="/">Test Site home</a></header>
<nav><a href="/about">About us</a> <a href="/contact">Contact</a></nav>
<div class="cookie-banner">We use cookies. <button>Accept</button></div>
<main>
  <h1>The northern lights</h1>
  <p>Auroras appear when <strong>charged particles</strong> meet the upper atmosphere.</p>
  <h2>Where to see them</h2>
  <ul><li>Tromsø</li><li>Fairbanks</li></ul>
  <p>Read the <a href="/guide#best-time">viewing guide</a> or the
     <a href="https://example.org/science">science</a>.</p>
  <pre><code class="language-python">print("aurora")</code></pre>
  <table><tr><th>Month</th><th>Chance</th></tr><tr><td>February</td><td>high</td></tr></table>
</main>
<aside>Sponsored: buy a parka</aside>
<footer>© 2026 Test Site — all rights reserved</footer>
<script>document.write("script text must never appear")</script>
</body></html>"#;

fn html(status: StatusCode, body: impl Into<String>) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(body.into())
        .expect("valid response")
}

fn redirect(to: &str) -> Response<String> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", to)
        .body(String::new())
        .expect("valid response")
}

/// Links to documents and a recording, for crawls that ingest them.
const LIBRARY: &str = "<html><head><title>Library</title></head><body><main><h1>Library</h1>\
    <p>Our field guide, its slides and a recorded talk.</p><ul>\
    <li><a href=\"guide.pdf\">Field guide (PDF)</a></li>\
    <li><a href=\"slides.pptx\">Slides</a></li>\
    <li><a href=\"speech.wav\">Talk</a></li></ul></main></body></html>";

pub async fn spawn_site() -> Site {
    let article = warp::path!("article").map(|| html(StatusCode::OK, ARTICLE));
    let redirect_to_article = warp::path!("redirect").map(|| redirect("/article"));
    let redirect_to = warp::path!("redirect-to")
        .and(warp::query::<HashMap<String, String>>())
        .map(|q: HashMap<String, String>| redirect(q.get("url").map_or("/", String::as_str)));
    let loop_a = warp::path!("loop" / "a").map(|| redirect("/loop/b"));
    let loop_b = warp::path!("loop" / "b").map(|| redirect("/loop/a"));
    let chain = warp::path!("chain" / u32).map(|n: u32| redirect(&format!("/chain/{}", n + 1)));
    let missing = warp::path!("missing").map(|| {
        html(
            StatusCode::NOT_FOUND,
            "<html><head><title>Not here</title></head><body><h1>Page not found</h1></body></html>",
        )
    });
    let slow = warp::path!("slow" / u64).then(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        html(StatusCode::OK, "<h1>Finally</h1><p>Worth the wait.</p>")
    });
    let big = warp::path!("big").map(|| {
        let mut page = String::from("<html><body><main><h1>Big page</h1>");
        for i in 0..40_000 {
            page.push_str(&format!(
                "<p>Paragraph number {i} of a very long page.</p>\n"
            ));
        }
        page.push_str("<p>THE-END-MARKER</p></main></body></html>");
        html(StatusCode::OK, page)
    });
    let latin1 = warp::path!("latin1").map(|| {
        Response::builder()
            .header("content-type", "text/html; charset=ISO-8859-1")
            .body(
                b"<html><body><p>Caf\xe9 cr\xe8me, na\xefve fa\xe7ade \xa9</p></body></html>"
                    .to_vec(),
            )
            .expect("valid response")
    });
    let latin1_meta = warp::path!("latin1-meta").map(|| {
        Response::builder()
            .header("content-type", "text/html")
            .body(
                b"<html><head><meta charset=\"iso-8859-1\"></head><body><p>Gr\xfc\xdfe aus K\xf6ln</p></body></html>"
                    .to_vec(),
            )
            .expect("valid response")
    });
    let gzip = warp::path!("gzip").map(|| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(b"<html><body><p>Compressed content arrives intact.</p></body></html>")
            .expect("gzip");
        Response::builder()
            .header("content-type", "text/html")
            .header("content-encoding", "gzip")
            .body(encoder.finish().expect("gzip"))
            .expect("valid response")
    });
    let pdf = warp::path!("file.pdf").map(|| {
        Response::builder()
            .header("content-type", "application/pdf")
            .body(b"%PDF-1.7\n%...".to_vec())
            .expect("valid response")
    });
    // The document fixtures (tests/fixtures/documents), served with the type their extension
    // says, or the one `?type=` names (a server that lies about what it sends).
    let docs = warp::path!("docs" / String)
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .map(
            |name: String, query: std::collections::HashMap<String, String>| {
                if name == "index.html" {
                    // A library page: what a crawl of /docs/ finds.
                    return Response::builder()
                        .header("content-type", "text/html; charset=utf-8")
                        .body(LIBRARY.as_bytes().to_vec())
                        .expect("valid response");
                }
                let path = format!(
                    "{}/tests/fixtures/documents/{name}",
                    env!("CARGO_MANIFEST_DIR")
                );
                let read = match name.as_str() {
                    "speech-long.wav" => Ok(long_speech()),
                    _ => std::fs::read(&path),
                };
                let Ok(bytes) = read else {
                    return Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(b"No such fixture".to_vec())
                        .expect("valid response");
                };
                let by_extension = match name.rsplit_once('.').map(|(_, ext)| ext) {
                    Some("pdf") => "application/pdf",
                    Some("docx") => {
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                    }
                    Some("pptx") => {
                        "application/vnd.openxmlformats-officedocument.presentationml.presentation"
                    }
                    Some("odt") => "application/vnd.oasis.opendocument.text",
                    Some("epub") => "application/epub+zip",
                    Some("wav") => "audio/wav",
                    Some("md") => "text/markdown",
                    _ => "application/octet-stream",
                };
                let content_type = query.get("type").map_or(by_extension, String::as_str);
                Response::builder()
                    .header("content-type", content_type)
                    .body(bytes)
                    .expect("valid response")
            },
        );
    let headers = warp::path!("headers")
        .and(warp::header::headers_cloned())
        .map(|headers: warp::http::HeaderMap| {
            let mut lines: Vec<String> = headers
                .iter()
                .map(|(k, v)| format!("<li>{k}={}</li>", v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            html(
                StatusCode::OK,
                format!(
                    "<html><body><h1>Headers</h1><ul>{}</ul></body></html>",
                    lines.concat()
                ),
            )
        });

    let routes = article
        .or(redirect_to_article)
        .or(redirect_to)
        .or(loop_a)
        .or(loop_b)
        .or(chain)
        .or(missing)
        .or(slow)
        .or(big)
        .or(latin1)
        .or(latin1_meta)
        .or(gzip)
        .or(pdf)
        .or(docs)
        .or(headers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test site");
    let addr = listener.local_addr().expect("local addr");
    let stop = super::serve_until_dropped(listener, routes);
    Site { addr, _stop: stop }
}

/// `speech.wav` (6.17 s) three times, each followed by 2 s of silence: 24.5 s of 16 kHz mono
/// 16-bit PCM, long enough to be cut into pieces where the silences are.
pub fn long_speech() -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/documents/speech.wav",
        env!("CARGO_MANIFEST_DIR")
    );
    let speech = std::fs::read(path).expect("speech.wav");
    // sox writes the canonical 44-byte header: the samples follow it.
    let samples = &speech[44..];
    let silence = vec![0u8; 2 * 16_000 * 2];
    let mut data = Vec::new();
    for _ in 0..3 {
        data.extend_from_slice(samples);
        data.extend_from_slice(&silence);
    }
    let mut wav = speech[..44].to_vec();
    wav[4..8].copy_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    wav
}
