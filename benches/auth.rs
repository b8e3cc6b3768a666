//! What authentication costs per request, and what a login costs:
//! - `authenticate`: JWT verify (HS256 or EdDSA) + the session and user records in one read, on
//!   the in-process store and, when `AURORA_BENCH_REDIS_URL` is set, on Redis;
//! - the same for an API key (one read + SHA-256);
//! - `throttle`: one GCRA decision;
//! - `login`: a wrong password against an unknown user, at the default argon2id cost — the two
//!   must cost the same, so the answer's timing says nothing about who exists.
//!
//! `cargo bench --bench auth` (add a filter, e.g. `-- authenticate`, to run one group).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aurora::adapters::redis::RedisState;
use aurora_actors::local::MemoryState;
use aurora_actors::ports::{Quota, StateStore};
use aurora_actors::session::{
    Accounts, HashCost, Principal, Role, Secret, SessionConfig, SigningKey,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn config(signing: Option<SigningKey>, hash_cost: HashCost) -> SessionConfig {
    let generous = Quota {
        limit: 1_000_000_000,
        period: Duration::from_secs(60),
    };
    SessionConfig {
        signing,
        issuer: "aurora".into(),
        audience: "aurora".into(),
        leeway: Duration::from_secs(30),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        session_max: Duration::from_secs(86_400),
        admin_password: Some(Secret("bench-admin-password".into())),
        hash_cost,
        min_password_chars: 8,
        login_per_ip: generous,
        login_per_account: generous,
        lockout_failures: u32::MAX,
        lockout_ip_failures: u32::MAX,
        lockout_window: Duration::from_secs(60),
        api: generous,
        workers: 1,
        timeout: Duration::from_secs(30),
        max_pending: 16,
    }
}

fn eddsa() -> SigningKey {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    SigningKey::EdDsa {
        private_pem: std::fs::read(dir.join("ed25519.pem")).expect("fixture key"),
        public_pem: std::fs::read(dir.join("ed25519.pub.pem")).expect("fixture key"),
    }
}

/// A bootstrapped account store with one logged-in session and one API key.
async fn ready(accounts: &Accounts) -> (String, String) {
    accounts.bootstrap().await.expect("bootstrap");
    let password = Secret("bench-admin-password".into());
    let tokens = accounts
        .login("admin", &password, "127.0.0.1")
        .await
        .expect("login");
    let key = accounts
        .create_key("bench", Role::Reader, None, &Principal::open())
        .await
        .expect("key");
    (tokens.access_token, key.key)
}

fn authenticate(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut stores: Vec<(&str, Arc<dyn StateStore>)> =
        vec![("memory", Arc::new(MemoryState::new()))];
    match std::env::var("AURORA_BENCH_REDIS_URL") {
        Ok(url) => {
            // The connection manager spawns its driver: it needs the runtime around it.
            let _inside = runtime.enter();
            stores.push((
                "redis",
                Arc::new(RedisState::connect(&url, "aurora-bench").expect("Redis URL")),
            ))
        }
        Err(_) => eprintln!("AURORA_BENCH_REDIS_URL not set: benching the in-process store only"),
    }
    let cheap = HashCost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };
    let mut group = c.benchmark_group("authenticate");
    for (backend, state) in stores {
        for (alg, signing) in [("HS256", None), ("EdDSA", Some(eddsa()))] {
            let accounts = Accounts::new(state.clone(), config(signing, cheap));
            let (access, key) = runtime.block_on(ready(&accounts));
            group.bench_function(format!("{alg} token + session, {backend}"), |b| {
                b.iter(|| {
                    runtime
                        .block_on(accounts.authenticate(&access))
                        .expect("valid")
                })
            });
            if alg == "HS256" {
                group.bench_function(format!("API key, {backend}"), |b| {
                    b.iter(|| {
                        runtime
                            .block_on(accounts.authenticate(&key))
                            .expect("valid")
                    })
                });
                group.bench_function(format!("throttle (GCRA), {backend}"), |b| {
                    b.iter(|| {
                        runtime
                            .block_on(accounts.throttle("bench"))
                            .expect("decided")
                    })
                });
            }
        }
    }
    group.finish();
}

fn login(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let accounts = Accounts::new(
        Arc::new(MemoryState::new()),
        config(None, HashCost::default()),
    );
    runtime.block_on(accounts.bootstrap()).expect("bootstrap");
    let mut group = c.benchmark_group("login (argon2id m=19 MiB, t=2)");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for (case, username) in [("wrong password", "admin"), ("unknown user", "nobody")] {
        group.bench_function(case, |b| {
            b.iter(|| {
                let wrong = Secret("not the password".into());
                let refused = runtime.block_on(accounts.login(username, &wrong, "127.0.0.1"));
                assert!(refused.is_err());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, authenticate, login);
criterion_main!(benches);
