//! The image proxy: `GET /img/<signature>/<encoded>` for sites whose images refuse a
//! request without their own `Referer` (hotlink protection), so that the feed's images load.
//!
//! A feed of an `images = "proxy"` site points each image at this route (the rewrite is
//! done when the feed is rendered, so the store keeps the original URLs and switching the
//! mode needs no crawl). The path carries the site, the image URL and the article URL it
//! came from, signed with a key kept in the data dir: an unsigned or altered path is a
//! 404, so this is never an open proxy. The image is fetched under the site's own manners
//! and URL policy, with the article as `Referer`; only real images (sniffed from their
//! bytes) are served. Fetched images are kept on disk, content-addressed, under a size
//! budget that evicts the least recently used.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use url::Url;

use super::AppState;
use crate::feed::{KnownImage, KnownImages};
use crate::fetch::{FetchError, FetchOutcome, FetchSettings, Fetcher, Manners};
use crate::metrics::Metrics;
use crate::model::StoredItem;
use crate::url_policy::UrlPolicy;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Image requests to one host are spaced by the site's delay, but at most this: a reader
/// opening an article asks for all its images at once.
const MAX_IMAGE_SPACING: Duration = Duration::from_millis(250);
const KEY_FILE: &str = "image-key";

/// Why an image is not served. `NotFound` covers every path we did not sign.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no such image")]
    NotFound,
    #[error("not an image: {0}")]
    NotAnImage(&'static str),
    #[error("origin failed: {0}")]
    Origin(String),
    #[error("image cache: {0}")]
    Io(#[from] std::io::Error),
    #[error("image key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    /// The proxy could not open at start (see the log); feeds show images direct.
    #[error("the image proxy is unavailable")]
    Unavailable,
}

impl IntoResponse for ImageError {
    fn into_response(self) -> Response {
        let status = match self {
            ImageError::NotFound => StatusCode::NOT_FOUND,
            ImageError::NotAnImage(_) | ImageError::Origin(_) => StatusCode::BAD_GATEWAY,
            ImageError::Io(_) | ImageError::Key { .. } | ImageError::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (
            status,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// What a signed path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub site: String,
    pub image: Url,
    pub referer: Url,
}

/// Signs and reads proxy paths. The key never leaves the data dir.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Signer {
        Signer { key }
    }

    /// The key in `<data>/image-key` (mode 0600), made from the OS's random source on first
    /// start.
    pub fn load_or_create(data_dir: &FsPath) -> Result<Signer, ImageError> {
        let path = data_dir.join(KEY_FILE);
        let fail = |detail: String| ImageError::Key {
            path: path.clone(),
            detail,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| fail("not 32 bytes; delete it to make a new one".into()))?;
                return Ok(Signer { key });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        let mut key = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|e| fail(e.to_string()))?,
            &mut key,
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, &key).map_err(|e| fail(e.to_string()))?;
                f.sync_all().map_err(|e| fail(e.to_string()))?;
                Ok(Signer { key })
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Signer::load_or_create(data_dir)
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    fn mac(&self, encoded: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.key, encoded.as_bytes())
    }

    /// `/img/<signature>/<encoded>[.ext]` for `image` shown on the article `referer` of
    /// `site`. The image's own extension, when it has a known one, is kept (unsigned, and
    /// base64url has no `.`): renderers guess an enclosure's type from it.
    pub fn path(&self, site: &str, image: &str, referer: &str) -> String {
        let encoded = B64.encode(format!("{site}\n{image}\n{referer}"));
        let ext = crate::feed::image_type(image)
            .strip_prefix("image/")
            .filter(|_| {
                let path = image.split(['?', '#']).next().unwrap_or(image);
                path.rsplit('/').next().is_some_and(|f| f.contains('.'))
            })
            .map(|t| match t {
                "svg+xml" => ".svg".to_owned(),
                "jpeg" => ".jpg".to_owned(),
                t => format!(".{t}"),
            })
            .unwrap_or_default();
        format!("/img/{}/{encoded}{ext}", self.mac(&encoded).to_hex())
    }

    /// The cache key of `image` on `referer` of `site`: the signature its path carries.
    fn name(&self, site: &str, image: &str, referer: &str) -> blake3::Hash {
        self.mac(&B64.encode(format!("{site}\n{image}\n{referer}")))
    }

    /// What a path names, when its signature is ours (compared in constant time).
    pub fn verify(&self, signature: &str, encoded: &str) -> Option<ImageRef> {
        let encoded = encoded.split('.').next().unwrap_or(encoded);
        let given = blake3::Hash::from_hex(signature).ok()?;
        // blake3::Hash's `==` is constant-time.
        if given != self.mac(encoded) {
            return None;
        }
        let text = String::from_utf8(B64.decode(encoded).ok()?).ok()?;
        let mut parts = text.splitn(3, '\n');
        let site = parts.next()?.to_owned();
        let image = Url::parse(parts.next()?).ok()?;
        let referer = Url::parse(parts.next()?).ok()?;
        Some(ImageRef {
            site,
            image,
            referer,
        })
    }
}

