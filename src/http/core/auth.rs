//! `/v1/auth/*`: login (tokens for a username and password), refresh (rotating), logout, who am
//! I, password change; and for admins, users and API keys. Every answer that carries a secret is
//! `Cache-Control: no-store`; no secret is ever logged.

use std::time::Duration;

use aurora_actors::session::{
    AuthError, Credential, KeyInfo, NewKeyInfo, Principal, Role, Secret, TokenPair, UserInfo,
    UserUpdate,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::gate::{ClientIp, client_ip, principal};
use crate::http::{AppState, json, with_state};

/// Auth bodies are small; anything larger is not a login.
const BODY_LIMIT: u64 = 16 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordBody {
    pub current_password: String,
    pub new_password: String,
}

/// OAuth 2 token response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub access_token: String,
    /// Single use: each refresh returns a new one; presenting a spent one revokes the session.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The username, or the API key's name.
    pub name: String,
    #[schema(value_type = String, example = "editor")]
    pub role: Role,
    /// `user`, `api_key` or `open` (authentication off).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// When the credential expires (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    /// `reader` (default), `editor` or `admin`.
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatch {
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// A new password; ends the user's sessions.
    pub password: Option<String>,
    /// `true` ends the user's sessions and refuses logins.
    pub disabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub username: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub disabled: bool,
    pub created_at: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewKey {
    /// What the key is for, e.g. `firecrawl-sdk on build server`.
    pub name: String,
    /// `reader` (default), `editor` or `admin`.
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// The key stops working this many seconds from now; absent = never.
    pub expires_in_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: u64,
    pub created_by: String,
    pub expires_at: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: ApiKey,
    /// `Authorization: Bearer <key>`. Shown this once; Aurora keeps only its hash.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
}

fn tokens(pair: TokenPair) -> Tokens {
    Tokens {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        token_type: pair.token_type,
        expires_in: pair.expires_in,
    }
}

fn user(info: UserInfo) -> User {
    User {
        username: info.username,
        role: info.role,
        disabled: info.disabled,
        created_at: info.created_at,
    }
}

fn api_key(info: KeyInfo) -> ApiKey {
    ApiKey {
        id: info.id,
        name: info.name,
        role: info.role,
        prefix: info.prefix,
        created_at: info.created_at,
        created_by: info.created_by,
        expires_at: info.expires_at,
    }
}

fn created_key(new: NewKeyInfo) -> CreatedKey {
    CreatedKey {
        info: api_key(new.info),
        key: new.key,
    }
}

/// The response to a session operation's result: `body` of the answer with `status`, or the
/// error's own status and envelope.
fn respond<T>(
    result: Result<T, AuthError>,
    status: StatusCode,
    body: impl FnOnce(T) -> Response,
) -> Result<Response, Rejection> {
    Ok(match result {
        Ok(answer) => {
            let mut response = body(answer);
            *response.status_mut() = status;
            response
        }
        Err(e) => ApiError::from(e).into_core_response(),
    })
}

fn json_body<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

fn no_content(_: ()) -> Response {
    warp::reply().into_response()
}

/// Exchanges a username and password for an access token and a refresh token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, body = Tokens),
    (status = 401, description = "Wrong username or password (the same answer for both)", body = CoreErrorBody),
    (status = 429, description = "Too many attempts, or locked after too many failures", body = CoreErrorBody)))]
pub async fn login(state: AppState, ip: ClientIp, body: LoginBody) -> Result<Response, Rejection> {
    let session = state.handles.session();
    let result = session
        .login(body.username, Secret(body.password), ip.0.to_string())
        .await;
    respond(result, StatusCode::OK, |pair| json_body(&tokens(pair)))
}

/// Trades a refresh token for a new pair; the one presented is spent.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody, responses(
    (status = 200, body = Tokens),
    (status = 401, description = "Unknown, expired or already used (then the session is revoked)", body = CoreErrorBody)))]
pub async fn refresh(state: AppState, body: RefreshBody) -> Result<Response, Rejection> {
    let result = state
        .handles
        .session()
        .refresh(Secret(body.refresh_token))
        .await;
    respond(result, StatusCode::OK, |pair| json_body(&tokens(pair)))
}

