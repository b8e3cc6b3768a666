//! `ApiError`: every way a request can fail, the one exhaustive `match` that turns each into an
//! HTTP status, and the two envelopes it is written in — OpenAI's `{"error":{message,type,code}}`
//! on the core port, Firecrawl's `{"success":false,"error":…}` on the crawler port.

use std::time::Duration;

use aurora_actors::ingest::document::DocumentError;
use aurora_actors::knowledge::KnowledgeError;
use aurora_actors::ports::{EmbedError, FetchError, RenderError, StoreError, TranscribeError};
use aurora_actors::scraper::ScrapeError;
use aurora_actors::session::AuthError;
use serde::Serialize;
use utoipa::ToSchema;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Seconds a client is asked to wait when Aurora is full or an actor is restarting.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than the {0}-byte limit")]
    PayloadTooLarge(u64),
    #[error("unsupported content type `{given}`: send {expected}")]
    UnsupportedMediaType {
        given: String,
        expected: &'static str,
    },
    #[error("no route matches this path")]
    NotFound,
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    /// A named resource (a collection…) that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The request contradicts what exists (a collection already there, built by another model).
    #[error("{0}")]
    Conflict(String),
    /// The SSRF guard refused the target.
    #[error("{0}")]
    TargetForbidden(String),
    /// The target answered with something Aurora cannot process.
    #[error("{0}")]
    UnprocessableTarget(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("{0}")]
    Overloaded(String),
    /// A service Aurora depends on (an LLM API) is rate limiting it; come back after the delay.
    #[error("{message}")]
    UpstreamRateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// No credentials, or ones that do not hold (bad, expired or revoked token, unknown key).
    #[error("{message}")]
    Unauthorized {
        message: String,
        /// A credential was sent (RFC 6750: then `error="invalid_token"`).
        presented: bool,
    },
    /// Authenticated, but the role is too small.
    #[error("{0}")]
    Forbidden(String),
    /// Aurora's own rate limit or login lock-out; come back after the delay.
    #[error("{message}")]
    RateLimited {
        message: String,
        code: &'static str,
        retry_after: Duration,
    },
    /// The client went away; nobody reads this answer (logged as nginx's 499).
    #[error("the client closed the request")]
    ClientClosed,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// Status, OpenAI error `type`, and a stable machine-readable `code` — decided here alone.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            MalformedJson(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "malformed_json",
            ),
            InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "payload_too_large",
            ),
            UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "unsupported_media_type",
            ),
            NotFound => (StatusCode::NOT_FOUND, "not_found_error", "route_not_found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            ResourceNotFound(_) => (StatusCode::NOT_FOUND, "not_found_error", "not_found"),
            Conflict(_) => (StatusCode::CONFLICT, "invalid_request_error", "conflict"),
            TargetForbidden(_) => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "target_forbidden",
            ),
            UnprocessableTarget(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "unsupported_target",
            ),
            BadGateway(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "target_unreachable",
            ),
            GatewayTimeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                "target_timeout",
            ),
            Overloaded(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "overloaded",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "unavailable",
            ),
            UpstreamRateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
            ),
            Unauthorized { .. } => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "unauthorized",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", "forbidden"),
            RateLimited { code, .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", code),
            ClientClosed => (
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "invalid_request_error",
                "client_closed_request",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.classify().0
    }

    /// The core port's envelope (OpenAI's error shape).
    pub fn into_core_response(self) -> Response {
        let body = self.core_body();
        let response = warp::reply::with_status(warp::reply::json(&body), self.status());
        self.finish(response.into_response())
    }

    /// The core envelope alone (also sent as an event when a stream fails).
    pub fn core_body(&self) -> CoreErrorBody {
        let (_, kind, code) = self.classify();
        CoreErrorBody {
            error: CoreError {
                message: self.to_string(),
                kind,
                code,
            },
        }
    }

    /// The crawler port's envelope (Firecrawl's error shape).
    pub fn into_firecrawl_response(self) -> Response {
        let (status, _, code) = self.classify();
        let body = FirecrawlErrorBody {
            success: false,
            error: self.to_string(),
            code,
        };
        self.finish(warp::reply::with_status(warp::reply::json(&body), status).into_response())
    }

    fn finish(&self, mut response: Response) -> Response {
        let retry_after = match self {
            ApiError::Overloaded(_) | ApiError::Unavailable(_) => Some(RETRY_AFTER_SECS),
            ApiError::UpstreamRateLimited { retry_after, .. } => {
                // Whole seconds, rounded up, so a client never comes back too early.
                Some(retry_after.map_or(RETRY_AFTER_SECS, |d| d.as_secs_f64().ceil() as u64))
            }
            ApiError::RateLimited { retry_after, .. } => {
                Some((retry_after.as_secs_f64().ceil() as u64).max(1))
            }
            _ => None,
        };
        if let ApiError::Unauthorized { presented, .. } = self {
            let challenge = match presented {
                true => "Bearer realm=\"aurora\", error=\"invalid_token\"",
                false => "Bearer realm=\"aurora\"",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if matches!(self, ApiError::Unauthorized { .. }) || response.status().is_success() {
            // Tokens and keys must not sit in a shared cache.
            response
                .headers_mut()
                .entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Internal(message) = self {
            tracing::error!(%message, "internal error answered with 500");
        }
        response
    }

    /// Maps whatever warp rejected with. Our own errors travel as custom rejections.
    pub fn from_rejection(rejection: &Rejection) -> ApiError {
        if let Some(error) = rejection.find::<ApiError>() {
            return error.clone();
        }
        if rejection.is_not_found() {
            return ApiError::NotFound;
        }
        if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
            return ApiError::MethodNotAllowed;
        }
        if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
            return ApiError::InvalidRequest(e.to_string());
        }
        if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
            return ApiError::InvalidRequest(e.to_string());
        }
        if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
            return ApiError::InvalidRequest(e.to_string());
        }
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    }
}

