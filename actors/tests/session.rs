//! The session pool on embedded ports: logins, rotation and reuse of refresh tokens, logout,
//! API keys, and the embedded store that keeps accounts across a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aurora_actors::local::{MemoryState, StaticSite};
use aurora_actors::ports::StateStore;
use aurora_actors::session::{
    AuthError, Credential, DURABLE_PREFIXES, Handle, Principal, Role, Secret, TokenPair,
};

fn no_site() -> StaticSite {
    StaticSite::new(std::iter::empty::<(String, u16, &'static str, Vec<u8>)>())
}

async fn login(session: &Handle, username: &str, password: &str) -> Result<TokenPair, AuthError> {
    let password = Secret(password.into());
    session
        .login(username.into(), password, "192.0.2.1".into())
        .await
}

#[tokio::test]
async fn a_login_lives_until_logout_and_refresh_tokens_work_once() {
    let tree = aurora_actors::spawn_tree(common::ports(no_site()), common::config())
        .await
        .unwrap();
    let session = tree.handles().session();
    session.bootstrap().await.unwrap();

    let wrong = login(&session, "admin", "nope").await.unwrap_err();
    let unknown = login(&session, "ghost", "nope").await.unwrap_err();
    assert_eq!(wrong, AuthError::InvalidCredentials);
    assert_eq!(unknown, AuthError::InvalidCredentials);

    let first = login(&session, "ADMIN", "actor-test-password")
        .await
        .unwrap();
    let me = session.authenticate(&first.access_token).await.unwrap();
    assert_eq!((me.name.as_str(), me.role), ("admin", Role::Admin));
    let Credential::Session { id, .. } = &me.credential else {
        panic!("a session credential")
    };

    let second = session
        .refresh(Secret(first.refresh_token.clone()))
        .await
        .unwrap();
    assert!(session.authenticate(&second.access_token).await.is_ok());
    // Spent: presenting it again ends the session for everyone holding it.
    let reused = session
        .refresh(Secret(first.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(reused, AuthError::RefreshReused);
    assert!(matches!(
        session.authenticate(&second.access_token).await,
        Err(AuthError::InvalidToken(_))
    ));

    // A fresh login, then logout.
    let third = login(&session, "admin", "actor-test-password")
        .await
        .unwrap();
    let principal = session.authenticate(&third.access_token).await.unwrap();
    assert_ne!(
        principal.credential, me.credential,
        "a new session, not {id}"
    );
    session.logout(principal).await.unwrap();
    assert!(session.authenticate(&third.access_token).await.is_err());
    tree.shutdown().await;
}

#[tokio::test]
async fn api_keys_carry_their_role_until_revoked() {
    let tree = aurora_actors::spawn_tree(common::ports(no_site()), common::config())
        .await
        .unwrap();
    let session = tree.handles().session();
    let created = session
        .create_key("ci".into(), Role::Editor, None, Principal::open())
        .await
        .unwrap();
    let principal = session.authenticate(&created.key).await.unwrap();
    assert_eq!(
        (principal.name.as_str(), principal.role),
        ("ci", Role::Editor)
    );
    // A key with one character changed is not a key.
    let mut forged = created.key.clone();
    forged.pop();
    forged.push(if created.key.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        session.authenticate(&forged).await,
        Err(AuthError::InvalidApiKey)
    );
    session
        .revoke_key(created.info.id.clone(), Principal::open())
        .await
        .unwrap();
    assert_eq!(
        session.authenticate(&created.key).await,
        Err(AuthError::InvalidApiKey)
    );
    tree.shutdown().await;
}

#[tokio::test]
async fn the_durable_store_keeps_accounts_but_not_caches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/accounts.json");
    {
        let state = MemoryState::durable(&path, &DURABLE_PREFIXES).unwrap();
        state
            .set_many(
                vec![
                    ("auth:user:ann".into(), b"ann".to_vec()),
                    ("emb:cache".into(), b"vector".to_vec()),
                ],
                None,
            )
            .await
            .unwrap();
        state
            .set_many(
                vec![("auth:session:s".into(), b"s".to_vec())],
                Some(Duration::from_secs(600)),
            )
            .await
            .unwrap();
        state
            .set_many(
                vec![("auth:session:brief".into(), b"b".to_vec())],
                Some(Duration::from_millis(1)),
            )
            .await
            .unwrap();
        state
            .set_add("auth:users", &["ann".to_string()])
            .await
            .unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "password hashes are the owner's only");
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let state: Arc<dyn StateStore> =
        Arc::new(MemoryState::durable(&path, &DURABLE_PREFIXES).unwrap());
    let keys: Vec<String> = [
        "auth:user:ann",
        "emb:cache",
        "auth:session:s",
        "auth:session:brief",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        state.get_many(&keys).await.unwrap(),
        vec![Some(b"ann".to_vec()), None, Some(b"s".to_vec()), None]
    );
    assert_eq!(state.set_members("auth:users").await.unwrap(), ["ann"]);
    // A damaged file is an error that names it, not an empty store.
    std::fs::write(&path, b"{not json").unwrap();
    let err = MemoryState::durable(&path, &DURABLE_PREFIXES).unwrap_err();
    assert!(err.to_string().contains("accounts.json"), "{err}");
}
