//! The HTTP side: feeds, the dashboard (`dashboard`), OPML, status, health and metrics.
//!
//! A feed is rendered and compressed (gzip, brotli) once per store change and format
//! (Atom, RSS 2.0, JSON Feed) and cached within a byte budget (`render_cache`), so a poll
//! costs a hash-map lookup: no rendering, no store scan. Each representation has its
//! own strong ETag (RFC 9110: different bytes, different tag). Serving never fetches and
//! never touches the file system: a feed name that is not a known site id is a 404.

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

mod dashboard;
pub mod images;
mod listener;
mod render_cache;
mod status;
pub mod websub;

pub use listener::{default_open_connections, raise_fd_limit, serve, SocketLimits};
use status::{healthz, metrics, opml, status_json};

use crate::feed::{FeedMeta, Format};
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
    /// The scheduler's planned next runs; empty for a server without a scheduler.
    pub planned: Arc<crate::schedule::PlannedRuns>,
    /// The WebSub hub feeds name when their site names none (`--hub`).
    pub hub: Option<Url>,
    /// WebSub publishes that failed, per site (shown in `/status.json`).
    pub hub_warnings: Arc<websub::HubWarnings>,
    /// One slot per (site, format): each format is rendered and compressed on its own.
    cache: render_cache::RenderCache<(String, Format), RenderedFeed>,
    /// The `/img/` proxy; `None`: proxied feeds keep their images direct.
    pub images: Option<Arc<images::ImageProxy>>,
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
            planned: Arc::default(),
            hub: None,
            hub_warnings: Arc::default(),
            images: None,
            cache: render_cache::RenderCache::new(DEFAULT_RENDER_CACHE_BYTES),
        }
    }

    /// Sets the byte budget of the rendered-feed cache (before serving: it empties it).
    pub fn with_render_cache_bytes(mut self, budget: usize) -> Self {
        self.cache = render_cache::RenderCache::new(budget);
        self
    }

    fn slot(&self, site_id: &str, format: Format) -> Arc<FeedSlot> {
        // A deleted selector file's feed ages out of the cache like any feed not polled.
        self.cache.slot(&(site_id.to_owned(), format))
    }
}

/// The rendered-feed budget of a server built without one (tests, `demo`).
pub const DEFAULT_RENDER_CACHE_BYTES: usize = 32 << 20;

/// One feed's cache entry. `render` makes a burst of polls after a change render once.
type FeedSlot = render_cache::Slot<RenderedFeed>;

fn fresh(slot: &FeedSlot, generation: u64, fingerprint: &[u8; 32]) -> Option<Arc<RenderedFeed>> {
    slot.get(|c| c.generation == generation && c.fingerprint == *fingerprint)
}

impl render_cache::Weigh for RenderedFeed {
    fn bytes(&self) -> usize {
        let brotli: usize = self
            .brotli
            .lock()
            .map_or(0, |v| v.iter().map(|(b, v)| b.len() + v.len()).sum());
        // No identity bytes are kept: they are inflated from the gzip pieces on demand.
        let gzip: usize = self.gzip.pieces.iter().map(Bytes::len).sum();
        gzip + brotli
    }
}

/// Feeds with brotli bytes kept per public base (Host); other bases get gzip, which is
/// spliced per request at no compression cost.
const BROTLI_VARIANTS: usize = 4;

/// One rendering of a feed, independent of the public base its self link (and proxied
/// image URLs) name: the base goes between each two `segments`. Serving a base is then a
/// splice: the identity bytes are the segments with the base between them, the gzip bytes
/// are each segment deflated on its own (flushed to a byte boundary, no back-references
/// past it), the base as stored blocks between them and a CRC combined from the parts'.
/// Rotating Host headers cost no render and no compression. Only the gzip parts are
/// kept (a fifth of the identity bytes, for a cache that holds five times the feeds): the
/// rare client without gzip, and brotli compression, get the segments inflated again.
struct RenderedFeed {
    format: Format,
    generation: u64,
    fingerprint: [u8; 32],
    content_hash: blake3::Hash,
    gzip: GzipParts,
    brotli: Mutex<Vec<(String, Bytes)>>,
    last_modified: DateTime<Utc>,
    max_age: u64,
}

