//! The pages that list every site, at scale: `/` (one page of 100, failing sites
//! first), `/?page=50`, `/status.json` (all sites) and `/status.json?site=ID`, served by
//! the real router over a store of SITES sites x ITEMS items (1 site in 50 failing),
//! plus one feed poll. `SITES=10000 ITEMS=20 cargo bench --bench pages`: median, fastest
//! and slowest of 10 requests each (after one warm-up), in milliseconds.
//!
//! The items have short bodies (these pages never read items); building the store
//! takes a while, once, before the first sample.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use chrono::{Duration, TimeZone, Utc};
use feedbridge::metrics::Metrics;
use feedbridge::model::Item;
use feedbridge::serve::{app, AppState};
use feedbridge::site::{self, SiteSet};
use feedbridge::store::{Outcome, RunStatus, Store};
use tower::ServiceExt;

fn main() {
    let paths = [
        "/",
        "/?page=50",
        "/status.json",
        "/status.json?site=site-05000",
        "/feeds/site-00001.atom",
    ];
    fixture();
    for path in paths {
        let bytes = get(path);
        let mut ms: Vec<f64> = (0..10)
            .map(|_| {
                let t = std::time::Instant::now();
                get(path);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{path:<32} {bytes:>9} bytes  median {:>7.2} ms  fastest {:>7.2} ms  slowest {:>7.2} ms",
            ms[5], ms[0], ms[9]
        );
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SELECTOR: &str = r#"title = "基准站点"
start = ["http://127.0.0.1:9/list.html"]
timezone = "Asia/Shanghai"
schedule = "*/30 * * * *"
language = "zh-CN"

[list]
item = "div.list li"
link = "a"
date = "span.date"

[article]
title = "div.article h1"
body = "div.content"
"#;

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: std::path::PathBuf,
}

fn status(now: chrono::DateTime<Utc>, failing: bool) -> RunStatus {
    RunStatus {
        started: now,
        finished: now,
        outcome: if failing {
            Outcome::Failed
        } else {
            Outcome::Ok
        },
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
        with_source: 18,
        with_body: 20,
        fields: Default::default(),
        warnings: vec!["a list page took 3 s".into()],
        last_error: failing.then(|| "connect timed out".into()),
        error_class: failing.then(|| "timeout".into()),
        consecutive_failures: u32::from(failing) * 3,
        last_success: Some(now),
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let sites = env("SITES", 10_000);
        let items = env("ITEMS", 20);
        let dir = std::env::temp_dir().join(format!("feedbridge-pages-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let started = std::time::Instant::now();
        let store = Arc::new(Store::open(&dir).expect("store"));
        let template =
            site::compile(std::path::Path::new("bench.toml"), SELECTOR).expect("selector");
        let mut set = SiteSet::default();
        let now = Utc::now();
        let day = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for s in 0..sites {
            let mut site = template.clone();
            site.id = format!("site-{s:05}");
            site.title = format!("基准站点 {s}");
            site.path = format!("selectors/{}.toml", site.id).into();
            for n in 0..items {
                let item = Item {
                    url: format!("http://site{s}.example/art/{n}.html"),
                    title: Some(format!("关于进一步优化营商环境的通知（第{n}号）")),
                    published: Some((day + Duration::hours(n as i64)).fixed_offset()),
                    content: Some("<p>市政府召开常务会议，研究部署下一阶段重点工作。</p>".into()),
                    ..Item::default()
                };
                store.upsert(&site.id, &item, now).expect("upsert");
            }
            store
                .set_run_status(&site.id, &status(now, s % 50 == 7))
                .expect("status");
            set.sites.insert(site.id.clone(), Arc::new(site));
        }
        eprintln!(
            "built {sites} sites x {items} items in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(set));
        // The sender may go: the set never changes here.
        let state = AppState::new(store, rx, None, Arc::new(Metrics::default()), None);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Fixture {
            rt,
            router: app(Arc::new(state)),
            _dir: dir,
        }
    })
}

fn get(path: &str) -> usize {
    let f = fixture();
    f.rt.block_on(async {
        let req = axum::extract::Request::builder()
            .uri(path)
            .header("host", "bench.local")
            .body(Body::empty())
            .expect("request");
        let response = f.router.clone().oneshot(req).await.expect("response");
        assert_eq!(response.status(), 200, "{path}");
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .len()
    })
}
