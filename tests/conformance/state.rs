//! The `StateStore` port: Redis and the in-process store.

use std::sync::Arc;
use std::time::Duration;

use aurora::adapters::redis::RedisState;
use aurora_actors::local::MemoryState;
use aurora_actors::ports::StateStore;

use crate::{service_url, unique};

fn redis() -> Arc<dyn StateStore> {
    let url = service_url("AURORA_TEST_REDIS_URL");
    Arc::new(RedisState::connect(&url, &unique("aurora-test")).expect("valid Redis URL"))
}

fn memory() -> Arc<dyn StateStore> {
    Arc::new(MemoryState::new())
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

/// Runs one check against both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn redis() {
                super::$name(super::redis()).await;
            }
            #[tokio::test]
            async fn memory() {
                super::$name(super::memory()).await;
            }
        }
    };
}

both!(values_round_trip_in_order);
async fn values_round_trip_in_order(store: Arc<dyn StateStore>) {
    let binary = vec![0u8, 255, 10, 13, 0, 7];
    store
        .set_many(
            vec![("a".into(), b"one".to_vec()), ("b".into(), binary.clone())],
            None,
        )
        .await
        .unwrap();
    let got = store.get_many(&keys(&["b", "missing", "a"])).await.unwrap();
    assert_eq!(got, vec![Some(binary), None, Some(b"one".to_vec())]);
    // Overwrite replaces.
    store
        .set_many(vec![("a".into(), b"two".to_vec())], None)
        .await
        .unwrap();
    assert_eq!(
        store.get_many(&keys(&["a"])).await.unwrap(),
        vec![Some(b"two".to_vec())]
    );
    // Empty inputs are fine.
    assert!(store.get_many(&[]).await.unwrap().is_empty());
    store.set_many(Vec::new(), None).await.unwrap();
}

both!(entries_expire_after_their_ttl);
async fn entries_expire_after_their_ttl(store: Arc<dyn StateStore>) {
    store
        .set_many(
            vec![
                ("short".into(), b"x".to_vec()),
                ("also".into(), b"y".to_vec()),
            ],
            Some(Duration::from_millis(150)),
        )
        .await
        .unwrap();
    store
        .set_many(vec![("forever".into(), b"z".to_vec())], None)
        .await
        .unwrap();
    let probe = keys(&["short", "also", "forever"]);
    assert_eq!(
        store.get_many(&probe).await.unwrap(),
        vec![
            Some(b"x".to_vec()),
            Some(b"y".to_vec()),
            Some(b"z".to_vec())
        ]
    );
    let mut expired = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if store.get_many(&probe).await.unwrap() == vec![None, None, Some(b"z".to_vec())] {
            expired = true;
            break;
        }
    }
    assert!(expired, "TTL entries expire; others stay");
}

both!(delete_reports_what_existed);
async fn delete_reports_what_existed(store: Arc<dyn StateStore>) {
    store
        .set_many(
            vec![("k1".into(), b"1".to_vec()), ("k2".into(), b"2".to_vec())],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.delete(&keys(&["k1", "nope"])).await.unwrap(), 1);
    assert_eq!(
        store.get_many(&keys(&["k1", "k2"])).await.unwrap(),
        vec![None, Some(b"2".to_vec())]
    );
    assert_eq!(store.delete(&[]).await.unwrap(), 0);
}

both!(set_if_absent_claims_a_key_once);
async fn set_if_absent_claims_a_key_once(store: Arc<dyn StateStore>) {
    // Many claimants at once: exactly one wins, and its value is what stays.
    let claims: Vec<_> = (0..16u8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let won = store
                    .set_if_absent("claim".into(), vec![n], None)
                    .await
                    .unwrap();
                (n, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for claim in claims {
        let (n, won) = claim.await.unwrap();
        if won {
            winners.push(n);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(
        store.get_many(&keys(&["claim"])).await.unwrap(),
        vec![Some(vec![winners[0]])]
    );
    // An expired claim frees the key.
    let ttl = Some(Duration::from_millis(100));
    assert!(
        store
            .set_if_absent("brief".into(), b"1".to_vec(), ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_if_absent("brief".into(), b"2".to_vec(), ttl)
            .await
            .unwrap()
    );
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if store
            .set_if_absent("brief".into(), b"3".to_vec(), ttl)
            .await
            .unwrap()
        {
            freed = true;
            break;
        }
    }
    assert!(freed, "an expired claim can be made again");
}

both!(counters_add_up_and_default_to_zero);
async fn counters_add_up_and_default_to_zero(store: Arc<dyn StateStore>) {
    let set = "df:docs";
    store
        .add_counts(set, &[("rust".into(), 2), ("actor".into(), 1)])
        .await
        .unwrap();
    store
        .add_counts(set, &[("rust".into(), 3), ("actor".into(), -1)])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_counts(set, &keys(&["rust", "actor", "never"]))
            .await
            .unwrap(),
        vec![5, 0, 0]
    );
    assert_eq!(
        store.get_counts("other", &keys(&["rust"])).await.unwrap(),
        vec![0],
        "counter sets are independent"
    );
    assert!(store.get_counts(set, &[]).await.unwrap().is_empty());
}

both!(concurrent_counter_updates_are_not_lost);
async fn concurrent_counter_updates_are_not_lost(store: Arc<dyn StateStore>) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    store.add_counts("hits", &[("n".into(), 1)]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.get_counts("hits", &keys(&["n"])).await.unwrap(),
        vec![200]
    );
}

#[tokio::test]
async fn redis_down_is_reported_as_unavailable() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let store = RedisState::connect(&format!("redis://127.0.0.1:{closed}"), "x").unwrap();
    let err = store.get_many(&keys(&["a"])).await.unwrap_err();
    assert!(
        matches!(err, aurora_actors::ports::StateError::Unavailable(_)),
        "{err:?}"
    );
}
