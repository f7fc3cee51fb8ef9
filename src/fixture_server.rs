//! A tiny static server for the bundled fixture site, on loopback.
//!
//! `demo` serves `fixtures/site/` with it, and the integration tests serve copies they
//! edit. It behaves like a plain CMS host: strong ETags and `304` for conditional GETs,
//! `charset=gbk` on the GBK copy and no charset on the UTF-8 copy (so the `<meta>` prescan
//! is exercised), and it logs every request so tests can count fetches and spacing.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::watch;

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub conditional: bool,
    pub status: u16,
}

/// A running fixture server; dropping it stops the server.
pub struct FixtureServer {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    stop: watch::Sender<bool>,
}

struct Root {
    dir: PathBuf,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl FixtureServer {
    /// Serves `dir` on 127.0.0.1 at `port` (0 = any free port).
    pub async fn start(dir: &Path, port: u16) -> std::io::Result<FixtureServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(Mutex::new(Vec::new()));
        let root = Arc::new(Root {
            dir: dir.to_owned(),
            hits: hits.clone(),
        });
        let app = Router::new().fallback(serve_file).with_state(root);
        let (stop, mut stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(FixtureServer { addr, hits, stop })
    }

    /// `http://127.0.0.1:PORT`
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests whose path starts with `prefix`.
    pub fn hits_under(&self, prefix: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .map(|h| {
                h.iter()
                    .filter(|x| x.path.starts_with(prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The bundled fixture site: `./fixtures/site`, else the source tree's copy.
pub fn bundled_site_dir() -> PathBuf {
    let here = PathBuf::from("fixtures/site");
    if here.is_dir() {
        here
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/site")
    }
}

async fn serve_file(State(root): State<Arc<Root>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let conditional = req.headers().contains_key(header::IF_NONE_MATCH);
    let response = respond(&root.dir, &path, req.headers()).await;
    if let Ok(mut hits) = root.hits.lock() {
        hits.push(Hit {
            at: Instant::now(),
            path,
            conditional,
            status: response.status().as_u16(),
        });
    }
    response
}

async fn respond(dir: &Path, path: &str, headers: &HeaderMap) -> Response {
    let rel = path.trim_start_matches('/');
    let mut file = dir.to_owned();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => file.push(part),
            _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag = format!("\"{}\"", &blake3::hash(&bytes).to_hex()[..16]);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let content_type = match ext {
        "html" | "htm" if rel.starts_with("gbk/") => "text/html; charset=gbk",
        "html" | "htm" => "text/html",
        "xml" | "rss" => "application/xml",
        "atom" => "application/atom+xml",
        "json" => "application/feed+json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "text/plain; charset=utf-8",
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response()
}
