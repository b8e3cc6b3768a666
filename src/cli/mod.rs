//! The command line: `aurora serve` (the default), `aurora scrape URL`, `aurora crawl URL`,
//! `aurora ask "QUESTION"` (in `ask`) and `aurora model distill`.

pub mod ask;

use std::time::Duration;

use anyhow::Context;
use aurora_actors::model::{Formats, ScrapeRequest};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::core::scrape::ScrapedPage;
use crate::http::scrape_input::target_url;
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
    /// Crawl a site with a live progress bar; optionally feed a collection and write the pages
    /// out as Markdown files.
    Crawl(CrawlArgs),
    /// Ask a question: a cited answer streamed to the terminal, sources under it. Against a
    /// running server with --server (key in AURORA_API_KEY), else in-process on the configured
    /// stores. Exit code 0 answered, 1 "I don't know", 2 an error.
    Ask(ask::AskArgs),
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

#[derive(Debug, Args)]
pub struct CrawlArgs {
    /// Where to start: an absolute http(s) URL, or a bare host such as example.org/docs/.
    pub url: String,
    /// Most pages to fetch.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Most links to follow from the start page.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Store the pages in this collection (created when missing) as they are crawled.
    #[arg(long, value_name = "COLLECTION")]
    pub ingest: Option<String>,
    /// Only URLs whose path matches one of these regexes. Repeatable.
    #[arg(long = "include", value_name = "REGEX")]
    pub include: Vec<String>,
    /// Leave out URLs whose path matches one of these regexes. Repeatable.
    #[arg(long = "exclude", value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Follow links outside the start URL's folder (the whole site).
    #[arg(long)]
    pub entire_domain: bool,
    /// Fetch what robots.txt disallows (only for sites you own).
    #[arg(long)]
    pub ignore_robots: bool,
    /// Write each page's Markdown into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
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
    let tools = aurora_actors::scraper::Tools {
        fetcher: &fetcher,
        browser: None,
        transcriber: None,
    };
    let page = aurora_actors::scraper::scrape(&tools, request).await?;
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

/// `aurora crawl`: the engine in-process (same settings as `serve`, so `--ingest` writes to the
/// configured stores), one crawl job, a progress bar on stderr, a summary at the end.
pub async fn crawl(settings: &Settings, args: CrawlArgs) -> anyhow::Result<bool> {
    use aurora_actors::crawler_pool::scope::ScopeRules;
    use aurora_actors::crawler_pool::{JobKind, JobSpec, JobStatus, SitemapMode};

    let url = target_url(&args.url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let regexes = |patterns: &[String], flag: &str| {
        patterns
            .iter()
            .map(|p| regex::Regex::new(p).with_context(|| format!("--{flag} `{p}`")))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let spec = JobSpec {
        kind: JobKind::Crawl,
        seeds: vec![url.clone()],
        scrape: ScrapeRequest::new(url),
        formats: Formats::default(),
        rules: ScopeRules {
            include_paths: regexes(&args.include, "include")?,
            exclude_paths: regexes(&args.exclude, "exclude")?,
            max_discovery_depth: args.depth,
            crawl_entire_domain: args.entire_domain,
            deduplicate_similar_urls: true,
            ..ScopeRules::default()
        },
        limit: args.limit.max(1),
        ignore_robots: args.ignore_robots,
        sitemap: SitemapMode::Include,
        delay: None,
        max_concurrency: None,
        ingest: args.ingest.clone(),
        webhook: None,
        idempotency_key: None,
    };
    let tree = crate::startup::spawn_engine(settings).await?;
    let crawler = tree.handles().crawler();
    let started = std::time::Instant::now();
    let job = crawler.start(spec).await?;

    let bar = indicatif::ProgressBar::new(job.total.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} pages  {per_sec}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let record = loop {
        let record = crawler.status(&job.id).await?;
        bar.set_length(record.total.max(1));
        bar.set_position(record.completed);
        bar.set_message(format!(
            "{} failed, {} errors",
            record.failed, record.errors
        ));
        if record.status != JobStatus::Scraping {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    bar.finish_and_clear();

    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut from = 0;
        while from < record.documents {
            let to = (from + 100).min(record.documents);
            for (n, page) in (from..).zip(crawler.pages(&job.id, from, to).await?) {
                let slug: String = page
                    .url
                    .path()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                let path = dir.join(format!("{n:05}{}.md", slug.trim_end_matches('-')));
                let text = format!(
                    "<!-- {} -->\n{}",
                    page.url,
                    page.markdown.unwrap_or_default()
                );
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            from = to;
        }
    }

    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} pages in {elapsed:.1} s ({:.0} pages/s), {} failed, {:.1} MB fetched",
        record.status.as_str(),
        record.documents,
        record.documents as f64 / elapsed.max(1e-9),
        record.failed,
        record.bytes as f64 / 1e6
    );
    if let Some(collection) = &record.collection {
        eprintln!(
            "ingested into `{collection}`: {} of {} pages (unchanged ones count as ingested)",
            record.ingested, record.ingest_sent
        );
    }
    if let Some(reason) = &record.end_reason {
        eprintln!("stopped: {reason}");
    }
    let errors = crawler.errors(&job.id).await?;
    for error in errors.iter().take(10) {
        eprintln!("  {} {}: {}", error.code, error.url, error.error);
    }
    if errors.len() > 10 {
        eprintln!("  … and {} more", errors.len() - 10);
    }
    if let Some(dir) = &args.out {
        eprintln!("pages written to {}", dir.display());
    }
    tree.shutdown().await;
    Ok(record.status == JobStatus::Completed)
}
