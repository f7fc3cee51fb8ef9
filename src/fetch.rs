//! Fetching: one reqwest client (rustls), polite by default.
//!
//! Politeness lives here so no caller can forget it: per-host spacing, robots.txt (fetched
//! once per origin, cached, obeyed for our User-Agent), conditional GETs, retries with
//! exponential backoff on connect errors, 429 and 5xx honouring `Retry-After`, and hard
//! bounds on time, redirects and body size (the body is streamed and cut, never buffered
//! past the cap). `file://` URLs are read from disk, through the same cap, only where the
//! operator wrote them; every URL goes through the site's [`UrlPolicy`] first, and the
//! connections themselves through its [`PolicyResolver`] (see [`crate::url_policy`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;
use url::Url;

use crate::model::{Page, Validators};
use crate::url_policy::{check_redirect, AddrClasses, PolicyResolver, Refusal, UrlPolicy};

/// Why a fetch failed. `Blocked` is kept apart from network trouble: it needs an operator
/// (an in-region deployment, a cookie), not a retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{url}: network error: {detail}")]
    Network { url: String, detail: String },
    #[error("{url}: timed out after {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: too many redirects (more than {limit}), probably a redirect loop")]
    Redirects { url: String, limit: usize },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: blocked by the site (HTTP {status}); it may need an in-region deployment or a cookie")]
    Blocked { url: String, status: u16 },
    #[error("{url}: body is larger than the {limit}-byte cap")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: disallowed by robots.txt for our User-Agent (set robots = false only for your own sites)")]
    Robots { url: String },
    #[error("{url}: robots.txt is unreachable ({detail}), so nothing is fetched from this host for now (RFC 9309)")]
    RobotsUnreachable { url: String, detail: String },
    #[error("{url}: cannot read file: {detail}")]
    File { url: String, detail: String },
    #[error("{url}: unsupported URL scheme")]
    Scheme { url: String },
    /// The site's URL policy forbids it: nothing was sent or read.
    #[error("{url}: refused by the URL policy: {reason}")]
    Refused { url: String, reason: Refusal },
}

impl FetchError {
    /// A short class for status pages and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            FetchError::Network { .. } | FetchError::Timeout { .. } => "network",
            FetchError::Redirects { .. } => "redirect-loop",
            FetchError::Status { .. } => "http-status",
            FetchError::Blocked { .. } => "blocked",
            FetchError::TooLarge { .. } => "too-large",
            FetchError::Robots { .. } | FetchError::RobotsUnreachable { .. } => "robots",
            FetchError::File { .. } | FetchError::Scheme { .. } => "config",
            FetchError::Refused { .. } => "url-policy",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            FetchError::Network { .. } | FetchError::Timeout { .. }
        ) || matches!(self, FetchError::Status { status, .. } if *status == 429 || *status >= 500)
    }
}

/// The result of a GET: a page, or "not modified" for a conditional GET.
#[derive(Debug)]
pub enum FetchOutcome {
    NotModified,
    Page { page: Page, validators: Validators },
}

/// Bounds and manners, from the service settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub user_agent: String,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    pub max_redirects: usize,
    /// Attempts after the first on connect errors, 429 and 5xx.
    pub retries: u32,
    /// First backoff; doubled each retry.
    pub retry_base: Duration,
    /// A `Retry-After` longer than this gives up the run (the next run will try again).
    pub max_retry_after: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            // No made-up contact URL: operators add theirs with --user-agent.
            user_agent: format!(
                "feedbridge/{} (Atom feed generator)",
                env!("CARGO_PKG_VERSION")
            ),
            timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
            retries: 2,
            retry_base: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// How politely to treat one site's hosts, and which URLs it may reach at all.
#[derive(Debug, Clone)]
pub struct Manners {
    /// Minimum spacing between two requests to the same host.
    pub delay: Duration,
    pub robots: bool,
    /// Built from the site's own `start`/`feed` URLs (and preview's `--url`).
    pub policy: UrlPolicy,
}

/// A robots.txt verdict cache entry.
struct Robots {
    expires: Instant,
    rules: RobotsRules,
}

enum RobotsRules {
    /// No robots.txt (4xx) or an unparsable one: everything is allowed.
    AllowAll,
    Parsed(texting_robots::Robot),
    /// 5xx: RFC 9309 section 2.3.1.4 says assume complete disallow.
    Unreachable(String),
    /// No answer at all (connect error, timeout): the host is down, not its robots.txt.
    HostDown(String),
}

