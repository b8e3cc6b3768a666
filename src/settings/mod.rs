//! Typed, layered settings. Layers, later wins: the `config/default.toml` compiled into the
//! binary → `$AURORA_CONFIG_DIR/default.toml` → `$AURORA_CONFIG_DIR/$AURORA_ENV.toml` →
//! `AURORA__SECTION__KEY` environment variables. Unknown keys are errors (a typo must not
//! silently fall back to a default), and [`Settings::validate`] names the key that is wrong.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The defaults, always present even when the binary runs far from its config folder.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value could not be read or has the wrong type; `origin` says where it came from.
    #[error("configuration key `{key}` (from {origin}): {reason}")]
    Load {
        key: String,
        origin: String,
        reason: String,
    },
    #[error("configuration: AURORA_ENV={env} but {path} does not exist")]
    MissingOverlay { env: String, path: PathBuf },
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub log: LogSettings,
    pub actors: ActorSettings,
    pub router: RouterSettings,
    pub scraper: ScraperSettings,
    pub browser: BrowserSettings,
    pub fetch: FetchSettings,
    pub embedding: EmbeddingSettings,
    pub ingest: IngestSettings,
    pub search: SearchSettings,
    pub answer: AnswerSettings,
    pub generator: GeneratorSettings,
    pub transcription: TranscriptionSettings,
    pub crawler: CrawlerSettings,
    pub auth: AuthSettings,
    pub redis: RedisSettings,
    pub chroma: ChromaSettings,
}

mod convert;
mod sections;
mod validate;

pub use sections::*;

/// Keys whose values must come from the environment (a config file may be committed).
const SECRETS: [&str; 8] = [
    "auth.admin_password",
    "auth.jwt_secret",
    "auth.metrics_token",
    "generator.openai.api_key",
    "generator.gemini.api_key",
    "embedding.openai.api_key",
    "embedding.gemini.api_key",
    "transcription.openai.api_key",
];

