//! The `aurora` binary itself: help, `aurora scrape`, configuration errors, and a graceful
//! SIGTERM that lets an in-flight request finish and exits 0.

mod common;

use common::text;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use common::crawl_site::spawn_crawl_site;
use common::site::spawn_site;
use common::trap::Trap;

/// The binary with the test configuration (`config/test.toml`).
fn aurora() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aurora"));
    command
        .env(
            "AURORA_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("AURORA_ENV", "test")
        .env("AURORA__AUTH__ADMIN_PASSWORD", "test-admin-password")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

/// Reads a JSON-logging server's output until it serves; its core and crawler addresses.
async fn serving<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> (String, String) {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("server starts")
            .expect("readable output")
            .expect("server keeps running");
        let log: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        if log["message"] == "Aurora is serving" {
            let address = |port: &str| log[port].as_str().expect("an address").to_string();
            return (address("core"), address("crawler"));
        }
    }
}

#[tokio::test]
async fn help_explains_both_commands() {
    let out = aurora().arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("serve") && help.contains("scrape"), "{help}");
    let out = aurora().args(["scrape", "--help"]).output().await.unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--format") && help.contains("--full-page"),
        "{help}"
    );
}

#[tokio::test]
async fn crawl_runs_a_job_writes_pages_and_summarises() {
    let site = spawn_crawl_site(None).await;
    let data = tempfile::tempdir().unwrap();
    let out_dir = data.path().join("pages");
    let out = aurora()
        .env("AURORA__DATA_DIR", data.path())
        .env("AURORA__CRAWLER__PER_HOST_RPS", "0")
        .args([
            "crawl",
            &site.url("/docs/s2/"),
            "--limit",
            "20",
            "--exclude",
            "p1[0-9]",
        ])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("completed: 20 pages"), "{stderr}");
    let written = std::fs::read_dir(&out_dir).unwrap().count();
    assert_eq!(written, 20);
    let excluded = |p: &str| p.starts_with("/docs/s2/p1") && p != "/docs/s2/p1.html";
    assert!(
        !site.requests().iter().any(|(_, p)| excluded(p)),
        "--exclude obeyed"
    );

    let out = aurora()
        .args(["crawl", &site.url("/"), "--include", "(bad"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--include `(bad`"));
}

#[tokio::test]
async fn scrape_prints_markdown_on_stdout() {
    let site = spawn_site().await;
    let out = aurora()
        .args(["scrape", &site.url("/article")])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("# The northern lights"), "{stdout}");
    assert!(!stdout.contains("About us"));

    let out = aurora()
        .args(["scrape", &site.url("/article"), "--format", "links"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&site.url("/about")));
}

#[tokio::test]
async fn scrape_failures_exit_non_zero_with_the_reason() {
    let trap = Trap::spawn().await;
    let out = aurora()
        .args(["scrape", &trap.url("/")])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.2 is a loopback address"),
        "{stderr}"
    );
    trap.assert_untouched();
}

