//! The `JobQueue` port: Redis (Lua over lists with leases) and the in-process queue must agree
//! on leases, reclaim, exactly-once results under at-least-once delivery, completion, limits and
//! cancel. The embedded queue's journal (resume after a restart) is tested at the end.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aurora::adapters::redis::RedisState;
use aurora_actors::local::MemoryJobs;
use aurora_actors::ports::{
    JobQueue, LeaseRef, Leased, LeasedItem, NewError, NewItem, NewJob, Outcome, Recorded,
};

use crate::{service_url, unique};

fn redis() -> Arc<dyn JobQueue> {
    let url = service_url("AURORA_TEST_REDIS_URL");
    let state = RedisState::connect(&url, &unique("aurora-test")).expect("valid Redis URL");
    Arc::new(state.jobs())
}

fn memory() -> Arc<dyn JobQueue> {
    Arc::new(MemoryJobs::new())
}

const LEASE: Duration = Duration::from_secs(30);

fn item(key: &str) -> NewItem {
    NewItem {
        key: key.to_string(),
        payload: format!("payload of {key}"),
        counted: true,
    }
}

fn far_future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000
}

/// A new job with `keys` queued in order; its id.
async fn job(queue: &dyn JobQueue, keys: &[&str], limit: u64) -> String {
    let id = unique("job");
    queue
        .create(NewJob {
            id: id.clone(),
            meta: format!("{{\"id\":\"{id}\"}}"),
            limit,
            expires_at: far_future(),
            items: keys.iter().map(|k| item(k)).collect(),
        })
        .await
        .unwrap();
    id
}

async fn lease(queue: &dyn JobQueue, id: &str, consumer: &str, max: usize) -> Vec<LeasedItem> {
    lease_for(queue, id, consumer, max, LEASE).await
}

/// A lease short enough to run out within a test.
const SHORT: Duration = Duration::from_millis(100);

async fn lease_for(
    queue: &dyn JobQueue,
    id: &str,
    consumer: &str,
    max: usize,
    lease: Duration,
) -> Vec<LeasedItem> {
    match queue.lease(id, consumer, max, lease).await.unwrap() {
        Leased::Items { items, .. } => items,
        other => panic!("expected items, got {other:?}"),
    }
}

/// A page result: stored under `key`, counted as completed.
fn page(key: &str) -> Outcome {
    Outcome {
        result_key: Some(key.to_string()),
        document: Some(format!("document {key}").into_bytes()),
        counts: vec![("completed".into(), 1)],
        max_errors: 100,
        ..Outcome::default()
    }
}

fn counter(snapshot: &aurora_actors::ports::JobSnapshot, name: &str) -> i64 {
    snapshot.counters.get(name).copied().unwrap_or(0)
}

both!(a_new_job_is_active_and_its_items_are_deduplicated);
async fn a_new_job_is_active_and_its_items_are_deduplicated(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b", "a", "c"], 10).await;
    assert!(queue.active().await.unwrap().contains(&id));
    let snapshot = queue.snapshot(&id).await.unwrap().expect("stored");
    assert_eq!(snapshot.status, "scraping");
    assert_eq!(snapshot.meta, format!("{{\"id\":\"{id}\"}}"));
    assert_eq!((snapshot.queued, snapshot.leased), (3, 0));
    assert_eq!(counter(&snapshot, "admitted"), 3);
    assert!(queue.snapshot("no-such-job").await.unwrap().is_none());
    assert!(matches!(
        queue.lease("no-such-job", "c1", 4, LEASE).await.unwrap(),
        Leased::Ended
    ));
    queue.retire(&id).await.unwrap();
    assert!(!queue.active().await.unwrap().contains(&id));
}

both!(leases_hand_out_items_in_order_once);
async fn leases_hand_out_items_in_order_once(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b", "c"], 10).await;
    let first = lease(queue.as_ref(), &id, "c1", 2).await;
    assert_eq!(
        first.iter().map(|i| i.payload.as_str()).collect::<Vec<_>>(),
        ["payload of a", "payload of b"]
    );
    let second = lease(queue.as_ref(), &id, "c2", 5).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].payload, "payload of c");
    assert!(
        lease(queue.as_ref(), &id, "c3", 5).await.is_empty(),
        "all out"
    );
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!((snapshot.queued, snapshot.leased), (0, 3));
    assert_eq!(counter(&snapshot, "started"), 3);
    let tokens: BTreeSet<_> = first
        .iter()
        .chain(&second)
        .map(|i| &i.lease.token)
        .collect();
    assert_eq!(tokens.len(), 3, "each lease has its own token");
}

