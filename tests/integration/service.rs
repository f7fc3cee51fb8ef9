//! Running feedbridge as a service: demo, hot reload, settings, health, shutdown.

use std::time::Duration;

use feedbridge::fixture_server::FixtureServer;

use crate::support::{
    eventually, fixture_selector, fixture_site_copy, free_port, get_text, http, root, run_in,
    spawn_serve, status_json as status, text, wait_for_items, Proc, TempDir,
};

#[tokio::test(flavor = "multi_thread")]
async fn demo_serves_a_valid_feed_and_stops_on_sigterm() {
    let tmp = TempDir::new("demo");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // From an unrelated directory: the bundled site and selector are still found.
    let mut p = Proc::spawn(tmp.path(), &["demo", "--listen", &listen]);
    let url = format!("http://{listen}/feeds/fixture-gzdt.atom");
    let feed = eventually(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let body = http().get(&url).send().await.ok()?.bytes().await.ok()?;
            let feed = feed_rs::parser::parse(body.as_ref()).ok()?;
            (feed.entries.len() == 27).then_some(feed)
        }
    })
    .await
    .expect("demo feed with 27 entries");
    assert!(feed.entries.iter().all(|e| e.content.is_some()));
    p.sigterm();
    let code = p
        .wait_for(Duration::from_secs(10))
        .expect("exits within 10 s of SIGTERM");
    assert!(code.success());
    let mut out = String::new();
    std::io::Read::read_to_string(p.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains(&format!("http://{listen}/feeds/fixture-gzdt.atom")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_applies_edits_keeps_last_good_rules_adds_and_removes_feeds() {
    let tmp = TempDir::new("reload");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let good = fixture_selector(
        &fixture.origin(),
        &[
            ("schedule", "\"*/2 * * * * *\""),
            ("min_interval", "\"1s\""),
        ],
    );
    std::fs::write(tmp.join("selectors/fix.toml"), &good).unwrap();
    let (base, _p) = spawn_serve(tmp.path());
    wait_for_items(&base, 27).await;

    // An edit: the new title shows, without a restart. Written via a temp file and a
    // rename, as editors do; the temp name itself must be ignored.
    let edited = good.replace("（示例站点）", "（已编辑）");
    std::fs::write(tmp.join("selectors/fix.toml.new"), &edited).unwrap();
    std::fs::rename(
        tmp.join("selectors/fix.toml.new"),
        tmp.join("selectors/fix.toml"),
    )
    .unwrap();
    eventually(Duration::from_secs(10), || async {
        status(&base).await?["sites"][0]["title"]
            .as_str()?
            .contains("已编辑")
            .then_some(())
    })
    .await
    .expect("edit applied");

    // A broken file: the error is shown with path:line:col, the old rules keep serving.
    std::fs::write(
        tmp.join("selectors/fix.toml"),
        edited.replace("item = \"div.list li\"", "item = \"div.list li[\""),
    )
    .unwrap();
    let errors = eventually(Duration::from_secs(10), || async {
        let s = status(&base).await?;
        let e = s["errors"].as_array()?.first()?.as_str()?.to_owned();
        Some((s, e))
    })
    .await
    .expect("error reported");
    assert!(
        errors.1.contains("selectors/fix.toml:")
            && errors.1.contains("is not a valid CSS selector"),
        "{}",
        errors.1
    );
    assert!(
        errors.0["sites"][0]["title"]
            .as_str()
            .unwrap()
            .contains("已编辑"),
        "last good rules kept"
    );
    let feed = http()
        .get(format!("{base}/feeds/fix.atom"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let index = get_text(format!("{base}/")).await;
    assert!(index.contains("is not a valid CSS selector"));

    // A new file adds a feed; deleting it removes the feed from / and /opml.
    std::fs::write(tmp.join("selectors/second.toml"), &good).unwrap();
    eventually(Duration::from_secs(10), || async {
        (status(&base).await?["sites"].as_array()?.len() == 2).then_some(())
    })
    .await
    .expect("second feed added");
    std::fs::remove_file(tmp.join("selectors/second.toml")).unwrap();
    eventually(Duration::from_secs(10), || async {
        (status(&base).await?["sites"].as_array()?.len() == 1).then_some(())
    })
    .await
    .expect("second feed removed");
    let opml = get_text(format!("{base}/opml")).await;
    assert!(!opml.contains("second.atom"));
    assert_eq!(
        http()
            .get(format!("{base}/feeds/second.atom"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn settings_precedence_flag_env_file() {
    let tmp = TempDir::new("settings");
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    // Environment alone: a bad value fails at start with exit 2 and names the setting.
    let out = run_in(tmp.path(), &["crawl"], &[("FEEDBRIDGE_LOG_FORMAT", "xml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`log_format`"),
        "{}",
        text(&out.stderr)
    );
    // The flag beats the environment.
    let out = run_in(
        tmp.path(),
        &["crawl", "--log-format", "human"],
        &[("FEEDBRIDGE_LOG_FORMAT", "xml")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The file is read when present...
    std::fs::write(tmp.join("feedbridge.toml"), "concurrency = 0\n").unwrap();
    let out = run_in(tmp.path(), &["crawl"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`concurrency`"));
    // ...and the environment beats it.
    let out = run_in(tmp.path(), &["crawl"], &[("FEEDBRIDGE_CONCURRENCY", "2")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A typo in the file is pointed at.
    std::fs::write(tmp.join("feedbridge.toml"), "listne = \"127.0.0.1:1\"\n").unwrap();
    let out = run_in(tmp.path(), &["crawl"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("feedbridge.toml:1:1"),
        "{}",
        text(&out.stderr)
    );
    // --help documents every setting with its default.
    let help = text(&run_in(tmp.path(), &["serve", "--help"], &[]).stdout);
    for s in [
        "--listen",
        "FEEDBRIDGE_LISTEN",
        "--data",
        "--selectors",
        "--base-url",
        "--user-agent",
        "--concurrency",
        "--delay",
        "--log-format",
        "[default: 127.0.0.1:8080]",
    ] {
        assert!(help.contains(s), "{s} missing from serve --help");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_store_lock_and_graceful_stop() {
    let tmp = TempDir::new("health");
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::copy(
        root().join("selectors/fixture-gzdt.toml"),
        tmp.join("selectors/fixture-gzdt.toml"),
    )
    .unwrap();
    let (base, mut p) = spawn_serve(tmp.path());
    let listen = base.trim_start_matches("http://").to_owned();
    let url = format!("http://{listen}/healthz");
    eventually(Duration::from_secs(20), || async {
        (http().get(&url).send().await.ok()?.status() == 200).then_some(())
    })
    .await
    .expect("healthy");
    // The Docker HEALTHCHECK command, as the image runs it (FEEDBRIDGE_LISTEN set).
    let dir = tmp.path().to_owned();
    let l = listen.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_in(&dir, &["healthcheck"], &[("FEEDBRIDGE_LISTEN", &l)])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A second process on the same store is refused clearly.
    let dir = tmp.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run_in(
            &dir,
            &["crawl", "--data", "data", "--selectors", "selectors"],
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use by another feedbridge process"),
        "{}",
        text(&out.stderr)
    );
    p.sigterm();
    assert!(p
        .wait_for(Duration::from_secs(10))
        .expect("stops within 10 s")
        .success());
    let dir = tmp.path().to_owned();
    let out =
        tokio::task::spawn_blocking(move || run_in(&dir, &["healthcheck", "--url", &url], &[]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "nothing answers any more");
}