/// Ends the session of the access token, on every replica at once.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", responses(
    (status = 204, description = "Logged out"),
    (status = 401, body = CoreErrorBody)))]
pub async fn logout(state: AppState, principal: Principal) -> Result<Response, Rejection> {
    let result = state.handles.session().logout(principal).await;
    respond(result, StatusCode::NO_CONTENT, no_content)
}

/// Who the credential belongs to.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", responses(
    (status = 200, body = Me), (status = 401, body = CoreErrorBody)))]
pub async fn me(principal: Principal) -> Result<Response, Rejection> {
    let (kind, session_id, key_id, expires_at) = match principal.credential {
        Credential::Session { id, expires_at } => ("user", Some(id), None, Some(expires_at)),
        Credential::ApiKey { id, expires_at } => ("api_key", None, Some(id), expires_at),
        Credential::Open => ("open", None, None, None),
    };
    Ok(warp::reply::json(&Me {
        name: principal.name,
        role: principal.role,
        kind,
        session_id,
        key_id,
        expires_at,
    })
    .into_response())
}

/// Changes the caller's password; every session of the user ends.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", request_body = PasswordBody, responses(
    (status = 204, description = "Changed; log in again"),
    (status = 400, description = "New password too short, or an API key", body = CoreErrorBody),
    (status = 401, description = "Wrong current password", body = CoreErrorBody)))]
pub async fn password(
    state: AppState,
    principal: Principal,
    body: PasswordBody,
) -> Result<Response, Rejection> {
    let current = Secret(body.current_password);
    let new = Secret(body.new_password);
    let session = state.handles.session();
    let result = session.change_password(principal, current, new).await;
    respond(result, StatusCode::NO_CONTENT, no_content)
}

/// Every user.
#[utoipa::path(get, path = "/v1/auth/users", tag = "auth", responses(
    (status = 200, body = UserList), (status = 403, body = CoreErrorBody)))]
pub async fn list_users(state: AppState) -> Result<Response, Rejection> {
    let result = state.handles.session().list_users().await;
    respond(result, StatusCode::OK, |users| {
        json_body(&UserList {
            users: users.into_iter().map(user).collect(),
        })
    })
}

/// Creates a user.
#[utoipa::path(post, path = "/v1/auth/users", tag = "auth", request_body = NewUser, responses(
    (status = 201, body = User),
    (status = 400, description = "Bad username or password too short", body = CoreErrorBody),
    (status = 409, description = "The user exists", body = CoreErrorBody)))]
pub async fn create_user(
    state: AppState,
    by: Principal,
    body: NewUser,
) -> Result<Response, Rejection> {
    let role = body.role.unwrap_or_default();
    let session = state.handles.session();
    let result = session
        .create_user(body.username, Secret(body.password), role, by)
        .await;
    respond(result, StatusCode::CREATED, |info| json_body(&user(info)))
}

/// Changes a user's role, password or disabled flag.
#[utoipa::path(patch, path = "/v1/auth/users/{username}", tag = "auth", request_body = UserPatch,
    params(("username" = String, Path)), responses(
    (status = 200, body = User),
    (status = 404, body = CoreErrorBody)))]
pub async fn update_user(
    username: String,
    state: AppState,
    by: Principal,
    body: UserPatch,
) -> Result<Response, Rejection> {
    let update = UserUpdate {
        role: body.role,
        password: body.password.map(Secret),
        disabled: body.disabled,
    };
    let result = state
        .handles
        .session()
        .update_user(username, update, by)
        .await;
    respond(result, StatusCode::OK, |info| json_body(&user(info)))
}

/// Deletes a user (not yourself).
#[utoipa::path(delete, path = "/v1/auth/users/{username}", tag = "auth",
    params(("username" = String, Path)), responses(
    (status = 204, description = "Deleted"), (status = 404, body = CoreErrorBody)))]
pub async fn delete_user(
    username: String,
    state: AppState,
    by: Principal,
) -> Result<Response, Rejection> {
    let result = state.handles.session().delete_user(username, by).await;
    respond(result, StatusCode::NO_CONTENT, no_content)
}

