//! The command line: `aurora serve` (the default) and `aurora scrape URL`.

use std::time::Duration;

use anyhow::Context;
use aurora_actors::model::{Formats, ScrapeRequest};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::core::scrape::ScrapedPage;
use crate::http::scrape::target_url;
use crate::settings::Settings;
use crate::startup::build_fetcher;

#[derive(Debug, Parser)]
#[command(
    name = "aurora",
    version,
    about = "Crawl the web, turn pages into searchable knowledge, answer questions with citations.",
    long_about = "Crawl the web, turn pages into searchable knowledge, answer questions with citations.\n\n\
        Configuration comes from config/default.toml, then config/$AURORA_ENV.toml, then \
        AURORA__SECTION__KEY environment variables (e.g. AURORA__SERVER__CORE_PORT=9090). \
        With no Redis or ChromaDB configured Aurora runs on embedded defaults."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the core API (:8080) and the Firecrawl-compatible crawler API (:8001) until SIGINT or
    /// SIGTERM. This is the default when no command is given.
    Serve,
    /// Scrape one page and print it — Markdown by default — on stdout.
    Scrape(ScrapeArgs),
    /// Manage embedding models.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Distil the fast static model (embedding.provider = "static") from the built-in one:
    /// every vocabulary token through MiniLM once, written in Model2Vec's format. About a minute.
    Distill {
        /// The built-in model's folder (default: embedding.model_dir).
        #[arg(long)]
        from: Option<std::path::PathBuf>,
        /// Where to write the static model (default: embedding.static_model_dir).
        #[arg(long)]
        to: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ScrapeArgs {
    /// The page: an absolute http(s) URL, or a bare host such as example.org/page.
    pub url: String,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Output::Markdown)]
    pub format: Output,
    /// Keep navigation, headers, footers and sidebars instead of only the main content.
    #[arg(long)]
    pub full_page: bool,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Extra request header sent to the target, as `Name: value`. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The main content as Markdown.
    Markdown,
    /// The cleaned HTML of the content.
    Html,
    /// The page as served.
    RawHtml,
    /// Every absolute link, one per line.
    Links,
    /// Everything, as the core API's JSON.
    Json,
}

/// `aurora model distill`.
pub fn distill(
    settings: &Settings,
    from: Option<std::path::PathBuf>,
    to: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let from = from.unwrap_or_else(|| settings.embedding.model_dir.clone());
    let to = to.unwrap_or_else(|| settings.embedding.static_model_dir.clone());
    eprintln!("distilling {} into {}", from.display(), to.display());
    let started = std::time::Instant::now();
    let mut last = 0;
    let done = crate::adapters::static_model::distill(&from, &to, |done, total| {
        let percent = done * 100 / total.max(1);
        if percent >= last + 10 {
            last = percent;
            eprintln!("  {percent:3}% ({done}/{total} tokens)");
        }
    })?;
    eprintln!(
        "wrote {} tokens x {} dimensions ({:.1} MB) in {:.0?}; use it with embedding.provider = \"static\"",
        done.tokens,
        done.dimension,
        done.bytes as f64 / 1e6,
        started.elapsed()
    );
    Ok(())
}

/// `aurora scrape`: one fetch and extraction with the configured fetcher — no tree, no model,
/// no data folder needed.
pub async fn scrape(settings: &Settings, args: ScrapeArgs) -> anyhow::Result<()> {
    let url = target_url(&args.url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("header `{h}` is not `Name: value`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let all = args.format == Output::Json;
    let request = ScrapeRequest {
        formats: Formats {
            markdown: all || args.format == Output::Markdown,
            html: all || args.format == Output::Html,
            raw_html: all || args.format == Output::RawHtml,
            links: all || args.format == Output::Links,
        },
        only_main_content: !args.full_page,
        headers,
        timeout: Duration::from_millis(args.timeout_ms),
        ..ScrapeRequest::new(url)
    };

    let fetcher = build_fetcher(settings)?;
    let page = aurora_actors::scraper::scrape(&fetcher, request).await?;
    if page.status_code >= 400 {
        eprintln!("aurora: {} answered HTTP {}", page.url, page.status_code);
    }
    for warning in &page.warnings {
        eprintln!("aurora: warning: {warning}");
    }
    let text = match args.format {
        Output::Markdown => page.markdown.unwrap_or_default(),
        Output::Html => page.html.unwrap_or_default(),
        Output::RawHtml => page.raw_html.unwrap_or_default(),
        Output::Links => page.links.unwrap_or_default().join("\n"),
        Output::Json => serde_json::to_string_pretty(&ScrapedPage::from(page))?,
    };
    println!("{text}");
    Ok(())
}