/// Points the images of `items` (in `content` and the enclosures) at the proxy under
/// `base`; the article URL is each image's `Referer`. Pure: applied at render time.
pub fn rewrite_items(items: &mut [StoredItem], signer: &Signer, site: &str, base: &str) {
    for stored in items {
        let item = &mut stored.item;
        if Url::parse(&item.url).is_err() {
            continue;
        }
        let referer = item.url.clone();
        let proxied = |src: &str| -> Option<String> {
            is_http(src).then(|| format!("{base}{}", signer.path(site, src, &referer)))
        };
        if let Some(html) = &item.content {
            item.content = Some(rewrite_img_src(html, proxied));
        }
        for img in &mut item.images {
            if let Some(p) = proxied(img) {
                *img = p;
            }
        }
    }
}

fn is_http(u: &str) -> bool {
    let head = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    head.starts_with("http://") || head.starts_with("https://")
}

/// Rewrites the `src` of every `<img>` in sanitized HTML (ours: attributes in double
/// quotes, escaped with `&amp; &quot; &lt; &gt;`); a value `map` declines stays.
pub fn rewrite_img_src(html: &str, map: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut rest = html;
    while let Some(at) = rest.find("<img") {
        let (before, tag_and_after) = rest.split_at(at);
        out.push_str(before);
        let tag_end = tag_and_after.find('>').unwrap_or(tag_and_after.len());
        let (tag, after) = tag_and_after.split_at(tag_end);
        rest = after;
        let Some(src_at) = tag.find(" src=\"") else {
            out.push_str(tag);
            continue;
        };
        let value_start = src_at + " src=\"".len();
        let Some(value_len) = tag[value_start..].find('"') else {
            out.push_str(tag);
            continue;
        };
        let raw = &tag[value_start..value_start + value_len];
        let value = raw
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        out.push_str(&tag[..value_start]);
        match map(&value) {
            Some(new) => out.push_str(
                &new.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            ),
            None => out.push_str(raw),
        }
        out.push_str(&tag[value_start + value_len..]);
    }
    out.push_str(rest);
    out
}

/// The `src` of every `<img>` in sanitized HTML, as [`rewrite_img_src`] reads them (so
/// they name the same proxy paths).
pub fn img_srcs(html: &str) -> Vec<String> {
    let found = std::cell::RefCell::new(Vec::new());
    rewrite_img_src(html, |src| {
        found.borrow_mut().push(src.to_owned());
        None
    });
    found.into_inner()
}

/// The media type of image bytes, from their signature; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if is_avif(bytes) {
        return Some("image/avif");
    }
    if is_svg(bytes) {
        return Some("image/svg+xml");
    }
    None
}

/// An ISO-BMFF `ftyp` box whose major or a compatible brand is AVIF.
fn is_avif(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let end = size.clamp(16, 256).min(bytes.len());
    let brand = |b: &[u8]| b == b"avif" || b == b"avis";
    brand(&bytes[8..12]) || bytes[16..end].chunks_exact(4).any(brand)
}

/// XML text whose first element is `<svg`.
fn is_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let Ok(text) = std::str::from_utf8(head)
        .or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]).map_err(|_| ()))
    else {
        return false;
    };
    let mut t = text.trim_start_matches('\u{feff}').trim_start();
    // Skip the prolog: XML declaration, comments, doctype.
    loop {
        if let Some(r) = t.strip_prefix("<?") {
            let Some(end) = r.find("?>") else {
                return false;
            };
            t = r[end + 2..].trim_start();
        } else if let Some(r) = t.strip_prefix("<!--") {
            let Some(end) = r.find("-->") else {
                return false;
            };
            t = r[end + 3..].trim_start();
        } else if let Some(r) = t.strip_prefix("<!") {
            let Some(end) = r.find('>') else { return false };
            t = r[end + 1..].trim_start();
        } else {
            break;
        }
    }
    t.starts_with("<svg") && t[4..].starts_with(|c: char| c.is_whitespace() || c == '>')
}

