//! The deployment files are valid as their own tools see them: hadolint finds nothing above info
//! in the Dockerfile, docker-compose accepts the compose file, promtool accepts Prometheus'
//! configuration and alert rules, and nginx accepts the load balancer's configuration. (The
//! cluster they describe is exercised by the cluster test.)

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `command` from the repository root; its combined output, asserting it succeeded.
fn passes(command: &mut Command) -> String {
    let shown = format!("{command:?}");
    let out = command
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (scripts/setup installs the tool)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown} failed:\n{text}");
    text
}

#[test]
fn hadolint_finds_nothing_above_info_in_the_dockerfile() {
    let hadolint = std::env::var("AURORA_TEST_HADOLINT").unwrap_or_else(|_| "hadolint".into());
    passes(Command::new(hadolint).args(["--failure-threshold", "warning", "Dockerfile"]));
}

#[test]
fn the_compose_file_is_valid_and_only_the_edge_publishes_ports() {
    passes(Command::new("docker-compose").args(["-f", "docker-compose.yml", "config", "-q"]));
    let services = passes(Command::new("docker-compose").args([
        "-f",
        "docker-compose.yml",
        "config",
        "--services",
    ]));
    for service in ["aurora", "redis", "chroma", "nginx", "prometheus"] {
        assert!(
            services.lines().any(|s| s == service),
            "{service}: {services}"
        );
    }
    let normalised =
        passes(Command::new("docker-compose").args(["-f", "docker-compose.yml", "config"]));
    // nginx (both Aurora ports) and Prometheus (its UI) publish; Redis, ChromaDB and the
    // replicas do not.
    let published = normalised
        .lines()
        .filter(|line| line.trim() == "ports:")
        .count();
    assert_eq!(published, 2, "{normalised}");
}

#[test]
fn promtool_accepts_the_prometheus_config_and_alert_rules() {
    passes(Command::new("promtool").args(["check", "config", "config/prometheus.yml"]));
    let rules = passes(Command::new("promtool").args(["check", "rules", "config/alerts.yml"]));
    assert!(rules.contains("SUCCESS"), "{rules}");
}

#[test]
fn nginx_accepts_the_load_balancer_config() {
    let prefix = tempfile::tempdir().expect("temp dir");
    let config = root().join("config/nginx.conf");
    passes(
        Command::new("nginx")
            .arg("-t")
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(format!("{}/", prefix.path().display())),
    );
}
