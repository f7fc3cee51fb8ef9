//! Service settings: flags, then `FEEDBRIDGE_*` environment variables, then an optional
//! `feedbridge.toml`, then defaults, in that order of precedence.
//!
//! Clap already merges a flag with its environment variable (the flag wins); this module
//! fills what both left open from the file, validates, and hands out one `Settings`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::fetch::FetchSettings;
use crate::site::parse_duration;

/// A setting that cannot be used; the service refuses to start (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("setting `{key}` = {value:?}: {message}")]
    Invalid {
        key: &'static str,
        value: String,
        message: String,
    },
}

/// Values as given by flags/environment (clap) or the file; all optional.
///
/// The flags are split by who reads them, so no command accepts a flag it ignores:
/// [`RawFetchSettings`] (`preview` and up), [`RawCrawlSettings`] (adds what `crawl`
/// reads), and this struct (adds what only the HTTP server of `serve`/`demo` reads).
/// The settings file is this whole struct, flat: one file serves every command. (Its
/// unknown keys are found by [`unknown_key`]: serde cannot deny them through `flatten`.)
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
pub struct RawSettings {
    /// Address to serve HTTP on [default: 127.0.0.1:8080]
    #[arg(long, env = "FEEDBRIDGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Public base URL of this service, for feed self links and OPML (e.g.
    /// https://feeds.example.org/) [default: taken from each request's Host]
    #[arg(long, env = "FEEDBRIDGE_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// WebSub hub every feed names and is told about after a run that changed it (a
    /// selector file's `hub` wins); needs --base-url for the topic URLs [default: none]
    #[arg(long, env = "FEEDBRIDGE_HUB", value_name = "URL")]
    pub hub: Option<String>,
    /// Concurrent HTTP requests served before answering 503 [default: 512]
    #[arg(long, env = "FEEDBRIDGE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Open client sockets (idle ones too) before a new one gets a 503 and is closed
    /// [default: the open-file limit minus 256 kept for the store, selector files and crawling]
    #[arg(long, env = "FEEDBRIDGE_MAX_OPEN_CONNECTIONS", value_name = "N")]
    pub max_open_connections: Option<usize>,
    /// Time a client has to send a request's headers, counted from its connect or from
    /// the previous response; a slower socket is closed [default: 10s]
    #[arg(long, env = "FEEDBRIDGE_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// A connection on which no byte moves either way, with no request being answered,
    /// is closed after this [default: 5s]
    #[arg(long, env = "FEEDBRIDGE_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Disk budget of the image proxy's cache (`<data>/images/`), in MiB; least recently
    /// used images leave first [default: 512]
    #[arg(long, env = "FEEDBRIDGE_IMAGE_CACHE_MB", value_name = "MIB")]
    pub image_cache_mb: Option<u64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub crawl: RawCrawlSettings,
}

/// The settings a crawl reads (`crawl`, and `serve` with them).
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
pub struct RawCrawlSettings {
    /// Directory of the sled store; created when missing [default: ./data]
    #[arg(long, env = "FEEDBRIDGE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Directory of selector files, one `<site-id>.toml` each [default: ./selectors]
    #[arg(long, env = "FEEDBRIDGE_SELECTORS", value_name = "DIR")]
    pub selectors: Option<PathBuf>,
    /// Sites crawled at the same time [default: 4]
    #[arg(long, env = "FEEDBRIDGE_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<usize>,
    /// Log format: human or json [default: human]
    #[arg(long, env = "FEEDBRIDGE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Memory for caches, in MiB: the store's page cache and the rendered feeds share it
    /// (the process uses more: sled's own buffers, requests, runs) [default: 64]
    #[arg(long, env = "FEEDBRIDGE_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub fetch: RawFetchSettings,
}