impl From<ScrapeError> for ApiError {
    fn from(error: ScrapeError) -> Self {
        let message = error.to_string();
        match error {
            ScrapeError::Fetch(fetch) => match fetch {
                FetchError::UnsupportedScheme(_) | FetchError::InvalidHeader(_) => {
                    ApiError::InvalidRequest(message)
                }
                FetchError::Blocked { .. } => ApiError::TargetForbidden(message),
                FetchError::Timeout(_) => ApiError::GatewayTimeout(message),
                FetchError::Unreachable(_)
                | FetchError::TooManyRedirects { .. }
                | FetchError::RedirectLoop(_)
                | FetchError::BadRedirect(_) => ApiError::BadGateway(message),
            },
            ScrapeError::Render(render) => match render {
                // A browser-only feature asked of an Aurora without a browser.
                RenderError::Unavailable(_) => ApiError::InvalidRequest(message),
                RenderError::Blocked { .. } => ApiError::TargetForbidden(message),
                RenderError::Timeout(_) => ApiError::GatewayTimeout(message),
                RenderError::Crashed(_) | RenderError::Navigation(_) => {
                    ApiError::BadGateway(message)
                }
                RenderError::Action { .. } => ApiError::UnprocessableTarget(message),
            },
            ScrapeError::BrowserOnly(_) => ApiError::InvalidRequest(message),
            ScrapeError::InvalidSelector { .. } => ApiError::InvalidRequest(message),
            ScrapeError::Document(document) => match document {
                DocumentError::Encrypted
                | DocumentError::Corrupt { .. }
                | DocumentError::TooLarge { .. }
                | DocumentError::Inflates { .. }
                | DocumentError::Unsupported(_)
                | DocumentError::Empty
                | DocumentError::NeedsTranscription(_) => ApiError::UnprocessableTarget(message),
                DocumentError::Timeout(_) => ApiError::GatewayTimeout(message),
            },
            ScrapeError::Transcribe(transcribe) => match transcribe {
                TranscribeError::Unavailable(_) | TranscribeError::Rejected(_) => {
                    ApiError::UnprocessableTarget(message)
                }
                TranscribeError::Failed(_) => ApiError::BadGateway(message),
                TranscribeError::Timeout(_) => ApiError::GatewayTimeout(message),
            },
            ScrapeError::DeadlineExceeded(_) => ApiError::GatewayTimeout(message),
            ScrapeError::Overloaded => ApiError::Overloaded(message),
            ScrapeError::Unavailable(_) => ApiError::Unavailable(message),
            ScrapeError::Internal(_) => ApiError::Internal(message),
            // Only crawls cancel scrapes; no route hands a token over.
            ScrapeError::Cancelled => ApiError::Conflict(message),
        }
    }
}

