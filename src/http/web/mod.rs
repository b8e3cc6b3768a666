//! The web interface on :8080: server-rendered pages (minijinja templates embedded in the
//! binary) and two small scripts, for people who will not write curl commands.
//!
//! Pages and forms are rows of the core port's route table (`gate::page`, `gate::form` in
//! `core::ROUTES`), so the
//! gate authenticates them like the API: by the web session's cookies, which `POST /login`
//! sets. What needs no script is a plain form posting back here (create, delete, crawl, cancel,
//! keys, log out; each checks the session's CSRF token); what streams or uploads calls the JSON
//! API from `assets/app.js` with the same token in `X-CSRF-Token`. No inline script or style
//! anywhere, so the pages carry a strict Content-Security-Policy.

mod assets;
mod pages;

use std::collections::HashMap;
use std::sync::LazyLock;

use aurora_actors::session::{Credential, Principal, Role};
use minijinja::Environment;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::error::ApiError;
use super::gate::WebSession;

/// Where pages may load things from: only this origin, no inline script or style, no frames,
/// forms only back here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Largest form body (a crawl form with its patterns is a few hundred bytes).
const FORM_BYTES: u64 = 64 * 1024;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        (
            "collections.html",
            include_str!("templates/collections.html"),
        ),
        ("collection.html", include_str!("templates/collection.html")),
        ("delete.html", include_str!("templates/delete.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("ask.html", include_str!("templates/ask.html")),
        ("keys.html", include_str!("templates/keys.html")),
        ("error.html", include_str!("templates/error.html")),
    ] {
        // The templates are compiled into the binary and covered by tests: a syntax error is
        // a build-time bug, reported on the first render rather than panicking here.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "web template does not parse");
        }
    }
    env
});

/// Who is looking at a page, as the templates need it.
#[derive(Debug, Clone, Serialize)]
pub struct Viewer {
    pub name: String,
    pub role: &'static str,
    pub editor: bool,
    pub admin: bool,
    /// Signed in with a web session (auth on): the page shows "Log out".
    pub session: bool,
    /// The token forms and scripts send back.
    pub csrf: String,
}

impl Viewer {
    async fn of(state: &AppState, principal: &Principal) -> Result<Viewer, ApiError> {
        let csrf = state
            .handles
            .session()
            .csrf_token(principal)
            .await?
            .unwrap_or_default();
        Ok(Viewer {
            name: principal.name.clone(),
            role: principal.role.as_str(),
            editor: principal.role >= Role::Editor,
            admin: principal.role >= Role::Admin,
            session: matches!(principal.credential, Credential::Session { .. }),
            csrf,
        })
    }
}

