//! In-process implementations of the ports: the embedded defaults, and the backends actor tests
//! run on. Fetching has no embedded default (it always goes over HTTP); [`StaticSite`] serves a
//! fixed set of pages from memory so actor tests need no network.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::ports::{FetchError, FetchRequest, FetchResponse, Fetcher};

/// A site held in memory: URL → (status, content type, body). Unknown URLs answer 404.
#[derive(Debug, Default, Clone)]
pub struct StaticSite {
    pages: Arc<HashMap<String, (u16, String, Vec<u8>)>>,
}

impl StaticSite {
    pub fn new<I, U, B>(pages: I) -> Self
    where
        I: IntoIterator<Item = (U, u16, &'static str, B)>,
        U: Into<String>,
        B: Into<Vec<u8>>,
    {
        let pages = pages
            .into_iter()
            .map(|(url, status, content_type, body)| {
                (url.into(), (status, content_type.to_string(), body.into()))
            })
            .collect();
        Self {
            pages: Arc::new(pages),
        }
    }
}

impl Fetcher for StaticSite {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, FetchError>> {
        Box::pin(async move {
            if !matches!(request.url.scheme(), "http" | "https") {
                return Err(FetchError::UnsupportedScheme(
                    request.url.scheme().to_string(),
                ));
            }
            let (status, content_type, body) = self
                .pages
                .get(request.url.as_str())
                .cloned()
                .unwrap_or((404, "text/html".to_string(), b"<h1>Not found</h1>".to_vec()));
            Ok(FetchResponse {
                final_url: request.url,
                status,
                content_type: Some(content_type),
                body,
                truncated: false,
                redirects: Vec::new(),
            })
        })
    }
}