impl From<KnowledgeError> for ApiError {
    fn from(error: KnowledgeError) -> Self {
        let message = error.to_string();
        match error {
            KnowledgeError::Store(store) => match store {
                StoreError::NotFound(_) => ApiError::ResourceNotFound(message),
                StoreError::AlreadyExists(_) | StoreError::WrongEmbedder { .. } => {
                    ApiError::Conflict(message)
                }
                StoreError::InvalidName(_) => ApiError::InvalidRequest(message),
                StoreError::Unavailable(_) => ApiError::Unavailable(message),
                StoreError::Backend(_) => ApiError::BadGateway(message),
            },
            KnowledgeError::Embed(embed) => match embed {
                // A deployment problem, not the caller's: the model's files are missing.
                EmbedError::ModelMissing(_) => ApiError::Unavailable(message),
                EmbedError::Service(_) => ApiError::BadGateway(message),
                EmbedError::Failed(_) => ApiError::Internal(message),
            },
            KnowledgeError::Invalid(_) => ApiError::InvalidRequest(message),
            KnowledgeError::Overloaded => ApiError::Overloaded(message),
            KnowledgeError::Unavailable(_) => ApiError::Unavailable(message),
            KnowledgeError::DeadlineExceeded(_) => ApiError::GatewayTimeout(message),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        let unauthorized = |presented| ApiError::Unauthorized {
            message: message.clone(),
            presented,
        };
        match error {
            AuthError::MissingCredentials => unauthorized(false),
            AuthError::InvalidToken(_)
            | AuthError::TokenExpired
            | AuthError::InvalidApiKey
            | AuthError::InvalidCredentials
            | AuthError::InvalidRefreshToken
            | AuthError::RefreshReused => unauthorized(true),
            AuthError::Forbidden { .. } => ApiError::Forbidden(message),
            AuthError::Locked { retry_after } => ApiError::RateLimited {
                message,
                code: "login_locked",
                retry_after,
            },
            AuthError::RateLimited(throttle) => ApiError::RateLimited {
                message,
                code: "rate_limited",
                retry_after: throttle.retry_after,
            },
            AuthError::NotFound(_) => ApiError::ResourceNotFound(message),
            AuthError::Conflict(_) => ApiError::Conflict(message),
            AuthError::Invalid(_) => ApiError::InvalidRequest(message),
            AuthError::Overloaded => ApiError::Overloaded(message),
            AuthError::Unavailable(_) => ApiError::Unavailable(message),
            AuthError::Config(_) | AuthError::Internal(_) => ApiError::Internal(message),
        }
    }
}

/// `{"error": {"message", "type", "code"}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct CoreErrorBody {
    pub error: CoreError,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoreError {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
}

/// `{"success": false, "error": "…"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct FirecrawlErrorBody {
    pub success: bool,
    pub error: String,
    /// Aurora's machine-readable error code (an extension; Firecrawl clients ignore it).
    pub code: &'static str,
}