both!(an_expired_lease_is_reclaimed_and_the_old_holder_loses_it);
async fn an_expired_lease_is_reclaimed_and_the_old_holder_loses_it(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b"], 10).await;
    let dead = lease_for(queue.as_ref(), &id, "dead", 1, SHORT).await;
    let renewed = queue
        .renew(&id, std::slice::from_ref(&dead[0].lease), SHORT)
        .await
        .unwrap();
    assert_eq!(renewed.held, [true]);
    assert!(renewed.running);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let Leased::Items { items, reclaimed } = queue.lease(&id, "alive", 5, LEASE).await.unwrap()
    else {
        panic!("items");
    };
    assert_eq!(reclaimed, 1);
    assert_eq!(
        items.iter().map(|i| i.payload.as_str()).collect::<Vec<_>>(),
        ["payload of a", "payload of b"],
        "the reclaimed item goes first"
    );
    assert_eq!(items[0].lease.item, dead[0].lease.item);
    assert_ne!(items[0].lease.token, dead[0].lease.token);
    let renewed = queue
        .renew(&id, std::slice::from_ref(&dead[0].lease), LEASE)
        .await
        .unwrap();
    assert_eq!(renewed.held, [false], "the dead consumer's lease is gone");
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(
        counter(&snapshot, "started"),
        2,
        "a reclaim is not a new start"
    );
}

both!(a_redelivered_item_is_recorded_once);
async fn a_redelivered_item_is_recorded_once(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b"], 10).await;
    let slow = lease_for(queue.as_ref(), &id, "slow", 1, SHORT).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fast = lease(queue.as_ref(), &id, "fast", 1).await;
    assert_eq!(fast.len(), 1, "redelivered");
    // Both deliveries finish; whichever records first wins, the other changes nothing.
    let first = queue
        .record(&id, slow[0].lease.clone(), page("http://site/a"))
        .await
        .unwrap();
    assert!(
        matches!(
            first,
            Recorded::Stored {
                document: Some(0),
                completed: None,
                ..
            }
        ),
        "{first:?}"
    );
    let second = queue
        .record(&id, fast[0].lease.clone(), page("http://site/a"))
        .await
        .unwrap();
    assert_eq!(second, Recorded::Duplicate);
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(counter(&snapshot, "documents"), 1);
    assert_eq!(counter(&snapshot, "completed"), 1);
    assert_eq!(
        queue.documents(&id, 0, 10).await.unwrap(),
        vec![b"document http://site/a".to_vec()]
    );
    assert_eq!(
        (snapshot.queued, snapshot.leased),
        (1, 0),
        "b is still queued"
    );
}

both!(a_reclaimed_item_recorded_by_its_first_holder_is_not_handed_out_again);
async fn a_reclaimed_item_recorded_by_its_first_holder_is_not_handed_out_again(
    queue: Arc<dyn JobQueue>,
) {
    let id = job(queue.as_ref(), &["a", "b"], 10).await;
    let slow = lease_for(queue.as_ref(), &id, "slow", 1, SHORT).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The next lease reclaims "a" into the queue but takes only one item: "a" again.
    let other = lease(queue.as_ref(), &id, "other", 1).await;
    assert_eq!(other[0].lease.item, slow[0].lease.item);
    queue.release(&id, &[other[0].lease.clone()]).await.unwrap();
    // Back in the queue; the slow holder's result still counts, and takes it out.
    let recorded = queue
        .record(&id, slow[0].lease.clone(), page("http://site/a"))
        .await
        .unwrap();
    assert!(matches!(recorded, Recorded::Stored { .. }), "{recorded:?}");
    let rest = lease(queue.as_ref(), &id, "other", 5).await;
    assert_eq!(
        rest.iter().map(|i| i.payload.as_str()).collect::<Vec<_>>(),
        ["payload of b"]
    );
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(counter(&snapshot, "started"), 2);
}

