//! The command line: parse, then wire the stages. No stage logic lives here.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use url::Url;

use crate::config::{self, LogFormat, RawCrawlSettings, RawFetchSettings, RawSettings, Settings};
use crate::extract::{extract_article, item_from_entry};
use crate::fetch::{FetchOutcome, Fetcher, Manners};
use crate::fixture_server::{bundled_site_dir, FixtureServer};
use crate::metrics::Metrics;
use crate::model::{Item, ListEntry, Page};
use crate::schedule::{self, Crawler, Scheduler};
use crate::serve::{self, AppState};
use crate::site::{self, Site, SiteSet};
use crate::store::{Outcome, Store};

mod inspect;
mod service;

pub use inspect::preview_json;
use inspect::{extract_cmd, preview_cmd, suggest_cmd};
use service::{demo_cmd, healthcheck_cmd, serve_cmd};

/// Turns web sites without feeds into Atom feeds.
#[derive(Debug, Parser)]
#[command(name = "feedbridge", version, about, long_about = None)]
pub struct Cli {
    /// Settings file [default: ./feedbridge.toml when present]
    #[arg(long, global = true, env = "FEEDBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl every site on its schedule and serve the feeds over HTTP.
    Serve {
        #[command(flatten)]
        settings: RawSettings,
        /// Crawl and serve only shard K of N (counted from 1: 1/3, 2/3, 3/3): the sites
        /// whose id hashes there. Every node reads the same selectors, keeps its own
        /// --data, and takes the same --base-url; /opml still lists every feed. K is the
        /// node's place in `feedbridge shards --nodes`.
        #[arg(long, env = "FEEDBRIDGE_SHARD", value_name = "K/N")]
        shard: Option<crate::shard::Shard>,
    },
    /// Run one pass over the named sites (all by default), print a summary, exit.
    Crawl {
        #[command(flatten)]
        settings: RawCrawlSettings,
        /// A selector file to crawl (repeatable); read like the selectors directory's files.
        #[arg(long = "site", value_name = "FILE")]
        site_files: Vec<PathBuf>,
        /// Site ids from the selectors directory.
        sites: Vec<String>,
    },
    /// Show what a selector file extracts, without touching the store.
    Preview {
        /// The selector file.
        site_file: PathBuf,
        /// Start from this list page (or feed) instead of the file's `start`.
        #[arg(long, conflicts_with = "file")]
        url: Option<Url>,
        /// Extract one saved page instead of fetching.
        #[arg(long, requires = "base")]
        file: Option<PathBuf>,
        /// The URL the saved page came from (its relative links resolve against it).
        #[arg(long)]
        base: Option<Url>,
        /// Read the saved page as a list or an article page [default: article when the
        /// file has [article] and its body or title selector matches, else list]
        #[arg(long = "as", value_name = "KIND", value_parser = ["list", "article"])]
        kind: Option<String>,
        /// One JSON object per item, one per line.
        #[arg(long)]
        json: bool,
        /// Article pages fetched at most.
        #[arg(long, default_value_t = 5)]
        limit: usize,
        #[command(flatten)]
        settings: RawFetchSettings,
    },
    /// Extract one article page without selectors (or with a selector file's [article]
    /// rules first): title, date, source, body, images, and where each came from.
    Extract {
        /// A saved page, `-` for stdin, or an http(s) URL to fetch.
        page: String,
        /// The page's address (relative links, the date in the URL) when PAGE is a file.
        #[arg(long)]
        url: Option<Url>,
        /// Zone for dates without an offset [default: the page's language or country]
        #[arg(long, value_name = "TZ")]
        timezone: Option<chrono_tz::Tz>,
        /// Decode as this encoding (a WHATWG label), whatever the page says.
        #[arg(long, value_name = "LABEL")]
        encoding: Option<String>,
        /// A selector file whose [article] rules apply first.
        #[arg(long, value_name = "FILE")]
        site: Option<PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: RawFetchSettings,
    },
    /// Suggest a selector file for a new site from one of its list pages.
    Suggest {
        /// The list page (with --file: the URL the saved page came from).
        url: Url,
        /// Read the list page from this saved file instead of fetching it.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The site id [default: from the URL's path]
        #[arg(long)]
        id: Option<String>,
        /// Write selectors/<id>.toml instead of printing the file.
        #[arg(long)]
        write: bool,
        /// Replace an existing file with --write.
        #[arg(long, requires = "write")]
        force: bool,
        /// Article pages fetched to check each rule on.
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// The selectors directory --write writes into.
        #[arg(long, env = "FEEDBRIDGE_SELECTORS", default_value = "selectors")]
        selectors: PathBuf,
        #[command(flatten)]
        settings: RawFetchSettings,
    },
    /// Validate selector files; print every problem as path:line:col: message.
    Check {
        /// Files or folders (every *.toml in them) [default: the selectors directory]
        files: Vec<PathBuf>,
        /// The selectors directory.
        #[arg(long, env = "FEEDBRIDGE_SELECTORS", default_value = "selectors")]
        selectors: PathBuf,
    },
    /// Serve the bundled fixture site on loopback, crawl it, and serve its feed.
    Demo {
        /// Address to serve the feeds on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Store directory [default: a fresh temporary directory]
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Print a reverse-proxy config for `serve --shard` nodes: routes each feed to the
    /// node owning its site and caches feeds (include the nginx output inside `http { }`).
    Shards {
        /// The nodes in shard order, name=URL,...: the first is `serve --shard 1/N`.
        #[arg(long, value_name = "NAME=URL,...")]
        nodes: String,
        /// The selectors directory (the same files every node reads).
        #[arg(long, env = "FEEDBRIDGE_SELECTORS", default_value = "selectors")]
        selectors: PathBuf,
        /// Output format.
        #[arg(long, value_parser = ["nginx"], default_value = "nginx")]
        format: String,
        /// nginx `listen` for the public server.
        #[arg(long, default_value = "80", value_name = "ADDR")]
        listen: String,
        /// nginx's feed and image cache directory.
        #[arg(
            long,
            default_value = "/var/cache/nginx/feedbridge",
            value_name = "DIR"
        )]
        cache_dir: PathBuf,
    },
    /// Exit 0 when a running feedbridge answers /healthz with 200 (for Docker HEALTHCHECK).
    Healthcheck {
        /// The health URL [default: http://<listen>/healthz, from FEEDBRIDGE_LISTEN]
        #[arg(long)]
        url: Option<String>,
    },
}

