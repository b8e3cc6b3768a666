//! The web interface's static files, compiled into the binary: one script and one style sheet,
//! plain files a developer edits and reloads (no build tool).

use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use warp::Reply;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;

const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
];

/// A digest of every file, put in asset URLs (`?v=`) so a new build is never served a cached
/// old script, while an unchanged one is cached for a day.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut digest = Sha256::new();
    for (name, _, body) in FILES {
        digest.update(name.as_bytes());
        digest.update(body.as_bytes());
    }
    digest.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});

pub fn serve(file: String) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return warp::reply::with_status("not found", StatusCode::NOT_FOUND).into_response();
    };
    let mut response = Response::new((*body).into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}