/// One cached blob (content-addressed: URLs with the same bytes share it).
struct Blob {
    size: u64,
    mime: &'static str,
    last_used: u64,
    /// The signed paths that name it, dropped with it.
    names: Vec<blake3::Hash>,
}

#[derive(Default)]
struct Index {
    /// Signature -> content hash.
    names: HashMap<blake3::Hash, blake3::Hash>,
    blobs: HashMap<blake3::Hash, Blob>,
    /// Blobs by `last_used`, oldest first: eviction takes the first, in O(log n).
    order: BTreeMap<u64, blake3::Hash>,
    total: u64,
    tick: u64,
    /// Lines in the log file, live or not: past twice the live names it is rewritten.
    log_lines: usize,
}

impl Index {
    /// Marks `hash` (a blob the index holds) as the most recently used.
    fn touch(&mut self, hash: &blake3::Hash) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(blob) = self.blobs.get_mut(hash) {
            self.order.remove(&blob.last_used);
            blob.last_used = tick;
            self.order.insert(tick, *hash);
        }
    }

    /// Names `hash` by `sig` (a new blob of `size` bytes and type `mime` when unknown),
    /// as the most recently used.
    fn insert(&mut self, sig: blake3::Hash, hash: blake3::Hash, size: u64, mime: &'static str) {
        if let Some(old) = self.names.insert(sig, hash) {
            if old != hash {
                if let Some(b) = self.blobs.get_mut(&old) {
                    b.names.retain(|n| *n != sig);
                }
            }
        }
        let blob = self.blobs.entry(hash).or_insert_with(|| Blob {
            size,
            mime,
            last_used: 0,
            names: Vec::new(),
        });
        if blob.last_used == 0 {
            self.total += size;
        }
        if !blob.names.contains(&sig) {
            blob.names.push(sig);
        }
        self.touch(&hash);
    }

    /// Drops the least recently used blobs until the total fits `budget`; returns them.
    fn evict(&mut self, budget: u64) -> Vec<blake3::Hash> {
        let mut evicted = Vec::new();
        while self.total > budget {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(blob) = self.blobs.remove(&oldest) {
                self.total -= blob.size;
                for name in &blob.names {
                    self.names.remove(name);
                }
            }
            evicted.push(oldest);
        }
        evicted
    }

    /// The log holding exactly the live names, least recently used first (so that a
    /// replay restores the order).
    fn compacted(&self) -> String {
        let mut out = String::with_capacity(self.names.len() * 140);
        for hash in self.order.values() {
            if let Some(blob) = self.blobs.get(hash) {
                for sig in &blob.names {
                    out.push_str(&format!(
                        "{} {} {}\n",
                        sig.to_hex(),
                        hash.to_hex(),
                        blob.mime
                    ));
                }
            }
        }
        out
    }
}

/// A fetched or cached image.
#[derive(Clone)]
struct Image {
    bytes: Bytes,
    mime: &'static str,
    hash: blake3::Hash,
}

type Flight = Arc<tokio::sync::OnceCell<Result<Image, String>>>;

/// Sites whose image failures are remembered; past this, new sites are not recorded
/// (the map is in memory and keyed by what signed paths name).
const MAX_ERROR_SITES: usize = 10_000;

/// A site's proxy failures since start, for the dashboard: a count and the latest one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageErrors {
    /// Origin errors and refusals (not an image) since the service started.
    pub count: u64,
    pub last_reason: String,
    pub last_url: String,
    pub last_at: chrono::DateTime<chrono::Utc>,
}

/// The proxy's state: signer, fetcher, disk cache.
pub struct ImageProxy {
    pub signer: Signer,
    fetcher: Fetcher,
    default_delay: Duration,
    dir: PathBuf,
    budget: u64,
    index: Mutex<Index>,
    flights: Mutex<HashMap<blake3::Hash, Flight>>,
    /// Site id -> its failures; bounded by [`MAX_ERROR_SITES`].
    errors: Mutex<HashMap<String, ImageErrors>>,
    /// Site id -> images it had cached since start (live sites only: [`ImageProxy::fetch`]
    /// runs for a configured site): moves the freshness of `inline-cache` feeds.
    cached_per_site: Mutex<HashMap<String, u64>>,
    /// Held while the index log is appended to or rewritten, so no line is lost.
    log: tokio::sync::Mutex<()>,
}

