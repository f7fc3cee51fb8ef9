//! Release blockers of issue 9: hostile pages must not freeze the server, a trickling
//! server must not hold a run forever, and a panicking site must be supervised.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{
    eventually, get_text, http, small_selector, small_site, spawn_serve_env, status_json, text,
    TempDir, BIN,
};

/// How a page is served.
#[derive(Clone)]
enum Body {
    Full(Arc<Vec<u8>>),
    /// One byte per second: a server that never times out but never finishes.
    Trickle(Arc<Vec<u8>>),
}

/// A loopback HTTP/1.1 server of fixed pages; unknown paths are 404.
async fn serve_pages(pages: HashMap<String, Body>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let pages = Arc::new(pages);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let Some(body) = pages.get(&path) else {
                    let _ = conn
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                };
                let bytes = match body {
                    Body::Full(b) | Body::Trickle(b) => b.clone(),
                };
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                if conn.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                match body {
                    Body::Full(_) => {
                        let _ = conn.write_all(&bytes).await;
                    }
                    Body::Trickle(_) => {
                        for b in bytes.iter().take(120) {
                            if conn.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
    });
    origin
}

fn list_page(links: &[&str], date: &str) -> Vec<u8> {
    let lis: String = links
        .iter()
        .map(|l| {
            format!(
                "<li><span class=\"date\">{date}</span><a href=\"{l}\" title=\"{l}\">{l}</a></li>"
            )
        })
        .collect();
    format!("<html><body><div class=\"list\"><ul>{lis}</ul></div></body></html>").into_bytes()
}

fn article(title: &str, body: &str) -> Vec<u8> {
    format!(
        "<html><body><div class=\"article\"><h1>{title}</h1><div class=\"info\"><font>时间:2020-05-12</font></div><div class=\"content\">{body}</div></div></body></html>"
    )
    .into_bytes()
}

/// 200k nested `<div>`s (162 s of CPU before the parse bounds).
fn nested_page() -> Vec<u8> {
    let n = 200_000;
    article(
        "nested",
        &format!("{}deep{}", "<div>".repeat(n), "</div>".repeat(n)),
    )
}

/// One element with 200k distinct attributes (63 s before).
fn wide_page() -> Vec<u8> {
    let attrs: String = (0..200_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
    article("wide", &format!("<p{attrs}>wide</p>"))
}

fn write_selector(dir: &Path, id: &str, origin: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("selectors")).expect("mkdir");
    std::fs::write(
        dir.join(format!("selectors/{id}.toml")),
        small_selector(origin, extra),
    )
    .expect("write selector");
}

/// The site's entry in `/status.json`.
async fn site_status(base: &str, id: &str) -> Option<serde_json::Value> {
    let status = status_json(base).await?;
    status["sites"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
}

/// GETs `url`, returning the status and how long it took.
async fn timed_get(url: &str) -> (u16, Duration) {
    let start = Instant::now();
    let status = http()
        .get(url)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, start.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_pages_do_not_freeze_the_server() {
    let tmp = TempDir::new("safety-hostile");
    let normal = tmp.join("normal");
    small_site(&normal, 3, "");
    let normal_origin = feedbridge::fixture_server::FixtureServer::start(&normal, 0)
        .await
        .expect("fixture");

    let links = ["/n1.html", "/w1.html"];
    let mut pages = HashMap::new();
    pages.insert(
        "/list.html".to_owned(),
        Body::Full(Arc::new(list_page(&links, "2020-05-12"))),
    );
    let (nested, wide) = (Arc::new(nested_page()), Arc::new(wide_page()));
    assert!(nested.len() < 10 << 20 && wide.len() < 10 << 20);
    for l in links {
        let page = if l.starts_with("/n") { &nested } else { &wide };
        pages.insert(l.to_owned(), Body::Full(page.clone()));
    }
    let hostile_origin = serve_pages(pages).await;

    // The normal site first, so its feed is cached before the hostile crawl starts.
    write_selector(
        tmp.path(),
        "normal",
        &normal_origin.origin(),
        "delay = \"0s\"\nrobots = false",
    );
    let (base, mut proc) = spawn_serve_env(tmp.path(), &[]);
    let feed = format!("{base}/feeds/normal.atom");
    let stored = eventually(Duration::from_secs(30), || async {
        let s = site_status(&base, "normal").await?;
        (s["items"].as_u64()? == 3).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the normal site was not crawled");
    assert!(get_text(feed.clone()).await.contains("测试文章0"));

    write_selector(
        tmp.path(),
        "hostile",
        &hostile_origin,
        "delay = \"0s\"\nrobots = false",
    );
    // The selectors directory is watched: the new site runs at once. While it parses,
    // health and a cached feed keep answering.
    let mut worst = Duration::ZERO;
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        assert!(
            Instant::now() < deadline,
            "the hostile crawl did not finish"
        );
        for url in [format!("{base}/healthz"), feed.clone()] {
            let (status, took) = timed_get(&url).await;
            assert_eq!(status, 200, "{url}");
            worst = worst.max(took);
            polls += 1;
        }
        if let Some(s) = site_status(&base, "hostile").await {
            if !s["last_run"].is_null() {
                break s;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(polls >= 2);
    assert!(
        worst < Duration::from_secs(2),
        "a request took {worst:?} during the hostile crawl"
    );
    assert_eq!(finished["items"].as_u64(), Some(2), "{finished}");

    let start = Instant::now();
    proc.sigterm();
    let exit = proc.wait_for(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "no clean exit within 10 s of SIGTERM ({:?})",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_server_ends_the_run_at_its_deadline() {
    let tmp = TempDir::new("safety-trickle");
    let links = ["/a0.html", "/a1.html", "/slow.html", "/a2.html"];
    let mut pages = HashMap::new();
    pages.insert(
        "/list.html".to_owned(),
        Body::Full(Arc::new(list_page(&links, "2020-05-12"))),
    );
    for l in ["/a0.html", "/a1.html", "/a2.html"] {
        pages.insert(l.to_owned(), Body::Full(Arc::new(article(l, "<p>ok</p>"))));
    }
    pages.insert(
        "/slow.html".to_owned(),
        Body::Trickle(Arc::new(article("slow", &"<p>slow</p>".repeat(100)))),
    );
    let origin = serve_pages(pages).await;
    write_selector(
        tmp.path(),
        "trickle",
        &origin,
        "delay = \"0s\"\nrobots = false\nrun_timeout = \"3s\"",
    );
    let start = Instant::now();
    let out = Command::new(BIN)
        .args([
            "crawl",
            "--selectors",
            "selectors",
            "--data",
            "data",
            "--site",
            "selectors/trickle.toml",
        ])
        .current_dir(tmp.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run feedbridge");
    let took = start.elapsed();
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "a timed-out run is a failed crawl");
    assert!(stdout.contains("TimedOut"), "{stdout}");
    assert!(stdout.contains("timed out after 3s"), "{stdout}");
    // The two articles before the trickling one were stored and are kept.
    assert!(stdout.contains("items new 2"), "{stdout}");
    assert!(took < Duration::from_secs(20), "the crawl took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_dates_do_not_panic_and_panics_are_supervised() {
    let tmp = TempDir::new("safety-panic");
    let site = tmp.join("site");
    small_site(&site, 2, "");
    let list = std::fs::read_to_string(site.join("list.html")).expect("list");
    std::fs::write(
        site.join("list.html"),
        list.replace("2020-05-12", "100000000天前"),
    )
    .expect("write list");
    let origin = feedbridge::fixture_server::FixtureServer::start(&site, 0)
        .await
        .expect("fixture");
    write_selector(
        tmp.path(),
        "dates",
        &origin.origin(),
        "delay = \"0s\"\nrobots = false",
    );
    // The site's first run panics (a debug-build test hook); it is retried after 4 s.
    let (base, mut proc) = spawn_serve_env(
        tmp.path(),
        &[
            ("FEEDBRIDGE_TEST_PANIC_SITE", "dates:1"),
            ("FEEDBRIDGE_TEST_PANIC_BACKOFF_MS", "4000"),
        ],
    );
    let degraded = eventually(Duration::from_secs(30), || async {
        let (_, body) = health(&base).await?;
        body.starts_with("degraded").then_some(body)
    })
    .await
    .expect("/healthz never said degraded");
    assert!(
        degraded.contains("1 sites in internal-error (dates)"),
        "{degraded}"
    );
    let (code, _) = health(&base).await.expect("healthz");
    assert_eq!(code, 200, "degraded is not dead");
    let s = site_status(&base, "dates").await.expect("status");
    assert_eq!(s["last_run"]["outcome"], "internal-error", "{s}");
    let metrics = get_text(format!("{base}/metrics")).await;
    assert!(
        metrics.contains("feedbridge_site_panics_total{site=\"dates\"} 1"),
        "{metrics}"
    );

    // The retry runs; the absurd relative date is a warning and the items are stored.
    let ok = eventually(Duration::from_secs(30), || async {
        let s = site_status(&base, "dates").await?;
        (s["items"].as_u64()? == 2 && health(&base).await?.1 == "ok\n").then_some(s)
    })
    .await
    .expect("the site was not retried");
    let warnings = ok["last_run"]["warnings"].to_string();
    assert!(warnings.contains("100000000天前"), "{warnings}");
    proc.sigterm();
    assert!(proc.wait_for(Duration::from_secs(10)).is_some());
}

async fn health(base: &str) -> Option<(u16, String)> {
    let r = http().get(format!("{base}/healthz")).send().await.ok()?;
    let code = r.status().as_u16();
    Some((code, r.text().await.ok()?))
}
