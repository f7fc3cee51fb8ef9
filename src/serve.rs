//! The HTTP side: feeds, the index page, OPML, status, health and metrics.
//!
//! A feed is rendered and compressed (gzip, brotli) once per store change and cached, so a
//! poll costs a hash-map lookup: no rendering, no store scan. Each representation has its
//! own strong ETag (RFC 9110: different bytes, different tag). Serving never fetches and
//! never touches the file system: a feed name that is not a known site id is a 404.

use std::collections::HashMap;
use std::fmt::Write;
use std::io::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tower::ServiceBuilder;
use url::Url;

use crate::feed::{render, FeedMeta};
use crate::metrics::Metrics;
use crate::site::{Site, SiteSet};
use crate::store::Store;

/// Everything the handlers read.
pub struct AppState {
    pub store: Arc<Store>,
    pub sites: watch::Receiver<Arc<SiteSet>>,
    pub base_url: Option<Url>,
    pub metrics: Arc<Metrics>,
    /// Unix seconds of the scheduler's last turn; `None` for a server without a scheduler.
    pub heartbeat: Option<Arc<AtomicI64>>,
    /// Sites whose run panicked (waiting for their retry): `/healthz` says degraded.
    pub internal_errors: Arc<crate::schedule::InternalErrors>,
    cache: Mutex<HashMap<String, Arc<CachedFeed>>>,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        sites: watch::Receiver<Arc<SiteSet>>,
        base_url: Option<Url>,
        metrics: Arc<Metrics>,
        heartbeat: Option<Arc<AtomicI64>>,
    ) -> Self {
        AppState {
            store,
            sites,
            base_url,
            metrics,
            heartbeat,
            internal_errors: Arc::default(),
            cache: Mutex::default(),
        }
    }
}

/// One rendered feed in every encoding we serve.
struct CachedFeed {
    generation: u64,
    fingerprint: [u8; 32],
    self_url: String,
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    etag: String,
    last_modified: DateTime<Utc>,
    max_age: u64,
}

/// The one place errors become HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no such feed: {0}")]
    NotFound(String),
    #[error("store error: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// The router with every route and compression (for the non-feed routes; feeds come
