//! The image proxy against a hotlink-protected fixture site: its images answer 403 unless
//! the `Referer` is one of its own articles.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use feedbridge::serve::images::Signer;
use tokio::sync::Notify;

use crate::support::{eventually, http, spawn_serve_with, wait_for_items, TempDir};

const ARTICLES: usize = 3;
/// Bytes after the PNG signature of each `/pic/raw{i}`.
const RAW_SIZE: usize = 5000;

/// The bytes of image `name`: a PNG signature, then `size` bytes unique to the name.
fn png(name: &str, size: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let seed = blake3::hash(name.as_bytes());
    let mut xof = blake3::Hasher::new().update(seed.as_bytes()).finalize_xof();
    let mut rest = vec![0u8; size];
    xof.fill(&mut rest);
    out.extend_from_slice(&rest);
    out
}

struct Origin {
    url: String,
    /// Lets `/slow.png` answer.
    release_slow: Arc<Notify>,
}

/// The protected site: `/list.html`, `/a{i}.html` with images `/pic/a{i}.png` in the body
/// and `/pic/raw{i}` (a PNG sent as `application/octet-stream`) outside it,
/// `/pic/many{n}.png` (8 KiB each), `/pic/page.png` (an HTML page), `/slow.png`.
async fn origin() -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let release_slow = Arc::new(Notify::new());
    let lis: String = (0..ARTICLES)
        .map(|i| format!("<li><a href=\"/a{i}.html\">文章{i}</a></li>"))
        .collect();
    let list = format!("<html><body><ul class=\"list\">{lis}</ul></body></html>");
    let own = url.clone();
    let protected = move |headers: &HeaderMap| {
        headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .is_some_and(|r| r.starts_with(&format!("{own}/a")))
    };
    let p1 = protected.clone();
    let p2 = protected.clone();
    let release = release_slow.clone();
    let app = axum::Router::new()
        .route("/list.html", get(move || async move { Html(list) }))
        .route(
            "/{page}",
            get(|Path(page): Path<String>| async move {
                let i = page.trim_start_matches('a').trim_end_matches(".html");
                Html(format!(
                    "<html><body><h1>文章{i}</h1><p class=\"cover\"><img src=\"/pic/raw{i}\"></p>\
                     <div class=\"content\"><p>正文{i}</p>\
                     <img src=\"/pic/a{i}.png?x=1&amp;y=2\" alt=\"图{i}\"></div></body></html>"
                ))
            }),
        )
        .route(
            "/pic/{name}",
            get(
                move |Path(name): Path<String>, headers: HeaderMap| async move {
                    if !p1(&headers) {
                        return (StatusCode::FORBIDDEN, "hotlinking refused").into_response();
                    }
                    if name == "page.png" {
                        return Html("<html>not an image</html>").into_response();
                    }
                    if name.starts_with("raw") {
                        let octets = [(header::CONTENT_TYPE, "application/octet-stream")];
                        return (octets, png(&name, RAW_SIZE)).into_response();
                    }
                    let size = if name.starts_with("many") { 8192 } else { 3000 };
                    ([(header::CONTENT_TYPE, "image/png")], png(&name, size)).into_response()
                },
            ),
        )
        .route(
            "/slow.png",
            get(move |headers: HeaderMap| async move {
                if !p2(&headers) {
                    return StatusCode::FORBIDDEN.into_response();
                }
                release.notified().await;
                png("slow", 100).into_response()
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Origin { url, release_slow }
}

fn selector(origin: &str) -> String {
    format!(
        r#"title = "防盗链站点"
start = ["{origin}/list.html"]
schedule = "0 0 1 1 *"
timezone = "Asia/Shanghai"
delay = "0s"
images = "proxy"

[list]
item = "ul.list li"
link = "a"

[article]
title = "h1"
body = "div.content"
"#
    )
}

async fn fetch(url: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = http().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect(url);
    let mut out = axum::http::Response::builder().status(r.status().as_u16());
    for (k, v) in r.headers() {
        out = out.header(k.as_str(), v.as_bytes());
    }
    out.body(axum::body::Body::from(r.bytes().await.unwrap()))
        .unwrap()
}

async fn body(r: Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

async fn start(tmp: &TempDir, origin: &Origin, extra: &[&str]) -> (String, crate::support::Proc) {
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(tmp.join("selectors/hot.toml"), selector(&origin.url)).unwrap();
    let (base, p) = spawn_serve_with(tmp.path(), extra);
    wait_for_items(&base, ARTICLES as u64).await;
    (base, p)
}

#[tokio::test(flavor = "multi_thread")]
async fn proxied_images_load_byte_identical_and_nothing_else_passes() {
    let tmp = TempDir::new("images-proxy");
    let origin = origin().await;
    let (base, _p) = start(&tmp, &origin, &[]).await;

    // Without the proxy the reader gets nothing.
    let direct = fetch(&format!("{}/pic/a0.png?x=1&y=2", origin.url), &[]).await;
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);

    let feed_bytes = body(fetch(&format!("{base}/feeds/hot.atom"), &[]).await).await;
    let feed = feed_rs::parser::parse(&feed_bytes[..]).unwrap();
    assert_eq!(feed.entries.len(), ARTICLES);
    let raw = String::from_utf8(feed_bytes.clone()).unwrap();
    assert!(!raw.contains(&format!("{}/pic/", origin.url)), "{raw}");
    assert_eq!(raw.matches("rel=\"enclosure\"").count(), ARTICLES);
    let img_re = regex::Regex::new(r#"<img src="([^"]+)""#).unwrap();
    let mut seen = 0;
    for entry in &feed.entries {
        let content = entry.content.as_ref().unwrap().body.as_ref().unwrap();
        let src = img_re.captures(content).expect("an img")[1].replace("&amp;", "&");
        assert!(src.starts_with(&format!("{base}/img/")), "{src}");
        let i = content
            .split("正文")
            .nth(1)
            .unwrap()
            .chars()
            .next()
            .unwrap();
        // feed-rs turns enclosures into media: read the XML itself.
        let enclosure = format!("href=\"{src}\"");
        assert!(raw.contains(&enclosure), "{enclosure} missing");
        let r = fetch(&src, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{src}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(body(r).await, png(&format!("a{i}.png"), 3000));
        // Again: from the cache, the same bytes; then revalidated and HEAD.
        let again = fetch(&src, &[]).await;
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert_eq!(body(again).await, png(&format!("a{i}.png"), 3000));
        let revalidated = fetch(&src, &[("if-none-match", &etag)]).await;
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        let head = http().head(&src).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "3008");
        seen += 1;
    }
    assert_eq!(seen, ARTICLES);

    // The gzip feed is the same feed (the base is spliced at every image too).
    let gz = http()
        .get(format!("{base}/feeds/hot.atom"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, feed_bytes);

    // A path we did not sign, or signed for something else, is a 404.
    let feed_text = String::from_utf8(feed_bytes.clone()).unwrap();
    let first = feed_text
        .split(&format!("{base}/img/"))
        .nth(1)
        .unwrap()
        .split(['"', '&'])
        .next()
        .unwrap()
        .to_owned();
    let (sig, enc) = first.split_once('/').unwrap();
    // The extension is only a hint for readers; the signature covers what comes before.
    let (enc, ext) = enc.split_once('.').unwrap();
    assert_eq!(ext, "png");
    let mut flipped = sig.to_owned();
    flipped.replace_range(..1, if sig.starts_with('a') { "b" } else { "a" });
    for path in [
        format!("/img/{flipped}/{enc}"),
        format!("/img/{sig}/{enc}A"),
        format!("/img/{sig}/{}", &enc[..enc.len() - 2]),
        "/img/x/y".to_owned(),
    ] {
        let r = fetch(&format!("{base}{path}"), &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // Signed by us but not an image: refused, with a short reason.
    let signer = Signer::load_or_create(&tmp.join("data")).unwrap();
    let referer = format!("{}/a0.html", origin.url);
    let page = signer.path("hot", &format!("{}/pic/page.png", origin.url), &referer);
    let r = fetch(&format!("{base}{page}"), &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8(body(r).await)
        .unwrap()
        .contains("not an image"));
    // A referer the origin refuses: 502, not cached as success.
    let wrong = signer.path("hot", &format!("{}/pic/a1.png", origin.url), &origin.url);
    let r = fetch(&format!("{base}{wrong}"), &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8(body(r).await)
        .unwrap()
        .contains("HTTP 403"));

    // Both failures show on the dashboard and in status.json.
    let text = |path: &'static str| {
        let url = format!("{base}{path}");
        async move { String::from_utf8(body(fetch(&url, &[]).await).await).unwrap() }
    };
    let site = text("/sites/hot").await;
    let notice = format!(
        "Images: 2 failed through the proxy; last: HTTP 403 (<code>{}/pic/a1.png</code>",
        origin.url
    );
    assert!(site.contains(&notice), "{notice} missing from\n{site}");
    let index = text("/").await;
    assert!(index.contains("2 image errors"), "{index}");
    let status: serde_json::Value = serde_json::from_str(&text("/status.json").await).unwrap();
    let errors = &status["sites"][0]["image_errors"];
    assert_eq!(errors["count"], 2, "{status}");
    assert_eq!(errors["last_reason"], "HTTP 403");
    assert_eq!(
        errors["last_url"],
        format!("{}/pic/a1.png", origin.url).as_str()
    );

    // A slow origin holds only its own request.
    let slow = signer.path("hot", &format!("{}/slow.png", origin.url), &referer);
    let slow_url = format!("{base}{slow}");
    let pending = tokio::spawn(async move { fetch(&slow_url, &[]).await.status() });
    for n in 0..5 {
        let fresh = signer.path("hot", &format!("{}/pic/many{n}.png", origin.url), &referer);
        let r = fetch(&format!("{base}{fresh}"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, png(&format!("many{n}.png"), 8192));
    }
    assert!(
        !pending.is_finished(),
        "the slow image answered before its origin did"
    );
    origin.release_slow.notify_one();
    assert_eq!(pending.await.unwrap(), StatusCode::OK);

    let metrics =
        String::from_utf8(body(fetch(&format!("{base}/metrics"), &[]).await).await).unwrap();
    for line in [
        "feedbridge_image_proxy_requests_total{result=\"hit\"}",
        "feedbridge_image_proxy_requests_total{result=\"miss\"}",
        "feedbridge_image_proxy_requests_total{result=\"refused\"} 1",
        "feedbridge_image_proxy_requests_total{result=\"bad-signature\"}",
        "feedbridge_image_proxy_bytes_total{source=\"cache\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

    feedparser_accepts(&format!("{base}/feeds/hot.atom"), &base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inline_cache_fetches_images_before_any_reader_asks() {
    let tmp = TempDir::new("images-inline");
    let origin = origin().await;
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    // The enclosure is the cover (outside the body); the body has its own picture.
    let rules = selector(&origin.url)
        .replace("images = \"proxy\"", "images = \"inline-cache\"")
        .replace(
            "body = \"div.content\"",
            "body = \"div.content\"\nimages = \"p.cover img\"",
        );
    std::fs::write(tmp.join("selectors/hot.toml"), rules).unwrap();
    let (base, _p) = spawn_serve_with(tmp.path(), &[]);
    wait_for_items(&base, ARTICLES as u64).await;

    let metrics_url = format!("{base}/metrics");
    // Covers and body pictures alike.
    let prefetched = format!(
        "feedbridge_image_proxy_requests_total{{result=\"prefetch\"}} {}",
        2 * ARTICLES
    );
    let warmed = eventually(Duration::from_secs(60), || {
        let (url, want) = (metrics_url.clone(), prefetched.clone());
        async move {
            let m = String::from_utf8(body(fetch(&url, &[]).await).await).unwrap();
            m.contains(&want).then_some(())
        }
    })
    .await;
    assert!(warmed.is_some(), "{prefetched} never appeared");

    // The first reader's requests are already cache hits, for the body picture too.
    let feed =
        String::from_utf8(body(fetch(&format!("{base}/feeds/hot.atom"), &[]).await).await).unwrap();
    let body_img = regex::Regex::new(r#"<img src="([^"]+/img/[^"]+)""#)
        .unwrap()
        .captures(&feed.replace("&lt;", "<").replace("&quot;", "\""))
        .expect("a body img")[1]
        .replace("&amp;", "&");
    let r = fetch(&body_img, &[]).await;
    assert_eq!(r.status(), StatusCode::OK, "{body_img}");
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");

    // Enclosures carry the cached size and the sniffed type (the origin said
    // application/octet-stream, the URL has no extension) in every format.
    let enclosure = regex::Regex::new(
        r#"<link href="([^"]+/img/[^"]+)" rel="enclosure" type="image/png" length="(\d+)"/>"#,
    )
    .unwrap();
    let found: Vec<_> = enclosure.captures_iter(&feed).collect();
    assert_eq!(found.len(), ARTICLES, "{feed}");
    let length = (RAW_SIZE + 8).to_string();
    for c in &found {
        assert_eq!(&c[2], length, "{feed}");
        let r = fetch(&c[1].replace("&amp;", "&"), &[]).await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
        assert_eq!(body(r).await.len(), RAW_SIZE + 8);
    }
    let rss =
        String::from_utf8(body(fetch(&format!("{base}/feeds/hot.rss"), &[]).await).await).unwrap();
    let rss_enclosure = format!("\" length=\"{length}\" type=\"image/png\"/>");
    assert_eq!(rss.matches(&rss_enclosure).count(), ARTICLES, "{rss}");
    let json: serde_json::Value =
        serde_json::from_slice(&body(fetch(&format!("{base}/feeds/hot.json"), &[]).await).await)
            .unwrap();
    for item in json["items"].as_array().unwrap() {
        let a = &item["attachments"][0];
        assert_eq!(a["size_in_bytes"], RAW_SIZE as u64 + 8, "{json}");
        assert_eq!(a["mime_type"], "image/png", "{json}");
    }

    let m = String::from_utf8(body(fetch(&metrics_url, &[]).await).await).unwrap();
    assert!(
        m.contains(&format!(
            "feedbridge_image_proxy_requests_total{{result=\"hit\"}} {}",
            ARTICLES + 1
        )),
        "{m}"
    );
    assert!(!m.contains("result=\"miss\""), "{m}");

    if crate::support::real_readers_or_skip("inline-cache enclosures in feedparser") {
        let script = format!(
            r#"
import feedparser
for fmt in ("atom", "rss"):
    d = feedparser.parse("{base}/feeds/hot." + fmt)
    assert not d.bozo, (fmt, d.bozo_exception)
    assert len(d.entries) == {ARTICLES}, (fmt, len(d.entries))
    for e in d.entries:
        enc = e.enclosures
        assert len(enc) == 1, (fmt, enc)
        assert enc[0].type == "image/png", (fmt, enc)
        assert int(enc[0].length) == {length}, (fmt, enc)
        assert enc[0].href.startswith("{base}/img/"), (fmt, enc)
"#
        );
        crate::support::python_ok("feedparser", script).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_image_cache_degrades_images_to_direct() {
    let tmp = TempDir::new("images-degraded");
    let origin = origin().await;
    std::fs::create_dir_all(tmp.join("data")).unwrap();
    // A file where the cache directory goes: the proxy cannot open (root or not).
    std::fs::write(tmp.join("data/images"), "not a directory").unwrap();
    let (base, _p) = start(&tmp, &origin, &[]).await;
    let feed =
        String::from_utf8(body(fetch(&format!("{base}/feeds/hot.atom"), &[]).await).await).unwrap();
    assert!(!feed.contains("/img/"), "{feed}");
    assert!(
        feed.contains(&format!("{}/pic/a0.png", origin.url)),
        "{feed}"
    );
    let r = fetch(&format!("{base}/img/x/y"), &[]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        fetch(&format!("{base}/healthz"), &[]).await.status(),
        StatusCode::OK
    );
}

/// feedparser reads the feed and finds the proxied images (skipped without the real
/// readers, except in CI where they are required).
async fn feedparser_accepts(url: &str, base: &str) {
    if !crate::support::real_readers_or_skip("images feedparser check") {
        return;
    }
    let script = format!(
        r#"
import feedparser
d = feedparser.parse("{url}")
assert not d.bozo, d.bozo_exception
assert len(d.entries) == {ARTICLES}, len(d.entries)
for e in d.entries:
    assert 'src="{base}/img/' in e.content[0].value, e.content[0].value
    assert any(l.rel == "enclosure" and l.href.startswith("{base}/img/") for l in e.links), e.links
"#
    );
    crate::support::python_ok("feedparser", script).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_stays_under_its_budget() {
    let tmp = TempDir::new("images-budget");
    let origin = origin().await;
    let (base, p) = start(&tmp, &origin, &["--image-cache-mb", "1"]).await;
    let signer = Signer::load_or_create(&tmp.join("data")).unwrap();
    let referer = format!("{}/a0.html", origin.url);
    let cache_size = || -> u64 {
        std::fs::read_dir(tmp.join("data/images"))
            .unwrap()
            .filter_map(|e| e.ok())
            // Blobs only (named by their hash), not the index.
            .filter(|e| e.file_name().len() == 64)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    let blobs = || {
        std::fs::read_dir(tmp.join("data/images"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().len() == 64)
            .count()
    };
    let log_lines = || {
        std::fs::read_to_string(tmp.join("data/images/index"))
            .unwrap()
            .lines()
            .count()
    };
    let mut largest = 0;
    let mut longest_log = 0;
    for n in 0..1000 {
        let path = signer.path("hot", &format!("{}/pic/many{n}.png", origin.url), &referer);
        let r = fetch(&format!("{base}{path}"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "image {n}");
        assert_eq!(body(r).await.len(), 8200);
        if n % 25 == 0 {
            largest = largest.max(cache_size());
            // The log of what the cache holds is rewritten past twice the live entries
            // (plus a slack of 64), not grown until a restart.
            longest_log = longest_log.max(log_lines().saturating_sub(2 * blobs()));
        }
    }
    assert!(
        longest_log <= 65,
        "the index log ran {longest_log} lines past 2x live"
    );
    largest = largest.max(cache_size());
    assert!(largest <= 1024 * 1024, "cache grew to {largest} bytes");
    // It is full, not empty: the most recent images are still there.
    assert!(cache_size() > 1024 * 1024 - 2 * 8200, "{}", cache_size());
    let metrics = eventually(Duration::from_secs(5), || async {
        let m = String::from_utf8(body(fetch(&format!("{base}/metrics"), &[]).await).await).ok()?;
        m.contains("feedbridge_image_cache_evictions_total")
            .then_some(m)
    })
    .await;
    assert!(metrics.is_some(), "no evictions counted");

    // A restart keeps the cache: the newest image is a hit, the oldest is fetched again.
    drop(p);
    let (base, _p) = spawn_serve_with(tmp.path(), &["--image-cache-mb", "1"]);
    let up = eventually(Duration::from_secs(20), || async {
        http()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(up.is_some(), "no restart");
    for n in [999, 0] {
        let path = signer.path("hot", &format!("{}/pic/many{n}.png", origin.url), &referer);
        let r = fetch(&format!("{base}{path}"), &[]).await;
        assert_eq!(body(r).await, png(&format!("many{n}.png"), 8192));
    }
    let m = String::from_utf8(body(fetch(&format!("{base}/metrics"), &[]).await).await).unwrap();
    assert!(
        m.contains("feedbridge_image_proxy_requests_total{result=\"hit\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("feedbridge_image_proxy_requests_total{result=\"miss\"} 1"),
        "{m}"
    );
    assert!(cache_size() <= 1024 * 1024);
}
