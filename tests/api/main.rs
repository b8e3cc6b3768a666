//! Black-box tests of the whole application on ephemeral ports, against real services.

#[path = "../common/mod.rs"]
mod common;

mod answers;
mod auth;
mod backends;
mod bad_input;
mod browser;
mod chat;
mod crawl;
mod documents;
mod durable;
mod knowledge;
mod llm;
mod observability;
mod scrape;
mod web;
mod webhooks;
