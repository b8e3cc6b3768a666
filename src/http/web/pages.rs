//! The page and form handlers of the web interface: each reaches the engine through the same
//! actor handles as the JSON API and renders a template (or redirects after a form).
//!
//! Size: one handler per page or form, each short and alike (read the session, call a handle,
//! render or redirect); they read best as one list.

use std::collections::HashMap;
use std::time::Duration;

use aurora_actors::crawler_pool::{JobRecord, JobStatus};
use aurora_actors::ports::CollectionInfo;
use aurora_actors::session::{Principal, Role, Secret};
use serde::Serialize;
use warp::http::StatusCode;
use warp::http::header::{self};
use warp::reply::Response;
use warp::{Reply, http::HeaderValue};

use super::{Viewer, check_csrf, error_page, local_path, render, see_other};
use crate::http::AppState;
use crate::http::crawler::crawl_v1::CrawlRequest;
use crate::http::error::ApiError;
use crate::http::gate::{ClientIp, Transport, WebSession, clear_session_cookies, session_cookies};

/// Jobs the jobs page lists.
const JOBS_LISTED: usize = 50;
/// Errors a job's progress shows (the newest).
const ERRORS_SHOWN: usize = 5;

type Fields = HashMap<String, String>;

/// Runs `build` for a signed-in viewer; an error becomes an error page.
async fn viewing<F>(state: &AppState, principal: &Principal, build: F) -> Response
where
    F: AsyncFnOnce(Viewer) -> Result<Response, ApiError>,
{
    let viewer = match Viewer::of(state, principal).await {
        Ok(viewer) => viewer,
        Err(error) => return error_page(&error, None),
    };
    let shown = viewer.clone();
    match build(viewer).await {
        Ok(response) => response,
        Err(error) => error_page(&error, Some(&shown)),
    }
}

/// Like [`viewing`], for a form: the CSRF token is checked first.
async fn posting<F>(
    state: &AppState,
    principal: &Principal,
    web: Option<WebSession>,
    fields: &Fields,
    build: F,
) -> Response
where
    F: AsyncFnOnce(Viewer) -> Result<Response, ApiError>,
{
    if let Err(error) = check_csrf(state, principal, web, fields).await {
        return error_page(&error, None);
    }
    viewing(state, principal, build).await
}

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map(|v| v.trim()).unwrap_or_default()
}

async fn list_collections(state: &AppState) -> Result<Vec<CollectionInfo>, ApiError> {
    Ok(state.handles.router().list_collections().await?)
}

#[derive(Serialize)]
struct CollectionRow {
    name: String,
    model: String,
    dimension: usize,
    chunks: u64,
}

impl From<CollectionInfo> for CollectionRow {
    fn from(info: CollectionInfo) -> Self {
        Self {
            name: info.name,
            model: info.spec.embedder,
            dimension: info.spec.dimension,
            chunks: info.chunks,
        }
    }
}

// ---- login ----------------------------------------------------------------------------------

pub async fn login_page(query: Fields, state: AppState) -> Response {
    if !state.limits.auth_enabled {
        return see_other("/ask");
    }
    login_form(&query, None, StatusCode::OK)
}

fn login_form(fields: &Fields, error: Option<String>, status: StatusCode) -> Response {
    render(
        "login.html",
        status,
        minijinja::context! {
            next => local_path(fields.get("next")),
            username => field(fields, "username"),
            error => error,
            signed_out => fields.contains_key("signed_out"),
        },
    )
}

pub async fn login(
    fields: Fields,
    ip: Option<ClientIp>,
    transport: Option<Transport>,
    state: AppState,
) -> Response {
    let username = field(&fields, "username").to_string();
    let password = Secret(fields.get("password").cloned().unwrap_or_default());
    let ip = ip.map(|ip| ip.0.to_string()).unwrap_or_default();
    match state.handles.session().login(username, password, ip).await {
        Ok(pair) => {
            metrics::counter!("aurora_web_logins_total", "outcome" => "ok").increment(1);
            let mut response = see_other(&local_path(fields.get("next")));
            let secure = transport.is_some_and(|t| t.secure);
            for cookie in session_cookies(&pair, state.limits.cookie_max_age, secure) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => {
            metrics::counter!("aurora_web_logins_total", "outcome" => "refused").increment(1);
            let error = ApiError::from(error);
            let status = error.status();
            let mut response = login_form(&fields, Some(error.to_string()), status);
            if let ApiError::RateLimited { retry_after, .. } = &error {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from((retry_after.as_secs_f64().ceil() as u64).max(1)),
                );
            }
            response
        }
    }
}