/// How pages are fetched (every command that fetches: `preview`, `crawl`, `serve`).
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
pub struct RawFetchSettings {
    #[arg(
        long,
        env = "FEEDBRIDGE_USER_AGENT",
        value_name = "UA",
        help = concat!(
            "User-Agent sent to sites (its first word is the robots.txt name) [default: feedbridge/",
            env!("CARGO_PKG_VERSION"),
            " (Atom feed generator)]"
        )
    )]
    pub user_agent: Option<String>,
    /// Spacing between requests to one host, for sites without `delay` [default: 1s]
    #[arg(long, env = "FEEDBRIDGE_DELAY", value_name = "DURATION")]
    pub delay: Option<String>,
    /// Timeout of one HTTP request [default: 30s]
    #[arg(long, env = "FEEDBRIDGE_TIMEOUT", value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Largest response body read, in bytes [default: 10485760]
    #[arg(long, env = "FEEDBRIDGE_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Retries on connect errors, 429 and 5xx, with exponential backoff [default: 2]
    #[arg(long, env = "FEEDBRIDGE_RETRIES", value_name = "N")]
    pub retries: Option<u32>,
    /// First retry backoff, doubled each time [default: 2s]
    #[arg(long, env = "FEEDBRIDGE_RETRY_BASE", value_name = "DURATION")]
    pub retry_base: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub selectors_dir: PathBuf,
    pub base_url: Option<Url>,
    /// The WebSub hub for every site without its own `hub`.
    pub hub: Option<Url>,
    pub concurrency: usize,
    pub default_delay: Duration,
    pub fetch: FetchSettings,
    pub log_format: LogFormat,
    pub max_connections: usize,
    /// `None`: sized from the open-file limit at start (`serve::default_open_connections`).
    pub max_open_connections: Option<usize>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Disk budget of the image proxy's cache, in bytes.
    pub image_cache_bytes: u64,
    /// Memory budget of the caches (`cache_mb`), in MiB.
    pub cache_mb: u64,
}

impl Settings {
    /// sled's page cache: half of `cache_mb` (feeds are rendered from it, and sled's
    /// own use runs above its cache: `benches/store_memory.rs`).
    pub fn store_cache_bytes(&self) -> u64 {
        (self.cache_mb << 20) / 2
    }

    /// The rendered-feed cache: the other half.
    pub fn render_cache_bytes(&self) -> usize {
        usize::try_from((self.cache_mb << 20) / 2).unwrap_or(usize::MAX)
    }
}

/// The smallest `cache_mb`: below it every poll re-renders.
const MIN_CACHE_MB: u64 = 8;

impl RawSettings {
    /// Fills every value the flags and environment left open from `other`.
    fn or(self, other: RawSettings) -> RawSettings {
        RawSettings {
            listen: self.listen.or(other.listen),
            base_url: self.base_url.or(other.base_url),
            hub: self.hub.or(other.hub),
            max_connections: self.max_connections.or(other.max_connections),
            max_open_connections: self.max_open_connections.or(other.max_open_connections),
            header_timeout: self.header_timeout.or(other.header_timeout),
            idle_timeout: self.idle_timeout.or(other.idle_timeout),
            image_cache_mb: self.image_cache_mb.or(other.image_cache_mb),
            crawl: self.crawl.or(other.crawl),
        }
    }
}

impl RawCrawlSettings {
    fn or(self, other: RawCrawlSettings) -> RawCrawlSettings {
        RawCrawlSettings {
            data: self.data.or(other.data),
            selectors: self.selectors.or(other.selectors),
            concurrency: self.concurrency.or(other.concurrency),
            log_format: self.log_format.or(other.log_format),
            cache_mb: self.cache_mb.or(other.cache_mb),
            fetch: self.fetch.or(other.fetch),
        }
    }
}

impl RawFetchSettings {
    fn or(self, other: RawFetchSettings) -> RawFetchSettings {
        RawFetchSettings {
            user_agent: self.user_agent.or(other.user_agent),
            delay: self.delay.or(other.delay),
            timeout: self.timeout.or(other.timeout),
            max_body: self.max_body.or(other.max_body),
            retries: self.retries.or(other.retries),
            retry_base: self.retry_base.or(other.retry_base),
        }
    }
}