/// A gzip member cut around the spliced bases (RFC 1951 / 1952).
struct GzipParts {
    /// Per segment a fresh raw-deflate stream, ending sync-flushed (byte-aligned), the
    /// last one in the final block; the first has the gzip header before it.
    pieces: Vec<Bytes>,
    crcs: Vec<crc32fast::Hasher>,
    /// Each segment's length before compression.
    lens: Vec<usize>,
    len: usize,
}

const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl GzipParts {
    fn new(segments: &[Bytes]) -> GzipParts {
        let last = segments.len().saturating_sub(1);
        let pieces = segments
            .iter()
            .enumerate()
            .map(|(i, segment)| {
                let mut out = if i == 0 {
                    GZIP_HEADER.to_vec()
                } else {
                    Vec::new()
                };
                let start = out.len();
                let mut enc =
                    flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::default());
                let _ = enc.write_all(segment);
                if i == last {
                    let _ = enc.try_finish();
                    drop(enc);
                } else {
                    // `flush` is a sync flush: the output ends on a byte boundary after an
                    // empty stored block; the encoder is then dropped, so no final block
                    // follows.
                    let _ = enc.flush();
                    let written = enc.total_out() as usize;
                    drop(enc);
                    out.truncate(start + written);
                }
                // Cached for long: the spare capacity of the growing buffer (up to half
                // of it) would be held too, unseen by the cache's byte count.
                out.shrink_to_fit();
                Bytes::from(out)
            })
            .collect();
        let crcs = segments
            .iter()
            .map(|segment| {
                let mut crc = crc32fast::Hasher::new();
                crc.update(segment);
                crc
            })
            .collect();
        GzipParts {
            pieces,
            crcs,
            lens: segments.iter().map(Bytes::len).collect(),
            len: segments.iter().map(Bytes::len).sum(),
        }
    }

    /// The segments again, inflated from the pieces (one inflater per piece: each is a
    /// deflate stream of its own).
    fn segments(&self) -> Vec<Bytes> {
        self.pieces
            .iter()
            .zip(&self.lens)
            .enumerate()
            .map(|(i, (piece, &len))| {
                let input = if i == 0 {
                    piece.get(GZIP_HEADER.len()..).unwrap_or_default()
                } else {
                    &piece[..]
                };
                let mut inflater = flate2::Decompress::new(false);
                let mut out = Vec::with_capacity(len);
                while out.len() < len {
                    let consumed = inflater.total_in() as usize;
                    let produced = out.len();
                    let rest = input.get(consumed..).unwrap_or_default();
                    let status =
                        inflater.decompress_vec(rest, &mut out, flate2::FlushDecompress::Sync);
                    let stalled = inflater.total_in() as usize == consumed && out.len() == produced;
                    if status.is_err() || stalled {
                        // Our own bytes: unreachable unless memory is corrupt.
                        break;
                    }
                }
                Bytes::from(out)
            })
            .collect()
    }

    /// The gzip member of the segments with `middle` between each two, as chunks.
    fn splice(&self, middle: &[u8]) -> Vec<Bytes> {
        let mut stored = Vec::with_capacity(middle.len() + 5 * (middle.len() / 65535 + 1));
        let mut chunks = middle.chunks(65535).peekable();
        if chunks.peek().is_none() {
            stored.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
        }
        for chunk in chunks {
            // BFINAL 0, BTYPE 00 (stored), padded to the byte; LEN, NLEN little-endian.
            let len = chunk.len() as u16;
            stored.push(0);
            stored.extend_from_slice(&len.to_le_bytes());
            stored.extend_from_slice(&(!len).to_le_bytes());
            stored.extend_from_slice(chunk);
        }
        let stored = Bytes::from(stored);
        let mut middle_crc = crc32fast::Hasher::new();
        middle_crc.update(middle);
        let mut crc = crc32fast::Hasher::new();
        let mut out = Vec::with_capacity(self.pieces.len() * 2 + 1);
        for (i, (piece, piece_crc)) in self.pieces.iter().zip(&self.crcs).enumerate() {
            if i > 0 {
                out.push(stored.clone());
                crc.combine(&middle_crc);
            }
            out.push(piece.clone());
            crc.combine(piece_crc);
        }
        let size = (self.len + middle.len() * self.pieces.len().saturating_sub(1)) as u32;
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        trailer.extend_from_slice(&size.to_le_bytes());
        out.push(Bytes::from(trailer));
        out
    }
}

