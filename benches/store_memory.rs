//! Peak memory of the store at scale: fills a store with SITES x ITEMS realistic items
//! (a ~3 KB Chinese body each, as the seed sites have), the way runs do (upsert, prune,
//! run status, a flush per FLUSH_EVERY sites), then reads every site's newest 20 twice,
//! as feeds being rendered do. Prints VmHWM/VmRSS from /proc/self/status after each phase.
//!
//! `SITES=10000 ITEMS=20 CACHE_MB=32 cargo bench --bench store_memory`
//! (Linux only: the numbers come from /proc.)

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use feedbridge::model::Item;
use feedbridge::store::{Outcome, RunStatus, Store, StoreOptions};

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

/// About 3 KB of UTF-8 Chinese prose in paragraphs, different per item.
fn body(site: u64, n: u64) -> String {
    const TEXT: &str = "为深入贯彻落实党中央国务院决策部署，进一步优化营商环境，激发市场主体活力，\
        推动经济社会高质量发展，市政府召开常务会议，研究部署下一阶段重点工作。会议强调，\
        要坚持稳中求进工作总基调，统筹疫情防控和经济社会发展，扎实做好六稳工作，全面落实六保任务。";
    let mut out = String::with_capacity(3200);
    let mut i = 0;
    while out.len() < 3000 {
        out.push_str(&format!("<p>第{site}站第{n}篇第{i}段：{TEXT}</p>"));
        i += 1;
    }
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
    let default_mb = StoreOptions::default().cache_bytes >> 20;
    let cache_mb = env("CACHE_MB", default_mb);
    let dir = std::env::temp_dir().join(format!("feedbridge-store-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!("{sites} sites x {items} items, sled cache {cache_mb} MiB, flush every {flush_every} sites");
    let started = Instant::now();
    report("start", started);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    {
        let store = Store::open_with(
            &dir,
            &StoreOptions {
                cache_bytes: cache_mb << 20,
            },
        )
        .expect("store");
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
        let store = Store::open_with(
            &dir,
            &StoreOptions {
                cache_bytes: cache_mb << 20,
            },
        )
        .expect("reopen");
        report("reopened", reopen);
        for s in 0..sites {
            store.recent(&format!("site-{s:05}"), 20).expect("recent");
        }
        report("read all after reopen", reopen);
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