/// Every API key (never the keys themselves).
#[utoipa::path(get, path = "/v1/auth/keys", tag = "auth", responses(
    (status = 200, body = KeyList), (status = 403, body = CoreErrorBody)))]
pub async fn list_keys(state: AppState) -> Result<Response, Rejection> {
    let result = state.handles.session().list_keys().await;
    respond(result, StatusCode::OK, |keys| {
        json_body(&KeyList {
            keys: keys.into_iter().map(api_key).collect(),
        })
    })
}

/// Creates an API key; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/v1/auth/keys", tag = "auth", request_body = NewKey, responses(
    (status = 201, body = CreatedKey),
    (status = 400, body = CoreErrorBody)))]
pub async fn create_key(
    state: AppState,
    by: Principal,
    body: NewKey,
) -> Result<Response, Rejection> {
    let role = body.role.unwrap_or_default();
    let expires_in = body.expires_in_secs.map(Duration::from_secs);
    let session = state.handles.session();
    let result = session.create_key(body.name, role, expires_in, by).await;
    respond(result, StatusCode::CREATED, |new| {
        json_body(&created_key(new))
    })
}

/// Revokes an API key at once, on every replica.
#[utoipa::path(delete, path = "/v1/auth/keys/{id}", tag = "auth",
    params(("id" = String, Path)), responses(
    (status = 204, description = "Revoked"), (status = 404, body = CoreErrorBody)))]
pub async fn revoke_key(id: String, state: AppState, by: Principal) -> Result<Response, Rejection> {
    let result = state.handles.session().revoke_key(id, by).await;
    respond(result, StatusCode::NO_CONTENT, no_content)
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let st = move || with_state(state.clone());
    let login = warp::path!("v1" / "auth" / "login")
        .and(warp::post())
        .and(st())
        .and(client_ip())
        .and(json::body(BODY_LIMIT))
        .and_then(login);
    let refresh = warp::path!("v1" / "auth" / "refresh")
        .and(warp::post())
        .and(st())
        .and(json::body(BODY_LIMIT))
        .and_then(refresh);
    let logout = warp::path!("v1" / "auth" / "logout")
        .and(warp::post())
        .and(st())
        .and(principal())
        .and_then(logout);
    let me = warp::path!("v1" / "auth" / "me")
        .and(warp::get())
        .and(principal())
        .and_then(me);
    let password = warp::path!("v1" / "auth" / "password")
        .and(warp::post())
        .and(st())
        .and(principal())
        .and(json::body(BODY_LIMIT))
        .and_then(password);
    let list_users = warp::path!("v1" / "auth" / "users")
        .and(warp::get())
        .and(st())
        .and_then(list_users);
    let create_user = warp::path!("v1" / "auth" / "users")
        .and(warp::post())
        .and(st())
        .and(principal())
        .and(json::body(BODY_LIMIT))
        .and_then(create_user);
    let update_user = warp::path!("v1" / "auth" / "users" / String)
        .and(warp::patch())
        .and(st())
        .and(principal())
        .and(json::body(BODY_LIMIT))
        .and_then(update_user);
    let delete_user = warp::path!("v1" / "auth" / "users" / String)
        .and(warp::delete())
        .and(st())
        .and(principal())
        .and_then(delete_user);
    let list_keys = warp::path!("v1" / "auth" / "keys")
        .and(warp::get())
        .and(st())
        .and_then(list_keys);
    let create_key = warp::path!("v1" / "auth" / "keys")
        .and(warp::post())
        .and(st())
        .and(principal())
        .and(json::body(BODY_LIMIT))
        .and_then(create_key);
    let revoke_key = warp::path!("v1" / "auth" / "keys" / String)
        .and(warp::delete())
        .and(st())
        .and(principal())
        .and_then(revoke_key);
    login
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(password)
        .unify()
        .or(list_users)
        .unify()
        .or(create_user)
        .unify()
        .or(update_user)
        .unify()
        .or(delete_user)
        .unify()
        .or(list_keys)
        .unify()
        .or(create_key)
        .unify()
        .or(revoke_key)
        .unify()
        .boxed()
}
