//! Security over HTTP: the JWT attack table, every route of both ports refused without
//! credentials and with too small a role (generated from the route tables), logins, refresh
//! rotation and reuse, lock-out, API keys (with the real Firecrawl SDK), rate limits shared by
//! two instances on one Redis, security headers and CORS.

use crate::common::text;
use std::path::Path;

use aurora::http::gate::{Access, Kind};
use aurora_actors::session::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{
    ADMIN_PASSWORD, Port, TestApp, create_key, service_url, site::spawn_site, spawn_app,
    spawn_app_with,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An app that signs with Ed25519 (so an attacker knows the public key).
async fn eddsa_app() -> TestApp {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    spawn_app_with(|s| {
        s.auth.jwt_algorithm = aurora::settings::JwtAlgorithm::EdDSA;
        s.auth.jwt_private_key_file = dir.join("ed25519.pem");
        s.auth.jwt_public_key_file = dir.join("ed25519.pub.pem");
    })
    .await
}

async fn login(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    let response = login_response(app, username, password).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// The login's whole response, headers included.
async fn login_response(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.anonymous
        .post(app.url(Port::Core, "/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("sent")
}

async fn admin_tokens(app: &TestApp) -> Value {
    let (status, tokens) = login(app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// GET `path` on `port` with `Authorization: Bearer {credential}`; the status.
async fn get_as(app: &TestApp, port: Port, path: &str, credential: &str) -> u16 {
    app.anonymous
        .get(app.url(port, path))
        .bearer_auth(credential)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

async fn logout(app: &TestApp, access: &str) -> u16 {
    app.anonymous
        .post(app.url(Port::Core, "/v1/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app
        .anonymous
        .post(app.url(Port::Core, "/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, key).expect("signed")
}

#[tokio::test]
async fn the_jwt_attack_table_is_refused() {
    let app = eddsa_app().await;
    let tokens = admin_tokens(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/me", access).await, 200);
    let valid = claims_of(access);
    let right_key = EncodingKey::from_ed_pem(&fixture("ed25519.pem")).unwrap();
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    // The control: a token we sign ourselves with the right key and valid claims is accepted,
    // so each refusal below is the attack's doing.
    let control = sign(
        Algorithm::EdDSA,
        &right_key,
        &with(json!({"jti": "control"})),
    );
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/me", &control).await, 200);

    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"})),
        b64(&valid)
    );
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&fixture("ed25519.pub.pem")),
        &valid,
    );
    let wrong_key = sign(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(&fixture("other-ed25519.pem")).unwrap(),
        &valid,
    );
    let expired = sign(
        Algorithm::EdDSA,
        &right_key,
        &with(json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200})),
    );
    let not_yet = sign(
        Algorithm::EdDSA,
        &right_key,
        &with(json!({"nbf": now() + 3600})),
    );
    let wrong_aud = sign(
        Algorithm::EdDSA,
        &right_key,
        &with(json!({"aud": "someone-else"})),
    );
    let wrong_iss = sign(Algorithm::EdDSA, &right_key, &with(json!({"iss": "evil"})));
    let no_type = {
        let header = Header::new(Algorithm::EdDSA);
        jsonwebtoken::encode(&header, &valid, &right_key).unwrap()
    };
    let tampered = {
        let parts: Vec<&str> = access.split('.').collect();
        let payload = b64(&with(json!({"sub": "root", "role": "admin"})));
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    for (attack, token) in [
        ("alg none", none),
        ("HS256 signed with the public key", confused),
        ("wrong key", wrong_key),
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong audience", wrong_aud),
        ("wrong issuer", wrong_iss),
        ("untyped JWT", no_type),
        ("tampered payload", tampered),
        ("garbage", "a.b.c".to_string()),
    ] {
        let response = app
            .anonymous
            .get(app.url(Port::Core, "/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{attack}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{attack}: {challenge}");
    }

    // Logged out: the token is dead at once.
    assert_eq!(logout(&app, access).await, 204);
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/me", access).await, 401);
    // …and the tokens we signed for that session too (the session record is what counts).
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/me", &control).await, 401);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let first = admin_tokens(&app).await;
    let (status, second) = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let second_access = second["access_token"].as_str().unwrap();
    assert_eq!(
        get_as(&app, Port::Core, "/v1/auth/me", second_access).await,
        200
    );
    // The spent token comes back (a thief, or the user after a thief): the family dies.
    let (status, body) = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "{body}");
    assert!(text(&body["error"]["message"]).contains("already used"));
    let (status, _) = refresh(&app, second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "the newest refresh token died with the family");
    assert_eq!(
        get_as(&app, Port::Core, "/v1/auth/me", second_access).await,
        401
    );
    // A forged generation is just invalid.
    let forged = first["refresh_token"]
        .as_str()
        .unwrap()
        .replacen(".0.", ".1.", 1);
    assert_eq!(refresh(&app, &forged).await.0, 401);
    assert_eq!(refresh(&app, "nonsense").await.0, 401);
}

#[tokio::test]
async fn revoking_a_user_ends_their_sessions() {
    let app = spawn_app().await;
    let (status, created) = app
        .post_json(
            Port::Core,
            "/v1/auth/users",
            json!({"username": "Eve", "password": "correct horse battery", "role": "editor"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["username"], "eve");
    let (status, tokens) = login(&app, "EVE", "correct horse battery").await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let me: Value = app
        .anonymous
        .get(app.url(Port::Core, "/v1/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("eve"), Some("editor"))
    );
    // An editor may not administer.
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/keys", access).await, 403);
    // Demoted: the next request already has the new role.
    let response = app
        .client
        .patch(app.url(Port::Core, "/v1/auth/users/eve"))
        .json(&json!({"role": "reader"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let status = app
        .anonymous
        .post(app.url(Port::Core, "/v1/collections"))
        .bearer_auth(access)
        .json(&json!({"name": "eves"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    // Disabled: every session of the user is refused at once, and so are logins.
    let response = app
        .client
        .patch(app.url(Port::Core, "/v1/auth/users/eve"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/me", access).await, 401);
    assert_eq!(login(&app, "eve", "correct horse battery").await.0, 401);
    let (_, users) = (
        200,
        app.client
            .get(app.url(Port::Core, "/v1/auth/users"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
    );
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "eve"]);
}

/// A request for every row of a route table: placeholders filled, bodies empty.
async fn call(
    app: &TestApp,
    port: Port,
    method: &str,
    path: &str,
    credential: Option<&str>,
) -> u16 {
    let path = path
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    // Not following redirects: a web page answers a visitor who is not signed in with one.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client
        .request(method, app.url(port, &path))
        .header("content-type", "application/json")
        .body("{}");
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    request.send().await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn every_route_of_both_ports_checks_credentials_and_roles() {
    let app = spawn_app_with(|s| s.auth.metrics_token = "metrics-secret".into()).await;
    let reader = create_key(&app.handles, "reader", Role::Reader).await;
    let editor = create_key(&app.handles, "editor", Role::Editor).await;
    let mut checked = 0;
    for (port, routes) in [
        (Port::Core, aurora::http::core::ROUTES),
        (Port::Crawler, aurora::http::crawler::ROUTES),
    ] {
        for route in routes {
            let anonymous = call(&app, port, route.method, route.path, None).await;
            // A web page sends a visitor who is not signed in to the login page instead.
            let unauthenticated = match route.kind {
                Kind::Api => 401,
                Kind::Page | Kind::Form => 303,
            };
            match route.access {
                // (The login form itself answers 401 to the empty login it is sent here.)
                Access::Public if route.kind == Kind::Form => {}
                Access::Public => {
                    assert_ne!(anonymous, 401, "{port:?} {} {}", route.method, route.path)
                }
                Access::Metrics | Access::Role(_) => {
                    assert_eq!(
                        anonymous, unauthenticated,
                        "{port:?} {} {}",
                        route.method, route.path
                    );
                    let garbage = call(&app, port, route.method, route.path, Some("junk")).await;
                    assert_eq!(
                        garbage, unauthenticated,
                        "{port:?} {} {}",
                        route.method, route.path
                    );
                }
            }
            // Too small a role: the one just below what the route needs.
            let below = match route.access {
                Access::Role(Role::Admin) => Some(&editor),
                Access::Role(Role::Editor) => Some(&reader),
                _ => None,
            };
            if let Some(key) = below {
                let status = call(&app, port, route.method, route.path, Some(key)).await;
                assert_eq!(status, 403, "{port:?} {} {}", route.method, route.path);
            }
            // And the role it needs gets past the gate.
            if let Access::Role(role) = route.access {
                let key = match role {
                    Role::Reader => &reader,
                    Role::Editor => &editor,
                    Role::Admin => &app.admin_key,
                };
                let status = call(&app, port, route.method, route.path, Some(key)).await;
                // (Only the home page redirects a signed-in caller: to the ask page.)
                assert!(
                    ![401, 403].contains(&status) && (status != 303 || route.path == "/"),
                    "{port:?} {} {} → {status}",
                    route.method,
                    route.path
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} routes");
    // The metrics token opens /metrics; nothing else does.
    assert_eq!(
        get_as(&app, Port::Core, "/metrics", "metrics-secret").await,
        200
    );
    assert_eq!(
        get_as(&app, Port::Crawler, "/metrics", &app.admin_key).await,
        401
    );
    // A route missing from the table is not served at all.
    let status = call(
        &app,
        Port::Core,
        "GET",
        "/v1/auth/login",
        Some(&app.admin_key),
    )
    .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same_and_failures_lock_the_account() {
    let app = spawn_app_with(|s| {
        s.auth.lockout_failures = 3;
        s.auth.lockout_secs = 600;
    })
    .await;
    let checks = "aurora_auth_password_checks_total";
    let before = app.metric(checks).await.unwrap_or(0.0);
    let (s1, wrong) = login(&app, "admin", "not the password").await;
    let (s2, unknown) = login(&app, "nobody", "not the password").await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown, "the same answer for both");
    // Both cost one argon2 verification: an unknown user is checked against a decoy hash.
    assert!(app.metric(checks).await.unwrap() >= before + 2.0);
    // Two more failures make three: locked, even with the right password now.
    assert_eq!(login(&app, "admin", "still wrong").await.0, 401);
    assert_eq!(login(&app, "admin", "wrong again").await.0, 401);
    let response = login_response(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "login_locked");
    // Other accounts are not locked by it.
    assert_eq!(login(&app, "nobody", "x").await.0, 401);
}

#[tokio::test]
async fn logins_are_slowed_per_address() {
    let app = spawn_app_with(|s| s.auth.login_per_ip_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(login(&app, "nobody", "wrong").await.0, 401);
    }
    let response = login_response(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_without_secrets_and_revocable() {
    let app = spawn_app().await;
    let (status, created) = app
        .post_json(
            Port::Core,
            "/v1/auth/keys",
            json!({"name": "build server", "role": "editor"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("aur_"));
    assert_eq!(
        get_as(&app, Port::Crawler, "/v1/crawl/unknown", key).await,
        404
    );
    let listed = app
        .client
        .get(app.url(Port::Core, "/v1/auth/keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("build server") && !listed.contains(key),
        "{listed}"
    );
    let id = created["id"].as_str().unwrap();
    let response = app
        .client
        .delete(app.url(Port::Core, &format!("/v1/auth/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        get_as(&app, Port::Crawler, "/v1/crawl/unknown", key).await,
        401
    );
    // A key past its expiry is refused.
    let (_, expired) = app
        .post_json(
            Port::Core,
            "/v1/auth/keys",
            json!({"name": "brief", "expires_in_secs": 0}),
        )
        .await;
    let expired = expired["key"].as_str().unwrap();
    assert_eq!(get_as(&app, Port::Core, "/v1/auth/me", expired).await, 401);
}

#[tokio::test]
async fn the_firecrawl_sdk_works_with_an_api_key() {
    let app = spawn_app().await;
    let site = spawn_site().await;
    let key = create_key(&app.handles, "firecrawl-sdk", Role::Editor).await;
    let script = r#"
import json, sys
from firecrawl import Firecrawl, V1FirecrawlApp
api_url, key, page = sys.argv[1], sys.argv[2], sys.argv[3]
v2 = Firecrawl(api_key=key, api_url=api_url).scrape(page, formats=["markdown"])
v1 = V1FirecrawlApp(api_key=key, api_url=api_url).scrape_url(page, formats=["markdown"])
try:
    Firecrawl(api_key="aur_0000000000000000_wrong", api_url=api_url).scrape(page)
    refused = None
except Exception as e:
    refused = str(e)
print(json.dumps({"v2": v2.markdown, "v1": v1.markdown, "refused": refused}))
"#;
    let python = service_url("AURORA_TEST_PYTHON");
    let (api_url, page) = (app.crawler.clone(), site.url("/article"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", script, &api_url, &key, &page])
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!seen["v2"].as_str().unwrap().is_empty(), "{seen}");
    assert!(!seen["v1"].as_str().unwrap().is_empty(), "{seen}");
    assert!(seen["refused"].as_str().is_some(), "{seen}");
}

#[tokio::test]
async fn rate_limits_answer_429_with_ratelimit_headers() {
    let app = spawn_app_with(|s| s.auth.requests_per_minute = 3).await;
    let key = create_key(&app.handles, "limited", Role::Reader).await;
    for left in [2, 1, 0] {
        let response = app
            .anonymous
            .get(app.url(Port::Core, "/v1/models"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(
            response.headers()["ratelimit-remaining"],
            left.to_string().as_str()
        );
    }
    let response = app
        .anonymous
        .get(app.url(Port::Core, "/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another caller has its own quota.
    assert_eq!(
        get_as(&app, Port::Core, "/v1/models", &app.admin_key).await,
        200
    );
}

#[tokio::test]
async fn two_instances_on_one_redis_share_logouts_and_rate_limits() {
    let redis = service_url("AURORA_TEST_REDIS_URL");
    let prefix = format!("aurora-test-{}", uuid::Uuid::new_v4().simple());
    let shared = |s: &mut aurora::settings::Settings| {
        s.redis.url = redis.clone();
        s.redis.key_prefix = prefix.clone();
        s.auth.requests_per_minute = 6;
    };
    let a = spawn_app_with(shared).await;
    let b = spawn_app_with(shared).await;
    // Tokens from one replica are good on the other (the signing key is shared through Redis).
    let tokens = admin_tokens(&a).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_as(&b, Port::Core, "/v1/auth/me", access).await, 200);
    // Logout on A is refused on B at once.
    assert_eq!(logout(&a, access).await, 204);
    assert_eq!(get_as(&b, Port::Core, "/v1/auth/me", access).await, 401);
    assert_eq!(get_as(&a, Port::Core, "/v1/auth/me", access).await, 401);

    // One quota across both: 3 + 3 pass, the 7th is refused wherever it lands.
    let key = create_key(&a.handles, "shared", Role::Reader).await;
    for app in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(get_as(app, Port::Core, "/v1/models", &key).await, 200);
    }
    assert_eq!(get_as(&b, Port::Core, "/v1/models", &key).await, 429);
    assert_eq!(get_as(&a, Port::Core, "/v1/collections", &key).await, 429);
}

#[tokio::test]
async fn responses_carry_security_headers_and_cors_follows_the_settings() {
    let app = spawn_app_with(|s| s.server.cors_origins = "https://app.example".into()).await;
    let response = app.get(Port::Core, "/v1/models").await;
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("content-security-policy"));
    assert!(!headers.contains_key("access-control-allow-origin"));
    let preflight = |origin: &'static str| {
        app.anonymous
            .request(
                reqwest::Method::OPTIONS,
                app.url(Port::Crawler, "/v1/scrape"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let response = app
        .client
        .get(app.url(Port::Core, "/v1/models"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn embedded_accounts_survive_a_restart() {
    let app = spawn_app().await;
    let key = create_key(&app.handles, "kept", Role::Reader).await;
    let tokens = admin_tokens(&app).await;
    let data = app.data.clone();
    app.shutdown().await.unwrap();
    let again = crate::common::spawn_app_in(data, |_| {}).await;
    assert_eq!(get_as(&again, Port::Core, "/v1/auth/me", &key).await, 200);
    // The signing secret and the session were kept too.
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_as(&again, Port::Core, "/v1/auth/me", access).await, 200);
}

#[tokio::test]
async fn a_reader_may_ask_but_not_deep_dive() {
    let app = spawn_app().await;
    let reader = create_key(&app.handles, "reader", Role::Reader).await;
    let response = app
        .anonymous
        .post(app.url(Port::Core, "/v1/query"))
        .bearer_auth(&reader)
        .json(&json!({"question": "What is new?", "collection": "news",
                      "urls": ["https://example.com/"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(text(&body["error"]["message"]).contains("editor"), "{body}");
}