/// A failure with its exit code: 2 for usage and configuration, 1 for the rest.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigFailure {
    pub message: String,
}

fn config_failure(message: impl Into<String>) -> anyhow::Error {
    ConfigFailure {
        message: message.into(),
    }
    .into()
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let config_file = cli.config.clone();
    let settings = |raw: RawSettings| -> Result<Settings> {
        config::load(raw, config_file.as_deref()).map_err(|e| config_failure(e.to_string()))
    };
    // Commands that only fetch (preview, extract, suggest) take the operator's
    // User-Agent, timeout and delay from flags, environment or file.
    let fetch_only = |raw: RawFetchSettings| {
        settings(RawSettings {
            crawl: RawCrawlSettings {
                fetch: raw,
                ..RawCrawlSettings::default()
            },
            ..RawSettings::default()
        })
    };
    match cli.command {
        Command::Serve {
            settings: raw,
            shard,
        } => {
            let s = settings(raw)?;
            init_logging(s.log_format);
            serve_cmd(s, shard).await
        }
        Command::Crawl {
            settings: raw,
            site_files,
            sites,
        } => {
            let s = settings(RawSettings {
                crawl: raw,
                ..RawSettings::default()
            })?;
            init_logging(s.log_format);
            crawl_cmd(s, site_files, sites).await
        }
        Command::Preview {
            site_file,
            url,
            file,
            base,
            kind,
            json,
            limit,
            settings: raw,
        } => {
            let s = fetch_only(raw)?;
            init_logging(LogFormat::Human);
            preview_cmd(
                &s,
                &site_file,
                url,
                file.zip(base),
                kind.as_deref(),
                json,
                limit,
            )
            .await
        }
        Command::Extract {
            page,
            url,
            timezone,
            encoding,
            site,
            json,
            settings: raw,
        } => {
            let s = fetch_only(raw)?;
            init_logging(LogFormat::Human);
            extract_cmd(
                &s,
                &page,
                url,
                timezone,
                encoding.as_deref(),
                site.as_deref(),
                json,
            )
            .await
        }
        Command::Check { files, selectors } => check_cmd(files, &selectors),
        Command::Suggest {
            url,
            file,
            id,
            write,
            force,
            samples,
            selectors,
            settings: raw,
        } => {
            let s = fetch_only(raw)?;
            init_logging(LogFormat::Human);
            let opts = crate::suggest::Options {
                url,
                saved: file,
                id,
                samples,
            };
            suggest_cmd(&s, &opts, write.then_some(selectors.as_path()), force).await
        }
        Command::Demo { listen, data } => {
            init_logging(LogFormat::Human);
            demo_cmd(listen, data).await
        }
        Command::Healthcheck { url } => healthcheck_cmd(url).await,
        Command::Shards {
            nodes,
            selectors,
            format: _,
            listen,
            cache_dir,
        } => shards_cmd(&nodes, &selectors, listen, cache_dir),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sled=warn,html5ever=error,selectors=warn")
    });
    // Colours only on a terminal: in a pipe or a log file they are noise for grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

