//! The production shape, for real: `docker-compose.yml` brings up two Aurora replicas behind
//! nginx, with Redis, ChromaDB and Prometheus, from the image `scripts/build-image` builds. Through
//! nginx: a login's token works on both replicas; each renders a script-built page with the
//! Chromium in its image; a rate limit holds across them; a crawl of a
//! 520-page site (served to the containers by a site container of the test's own) survives
//! `docker kill` of the replica doing most of it and a Redis restart (crawling pauses, `/ready`
//! says why), ending with every page exactly once, found by `/v1/search`; Prometheus sees both replicas up, then the dead one down with its alert raised.
//! The compose project is removed (containers, networks, volumes) however the test ends.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PAGES: usize = 520;
const PASSWORD: &str = "cluster-test-admin-password";

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to completion from the repository root; its stdout, panicking on failure.
fn run(command: &mut Command) -> String {
    let shown = format!("{command:?}");
    let out = command
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A compose project of the test's own; taken down with its volumes when dropped.
struct Cluster {
    project: String,
    env: Vec<(String, String)>,
    core: String,
    crawler: String,
    prometheus: String,
    _site: tempfile::TempDir,
}

impl Cluster {
    fn compose(&self) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .args(["-p", &self.project])
            .args([
                "-f",
                "docker-compose.yml",
                "-f",
                "tests/cluster/compose.test.yml",
            ])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    fn up(site: tempfile::TempDir) -> Cluster {
        // Published ports do not work on the test's internal network, but compose still asks
        // for them: free ones, so a user's stack on the default ports is never in the way.
        let (core, crawler, prometheus) = (free_port(), free_port(), free_port());
        let id = uuid::Uuid::new_v4().simple().to_string();
        // A /24 of its own, so two runs (or a user's stack) never collide.
        let subnet = 100 + (u16::from_str_radix(&id[..2], 16).unwrap_or(0) % 150);
        let prefix = format!("172.31.{subnet}");
        let env = vec![
            ("AURORA_CORE_PORT".to_string(), core.to_string()),
            ("AURORA_CRAWLER_PORT".to_string(), crawler.to_string()),
            ("PROMETHEUS_PORT".to_string(), prometheus.to_string()),
            ("AURORA_NET_PREFIX".to_string(), prefix.clone()),
            ("AURORA_ADMIN_PASSWORD".to_string(), PASSWORD.to_string()),
            (
                "AURORA_JWT_SECRET".to_string(),
                format!("cluster-test-secret-{id}"),
            ),
            (
                "AURORA_TEST_SITE".to_string(),
                site.path().display().to_string(),
            ),
        ];
        // nginx has a fixed address on the front network (docker-compose.yml).
        let nginx = format!("{prefix}.10");
        let mut cluster = Cluster {
            project: format!("aurora-test-{}", &id[..12]),
            env,
            core: format!("http://{nginx}:8080"),
            crawler: format!("http://{nginx}:8001"),
            prometheus: String::new(),
            _site: site,
        };
        run(cluster
            .compose()
            .args(["up", "-d", "--no-build", "--scale", "aurora=2"]));
        let prometheus = run(cluster.compose().args(["ps", "-q", "prometheus"]));
        let address = cluster
            .address(prometheus.trim())
            .expect("Prometheus running");
        cluster.prometheus = format!("http://{address}:9090");
        cluster
    }

    /// The address of a running container on the front network.
    fn address(&self, container: &str) -> Option<String> {
        let inspect = run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.State.Running}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            container,
        ]));
        let mut fields = inspect.split_whitespace();
        let prefix = format!("{}.", self.env[3].1);
        (fields.next() == Some("true"))
            .then(|| fields.find(|ip| ip.starts_with(&prefix)))
            .flatten()
            .map(str::to_string)
    }

    /// Container id and address (on the front network) of each running Aurora replica.
    fn replicas(&self) -> Vec<(String, String)> {
        run(self.compose().args(["ps", "-q", "aurora"]))
            .lines()
            .filter(|id| !id.trim().is_empty())
            .filter_map(|id| {
                let id = id.trim();
                self.address(id).map(|ip| (id.to_string(), ip))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut down = self.compose();
        down.args(["down", "-v", "--remove-orphans", "-t", "5"]);
        let _ = down.current_dir(root()).output();
    }
}

/// A site of `PAGES` pages: an index of sections, each linking to its pages, each page linking to
/// its neighbours, with enough varied prose for the knowledge base's quality filter.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    // Made-up words from syllables, picked by a small LCG per page: every page reads differently,
    // so the knowledge base's duplicate filter keeps them all.
    let syllables = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "do", "fe", "gi", "ha",
        "ju",
    ];
    let sections = PAGES / 20;
    let mut index =
        String::from("<html><head><title>Cluster site</title></head><body><h1>Index</h1>");
    for s in 0..sections {
        index.push_str(&format!(
            "<p><a href=\"/s{s}/index.html\">Section {s}</a></p>"
        ));
        let mut section =
            format!("<html><head><title>Section {s}</title></head><body><h1>Section {s}</h1>");
        for p in 0..20 {
            let n = s * 20 + p;
            section.push_str(&format!("<p><a href=\"/s{s}/p{p}.html\">Page {n}</a></p>"));
            let mut seed = (n as u64 + 1).wrapping_mul(6364136223846793005);
            let mut word = || {
                let mut made = String::new();
                for _ in 0..3 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    made.push_str(syllables[(seed >> 60) as usize]);
                }
                made
            };
            let mut text = String::new();
            for _ in 0..8 {
                let words: Vec<String> = (0..7).map(|_| word()).collect();
                text.push_str(&format!(
                    "The {} {} over {} shows {} {} near the {} {} tonight. ",
                    words[0], words[1], words[2], words[3], words[4], words[5], words[6]
                ));
            }
            let next = (p + 1) % 20;
            let page = format!(
                "<html><head><title>Page {n}</title></head><body><main><h1>Page {n}</h1>\
                 <p>Marker zq{n}marker. {text}</p>\
                 <a href=\"/s{s}/p{next}.html\">next</a> <a href=\"/index.html\">home</a>\
                 </main></body></html>"
            );
            std::fs::create_dir_all(dir.path().join(format!("s{s}"))).expect("dir");
            std::fs::write(dir.path().join(format!("s{s}/p{p}.html")), page).expect("page");
        }
        section.push_str("</body></html>");
        std::fs::write(dir.path().join(format!("s{s}/index.html")), section).expect("section");
    }
    index.push_str("</body></html>");
    std::fs::write(dir.path().join("index.html"), index).expect("index");
    // An application shell (linked from nowhere, so the crawl never sees it): its text exists
    // only once a browser runs its script.
    std::fs::write(
        dir.path().join("app.html"),
        r#"<!doctype html><html><head><title>App</title></head>
<body><div id="root"></div><script src="/app.js"></script></body></html>"#,
    )
    .expect("app");
    std::fs::write(
        dir.path().join("app.js"),
        "fetch('/data.json').then(r => r.json()).then(d => {\n\
         document.getElementById('root').innerHTML = '<main><h1>' + d.title + '</h1><p>' + d.body + '</p></main>';\n});\n",
    )
    .expect("script");
    std::fs::write(
        dir.path().join("data.json"),
        r#"{"title": "Rendered in the container", "body": "Chromium inside the image ran this page's script."}"#,
    )
    .expect("data");
    // Readable by the site container's nginx, whatever its user.
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir.path()));
    dir
}

