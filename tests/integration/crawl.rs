//! `feedbridge crawl` (the real binary) against fixture sites on 127.0.0.1.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use feedbridge::fixture_server::FixtureServer;
use feedbridge::store::Store;

use crate::support::{
    add_article, fixture_selector, fixture_site_copy, run_in, small_selector, small_site, text,
    Proc, TempDir,
};

async fn crawl(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = dir.to_owned();
    let mut args: Vec<String> = ["crawl", "--selectors", "selectors", "--data", "data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_in(&dir, &args, &[])
    })
    .await
    .unwrap();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn line_of<'a>(stdout: &'a str, site: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{site}: ")))
        .unwrap_or_else(|| panic!("no summary for {site} in:\n{stdout}"))
}

fn article_hits(server: &FixtureServer) -> usize {
    server
        .hits_under("/utf8/gzdt/2020")
        .iter()
        .filter(|h| h.path.ends_with(".html"))
        .count()
}

fn setup(tmp: &TempDir, selector: &str) {
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(tmp.join("selectors/fix.toml"), selector).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn second_crawl_sends_conditional_gets_and_fetches_no_known_article() {
    let tmp = TempDir::new("crawl-twice");
    let server = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    setup(&tmp, &fixture_selector(&server.origin(), &[]));

    let (code, out, err) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(line_of(&out, "fix").contains("new 27 / updated 0"), "{out}");
    assert_eq!(article_hits(&server), 27);
    let lists_before = server.hits_under("/utf8/gzdt/index").len();

    let (code, out, _) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0));
    let line = line_of(&out, "fix");
    assert!(
        line.contains("NotModified") && line.contains("pages 0 (304: 1)") && line.contains("new 0"),
        "{line}"
    );
    assert_eq!(article_hits(&server), 27, "no article fetched again");
    let list_hits = server.hits_under("/utf8/gzdt/index");
    assert_eq!(list_hits.len(), lists_before + 1);
    assert!(list_hits.last().unwrap().conditional && list_hits.last().unwrap().status == 304);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_article_becomes_an_update_not_a_new_item() {
    let tmp = TempDir::new("crawl-edit");
    let site = fixture_site_copy(&tmp);
    let server = FixtureServer::start(&site, 0).await.unwrap();
    setup(
        &tmp,
        &fixture_selector(&server.origin(), &[("revisit", "true")]),
    );
    let (_, out, _) = crawl(tmp.path(), &[]).await;
    assert!(line_of(&out, "fix").contains("new 27"), "{out}");

    let page = site.join("utf8/gzdt/202005/t20200511_1874322.html");
    let html = std::fs::read_to_string(&page)
        .unwrap()
        .replace("工作推进会</h1>", "工作推进会（更正）</h1>");
    std::fs::write(&page, html).unwrap();
    let (_, out, _) = crawl(tmp.path(), &[]).await;
    assert!(
        line_of(&out, "fix").contains("new 0 / updated 1 / unchanged 26"),
        "{out}"
    );

    let store = Store::open(&tmp.join("data")).unwrap();
    let items = store.recent("fix", 100).unwrap();
    assert_eq!(items.len(), 27);
    let edited = items
        .iter()
        .find(|i| i.item.url.ends_with("t20200511_1874322.html"))
        .unwrap();
    assert!(edited.item.title.as_deref().unwrap().ends_with("（更正）"));
    assert!(
        edited.updated > edited.first_seen,
        "updated moves, identity and first-seen stay"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_host_spacing_is_observed() {
    let tmp = TempDir::new("crawl-spacing");
    small_site(&tmp.join("site"), 4, "");
    let server = FixtureServer::start(&tmp.join("site"), 0).await.unwrap();
    setup(&tmp, &small_selector(&server.origin(), "delay = \"400ms\""));
    let (code, out, _) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let hits = server.hits_under("/");
    assert_eq!(hits.len(), 6, "robots.txt, list, 4 articles: {hits:?}");
    // Arrival times carry the scheduling jitter of a loaded machine (one request's
    // connection set-up can land late and shorten the next gap): each gap gets 100 ms of
    // slack, the whole span only 50 ms, so a crawler that ignored the delay still fails.
    for pair in hits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(300),
            "{} then {} after {gap:?}",
            pair[0].path,
            pair[1].path
        );
    }
    let span = hits[hits.len() - 1].at - hits[0].at;
    assert!(span >= Duration::from_millis(5 * 400 - 50), "{span:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn robots_txt_disallow_is_obeyed() {
    let tmp = TempDir::new("crawl-robots");
    let site = tmp.join("site");
    small_site(&site, 2, "");
    small_site(&site.join("private"), 1, "");
    let list = std::fs::read_to_string(site.join("list.html")).unwrap();
    std::fs::write(
        site.join("list.html"),
        list.replace(
            "</ul>",
            "<li><a href=\"private/a0.html\">内部</a></li></ul>",
        ),
    )
    .unwrap();
    std::fs::write(
        site.join("robots.txt"),
        "User-agent: *\nDisallow: /private/\n",
    )
    .unwrap();
    let server = FixtureServer::start(&site, 0).await.unwrap();
    setup(&tmp, &small_selector(&server.origin(), "delay = \"0s\""));
    let (_, out, _) = crawl(tmp.path(), &[]).await;
    assert!(line_of(&out, "fix").contains("new 2"), "{out}");
    assert!(out.contains("disallowed by robots.txt"), "{out}");
    assert!(server.hits_under("/private/").is_empty());
}

/// A host that misbehaves in every way a crawler meets.
async fn hostile_server() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route("/500", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/robots.txt",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/blocked",
            get(|| async {
                (
                    StatusCode::PRECONDITION_FAILED,
                    "<script>challenge()</script>",
                )
            }),
        )
        .route(
            "/garbage",
            get(|| async {
                let bytes: Vec<u8> = (0..50_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                ([(header::CONTENT_TYPE, "text/html")], bytes)
            }),
        )
        .route(
            "/huge",
            get(|| async {
                // 2 GB promised in chunks, no Content-Length: the cap must cut it.
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures_util::stream::iter(
                    (0..32_768).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                axum::body::Body::from_stream(stream).into_response()
            }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_fault_stays_with_its_site_and_the_healthy_site_succeeds() {
    let tmp = TempDir::new("crawl-faults");
    small_site(&tmp.join("site"), 3, "");
    let server = FixtureServer::start(&tmp.join("site"), 0).await.unwrap();
    let (bad, _h) = hostile_server().await;
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(
        tmp.join("selectors/healthy.toml"),
        small_selector(&server.origin(), "delay = \"0s\""),
    )
    .unwrap();
    for route in ["hang", "500", "blocked", "garbage", "huge", "loop"] {
        let sel = small_selector(&format!("{bad}/{route}#"), "delay = \"0s\"\nrobots = false");
        std::fs::write(tmp.join(&format!("selectors/{route}.toml")), sel).unwrap();
    }
    // The same host's robots.txt answers 503: a site that obeys robots.txt must not crawl.
    let sel = small_selector(&format!("{bad}/500#"), "delay = \"0s\"");
    std::fs::write(tmp.join("selectors/robots5xx.toml"), sel).unwrap();
    let started = Instant::now();
    let (code, out, err) = crawl(
        tmp.path(),
        &[
            "--timeout",
            "2s",
            "--retries",
            "1",
            "--retry-base",
            "100ms",
            "--max-body",
            "1000000",
            "--concurrency",
            "8",
        ],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a bad site stalled the pass"
    );
    assert_eq!(code, Some(1), "failures give exit 1:\n{out}\n{err}");
    assert!(line_of(&out, "healthy").contains("new 3"), "{out}");
    for (site, expect) in [
        ("hang", "timed out"),
        ("500", "HTTP 500"),
        ("blocked", "blocked by the site (HTTP 412)"),
        ("garbage", "matched nothing"),
        ("huge", "larger than the 1000000-byte cap"),
        ("loop", "too many redirects"),
        ("robots5xx", "robots.txt is unreachable"),
    ] {
        let line = line_of(&out, site);
        assert!(line.contains(expect), "{site}: want {expect:?} in {line}");
    }
    // The failures are in each site's recorded status too.
    let store = Store::open(&tmp.join("data")).unwrap();
    assert_eq!(
        store
            .run_status("500")
            .unwrap()
            .unwrap()
            .error_class
            .as_deref(),
        Some("http-status")
    );
    assert_eq!(
        store
            .run_status("blocked")
            .unwrap()
            .unwrap()
            .error_class
            .as_deref(),
        Some("blocked")
    );
    assert_eq!(
        store
            .run_status("healthy")
            .unwrap()
            .unwrap()
            .consecutive_failures,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let tmp = TempDir::new("crawl-crash");
    let site = fixture_site_copy(&tmp);
    let server = FixtureServer::start(&site, 0).await.unwrap();
    // 40 ms between requests: a run of six new articles takes about half a second, so the
    // random kills land before, during and after the writes.
    setup(
        &tmp,
        &fixture_selector(&server.origin(), &[("delay", "\"40ms\"")]),
    );
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut rng = 0x2545_f491_u64;
    let (mut completed, mut killed_mid_run) = (0, 0);
    for round in 0..20u32 {
        // Every round has new work: six more articles on the list.
        for k in 0..6 {
            add_article(
                &site,
                round * 10 + k,
                &format!("第{round}轮新文章{k}"),
                "2020-05-13 09:00",
            );
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut p = Proc::spawn(
            tmp.path(),
            &["crawl", "--selectors", "selectors", "--data", "data"],
        );
        // Every fifth round runs to the end, so the "reported new = stored" check below runs
        // however slow the machine is; the others are killed at a random moment.
        let finished = if round % 5 == 4 {
            let done = p.wait_for(Duration::from_secs(60)).is_some();
            assert!(done, "round {round}: the crawl did not finish within 60 s");
            true
        } else {
            tokio::time::sleep(Duration::from_millis(rng % 800)).await;
            p.wait_for(Duration::ZERO).is_some()
        };
        let _ = p.0.kill();
        let _ = p.0.wait();
        let mut stdout = String::new();
        if let Some(out) = p.0.stdout.as_mut() {
            let _ = std::io::Read::read_to_string(out, &mut stdout);
        }

        let store = Store::open(&tmp.join("data"))
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        let items = store.recent("fix", 10_000).unwrap();
        let urls: BTreeSet<String> = items.iter().map(|i| i.item.url.clone()).collect();
        assert_eq!(urls.len(), items.len(), "round {round}: duplicate items");
        assert_eq!(
            store.count("fix"),
            items.len(),
            "round {round}: index and items disagree"
        );
        assert!(urls.is_superset(&seen), "round {round}: items lost");
        if finished {
            // What a finished run reported as new is exactly what the store gained.
            let new: usize = line_of(&stdout, "fix")
                .split("items new ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .expect("new count");
            assert_eq!(urls.len(), seen.len() + new, "round {round}: {stdout}");
            completed += 1;
        } else if urls.len() > seen.len() {
            killed_mid_run += 1;
        }
        seen = urls;
    }
    assert!(
        killed_mid_run >= 1,
        "no kill landed during the writes ({completed} rounds finished)"
    );
    assert!(completed >= 4, "only {completed} rounds finished");
    let (code, out, _) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let store = Store::open(&tmp.join("data")).unwrap();
    assert_eq!(store.recent("fix", 10_000).unwrap().len(), 27 + 120);
    eprintln!("kill -9 rounds: {completed} finished, {killed_mid_run} killed while writing, {} killed before writing", 20 - completed - killed_mid_run);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_files_are_skipped_in_a_full_crawl_and_refused_by_name() {
    let tmp = TempDir::new("crawl-broken");
    small_site(&tmp.join("site"), 2, "");
    let server = FixtureServer::start(&tmp.join("site"), 0).await.unwrap();
    setup(&tmp, &small_selector(&server.origin(), "delay = \"0s\""));
    std::fs::write(
        tmp.join("selectors/broken.toml"),
        "title = \"x\"\nstart = [\n",
    )
    .unwrap();

    // In a pipe, with info logs on: plain log lines per list page; the run's summary
    // only once, on stdout.
    let dir = tmp.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run_in(
            &dir,
            &["crawl", "--selectors", "selectors", "--data", "data"],
            &[("RUST_LOG", "info")],
        )
    })
    .await
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(line_of(&stdout, "fix").contains("new 2"), "{stdout}");
    assert!(
        stderr.contains("selectors/broken.toml:2:10:") && stderr.contains("(skipped)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("reading list") && !stderr.contains("fix: Ok in"),
        "{stderr}"
    );

    let (code, _, stderr) = crawl(tmp.path(), &["broken"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("selectors/broken.toml:2:10:"), "{stderr}");
    let (code, _, stderr) = crawl(tmp.path(), &["nosuch"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no site \"nosuch\""), "{stderr}");
}