pub async fn logout(
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    if let Err(error) = check_csrf(&state, &principal, web, &fields).await {
        return error_page(&error, None);
    }
    if let Err(error) = state.handles.session().logout(principal).await {
        return error_page(&ApiError::from(error), None);
    }
    let mut response = see_other("/login?signed_out=1");
    for cookie in clear_session_cookies() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

// ---- collections ----------------------------------------------------------------------------

pub async fn collections(principal: Principal, query: Fields, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        let rows: Vec<CollectionRow> = list_collections(&state)
            .await?
            .into_iter()
            .map(CollectionRow::from)
            .collect();
        Ok(collections_page(
            viewer,
            rows,
            query.get("notice").cloned(),
            None,
            StatusCode::OK,
        ))
    })
    .await
}

fn collections_page(
    viewer: Viewer,
    rows: Vec<CollectionRow>,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    render(
        "collections.html",
        status,
        minijinja::context! { viewer, page => "collections", collections => rows, notice, error },
    )
}

pub async fn create_collection(
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    posting(&state, &principal, web, &fields, async |viewer| {
        let name = field(&fields, "name").to_string();
        match state.handles.router().create_collection(&name).await {
            Ok(_) => Ok(see_other(&format!("/collections/{}", segment(&name)))),
            Err(error) => {
                let error = ApiError::from(error);
                let rows = list_collections(&state)
                    .await?
                    .into_iter()
                    .map(CollectionRow::from)
                    .collect();
                Ok(collections_page(
                    viewer,
                    rows,
                    None,
                    Some(error.to_string()),
                    error.status(),
                ))
            }
        }
    })
    .await
}

/// `name` as one URL path segment.
fn segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect()
}

async fn find_collection(state: &AppState, name: &str) -> Result<CollectionRow, ApiError> {
    list_collections(state)
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .map(CollectionRow::from)
        .ok_or_else(|| ApiError::ResourceNotFound(format!("collection `{name}` does not exist")))
}

pub async fn collection(name: String, principal: Principal, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        let name = decode_segment(&name);
        let collection = find_collection(&state, &name).await?;
        Ok(collection_page(
            viewer,
            collection,
            Fields::new(),
            None,
            StatusCode::OK,
        ))
    })
    .await
}

fn collection_page(
    viewer: Viewer,
    collection: CollectionRow,
    crawl: Fields,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    render(
        "collection.html",
        status,
        minijinja::context! { viewer, page => "collections", collection, crawl, error },
    )
}

fn decode_segment(raw: &str) -> String {
    percent_decode(raw)
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| raw.to_string())
}

pub async fn confirm_delete(name: String, principal: Principal, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        let collection = find_collection(&state, &decode_segment(&name)).await?;
        Ok(render(
            "delete.html",
            StatusCode::OK,
            minijinja::context! { viewer, page => "collections", collection },
        ))
    })
    .await
}

pub async fn delete_collection(
    name: String,
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    posting(&state, &principal, web, &fields, async |_viewer| {
        let name = decode_segment(&name);
        match state.handles.router().delete_collection(&name).await? {
            true => {
                let notice = format!("Deleted collection {name}.");
                Ok(see_other(&format!(
                    "/collections?notice={}",
                    segment(&notice)
                )))
            }
            false => Err(ApiError::ResourceNotFound(format!(
                "collection `{name}` does not exist"
            ))),
        }
    })
    .await
}

// ---- crawls ---------------------------------------------------------------------------------

