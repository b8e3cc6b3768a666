//! Supervision: a test-only fault crashes each supervised actor in turn; it is restarted, the
//! next HTTP request succeeds, and `aurora_actor_restarts_total` counted the restart.
//! (Its own test binary, so no other test's restarts share these counters.)

mod common;

use aurora_actors::fault::Fault;
use serde_json::json;

use common::site::spawn_site;
use common::{Port, spawn_app};

#[tokio::test]
async fn each_crashed_actor_is_restarted_and_serves_again() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let scrape = || async {
        app.post_json(
            Port::Crawler,
            "/v1/scrape",
            json!({"url": site.url("/article")}),
        )
        .await
    };
    assert_eq!(scrape().await.0, 200);

    for (fault, actor) in [
        (Fault::PanicRouter, "router"),
        (Fault::PanicScraperWorker, "scraper_worker"),
        (Fault::KillScraperPool, "scraper"),
        (Fault::PanicIngestWorker, "ingest_worker"),
        (Fault::PanicRagWorker, "rag_worker"),
        (Fault::PanicSessionWorker, "session_worker"),
        (Fault::PanicRouter, "router"),
    ] {
        let series = format!("aurora_actor_restarts_total{{actor=\"{actor}\"}}");
        let before = app
            .metric(&series)
            .await
            .expect("series exported from the start");
        app.handles
            .router()
            .inject(fault)
            .await
            .expect("fault delivered");
        app.wait_for_metric(&series, before + 1.0).await;
        app.wait_ready().await;
        let (status, body) = scrape().await;
        assert_eq!(status, 200, "after {fault:?}: {body}");
        assert!(
            body["data"]["markdown"]
                .as_str()
                .unwrap()
                .contains("northern lights")
        );
        let (status, body) = app
            .post_json(
                Port::Core,
                "/v1/auth/login",
                json!({"username": "admin", "password": common::ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "login after {fault:?}: {body}");
    }

    // Requests that arrive while the pool is being restarted wait for it instead of failing.
    app.handles
        .router()
        .inject(Fault::KillScraperPool)
        .await
        .unwrap();
    let (status, body) = scrape().await;
    assert_eq!(status, 200, "{body}");

    app.shutdown().await.expect("clean shutdown after restarts");
}
