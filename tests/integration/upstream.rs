//! Thin upstream feeds as sources: full text from the article pages, and malformed feeds
//! that must end as a run error without costing the stored items.

use std::path::Path;

use feedbridge::fixture_server::FixtureServer;
use feedbridge::store::Store;

use crate::support::{fixture_site_copy, root, run_in, text, TempDir};

fn rss_selector(origin: &str, feed: &str) -> String {
    std::fs::read_to_string(root().join("selectors/fixture-rss.toml"))
        .unwrap()
        .replace("http://127.0.0.1:8181", origin)
        .replace("/feeds/thin-rss.xml", feed)
}

async fn crawl(dir: &Path) -> (Option<i32>, String) {
    let dir = dir.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run_in(
            &dir,
            &[
                "crawl",
                "--selectors",
                "selectors",
                "--data",
                "data",
                "--retries",
                "0",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn thin_gbk_rss_becomes_a_full_text_feed() {
    let tmp = TempDir::new("upstream-rss");
    let server = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(
        tmp.join("selectors/thin.toml"),
        rss_selector(&server.origin(), "/feeds/thin-rss.xml"),
    )
    .unwrap();
    let (code, out) = crawl(tmp.path()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("new 8"), "{out}");

    let store = Store::open(&tmp.join("data")).unwrap();
    let items = store.recent("thin", 100).unwrap();
    assert_eq!(items.len(), 8);
    for s in &items {
        let content = s.item.content.as_deref().unwrap();
        assert!(
            content.len() > 500,
            "full text, not the summary: {}",
            s.item.url
        );
        assert!(s
            .item
            .images
            .iter()
            .any(|i| i.ends_with("W020200512083114.png")));
        assert!(s.item.source.is_some());
        assert_eq!(
            s.item.aliases.len(),
            1,
            "the upstream guid is kept as an alias"
        );
    }
    let seed = items
        .iter()
        .find(|s| s.item.url.ends_with("t20200512_1874321.html"))
        .unwrap();
    // The page says only 2020-05-12; the feed says 08:30 that day: the time is taken.
    assert_eq!(
        seed.item.published.unwrap().to_rfc3339(),
        "2020-05-12T08:30:00+08:00"
    );
    assert_eq!(seed.item.source.as_deref(), Some("河南日报"));
    let timed = items
        .iter()
        .find(|s| s.item.url.ends_with("t20200511_1874322.html"))
        .unwrap();
    assert_eq!(
        timed.item.published.unwrap().to_rfc3339(),
        "2020-05-11T16:20:00+08:00"
    );
    drop(store);

    // The second run: a conditional GET on the feed, no article fetched again.
    let articles_before = server.hits_under("/utf8/gzdt/2020").len();
    let (code, out) = crawl(tmp.path()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(304: 1)") && out.contains("new 0"), "{out}");
    assert_eq!(server.hits_under("/utf8/gzdt/2020").len(), articles_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_upstream_feeds_fail_the_run_and_keep_the_items() {
    let tmp = TempDir::new("upstream-bad");
    let site = fixture_site_copy(&tmp);
    let server = FixtureServer::start(&site, 0).await.unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(
        tmp.join("selectors/thin.toml"),
        rss_selector(&server.origin(), "/feeds/thin-atom.xml"),
    )
    .unwrap();
    let (code, out) = crawl(tmp.path()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("new 3"), "{out}");

    let good = std::fs::read(site.join("feeds/thin-atom.xml")).unwrap();
    let html_error = b"<!DOCTYPE html><html><head><title>500</title></head><body><h1>\xe7\xb3\xbb\xe7\xbb\x9f\xe7\xbb\xb4\xe6\x8a\xa4\xe4\xb8\xad</h1></body></html>".to_vec();
    for (label, bytes) in [
        ("truncated XML", good[..good.len() / 2].to_vec()),
        ("HTML error page with 200", html_error),
    ] {
        std::fs::write(site.join("feeds/thin-atom.xml"), &bytes).unwrap();
        let (code, out) = crawl(tmp.path()).await;
        assert_eq!(code, Some(1), "{label}: {out}");
        assert!(
            out.contains("not a readable RSS/Atom/JSON feed"),
            "{label}: {out}"
        );
        let store = Store::open(&tmp.join("data")).unwrap();
        assert_eq!(store.count("thin"), 3, "{label}: the good items stay");
        assert_eq!(
            store
                .run_status("thin")
                .unwrap()
                .unwrap()
                .error_class
                .as_deref(),
            Some("upstream")
        );
    }
    // An empty feed is "matched nothing", distinct from "no new items".
    std::fs::write(site.join("feeds/thin-atom.xml"), r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>x</id><updated>2020-05-12T00:00:00Z</updated></feed>"#).unwrap();
    let (_, out) = crawl(tmp.path()).await;
    assert!(
        out.contains("SelectorsMatchedNothing") && out.contains("no entries"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_entries_without_a_link_are_kept_and_counted() {
    let tmp = TempDir::new("upstream-linkless");
    let server = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let origin = server.origin();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    std::fs::write(
        tmp.join("selectors/notices.toml"),
        format!(
            "title = \"通知公告\"\nhome = \"{origin}/utf8/gzdt/index.html\"\n\
             feed = \"{origin}/feeds/linkless-rss.xml\"\nschedule = \"*/30 * * * *\"\n\
             timezone = \"Asia/Shanghai\"\ndelay = \"0s\"\n"
        ),
    )
    .unwrap();
    let (code, out) = crawl(tmp.path()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("new 4"), "all four entries are items: {out}");
    assert!(
        out.contains("3 upstream entries have no link; kept"),
        "the run says how many had no link: {out}"
    );
    // Stable identities: the same feed again adds nothing.
    std::fs::write(
        tmp.join("site/feeds/linkless-rss.xml"),
        std::fs::read_to_string(tmp.join("site/feeds/linkless-rss.xml")).unwrap() + "\n",
    )
    .unwrap();
    let (code, out) = crawl(tmp.path()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("new 0"), "{out}");

    let store = Store::open(&tmp.join("data")).unwrap();
    let items = store.recent("notices", 100).unwrap();
    assert_eq!(items.len(), 4);
    let home = format!("{origin}/utf8/gzdt/index.html#entry-");
    let linkless: Vec<_> = items
        .iter()
        .filter(|s| s.item.url.starts_with(&home))
        .collect();
    assert_eq!(linkless.len(), 3, "they link to the site's home");
    assert!(linkless
        .iter()
        .any(|s| s.item.aliases == ["notice-2020-17"]));
    assert!(linkless.iter().any(|s| s
        .item
        .content
        .as_deref()
        .is_some_and(|c| c.contains("暂停供餐"))));
    assert!(items
        .iter()
        .any(|s| s.item.url.ends_with("t20200512_1874321.html")));
}