/// Reads the settings file (`config`, else `./feedbridge.toml` when present).
pub fn load(flags: RawSettings, config: Option<&Path>) -> Result<Settings, ConfigError> {
    let default_file = Path::new("feedbridge.toml");
    let file = match config {
        Some(p) => Some(p),
        None if default_file.is_file() => Some(default_file),
        None => None,
    };
    let from_file = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            if let Some((key, line)) = unknown_key(&text) {
                return Err(ConfigError::File {
                    path: format!("{}:{line}:1", path.display()),
                    message: format!("unknown setting `{key}`; `feedbridge serve --help` lists them (as --flags, `-` for `_`)"),
                });
            }
            toml::from_str::<RawSettings>(&text).map_err(|e| {
                let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
                ConfigError::File {
                    path: format!("{}:{line}:{col}", path.display()),
                    message: e.message().trim().to_owned(),
                }
            })?
        }
        None => RawSettings::default(),
    };
    resolve(flags.or(from_file))
}

/// The first top-level key of a settings file that is no setting, with its line. Every
/// setting is a flag of `serve`, so clap's argument ids are the list of known keys.
fn unknown_key(text: &str) -> Option<(String, usize)> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let command = <RawSettings as clap::Args>::augment_args(clap::Command::new("feedbridge"));
    let known: Vec<&str> = command
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .collect();
    let key = table.keys().find(|k| !known.contains(&k.as_str()))?;
    let line = text
        .lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key.as_str())
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1);
    Some((key.clone(), line))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    (
        before.matches('\n').count() + 1,
        before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
    )
}

fn duration(
    key: &'static str,
    v: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => parse_duration(&v).map_err(|message| ConfigError::Invalid {
            key,
            value: v,
            message,
        }),
    }
}

/// Applies defaults and validates.
pub fn resolve(raw: RawSettings) -> Result<Settings, ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
        key: "listen",
        value: listen_text.clone(),
        message: "expected IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080".into(),
    })?;
    let base_url = match raw.base_url {
        None => None,
        Some(b) => {
            let mut url = Url::parse(&b)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| ConfigError::Invalid {
                    key: "base_url",
                    value: b.clone(),
                    message: "expected an absolute http(s) URL".into(),
                })?;
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            Some(url)
        }
    };
    let hub = match raw.hub {
        None => None,
        Some(h) => Some(
            Url::parse(&h)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| ConfigError::Invalid {
                    key: "hub",
                    value: h.clone(),
                    message: "expected an absolute http(s) URL of a WebSub hub".into(),
                })?,
        ),
    };
    let concurrency = raw.crawl.concurrency.unwrap_or(4);
    if !(1..=256).contains(&concurrency) {
        return Err(ConfigError::Invalid {
            key: "concurrency",
            value: concurrency.to_string(),
            message: "must be 1-256".into(),
        });
    }
    let log_format = match raw.crawl.log_format.as_deref().unwrap_or("human") {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::Invalid {
                key: "log_format",
                value: other.into(),
                message: "must be human or json".into(),
            })
        }
    };
    let cache_mb = raw.crawl.cache_mb.unwrap_or(64);
    if !(MIN_CACHE_MB..=1 << 20).contains(&cache_mb) {
        return Err(ConfigError::Invalid {
            key: "cache_mb",
            value: cache_mb.to_string(),
            message: format!("must be between {MIN_CACHE_MB} and 1048576 (MiB)"),
        });
    }
    let defaults = FetchSettings::default();
    let user_agent = raw.crawl.fetch.user_agent.unwrap_or(defaults.user_agent);
    if user_agent.trim().is_empty() || reqwest::header::HeaderValue::from_str(&user_agent).is_err()
    {
        return Err(ConfigError::Invalid {
            key: "user_agent",
            value: user_agent,
            message: "must be a non-empty header value".into(),
        });
    }
    let timeout = duration("timeout", raw.crawl.fetch.timeout, defaults.timeout)?;
    if timeout.is_zero() {
        return Err(ConfigError::Invalid {
            key: "timeout",
            value: "0s".into(),
            message: "must be above zero".into(),
        });
    }
    let max_connections = raw.max_connections.unwrap_or(512);
    if max_connections == 0 {
        return Err(ConfigError::Invalid {
            key: "max_connections",
            value: "0".into(),
            message: "must be at least 1".into(),
        });
    }
    if raw.max_open_connections == Some(0) {
        return Err(ConfigError::Invalid {
            key: "max_open_connections",
            value: "0".into(),
            message: "must be at least 1".into(),
        });
    }
    let header_timeout = positive(
        "header_timeout",
        duration(
            "header_timeout",
            raw.header_timeout,
            Duration::from_secs(10),
        )?,
    )?;
    let idle_timeout = positive(
        "idle_timeout",
        duration("idle_timeout", raw.idle_timeout, Duration::from_secs(5))?,
    )?;
    Ok(Settings {
        listen,
        data_dir: raw.crawl.data.unwrap_or_else(|| PathBuf::from("data")),
        selectors_dir: raw
            .crawl
            .selectors
            .unwrap_or_else(|| PathBuf::from("selectors")),
        base_url,
        hub,
        concurrency,
        default_delay: duration("delay", raw.crawl.fetch.delay, Duration::from_secs(1))?,
        fetch: FetchSettings {
            user_agent,
            timeout,
            max_body_bytes: raw.crawl.fetch.max_body.unwrap_or(defaults.max_body_bytes),
            retries: raw.crawl.fetch.retries.unwrap_or(defaults.retries),
            retry_base: duration(
                "retry_base",
                raw.crawl.fetch.retry_base,
                defaults.retry_base,
            )?,
            ..defaults
        },
        log_format,
        max_connections,
        max_open_connections: raw.max_open_connections,
        header_timeout,
        idle_timeout,
        image_cache_bytes: raw
            .image_cache_mb
            .unwrap_or(512)
            .saturating_mul(1024 * 1024),
        cache_mb,
    })
}