/// Every URL the crawl must return: `/`, the sections and their pages (`/index.html` is `/`
/// after URL normalisation).
fn expected() -> BTreeSet<String> {
    let mut urls = BTreeSet::from(["http://site/".to_string()]);
    for s in 0..PAGES / 20 {
        urls.insert(format!("http://site/s{s}/index.html"));
        for p in 0..20 {
            urls.insert(format!("http://site/s{s}/p{p}.html"));
        }
    }
    urls
}

async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: not within {limit:?}");
}

async fn prometheus(client: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let mut url = url::Url::parse(&format!("{base}/api/v1/query")).expect("URL");
    url.query_pairs_mut().append_pair("query", query);
    let Ok(response) = client.get(url).send().await else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_crawl_outlives_a_killed_replica_behind_nginx() {
    run(&mut Command::new("scripts/build-image"));
    let cluster = Cluster::up(site());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    wait_until(
        "both replicas ready behind nginx",
        Duration::from_secs(240),
        async || {
            let ready = |base: String| {
                let http = http.clone();
                async move {
                    http.get(format!("{base}/ready"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                }
            };
            ready(cluster.core.clone()).await && ready(cluster.crawler.clone()).await
        },
    )
    .await;
    let replicas = cluster.replicas();
    assert_eq!(replicas.len(), 2, "{replicas:?}");

    // Log in through nginx; the token works on each replica (asked directly, not via nginx).
    let login: Value = http
        .post(format!("{}/v1/auth/login", cluster.core))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let token = login["access_token"].as_str().expect("a token").to_string();
    let bearer = format!("Bearer {token}");
    for (_, ip) in &replicas {
        let me = http
            .get(format!("http://{ip}:8080/v1/auth/me"))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("replica answers");
        assert_eq!(me.status(), 200, "the token works on {ip}");
    }

    // Each replica's image carries a browser: a page that only a script fills is rendered (smart
    // mode sends it to Chromium), asked of each replica directly.
    for (_, ip) in &replicas {
        let scraped: Value = http
            .post(format!("http://{ip}:8001/v1/scrape"))
            .header("authorization", &bearer)
            .timeout(Duration::from_secs(90))
            .json(&json!({"url": "http://site/app.html"}))
            .send()
            .await
            .expect("scrape")
            .json()
            .await
            .expect("JSON");
        let markdown = scraped["data"]["markdown"].as_str().unwrap_or_default();
        assert!(
            markdown.contains("Chromium inside the image ran this page's script."),
            "{ip}: {scraped}"
        );
    }

    // Five login attempts a minute per account, cluster-wide: nginx spreads eight attempts over
    // both replicas, and only five get as far as checking the password.
    let mut refused = 0;
    for _ in 0..8 {
        let status = http
            .post(format!("{}/v1/auth/login", cluster.core))
            .json(&json!({"username": "probe", "password": "wrong password"}))
            .send()
            .await
            .expect("login attempt")
            .status();
        assert!(status == 401 || status == 429, "{status}");
        refused += usize::from(status == 429);
    }
    assert_eq!(refused, 3, "the limit is shared, not per replica");

    // Prometheus sees both replicas.
    let up = "up{job=\"aurora\"}";
    wait_until(
        "Prometheus scraping both replicas",
        Duration::from_secs(60),
        async || {
            let results = prometheus(&http, &cluster.prometheus, up).await;
            results.len() == 2 && results.iter().all(|r| r["value"][1] == "1")
        },
    )
    .await;

    // A crawl that feeds the knowledge base.
    let started: Value = http
        .post(format!("{}/v1/crawl", cluster.crawler))
        .header("authorization", &bearer)
        .json(
            &json!({"url": "http://site/", "limit": 5000, "ignoreSitemap": true,
                      "ingest": {"collection": "cluster"}}),
        )
        .send()
        .await
        .expect("crawl started")
        .json()
        .await
        .expect("JSON");
    let id = started["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_string();
    let status = async |http: &reqwest::Client| -> Value {
        let Ok(response) = http
            .get(format!("{}/v1/crawl/{id}?limit=1", cluster.crawler))
            .header("authorization", &bearer)
            .send()
            .await
        else {
            return Value::Null;
        };
        response.json().await.unwrap_or_default()
    };
    wait_until(
        "a third of the crawl",
        Duration::from_secs(180),
        async || status(&http).await["completed"].as_u64().unwrap_or(0) >= (PAGES / 3) as u64,
    )
    .await;

    // Kill, for real, the replica holding most of the crawl's items right now.
    let mut busiest = (String::new(), String::new(), -1.0f64);
    for (container, ip) in &replicas {
        let metrics = http
            .get(format!("http://{ip}:8080/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix("aurora_crawl_items_in_flight "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if held > busiest.2 {
            busiest = (container.clone(), ip.clone(), held);
        }
    }
    let before = status(&http).await["completed"].as_u64().unwrap_or(0);
    run(Command::new("docker").args(["kill", &busiest.0]));
    let killed = Instant::now();
    wait_until(
        "the crawl going on after the kill",
        Duration::from_secs(120),
        async || status(&http).await["completed"].as_u64().unwrap_or(0) > before + 5,
    )
    .await;
    let resumed_after = killed.elapsed();

    // Redis restarted mid-crawl (a clean stop: the append-only file is flushed). While it is
    // away the surviving replicas pause fetching and say why on /ready; then the crawl goes on.
    let survivors: Vec<String> = replicas
        .iter()
        .filter(|(container, _)| *container != busiest.0)
        .map(|(_, ip)| ip.clone())
        .collect();
    let before_restart = status(&http).await["completed"].as_u64().unwrap_or(0);
    assert!(
        before_restart < expected().len() as u64,
        "the crawl ended before Redis could be restarted mid-way"
    );
    run(cluster.compose().args(["stop", "-t", "10", "redis"]));
    let paused = async |ip: &String| {
        let Ok(response) = http.get(format!("http://{ip}:8080/ready")).send().await else {
            return false;
        };
        response.status() == 503
            && response
                .text()
                .await
                .is_ok_and(|body| body.contains("crawling paused"))
    };
    wait_until(
        "/ready saying the crawl is paused while Redis is away",
        Duration::from_secs(60),
        async || {
            for ip in &survivors {
                if !paused(ip).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
    run(cluster.compose().args(["start", "redis"]));

    // Prometheus sees the dead replica down, with its alert pending or firing.
    let victim = format!("{}:8080", busiest.1);
    wait_until(
        "Prometheus seeing the replica down",
        Duration::from_secs(60),
        async || {
            let results = prometheus(&http, &cluster.prometheus, up).await;
            let down = results
                .iter()
                .any(|r| r["metric"]["instance"] == victim.as_str() && r["value"][1] == "0");
            let alerts = prometheus(
                &http,
                &cluster.prometheus,
                "ALERTS{alertname=\"AuroraReplicaDown\"}",
            )
            .await;
            down && !alerts.is_empty()
        },
    )
    .await;

    // The crawl completes with every page exactly once, through the kill and the restart.
    let mut last = Value::Null;
    wait_until(
        "the crawl to complete",
        Duration::from_secs(300),
        async || {
            last = status(&http).await;
            // An error envelope (a 503 while a replica reconnects to the restarted Redis) has
            // no status yet: keep asking.
            last["status"].is_string() && last["status"] != "scraping"
        },
    )
    .await;
    assert_eq!(last["status"], "completed", "{last}");
    let mut urls = Vec::new();
    let mut next = Some(format!("{}/v1/crawl/{id}", cluster.crawler));
    while let Some(url) = next {
        let page: Value = http
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await
            .expect("status page")
            .json()
            .await
            .expect("JSON");
        for document in page["data"].as_array().cloned().unwrap_or_default() {
            urls.push(
                document["metadata"]["sourceURL"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        next = page["next"].as_str().map(str::to_string);
    }
    let distinct: BTreeSet<String> = urls.iter().cloned().collect();
    assert_eq!(urls.len(), distinct.len(), "a page appears twice");
    let missing: Vec<_> = expected().difference(&distinct).cloned().collect();
    let extra: Vec<_> = distinct.difference(&expected()).cloned().collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );

    // The pages are in the knowledge base, found through nginx: the crawled site answers a
    // search, and one page picked by its source is there with its own words.
    let search = async |body: Value| -> Vec<Value> {
        let found: Value = http
            .post(format!("{}/v1/search", cluster.core))
            .header("authorization", &bearer)
            .json(&body)
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("JSON");
        found["hits"].as_array().cloned().unwrap_or_default()
    };
    let hits = search(json!({"query": "zq417marker", "collection": "cluster", "k": 5})).await;
    assert!(
        !hits.is_empty()
            && hits.iter().all(|hit| hit["source_url"]
                .as_str()
                .is_some_and(|url| url.starts_with("http://site/"))),
        "{hits:?}"
    );
    // Page 417 is /s20/p17.html. (Where a lexical-only match ranks among the dense ones is the
    // fusion's business, not this test's.)
    let page = "http://site/s20/p17.html";
    let hits = search(
        json!({"query": "zq417marker", "collection": "cluster", "k": 3,
                             "filter": {"source_url": page}}),
    )
    .await;
    assert!(
        hits.iter().any(|hit| hit["source_url"] == page
            && hit["text"]
                .as_str()
                .is_some_and(|t| t.contains("zq417marker"))),
        "{hits:?}"
    );
    println!(
        "cluster: the crawl went on {:.1} s after `docker kill` (at {before} pages) and through a \
         Redis restart (at {before_restart}); {} pages, 0 lost, 0 duplicated",
        resumed_after.as_secs_f64(),
        urls.len()
    );
}
