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
        Command::Serve { settings: raw } => {
            let s = settings(raw)?;
            init_logging(s.log_format);
            serve_cmd(s).await
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

fn open_store(dir: &Path) -> Result<Arc<Store>> {
    Ok(Arc::new(Store::open(dir)?))
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

/// Resolves when SIGINT or SIGTERM arrives.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Scheduler + HTTP server until a signal; `watch` reloads a selectors directory.
async fn run_service(
    settings: &Settings,
    store: Arc<Store>,
    sites: SiteSet,
    watch_dir: Option<PathBuf>,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let crawler = crawler(settings, store.clone(), metrics.clone())?;
    let (sites_tx, sites_rx) = watch::channel(Arc::new(sites));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!("{} is in use; pick another with --listen", settings.listen)
        }
        Err(e) => return Err(e).context(format!("cannot listen on {}", settings.listen)),
    };
    let addr = listener.local_addr()?;

    let hub_warnings = Arc::new(serve::websub::HubWarnings::default());
    let publisher = websub_publisher(settings, &store, &sites_rx, &hub_warnings)?;
    let scheduler = Scheduler::new(crawler, settings.concurrency);
    let heartbeat = scheduler.heartbeat.clone();
    let internal_errors = scheduler.internal_errors.clone();
    let scheduler_task = tokio::spawn(scheduler.run(
        sites_rx.clone(),
        shutdown_rx.clone(),
        Duration::from_secs(8),
    ));
    let watcher_task = watch_dir.map(|dir| {
        tokio::spawn(site::watch_dir(
            dir,
            sites_tx.clone(),
            Duration::from_millis(700),
            shutdown_rx.clone(),
        ))
    });

    let mut state = AppState::new(
        store.clone(),
        sites_rx,
        settings.base_url.clone(),
        metrics,
        Some(heartbeat),
    );
    state.internal_errors = internal_errors;
    state.hub = settings.hub.clone();
    state.hub_warnings = hub_warnings;
    let publisher_task = publisher.map(|p| tokio::spawn(p.run(shutdown_rx.clone())));
    state.images = Some(Arc::new(serve::images::ImageProxy::open(
        &settings.data_dir,
        settings.image_cache_bytes,
        &settings.fetch,
        settings.default_delay,
    )?));
    let state = Arc::new(state);
    let app = serve::app(state);
    let fd_limit = serve::raise_fd_limit();
    let limits = serve::SocketLimits {
        max_in_flight: settings.max_connections,
        max_open: settings
            .max_open_connections
            .unwrap_or_else(|| serve::default_open_connections(fd_limit)),
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
    };
    let open_files = fd_limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    tracing::info!(%addr, %open_files, max_open_connections = limits.max_open, "serving");
    if fd_limit.is_some_and(|n| limits.max_open as u64 + 64 > n) {
        tracing::warn!(
            %open_files,
            max_open_connections = limits.max_open,
            "the open-connection cap leaves few descriptors for the store and crawling"
        );
    }
    on_ready(addr);
    let server = tokio::spawn(serve::serve(listener, app, limits, shutdown_rx.clone()));
    termination().await;
    tracing::info!("stopping: no new runs, finishing the ones in flight");
    let _ = shutdown_tx.send(true);
    let _ = scheduler_task.await;
    if let Some(p) = publisher_task {
        let _ = p.await;
    }
    if let Some(w) = watcher_task {
        let _ = w.await;
    }
    // The server drains (at most 5 s) while the scheduler stops.
    let _ = tokio::time::timeout(Duration::from_secs(6), server).await;
    store.flush().await?;
    drop(sites_tx);
    tracing::info!("stopped");
    Ok(())
}

