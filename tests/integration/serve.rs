//! `feedbridge serve` (the real binary) with the fixture site crawled: the feed as feed
//! readers and aggregators see it, and the renderer against hostile items.

use std::time::Duration;

use feedbridge::fixture_server::FixtureServer;
use reqwest::header;

use crate::support::{
    add_article, eventually, fixture_site_copy, get_text, http, newsboat_unread, python_ok,
    real_readers_or_skip, serve_fixture, TempDir,
};

#[tokio::test(flavor = "multi_thread")]
async fn feed_is_valid_atom_and_polls_are_cheap() {
    let tmp = TempDir::new("serve-feed");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();
    let url = format!("{base}/feeds/fix.atom");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/atom+xml; charset=utf-8"
    );
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    let last_modified = r.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(r.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("public, max-age="));
    let body = r.bytes().await.unwrap();
    let xml = String::from_utf8(body.to_vec()).unwrap();
    assert!(xml.contains(r#"xml:lang="zh-CN""#));
    assert!(
        xml.contains(&format!(
            r#"<link href="{url}" rel="self" type="application/atom+xml"/>"#
        )),
        "{}",
        &xml[..600]
    );

    let feed = feed_rs::parser::parse(body.as_ref()).expect("feed-rs parses it");
    assert_eq!(feed.entries.len(), 27);
    // Newest first. The one article that prints no date, on a list that gives it none,
    // is dated by automatic extraction from its URL (t20200507_…), so it sorts among
    // the others instead of leading the feed with the crawl time.
    let was_undated = feed
        .entries
        .iter()
        .find(|e| e.title.as_ref().unwrap().content == "省直机关党务工作者培训班开班")
        .expect("the article without a printed date");
    assert_eq!(
        was_undated.published.map(|p| p.to_rfc3339()).as_deref(),
        Some("2020-05-06T16:00:00+00:00")
    );
    let first = &feed.entries[0];
    assert_eq!(
        first.title.as_ref().unwrap().content,
        "5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动"
    );
    assert!(first.id.starts_with("urn:uuid:"));
    assert_eq!(first.authors[0].name.as_deref(), Some("河南日报"));
    let content = first.content.as_ref().unwrap().body.as_ref().unwrap();
    assert!(content.contains(&format!(
        r#"<img src="{}/utf8/gzdt/202005/W020200512083114.png""#,
        fixture.origin()
    )));
    assert!(first
        .links
        .iter()
        .any(|l| l.rel.as_deref() == Some("enclosure")
            && l.media_type.as_deref() == Some("image/png")));
    assert!(xml.contains("<published>2020-05-12T00:00:00+08:00</published>"));
    let ids: std::collections::HashSet<_> = feed.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 27);

    // Aggregator polls: 304 by ETag, by date; HEAD; gzip with its own tag.
    let r = client
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = client
        .get(&url)
        .header(header::IF_MODIFIED_SINCE, &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = client.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    let r = client
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    let gz_etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_ne!(gz_etag, etag);
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(r.bytes().await.unwrap().as_ref()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(plain, body.as_ref());
    let r = client
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::IF_NONE_MATCH, &gz_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // Unknown feeds and path tricks are plain 404s.
    for bad in [
        "/feeds/nope.atom",
        "/feeds/fix.xml",
        "/feeds/..%2F..%2Fetc%2Fpasswd",
        "/feeds/../Cargo.toml",
        "/nothing",
    ] {
        let r = client.get(format!("{base}{bad}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn index_opml_status_health_and_metrics() {
    let tmp = TempDir::new("serve-pages");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let index = get("/").await.unwrap().text().await.unwrap();
    assert!(index.contains(&format!(r#"<link rel="alternate" type="application/atom+xml" title="河南省直机关 · 工作动态（示例站点）" href="{base}/feeds/fix.atom">"#)), "{index}");
    assert!(index.contains("27</td>"));
    let opml = get("/opml").await.unwrap().text().await.unwrap();
    assert!(opml.contains(&format!(r#"xmlUrl="{base}/feeds/fix.atom""#)));
    let status: serde_json::Value =
        serde_json::from_slice(&get("/status.json").await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(status["sites"][0]["last_run"]["new"], 27);
    assert_eq!(status["sites"][0]["last_run"]["outcome"], "ok");
    assert_eq!(status["sites"][0]["last_run"]["with_date"], 27);
    // 26 dates by the selector, the undated article's from its URL, automatically.
    assert_eq!(
        status["sites"][0]["last_run"]["fields"]["date"]["selector"],
        26
    );
    assert_eq!(status["sites"][0]["last_run"]["fields"]["date"]["auto"], 1);
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let _ = get("/feeds/fix.atom").await.unwrap();
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("feedbridge_site_items{site=\"fix\"} 27"),
        "{metrics}"
    );
    assert!(
        metrics.contains("feedbridge_runs_total{outcome=\"Ok\",site=\"fix\"} 1")
            || metrics.contains("feedbridge_runs_total{site=\"fix\",outcome=\"Ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "feedbridge_http_requests_total{route=\"/feeds/{id}.atom\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregator_sees_a_new_item_after_the_next_crawl() {
    let tmp = TempDir::new("serve-aggregator");
    let site = fixture_site_copy(&tmp);
    let fixture = FixtureServer::start(&site, 0).await.unwrap();
    // Every 2 seconds (6 fields: seconds first).
    let (base, _p) = serve_fixture(&tmp, &fixture, "*/2 * * * * *", &[]).await;
    let client = http();
    let url = format!("{base}/feeds/fix.atom");
    let r = client.get(&url).send().await.unwrap();
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        client
            .get(&url)
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap()
            .status(),
        304
    );

    add_article(&site, 9999, "省直机关召开新闻发布会", "2020-05-13 10:00");
    let fresh = eventually(Duration::from_secs(60), || {
        let (client, url, etag) = (client.clone(), url.clone(), etag.clone());
        async move {
            let r = client
                .get(&url)
                .header(header::IF_NONE_MATCH, &etag)
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(r.bytes().await.ok()?)
        }
    })
    .await
    .expect("the new item reached the feed");
    let feed = feed_rs::parser::parse(fresh.as_ref()).unwrap();
    assert_eq!(feed.entries.len(), 28);
    let newest_dated = feed.entries.iter().find(|e| e.published.is_some()).unwrap();
    assert_eq!(
        newest_dated.title.as_ref().unwrap().content,
        "省直机关召开新闻发布会"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_feed_readers_accept_the_feed() {
    if !real_readers_or_skip("real_feed_readers_accept_the_feed") {
        return;
    }
    let tmp = TempDir::new("serve-readers");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let url = format!("{base}/feeds/fix.atom");

    let script = format!(
        r#"
import feedparser, sys
d = feedparser.parse("{url}")
assert not d.bozo, d.bozo_exception
assert len(d.entries) == 27, len(d.entries)
for e in d.entries:
    assert e.title and e.link and e.id, e
    assert e.updated.endswith("+08:00"), e.updated
    assert e.author
first = d.entries[0]
assert first.published == "2020-05-12T00:00:00+08:00", first.published
assert first.author == "河南日报", first.author
assert "{origin}/utf8/gzdt/202005/W020200512083114.png" in first.content[0].value
assert d.feed.language == "zh-CN"
print("feedparser ok", len(d.entries))
"#,
        origin = fixture.origin()
    );
    python_ok("feedparser", script).await;

    // newsboat: reload non-interactively into its cache, then count the entries.
    let said = newsboat_unread(tmp.join("newsboat"), &url).await;
    assert!(
        said.trim().starts_with("27 unread articles"),
        "newsboat said: {said}"
    );
}

#[test]
fn hostile_items_always_render_a_parsable_complete_feed() {
    use chrono::TimeZone;
    use feedbridge::feed::{render, FeedMeta};
    use feedbridge::model::Item;

    let tz = chrono_tz::Asia::Shanghai;
    let meta = FeedMeta {
        site_id: "hostile".into(),
        title: "A & B <feed> \u{1}".into(),
        home: Some("http://example.gov.cn/?a=1&b=2".into()),
        self_url: "http://127.0.0.1/feeds/hostile.atom".into(),
        language: Some("zh-CN".into()),
        timezone: tz,
    };
    let big = "<p>".to_owned() + &"正文 & <b>粗</b> ".repeat(60_000) + "</p>";
    let future = chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(2099, 1, 1, 0, 0, 0)
        .unwrap();
    let items = vec![
        Item {
            url: "http://a/1?x=1&y=2".into(),
            title: Some("Tom & Jerry <script>alert(1)</script> \u{f}\u{0}".into()),
            content: Some("<p>x</p>".into()),
            ..Item::default()
        },
        Item {
            url: "http://a/2".into(),
            title: Some("   ".into()),
            content: Some(big),
            ..Item::default()
        },
        Item {
            url: "http://a/3".into(),
            title: None,
            source: Some("来源\u{b}".into()),
            published: Some(future),
            ..Item::default()
        },
        Item {
            url: "http://a/4".into(),
            title: Some("&amp; already escaped".into()),
            images: vec!["http://a/i.gif?x=1&y=2".into()],
            ..Item::default()
        },
    ];
    let dir = crate::support::TempDir::new("hostile-render");
    let store = feedbridge::store::Store::open(dir.path()).unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    for item in &items {
        store.upsert("hostile", item, now).unwrap();
    }
    let stored = store.recent("hostile", 10).unwrap();
    let bytes = render(&meta, &stored, now);
    assert!(bytes.len() > 1_000_000);
    let xml = String::from_utf8(bytes.clone()).unwrap();
    assert!(!xml
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}')));
    assert!(xml.contains("Tom &amp; Jerry &lt;script&gt;"));
    assert!(
        xml.contains("&amp;amp; already escaped"),
        "escaped exactly once: the text had a literal &amp;"
    );
    let feed = feed_rs::parser::parse(bytes.as_slice()).expect("always parses");
    assert_eq!(feed.entries.len(), 4);
    for e in &feed.entries {
        assert!(!e.id.is_empty());
        assert!(
            e.title
                .as_ref()
                .is_some_and(|t| !t.content.trim().is_empty()),
            "{e:?}"
        );
        assert!(e.updated.is_some());
        assert!(e
            .authors
            .first()
            .and_then(|a| a.name.as_ref())
            .is_some_and(|n| !n.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_base_url_names_the_feed_behind_a_proxy() {
    let tmp = TempDir::new("serve-base-url");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(
        &tmp,
        &fixture,
        "0 0 1 1 *",
        &["--base-url", "https://feeds.example.org/bridge"],
    )
    .await;
    let client = http();
    let xml = get_text(format!("{base}/feeds/fix.atom")).await;
    assert!(
        xml.contains(r#"<link href="https://feeds.example.org/bridge/feeds/fix.atom" rel="self" type="application/atom+xml"/>"#),
        "{}",
        &xml[..800.min(xml.len())]
    );
    let opml = get_text(format!("{base}/opml")).await;
    assert!(
        opml.contains(r#"xmlUrl="https://feeds.example.org/bridge/feeds/fix.atom""#),
        "{opml}"
    );
    // A forged Host header changes nothing when the base is configured.
    let r = client
        .get(format!("{base}/feeds/fix.atom"))
        .header(header::HOST, "evil.example")
        .send()
        .await
        .unwrap();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("https://feeds.example.org/bridge/feeds/fix.atom"));
}