impl ImageProxy {
    /// Opens `<data>/images/` and the key. The index is a log of `signature hash type`
    /// lines, replayed (newest last = most recently cached) and compacted here; blobs no
    /// line names, and lines whose blob is gone, are dropped.
    pub fn open(
        data_dir: &FsPath,
        budget_bytes: u64,
        fetch: &FetchSettings,
        default_delay: Duration,
    ) -> Result<ImageProxy, ImageError> {
        let signer = Signer::load_or_create(data_dir)?;
        let dir = data_dir.join("images");
        std::fs::create_dir_all(&dir)?;
        let index = load_index(&dir, budget_bytes)?;
        let settings = FetchSettings {
            // A reader waits on this request: no backoff, a shorter timeout.
            retries: 0,
            timeout: fetch.timeout.min(Duration::from_secs(20)),
            ..fetch.clone()
        };
        let fetcher = Fetcher::new(settings).map_err(|e| ImageError::Origin(e.to_string()))?;
        Ok(ImageProxy {
            signer,
            fetcher,
            default_delay,
            dir,
            budget: budget_bytes,
            index: Mutex::new(index),
            flights: Mutex::default(),
            errors: Mutex::default(),
            cached_per_site: Mutex::default(),
            log: tokio::sync::Mutex::new(()),
        })
    }

    /// Bytes the cache holds now.
    pub fn cached_bytes(&self) -> u64 {
        self.index.lock().map_or(0, |i| i.total)
    }

    /// The proxy failures of `site` since start, if any.
    pub fn errors(&self, site: &str) -> Option<ImageErrors> {
        self.errors.lock().ok()?.get(site).cloned()
    }

    /// Remembers one failure of `site`'s image `url`.
    fn note_error(&self, site: &str, url: &Url, reason: &str) {
        let Ok(mut errors) = self.errors.lock() else {
            return;
        };
        let now = chrono::Utc::now();
        if let Some(e) = errors.get_mut(site) {
            e.count += 1;
            e.last_reason = reason.to_owned();
            e.last_url = url.to_string();
            e.last_at = now;
        } else if errors.len() < MAX_ERROR_SITES {
            errors.insert(
                site.to_owned(),
                ImageErrors {
                    count: 1,
                    last_reason: reason.to_owned(),
                    last_url: url.to_string(),
                    last_at: now,
                },
            );
        }
    }

    fn blob_path(&self, hash: &blake3::Hash) -> PathBuf {
        self.dir.join(hash.to_hex().as_str())
    }

    /// Whether `sig` is cached (without marking it used).
    fn is_cached(&self, sig: &blake3::Hash) -> bool {
        self.index.lock().is_ok_and(|i| i.names.contains_key(sig))
    }

    /// The cached image named by `sig`, marked as used.
    fn lookup(&self, sig: &blake3::Hash) -> Option<(blake3::Hash, &'static str)> {
        let mut index = self.index.lock().ok()?;
        let hash = *index.names.get(sig)?;
        index.touch(&hash);
        Some((hash, index.blobs.get(&hash)?.mime))
    }

    /// Size and sniffed type of the cached image `sig` names (not marked as used).
    fn facts(&self, sig: &blake3::Hash) -> Option<KnownImage> {
        let index = self.index.lock().ok()?;
        let blob = index.blobs.get(index.names.get(sig)?)?;
        Some(KnownImage {
            length: blob.size,
            mime: blob.mime,
        })
    }

    /// What the cache knows of the images of `items` after [`rewrite_items`] pointed them
    /// at the proxy under `base`, keyed by those URLs: the enclosures' length and type.
    pub fn known_images(&self, items: &[StoredItem], base: &str) -> KnownImages {
        let mut known = KnownImages::new();
        for url in items.iter().flat_map(|s| &s.item.images) {
            let Some(sig) = url
                .strip_prefix(base)
                .and_then(|p| p.strip_prefix("/img/"))
                .and_then(|p| p.split('/').next())
                .and_then(|hex| blake3::Hash::from_hex(hex).ok())
            else {
                continue;
            };
            if let Some(facts) = self.facts(&sig) {
                known.insert(url.clone(), facts);
            }
        }
        known
    }

    /// Images of `site` cached since start: a rendering of an `inline-cache` feed older
    /// than a change of this is stale (its enclosures lack lengths).
    pub fn site_generation(&self, site: &str) -> u64 {
        self.cached_per_site
            .lock()
            .map_or(0, |m| m.get(site).copied().unwrap_or(0))
    }

