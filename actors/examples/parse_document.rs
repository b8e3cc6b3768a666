//! Reads one document the way scrapes and uploads do, `ROUNDS` times, and reports its parts and
//! the speed: `cargo run --release -p aurora-actors --example parse_document -- FILE [ROUNDS]`.
//! `scripts/bench-documents` runs it on a real multi-page PDF.

use std::time::Instant;

use aurora_actors::ingest::document::{Hint, Limits, parse};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: parse_document FILE [ROUNDS]")?;
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let bytes = std::fs::read(&path)?;
    let hint = Hint {
        content_type: None,
        file_name: Some(&path),
    };
    let mut times = Vec::with_capacity(rounds);
    let mut last = None;
    for _ in 0..rounds {
        let started = Instant::now();
        let parsed = parse(&bytes, hint, &Limits::unbounded_size())?;
        times.push(started.elapsed().as_secs_f64());
        last = Some(parsed);
    }
    let parsed = last.ok_or("no rounds")?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let parts = parsed.parts.unwrap_or(1);
    println!(
        "{path}: {} bytes, {parts} parts, {} chars of Markdown; median of {rounds}: {median:.3} s, \
         {:.0} parts/s, {:.1} MB/s",
        bytes.len(),
        parsed.markdown.chars().count(),
        f64::from(parts) / median,
        bytes.len() as f64 / median / 1e6
    );
    Ok(())
}