fn load_site(path: &Path) -> Result<Site> {
    site::load(path).map_err(|e| config_failure(e.to_string()))
}

fn open_store(dir: &Path, cache_bytes: u64) -> Result<Arc<Store>> {
    let options = crate::store::StoreOptions {
        cache_bytes,
        ..Default::default()
    };
    Ok(Arc::new(Store::open_with(dir, &options)?))
}

fn crawler(settings: &Settings, store: Arc<Store>, metrics: Arc<Metrics>) -> Result<Arc<Crawler>> {
    Ok(Arc::new(Crawler {
        fetcher: Fetcher::new(settings.fetch.clone()).context("cannot build the HTTP client")?,
        store,
        default_delay: settings.default_delay,
        metrics,
        stopping: watch::Sender::new(false),
    }))
}

/// The sites a `crawl` runs: `--site` files, named ids, or every file of the directory.
/// A broken file that was asked for by name stops the command (exit 2); in a crawl of
/// everything it is reported and skipped.
fn crawl_targets(settings: &Settings, files: &[PathBuf], ids: &[String]) -> Result<Vec<Arc<Site>>> {
    let mut sites = files
        .iter()
        .map(|f| load_site(f).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    if files.is_empty() || !ids.is_empty() {
        let dir = &settings.selectors_dir;
        let set = SiteSet::load_dir(dir, None).map_err(|e| {
            config_failure(format!(
                "{}: cannot read the selectors directory: {e}",
                dir.display()
            ))
        })?;
        for e in &set.errors {
            let stem = e.path.file_stem().and_then(|s| s.to_str());
            if ids.iter().any(|id| Some(id.as_str()) == stem) {
                bail!(config_failure(e.to_string()));
            }
            if ids.is_empty() {
                eprintln!("{e} (skipped)");
            }
        }
        if ids.is_empty() {
            sites.extend(set.sites.values().cloned());
        }
        for id in ids {
            let site = set
                .sites
                .get(id)
                .ok_or_else(|| config_failure(format!("no site {id:?} in {}", dir.display())))?;
            sites.push(site.clone());
        }
    }
    Ok(sites)
}

async fn crawl_cmd(settings: Settings, files: Vec<PathBuf>, ids: Vec<String>) -> Result<()> {
    let sites = crawl_targets(&settings, &files, &ids)?;
    let store = open_store(&settings.data_dir, settings.store_cache_bytes())?;
    let crawler = crawler(&settings, store.clone(), Arc::new(Metrics::default()))?;
    let bars = progress::Bars::new(std::io::stderr().is_terminal());
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
    let mut runs = tokio::task::JoinSet::new();
    for site in sites {
        let crawler = crawler.clone();
        let slots = slots.clone();
        let bar = bars.bar(&site.id);
        runs.spawn(async move {
            let _permit = slots.acquire_owned().await;
            let status = schedule::refresh(&site, &crawler, &bar).await;
            bar.finish();
            (site.id.clone(), status)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = runs.join_next().await {
        results.push(r.context("a crawl task panicked")?);
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    store.flush().await?;
    let mut failed = 0;
    for (id, status) in &results {
        println!("{}", schedule::summary_line(id, status));
        for w in status.warnings.iter().take(5) {
            println!("  warning: {w}");
        }
        failed += usize::from(matches!(
            status.outcome,
            Outcome::Failed
                | Outcome::SelectorsMatchedNothing
                | Outcome::TimedOut
                | Outcome::InternalError
        ));
    }
    if failed > 0 {
        bail!("{failed} of {} sites failed", results.len());
    }
    Ok(())
}

mod progress {
    //! indicatif bars on a terminal, nothing otherwise (logs carry the story in a pipe).
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
    use url::Url;

    /// Bars on a terminal; `None` means a pipe, where plain log lines tell the story.
    pub struct Bars(Option<MultiProgress>);

    impl Bars {
        pub fn new(terminal: bool) -> Self {
            Bars(terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())))
        }

        pub fn bar(&self, site: &str) -> Bar {
            let bar = self.0.as_ref().map(|m| {
                let bar = m.add(ProgressBar::new(0));
                let style =
                    ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar.set_prefix(site.to_owned());
                bar
            });
            Bar {
                bar,
                site: site.to_owned(),
            }
        }
    }

    pub struct Bar {
        bar: Option<ProgressBar>,
        site: String,
    }

    impl Bar {
        /// Clears the bar. (In a pipe there is none; the summary `crawl` prints on stdout
        /// is the run's one report, not repeated in the log.)
        pub fn finish(&self) {
            if let Some(b) = &self.bar {
                b.finish_and_clear();
            }
        }
    }

    impl crate::schedule::Progress for Bar {
        fn page(&self, url: &Url) {
            match &self.bar {
                Some(b) => b.set_message(url.to_string()),
                None => tracing::info!(site = %self.site, %url, "reading list"),
            }
        }
        fn planned(&self, n: usize) {
            match &self.bar {
                Some(b) => b.set_length(n as u64),
                None => tracing::info!(site = %self.site, items = n, "items on the list"),
            }
        }
        fn article_done(&self) {
            if let Some(b) = &self.bar {
                b.inc(1);
            }
        }
    }
}

/// Prints the nginx config for `nodes` over the sites of `dir`, and on stderr how many
/// sites each node gets.
fn shards_cmd(nodes: &str, dir: &Path, listen: String, cache_dir: PathBuf) -> Result<()> {
    let nodes = crate::shard::parse_nodes(nodes).map_err(|e| config_failure(e.to_string()))?;
    let ids = SiteSet::load_dir(dir, None)
        .map_err(|e| {
            config_failure(format!(
                "{}: cannot read the selectors directory: {e}",
                dir.display()
            ))
        })?
        .routable_ids();
    let options = crate::shard::NginxOptions { listen, cache_dir };
    let conf = crate::shard::nginx_config(&nodes, &ids, &options)
        .map_err(|e| config_failure(e.to_string()))?;
    print!("{conf}");
    let count = nodes.len() as u32;
    for (i, node) in nodes.iter().enumerate() {
        let k = i as u32 + 1;
        let n = ids
            .iter()
            .filter(|id| crate::shard::owner(id, count) == k)
            .count();
        eprintln!(
            "{}: --shard {k}/{count}, {n} of {} sites",
            node.name,
            ids.len()
        );
    }
    Ok(())
}

/// Checks files and folders (a folder = its `*.toml`, as `serve` reads it). Every
/// problem of every file is printed, one `path:line:col: message` line each.
fn check_cmd(paths: Vec<PathBuf>, dir: &Path) -> Result<()> {
    let paths = if paths.is_empty() {
        vec![dir.to_owned()]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = site::selector_files(&p).map_err(|e| {
                config_failure(format!("{}: cannot read the directory: {e}", p.display()))
            })?;
            if found.is_empty() {
                eprintln!(
                    "{}: no *.toml selector files in this directory",
                    p.display()
                );
            }
            files.extend(found);
        } else {
            files.push(p);
        }
    }
    let (mut bad, mut problems) = (0, 0);
    for f in &files {
        match site::load(f) {
            Ok(s) => println!(
                "ok {} ({}): {} start URL(s), schedule {:?}, zone {}",
                f.display(),
                s.id,
                s.start_urls().len(),
                s.schedule.as_str(),
                s.timezone
            ),
            Err(e) => {
                bad += 1;
                problems += e.problems.len();
                eprintln!("{e}");
            }
        }
    }
    if bad > 0 {
        bail!(config_failure(format!(
            "{bad} of {} selector files have errors ({problems} problem{})",
            files.len(),
            if problems == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}