pub async fn crawl(
    name: String,
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    posting(&state, &principal, web, &fields, async |viewer| {
        let name = decode_segment(&name);
        let collection = find_collection(&state, &name).await?;
        let started = match crawl_request(&name, &fields) {
            Ok(request) => match request.into_spec(&state.limits) {
                Ok(spec) => state
                    .handles
                    .crawler()
                    .start(spec)
                    .await
                    .map_err(ApiError::from),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match started {
            Ok(record) => {
                metrics::counter!("aurora_web_crawls_started_total").increment(1);
                Ok(see_other(&format!("/jobs/{}", record.id)))
            }
            // The form comes back with what was typed and what is wrong with it.
            Err(error) => Ok(collection_page(
                viewer,
                collection,
                fields.clone(),
                Some(error.to_string()),
                error.status(),
            )),
        }
    })
    .await
}

/// The crawl form as the crawl API's request, so both are validated by the same code.
fn crawl_request(collection: &str, fields: &Fields) -> Result<CrawlRequest, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        match field(fields, name) {
            "" => Ok(None),
            text => text.parse::<i64>().map(Some).map_err(|_| {
                ApiError::InvalidRequest(format!("{name} must be a whole number, got `{text}`"))
            }),
        }
    };
    let patterns = |name: &str| -> Vec<String> {
        field(fields, name)
            .split(['\n', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let body = serde_json::json!({
        "url": field(fields, "url"),
        "limit": number("limit")?,
        "maxDepth": number("depth")?,
        "includePaths": patterns("include"),
        "excludePaths": patterns("exclude"),
        "ingest": { "collection": collection },
    });
    serde_json::from_value(body).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// One job as the pages show it.
#[derive(Serialize)]
struct JobView {
    id: String,
    kind: &'static str,
    url: String,
    status: &'static str,
    running: bool,
    completed: u64,
    total: u64,
    failed: u64,
    errors: u64,
    ingested: u64,
    collection: Option<String>,
    /// Pages per second since the job started.
    rate: f64,
    /// Whole percent of `total` done.
    percent: u64,
    started: String,
    end_reason: Option<String>,
    recent_errors: Vec<JobErrorView>,
}

#[derive(Serialize)]
struct JobErrorView {
    url: String,
    error: String,
}

impl JobView {
    fn of(record: &JobRecord) -> Self {
        let running = record.status == JobStatus::Scraping;
        let end = if running { now_ms() } else { record.updated_at };
        let seconds = end.saturating_sub(record.created_at) as f64 / 1000.0;
        let rate = if seconds > 0.0 {
            (record.completed as f64 / seconds * 10.0).round() / 10.0
        } else {
            0.0
        };
        Self {
            id: record.id.clone(),
            kind: match record.kind {
                aurora_actors::crawler_pool::JobKind::Crawl => "crawl",
                aurora_actors::crawler_pool::JobKind::Batch => "batch",
            },
            url: record.url.clone(),
            status: record.status.as_str(),
            running,
            completed: record.completed,
            total: record.total,
            failed: record.failed,
            errors: record.errors,
            ingested: record.ingested,
            collection: record.collection.clone(),
            rate,
            percent: (record.completed * 100)
                .checked_div(record.total)
                .unwrap_or(0)
                .min(100),
            started: humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(record.created_at),
            )
            .to_string(),
            end_reason: record.end_reason.clone(),
            recent_errors: Vec::new(),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

pub async fn jobs(principal: Principal, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        let jobs: Vec<JobView> = state
            .handles
            .crawler()
            .recent(JOBS_LISTED)
            .await?
            .iter()
            .map(JobView::of)
            .collect();
        Ok(render(
            "jobs.html",
            StatusCode::OK,
            minijinja::context! { viewer, page => "jobs", jobs },
        ))
    })
    .await
}

async fn job_view(state: &AppState, id: &str) -> Result<JobView, ApiError> {
    let crawler = state.handles.crawler();
    let record = crawler.status(id).await?;
    let mut view = JobView::of(&record);
    if record.errors > 0 {
        let errors = crawler.errors(id).await?;
        view.recent_errors = errors
            .iter()
            .rev()
            .take(ERRORS_SHOWN)
            .map(|e| JobErrorView {
                url: e.url.clone(),
                error: e.error.clone(),
            })
            .collect();
    }
    Ok(view)
}

pub async fn job(id: String, principal: Principal, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        let job = job_view(&state, &id).await?;
        Ok(render(
            "job.html",
            StatusCode::OK,
            minijinja::context! { viewer, page => "jobs", job },
        ))
    })
    .await
}

/// The job's progress as JSON, for the job page's script.
pub async fn progress(id: String, state: AppState) -> Response {
    match job_view(&state, &id).await {
        Ok(view) => {
            let mut response = warp::reply::json(&view).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_core_response(),
    }
}

pub async fn cancel(
    id: String,
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    posting(&state, &principal, web, &fields, async |_viewer| {
        state.handles.crawler().cancel(&id).await?;
        Ok(see_other(&format!("/jobs/{id}")))
    })
    .await
}

// ---- asking ---------------------------------------------------------------------------------

pub async fn ask(principal: Principal, query: Fields, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        let collections: Vec<CollectionRow> = list_collections(&state)
            .await?
            .into_iter()
            .map(CollectionRow::from)
            .collect();
        let chosen = query
            .get("collection")
            .filter(|c| collections.iter().any(|row| &row.name == *c))
            .cloned()
            .or_else(|| {
                collections
                    .iter()
                    .find(|c| c.name == state.limits.default_collection)
                    .or(collections.first())
                    .map(|c| c.name.clone())
            });
        Ok(render(
            "ask.html",
            StatusCode::OK,
            minijinja::context! { viewer, page => "ask", collections, chosen },
        ))
    })
    .await
}

// ---- API keys -------------------------------------------------------------------------------

#[derive(Serialize)]
struct KeyRow {
    id: String,
    name: String,
    role: &'static str,
    prefix: String,
    created_by: String,
    created: String,
    expires: Option<String>,
}

fn when(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(unix_secs))
        .to_string()
}

