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

both!(replace_if_swaps_only_the_expected_value);
async fn replace_if_swaps_only_the_expected_value(store: Arc<dyn StateStore>) {
    let key = "cas".to_string();
    // A missing key never matches: a deleted record is not brought back.
    assert!(
        !store
            .replace_if(key.clone(), b"a".to_vec(), b"b".to_vec(), None)
            .await
            .unwrap()
    );
    store
        .set_many(vec![(key.clone(), b"a".to_vec())], None)
        .await
        .unwrap();
    assert!(
        !store
            .replace_if(key.clone(), b"other".to_vec(), b"b".to_vec(), None)
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_if(
                key.clone(),
                b"a".to_vec(),
                b"b".to_vec(),
                Some(Duration::from_millis(150))
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_many(std::slice::from_ref(&key)).await.unwrap(),
        vec![Some(b"b".to_vec())]
    );
    // Concurrent swaps from the same value: exactly one wins.
    let racers = (0..8).map(|i| {
        let store = store.clone();
        let key = key.clone();
        async move {
            store
                .replace_if(key, b"b".to_vec(), vec![i], None)
                .await
                .unwrap()
        }
    });
    let wins = futures::future::join_all(racers).await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);
}

both!(sets_add_remove_and_list_members);
async fn sets_add_remove_and_list_members(store: Arc<dyn StateStore>) {
    store.set_add("s", &keys(&["a", "b", "a"])).await.unwrap();
    store.set_add("s", &keys(&["c"])).await.unwrap();
    store
        .set_remove("s", &keys(&["b", "missing"]))
        .await
        .unwrap();
    let mut members = store.set_members("s").await.unwrap();
    members.sort();
    assert_eq!(members, keys(&["a", "c"]));
    assert!(store.set_members("nothing").await.unwrap().is_empty());
    store.set_add("s", &[]).await.unwrap();
}

both!(counters_count_within_their_window);
async fn counters_count_within_their_window(store: Arc<dyn StateStore>) {
    let window = Duration::from_millis(300);
    assert_eq!(store.increment("f".into(), 0, window).await.unwrap().0, 0);
    assert_eq!(store.increment("f".into(), 1, window).await.unwrap().0, 1);
    let (value, left) = store.increment("f".into(), 2, window).await.unwrap();
    assert_eq!(value, 3);
    // The window started with the first touch; later increments do not extend it.
    assert!(left <= window, "{left:?}");
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(store.increment("f".into(), 1, window).await.unwrap().0, 1);
}

both!(throttle_is_gcra_with_a_burst_of_the_limit);
async fn throttle_is_gcra_with_a_burst_of_the_limit(store: Arc<dyn StateStore>) {
    use aurora_actors::ports::Quota;
    let quota = Quota {
        limit: 3,
        period: Duration::from_secs(60),
    };
    for remaining in [2, 1, 0] {
        let t = store.throttle("rl".into(), quota, 1).await.unwrap();
        assert!(t.allowed);
        assert_eq!((t.limit, t.remaining), (3, remaining));
    }
    let refused = store.throttle("rl".into(), quota, 1).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One request's share comes back after period / limit = 20 s.
    assert!(
        refused.retry_after > Duration::from_secs(19)
            && refused.retry_after <= Duration::from_secs(20),
        "{:?}",
        refused.retry_after
    );
    assert!(refused.reset_after >= refused.retry_after);
    // Other keys and other quotas are independent.
    assert!(
        store
            .throttle("rl2".into(), quota, 1)
            .await
            .unwrap()
            .allowed
    );
    // A fast quota refills: 2 per 200 ms.
    let fast = Quota {
        limit: 2,
        period: Duration::from_millis(200),
    };
    assert!(store.throttle("f".into(), fast, 2).await.unwrap().allowed);
    assert!(!store.throttle("f".into(), fast, 1).await.unwrap().allowed);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(store.throttle("f".into(), fast, 1).await.unwrap().allowed);
}
