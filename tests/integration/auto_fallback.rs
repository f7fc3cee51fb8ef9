//! Automatic extraction in the crawler: a site without `[article]` still gets full
//! entries, and a selector that stops matching is filled automatically, with a warning
//! the operator sees in /status.json and on the dashboard, while the feed stays complete.

use std::time::Duration;

use feedbridge::fixture_server::FixtureServer;
use feedbridge::store::Store;

use crate::support::*;

/// The bundled fixture selector without its `[article]` section.
fn without_article(origin: &str) -> String {
    let full = fixture_selector(origin, &[]);
    let cut = full
        .find("[article]")
        .expect("the fixture file has [article]");
    full[..cut].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_without_article_rules_gets_full_entries() {
    let tmp = TempDir::new("auto-no-article");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(
        tmp.join("selectors/fix.toml"),
        without_article(&fixture.origin()),
    )
    .unwrap();
    let out = run_in(
        tmp.path(),
        &["crawl", "--selectors", "selectors", "--data", "data"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let store = Store::open(&tmp.join("data")).unwrap();
    let items = store.recent("fix", 100).unwrap();
    assert_eq!(items.len(), 27);
    let seed = items
        .iter()
        .find(|s| s.item.url.ends_with("t20200512_1874321.html"))
        .expect("the seed article");
    let item = &seed.item;
    assert_eq!(
        item.title.as_deref(),
        Some("5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动")
    );
    assert_eq!(
        item.published.map(|p| p.to_rfc3339()).as_deref(),
        Some("2020-05-12T00:00:00+08:00")
    );
    assert_eq!(item.source.as_deref(), Some("河南日报"));
    let body = item.content.as_deref().unwrap_or_default();
    assert!(body.contains("春潮涌动 争创模范机关"), "{body}");
    assert!(!body.contains("打印本页"), "{body}");
    for field in ["title", "date", "source", "body"] {
        assert!(
            item.via.get(field).is_some_and(|v| v.starts_with("auto:")),
            "{field}: {:?}",
            item.via
        );
    }
    // Every entry got a title, a date and a body.
    for s in &items {
        assert!(
            s.item.title.is_some() && s.item.published.is_some() && s.item.content.is_some(),
            "{:?}",
            s.item
        );
    }
    let status = store.run_status("fix").unwrap().unwrap();
    assert_eq!(status.fields["body"].auto, 27, "{:?}", status.fields);

    // auto = false: the list alone, as before.
    let off = without_article(&fixture.origin()).replacen("[list]", "auto = false\n\n[list]", 1);
    let tmp2 = TempDir::new("auto-off");
    std::fs::create_dir_all(tmp2.join("selectors")).unwrap();
    std::fs::write(tmp2.join("selectors/fix.toml"), off).unwrap();
    let out = run_in(
        tmp2.path(),
        &["crawl", "--selectors", "selectors", "--data", "data"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = Store::open(&tmp2.join("data")).unwrap();
    assert!(store
        .recent("fix", 100)
        .unwrap()
        .iter()
        .all(|s| s.item.content.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_selector_is_filled_automatically_and_shown() {
    let tmp = TempDir::new("auto-rot");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "*/2 * * * * *", &[]).await;
    // The site "changes its template": the source rule no longer matches.
    let broken = fixture_selector(
        &fixture.origin(),
        &[
            ("schedule", "\"*/2 * * * * *\""),
            ("min_interval", "\"1s\""),
            (
                "source",
                "{ css = \"div.no-such-info\", regex = '来源[:：]\\s*(\\S+)' }",
            ),
        ],
    );
    assert!(broken.contains("div.no-such-info"), "{broken}");
    std::fs::write(tmp.join("selectors/fix.toml"), broken).unwrap();
    // A reload, the old run's end, then a run that re-reads the window: generous on a
    // loaded machine.
    let warnings = eventually(Duration::from_secs(90), || async {
        let status = status_json(&base).await?;
        let run = &status["sites"][0]["last_run"];
        let w = run["warnings"].to_string();
        w.contains("source: selector matched nothing, filled automatically")
            .then(|| (w, run["fields"]["source"]["auto"].as_u64()))
    })
    .await
    .expect("the rotten selector shows in /status.json");
    assert!(warnings.1.unwrap_or(0) > 0, "{warnings:?}");
    // The feed stays complete: sources are still there.
    let feed = get_text(format!("{base}/feeds/fix.atom")).await;
    let parsed = feed_rs::parser::parse(feed.as_bytes()).unwrap();
    assert_eq!(parsed.entries.len(), 27);
    assert!(feed.contains("<name>河南日报</name>"), "{feed}");
    // And the dashboard names it.
    let page = get_text(format!("{base}/sites/fix")).await;
    assert!(page.contains("filled automatically"), "{page}");
    let index = get_text(format!("{base}/")).await;
    assert!(index.contains(" auto)"), "{index}");
}