/// The shared fetcher: one connection pool per set of reachable address classes (almost
/// always one or two), per-host clocks, a robots.txt cache.
pub struct Fetcher {
    /// The resolver and redirect policy live in the client, so each allowed class set
    /// needs its own; sites with the same set share the pool.
    clients: std::sync::Mutex<HashMap<AddrClasses, reqwest::Client>>,
    settings: FetchSettings,
    next_slot: Mutex<HashMap<String, Instant>>,
    robots: Mutex<HashMap<String, Arc<Robots>>>,
}

const ROBOTS_TTL: Duration = Duration::from_secs(24 * 3600);

impl Fetcher {
    pub fn new(settings: FetchSettings) -> Result<Self, FetchError> {
        // reqwest is built without a default crypto provider (ring instead of aws-lc:
        // a much faster build); without this line Client::build panics.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Clients are built on first use: each costs ~0.1 s (TLS roots), and most runs
        // need one class set only.
        Ok(Fetcher {
            clients: std::sync::Mutex::default(),
            settings,
            next_slot: Mutex::default(),
            robots: Mutex::default(),
        })
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// The client whose resolver and redirects allow exactly `allow`.
    fn client(&self, allow: AddrClasses) -> Result<reqwest::Client, FetchError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&allow) {
            return Ok(c.clone());
        }
        let client = build_client(&self.settings, allow)?;
        clients.insert(allow, client.clone());
        Ok(client)
    }

    /// GETs `url` politely; with `validators`, conditionally.
    pub async fn get(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        manners: &Manners,
    ) -> Result<FetchOutcome, FetchError> {
        self.get_as(url, validators, manners, None).await
    }

    /// GETs an image the way a browser showing `referer` does (sites that refuse
    /// hotlinked images check the `Referer`), under the same manners as [`Fetcher::get`].
    pub async fn get_image(
        &self,
        url: &Url,
        referer: &Url,
        manners: &Manners,
    ) -> Result<FetchOutcome, FetchError> {
        self.get_as(url, None, manners, Some(referer)).await
    }

    async fn get_as(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        manners: &Manners,
        referer: Option<&Url>,
    ) -> Result<FetchOutcome, FetchError> {
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(FetchError::Scheme {
                url: url.to_string(),
            });
        }
        manners
            .policy
            .check(url)
            .map_err(|reason| FetchError::Refused {
                url: url.to_string(),
                reason,
            })?;
        if url.scheme() == "file" {
            return self.read_file(url).await;
        }
        let client = self.client(manners.policy.allow)?;
        if manners.robots {
            self.robots_allow(&client, url, manners).await?;
        }
        let mut attempt = 0;
        loop {
            self.wait_for_host(url, manners.delay).await;
            let result = self
                .get_once(&client, manners.policy.allow, url, validators, referer)
                .await;
            match result {
                Err((e, retry_after)) if e.retryable() && attempt < self.settings.retries => {
                    let backoff = self.settings.retry_base * 2u32.pow(attempt);
                    let wait = retry_after.unwrap_or(backoff);
                    if wait > self.settings.max_retry_after {
                        return Err(e);
                    }
                    tracing::debug!(%url, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
                Ok(outcome) => return Ok(outcome),
            }
        }
    }

    async fn get_once(
        &self,
        client: &reqwest::Client,
        allow: AddrClasses,
        url: &Url,
        validators: Option<&Validators>,
        referer: Option<&Url>,
    ) -> Result<FetchOutcome, (FetchError, Option<Duration>)> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(match referer {
                None => "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                Some(_) => "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5",
            }),
        );
        if let Some(r) = referer.and_then(|r| HeaderValue::from_str(r.as_str()).ok()) {
            headers.insert(header::REFERER, r);
        }
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("zh-CN,zh;q=0.9,en;q=0.5"),
        );
        if let Some(v) = validators {
            if let Some(etag) = v
                .etag
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
            {
                headers.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = v
                .last_modified
                .as_deref()
                .and_then(|e| HeaderValue::from_str(e).ok())
            {
                headers.insert(header::IF_MODIFIED_SINCE, lm);
            }
        }
        let response = client
            .get(url.clone())
            .headers(headers)
            .send()
            .await
            .map_err(|e| (self.classify(url, &e), None))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified);
        }
        if status.is_redirection() {
            // A Location the redirect layer could not follow (`file:` and other schemes
            // do not even reach the policy) comes back as the 3xx itself.
            let target = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l.trim()).ok());
            if let Some(Err(reason)) = target.map(|t| check_redirect(allow, &t)) {
                let url = url.to_string();
                return Err((FetchError::Refused { url, reason }, None));
            }
        }
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let url = url.to_string();
            let code = status.as_u16();
            let e = match code {
                401 | 403 | 412 | 451 | 521..=523 => FetchError::Blocked { url, status: code },
                _ => FetchError::Status { url, status: code },
            };
            return Err((e, retry_after));
        }
        let header_str = |h| {
            response
                .headers()
                .get(h)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = Validators {
            etag: header_str(header::ETAG),
            last_modified: header_str(header::LAST_MODIFIED),
        };
        let content_type = header_str(header::CONTENT_TYPE);
        let final_url = response.url().clone();
        let body = self
            .read_capped(url, response)
            .await
            .map_err(|e| (e, None))?;
        Ok(FetchOutcome::Page {
            page: Page {
                url: final_url,
                body,
                content_type,
            },
            validators,
        })
    }

    /// Streams the body and stops at the cap instead of buffering a 2 GB answer.
    async fn read_capped(
        &self,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Result<Bytes, FetchError> {
        let limit = self.settings.max_body_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(url, &e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    fn classify(&self, url: &Url, e: &reqwest::Error) -> FetchError {
        let url = url.to_string();
        // A refusal from the resolver or the redirect policy, however deep reqwest wraps it.
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(reason) = s.downcast_ref::<Refusal>() {
                return FetchError::Refused {
                    url,
                    reason: reason.clone(),
                };
            }
            source = s.source();
        }
        if e.is_redirect() {
            FetchError::Redirects {
                url,
                limit: self.settings.max_redirects,
            }
        } else if e.is_timeout() {
            FetchError::Timeout {
                url,
                secs: self.settings.timeout.as_secs(),
            }
        } else {
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                detail = format!("{detail}: {s}");
                source = s.source();
            }
            FetchError::Network { url, detail }
        }
    }

    /// Reserves the host's next slot, then sleeps until it; slots are spaced by `delay`.
    async fn wait_for_host(&self, url: &Url, delay: Duration) {
        let Some(host) = url.host_str() else { return };
        let key = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        let now = Instant::now();
        let start = {
            let mut slots = self.next_slot.lock().await;
            let start = slots.get(&key).copied().filter(|t| *t > now).unwrap_or(now);
            slots.insert(key, start + delay);
            if slots.len() > 10_000 {
                slots.retain(|_, t| *t > now);
            }
            start
        };
        if start > now {
            tokio::time::sleep_until(start.into()).await;
        }
    }

    async fn robots_allow(
        &self,
        client: &reqwest::Client,
        url: &Url,
        manners: &Manners,
    ) -> Result<(), FetchError> {
        let origin = url.origin().ascii_serialization();
        let cached = self.robots.lock().await.get(&origin).cloned();
        let entry = match cached {
            Some(e) if Instant::now() < e.expires => e,
            _ => {
                // A refusal is this site's policy, not the origin's state: not cached.
                let entry = Arc::new(self.fetch_robots(client, &origin, manners).await?);
                self.robots.lock().await.insert(origin, entry.clone());
                entry
            }
        };
        match &entry.rules {
            RobotsRules::AllowAll => Ok(()),
            RobotsRules::Parsed(r) if r.allowed(url.as_str()) => Ok(()),
            RobotsRules::Parsed(_) => Err(FetchError::Robots {
                url: url.to_string(),
            }),
            RobotsRules::Unreachable(detail) => Err(FetchError::RobotsUnreachable {
                url: url.to_string(),
                detail: detail.clone(),
            }),
            RobotsRules::HostDown(detail) => Err(FetchError::Network {
                url: url.to_string(),
                detail: format!("the host is unreachable ({detail})"),
            }),
        }
    }

    /// Reads an origin's robots.txt. Missing (4xx) or unparsable allows everything for a
    /// day; unreachable (5xx, network) disallows everything and is asked again in 10 minutes.
    async fn fetch_robots(
        &self,
        client: &reqwest::Client,
        origin: &str,
        manners: &Manners,
    ) -> Result<Robots, FetchError> {
        let day = Instant::now() + ROBOTS_TTL;
        let Ok(robots_url) = Url::parse(&format!("{origin}/robots.txt")) else {
            return Ok(Robots {
                expires: day,
                rules: RobotsRules::AllowAll,
            });
        };
        self.wait_for_host(&robots_url, manners.delay).await;
        let robots = match self
            .get_once(client, manners.policy.allow, &robots_url, None, None)
            .await
        {
            Ok(FetchOutcome::Page { page, .. }) => {
                let rules = texting_robots::Robot::new(self.robot_name(), &page.body)
                    .map_or(RobotsRules::AllowAll, RobotsRules::Parsed);
                Robots {
                    expires: day,
                    rules,
                }
            }
            Ok(FetchOutcome::NotModified) => Robots {
                expires: day,
                rules: RobotsRules::AllowAll,
            },
            Err((FetchError::Status { status, .. } | FetchError::Blocked { status, .. }, _))
                if (400..500).contains(&status) =>
            {
                Robots {
                    expires: day,
                    rules: RobotsRules::AllowAll,
                }
            }
            Err((FetchError::TooLarge { .. }, _)) => Robots {
                expires: day,
                rules: RobotsRules::AllowAll,
            },
            Err((e @ FetchError::Refused { .. }, _)) => return Err(e),
            // The page's error says it, once: no log line of our own here.
            Err((FetchError::Network { detail, .. }, _)) => Robots {
                expires: Instant::now() + Duration::from_secs(600),
                // The cause without "error sending request for url (…/robots.txt)": the
                // error is reported for the page, and robots.txt is not what failed.
                rules: RobotsRules::HostDown(
                    detail
                        .split_once("): ")
                        .filter(|(head, _)| head.starts_with("error sending request"))
                        .map_or(detail.as_str(), |(_, cause)| cause)
                        .to_owned(),
                ),
            },
            Err((FetchError::Timeout { secs, .. }, _)) => Robots {
                expires: Instant::now() + Duration::from_secs(600),
                rules: RobotsRules::HostDown(format!("no answer within {secs}s")),
            },
            Err((e, _)) => {
                tracing::warn!(%robots_url, error = %e, "robots.txt unreachable; not crawling this host for now");
                Robots {
                    expires: Instant::now() + Duration::from_secs(600),
                    rules: RobotsRules::Unreachable(e.to_string()),
                }
            }
        };
        Ok(robots)
    }

    /// The product token of our User-Agent, which robots.txt groups name.
    fn robot_name(&self) -> &str {
        self.settings
            .user_agent
            .split('/')
            .next()
            .unwrap_or("feedbridge")
    }

    /// Reads an operator-written `file://` URL through the body cap. Devices, FIFOs and
    /// sockets are refused before opening (a FIFO would block the open; `/dev/zero` never
    /// ends); `/proc` files claim length 0, so the cap is enforced on the bytes read.
    async fn read_file(&self, url: &Url) -> Result<FetchOutcome, FetchError> {
        let err = |detail: String| FetchError::File {
            url: url.to_string(),
            detail,
        };
        let path = url
            .to_file_path()
            .map_err(|_| err("not a local path".into()))?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err(
                "not a regular file (a device, FIFO, socket or directory)".into(),
            ));
        }
        let limit = self.settings.max_body_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if meta.len() > limit {
            return Err(too_large());
        }
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| err(e.to_string()))?;
        let body = read_limited(file, limit)
            .await
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(too_large)?;
        Ok(FetchOutcome::Page {
            page: Page {
                url: url.clone(),
                body: body.into(),
                content_type: None,
            },
            validators: Validators::default(),
        })
    }
}

