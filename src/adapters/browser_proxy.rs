//! The browser's guarded forward proxy: every request Chromium makes — navigations, redirects,
//! sub-resources, a page script's `fetch()`, WebSockets — comes here (Chromium is started with
//! `--proxy-server` and no bypass, loopback included) and meets the same SSRF guard as the HTTP
//! fetcher before a single byte reaches the destination.
//!
//! `CONNECT host:port` (HTTPS, WebSocket) becomes a TCP tunnel to an allowed address; a plain
//! `GET http://…` is forwarded as one request on a fresh connection (`Connection: close`, so
//! each request is judged on its own). A refused destination gets a `403` page marked with
//! [`BLOCKED_TITLE`], which the browser adapter turns into a clear error when it is the page
//! itself. The proxy listens on loopback only, on an ephemeral port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;

use super::ssrf::{AllowList, ResolveError, resolve_allowed};

/// The title of the page the proxy answers for a refused destination.
pub const BLOCKED_TITLE: &str = "Blocked by Aurora's SSRF guard";

/// The largest request head the proxy reads; browsers send a few KB.
const MAX_HEAD: usize = 64 * 1024;

/// A running proxy; stops when dropped.
pub struct GuardedProxy {
    addr: SocketAddr,
    /// The accept loop; aborted on drop so a test's proxies do not outlive it.
    task: JoinHandle<()>,
}

impl GuardedProxy {
    pub async fn start(allow: AllowList, connect_timeout: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let allow = Arc::new(allow);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let allow = allow.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve(client, &allow, connect_timeout).await {
                        tracing::debug!(%error, "browser proxy connection ended");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for GuardedProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error("client: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed request head: {0}")]
    Malformed(String),
}

async fn serve(
    mut client: TcpStream,
    allow: &AllowList,
    connect_timeout: Duration,
) -> Result<(), ProxyError> {
    let (head, rest) = read_head(&mut client).await?;
    let mut headers = [httparse::EMPTY_HEADER; 96];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request
        .parse(&head)
        .map_err(|e| ProxyError::Malformed(e.to_string()))?;
    if parsed.is_partial() {
        return Err(ProxyError::Malformed("incomplete head".into()));
    }
    let method = request.method.unwrap_or_default().to_string();
    let target = request.path.unwrap_or_default().to_string();
    let kind = if method == "CONNECT" {
        "connect"
    } else {
        "http"
    };
    // Where to connect and what to send first.
    let (host, port, first_bytes) = if method == "CONNECT" {
        let Some((host, port)) = split_authority(&target) else {
            return respond(&mut client, 400, "Bad Request", "CONNECT needs host:port").await;
        };
        (host, port, Vec::new())
    } else {
        let Ok(url) = Url::parse(&target) else {
            return respond(&mut client, 400, "Bad Request", "absolute URL expected").await;
        };
        if url.scheme() != "http" {
            return respond(&mut client, 400, "Bad Request", "only http:// is proxied").await;
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return respond(&mut client, 400, "Bad Request", "the URL has no host").await;
        };
        let mut out = format!("{method} {} HTTP/1.1\r\n", origin_form(&url)).into_bytes();
        for header in request.headers.iter() {
            let name = header.name.to_ascii_lowercase();
            // Hop-by-hop headers are the proxy's, not the origin's.
            if matches!(
                name.as_str(),
                "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive"
            ) {
                continue;
            }
            out.extend_from_slice(header.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&rest);
        (host.to_string(), port, out)
    };

    let addrs = match resolve_allowed(allow, &host, port).await {
        Ok(addrs) if !addrs.is_empty() => addrs,
        Ok(_) | Err(ResolveError::Lookup(_)) => {
            metrics::counter!("aurora_browser_proxy_requests_total", "kind" => kind, "outcome" => "unreachable").increment(1);
            return respond(
                &mut client,
                502,
                "Bad Gateway",
                &format!("{host} does not resolve"),
            )
            .await;
        }
        Err(ResolveError::Refused(refused)) => {
            metrics::counter!("aurora_browser_proxy_requests_total", "kind" => kind, "outcome" => "blocked").increment(1);
            tracing::info!(%host, port, reason = %refused, "browser request blocked");
            return respond(&mut client, 403, "Forbidden", &refused.to_string()).await;
        }
    };
    let Some(mut upstream) = connect(&addrs, connect_timeout).await else {
        metrics::counter!("aurora_browser_proxy_requests_total", "kind" => kind, "outcome" => "unreachable").increment(1);
        return respond(
            &mut client,
            502,
            "Bad Gateway",
            &format!("could not connect to {host}:{port}"),
        )
        .await;
    };
    metrics::counter!("aurora_browser_proxy_requests_total", "kind" => kind, "outcome" => "allowed")
        .increment(1);
    if method == "CONNECT" {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        if !rest.is_empty() {
            upstream.write_all(&rest).await?;
        }
    } else {
        upstream.write_all(&first_bytes).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Reads up to the end of the request head; returns the head and whatever followed it.
async fn read_head(client: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), ProxyError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(ProxyError::Malformed("closed before the head ended".into()));
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((buffer, rest));
        }
        if buffer.len() > MAX_HEAD {
            return Err(ProxyError::Malformed("head too large".into()));
        }
    }
}

async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Option<TcpStream> {
    for addr in addrs {
        if let Ok(Ok(stream)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            return Some(stream);
        }
    }
    None
}

fn split_authority(authority: &str) -> Option<(String, u16)> {
    let (host, port) = authority.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn origin_form(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
}

async fn respond(
    client: &mut TcpStream,
    status: u16,
    reason: &str,
    message: &str,
) -> Result<(), ProxyError> {
    let title = if status == 403 { BLOCKED_TITLE } else { reason };
    let body = format!(
        "<!doctype html><html><head><title>{title}</title></head><body><p id=\"aurora-proxy\">{}</p></body></html>",
        escape(message)
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await?;
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn request(proxy: SocketAddr, raw: &str) -> String {
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn forwards_allowed_requests_and_refuses_the_rest() {
        let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin_port = origin.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (mut conn, _) = origin.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let n = conn.read(&mut head).await.unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8_lossy(&head[..n]).to_string()
        });
        let proxy = GuardedProxy::start(
            AllowList::parse("127.0.0.1").unwrap(),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let answer = request(
            proxy.addr(),
            &format!(
                "GET http://127.0.0.1:{origin_port}/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\nProxy-Connection: keep-alive\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.ends_with("ok"), "{answer}");
        let seen = served.await.unwrap();
        assert!(seen.starts_with("GET /a?b=1 HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("Connection: close"), "{seen}");
        assert!(
            !seen.to_ascii_lowercase().contains("proxy-connection"),
            "{seen}"
        );

        // 127.0.0.2 is loopback outside the allow-list: refused before any connection.
        let refused = request(
            proxy.addr(),
            "GET http://127.0.0.2:9/ HTTP/1.1\r\nHost: 127.0.0.2:9\r\n\r\n",
        )
        .await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        assert!(refused.contains(BLOCKED_TITLE), "{refused}");
        let tunnel = request(
            proxy.addr(),
            "CONNECT 127.0.0.2:443 HTTP/1.1\r\nHost: 127.0.0.2:443\r\n\r\n",
        )
        .await;
        assert!(tunnel.starts_with("HTTP/1.1 403"), "{tunnel}");
        let garbage = request(proxy.addr(), "NONSENSE\r\n\r\n").await;
        assert!(
            garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
            "{garbage}"
        );
    }
}
