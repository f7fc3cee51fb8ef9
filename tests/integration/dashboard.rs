//! The operator's pages: `/` and `/sites/<id>` against a real `serve` of the fixture site,
//! and the same page rendered by a real headless Chromium.

use std::time::Duration;

use feedbridge::fixture_server::FixtureServer;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn index_and_site_page_show_what_was_extracted_and_why() {
    let tmp = TempDir::new("dashboard");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();

    let index = client.get(format!("{base}/")).send().await.unwrap();
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let index = index.text().await.unwrap();
    assert!(index.contains("<p>1 feed: 1 ok. "), "singular: {index}");
    assert!(!index.contains("Page 1 of"), "one page needs no page links");
    assert!(
        index.contains(&format!(r#"href="{base}/sites/fix" lang="zh-CN""#)),
        "{index}"
    );
    assert!(index.contains("new items"), "{index}");
    assert!(index.contains("title 100%"), "hit rates: {index}");
    assert!(index.contains("Next run"), "{index}");

    let page = client
        .get(format!("{base}/sites/fix"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    // The autodiscovery link, and the URL to copy.
    assert!(page.contains(&format!(r#"<link rel="alternate" type="application/atom+xml" title="河南省直机关 · 工作动态（示例站点）" href="{base}/feeds/fix.atom">"#)), "{page}");
    assert!(
        page.contains(&format!(r#"readonly value="{base}/feeds/fix.atom""#)),
        "{page}"
    );
    assert!(page.contains("Copy this URL into your feed reader"));
    // Newest entries as a reader sees them: title, date in Beijing time, source, excerpt.
    assert!(page.contains("百舸竞进争出彩"), "{page}");
    assert!(page.contains("2020-05-12"), "{page}");
    assert!(page.contains("河南日报"), "{page}");
    assert!(page.contains(r#"<article lang="zh-CN">"#), "{page}");
    // Field hit rates over the feed, and the run history.
    assert!(
        page.contains("Fields found in the feed's 27 entries"),
        "{page}"
    );
    assert!(page.contains("Last runs"), "{page}");
    assert!(page.contains("27 items stored"), "{page}");

    // One site's status, and a JSON 404 for a site that does not exist.
    let one = client
        .get(format!("{base}/status.json?site=fix"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one: serde_json::Value = serde_json::from_slice(&one.bytes().await.unwrap()).unwrap();
    assert_eq!(one["id"], "fix");
    assert_eq!(one["items"], 27);
    assert_eq!(one["last_run"]["new"], 27);
    let unknown = client
        .get(format!("{base}/status.json?site=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown: serde_json::Value =
        serde_json::from_slice(&unknown.bytes().await.unwrap()).unwrap();
    assert_eq!(unknown["error"], "no such site: nope");

    let missing = client
        .get(format!("{base}/sites/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // A broken edit: the row says the rules were not applied, and the feed keeps serving.
    std::fs::write(tmp.join("selectors/fix.toml"), "title = \"x\"\nstart = [\n").unwrap();
    let marked = eventually(Duration::from_secs(20), || async {
        let index = get_text(format!("{base}/")).await;
        index.contains("rules not applied: ").then_some(index)
    })
    .await
    .expect("the index marks the file that failed to reload");
    assert!(marked.contains("fix.toml:"), "{marked}");
    assert!(
        marked.contains("百舸") || marked.contains("河南省直机关"),
        "the row stays: {marked}"
    );
    let site = get_text(format!("{base}/sites/fix")).await;
    assert!(site.contains("Rules not applied"), "{site}");
    let feed = client
        .get(format!("{base}/feeds/fix.atom"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
}

/// The dashboard in a real browser: Chromium's `--dump-dom` shows the entries' titles as
/// page text (no script is needed to see them).
#[tokio::test(flavor = "multi_thread")]
async fn site_page_renders_in_headless_chromium() {
    let required = std::env::var("FEEDBRIDGE_REAL_CLIENTS").is_ok_and(|v| v == "1");
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        assert!(
            !required,
            "FEEDBRIDGE_REAL_CLIENTS=1 but chromium is missing"
        );
        eprintln!(
            "SKIPPED site_page_renders_in_headless_chromium: install chromium, or run .ci/run"
        );
        return;
    };
    let tmp = TempDir::new("dashboard-chromium");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let profile = tmp.join("chromium-profile");
    let url = format!("{base}/sites/fix");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.display()),
                "--timeout=15000",
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("run chromium")
    })
    .await
    .unwrap();
    let dom = text(&out.stdout);
    assert!(
        dom.contains("百舸竞进争出彩"),
        "titles in the DOM: {dom}\n{}",
        text(&out.stderr)
    );
    assert!(dom.contains("Copy this URL into your feed reader"), "{dom}");
    assert!(dom.contains("<article lang=\"zh-CN\">"), "{dom}");
}