fn positive(key: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::Invalid {
            key,
            value: "0s".into(),
            message: "must be above zero".into(),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_defaults_fill_the_rest() {
        let flags = RawSettings {
            listen: Some("127.0.0.1:9999".into()),
            ..Default::default()
        };
        let file: RawSettings =
            toml::from_str("listen = \"0.0.0.0:1\"\nconcurrency = 7\n").unwrap();
        let s = resolve(flags.or(file)).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(s.concurrency, 7);
        assert_eq!(s.default_delay, Duration::from_secs(1));
        assert_eq!(s.header_timeout, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.max_open_connections, None);
    }

    #[test]
    fn socket_settings_from_the_file() {
        let file: RawSettings = toml::from_str(
            "header_timeout = \"2s\"\nidle_timeout = \"1m\"\nmax_open_connections = 50\n",
        )
        .unwrap();
        let s = resolve(file).unwrap();
        assert_eq!(s.header_timeout, Duration::from_secs(2));
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.max_open_connections, Some(50));
        let e = resolve(RawSettings {
            header_timeout: Some("0s".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("`header_timeout`"), "{e}");
    }

    #[test]
    fn the_file_is_flat_and_still_refuses_unknown_keys() {
        let file: RawSettings = toml::from_str(
            "listen = \"0.0.0.0:1\"\nconcurrency = 7\nuser_agent = \"me/1\"\nmax_body = 5\n",
        )
        .unwrap();
        assert_eq!(file.crawl.concurrency, Some(7));
        assert_eq!(file.crawl.fetch.user_agent.as_deref(), Some("me/1"));
        assert_eq!(file.crawl.fetch.max_body, Some(5));
        assert_eq!(
            unknown_key("listen = \"x\"\n\nconcurency = 7\n"),
            Some(("concurency".into(), 3))
        );
        assert_eq!(
            unknown_key("max_connections = 1\nretry_base = \"1s\"\n"),
            None
        );
    }

    #[test]
    fn cache_mb_from_the_file_splits_between_store_and_feeds() {
        let file: RawSettings = toml::from_str("cache_mb = 100\n").unwrap();
        let s = resolve(file).unwrap();
        assert_eq!(s.cache_mb, 100);
        assert_eq!(
            s.store_cache_bytes() + s.render_cache_bytes() as u64,
            100 << 20
        );
        assert_eq!(resolve(RawSettings::default()).unwrap().cache_mb, 64);
        let e = resolve(toml::from_str("cache_mb = 1\n").unwrap()).unwrap_err();
        assert!(e.to_string().contains("`cache_mb`"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = resolve(RawSettings {
            listen: Some("localhost".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("`listen`"), "{e}");
        let e = resolve(RawSettings {
            crawl: RawCrawlSettings {
                log_format: Some("xml".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("human or json"), "{e}");
    }
}
