//! The long-running commands: `serve` and `demo` (the crawler, the HTTP server and
//! their shutdown) and `healthcheck`.

use super::*;

/// Resolves when SIGINT or SIGTERM arrives.
pub(super) async fn termination() {
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
pub(super) async fn run_service(
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
    let planned = scheduler.planned.clone();
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
    )
    .with_render_cache_bytes(settings.render_cache_bytes());
    state.internal_errors = internal_errors;
    state.planned = planned;
    state.hub = settings.hub.clone();
    state.hub_warnings = hub_warnings;
    let publisher_task = publisher.map(|p| tokio::spawn(p.run(shutdown_rx.clone())));
    // A broken image cache (unwritable dir, unreadable key) costs the images, not the
    // feeds: proxied feeds point at the origin again and `/img/` answers 503.
    state.images = match serve::images::ImageProxy::open(
        &settings.data_dir,
        settings.image_cache_bytes,
        &settings.fetch,
        settings.default_delay,
    ) {
        Ok(proxy) => Some(Arc::new(proxy)),
        Err(e) => {
            tracing::error!(error = %e, "image proxy unavailable: feeds link images directly");
            None
        }
    };
    let state = Arc::new(state);
    let prefetch_task = tokio::spawn(serve::images::prefetch(state.clone(), shutdown_rx.clone()));
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
    // Image prefetch is only a head start for readers: dropped mid-fetch at shutdown.
    prefetch_task.abort();
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
pub(super) fn websub_publisher(
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

pub(super) async fn serve_cmd(
    settings: Settings,
    shard: Option<crate::shard::Shard>,
) -> Result<()> {
    let store = open_store(&settings.data_dir, settings.store_cache_bytes())?;
    let dir = &settings.selectors_dir;
    let sites = SiteSet::load_dir(dir, None).map_err(|e| {
        config_failure(format!(
            "{}: cannot read the selectors directory: {e}",
            dir.display()
        ))
    })?;
    let sites = match shard {
        Some(s) => sites.shard(s),
        None => sites,
    };
    for e in &sites.errors {
        tracing::error!("selector file not loaded: {e}");
    }
    let shard = shard.map(|s| s.to_string());
    tracing::info!(sites = sites.sites.len(), other_shards = sites.elsewhere.len(), ?shard, dir = %dir.display(), "selectors loaded");
    run_service(&settings, store, sites, Some(dir.clone()), |_| {}).await
}

pub(super) async fn demo_cmd(listen: String, data: Option<PathBuf>) -> Result<()> {
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
    let store = open_store(&data_dir, settings.store_cache_bytes())?;
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
pub(super) fn bundled_selector() -> PathBuf {
    let here = PathBuf::from("selectors/fixture-gzdt.toml");
    if here.is_file() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("selectors/fixture-gzdt.toml")
    }
}

pub(super) async fn healthcheck_cmd(url: Option<String>) -> Result<()> {
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
