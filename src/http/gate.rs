//! The gate every request passes before routing, on both ports: the route table (who may call
//! what), authentication (access token or API key, checked against the state store each time),
//! the per-caller rate limit, and what every response carries (security headers, CORS,
//! `RateLimit-*`). It runs in the listener (`server::handle`), not in the warp filters, so no
//! route can be served without it: a route missing from the table is refused.
//!
//! Size: one file on purpose. Authentication, the rate limit, CSRF and the session cookies are the
//! one path a request takes before routing; reading it top to bottom is reading that path.

use std::net::IpAddr;

use aurora_actors::ports::Throttle;
use aurora_actors::session::{self, AuthError, Principal, Role};
use ipnet::IpNet;
use warp::Reply;
use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::http::{Method, Request, StatusCode};
use warp::reply::Response;

use super::error::ApiError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: liveness, readiness, login, refresh.
    Public,
    /// Open, or behind `auth.metrics_token` when it is set.
    Metrics,
    /// A caller with at least this role.
    Role(Role),
}

/// One row of a port's route table: the method, the path template (`{…}` = one segment, also
/// the bounded `route` metric label), who may call it, and what it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
}

/// What a route serves: it decides how a refusal looks and where the CSRF token is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON for programs. Called with the web session's cookie, a state-changing request must
    /// carry the session's CSRF token in `X-CSRF-Token`.
    Api,
    /// An HTML page: an unauthenticated visitor is sent to the login page.
    Page,
    /// An HTML form's target: as a page, and the handler checks the CSRF token in the form
    /// (a form cannot set headers).
    Form,
}

pub const fn route(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        kind: Kind::Api,
    }
}

pub const fn page(path: &'static str, access: Access) -> Route {
    Route {
        method: "GET",
        path,
        access,
        kind: Kind::Page,
    }
}

pub const fn form(path: &'static str, access: Access) -> Route {
    Route {
        method: "POST",
        path,
        access,
        kind: Kind::Form,
    }
}

pub const READER: Access = Access::Role(Role::Reader);
pub const EDITOR: Access = Access::Role(Role::Editor);
pub const ADMIN: Access = Access::Role(Role::Admin);

