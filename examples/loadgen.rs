//! The load generator behind `scripts/bench-query`.
//!
//!   loadgen embed minilm|static MODEL_DIR QUESTIONS N_RESULTS
//!                                                 questions (one per line) → ChromaDB query bodies
//!                                                 (JSON lines), embedded by the built-in model
//!                                                 exactly as Aurora embeds a query
//!   loadgen run URL BODIES CONCURRENCY [REQUESTS] POSTs the bodies (JSON lines, each once, in
//!                                                 order) with CONCURRENCY in flight; prints JSON:
//!                                                 latency percentiles, throughput, errors
//!
//! Each body is sent once so that no cache (query embeddings, answers) flatters the figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aurora::adapters::local_model::MiniLm;
use aurora::adapters::static_model::StaticModel;
use aurora_actors::ports::{EmbedKind, Embedder};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["embed", kind, model, questions, n] => embed(kind, model, questions, n.parse()?).await,
        ["run", url, bodies, concurrency] => run(url, bodies, concurrency.parse()?, None).await,
        ["run", url, bodies, concurrency, requests] => {
            run(url, bodies, concurrency.parse()?, Some(requests.parse()?)).await
        }
        _ => bail!(
            "usage: loadgen embed minilm|static MODEL_DIR QUESTIONS N_RESULTS | loadgen run URL BODIES CONCURRENCY [REQUESTS]"
        ),
    }
}

async fn embed(kind: &str, dir: &str, questions: &str, n_results: usize) -> anyhow::Result<()> {
    let dir = std::path::Path::new(dir);
    let model: Box<dyn Embedder> = match kind {
        "minilm" => Box::new(MiniLm::new(dir, 32).map_err(anyhow::Error::msg)?),
        "static" => Box::new(StaticModel::load(dir).map_err(anyhow::Error::msg)?),
        other => bail!("unknown embedder `{other}`: minilm or static"),
    };
    let questions: Vec<String> = std::fs::read_to_string(questions)
        .context("reading the questions")?
        .lines()
        .map(str::to_string)
        .collect();
    let vectors = model
        .embed(&questions, EmbedKind::Query)
        .await
        .map_err(anyhow::Error::msg)?;
    for vector in vectors {
        let body = json!({
            "query_embeddings": [vector],
            "n_results": n_results,
            "include": ["documents", "metadatas", "distances"],
        });
        println!("{body}");
    }
    Ok(())
}

async fn run(
    url: &str,
    bodies: &str,
    concurrency: usize,
    requests: Option<usize>,
) -> anyhow::Result<()> {
    let mut bodies: Vec<String> = std::fs::read_to_string(bodies)
        .context("reading the bodies")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if let Some(requests) = requests {
        bodies.truncate(requests);
    }
    let bodies = Arc::new(bodies);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(300))
        .build()?;
    // The next body to send, shared by the workers.
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, bodies, next, url) = (
                client.clone(),
                bodies.clone(),
                next.clone(),
                url.to_string(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let sent = Instant::now();
                    let outcome = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match outcome {
                        Ok(response) => {
                            let status = response.status();
                            response.bytes().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    latencies.push(sent.elapsed().as_secs_f64());
                    errors += usize::from(!ok);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).map_or(0.0, |s| (s * 1e4).round() / 10.0)
    };
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "url": url,
            "concurrency": concurrency,
            "requests": latencies.len(),
            "errors": errors,
            "seconds": (seconds * 100.0).round() / 100.0,
            "rps": (latencies.len() as f64 / seconds * 10.0).round() / 10.0,
            "mean_ms": (mean * 1e4).round() / 10.0,
            "p50_ms": at(0.5),
            "p90_ms": at(0.9),
            "p99_ms": at(0.99),
        })
    );
    Ok(())
}
