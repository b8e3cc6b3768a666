//! The supervision tree on in-process ports: no network, milliseconds per test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aurora_actors::ingest::document::DocumentError;
use aurora_actors::local::StaticSite;
use aurora_actors::model::ScrapeRequest;
use aurora_actors::ports::{FetchError, FetchRequest, FetchResponse, Fetcher, PostRequest};
use aurora_actors::scraper::ScrapeError;
use aurora_actors::{TreeConfig, spawn_tree};
use common::{config, ports};
use futures::future::BoxFuture;
use tokio::sync::Semaphore;

fn request(url: &str) -> ScrapeRequest {
    ScrapeRequest::new(url.parse().expect("test URL"))
}

#[tokio::test]
async fn scrapes_through_router_and_pool() {
    let site = StaticSite::new([
        (
            "http://site.test/",
            200,
            "text/html",
            "<title>Home</title><main><h1>Hello</h1><p>World</p></main>",
        ),
        (
            "http://site.test/doc.pdf",
            200,
            "application/pdf",
            "%PDF-1.7",
        ),
    ]);
    let tree = spawn_tree(ports(site), config()).await.unwrap();
    let router = tree.handles().router();

    let page = router.scrape(request("http://site.test/")).await.unwrap();
    assert_eq!(page.title.as_deref(), Some("Home"));
    assert_eq!(page.markdown.as_deref(), Some("# Hello\n\nWorld"));

    let missing = router
        .scrape(request("http://site.test/gone"))
        .await
        .unwrap();
    assert_eq!(missing.status_code, 404);

    // A damaged document is refused with its reason, not as a page of garbage.
    let pdf = router.scrape(request("http://site.test/doc.pdf")).await;
    assert!(
        matches!(
            pdf,
            Err(ScrapeError::Document(DocumentError::Corrupt {
                kind: "PDF",
                ..
            }))
        ),
        "{pdf:?}"
    );

    let checks = tree.handles().readiness().await;
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    tree.shutdown().await;
}

/// Holds every fetch until the test lets it go, counting the fetches that reached it.
struct Gate {
    open: Arc<Semaphore>,
    arrived: Arc<AtomicUsize>,
}

impl Fetcher for Gate {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, FetchError>> {
        Box::pin(async move {
            self.arrived.fetch_add(1, Ordering::SeqCst);
            let _pass = self.open.acquire().await.expect("gate open");
            Ok(FetchResponse {
                final_url: request.url,
                status: 200,
                content_type: Some("text/html".to_string()),
                body: b"<p>through</p>".to_vec(),
                truncated: false,
                redirects: Vec::new(),
                retry_after: None,
            })
        })
    }

    fn post(&self, _: PostRequest) -> BoxFuture<'_, Result<u16, FetchError>> {
        Box::pin(async { Ok(200) })
    }
}

#[tokio::test]
async fn sheds_load_beyond_max_in_flight_instead_of_queueing() {
    let gate = Arc::new(Semaphore::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let tree = spawn_tree(
        ports(Gate {
            open: gate.clone(),
            arrived: arrived.clone(),
        }),
        TreeConfig {
            max_in_flight: 2,
            ..config()
        },
    )
    .await
    .unwrap();
    let router = tree.handles().router();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { router.scrape(request("http://held.test/")).await })
        })
        .collect();
    while arrived.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let third = router.scrape(request("http://extra.test/")).await;
    assert_eq!(third.unwrap_err(), ScrapeError::Overloaded);

    gate.add_permits(100);
    for handle in held {
        let page = handle.await.unwrap().unwrap();
        assert_eq!(page.markdown.as_deref(), Some("through"));
    }
    // Capacity is back once they are answered.
    assert!(router.scrape(request("http://after.test/")).await.is_ok());
    tree.shutdown().await;
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn past_the_intensity_the_tree_escalates() {
    use aurora_actors::fault::Fault;
    use aurora_actors::supervisor::TreeExit;

    let mut config = config();
    config.restart.max_restarts = 1;
    // Long enough to see the router missing between crash and restart.
    config.restart.backoff_initial = Duration::from_millis(200);
    let mut tree = spawn_tree(ports(StaticSite::default()), config)
        .await
        .unwrap();
    let handles = tree.handles();
    let router = handles.router();
    let all_ok = || async { handles.readiness().await.iter().all(|c| c.ok) };
    router.inject(Fault::PanicRouter).await.unwrap(); // restart 1: within budget
    while all_ok().await {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while !all_ok().await {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    router.inject(Fault::PanicRouter).await.unwrap(); // restart 2: one too many
    let exit = tokio::time::timeout(Duration::from_secs(5), tree.stopped())
        .await
        .expect("tree stops");
    assert!(
        matches!(exit, TreeExit::Escalated { ref actor, .. } if actor == "router"),
        "{exit:?}"
    );
}