impl RenderedFeed {
    /// Splits a feed rendered with `placeholder` as its base at each occurrence.
    fn new(
        format: Format,
        identity: Vec<u8>,
        placeholder: &str,
        generation: u64,
        site: &Site,
        last_modified: DateTime<Utc>,
        max_age: u64,
    ) -> RenderedFeed {
        let identity = Bytes::from(identity);
        let mut segments = Vec::new();
        let mut from = 0;
        for at in find_all(&identity, placeholder.as_bytes()) {
            // Occurrences do not overlap: the placeholder has no repeated head.
            if at >= from {
                segments.push(identity.slice(from..at));
                from = at + placeholder.len();
            }
        }
        segments.push(identity.slice(from..));
        let mut hasher = blake3::Hasher::new();
        for segment in &segments {
            hasher.update(&(segment.len() as u64).to_le_bytes());
            hasher.update(segment);
        }
        RenderedFeed {
            format,
            generation,
            fingerprint: site.fingerprint,
            gzip: GzipParts::new(&segments),
            content_hash: hasher.finalize(),
            brotli: Mutex::default(),
            last_modified,
            max_age,
        }
    }

    /// The text spliced in for `base`, escaped as the format's writer escapes the self
    /// link (an XML attribute, a JSON string).
    fn middle(&self, base: &str) -> Bytes {
        if self.gzip.pieces.len() <= 1 {
            return Bytes::new();
        }
        match self.format {
            Format::Atom | Format::Rss => Bytes::from(xml_attr(base).into_owned()),
            Format::Json => Bytes::from(crate::feed::json::string_body(base)),
        }
    }

    /// Strong ETag of the bytes served for `base` (different bases, different bytes).
    fn etag(&self, middle: &[u8]) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.content_hash.as_bytes());
        h.update(middle);
        h.finalize().to_hex()[..32].to_owned()
    }

    fn identity(&self, middle: &Bytes) -> Vec<Bytes> {
        let segments = self.gzip.segments();
        let mut out = Vec::with_capacity(segments.len() * 2);
        for (i, segment) in segments.into_iter().enumerate() {
            if i > 0 {
                out.push(middle.clone());
            }
            out.push(segment);
        }
        out
    }

    fn cached_brotli(&self, base: &str) -> Option<Bytes> {
        let variants = self.brotli.lock().ok()?;
        variants
            .iter()
            .find(|(b, _)| b == base)
            .map(|(_, v)| v.clone())
    }

    fn brotli_full(&self) -> bool {
        self.brotli
            .lock()
            .map_or(true, |v| v.len() >= BROTLI_VARIANTS)
    }
}

fn find_all<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len().max(1))
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// Escapes like the Atom writer (quick-xml) escapes attribute values.
fn xml_attr(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(esc(s).replace('\'', "&apos;"))
}

/// The base a feed is rendered with, unguessable so that no item text can contain it:
/// it marks where the request's base is spliced in.
fn placeholder() -> &'static str {
    static PLACEHOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        // A URL of its own (a reserved TLD), so that a renderer keeping only http(s)
        // links keeps the proxied images that start with it.
        format!("http://feedbridge-base-{:016x}.invalid", h.finish())
    })
}

/// The one place CPU-heavy work (rendering, compressing) runs: the server's lane of the
/// bounded blocking pool ([`crate::cpu::run_serve`]), never the async workers.
pub async fn cpu_bound<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    crate::cpu::run_serve(job).await.map_err(|_| AppError::Busy)
}

