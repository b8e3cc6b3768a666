//! :8080, the core API: snake_case JSON, OpenAI-style errors. Routes, one file per resource.

pub mod auth;
pub mod collections;
pub mod files;
pub mod openai;
pub mod query;
pub mod scrape;
pub mod search;

use std::convert::Infallible;

use utoipa::OpenApi;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::error::{ApiError, CoreError, CoreErrorBody};
use super::gate::{ADMIN, Access, EDITOR, READER, Route, form, page, route};
use super::{AppState, system};

/// Every route of this port and who may call it. The gate refuses what is not here, the
/// metrics label routes by these templates, and tests call each one without credentials and
/// with too small a role.
pub const ROUTES: &[Route] = &[
    route("GET", "/health", Access::Public),
    route("GET", "/ready", Access::Public),
    route("GET", "/metrics", Access::Metrics),
    route("GET", "/openapi.json", READER),
    route("POST", "/v1/auth/login", Access::Public),
    route("POST", "/v1/auth/refresh", Access::Public),
    route("POST", "/v1/auth/logout", READER),
    route("GET", "/v1/auth/me", READER),
    route("POST", "/v1/auth/password", READER),
    route("GET", "/v1/auth/users", ADMIN),
    route("POST", "/v1/auth/users", ADMIN),
    route("PATCH", "/v1/auth/users/{username}", ADMIN),
    route("DELETE", "/v1/auth/users/{username}", ADMIN),
    route("GET", "/v1/auth/keys", ADMIN),
    route("POST", "/v1/auth/keys", ADMIN),
    route("DELETE", "/v1/auth/keys/{id}", ADMIN),
    route("POST", "/v1/scrape", EDITOR),
    route("GET", "/v1/collections", READER),
    route("POST", "/v1/collections", EDITOR),
    route("DELETE", "/v1/collections/{name}", EDITOR),
    route("POST", "/v1/collections/{name}/documents", EDITOR),
    route("POST", "/v1/collections/{name}/files", EDITOR),
    route("POST", "/v1/search", READER),
    route("POST", "/v1/query", READER),
    route("POST", "/v1/chat/completions", READER),
    route("GET", "/v1/models", READER),
    // The web interface (`http::web::ROUTES`, repeated here: a table is one constant).
    page("/", READER),
    page("/login", Access::Public),
    form("/login", Access::Public),
    form("/logout", READER),
    page("/collections", READER),
    form("/collections", EDITOR),
    page("/collections/{name}", READER),
    page("/collections/{name}/delete", EDITOR),
    form("/collections/{name}/delete", EDITOR),
    form("/collections/{name}/crawl", EDITOR),
    page("/jobs", EDITOR),
    page("/jobs/{id}", EDITOR),
    page("/jobs/{id}/progress", EDITOR),
    form("/jobs/{id}/cancel", EDITOR),
    page("/ask", READER),
    page("/keys", ADMIN),
    form("/keys", ADMIN),
    form("/keys/{id}/revoke", ADMIN),
    page("/assets/{file}", Access::Public),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurora core API",
        description = "Knowledge search, cited answers and on-demand (deep-dive) scraping. Every route but /health, /ready, /v1/auth/login and /v1/auth/refresh needs `Authorization: Bearer <access token or API key>`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(system::health, system::ready, system::metrics, auth::login, auth::refresh,
        auth::logout, auth::me, auth::password, auth::list_users, auth::create_user,
        auth::update_user, auth::delete_user, auth::list_keys, auth::create_key, auth::revoke_key,
        scrape::scrape, collections::list,
        collections::create, collections::delete, collections::ingest, files::upload,
        search::search,
        query::query, openai::chat, openai::models),
    components(schemas(CoreErrorBody, CoreError, system::Health, system::Readiness,
        auth::LoginBody, auth::RefreshBody, auth::PasswordBody, auth::Tokens, auth::Me,
        auth::NewUser, auth::UserPatch, auth::User, auth::UserList, auth::NewKey, auth::ApiKey,
        auth::CreatedKey, auth::KeyList,
        system::ReadinessCheck, scrape::ScrapeBody, scrape::Format, scrape::ScrapedPage,
        scrape::Timings, scrape::IngestTarget, collections::Collection,
        collections::CollectionList, collections::NewCollection, collections::Deleted,
        collections::DocumentsBody, collections::DocumentBody, collections::DocumentType,
        collections::IngestSummary, collections::RejectedDocument, search::SearchBody,
        search::SearchResults, search::SearchHitBody, search::LocatorBody, query::QueryBody, query::QueryAnswer,
        query::CitationBody, query::UsageBody, query::QueryTimings, query::DivePageBody,
        openai::ChatRequest, openai::ChatMessage, openai::ModelList, openai::ModelCard)),
    tags((name = "system", description = "Health, readiness, metrics"),
        (name = "auth", description = "Login, tokens, users and API keys"),
        (name = "scrape", description = "Deep-dive scraping of one page"),
        (name = "collections", description = "Collections and document ingestion"),
        (name = "search", description = "Hybrid search over a collection"),
        (name = "answers", description = "Cited answers over a collection (and deep dives)"))
)]
pub struct CoreApi;

/// Declares the bearer scheme (access tokens and API keys alike).
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This port's OpenAPI document, with the limits `state` enforces.
fn document(state: &AppState) -> String {
    let (document, missing) = super::openapi::core(&CoreApi::openapi(), &state.limits).finish();
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "OpenAPI constraints without a property to hold them"
        );
    }
    document
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    super::any_of(vec![
        system::routes(state.clone(), document(&state)).boxed(),
        auth::routes(state.clone()).boxed(),
        scrape::route(state.clone()).boxed(),
        collections::routes(state.clone()).boxed(),
        files::routes(state.clone()).boxed(),
        search::route(state.clone()).boxed(),
        query::route(state.clone()).boxed(),
        openai::routes(state.clone()).boxed(),
        super::web::routes(state),
    ])
    .recover(recover)
    .unify()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(ApiError::from_rejection(&rejection).into_core_response())
}