/// The WebSub publisher (whenever the public base is known: a selector file may gain a
/// `hub` later); it needs the base for topic URLs, so without `--base-url` feeds name the
/// hub but nothing is published, and every site with a hub says so.
fn websub_publisher(
    settings: &Settings,
    store: &Arc<Store>,
    sites: &watch::Receiver<Arc<SiteSet>>,
    warnings: &Arc<serve::websub::HubWarnings>,
) -> Result<Option<serve::websub::Publisher>> {
    let set = sites.borrow().clone();
    let with_hub: Vec<&String> = set
        .sites
        .values()
        .filter(|s| s.hub.is_some() || settings.hub.is_some())
        .map(|s| &s.id)
        .collect();
    let Some(base) = settings.base_url.clone() else {
        if with_hub.is_empty() {
            return Ok(None);
        }
        tracing::warn!("a WebSub hub is set but --base-url is not: feeds name the hub, but it is never told of changes (topic URLs need the public base)");
        for id in with_hub {
            warnings.set(
                id,
                Some("WebSub: no --base-url, so the hub is never told of changes".into()),
            );
        }
        return Ok(None);
    };
    let publisher = serve::websub::Publisher::new(
        store.clone(),
        sites.clone(),
        base,
        settings.hub.clone(),
        warnings.clone(),
    )
    .context("cannot build the WebSub client")?;
    Ok(Some(publisher))
}