both!(results_admit_new_items_store_pages_once_and_bound_errors);
async fn results_admit_new_items_store_pages_once_and_bound_errors(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a"], 10).await;
    let a = lease(queue.as_ref(), &id, "c", 1).await.remove(0);
    let error = |once: Option<&str>, text: &str| NewError {
        once: once.map(str::to_string),
        entry: text.to_string(),
    };
    let mut outcome = page("http://site/a");
    // "http://site/a" is this result's own key: a link back to a stored page is not queued.
    outcome.new_items = vec![
        item("a"),
        item("b"),
        item("c"),
        item("b"),
        item("http://site/a"),
    ];
    outcome.errors = vec![
        error(Some("trap"), "trap 1"),
        error(Some("trap"), "trap 2"),
        error(None, "plain"),
    ];
    outcome.max_errors = 2;
    let recorded = queue.record(&id, a.lease, outcome).await.unwrap();
    let Recorded::Stored {
        counters,
        completed,
        ..
    } = recorded
    else {
        panic!("{recorded:?}");
    };
    assert_eq!(completed, None, "b and c are queued");
    assert_eq!(
        counters.get("admitted"),
        Some(&3),
        "a was seen already, http://site/a is stored"
    );
    assert_eq!(counters.get("errors"), Some(&2));
    assert_eq!(
        queue.errors(&id, 0, 10).await.unwrap(),
        ["trap 1", "plain"],
        "a once-key stores once"
    );
    // b redirects onto a: its page is not stored again, but the item is done.
    let items = lease(queue.as_ref(), &id, "c", 5).await;
    assert_eq!(items.len(), 2);
    let mut more = page("http://site/a");
    more.errors = vec![error(None, "over the bound")];
    more.max_errors = 2;
    let recorded = queue
        .record(&id, items[0].lease.clone(), more)
        .await
        .unwrap();
    assert!(
        matches!(recorded, Recorded::Stored { document: None, .. }),
        "{recorded:?}"
    );
    assert_eq!(queue.errors(&id, 0, 10).await.unwrap().len(), 2);
    let recorded = queue
        .record(&id, items[1].lease.clone(), page("http://site/c"))
        .await
        .unwrap();
    assert!(
        matches!(recorded, Recorded::Stored { document: Some(1), completed: Some(ref s), .. } if s == "completed"),
        "{recorded:?}"
    );
    assert_eq!(queue.documents(&id, 0, 10).await.unwrap().len(), 2);
    assert_eq!(queue.documents(&id, 1, 2).await.unwrap().len(), 1);
    assert!(matches!(
        queue.lease(&id, "c", 1, LEASE).await.unwrap(),
        Leased::Ended
    ));
}

both!(the_limit_bounds_what_is_started_and_unstart_gives_a_slot_back);
async fn the_limit_bounds_what_is_started_and_unstart_gives_a_slot_back(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b", "c", "d"], 2).await;
    let items = lease(queue.as_ref(), &id, "c", 10).await;
    assert_eq!(items.len(), 2, "the limit");
    assert!(lease(queue.as_ref(), &id, "c", 10).await.is_empty());
    // robots.txt refused a: no fetch, so it does not use the limit up.
    let refused = Outcome {
        unstart: true,
        max_errors: 10,
        ..Outcome::default()
    };
    queue
        .record(&id, items[0].lease.clone(), refused)
        .await
        .unwrap();
    let next = lease(queue.as_ref(), &id, "c", 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, "payload of c");
    queue
        .record(&id, items[1].lease.clone(), page("b"))
        .await
        .unwrap();
    let last = queue
        .record(&id, next[0].lease.clone(), page("c"))
        .await
        .unwrap();
    assert!(
        matches!(last, Recorded::Stored { completed: Some(ref s), .. } if s == "completed"),
        "the limit reached and nothing out: done, with d still queued ({last:?})"
    );
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.queued, 1);
}