/// The one place errors become HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no such feed: {}", printable_name(.0))]
    NotFound(String),
    #[error("store error: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("overloaded, retry shortly")]
    Busy,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Store(_) | AppError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// A requested name as it may be echoed: no control characters (C0, C1, NUL), no bidi
/// overrides or isolates, at most 100 characters.
fn printable_name(s: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = s
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .take(MAX + 1)
        .collect();
    if out.chars().count() > MAX {
        out = out.chars().take(MAX).collect();
        out.push('…');
    }
    out
}

/// The router with every route and compression (for the non-feed routes; feeds come
/// compressed from the cache). Limits wrap the whole router in [`limited`].
pub fn app(state: Arc<AppState>) -> Router {
    let pages = Router::new()
        .route("/", get(dashboard::index))
        .route("/sites/{id}", get(dashboard::site_page))
        .route("/opml", get(opml))
        .route("/status.json", get(status_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        .route("/feeds/{file}", get(feed))
        .route("/img/{sig}/{enc}", get(images::image))
        .route("/shard/{k}/img/{sig}/{enc}", get(shard_image))
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
        p if p.starts_with("/feeds/") => match p.rsplit_once('.') {
            Some((_, "rss")) => "/feeds/{id}.rss",
            Some((_, "json")) => "/feeds/{id}.json",
            _ => "/feeds/{id}.atom",
        },
        p if p.starts_with("/sites/") => "/sites/{id}",
        p if p.starts_with("/img/") || p.starts_with("/shard/") => "/img",
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

/// `/shard/<k>/img/...` asked of the node itself (no proxy in front, which would strip
/// the prefix): the same image, verified by this node's key.
async fn shard_image(
    state: State<Arc<AppState>>,
    path: Result<Path<(String, String, String)>, axum::extract::rejection::PathRejection>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, images::ImageError> {
    let Ok(Path((_, sig, enc))) = path else {
        return Err(images::ImageError::NotFound);
    };
    images::image(state, Ok(Path((sig, enc))), method, headers).await
}

fn site_of(state: &AppState, id: &str) -> Option<Arc<Site>> {
    state.sites.borrow().sites.get(id).cloned()
}

/// This service's public base: the configured URL, else the request's Host (lowercased;
/// one with characters a host cannot have, or longer than 255, counts as `localhost`).
fn base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(b) = &state.base_url {
        return b.as_str().trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{}", host.to_ascii_lowercase())
}

async fn feed(
    State(state): State<Arc<AppState>>,
    file: Result<Path<String>, axum::extract::rejection::PathRejection>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Path(file) = file.map_err(|_| AppError::NotFound("(a name that is not UTF-8)".into()))?;
    let (id, format) = file
        .rsplit_once('.')
        .and_then(|(id, ext)| Some((id, Format::from_ext(ext)?)))
        .ok_or_else(|| AppError::NotFound(file.clone()))?;
    let Some(site) = site_of(&state, id) else {
        return Ok(
            other_shard(&state, id).unwrap_or_else(|| AppError::NotFound(file).into_response())
        );
    };
    let base = base(&state, &headers);
    let cached = cached_feed(&state, &site, format).await?;
    let middle = cached.middle(&base);
    let etag = cached.etag(&middle);

    let encoding = choose_encoding(&headers);
    let brotli = match encoding {
        Enc::Brotli => brotli_variant(&state, &site, &cached, &base).await,
        _ => None,
    };
    let (chunks, tag_suffix, content_encoding): (Vec<Bytes>, _, _) = match (encoding, brotli) {
        (Enc::Brotli, Some(br)) => (vec![br], "-br", Some("br")),
        (Enc::Brotli | Enc::Gzip, _) => (cached.gzip.splice(&middle), "-gz", Some("gzip")),
        (Enc::Identity, _) => (cached.identity(&middle), "", None),
    };
    let last_modified = cached
        .last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, hv(&format!("\"{etag}{tag_suffix}\"")));
    h.insert(header::LAST_MODIFIED, hv(&last_modified));
    h.insert(
        header::CACHE_CONTROL,
        hv(&format!("public, max-age={}", cached.max_age)),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if not_modified(&headers, &etag, cached.last_modified) {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let length: usize = chunks.iter().map(Bytes::len).sum();
    h.insert(header::CONTENT_LENGTH, hv(&length.to_string()));
    if let Some(ce) = content_encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(ce));
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        // The chunks go out as they are: no copy of the shared feed bytes per request.
        Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, std::convert::Infallible>),
        ))
    };
    Ok((StatusCode::OK, h, body).into_response())
}

