//! [`StaticSite`]: a site held in memory, the Fetcher actor tests run on. Fetching has no embedded
//! default (it always goes over HTTP), so this serves tests only.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::ports::{FetchError, FetchRequest, FetchResponse, Fetcher, PostRequest};

/// A site held in memory: URL → (status, content type, body). Unknown URLs answer 404.
#[derive(Debug, Default, Clone)]
pub struct StaticSite {
    pages: Arc<HashMap<String, StaticPage>>,
    /// Requests per URL, so tests can check what was (not) fetched.
    hits: Arc<dashmap::DashMap<String, usize>>,
    /// Bodies posted, by URL, in arrival order.
    posts: Arc<dashmap::DashMap<String, Vec<Vec<u8>>>>,
}

#[derive(Debug, Clone)]
struct StaticPage {
    status: u16,
    content_type: String,
    body: Vec<u8>,
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
                let page = StaticPage {
                    status,
                    content_type: content_type.to_string(),
                    body: body.into(),
                };
                (url.into(), page)
            })
            .collect();
        Self {
            pages: Arc::new(pages),
            hits: Arc::default(),
            posts: Arc::default(),
        }
    }

    /// The bodies posted to `url` so far (webhook deliveries), oldest first.
    pub fn posts(&self, url: &str) -> Vec<Vec<u8>> {
        self.posts.get(url).map(|p| p.clone()).unwrap_or_default()
    }

    /// How many times `url` was fetched.
    pub fn requests(&self, url: &str) -> usize {
        self.hits.get(url).map_or(0, |n| *n)
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
            *self.hits.entry(request.url.to_string()).or_default() += 1;
            let page = self
                .pages
                .get(request.url.as_str())
                .cloned()
                .unwrap_or_else(|| StaticPage {
                    status: 404,
                    content_type: "text/html".to_string(),
                    body: b"<h1>Not found</h1>".to_vec(),
                });
            Ok(FetchResponse {
                final_url: request.url,
                status: page.status,
                content_type: Some(page.content_type),
                body: page.body,
                truncated: false,
                redirects: Vec::new(),
                retry_after: None,
            })
        })
    }

    /// Records the body; answers the status of the page held at that URL (200 if none), so a
    /// test can stand up a failing receiver.
    fn post(&self, request: PostRequest) -> BoxFuture<'_, Result<u16, FetchError>> {
        Box::pin(async move {
            self.posts
                .entry(request.url.to_string())
                .or_default()
                .push(request.body.as_ref().clone());
            Ok(self
                .pages
                .get(request.url.as_str())
                .map_or(200, |page| page.status))
        })
    }
}