/// The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Parses a comma-separated list of addresses and CIDRs (`server.trusted_proxies`).
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{item}` is not an IP address or CIDR"))
        })
        .collect()
}

/// Which browser origins may call (CORS).
#[derive(Debug, Clone, Default)]
pub enum Cors {
    #[default]
    Off,
    Any,
    Origins(Vec<String>),
}

impl Cors {
    pub fn parse(list: &str) -> Cors {
        let origins: Vec<String> = list
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.iter().any(|o| o == "*") {
            Cors::Any
        } else if origins.is_empty() {
            Cors::Off
        } else {
            Cors::Origins(origins)
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            Cors::Off => None,
            Cors::Any => Some(HeaderValue::from_static("*")),
            Cors::Origins(list) => {
                let origin = origin.to_str().ok()?;
                list.iter().any(|o| o == origin).then(|| {
                    HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("null"))
                })
            }
        }
    }
}

/// The gate of one listener.
pub struct Gate {
    pub routes: &'static [Route],
    /// `false` = `auth.enabled` off: every caller is a local admin.
    pub enabled: bool,
    pub session: session::Handle,
    pub metrics_token: Option<String>,
    pub cors: Cors,
    pub trusted_proxies: Vec<IpNet>,
    pub hsts_max_age: Option<u64>,
    /// The error envelope of this port.
    pub style: ErrorStyle,
    /// Lifetime of the web session's cookies: the refresh token's.
    pub cookie_max_age: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    Core,
    Firecrawl,
}

/// What the gate decided for one request.
pub enum Verdict {
    /// Serve it; add these headers to the answer.
    Pass(Passed),
    /// Answer this instead.
    Refuse(Response),
}

/// What a request that passed adds to its answer.
#[derive(Debug, Default)]
pub struct Passed {
    pub throttle: Option<Throttle>,
    /// A web session refreshed on the way: its new cookies.
    pub set_cookies: Vec<HeaderValue>,
}

/// How the caller presented itself.
enum Presented {
    Bearer(String),
    /// The web interface's session cookies (either may be missing or stale).
    Cookies {
        access: Option<String>,
        refresh: Option<String>,
    },
    Nothing,
}

/// The cookie holding the web session's access token.
pub const ACCESS_COOKIE: &str = "aurora_session";
/// The cookie holding its refresh token, spent when the access token has expired.
pub const REFRESH_COOKIE: &str = "aurora_refresh";

impl Gate {
    /// The route `method path` matches, if any (`HEAD` is served as `GET`).
    pub fn find(&self, method: &Method, path: &str) -> Option<&'static Route> {
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        let template = super::server::route_label(self.routes, path);
        self.routes
            .iter()
            .find(|r| r.path == template && r.method == method)
    }

    /// The client's address (see [`client_ip`]).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip_of(peer, headers, &self.trusted_proxies)
    }

    /// Decides whether `request` may go on; puts the caller on it (`Principal`, `ClientIp`,
    /// and `WebSession` when it came with the web session's cookie).
    pub async fn admit<B>(&self, request: &mut Request<B>, ip: IpAddr) -> Verdict {
        if let Some(preflight) = self.preflight(request) {
            return Verdict::Refuse(preflight);
        }
        request.extensions_mut().insert(ClientIp(ip));
        let secure = self.secure(request.headers());
        request.extensions_mut().insert(Transport { secure });
        let path = request.uri().path().to_string();
        let route = match self.find(request.method(), &path) {
            Some(route) => route,
            // Only what the table lists is served: an unlisted route cannot slip through
            // unauthenticated because someone forgot a row.
            None if super::server::route_label(self.routes, &path) == "unmatched" => {
                return Verdict::Refuse(self.error(ApiError::NotFound));
            }
            None => return Verdict::Refuse(self.error(ApiError::MethodNotAllowed)),
        };
        let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD);
        if route.kind == Kind::Form && unsafe_method && cross_site(request.headers()) {
            self.outcome("cross_site");
            return Verdict::Refuse(self.refuse_for(route, &path, cross_site_error(), false));
        }
        let required = match route.access {
            Access::Public => return Verdict::Pass(Passed::default()),
            Access::Metrics => {
                return match &self.metrics_token {
                    Some(token) if !bearer(request.headers()).is_some_and(|b| same(b, token)) => {
                        self.outcome("invalid");
                        Verdict::Refuse(self.refuse(AuthError::InvalidToken("metrics token")))
                    }
                    _ => Verdict::Pass(Passed::default()),
                };
            }
            Access::Role(role) => role,
        };
        let mut passed = Passed::default();
        let (principal, by_cookie) = if self.enabled {
            let presented = presented(request.headers());
            let by_cookie = matches!(presented, Presented::Cookies { .. });
            let authenticated = match presented {
                Presented::Bearer(credential) => self.session.authenticate(&credential).await,
                Presented::Cookies { access, refresh } => {
                    self.cookie_session(access, refresh, secure, &mut passed)
                        .await
                }
                Presented::Nothing => Err(AuthError::MissingCredentials),
            };
            match authenticated {
                Ok(principal) => (principal, by_cookie),
                Err(error) => {
                    self.outcome(match &error {
                        AuthError::MissingCredentials => "missing",
                        AuthError::TokenExpired => "expired",
                        AuthError::Unavailable(_) | AuthError::Internal(_) => "error",
                        _ => "invalid",
                    });
                    tracing::info!(reason = %reason(&error), "request refused: not authenticated");
                    return Verdict::Refuse(self.refuse_for(
                        route,
                        &path,
                        ApiError::from(error),
                        by_cookie,
                    ));
                }
            }
        } else {
            (Principal::open(), false)
        };
        if principal.role < required {
            self.outcome("forbidden");
            let error = AuthError::Forbidden {
                needed: required.as_str(),
                have: principal.role.as_str(),
            };
            return Verdict::Refuse(self.refuse_for(route, &path, error.into(), false));
        }
        // A script of the web interface calling the JSON API rides on the cookie the browser
        // adds by itself, so it must also prove it read the page: the CSRF token.
        if by_cookie && unsafe_method && route.kind == Kind::Api {
            let token = request
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if cross_site(request.headers()) || !self.session.csrf_matches(&principal, token).await
            {
                self.outcome("cross_site");
                return Verdict::Refuse(self.error(cross_site_error()));
            }
        }
        let limit_key = match principal.credential {
            session::Credential::Open => format!("ip:{ip}"),
            _ => principal.limit_key(),
        };
        let throttle = match self.session.throttle_key(&limit_key).await {
            Ok(throttle) => throttle,
            Err(error) => {
                self.outcome("error");
                return Verdict::Refuse(self.refuse(error));
            }
        };
        if !throttle.allowed {
            self.outcome("throttled");
            metrics::counter!("aurora_auth_rate_limited_total", "scope" => "api").increment(1);
            let mut response = self.refuse(AuthError::RateLimited(throttle));
            rate_limit_headers(response.headers_mut(), &throttle);
            return Verdict::Refuse(response);
        }
        self.outcome("ok");
        if by_cookie {
            request.extensions_mut().insert(WebSession);
        }
        request.extensions_mut().insert(principal);
        passed.throttle = Some(throttle);
        Verdict::Pass(passed)
    }

    /// The caller behind the web session's cookies. An expired access token is renewed from
    /// the refresh cookie on the way (the new cookies go out with the answer), so a page
    /// opened after a quarter of an hour does not bounce to the login page.
    async fn cookie_session(
        &self,
        access: Option<String>,
        refresh: Option<String>,
        secure: bool,
        passed: &mut Passed,
    ) -> Result<Principal, AuthError> {
        if let Some(access) = &access {
            match self.session.authenticate(access).await {
                Ok(principal) => return Ok(principal),
                Err(AuthError::TokenExpired | AuthError::InvalidToken(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let Some(refresh) = refresh else {
            return Err(if access.is_some() {
                AuthError::TokenExpired
            } else {
                AuthError::MissingCredentials
            });
        };
        let pair = self
            .session
            .refresh_shared(&session::Secret(refresh))
            .await?;
        let principal = self.session.authenticate(&pair.access_token).await?;
        passed.set_cookies = session_cookies(&pair, self.cookie_max_age, secure);
        metrics::counter!("aurora_web_session_refreshes_total").increment(1);
        Ok(principal)
    }

    /// Whether the client reached us over TLS: HSTS is configured (TLS in front of every
    /// replica), or a proxy we trust says so.
    /// A forged header only makes the forger's own cookies `Secure`.
    pub fn secure(&self, headers: &HeaderMap) -> bool {
        if self.hsts_max_age.is_some() {
            return true;
        }
        !self.trusted_proxies.is_empty()
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// A refusal shaped for the route: JSON for the API; for pages and forms, the login page
    /// when the visitor is not signed in (clearing stale cookies), else an HTML error page.
    fn refuse_for(
        &self,
        route: &Route,
        path: &str,
        error: ApiError,
        had_cookies: bool,
    ) -> Response {
        match route.kind {
            Kind::Api => self.error(error),
            Kind::Page | Kind::Form => {
                let mut response = super::web::refusal(error, path);
                if had_cookies {
                    for cookie in clear_session_cookies() {
                        response.headers_mut().append(header::SET_COOKIE, cookie);
                    }
                }
                response
            }
        }
    }

    fn outcome(&self, outcome: &'static str) {
        let port = match self.style {
            ErrorStyle::Core => "core",
            ErrorStyle::Firecrawl => "crawler",
        };
        metrics::counter!("aurora_auth_checks_total", "port" => port, "outcome" => outcome)
            .increment(1);
    }

    fn refuse(&self, error: AuthError) -> Response {
        self.error(ApiError::from(error))
    }

    fn error(&self, error: ApiError) -> Response {
        match self.style {
            ErrorStyle::Core => error.into_core_response(),
            ErrorStyle::Firecrawl => error.into_firecrawl_response(),
        }
    }

    /// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here,
    /// before authentication: browsers send it without credentials.
    fn preflight<B>(&self, request: &Request<B>) -> Option<Response> {
        if request.method() != Method::OPTIONS
            || matches!(self.cors, Cors::Off)
            || !request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut response =
            warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
        let headers = response.headers_mut();
        if let Some(allowed) = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| self.cors.allow(o))
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, x-request-id"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        Some(response)
    }

    /// Headers every answer carries.
    pub fn finish(
        &self,
        response: &mut Response,
        origin: Option<&HeaderValue>,
        passed: Option<Passed>,
    ) {
        let headers = response.headers_mut();
        for (name, value) in [
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-site",
            ),
        ] {
            headers
                .entry(name)
                .or_insert(HeaderValue::from_static(value));
        }
        if let Some(age) = self.hsts_max_age
            && let Ok(value) = HeaderValue::from_str(&format!("max-age={age}"))
        {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
        if let Some(allowed) = origin.and_then(|o| self.cors.allow(o)) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(
                    "x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, ratelimit-policy",
                ),
            );
            headers.append(header::VARY, HeaderValue::from_static("origin"));
        }
        if let Some(passed) = passed {
            if let Some(throttle) = passed.throttle {
                rate_limit_headers(headers, &throttle);
            }
            for cookie in passed.set_cookies {
                headers.append(header::SET_COOKIE, cookie);
            }
        }
    }
}

/// Set on a request the web session's cookie authenticated.
#[derive(Debug, Clone, Copy)]
pub struct WebSession;

/// How the client reached us, set on every request.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Over TLS: cookies set in the answer get `Secure`.
    pub secure: bool,
}

/// The header a web page's script sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn cross_site_error() -> ApiError {
    ApiError::Forbidden(
        "cross-site request refused: send the page's CSRF token (X-CSRF-Token, or the form's `csrf` field) from the same origin".into(),
    )
}

/// Whether the browser says the request comes from another site or origin. `Sec-Fetch-Site`
/// is exact (another port of the same host is `same-site`, not `same-origin`); without it, an
/// `Origin` whose host differs from `Host` gives it away.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let bare = |authority: &str| {
        authority
            .rsplit_once(':')
            .map_or(authority.to_string(), |(h, _)| h.to_string())
    };
    origin == "null" || bare(origin_host) != bare(host)
}

/// The credential a request carries: a bearer header first, else the web session's cookies.
fn presented(headers: &HeaderMap) -> Presented {
    if let Some(credential) = bearer(headers) {
        return Presented::Bearer(credential.to_string());
    }
    let (access, refresh) = (
        cookie(headers, ACCESS_COOKIE),
        cookie(headers, REFRESH_COOKIE),
    );
    if access.is_none() && refresh.is_none() {
        return Presented::Nothing;
    }
    Presented::Cookies { access, refresh }
}

/// The value of the cookie `name`, if the request carries one.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_string())
}

/// The web session's cookies for a fresh token pair: HttpOnly (no script reads them),
/// SameSite=Strict (no other site's page sends them), Secure over TLS.
pub fn session_cookies(pair: &session::TokenPair, max_age: u64, secure: bool) -> Vec<HeaderValue> {
    [
        (ACCESS_COOKIE, pair.access_token.as_str()),
        (REFRESH_COOKIE, pair.refresh_token.as_str()),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        let cookie = cookie::Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(cookie::SameSite::Strict)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age).unwrap_or(i64::MAX),
            ))
            .build();
        HeaderValue::from_str(&cookie.to_string()).ok()
    })
    .collect()
}

/// Cookies that end the web session in the browser.
pub fn clear_session_cookies() -> Vec<HeaderValue> {
    [ACCESS_COOKIE, REFRESH_COOKIE]
        .into_iter()
        .filter_map(|name| {
            HeaderValue::from_str(&format!(
                "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
            ))
            .ok()
        })
        .collect()
}

/// The client's address. A proxy's `X-Forwarded-For` is read right to left, skipping the
/// proxies we trust: the first address that is not one of them is the client. Anything a client
/// wrote further left is ignored, so it cannot pose as another address.
fn client_ip_of(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !trusted(ip))
        .copied()
        .unwrap_or(peer)
}

/// `RateLimit-*` (draft-ietf-httpapi-ratelimit-headers): the quota, what is left of it, and in
/// how many seconds it is whole again.
pub fn rate_limit_headers(headers: &mut HeaderMap, throttle: &Throttle) {
    let reset = throttle.reset_after.as_secs_f64().ceil() as u64;
    for (name, value) in [
        ("ratelimit-limit", throttle.limit.to_string()),
        ("ratelimit-remaining", throttle.remaining.to_string()),
        ("ratelimit-reset", reset.to_string()),
        ("ratelimit-policy", format!("{};w=60", throttle.limit)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// The credential of `Authorization: Bearer …` (the scheme is case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What the log says about a refusal (the client only hears "invalid").
fn reason(error: &AuthError) -> String {
    match error {
        AuthError::InvalidToken(why) => format!("invalid token: {why}"),
        other => other.to_string(),
    }
}

/// The principal a route handler runs for (the gate put it on the request).
pub fn principal() -> impl warp::Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    use warp::Filter;
    warp::ext::optional::<Principal>().and_then(|principal: Option<Principal>| async move {
        principal.ok_or_else(|| {
            warp::reject::custom(ApiError::Internal(
                "the route is missing from the route table".into(),
            ))
        })
    })
}

/// The client's address as the gate saw it.
pub fn client_ip() -> impl warp::Filter<Extract = (ClientIp,), Error = warp::Rejection> + Clone {
    use warp::Filter;
    warp::ext::optional::<ClientIp>().and_then(|ip: Option<ClientIp>| async move {
        Ok::<_, warp::Rejection>(ip.unwrap_or(ClientIp(IpAddr::from([0, 0, 0, 0]))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
        let proxies = parse_networks("10.0.0.0/8").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Behind our proxies: the first untrusted hop from the right, not what the client wrote.
        assert_eq!(
            client_ip_of(ip("10.0.0.1"), &headers, &proxies),
            ip("203.0.113.7")
        );
        // Straight from the internet: the header is the client's own claim, ignored.
        assert_eq!(
            client_ip_of(ip("198.51.100.1"), &headers, &proxies),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip_of(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn networks_and_origins_parse() {
        assert_eq!(parse_networks("10.0.0.0/8, 127.0.0.1").unwrap().len(), 2);
        assert!(parse_networks("10.0.0.0/99").is_err());
        assert!(parse_networks("").unwrap().is_empty());
        assert!(matches!(Cors::parse(""), Cors::Off));
        assert!(matches!(Cors::parse("*"), Cors::Any));
        let cors = Cors::parse("https://a.example/, http://localhost:3000");
        assert!(
            cors.allow(&HeaderValue::from_static("https://a.example"))
                .is_some()
        );
        assert!(
            cors.allow(&HeaderValue::from_static("https://b.example"))
                .is_none()
        );
    }
}