#[tokio::test]
async fn bad_configuration_is_refused_naming_the_key() {
    let out = aurora()
        .env("AURORA__SERVER__CORE_PORT", "eighty")
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("core_port"), "{stderr}");
    assert!(stderr.contains("AURORA__SERVER__CORE_PORT"), "{stderr}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let site = spawn_site().await;
    let mut server = aurora()
        .arg("serve")
        // Loopback only (the test overlay), so running without authentication is allowed.
        .env("AURORA__AUTH__ENABLED", "false")
        .env("AURORA__LOG__LEVEL", "info")
        .env("AURORA__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let (core, crawler) = serving(&mut lines).await;
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let slow = tokio::spawn({
        let client = client.clone();
        let body = serde_json::json!({"url": site.url("/slow/1500"), "timeout": 10000});
        async move {
            client
                .post(format!("http://{crawler}/v1/scrape"))
                .body(body.to_string())
                .send()
                .await
        }
    });
    // Wait until the server is actually serving it.
    let in_flight = "aurora_http_requests_in_flight{port=\"crawler\"} 1";
    for _ in 0..500 {
        let metrics = client
            .get(format!("http://{core}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(in_flight) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let pid = server.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());

    let response = slow.await.unwrap().expect("in-flight request is answered");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(text(&body["data"]["markdown"]).contains("Worth the wait"));

    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("server exits after draining")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        client
            .get(format!("http://{core}/health"))
            .send()
            .await
            .is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn a_first_start_generates_the_admin_password_once_and_keeps_it_private() {
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let mut command = aurora();
        command
            .arg("serve")
            .env_remove("AURORA__AUTH__ADMIN_PASSWORD")
            .env("AURORA__DATA_DIR", data.path())
            .env("AURORA__LOG__LEVEL", "info")
            .env("AURORA__LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let mut server = start().spawn().unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let (core, _) = serving(&mut stdout).await;
    let file = data.path().join("admin-password");
    let password = std::fs::read_to_string(&file).unwrap();
    assert!(password.len() >= 32, "a long random password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let login = client
        .post(format!("http://{core}/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token: serde_json::Value = login.json().await.unwrap();
    let access = token["access_token"].as_str().unwrap();
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().unwrap().to_string()])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let output = server.wait_with_output().await.unwrap();
    // Shown once on stderr; never in the logs, and neither is the token.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches(password.as_str()).count(), 1, "{stderr}");
    let mut logs = String::from_utf8_lossy(&output.stdout).into_owned();
    while let Ok(Some(line)) = stdout.next_line().await {
        logs.push_str(&line);
    }
    assert!(!logs.contains(password.as_str()) && !logs.contains(access));

    // The second start finds the admin and says nothing.
    let mut output = start().spawn().unwrap();
    let pid = output.id().unwrap().to_string();
    serving(&mut BufReader::new(output.stdout.take().unwrap()).lines()).await;
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let again = output.wait_with_output().await.unwrap();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("generated password"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), password);
}

/// A running server with one collection built from the generated site, for `aurora ask`.
/// An `ask` that found its answer: exit code 0 and the topic named; its standard output.
fn answered(out: &std::process::Output, context: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}\n{context}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("topic3x3"), "{stdout}");
    stdout
}

async fn server_with_topics(data: &std::path::Path) -> (tokio::process::Child, String) {
    let mut server = aurora()
        .arg("serve")
        .env("AURORA__DATA_DIR", data)
        .env("AURORA__LOG__LEVEL", "info")
        .env("AURORA__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut lines = BufReader::new(server.stdout.take().expect("piped stdout")).lines();
    let (core, _) = serving(&mut lines).await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (server, format!("http://{core}"))
}

#[tokio::test]
async fn ask_streams_a_cited_answer_from_a_server_and_in_process() {
    let site = spawn_crawl_site(None).await;
    let data = tempfile::tempdir().unwrap();
    // Build the collection in-process (the crawl command), on the data folder both use.
    let out = aurora()
        .env("AURORA__DATA_DIR", data.path())
        .env("AURORA__CRAWLER__PER_HOST_RPS", "0")
        // The generated pages share most of their words: with the near-duplicate filter on, which
        // few of them get in depends on the order the crawl happened to finish them in.
        .env("AURORA__INGEST__NEAR_DUPLICATES", "false")
        .args(["crawl", &site.url("/docs/s3/"), "--limit", "60"])
        .args(["--ingest", "topics"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the crawl reports (pages, ingested, errors), shown if the answers below fail.
    let crawled = String::from_utf8_lossy(&out.stderr).into_owned();

    // In-process, on the embedded stores.
    let out = aurora()
        .env("AURORA__DATA_DIR", data.path())
        .env_remove("AURORA_SERVER")
        .args([
            "ask",
            "Which page is about topic3x3?",
            "--collection",
            "topics",
        ])
        .output()
        .await
        .unwrap();
    let stdout = answered(&out, &format!("the crawl said:\n{crawled}"));
    assert!(
        stdout.contains("Sources:") && stdout.contains("\n  ["),
        "{stdout}"
    );
    assert!(stdout.contains(&site.url("/docs/s3/p3.html")), "{stdout}");
    // Not a terminal: no escape sequences in the output.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");

    // "I don't know": exit code 1, said as such.
    let out = aurora()
        .env("AURORA__DATA_DIR", data.path())
        .args(["ask", "How many moons does Zorblax have?", "-c", "topics"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Against a running server with an API key from the environment.
    let (mut server, core) = server_with_topics(data.path()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let tokens: serde_json::Value = client
        .post(format!("{core}/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "test-admin-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let key: serde_json::Value = client
        .post(format!("{core}/v1/auth/keys"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"name": "cli", "role": "reader"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let out = aurora()
        .env("AURORA_API_KEY", &key)
        .args([
            "ask",
            "Which page is about topic3x3?",
            "--collection",
            "topics",
            "--server",
            &core,
        ])
        .output()
        .await
        .unwrap();
    let stdout = answered(&out, "");
    assert!(stdout.contains(&site.url("/docs/s3/p3.html")), "{stdout}");

    // A bad key: a clear error and exit code 2.
    let out = aurora()
        .env("AURORA_API_KEY", "aur_not-a-key")
        .args([
            "ask",
            "Which page is about topic3x3?",
            "-c",
            "topics",
            "--server",
            &core,
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("AURORA_API_KEY"),
        "{stderr}"
    );
    // An unknown collection: the server's reason.
    let out = aurora()
        .env("AURORA_API_KEY", &key)
        .args(["ask", "anything", "-c", "nothing-here", "--server", &core])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing-here"));
    server.kill().await.unwrap();
}