/// Reads at most `limit` bytes; `None` when there are more (one byte past the cap is
/// read to tell), so an endless source costs `limit + 1` bytes, never all memory.
pub async fn read_limited(
    reader: impl tokio::io::AsyncRead + Unpin,
    limit: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)
        .await?;
    Ok((body.len() as u64 <= limit).then_some(body))
}

/// A client that connects only to addresses in `allow` (checked on every DNS answer) and
/// follows only http(s) redirects to allowed hosts, at most `max_redirects`.
fn build_client(
    settings: &FetchSettings,
    allow: AddrClasses,
) -> Result<reqwest::Client, FetchError> {
    let max_redirects = settings.max_redirects;
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            return attempt.error(TooManyRedirects);
        }
        match check_redirect(allow, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refusal) => attempt.error(refusal),
        }
    });
    reqwest::Client::builder()
        .user_agent(settings.user_agent.clone())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .redirect(redirects)
        .dns_resolver(Arc::new(PolicyResolver { allow }))
        .pool_max_idle_per_host(4)
        .build()
        .map_err(|e| FetchError::Network {
            url: String::new(),
            detail: e.to_string(),
        })
}

#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
struct TooManyRedirects;

/// `Retry-After`: delta-seconds or an HTTP-date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn an_endless_reader_stops_one_byte_past_the_cap() {
        let endless = tokio::io::repeat(0);
        assert_eq!(read_limited(endless, 1 << 20).await.unwrap(), None);
        let short = &b"abc"[..];
        assert_eq!(read_limited(short, 3).await.unwrap(), Some(b"abc".to_vec()));
    }
}