/// Renders `template` with `context` (plus the asset version) as an HTML answer.
fn render(template: &str, status: StatusCode, context: minijinja::Value) -> Response {
    let context = minijinja::context! { assets => assets::VERSION.as_str(), ..context };
    let html = TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(context));
    match html {
        Ok(html) => html_response(html, status),
        Err(error) => {
            tracing::error!(%error, template, "web page failed to render");
            html_response(
                "<!doctype html><title>Error</title><p>This page failed to render.</p>".into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

fn html_response(html: String, status: StatusCode) -> Response {
    let mut response = warp::reply::with_status(warp::reply::html(html), status).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // Pages show who is signed in and their CSRF token: never from a shared cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 303 to `location` (after a form: the browser GETs it).
fn see_other(location: &str) -> Response {
    let mut response =
        warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// An error as a page, for a signed-in viewer (or none).
fn error_page(error: &ApiError, viewer: Option<&Viewer>) -> Response {
    let status = error.status();
    render(
        "error.html",
        status,
        minijinja::context! {
            viewer => viewer,
            title => status.canonical_reason().unwrap_or("Error"),
            status => status.as_u16(),
            message => error.to_string(),
        },
    )
}

/// What the gate answers instead of a page or form it refuses: the login page for a visitor
/// who is not signed in (coming back here after), an error page otherwise.
pub fn refusal(error: ApiError, path: &str) -> Response {
    match error {
        ApiError::Unauthorized { .. } => {
            let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
            see_other(&format!("/login?next={next}"))
        }
        other => error_page(&other, None),
    }
}

/// A `next` to go to after logging in: a path of this site, never another site.
fn local_path(next: Option<&String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .cloned()
        .unwrap_or_else(|| "/ask".to_string())
}

/// The form's CSRF token matches the session's, when the request rode on the web session's
/// cookie or no one signs in (auth off). A bearer credential cannot be sent by another site.
async fn check_csrf(
    state: &AppState,
    principal: &Principal,
    web: Option<WebSession>,
    fields: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let needed = web.is_some() || principal.credential == Credential::Open;
    let given = fields.get("csrf").map(String::as_str).unwrap_or_default();
    if needed && !state.handles.session().csrf_matches(principal, given).await {
        metrics::counter!("aurora_web_csrf_refused_total").increment(1);
        return Err(ApiError::Forbidden(
            "this form is stale or comes from another site: reload the page and try again".into(),
        ));
    }
    Ok(())
}

/// A form body as its fields (a missing field reads as empty; the handler says what it needs).
/// warp's own too-large rejection does not say the limit, so it becomes ours here, where the
/// limit is known.
fn form_fields() -> impl Filter<Extract = (HashMap<String, String>,), Error = Rejection> + Clone {
    warp::body::content_length_limit(FORM_BYTES)
        .and(warp::body::form())
        .or_else(|rejection: Rejection| async move {
            match rejection.find::<warp::reject::PayloadTooLarge>() {
                Some(_) => Err(warp::reject::custom(ApiError::PayloadTooLarge(FORM_BYTES))),
                None => Err(rejection),
            }
        })
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let state = super::with_state(state);
    let principal = super::gate::principal();
    let web = warp::ext::optional::<WebSession>();
    let home = warp::path::end().and(warp::get()).map(|| see_other("/ask"));
    let assets = warp::path!("assets" / String)
        .and(warp::get())
        .map(assets::serve);
    let login_page = warp::path!("login")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(state.clone())
        .then(pages::login_page);
    let login = warp::path!("login")
        .and(warp::post())
        .and(form_fields())
        .and(warp::ext::optional::<super::gate::ClientIp>())
        .and(warp::ext::optional::<super::gate::Transport>())
        .and(state.clone())
        .then(pages::login);
    let logout = warp::path!("logout")
        .and(warp::post())
        .and(form_fields())
        .and(principal.clone())
        .and(web)
        .and(state.clone())
        .then(pages::logout);
    let collections = warp::path!("collections")
        .and(warp::get())
        .and(principal.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(state.clone())
        .then(pages::collections);
    let create = warp::path!("collections")
        .and(warp::post())
        .and(form_fields())
        .and(principal.clone())
        .and(web)
        .and(state.clone())
        .then(pages::create_collection);
    let collection = warp::path!("collections" / String)
        .and(warp::get())
        .and(principal.clone())
        .and(state.clone())
        .then(pages::collection);
    let confirm_delete = warp::path!("collections" / String / "delete")
        .and(warp::get())
        .and(principal.clone())
        .and(state.clone())
        .then(pages::confirm_delete);
    let delete = warp::path!("collections" / String / "delete")
        .and(warp::post())
        .and(form_fields())
        .and(principal.clone())
        .and(web)
        .and(state.clone())
        .then(pages::delete_collection);
    let crawl = warp::path!("collections" / String / "crawl")
        .and(warp::post())
        .and(form_fields())
        .and(principal.clone())
        .and(web)
        .and(state.clone())
        .then(pages::crawl);
    let jobs = warp::path!("jobs")
        .and(warp::get())
        .and(principal.clone())
        .and(state.clone())
        .then(pages::jobs);
    let job = warp::path!("jobs" / String)
        .and(warp::get())
        .and(principal.clone())
        .and(state.clone())
        .then(pages::job);
    let progress = warp::path!("jobs" / String / "progress")
        .and(warp::get())
        .and(state.clone())
        .then(pages::progress);
    let cancel = warp::path!("jobs" / String / "cancel")
        .and(warp::post())
        .and(form_fields())
        .and(principal.clone())
        .and(web)
        .and(state.clone())
        .then(pages::cancel);
    let ask = warp::path!("ask")
        .and(warp::get())
        .and(principal.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(state.clone())
        .then(pages::ask);
    let keys = warp::path!("keys")
        .and(warp::get())
        .and(principal.clone())
        .and(state.clone())
        .then(pages::keys);
    let create_key = warp::path!("keys")
        .and(warp::post())
        .and(form_fields())
        .and(principal.clone())
        .and(web)
        .and(state.clone())
        .then(pages::create_key);
    let revoke = warp::path!("keys" / String / "revoke")
        .and(warp::post())
        .and(form_fields())
        .and(principal)
        .and(web)
        .and(state)
        .then(pages::revoke_key);
    super::any_of(vec![
        home.boxed(),
        assets.boxed(),
        login_page.boxed(),
        login.boxed(),
        logout.boxed(),
        collections.boxed(),
        create.boxed(),
        collection.boxed(),
        confirm_delete.boxed(),
        delete.boxed(),
        crawl.boxed(),
        jobs.boxed(),
        job.boxed(),
        progress.boxed(),
        cancel.boxed(),
        ask.boxed(),
        keys.boxed(),
        create_key.boxed(),
        revoke.boxed(),
    ])
}