async fn keys_page(
    state: &AppState,
    viewer: Viewer,
    created: Option<(String, String)>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let keys = state.handles.session().list_keys().await?;
    let rows: Vec<KeyRow> = keys
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            role: k.role.as_str(),
            prefix: k.prefix,
            created_by: k.created_by,
            created: when(k.created_at),
            expires: k.expires_at.map(when),
        })
        .collect();
    let (created_name, created_key) = created.unzip();
    Ok(render(
        "keys.html",
        status,
        minijinja::context! { viewer, page => "keys", keys => rows, created_name, created_key, error },
    ))
}

pub async fn keys(principal: Principal, state: AppState) -> Response {
    viewing(&state, &principal, async |viewer| {
        keys_page(&state, viewer, None, None, StatusCode::OK).await
    })
    .await
}

pub async fn create_key(
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    let by = principal.clone();
    posting(&state, &principal, web, &fields, async |viewer| {
        let created = match key_request(&fields) {
            Ok(NewKey {
                name,
                role,
                expires_in,
            }) => {
                let session = state.handles.session();
                let created = session.create_key(name, role, expires_in, by).await;
                created.map_err(ApiError::from)
            }
            Err(error) => Err(error),
        };
        match created {
            Ok(key) => {
                metrics::counter!("aurora_web_keys_created_total").increment(1);
                // Shown here once: it is stored only as a hash.
                keys_page(
                    &state,
                    viewer,
                    Some((key.info.name, key.key)),
                    None,
                    StatusCode::CREATED,
                )
                .await
            }
            Err(error) => {
                let status = error.status();
                keys_page(&state, viewer, None, Some(error.to_string()), status).await
            }
        }
    })
    .await
}

/// An API key as the form asks for it.
struct NewKey {
    name: String,
    role: Role,
    expires_in: Option<Duration>,
}

fn key_request(fields: &Fields) -> Result<NewKey, ApiError> {
    let role = Role::parse(field(fields, "role"))
        .ok_or_else(|| ApiError::InvalidRequest("role must be reader, editor or admin".into()))?;
    let expires_in = match field(fields, "days") {
        "" => None,
        days => match days.parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => Some(Duration::from_secs(d * 86_400)),
            _ => {
                return Err(ApiError::InvalidRequest(format!(
                    "days must be a whole number from 1 to 3650, got `{days}`"
                )));
            }
        },
    };
    Ok(NewKey {
        name: field(fields, "name").to_string(),
        role,
        expires_in,
    })
}

pub async fn revoke_key(
    id: String,
    fields: Fields,
    principal: Principal,
    web: Option<WebSession>,
    state: AppState,
) -> Response {
    let by = principal.clone();
    posting(&state, &principal, web, &fields, async |_viewer| {
        state.handles.session().revoke_key(id, by).await?;
        Ok(see_other("/keys"))
    })
    .await
}