/// compressed from the cache). Limits wrap the whole router in [`limited`].
pub fn app(state: Arc<AppState>) -> Router {
    let pages = Router::new()
        .route("/", get(index))
        .route("/opml", get(opml))
        .route("/status.json", get(status_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        .route("/feeds/{file}", get(feed))
        .merge(pages)
        .fallback(|| async { AppError::NotFound("no such page".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The router behind one global cap of `max_concurrent` requests: past it a request is
/// answered 503 with `Retry-After` at once instead of queueing; a request that takes 30 s
/// is cut with a 503 too. (Layered on the router as a whole: `Router::layer` would give
/// every route a cap of its own.)
pub fn limited(
    router: Router,
    max_concurrent: usize,
) -> impl tower::Service<
    axum::extract::Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |e: tower::BoxError| async move {
                let why = if e.is::<tower::timeout::error::Elapsed>() {
                    "request timed out\n"
                } else {
                    "overloaded, retry shortly\n"
                };
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    why,
                )
            },
        ))
        .load_shed()
        .concurrency_limit(max_concurrent)
        .timeout(Duration::from_secs(30))
        .service(router)
}

async fn count_requests(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let route = match path {
        p if p.starts_with("/feeds/") => "/feeds/{id}.atom",
        "/" | "/opml" | "/status.json" | "/healthz" | "/metrics" => path,
        _ => "other",
    }
    .to_owned();
    let response = next.run(req).await;
    state.metrics.add(
        "feedbridge_http_requests_total",
        &[("route", &route), ("status", response.status().as_str())],
        1.0,
    );
    response
}

fn site_of(state: &AppState, id: &str) -> Option<Arc<Site>> {
    state.sites.borrow().sites.get(id).cloned()
}

/// This service's public base: the configured URL, else the request's Host.
fn base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(b) = &state.base_url {
        return b.as_str().trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn feed(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = file
        .strip_suffix(".atom")
        .ok_or_else(|| AppError::NotFound(file.clone()))?;
    let site = site_of(&state, id).ok_or_else(|| AppError::NotFound(file.clone()))?;
    let self_url = format!("{}/feeds/{}.atom", base(&state, &headers), site.id);
    let cached = cached_feed(&state, &site, self_url)?;

    let encoding = choose_encoding(&headers);
    let (body, tag_suffix, content_encoding) = match encoding {
        Enc::Brotli => (cached.brotli.clone(), "-br", Some("br")),
        Enc::Gzip => (cached.gzip.clone(), "-gz", Some("gzip")),
        Enc::Identity => (cached.identity.clone(), "", None),
    };
    let etag = format!("\"{}{tag_suffix}\"", cached.etag);
    let last_modified = cached
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, hv(&etag));
    h.insert(header::LAST_MODIFIED, hv(&last_modified));
    h.insert(
        header::CACHE_CONTROL,
        hv(&format!("public, max-age={}", cached.max_age)),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if not_modified(&headers, &cached.etag, cached.last_modified) {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, hv(&body.len().to_string()));
    if let Some(ce) = content_encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(ce));
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    Ok((StatusCode::OK, h, body).into_response())
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The cached feed, rendered anew only when the site's items or rules changed.
fn cached_feed(
    state: &AppState,
    site: &Site,
    self_url: String,
) -> Result<Arc<CachedFeed>, AppError> {
    let generation = state.store.generation(&site.id);
    if let Ok(cache) = state.cache.lock() {
        if let Some(c) = cache.get(&site.id) {
            if c.generation == generation
                && c.fingerprint == site.fingerprint
                && c.self_url == self_url
            {
                return Ok(c.clone());
            }
        }
    }
    let items = state.store.recent(&site.id, site.max_items)?;
    let now = Utc::now();
    let meta = FeedMeta {
        site_id: site.id.clone(),
        title: site.title.clone(),
        home: site.home.as_ref().map(|h| h.to_string()),
        self_url: self_url.clone(),
        language: site.language.clone(),
        timezone: site.timezone,
    };
    let identity = Bytes::from(render(&meta, &items, now));
    let last_modified = items.iter().map(|i| i.updated).max().unwrap_or(now);
    let c = Arc::new(CachedFeed {
        generation,
        fingerprint: site.fingerprint,
        etag: blake3::hash(&identity).to_hex()[..32].to_owned(),
        gzip: gzip(&identity),
        brotli: brotli_compress(&identity),
        identity,
        self_url,
        last_modified,
        max_age: max_age(site, now),
    });
    state
        .metrics
        .add("feedbridge_feed_renders_total", &[("site", &site.id)], 1.0);
    if let Ok(mut cache) = state.cache.lock() {
        cache.retain(|id, _| state.sites.borrow().sites.contains_key(id));
        cache.insert(site.id.clone(), c.clone());
    }
    Ok(c)
}

/// Polls more often than the site changes are wasted: cache for the schedule's interval
/// (between 1 minute and 1 hour).
fn max_age(site: &Site, now: DateTime<Utc>) -> u64 {
    let next = site.schedule.next_after(now, site.timezone);
    let after = next.and_then(|n| site.schedule.next_after(n, site.timezone));
    match (next, after) {
        (Some(a), Some(b)) => ((b - a).num_seconds().max(0) as u64).clamp(60, 3600),
        _ => 3600,
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(data);
    enc.finish().map(Bytes::from).unwrap_or_default()
}

/// Quality 6 with a 1 MiB window: measured on a 391 KB feed, quality 9 / 4 MiB window
/// made a 1.4% smaller body but raised the server's peak RSS from 24 to 42 MiB.
fn brotli_compress(data: &[u8]) -> Bytes {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 6, 20);
        let _ = w.write_all(data);
    }
    Bytes::from(out)
}

#[derive(Debug, PartialEq, Eq)]
enum Enc {
    Identity,
    Gzip,
    Brotli,
}

/// The best encoding the client accepts (q=0 refuses), brotli before gzip.
fn choose_encoding(headers: &HeaderMap) -> Enc {
    let Some(accept) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return Enc::Identity;
    };
    let accepts = |name: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case(name) || coding == "*") && q > 0.0
        })
    };
    if accepts("br") {
        Enc::Brotli
    } else if accepts("gzip") {
        Enc::Gzip
    } else {
        Enc::Identity
    }
}

