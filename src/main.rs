//! `aurora`: parse the command line, load settings, start telemetry, run.

use aurora::cli::{Cli, Command, ModelCommand};
use aurora::settings::Settings;
use aurora::startup::{Application, shutdown_signal};
use aurora::telemetry::{self, LogTarget};
use clap::Parser;

/// jemalloc instead of glibc malloc: extraction builds and drops a DOM of megabytes per page on
/// the blocking threads, and glibc's arenas kept that memory after each crawl (RSS rose by ~70 MB
/// per crawl of python3.11-doc). jemalloc, purging freed pages after 100 ms
/// (`.cargo/config.toml`), falls back to what is really held.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init_logging(&settings.log, LogTarget::Stdout)?;
            let app = Application::build(settings).await?;
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Scrape(args) => {
            // stdout carries the page; logs go to stderr and only when something is wrong.
            telemetry::init_logging(&settings.log, LogTarget::QuietStderr)?;
            aurora::cli::scrape(&settings, args).await?;
        }
        Command::Crawl(args) => {
            telemetry::init_logging(&settings.log, LogTarget::QuietStderr)?;
            if !aurora::cli::crawl(&settings, args).await? {
                std::process::exit(1);
            }
        }
        Command::Ask(args) => {
            telemetry::init_logging(&settings.log, LogTarget::QuietStderr)?;
            match aurora::cli::ask::ask(&settings, args).await {
                Ok(asked) => std::process::exit(asked.exit_code()),
                Err(error) => {
                    eprintln!("aurora: {error:#}");
                    std::process::exit(2);
                }
            }
        }
        Command::Model(ModelCommand::Distill { from, to }) => {
            telemetry::init_logging(&settings.log, LogTarget::QuietStderr)?;
            aurora::cli::distill(&settings, from, to)?;
        }
    }
    Ok(())
}