impl Settings {
    /// Loads from the process environment: `AURORA_CONFIG_DIR` (default `./config`),
    /// `AURORA_ENV` (no overlay when unset) and `AURORA__*` overrides.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var_os("AURORA_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("AURORA_ENV").ok().filter(|e| !e.is_empty());
        Self::from_figment(Self::figment(&dir, env.as_deref())?)
    }

    /// The layered sources, without extracting them (tests add their own layers on top).
    pub fn figment(config_dir: &Path, env: Option<&str>) -> Result<Figment, SettingsError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        // The folder's own default.toml is optional: the binary carries the defaults.
        let local_defaults = config_dir.join("default.toml");
        if local_defaults.is_file() {
            figment = figment.merge(Toml::file_exact(local_defaults));
        }
        if let Some(env) = env {
            let path = config_dir.join(format!("{env}.toml"));
            if !path.is_file() {
                return Err(SettingsError::MissingOverlay {
                    env: env.to_string(),
                    path,
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Ok(figment.merge(Env::prefixed("AURORA__").split("__")))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        for key in SECRETS {
            let from_file = figment
                .find_metadata(key)
                .and_then(|meta| meta.source.as_ref())
                .is_some_and(|source| source.file_path().is_some());
            let set = figment
                .find_value(key)
                .ok()
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
            if from_file && set {
                return Err(SettingsError::Invalid {
                    key,
                    reason: format!(
                        "secrets are read from the environment only, never from a file: set AURORA__{}",
                        key.replace('.', "__").to_ascii_uppercase()
                    ),
                });
            }
        }
        let settings: Settings = figment.extract().map_err(SettingsError::from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot; the error names the key. Each section checks itself
    /// (`validate.rs`); a check that spans sections lives with the section it names.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.server.validate()?;
        self.log.validate()?;
        self.actors.validate()?;
        self.router.validate()?;
        self.scraper.validate()?;
        self.browser.validate()?;
        self.fetch.validate()?;
        self.embedding.validate()?;
        self.ingest.validate()?;
        self.search.validate()?;
        self.crawler.validate()?;
        self.answer.validate()?;
        self.generator.validate()?;
        self.redis.validate()?;
        self.chroma.validate()?;
        self.auth.validate(&self.server)
    }
}

impl SettingsError {
    /// figment reports `key "SERVER.CORE_PORT" in `AURORA__` environment variable(s)`; say
    /// instead which key and which variable or file, in the names the docs use.
    fn from_figment(error: figment::Error) -> Self {
        let key = error.path.join(".").to_ascii_lowercase();
        let origin = match &error.metadata {
            Some(meta) if meta.name.contains("environment") => {
                format!(
                    "environment variable AURORA__{}",
                    error.path.join("__").to_ascii_uppercase()
                )
            }
            Some(meta) => match &meta.source {
                Some(source) => source.to_string(),
                None => meta.name.to_string(),
            },
            None => "configuration".to_string(),
        };
        let key = if key.is_empty() {
            "(root)".to_string()
        } else {
            key
        };
        SettingsError::Load {
            key,
            origin,
            reason: error.kind.to_string(),
        }
    }
}

#[cfg(test)]
// figment's Jail dictates the closures' `Result<(), figment::Error>`.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail, env: Option<&str>) -> Result<Settings, SettingsError> {
        Settings::from_figment(Settings::figment(jail.directory(), env)?)
    }

    #[test]
    fn defaults_are_valid_and_match_the_documented_table() {
        Jail::expect_with(|jail| {
            let s = load_in(jail, None).expect("defaults load");
            assert_eq!(s.server.host.to_string(), "0.0.0.0");
            assert_eq!((s.server.core_port, s.server.crawler_port), (8080, 8001));
            assert_eq!(s.data_dir, PathBuf::from("./data"));
            assert!(s.redis.url.is_empty() && s.chroma.url.is_empty());
            assert!(s.fetch.allow_private.is_empty());
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "default.toml",
                "[server]\ncore_port = 1111\ncrawler_port = 2222",
            )?;
            jail.create_file("staging.toml", "[server]\ncore_port = 3333")?;
            jail.set_env("AURORA__SERVER__CRAWLER_PORT", "4444");
            jail.set_env("AURORA__FETCH__ALLOW_PRIVATE", "127.0.0.1, 10.0.0.0/8");
            let s = load_in(jail, Some("staging")).expect("loads");
            assert_eq!((s.server.core_port, s.server.crawler_port), (3333, 4444));
            assert_eq!(s.fetch.allow_private, "127.0.0.1, 10.0.0.0/8");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SERVER__CORE_PORT", "eighty");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("core_port"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SCRAPER__WORKERS", "0");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("scraper.workers"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__FETCH__ALLOW_PRIVATE", "10.0.0.0/99");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("fetch.allow_private"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SEARCH__LEXICAL_WEIGHT", "-0.5");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("search.lexical_weight"), "{err}");
            jail.set_env("AURORA__SEARCH__LEXICAL_WEIGHT", "0");
            jail.set_env("AURORA__SEARCH__DENSE_WEIGHT", "0");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("search.dense_weight"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__REDIS__URL", "http://localhost:6379");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("redis.url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn auth_off_refuses_a_non_loopback_address_unless_forced() {
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__AUTH__ENABLED", "false");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("auth.enabled"), "{err}");
            jail.set_env("AURORA__SERVER__HOST", "127.0.0.1");
            assert!(load_in(jail, None).is_ok());
            jail.set_env("AURORA__SERVER__HOST", "0.0.0.0");
            jail.set_env("AURORA__AUTH__ALLOW_UNAUTHENTICATED_BIND", "true");
            assert!(load_in(jail, None).is_ok());
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__AUTH__JWT_SECRET", "too short");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("auth.jwt_secret"), "{err}");
            jail.create_file("default.toml", "[auth]\nadmin_password = \"in a file\"")?;
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("environment only"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_overlays_are_errors() {
        Jail::expect_with(|jail| {
            jail.set_env("AURORA__SERVER__CORE_PROT", "1");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("core_prot"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let err = load_in(jail, Some("prod")).unwrap_err().to_string();
            assert!(err.contains("AURORA_ENV=prod"), "{err}");
            Ok(())
        });
    }
}