/// `If-None-Match` (a list or `*`; weak comparison, any encoding suffix) wins over
/// `If-Modified-Since`, as RFC 9110 asks.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: DateTime<Utc>) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm.split(',').any(|t| {
            let t = t.trim().trim_start_matches("W/").trim_matches('"');
            t == "*"
                || t == etag
                || t.strip_prefix(etag)
                    .is_some_and(|s| s == "-gz" || s == "-br")
        });
    }
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    {
        if let Ok(since) = DateTime::parse_from_rfc2822(ims.trim().replace("GMT", "+0000").as_str())
        {
            return last_modified.timestamp() <= since.timestamp();
        }
    }
    false
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn index(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    let mut links = String::new();
    let mut rows = String::new();
    for site in set.sites.values() {
        let url = format!("{base}/feeds/{}.atom", site.id);
        let _ = writeln!(
            links,
            r#"<link rel="alternate" type="application/atom+xml" title="{}" href="{}">"#,
            esc(&site.title),
            esc(&url)
        );
        let status = state.store.run_status(&site.id)?;
        let (when, outcome, error) = match &status {
            Some(s) => (
                s.finished
                    .with_timezone(&site.timezone)
                    .format("%Y-%m-%d %H:%M:%S %:z")
                    .to_string(),
                format!("{:?}: {} new, {} updated", s.outcome, s.new, s.updated),
                s.last_error.clone().unwrap_or_default(),
            ),
            None => (
                "never".into(),
                "waiting for the first run".into(),
                String::new(),
            ),
        };
        let _ = writeln!(
            rows,
            r#"<tr><td>{}<br><small>{}</small></td><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class="err">{}</td></tr>"#,
            esc(&site.title),
            esc(&site.id),
            esc(&url),
            esc(&url),
            esc(&when),
            esc(&outcome),
            state.store.count(&site.id),
            esc(&error)
        );
    }
    let mut errors = String::new();
    for e in &set.errors {
        let _ = writeln!(errors, "<li>{}</li>", esc(&e.to_string()));
    }
    let errors = if errors.is_empty() {
        String::new()
    } else {
        format!("<h2>Selector files not applied (their last good rules keep running)</h2><ul class=\"err\">{errors}</ul>")
    };
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>feedbridge</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{links}<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.4em;text-align:left;vertical-align:top}}.err{{color:#b00}}</style>
</head><body>
<h1>feedbridge</h1>
<p>{} feeds. <a href="{base}/opml">OPML</a> · <a href="{base}/status.json">status.json</a> · <a href="{base}/metrics">metrics</a></p>
<table><tr><th>Feed</th><th>Subscribe</th><th>Last run</th><th>Outcome</th><th>Items</th><th>Last error</th></tr>
{rows}</table>
{errors}
</body></html>
"#,
        set.sites.len()
    );
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

async fn opml(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    let mut outlines = String::new();
    for site in set.sites.values() {
        let html_url = site
            .home
            .as_ref()
            .map(|h| format!(r#" htmlUrl="{}""#, esc(h.as_str())))
            .unwrap_or_default();
        let _ = writeln!(
            outlines,
            r#"    <outline type="rss" text="{0}" title="{0}" xmlUrl="{1}/feeds/{2}.atom"{3}/>"#,
            esc(&site.title),
            esc(&base),
            site.id,
            html_url
        );
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head><title>feedbridge feeds</title></head>\n  <body>\n{outlines}  </body>\n</opml>\n"
    );
    ([(header::CONTENT_TYPE, "text/x-opml; charset=utf-8")], body).into_response()
}

async fn status_json(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    let mut sites = Vec::new();
    for site in set.sites.values() {
        sites.push(serde_json::json!({
            "id": site.id,
            "title": site.title,
            "feed": format!("{base}/feeds/{}.atom", site.id),
            "file": site.path.display().to_string(),
            "schedule": site.schedule.as_str(),
            "items": state.store.count(&site.id),
            "last_run": state.store.run_status(&site.id)?,
        }));
    }
    let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    let body = serde_json::json!({ "sites": sites, "errors": errors });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = state.store.is_healthy();
    let scheduler_ok = state
        .heartbeat
        .as_ref()
        .is_none_or(|h| Utc::now().timestamp() - h.load(Ordering::Relaxed) < 60);
    let troubled = state.internal_errors.sites();
    if store_ok && scheduler_ok && !troubled.is_empty() {
        // Degraded, not dead: a restart would not fix a bug, and the other sites run.
        let why = format!(
            "degraded: {} sites in internal-error ({})\n",
            troubled.len(),
            troubled.join(", ")
        );
        (StatusCode::OK, why).into_response()
    } else if store_ok && scheduler_ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let why = format!("store ok: {store_ok}, scheduler alive: {scheduler_ok}\n");
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    state.metrics.render(&mut out);
    let set = state.sites.borrow().clone();
    let _ = writeln!(out, "# TYPE feedbridge_site_items gauge");
    for id in set.sites.keys() {
        let _ = writeln!(
            out,
            "feedbridge_site_items{{site=\"{id}\"}} {}",
            state.store.count(id)
        );
    }
    let _ = writeln!(out, "# TYPE feedbridge_site_consecutive_failures gauge");
    for id in set.sites.keys() {
        let n = state
            .store
            .run_status(id)
            .ok()
            .flatten()
            .map_or(0, |s| s.consecutive_failures);
        let _ = writeln!(
            out,
            "feedbridge_site_consecutive_failures{{site=\"{id}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# TYPE feedbridge_selector_files_failed gauge\nfeedbridge_selector_files_failed {}",
        set.errors.len()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Serves `app` (behind [`limited`]) on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    max_concurrent: usize,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let service = tower::make::Shared::new(limited(app, max_concurrent));
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn past_the_cap_requests_get_503_with_retry_after() {
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let slot = Arc::new(Mutex::new(Some((entered_tx, release_rx))));
        let router = Router::new()
            .route(
                "/slow",
                get(move || {
                    let pair = slot.lock().ok().and_then(|mut s| s.take());
                    async move {
                        if let Some((entered, release)) = pair {
                            let _ = entered.send(());
                            let _ = release.await;
                        }
                        "slow"
                    }
                }),
            )
            .route("/fast", get(|| async { "fast" }));
        let svc = limited(router, 1);
        let get_req = |p: &str| {
            axum::extract::Request::builder()
                .uri(p)
                .body(Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(svc.clone().oneshot(get_req("/slow")));
        entered_rx.await.unwrap();
        // The one slot is taken: an unrelated route is shed at once, not queued.
        let shed = svc.clone().oneshot(get_req("/fast")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        let ok = svc.oneshot(get_req("/fast")).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }

    #[test]
    fn encodings_and_conditionals() {
        let mut h = HeaderMap::new();
        assert_eq!(choose_encoding(&h), Enc::Identity);
        h.insert(header::ACCEPT_ENCODING, hv("gzip, deflate"));
        assert_eq!(choose_encoding(&h), Enc::Gzip);
        h.insert(header::ACCEPT_ENCODING, hv("gzip;q=1.0, br;q=0"));
        assert_eq!(choose_encoding(&h), Enc::Gzip);
        h.insert(header::ACCEPT_ENCODING, hv("br"));
        assert_eq!(choose_encoding(&h), Enc::Brotli);

        let lm = Utc::now();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, hv("\"x\", W/\"abc-gz\""));
        assert!(not_modified(&h, "abc", lm));
        h.insert(header::IF_NONE_MATCH, hv("\"x\""));
        assert!(!not_modified(&h, "abc", lm));
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_MODIFIED_SINCE,
            hv(&lm.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
        );
        assert!(not_modified(&h, "abc", lm));
    }
}