    /// Counts one more line in the index log; past twice the live names, rewrites it with
    /// only those. Called with [`ImageProxy::log`] held.
    async fn compact_if_due(&self) -> std::io::Result<()> {
        let compacted = {
            let Ok(mut index) = self.index.lock() else {
                return Ok(());
            };
            index.log_lines += 1;
            if index.log_lines <= 2 * index.names.len() + LOG_SLACK {
                return Ok(());
            }
            index.log_lines = index.names.len();
            index.compacted()
        };
        let tmp = self.dir.join("index.tmp");
        tokio::fs::write(&tmp, compacted).await?;
        tokio::fs::rename(&tmp, self.dir.join(INDEX_FILE)).await
    }

    /// Records `image` under `sig` and evicts the least recently used past the budget;
    /// returns the blobs to delete from disk.
    fn record(&self, sig: blake3::Hash, image: &Image) -> Vec<blake3::Hash> {
        let Ok(mut index) = self.index.lock() else {
            return Vec::new();
        };
        index.insert(sig, image.hash, image.bytes.len() as u64, image.mime);
        index.evict(self.budget)
    }

    /// Fetches, checks and stores one image; the one caller of the origin per signature
    /// at a time (see [`ImageProxy::get`]).
    async fn fetch(
        &self,
        state: &AppState,
        sig: blake3::Hash,
        r: &ImageRef,
    ) -> Result<Image, String> {
        let site = super::site_of(state, &r.site).ok_or("the site is gone")?;
        let manners = Manners {
            delay: site
                .delay
                .unwrap_or(self.default_delay)
                .min(MAX_IMAGE_SPACING),
            robots: site.robots,
            policy: UrlPolicy::resolved(site.start_urls()).await,
        };
        let page = match self.fetcher.get_image(&r.image, &r.referer, &manners).await {
            Ok(FetchOutcome::Page { page, .. }) => page,
            Ok(FetchOutcome::NotModified) => return Err("unexpected 304".into()),
            Err(e) => return Err(origin_reason(&e)),
        };
        let bytes = page.body;
        let Some(mime) = sniff(&bytes) else {
            return Err(NOT_AN_IMAGE.into());
        };
        let (hash, bytes) = tokio::task::spawn_blocking(move || (blake3::hash(&bytes), bytes))
            .await
            .map_err(|e| e.to_string())?;
        let image = Image { bytes, mime, hash };
        if (image.bytes.len() as u64) <= self.budget {
            let path = self.blob_path(&hash);
            let tmp = self.dir.join(format!("{}.tmp", sig.to_hex()));
            let written = async {
                tokio::fs::write(&tmp, &image.bytes).await?;
                tokio::fs::rename(&tmp, &path).await
            }
            .await;
            let line = format!("{} {} {}\n", sig.to_hex(), hash.to_hex(), mime);
            // The line, the index and a compaction in one turn: a compaction between
            // another's append and record would drop that line.
            let log = self.log.lock().await;
            let written = match written {
                Ok(()) => append(&self.dir.join(INDEX_FILE), line).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    let evicted = self.record(sig, &image);
                    if let Err(e) = self.compact_if_due().await {
                        tracing::warn!(error = %e, "cannot compact the image cache index");
                    }
                    drop(log);
                    if let Ok(mut per_site) = self.cached_per_site.lock() {
                        *per_site.entry(r.site.clone()).or_default() += 1;
                    }
                    for old in evicted {
                        let _ = tokio::fs::remove_file(self.blob_path(&old)).await;
                        state
                            .metrics
                            .add("feedbridge_image_cache_evictions_total", &[], 1.0);
                    }
                }
                Err(e) => {
                    // Served all the same; only not cached.
                    let _ = tokio::fs::remove_file(&tmp).await;
                    tracing::warn!(error = %e, "cannot cache an image");
                }
            }
        }
        Ok(image)
    }

    /// The image for a verified path: from the cache, else from the origin, once for any
    /// number of concurrent requests.
    async fn get(
        &self,
        state: &AppState,
        sig: blake3::Hash,
        r: &ImageRef,
    ) -> Result<(Image, bool), String> {
        if let Some((hash, mime)) = self.lookup(&sig) {
            // Evicted between lookup and read: fetched again below.
            if let Ok(bytes) = tokio::fs::read(self.blob_path(&hash)).await {
                let bytes = Bytes::from(bytes);
                return Ok((Image { bytes, mime, hash }, true));
            }
        }
        let flight: Flight = {
            let mut flights = self.flights.lock().map_err(|_| "poisoned lock")?;
            flights.entry(sig).or_default().clone()
        };
        let result = flight
            .get_or_init(|| self.fetch(state, sig, r))
            .await
            .clone();
        if let Ok(mut flights) = self.flights.lock() {
            if flights.get(&sig).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                // Failures are not kept: the next request asks the origin again.
                flights.remove(&sig);
            }
        }
        result.map(|image| (image, false))
    }
}