both!(a_job_whose_every_page_failed_has_failed);
async fn a_job_whose_every_page_failed_has_failed(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a"], 10).await;
    let a = lease(queue.as_ref(), &id, "c", 1).await.remove(0);
    let failed = Outcome {
        counts: vec![("completed".into(), 1), ("failed".into(), 1)],
        max_errors: 10,
        ..Outcome::default()
    };
    let recorded = queue.record(&id, a.lease, failed).await.unwrap();
    assert!(
        matches!(recorded, Recorded::Stored { completed: Some(ref s), .. } if s == "failed"),
        "{recorded:?}"
    );
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert!(
        snapshot
            .reason
            .unwrap()
            .contains("no page could be scraped")
    );
}

both!(cancel_while_items_are_leased_records_nothing_more);
async fn cancel_while_items_are_leased_records_nothing_more(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b", "c"], 10).await;
    let items = lease(queue.as_ref(), &id, "c", 2).await;
    assert!(
        queue
            .finish(&id, "cancelled", "cancelled", Some("stopped".into()))
            .await
            .unwrap()
    );
    assert!(
        !queue.finish(&id, "completed", "late", None).await.unwrap(),
        "once"
    );
    let renewed = queue
        .renew(&id, &[items[0].lease.clone()], LEASE)
        .await
        .unwrap();
    assert!(!renewed.running, "holders learn of the cancel at renewal");
    assert_eq!(
        queue
            .record(&id, items[0].lease.clone(), page("a"))
            .await
            .unwrap(),
        Recorded::Ended
    );
    assert!(matches!(
        queue.lease(&id, "c", 5, LEASE).await.unwrap(),
        Leased::Ended
    ));
    queue.release(&id, &[items[1].lease.clone()]).await.unwrap();
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.status, "cancelled");
    assert_eq!(snapshot.reason.as_deref(), Some("cancelled"));
    assert_eq!(counter(&snapshot, "documents"), 0);
    assert_eq!(queue.errors(&id, 0, 5).await.unwrap(), ["stopped"]);
    assert_eq!(snapshot.leased, 0, "every holder has let go");
}

both!(released_items_go_back_to_the_front_in_order);
async fn released_items_go_back_to_the_front_in_order(queue: Arc<dyn JobQueue>) {
    let id = job(queue.as_ref(), &["a", "b", "c"], 10).await;
    let items = lease(queue.as_ref(), &id, "c", 2).await;
    let refs: Vec<LeaseRef> = items.iter().map(|i| i.lease.clone()).collect();
    queue.release(&id, &refs).await.unwrap();
    // A stale token releases nothing.
    queue
        .release(
            &id,
            &[LeaseRef {
                item: refs[0].item,
                token: "someone-else:1".into(),
            }],
        )
        .await
        .unwrap();
    let again = lease(queue.as_ref(), &id, "d", 3).await;
    assert_eq!(
        again.iter().map(|i| i.payload.as_str()).collect::<Vec<_>>(),
        ["payload of a", "payload of b", "payload of c"]
    );
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(counter(&snapshot, "started"), 3);
}