/// A feed of another shard's site, asked of this node: 404 naming the owner. Not 421
/// (Misdirected Request): that one is defined for HTTP/2 connection reuse, nginx does not
/// retry on it by default, and feed readers show it as an odd failure; a 404 is what every
/// reader and proxy handles (the generated nginx config retries the next node on it), and
/// `no-store` keeps a cache from remembering a misroute.
fn other_shard(state: &AppState, id: &str) -> Option<Response> {
    let set = state.sites.borrow().clone();
    let shard = set.shard?;
    if !set.elsewhere.contains_key(id) {
        return None;
    }
    let body = format!(
        "feed {} is served by shard {}, not by this node (shard {shard})\n",
        printable_name(id),
        shard.owner_of(id)
    );
    Some(
        (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
    )
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The cached feed, rendered anew only when the site's items or rules changed; a burst of
/// polls after a change waits for one rendering.
async fn cached_feed(
    state: &AppState,
    site: &Arc<Site>,
    format: Format,
) -> Result<Arc<RenderedFeed>, AppError> {
    let slot = state.slot(&site.id, format);
    let generation = images::feed_generation(state, site);
    if let Some(c) = fresh(&slot, generation, &site.fingerprint) {
        return Ok(c);
    }
    let _rendering = slot.render.lock().await;
    let generation = images::feed_generation(state, site);
    if let Some(c) = fresh(&slot, generation, &site.fingerprint) {
        return Ok(c);
    }
    let store = state.store.clone();
    let job_site = site.clone();
    let job_hub = site.hub.clone().or_else(|| state.hub.clone());
    let proxy = state.images.clone().filter(|_| site.images.proxied());
    let image_base = state
        .base_url
        .as_ref()
        .map(|b| b.as_str().trim_end_matches('/').to_owned());
    // Sharded, images go under the node's own prefix: only its key verifies them.
    let image_prefix = state
        .sites
        .borrow()
        .shard
        .map(crate::shard::image_prefix)
        .unwrap_or_default();
    let rendered = cpu_bound(move || -> Result<RenderedFeed, AppError> {
        let site = job_site;
        let mut items = store.recent(&site.id, site.max_items)?;
        let now = Utc::now();
        let placeholder = placeholder();
        // RSS needs a channel link: without a home, the page the site is read from (the
        // feed's own URL would put the placeholder in twice).
        let home = match format {
            Format::Atom => site.home.clone(),
            Format::Rss | Format::Json => site
                .home
                .clone()
                .or_else(|| site.start_urls().first().cloned()),
        };
        let mut known = crate::feed::KnownImages::new();
        if let Some(proxy) = proxy {
            let base = image_base.as_deref().unwrap_or(placeholder);
            let base = format!("{base}{image_prefix}");
            images::rewrite_items(&mut items, &proxy.signer, &site.id, &base);
            if site.images == crate::site::ImageMode::InlineCache {
                known = proxy.known_images(&items, &base);
            }
        }
        let meta = FeedMeta {
            site_id: site.id.clone(),
            title: site.title.clone(),
            home: home.map(|h| h.to_string()),
            self_url: format!("{placeholder}/feeds/{}.{}", site.id, format.ext()),
            language: site.language.clone(),
            timezone: site.timezone,
        };
        let hub = job_hub.as_ref().map(Url::as_str);
        let identity = format.render_known(&meta, hub, &items, &known, now);
        let last_modified = items.iter().map(|i| i.updated).max().unwrap_or(now);
        Ok(RenderedFeed::new(
            format,
            identity,
            placeholder,
            generation,
            &site,
            last_modified,
            max_age(&site, now),
        ))
    })
    .await??;
    let rendered = Arc::new(rendered);
    state
        .metrics
        .add("feedbridge_feed_renders_total", &[("site", &site.id)], 1.0);
    state
        .cache
        .put(&(site.id.clone(), format), &slot, rendered.clone());
    Ok(rendered)
}

/// Brotli bytes of `cached` for `base`: kept for the first few bases asking, compressed
/// only when no other compression of this feed is running; `None` means serve gzip.
async fn brotli_variant(
    state: &AppState,
    site: &Site,
    cached: &Arc<RenderedFeed>,
    base: &str,
) -> Option<Bytes> {
    if let Some(b) = cached.cached_brotli(base) {
        return Some(b);
    }
    if cached.brotli_full() {
        return None;
    }
    let slot = state.slot(&site.id, cached.format);
    let _compressing = slot.render.try_lock().ok()?;
    if let Some(b) = cached.cached_brotli(base) {
        return Some(b);
    }
    let job = cached.clone();
    let middle = cached.middle(base);
    let bytes = cpu_bound(move || {
        let mut identity = Vec::new();
        for part in job.identity(&middle) {
            identity.extend_from_slice(&part);
        }
        brotli_compress(&identity)
    })
    .await
    .ok()?;
    state.cache.grow(&slot, cached, |feed| {
        let Ok(mut variants) = feed.brotli.lock() else {
            return 0;
        };
        if variants.len() >= BROTLI_VARIANTS {
            return 0;
        }
        variants.push((base.to_owned(), bytes.clone()));
        base.len() + bytes.len()
    });
    Some(bytes)
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

/// Quality 6 with a 1 MiB window: measured on a 391 KB feed, quality 9 / 4 MiB window
/// made a 1.4% smaller body but raised the server's peak RSS from 24 to 42 MiB.
fn brotli_compress(data: &[u8]) -> Bytes {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 6, 20);
        let _ = w.write_all(data);
    }
    out.shrink_to_fit();
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

    fn gunzip(parts: &[Bytes]) -> Vec<u8> {
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&joined[..]), &mut out)
            .expect("a valid gzip member");
        out
    }

    proptest::proptest! {
        #[test]
        fn gzip_splice_decodes_to_prefix_middle_suffix(
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            middle in "[a-z0-9.:-]{0,80}",
            suffix_seed in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            repeat in 1usize..60,
        ) {
            // A repetitive suffix, so that its deflate stream uses back-references.
            let suffix: Vec<u8> = suffix_seed.iter().copied().cycle().take(suffix_seed.len() * repeat).collect();
            let parts = GzipParts::new(&[Bytes::from(prefix.clone()), Bytes::from(suffix.clone()), Bytes::from(prefix.clone())]);
            let mut expected = prefix.clone();
            expected.extend_from_slice(middle.as_bytes());
            expected.extend_from_slice(&suffix);
            expected.extend_from_slice(middle.as_bytes());
            expected.extend_from_slice(&prefix);
            proptest::prop_assert_eq!(gunzip(&parts.splice(middle.as_bytes())), expected);
            let again: Vec<Vec<u8>> = parts.segments().iter().map(|s| s.to_vec()).collect();
            proptest::prop_assert_eq!(again, vec![prefix.clone(), suffix, prefix]);
        }
    }

    #[test]
    fn gzip_splice_of_a_base_longer_than_one_stored_block() {
        let feed = "<feed>".repeat(5000);
        let parts = GzipParts::new(&[Bytes::from(feed.clone()), Bytes::from(feed.clone())]);
        let long = vec![b'x'; 70_000];
        let out = gunzip(&parts.splice(&long));
        assert_eq!(out.len(), feed.len() * 2 + long.len());
        assert_eq!(&out[feed.len()..feed.len() + long.len()], &long[..]);
        assert_eq!(gunzip(&parts.splice(b"")), feed.repeat(2).into_bytes());
    }

    #[test]
    fn echoed_names_lose_controls_and_bidi_and_are_capped() {
        let name = "a\0b\x1b[31mc\u{85}d\u{202e}e\u{2066}f\u{7f}.atom";
        assert_eq!(printable_name(name), "ab[31mcdef.atom");
        let long = printable_name(&"é".repeat(500));
        assert_eq!(long.chars().count(), 101);
        assert!(long.ends_with('…'));
        let e = AppError::NotFound("x\u{202e}y".into()).to_string();
        assert_eq!(e, "no such feed: xy");
    }

    #[test]
    fn placeholder_splits_the_rendering_once() {
        let ph = placeholder();
        let text = format!("<feed><link href=\"{ph}/feeds/a.atom\"/><entry>{ph}x</entry>");
        // Twice: `RenderedFeed::new` serves such a rendering unspliced.
        let found: Vec<usize> = find_all(text.as_bytes(), ph.as_bytes()).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(xml_attr("http://a.b"), "http://a.b");
        assert_eq!(xml_attr("http://a/?x=1&y='"), "http://a/?x=1&amp;y=&apos;");
    }

    /// Renders of `site`'s feeds so far, from the metric.
    fn renders(state: &AppState, site: &str) -> u64 {
        let mut out = String::new();
        state.metrics.render(&mut out);
        let line = format!("feedbridge_feed_renders_total{{site=\"{site}\"}} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |n| n.parse().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cold_feed_renders_once_for_a_burst_and_again_after_eviction() {
        const SELECTOR: &str = "title = \"测试\"\ntimezone = \"Asia/Shanghai\"\nstart = [\"http://127.0.0.1:9/l.html\"]\n\n[list]\nitem = \"li\"\nlink = \"a\"\n";
        let dir = std::env::temp_dir().join(format!("feedbridge-rc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open(&dir).unwrap());
        let template = crate::site::compile(std::path::Path::new("t.toml"), SELECTOR).unwrap();
        let mut set = SiteSet::default();
        for id in ["a", "b"] {
            let mut site = template.clone();
            site.id = id.into();
            for n in 0..5 {
                let item = crate::model::Item {
                    url: format!("http://{id}.example/{n}"),
                    title: Some(format!("第{n}篇")),
                    content: Some("<p>正文</p>".repeat(200)),
                    ..Default::default()
                };
                store.upsert(id, &item, Utc::now()).unwrap();
            }
            set.sites.insert(id.into(), Arc::new(site));
        }
        let (_tx, rx) = watch::channel(Arc::new(set));
        // Room for one feed: a second one evicts the first.
        let state = Arc::new(
            AppState::new(store, rx, None, Default::default(), None).with_render_cache_bytes(1000),
        );
        let router = app(state.clone());
        let poll = |path: &'static str| {
            let router = router.clone();
            async move {
                let req = axum::extract::Request::builder()
                    .uri(path)
                    .header(header::ACCEPT_ENCODING, "gzip")
                    .body(Body::empty())
                    .unwrap();
                let response = router.oneshot(req).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap()
            }
        };
        let burst: Vec<_> = (0..32)
            .map(|_| tokio::spawn(poll("/feeds/a.atom")))
            .collect();
        let mut bodies = Vec::new();
        for b in burst {
            bodies.push(b.await.unwrap());
        }
        assert!(bodies.iter().all(|b| *b == bodies[0]));
        assert_eq!(renders(&state, "a"), 1, "one rendering for the burst");
        poll("/feeds/a.atom").await;
        assert_eq!(renders(&state, "a"), 1, "served from the cache");
        poll("/feeds/b.atom").await;
        let again = poll("/feeds/a.atom").await;
        assert_eq!(renders(&state, "a"), 2, "evicted, so rendered again");
        assert_eq!(gunzip(&[again]), gunzip(&[bodies[0].clone()]));
        assert!(state.cache.slots() <= 2, "{} slots", state.cache.slots());
        drop(router);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_open_connections_leave_headroom() {
        assert_eq!(default_open_connections(Some(1024)), 768);
        assert_eq!(default_open_connections(Some(100)), 50);
        assert_eq!(default_open_connections(Some(10)), 16);
        assert!(default_open_connections(None) > 1000);
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