const INDEX_FILE: &str = "index";
/// Dead lines the index log may hold beyond the live ones before it is rewritten.
const LOG_SLACK: usize = 64;

/// How often the prefetcher looks for `inline-cache` sites with newly stored items.
const WARM_EVERY: Duration = Duration::from_secs(3);
/// Images fetched at once by the prefetcher (readers come first).
const WARM_CONCURRENCY: usize = 2;

/// The freshness of `site`'s rendered feeds: the store's generation, and for an
/// `inline-cache` site the images cached for it too (their lengths go in the enclosures).
/// Both only grow, so their sum changes when either does.
pub fn feed_generation(state: &AppState, site: &crate::site::Site) -> u64 {
    let images = match &state.images {
        Some(proxy) if site.images == crate::site::ImageMode::InlineCache => {
            proxy.site_generation(&site.id)
        }
        _ => 0,
    };
    state.store.generation(&site.id).wrapping_add(images)
}

/// For `images = "inline-cache"` sites: after a run stores items (the store's generation
/// moves), fetches the images of the site's newest `max_items` items into the cache, so
/// readers never wait on the origin. Shares the readers' single-flight and failure record.
/// Runs from the serve side so the scheduler need not know the proxy.
pub async fn prefetch(state: Arc<AppState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(proxy) = state.images.clone() else {
        return;
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    loop {
        let set = state.sites.borrow().clone();
        seen.retain(|id, _| set.sites.contains_key(id));
        for site in set.sites.values() {
            if site.images != crate::site::ImageMode::InlineCache {
                continue;
            }
            if *shutdown.borrow() {
                return;
            }
            let generation = state.store.generation(&site.id);
            if seen.get(&site.id) == Some(&generation) {
                continue;
            }
            let Ok(items) = state.store.recent(&site.id, site.max_items) else {
                continue;
            };
            let mut wanted = Vec::new();
            for stored in &items {
                let Ok(referer) = Url::parse(&stored.item.url) else {
                    continue;
                };
                // The enclosures and the pictures in the body: readers load both.
                let mut images: Vec<String> = stored.item.images.clone();
                if let Some(html) = &stored.item.content {
                    images.extend(img_srcs(html));
                }
                let mut seen = HashSet::new();
                images.retain(|i| is_http(i) && seen.insert(i.clone()));
                for img in &images {
                    let Ok(image) = Url::parse(img) else {
                        continue;
                    };
                    let sig = proxy.signer.name(&site.id, img, &stored.item.url);
                    if !proxy.is_cached(&sig) {
                        let site = site.id.clone();
                        let referer = referer.clone();
                        wanted.push((
                            sig,
                            ImageRef {
                                site,
                                image,
                                referer,
                            },
                        ));
                    }
                }
            }
            let (proxy, state) = (&proxy, &state);
            futures_util::StreamExt::for_each_concurrent(
                futures_util::stream::iter(wanted),
                WARM_CONCURRENCY,
                |(sig, r)| async move {
                    let result = proxy.get(state, sig, &r).await;
                    count(&state.metrics, "prefetch");
                    if let Err(reason) = result {
                        proxy.note_error(&r.site, &r.image, &reason);
                    }
                },
            )
            .await;
            seen.insert(site.id.clone(), generation);
        }
        tokio::select! {
            _ = tokio::time::sleep(WARM_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn append(path: &FsPath, line: String) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    // One write of one short line: appends from concurrent misses do not interleave.
    f.write_all(line.as_bytes()).await
}

/// The types [`sniff`] gives, for reading them back from the index.
fn known_type(s: &str) -> Option<&'static str> {
    [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/svg+xml",
    ]
    .into_iter()
    .find(|t| *t == s)
}

/// Replays and compacts the index log of `dir`, then trims the cache to `budget`.
fn load_index(dir: &FsPath, budget: u64) -> Result<Index, ImageError> {
    let mut index = Index::default();
    let log = std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap_or_default();
    let mut sizes: HashMap<blake3::Hash, u64> = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match blake3::Hash::from_hex(name.as_bytes()) {
            Ok(hash) => {
                sizes.insert(hash, entry.metadata()?.len());
            }
            // Half-written blobs of a crash.
            Err(_) if name.ends_with(".tmp") => {
                let _ = std::fs::remove_file(entry.path());
            }
            Err(_) => {}
        }
    }
    for line in log.lines() {
        let mut parts = line.split(' ');
        let (Some(sig), Some(hash), Some(mime)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(sig), Ok(hash), Some(mime)) = (
            blake3::Hash::from_hex(sig),
            blake3::Hash::from_hex(hash),
            known_type(mime),
        ) else {
            continue;
        };
        let Some(&size) = sizes.get(&hash) else {
            continue;
        };
        index.insert(sig, hash, size, mime);
    }
    for hash in index.evict(budget) {
        sizes.remove(&hash);
    }
    for hash in sizes.keys().filter(|h| !index.blobs.contains_key(h)) {
        let _ = std::fs::remove_file(dir.join(hash.to_hex().as_str()));
    }
    let tmp = dir.join("index.tmp");
    std::fs::write(&tmp, index.compacted())?;
    std::fs::rename(&tmp, dir.join(INDEX_FILE))?;
    index.log_lines = index.names.len();
    Ok(index)
}

const NOT_AN_IMAGE: &str = "the origin's answer is not an image (JPEG, PNG, GIF, WebP, AVIF, SVG)";

fn origin_reason(e: &FetchError) -> String {
    match e {
        FetchError::Status { status, .. } | FetchError::Blocked { status, .. } => {
            format!("HTTP {status}")
        }
        FetchError::Refused { reason, .. } => format!("refused by the URL policy: {reason}"),
        e => e.class().to_owned(),
    }
}

fn count(metrics: &Metrics, result: &str) {
    metrics.add(
        "feedbridge_image_proxy_requests_total",
        &[("result", result)],
        1.0,
    );
}

/// `GET`/`HEAD /img/<signature>/<encoded>`.
pub async fn image(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ImageError> {
    let Some(proxy) = state.images.clone() else {
        // No proxy (it failed to open; the log says why): its paths may be in readers'
        // hands from before, so "try later" rather than "gone".
        return Err(ImageError::Unavailable);
    };
    let Ok(Path((signature, encoded))) = path else {
        return Err(ImageError::NotFound);
    };
    let Some(r) = proxy.signer.verify(&signature, &encoded) else {
        count(&state.metrics, "bad-signature");
        return Err(ImageError::NotFound);
    };
    let sig = proxy
        .signer
        .mac(encoded.split('.').next().unwrap_or(&encoded));
    let etag_matches = |hash: &blake3::Hash| {
        let tag = &hash.to_hex()[..32];
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|inm| {
                inm.split(',')
                    .any(|t| t.trim().trim_start_matches("W/").trim_matches('"') == tag)
            })
    };
    // A revalidation of a cached image needs no disk read.
    if let Some((hash, mime)) = proxy.lookup(&sig) {
        if etag_matches(&hash) {
            count(&state.metrics, "not-modified");
            return Ok((StatusCode::NOT_MODIFIED, image_headers(&hash, mime, None)).into_response());
        }
    }
    let (image, hit) = match proxy.get(&state, sig, &r).await {
        Ok(found) => found,
        Err(reason) if reason == NOT_AN_IMAGE => {
            count(&state.metrics, "refused");
            proxy.note_error(&r.site, &r.image, &reason);
            return Err(ImageError::NotAnImage(
                "the origin's answer is not an image",
            ));
        }
        Err(reason) => {
            count(&state.metrics, "origin-error");
            proxy.note_error(&r.site, &r.image, &reason);
            return Err(ImageError::Origin(reason));
        }
    };
    count(&state.metrics, if hit { "hit" } else { "miss" });
    state.metrics.add(
        "feedbridge_image_proxy_bytes_total",
        &[("source", if hit { "cache" } else { "origin" })],
        image.bytes.len() as f64,
    );
    if etag_matches(&image.hash) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            image_headers(&image.hash, image.mime, None),
        )
            .into_response());
    }
    let h = image_headers(&image.hash, image.mime, Some(image.bytes.len()));
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(image.bytes)
    };
    Ok((StatusCode::OK, h, body).into_response())
}

