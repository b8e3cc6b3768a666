//! Escalation: past the restart intensity the root supervisor stops, and the application ends
//! with an error (so `aurora serve` exits non-zero and the orchestrator restarts it).

mod common;

use aurora::startup::RunError;
use aurora_actors::fault::Fault;

use common::{Port, spawn_app_with};

#[tokio::test]
async fn exceeding_the_restart_intensity_stops_the_tree() {
    let app = spawn_app_with(|s| {
        s.actors.max_restarts = 2;
        s.actors.restart_window_secs = 60;
    })
    .await;
    let series = "aurora_actor_restarts_total{actor=\"router\"}";
    for restarts in 1..=2 {
        app.handles
            .router()
            .inject(Fault::PanicRouter)
            .await
            .unwrap();
        app.wait_for_metric(series, f64::from(restarts)).await;
        app.wait_ready().await;
    }
    let crawler = app.url(Port::Crawler, "/health");
    let client = app.client.clone();

    // The third crash within the window is one too many.
    app.handles
        .router()
        .inject(Fault::PanicRouter)
        .await
        .unwrap();
    match app.stopped().await {
        Err(RunError::Escalated { actor, reason }) => {
            assert_eq!(actor, "router");
            assert!(reason.contains("router panics"), "{reason}");
        }
        other => panic!("expected an escalation, got {other:?}"),
    }
    assert!(
        client.get(crawler).send().await.is_err(),
        "the listeners are closed once the tree has stopped"
    );
}