async fn serve_cmd(settings: Settings) -> Result<()> {
    let store = open_store(&settings.data_dir)?;
    let dir = &settings.selectors_dir;
    let sites = SiteSet::load_dir(dir, None).map_err(|e| {
        config_failure(format!(
            "{}: cannot read the selectors directory: {e}",
            dir.display()
        ))
    })?;
    for e in &sites.errors {
        tracing::error!("selector file not loaded: {e}");
    }
    tracing::info!(sites = sites.sites.len(), dir = %dir.display(), "selectors loaded");
    run_service(&settings, store, sites, Some(dir.clone()), |_| {}).await
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
    let store = open_store(&settings.data_dir)?;
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

async fn preview_cmd(
    settings: &Settings,
    path: &Path,
    url: Option<Url>,
    saved: Option<(PathBuf, Url)>,
    kind: Option<&str>,
    json: bool,
    limit: usize,
) -> Result<()> {
    let site = load_site(path)?;
    let fetcher = Fetcher::new(settings.fetch.clone())?;
    let manners = Manners {
        delay: site.delay.unwrap_or(settings.default_delay),
        robots: site.robots,
        policy: crate::url_policy::UrlPolicy::resolved(
            site.start_urls().into_iter().chain(url.clone()),
        )
        .await,
    };
    let now = Utc::now();
    let mut items: Vec<Item> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    if let Some((file, base)) = saved {
        let body =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let page = Page {
            url: base,
            body: body.into(),
            content_type: None,
        };
        items = preview_saved(&site, &page, kind, now, &mut notes);
    } else {
        let start = url.unwrap_or_else(|| site.start_urls().remove(0));
        let entries = preview_list(&site, &fetcher, &manners, start, &mut notes).await?;
        for entry in entries.iter().take(limit) {
            let Some(url) = &entry.url else { continue };
            // An upstream entry without a link has a stand-in URL: no page to fetch.
            let no_link = entry.upstream.as_ref().is_some_and(|u| u.no_link);
            let item = match crate::extract::article_rules(&site).filter(|_| !no_link) {
                Some(rules) => match fetcher.get(url, None, &manners).await {
                    Ok(FetchOutcome::Page { page, .. }) => {
                        extract_article(&page, &site, rules, entry, now)
                    }
                    Ok(FetchOutcome::NotModified) => continue,
                    Err(e) => {
                        let mut item = item_from_entry(entry, &site);
                        item.warnings.push(format!("article not fetched: {e}"));
                        item
                    }
                },
                None => item_from_entry(entry, &site),
            };
            items.push(item);
        }
        if entries.len() > limit {
            notes.push(format!(
                "{} more items on the list (raise --limit to see them)",
                entries.len() - limit
            ));
        }
    }
    if json {
        for item in &items {
            println!("{}", preview_json(item));
        }
    } else {
        print_table(&site, &items);
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// The list entries `preview` shows, read exactly as a crawl reads them (no validators).
async fn preview_list(
    site: &Site,
    fetcher: &Fetcher,
    manners: &Manners,
    start: Url,
    notes: &mut Vec<String>,
) -> Result<Vec<ListEntry>> {
    let lists = schedule::read_lists(
        site,
        fetcher,
        manners,
        vec![start],
        |_| None,
        &schedule::Quiet,
    )
    .await;
    notes.extend(lists.warnings);
    notes.extend(lists.matched_nothing);
    match lists.error {
        Some((_, message)) if lists.entries.is_empty() => bail!(message),
        Some((_, message)) => notes.push(message),
        None => {}
    }
    Ok(lists.entries)
}

fn preview_saved(
    site: &Site,
    page: &Page,
    kind: Option<&str>,
    now: chrono::DateTime<Utc>,
    notes: &mut Vec<String>,
) -> Vec<Item> {
    let as_article = match kind {
        Some(k) => k == "article",
        None => crate::extract::article_rules(site).is_some_and(|a| {
            let doc = crate::extract::Document::parse(page, site);
            let root = doc.html.root_element();
            [&a.body, &a.title]
                .into_iter()
                .flatten()
                .any(|f| f.matches(root).next().is_some())
        }),
    };
    match (as_article, crate::extract::article_rules(site)) {
        (true, Some(rules)) => {
            let entry = ListEntry {
                url: Some(crate::model::canonical_url(&page.url)),
                ..ListEntry::default()
            };
            vec![extract_article(page, site, rules, &entry, now)]
        }
        _ => match crate::extract::listing(page, site, now) {
            Ok(listing) => {
                notes.extend(listing.warnings);
                if let Some(next) = listing.next {
                    notes.push(format!("next page: {next}"));
                }
                listing
                    .entries
                    .iter()
                    .map(|e| item_from_entry(e, site))
                    .collect()
            }
            Err(e) => {
                notes.push(e.to_string());
                Vec::new()
            }
        },
    }
}

/// The preview contract: url, title, published, source, images, content, warnings.
pub fn preview_json(item: &Item) -> String {
    serde_json::json!({
        "url": item.url,
        "title": item.title,
        "published": item.published.map(|p| p.to_rfc3339()),
        "source": item.source,
        "images": item.images,
        "content": item.content,
        "via": item.via,
        "warnings": item.warnings,
    })
    .to_string()
}

fn print_table(site: &Site, items: &[Item]) {
    print_table_to(&mut std::io::stdout().lock(), site, items);
}

/// Prints the preview table to `out` (`suggest` sends it to stderr when stdout is the file).
fn print_table_to(out: &mut dyn std::io::Write, site: &Site, items: &[Item]) {
    macro_rules! println {
        ($($t:tt)*) => { let _ = writeln!(out, $($t)*); };
    }
    println!("{} ({}): {} items", site.title, site.id, items.len());
    for (i, item) in items.iter().enumerate() {
        let body = item
            .content
            .as_deref()
            .map(|c| {
                let fragment = scraper::Html::parse_fragment(c);
                crate::extract::normalize_text(fragment.root_element().text())
            })
            .unwrap_or_default();
        println!();
        println!(
            "#{:<3} {}",
            i + 1,
            item.title.as_deref().unwrap_or("(no title)")
        );
        println!(
            "     date    {}",
            item.published.map_or("(none)".into(), |p| p.to_rfc3339())
        );
        println!(
            "     source  {}",
            item.source.as_deref().unwrap_or("(none)")
        );
        println!("     body    {}", excerpt(&body, 100));
        println!("     images  {}", item.images.len());
        for img in &item.images {
            println!("             {img}");
        }
        println!("     url     {}", item.url);
        for w in &item.warnings {
            println!("     warning {w}");
        }
    }
}

async fn extract_cmd(
    settings: &Settings,
    source: &str,
    url: Option<Url>,
    timezone: Option<chrono_tz::Tz>,
    encoding: Option<&str>,
    site_file: Option<&Path>,
    json: bool,
) -> Result<()> {
    let encoding = match encoding {
        Some(l) => Some(
            encoding_rs::Encoding::for_label(l.trim().as_bytes()).ok_or_else(|| {
                config_failure(format!("--encoding {l:?} is not a known encoding label"))
            })?,
        ),
        None => None,
    };
    let site = site_file.map(load_site).transpose()?;
    let page = if source.starts_with("http://") || source.starts_with("https://") {
        let address = Url::parse(source).map_err(|e| config_failure(format!("{source}: {e}")))?;
        let manners = Manners {
            delay: Duration::ZERO,
            robots: site.as_ref().is_none_or(|s| s.robots),
            // The operator typed this URL: it may be on their own network.
            policy: crate::url_policy::UrlPolicy::resolved([address.clone()]).await,
        };
        match Fetcher::new(settings.fetch.clone())?
            .get(&address, None, &manners)
            .await?
        {
            FetchOutcome::Page { page, .. } => page,
            FetchOutcome::NotModified => bail!("{source}: 304 Not Modified"),
        }
    } else {
        let body = if source == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                .context("cannot read stdin")?;
            b
        } else {
            std::fs::read(source).with_context(|| format!("cannot read {source}"))?
        };
        let url = match url {
            Some(u) => u,
            None if source == "-" => Url::parse("http://localhost/")?,
            None => Url::from_file_path(std::fs::canonicalize(source)?)
                .map_err(|_| anyhow::anyhow!("{source}: not a file path"))?,
        };
        Page {
            url,
            body: body.into(),
            content_type: None,
        }
    };
    let options = crate::extract::auto::ExtractOptions {
        timezone,
        encoding,
        site: site.as_ref(),
        now: Utc::now(),
    };
    let report = crate::extract::auto::run(&page, options);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// `suggest`: the file on stdout (or written with --write), then the preview table.
async fn suggest_cmd(
    settings: &Settings,
    opts: &crate::suggest::Options,
    write: Option<&Path>,
    force: bool,
) -> Result<()> {
    let fetcher = Fetcher::new(settings.fetch.clone())?;
    let failure = |e: crate::suggest::SuggestError| match e.is_usage() {
        true => config_failure(e.to_string()),
        false => anyhow::Error::from(e),
    };
    let s = crate::suggest::run(opts, &fetcher).await.map_err(failure)?;
    match write {
        Some(dir) => {
            let path = crate::suggest::write(dir, &s, force).map_err(failure)?;
            println!("wrote {}", path.display());
            print_table(&s.site, &s.items);
        }
        None => {
            print!("{}", s.toml);
            print_table_to(&mut std::io::stderr().lock(), &s.site, &s.items);
        }
    }
    for u in &s.unsure {
        eprintln!("unsure: {u}");
    }
    Ok(())
}

/// The first `n` characters of `text`, and how many there are in all when it is longer.
fn excerpt(text: &str, n: usize) -> String {
    let total = text.chars().count();
    match total {
        0 => "(none)".into(),
        t if t <= n => text.to_owned(),
        t => format!(
            "{}… ({t} characters)",
            text.chars().take(n).collect::<String>()
        ),
    }
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

async fn demo_cmd(listen: String, data: Option<PathBuf>) -> Result<()> {
    let settings = config::resolve(RawSettings {
        listen: Some(listen),
        ..RawSettings::default()
    })
    .map_err(|e| config_failure(e.to_string()))?;
    let (data_dir, temporary) = match data {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("feedbridge-demo-{}", std::process::id())),
            true,
        ),
    };
    let fixture_dir = bundled_site_dir();
    let fixture = FixtureServer::start(&fixture_dir, 0)
        .await
        .context("cannot start the fixture site server")?;
    let selector = bundled_selector();
    let mut site = load_site(&selector)?;
    site.rebase(&Url::parse(&fixture.origin())?);
    let mut sites = SiteSet::default();
    sites.sites.insert(site.id.clone(), Arc::new(site));
    let store = open_store(&data_dir)?;
    let settings = Settings {
        data_dir: data_dir.clone(),
        ..settings
    };
    let fixture_origin = fixture.origin();
    let result = run_service(&settings, store, sites, None, |addr| {
        println!("feedbridge demo");
        println!("  fixture site  {fixture_origin}/utf8/gzdt/ (and a GBK copy under /gbk/)");
        println!("  dashboard     http://{addr}/");
        println!("  site page     http://{addr}/sites/fixture-gzdt");
        println!("  feed          http://{addr}/feeds/fixture-gzdt.atom");
        println!("  status        http://{addr}/status.json");
        println!("Press Ctrl-C to stop.");
    })
    .await;
    drop(fixture);
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

/// The bundled fixture site's selector file.
fn bundled_selector() -> PathBuf {
    let here = PathBuf::from("selectors/fixture-gzdt.toml");
    if here.is_file() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("selectors/fixture-gzdt.toml")
    }
}

async fn healthcheck_cmd(url: Option<String>) -> Result<()> {
    let url = match url {
        Some(u) => u,
        None => {
            let listen =
                std::env::var("FEEDBRIDGE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
            let listen = listen
                .replace("0.0.0.0", "127.0.0.1")
                .replace("[::]", "[::1]");
            format!("http://{listen}/healthz")
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?;
    if !response.status().is_success() {
        bail!("{url}: HTTP {}", response.status());
    }
    Ok(())
}