both!(concurrent_consumers_record_every_item_exactly_once);
async fn concurrent_consumers_record_every_item_exactly_once(queue: Arc<dyn JobQueue>) {
    let keys: Vec<String> = (0..120).map(|n| format!("u{n}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let id = job(queue.as_ref(), &refs, 1000).await;
    let consumers = (0..4).map(|c| {
        let (queue, id) = (queue.clone(), id.clone());
        tokio::spawn(async move {
            let mut completions = 0;
            loop {
                let leased = queue.lease(&id, &format!("c{c}"), 3, LEASE).await.unwrap();
                let items = match leased {
                    Leased::Items { items, .. } if items.is_empty() => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Leased::Items { items, .. } => items,
                    Leased::Completed { .. } => {
                        completions += 1;
                        break;
                    }
                    Leased::Ended => break,
                };
                for leased in items {
                    // Every fifth item finds more work: a link to a page already queued.
                    let mut outcome = page(&leased.payload);
                    if leased.lease.item % 5 == 0 {
                        outcome.new_items = vec![item("u7")];
                    }
                    if let Recorded::Stored {
                        completed: Some(_), ..
                    } = queue.record(&id, leased.lease, outcome).await.unwrap()
                    {
                        completions += 1;
                    }
                }
            }
            completions
        })
    });
    let completions: usize = futures::future::join_all(consumers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(completions, 1, "exactly one caller completes the job");
    let snapshot = queue.snapshot(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.status, "completed");
    assert_eq!(counter(&snapshot, "documents"), 120);
    let documents = queue.documents(&id, 0, 200).await.unwrap();
    let distinct: BTreeSet<_> = documents.iter().collect();
    assert_eq!((documents.len(), distinct.len()), (120, 120));
}

/// The embedded queue after a restart: what was recorded is there, what was leased is queued
/// again, ended jobs stay ended, and a torn last entry is ignored.
#[tokio::test]
async fn the_embedded_queue_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (running, ended) = {
        let queue = MemoryJobs::open(dir.path()).unwrap();
        let running = job(&queue, &["a", "b", "c"], 10).await;
        let items = lease(&queue, &running, "old", 2).await;
        let mut outcome = page("http://site/a");
        outcome.new_items = vec![item("d")];
        outcome.errors = vec![NewError {
            once: None,
            entry: "an error".into(),
        }];
        queue
            .record(&running, items[0].lease.clone(), outcome)
            .await
            .unwrap();
        // items[1] ("b") is leased when the process stops.
        let ended = job(&queue, &["x"], 10).await;
        queue
            .finish(&ended, "cancelled", "cancelled", None)
            .await
            .unwrap();
        (running, ended)
    };
    // A process killed mid-append leaves half an entry behind.
    let journal = dir.path().join("jobs.journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&journal, bytes).unwrap();

    let queue = MemoryJobs::open(dir.path()).unwrap();
    let snapshot = queue.snapshot(&running).await.unwrap().unwrap();
    assert_eq!(snapshot.status, "scraping");
    assert_eq!((snapshot.queued, snapshot.leased), (3, 0), "b, c and d");
    assert_eq!(counter(&snapshot, "started"), 1, "only a was done");
    assert_eq!(counter(&snapshot, "documents"), 1);
    assert_eq!(queue.errors(&running, 0, 5).await.unwrap(), ["an error"]);
    let active = queue.active().await.unwrap();
    assert!(active.contains(&running) && active.contains(&ended));
    assert_eq!(
        queue.snapshot(&ended).await.unwrap().unwrap().status,
        "cancelled"
    );
    let rest = lease(&queue, &running, "new", 10).await;
    assert_eq!(
        rest.iter().map(|i| i.payload.as_str()).collect::<Vec<_>>(),
        ["payload of b", "payload of c", "payload of d"]
    );
    for item in rest {
        queue
            .record(&running, item.lease, page(&item.payload))
            .await
            .unwrap();
    }
    drop(queue);
    let queue = MemoryJobs::open(dir.path()).unwrap();
    let snapshot = queue.snapshot(&running).await.unwrap().unwrap();
    assert_eq!(snapshot.status, "completed");
    assert_eq!(counter(&snapshot, "documents"), 4);
    let expected: Vec<Vec<u8>> = [
        "http://site/a",
        "payload of b",
        "payload of c",
        "payload of d",
    ]
    .iter()
    .map(|key| format!("document {key}").into_bytes())
    .collect();
    assert_eq!(queue.documents(&running, 0, 10).await.unwrap(), expected);
    assert_eq!(
        queue.documents(&running, 1, 3).await.unwrap(),
        expected[1..3]
    );

    // The documents live in one file beside the journal, not in memory; each start rewrites it
    // under the next name and removes the old one.
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("documents."))
            .collect();
        names.sort();
        names
    };
    let before = files();
    assert_eq!(before.len(), 1, "{before:?}");
    let size = std::fs::metadata(dir.path().join(&before[0]))
        .unwrap()
        .len();
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(size as usize, total, "only what the jobs hold");
    drop(queue);
    let queue = MemoryJobs::open(dir.path()).unwrap();
    let after = files();
    assert!(
        after.len() == 1 && after != before,
        "{before:?} then {after:?}"
    );
    assert_eq!(queue.documents(&running, 0, 10).await.unwrap(), expected);
}