fn image_headers(hash: &blake3::Hash, mime: &'static str, length: Option<usize>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", &hash.to_hex()[..32])) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if mime == "image/svg+xml" {
        // Scripts in an SVG opened directly run in our origin otherwise.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'; style-src 'unsafe-inline'"),
        );
    }
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_paths_verify_and_tampered_ones_do_not() {
        let signer = Signer::new([7; 32]);
        let path = signer.path(
            "s",
            "http://img.example/a.jpg?x=1&y=2",
            "http://a.example/p/1",
        );
        let mut parts = path.trim_start_matches("/img/").splitn(2, '/');
        let (sig, enc) = (parts.next().unwrap(), parts.next().unwrap());
        let r = signer.verify(sig, enc).unwrap();
        assert_eq!(r.site, "s");
        assert_eq!(r.image.as_str(), "http://img.example/a.jpg?x=1&y=2");
        assert_eq!(r.referer.as_str(), "http://a.example/p/1");
        let mut bad = sig.to_owned();
        bad.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        assert!(signer.verify(&bad, enc).is_none());
        let other = B64.encode("s\nhttp://evil.example/\nhttp://a.example/");
        assert!(signer.verify(sig, &other).is_none());
        assert!(Signer::new([8; 32]).verify(sig, enc).is_none());
        assert!(signer.verify("zz", enc).is_none());
    }

    #[test]
    fn img_src_is_rewritten_and_escaped_once() {
        let html = r#"<p>x &amp; y</p><img src="http://a/1.jpg?a=1&amp;b=2" alt="t"><img alt="no src"><img src="data:image/png;base64,AA">"#;
        let out = rewrite_img_src(html, |s| is_http(s).then(|| format!("P[{s}]&")));
        assert_eq!(
            out,
            r#"<p>x &amp; y</p><img src="P[http://a/1.jpg?a=1&amp;b=2]&amp;" alt="t"><img alt="no src"><img src="data:image/png;base64,AA">"#
        );
        assert_eq!(rewrite_img_src("<img src=\"x", |_| None), "<img src=\"x");
    }

    #[test]
    fn the_index_evicts_least_recently_used_and_compacts_in_that_order() {
        let h = |i: u8| blake3::hash(&[i]);
        let mut index = Index::default();
        for i in 0..5 {
            index.insert(h(100 + i), h(i), 10, "image/png");
        }
        // A second name for blob 1, and a use of blob 0: 2 is now the oldest.
        index.insert(h(201), h(1), 10, "image/png");
        index.touch(&h(0));
        assert_eq!(index.total, 50);
        assert_eq!(index.evict(30), vec![h(2), h(3)]);
        assert_eq!(index.total, 30);
        assert!(!index.names.contains_key(&h(102)));
        let log = index.compacted();
        let order: Vec<&str> = log.lines().map(|l| &l[..64]).collect();
        let hex = |i: u8| h(i).to_hex().to_string();
        assert_eq!(order, [hex(104), hex(101), hex(201), hex(100)]);
        // A replay of the log restores the order: the next eviction takes blob 4.
        let mut replayed = Index::default();
        for line in log.lines() {
            let mut p = line.split(' ');
            let sig = blake3::Hash::from_hex(p.next().unwrap()).unwrap();
            let hash = blake3::Hash::from_hex(p.next().unwrap()).unwrap();
            replayed.insert(sig, hash, 10, "image/png");
        }
        assert_eq!(replayed.total, 30);
        assert_eq!(replayed.evict(20), vec![h(4)]);
    }

    #[test]
    fn img_srcs_are_read_like_the_rewrite_reads_them() {
        let html =
            r#"<p>a</p><img src="http://a/1.jpg?a=1&amp;b=2"><img alt="x"><img src="/rel.png">"#;
        assert_eq!(img_srcs(html), ["http://a/1.jpg?a=1&b=2", "/rel.png"]);
    }

    #[test]
    fn only_real_images_pass_the_sniff() {
        assert_eq!(sniff(b"\xff\xd8\xff\xe0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"GIF89a...."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(
            sniff(b"\0\0\0\x1cftypmif1\0\0\0\0mif1avifmiaf"),
            Some("image/avif")
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<!-- c --><svg xmlns=\"x\"></svg>"),
            Some("image/svg+xml")
        );
        assert_eq!(sniff(b"<html><svg></svg></html>"), None);
        assert_eq!(sniff(b"<svgfoo>"), None);
        assert_eq!(sniff(b"\0\0\0\x1cftypisom\0\0\0\0isommp41"), None);
        assert_eq!(sniff(b"<!doctype html><p>403</p>"), None);
        assert_eq!(sniff(b""), None);
    }
}
