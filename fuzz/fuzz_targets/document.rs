//! Any bytes through the Document-from-bytes step scrapes, crawls and uploads use: a document or
//! a clean error, never a panic, a hang or unbounded memory (libFuzzer's -timeout and
//! -rss_limit_mb catch the last two).
#![no_main]

use std::time::Duration;

use aurora_actors::ingest::document::{Hint, Limits, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let limits = Limits {
        deadline: Duration::from_secs(5),
        ..Limits::default()
    };
    let _ = parse(bytes, Hint::default(), &limits);
});
