//! The HTTP fetcher (the `Fetcher` port over reqwest + rustls).
//!
//! Redirects are followed here, not by reqwest, so that every hop is checked: scheme, IP
//! literals against the SSRF guard, loops, the hop limit, and credentials dropped when the chain
//! leaves the original origin. Host names are checked after resolution by [`GuardedResolver`],
//! which only ever hands reqwest allowed addresses, so a DNS answer cannot smuggle a private
//! address past the guard. Bodies are read up to a cap and cut cleanly there.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use aurora_actors::ports::{FetchError, FetchRequest, FetchResponse, Fetcher, PostRequest};
use futures::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::{Host, Url};

use super::ssrf::{AllowList, Refused, ResolveError, resolve_allowed};

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub user_agent: String,
    pub connect_timeout: Duration,
    pub max_redirects: usize,
    pub max_body_bytes: u64,
    pub allow: AllowList,
}

pub struct HttpFetcher {
    client: reqwest::Client,
    /// Same as `client` but accepting invalid certificates, for `skipTlsVerification`.
    insecure_client: reqwest::Client,
    allow: Arc<AllowList>,
    connect_timeout: Duration,
    max_redirects: usize,
    max_body_bytes: u64,
}

impl HttpFetcher {
    pub fn new(config: FetchConfig) -> Result<Self, reqwest::Error> {
        let allow = Arc::new(config.allow);
        let build = |accept_invalid_certs: bool| {
            reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .connect_timeout(config.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                // A proxy resolves names itself, out of the guard's sight.
                .no_proxy()
                .dns_resolver(GuardedResolver {
                    allow: allow.clone(),
                })
                .gzip(true)
                .brotli(true)
                .pool_idle_timeout(Duration::from_secs(30))
                .danger_accept_invalid_certs(accept_invalid_certs)
                .build()
        };
        Ok(Self {
            client: build(false)?,
            insecure_client: build(true)?,
            allow,
            connect_timeout: config.connect_timeout,
            max_redirects: config.max_redirects,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Scheme and IP-literal checks for one hop (names are checked by the resolver).
    fn check_target(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::UnsupportedScheme(url.scheme().to_string()));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => ip.into(),
            Some(Host::Ipv6(ip)) => ip.into(),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(FetchError::BadRedirect(format!("`{url}` has no host"))),
        };
        self.allow
            .check_ip(ip)
            .map_err(|reason| FetchError::Blocked {
                target: url.to_string(),
                reason: format!("{ip} is {reason}; allow it with fetch.allow_private"),
            })
    }

    async fn fetch_within_budget(
        &self,
        request: &FetchRequest,
    ) -> Result<FetchResponse, FetchError> {
        let headers = request_headers(&request.headers)?;
        let client = match request.skip_tls_verification {
            true => &self.insecure_client,
            false => &self.client,
        };
        let origin = request.url.origin();
        let mut url = request.url.clone();
        let mut redirects: Vec<Url> = Vec::new();
        loop {
            self.check_target(&url)?;
            let mut hop_headers = headers.clone();
            if url.origin() != origin {
                // The caller's credentials were meant for the site it named, not wherever that
                // site redirects to.
                hop_headers.remove(header::AUTHORIZATION);
                hop_headers.remove(header::COOKIE);
            }
            let mut response = client
                .get(url.clone())
                .headers(hop_headers)
                .send()
                .await
                .map_err(|e| self.classify(&url, &e))?;
            let status = response.status();
            let location = status
                .is_redirection()
                .then(|| response.headers().get(header::LOCATION).cloned())
                .flatten();
            if let Some(location) = location {
                let location = location
                    .to_str()
                    .map_err(|_| FetchError::BadRedirect("Location is not ASCII".to_string()))?;
                let next = url
                    .join(location.trim())
                    .map_err(|e| FetchError::BadRedirect(format!("Location `{location}`: {e}")))?;
                redirects.push(url);
                if redirects.contains(&next) {
                    return Err(FetchError::RedirectLoop(next));
                }
                if redirects.len() > self.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        limit: self.max_redirects,
                        last: next,
                    });
                }
                url = next;
                continue;
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| self.classify(&url, &e))?
            {
                let room = (self.max_body_bytes as usize).saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break; // dropping the response closes the connection
                }
                body.extend_from_slice(&chunk);
            }
            let retry_after = super::remote::retry_after(response.headers());
            return Ok(FetchResponse {
                final_url: url,
                status: status.as_u16(),
                content_type,
                body,
                truncated,
                redirects,
                retry_after,
            });
        }
    }

    fn classify(&self, url: &Url, error: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return FetchError::Blocked {
                    target: url.to_string(),
                    reason: refused.to_string(),
                };
            }
            source = e.source();
        }
        if error.is_timeout() {
            return FetchError::Timeout(self.connect_timeout);
        }
        FetchError::Unreachable(error_chain(error))
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, FetchError>> {
        Box::pin(async move {
            match tokio::time::timeout(request.timeout, self.fetch_within_budget(&request)).await {
                Ok(result) => result,
                Err(_) => Err(FetchError::Timeout(request.timeout)),
            }
        })
    }

    fn post(&self, request: PostRequest) -> BoxFuture<'_, Result<u16, FetchError>> {
        Box::pin(async move {
            self.check_target(&request.url)?;
            let mut headers = request_headers(&request.headers)?;
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let sent = self
                .client
                .post(request.url.clone())
                .headers(headers)
                .timeout(request.timeout)
                .body(request.body.as_ref().clone())
                .send()
                .await;
            match sent {
                Ok(response) => Ok(response.status().as_u16()),
                Err(e) if e.is_timeout() => Err(FetchError::Timeout(request.timeout)),
                Err(e) => Err(self.classify(&request.url, &e)),
            }
        })
    }

    fn admits<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async move {
            self.check_target(url)?;
            let Some(Host::Domain(host)) = url.host() else {
                return Ok(());
            };
            // As the resolver does: refused only when every address is refused; a name that
            // does not resolve is not a refusal (the fetch reports it).
            match resolve_allowed(&self.allow, host, 0).await {
                Err(ResolveError::Refused(refused)) => Err(FetchError::Blocked {
                    target: url.to_string(),
                    reason: refused.to_string(),
                }),
                Ok(_) | Err(ResolveError::Lookup(_)) => Ok(()),
            }
        })
    }
}

fn request_headers(pairs: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::InvalidHeader(format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            FetchError::InvalidHeader(format!("the value of `{name}` is not valid"))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused".
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    message
}

/// System resolution, then only the addresses the guard allows are handed to the connector.
struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            match resolve_allowed(&allow, &host, 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(ResolveError::Refused(refused)) => Err(Box::new(refused) as _),
                Err(ResolveError::Lookup(e)) => Err(Box::new(e) as _),
            }
        })
    }
}
