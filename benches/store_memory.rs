//! Peak memory of the store at scale: fills a store with SITES x ITEMS realistic items
//! (a ~3 KB Chinese body each, as the seed sites have), the way runs do (upsert, prune,
//! run status, a flush per FLUSH_EVERY sites), then reads every site's newest 20 twice,
//! as feeds being rendered do, then polls every site's Atom feed (gzip) through the real
//! router with the render cache of `cache_mb`. Prints VmHWM/VmRSS from /proc/self/status
//! after each phase.
//!
//! `SITES=10000 ITEMS=20 CACHE_MB=64 cargo bench --bench store_memory` (CACHE_MB as the
//! `cache_mb` setting: split between sled and the render cache as `serve` splits it;
//! Linux only: the numbers come from /proc).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use tower::ServiceExt;

use chrono::{Duration, TimeZone, Utc};
use feedbridge::config::{resolve, RawSettings};
use feedbridge::metrics::Metrics;
use feedbridge::model::Item;
use feedbridge::serve::{app, AppState};
use feedbridge::site::{self, SiteSet};
use feedbridge::store::{Outcome, RunStatus, Store, StoreOptions};

const SELECTOR: &str = r#"title = "基准站点"
start = ["http://127.0.0.1:9/list.html"]
timezone = "Asia/Shanghai"
language = "zh-CN"
images = "direct"

[list]
item = "li"
link = "a"
"#;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn report(phase: &str, started: Instant) {
    println!(
        "{phase:<28} {:>7.1} s  VmHWM {:>12}  VmRSS {:>12}",
        started.elapsed().as_secs_f64(),
        proc_status("VmHWM:"),
        proc_status("VmRSS:")
    );
}

/// About 3 KB of UTF-8 Chinese text in paragraphs, different per item: characters drawn
/// from 3,000 common code points, so that it compresses about as badly as real prose
/// (gzip about 2x; a repeated sentence would shrink 30x and flatter the render cache).
fn body(site: u64, n: u64) -> String {
    let mut state = site.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_add(1);
    let mut out = String::with_capacity(3200);
    out.push_str("<p>");
    while out.len() < 3000 {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let c = char::from_u32(0x4e00 + (state % 3000) as u32).unwrap_or('中');
        out.push(c);
        if state % 40 == 0 {
            out.push_str("。</p><p>");
        }
    }
    out.push_str("</p>");
    out
}

fn item(site: u64, n: u64) -> Item {
    let day = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(n as i64);
    Item {
        url: format!("http://site{site}.example/art/{n}.html"),
        title: Some(format!("关于进一步优化营商环境的通知（第{n}号）")),
        published: Some(day.fixed_offset()),
        source: Some("市人民政府办公厅".into()),
        content: Some(body(site, n)),
        images: vec![format!("http://site{site}.example/img/{n}.jpg")],
        ..Item::default()
    }
}

fn status(now: chrono::DateTime<Utc>) -> RunStatus {
    RunStatus {
        started: now,
        finished: now,
        outcome: Outcome::Ok,
        pages_fetched: 21,
        not_modified: 0,
        items_seen: 20,
        new: 20,
        updated: 0,
        unchanged: 0,
        articles_failed: 0,
        extracted: 20,
        with_title: 20,
        with_date: 20,
        with_source: 20,
        with_body: 20,
        fields: Default::default(),
        warnings: vec![],
        last_error: None,
        error_class: None,
        consecutive_failures: 0,
        last_success: Some(now),
    }
}

fn main() {
    let sites = env("SITES", 10_000);
    let items = env("ITEMS", 20);
    let flush_every = env("FLUSH_EVERY", 50).max(1);
    let cache_mb = env("CACHE_MB", 64);
    let mut raw = RawSettings::default();
    raw.crawl.cache_mb = Some(cache_mb);
    let settings = resolve(raw).expect("settings");
    let flush_ms = env("FLUSH_MS", 500);
    let options = StoreOptions {
        cache_bytes: settings.store_cache_bytes(),
        flush_every_ms: (flush_ms > 0).then_some(flush_ms),
    };
    let dir = std::env::temp_dir().join(format!("feedbridge-store-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{sites} sites x {items} items, cache_mb {cache_mb} (sled {} MiB, feeds {} MiB), flush every {flush_every} sites",
        settings.store_cache_bytes() >> 20,
        settings.render_cache_bytes() >> 20
    );
    let started = Instant::now();
    report("start", started);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    {
        let store = Store::open_with(&dir, &options).expect("store");
        let now = Utc::now();
        for s in 0..sites {
            let id = format!("site-{s:05}");
            for n in 0..items {
                store.upsert(&id, &item(s, n), now).expect("upsert");
            }
            store.prune(&id, 100).expect("prune");
            store.set_run_status(&id, &status(now)).expect("status");
            if s % flush_every == flush_every - 1 {
                rt.block_on(store.flush()).expect("flush");
            }
            if s % 2000 == 1999 {
                report(&format!("filled {} sites", s + 1), started);
            }
        }
        rt.block_on(store.flush()).expect("flush");
        report("filled", started);
        for round in 0..2 {
            let mut read = 0;
            for s in 0..sites {
                let id = format!("site-{s:05}");
                read += store.recent(&id, 20).expect("recent").len();
                assert_eq!(store.count(&id), items.min(100) as usize);
            }
            assert_eq!(read as u64, sites * items.min(20));
            report(&format!("read all, round {}", round + 1), started);
        }
    }
    report("closed", started);
    let reopen = Instant::now();
    {
        let store = Arc::new(Store::open_with(&dir, &options).expect("reopen"));
        report("reopened", reopen);
        for s in 0..sites {
            store.recent(&format!("site-{s:05}"), 20).expect("recent");
        }
        report("read all after reopen", reopen);
        let template = site::compile(std::path::Path::new("b.toml"), SELECTOR).expect("site");
        let mut set = SiteSet::default();
        for s in 0..sites {
            let mut site = template.clone();
            site.id = format!("site-{s:05}");
            set.sites.insert(site.id.clone(), Arc::new(site));
        }
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(set));
        let state = AppState::new(store, rx, None, Arc::new(Metrics::default()), None)
            .with_render_cache_bytes(settings.render_cache_bytes());
        let router = app(Arc::new(state));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let poll = Instant::now();
        let mut bytes = 0;
        for round in 0..2 {
            for s in 0..sites {
                let req = axum::extract::Request::builder()
                    .uri(format!("/feeds/site-{s:05}.atom"))
                    .header("accept-encoding", "gzip")
                    .body(Body::empty())
                    .expect("request");
                bytes += rt.block_on(async {
                    let response = router.clone().oneshot(req).await.expect("response");
                    assert_eq!(response.status(), 200);
                    axum::body::to_bytes(response.into_body(), usize::MAX)
                        .await
                        .expect("body")
                        .len()
                });
            }
            report(&format!("polled every feed, round {}", round + 1), poll);
        }
        println!("gzip feed bytes served: {} MiB", bytes >> 20);
    }
    let size: u64 = walk(&dir);
    println!("store on disk: {} MiB", size >> 20);
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => walk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
