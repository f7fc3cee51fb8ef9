//! RSS 2.0 and JSON Feed beside Atom (issue 13): each format is valid by its own rules
//! (the W3C feed validator's for RSS, the 1.1 spec's required fields for JSON Feed),
//! carries the same items as the Atom feed, and is served like it (ETags, 304, HEAD,
//! gzip, brotli, Cache-Control).

use std::collections::BTreeMap;

use feedbridge::fixture_server::FixtureServer;
use reqwest::header;

use crate::support::{
    fixture_site_copy, http, newsboat_unread, python_ok, real_readers_or_skip, serve_fixture,
    TempDir,
};

const FORMATS: [(&str, &str); 3] = [
    ("atom", "application/atom+xml; charset=utf-8"),
    ("rss", "application/rss+xml; charset=utf-8"),
    ("json", "application/feed+json; charset=utf-8"),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_format_is_served_cached_with_its_own_validators() {
    let tmp = TempDir::new("formats-serve");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();
    let mut etags = Vec::new();
    let mut bodies = BTreeMap::new();
    for (ext, content_type) in FORMATS {
        let url = format!("{base}/feeds/fix.{ext}");
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], content_type);
        assert!(r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public, max-age="));
        assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        let last_modified = r.headers()[header::LAST_MODIFIED].clone();
        let body = r.bytes().await.unwrap();
        // The same bytes on a second poll (rendered once, served from the cache).
        let again = client.get(&url).send().await.unwrap();
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert_eq!(again.bytes().await.unwrap(), body);

        let status = |h: (header::HeaderName, header::HeaderValue)| {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url).header(h.0, h.1).send().await.unwrap() }
        };
        let r = status((header::IF_NONE_MATCH, etag.parse().unwrap())).await;
        assert_eq!(r.status(), 304, "{ext} by ETag");
        assert!(r.bytes().await.unwrap().is_empty());
        let r = status((header::IF_MODIFIED_SINCE, last_modified)).await;
        assert_eq!(r.status(), 304, "{ext} by date");
        let r = client.head(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], content_type);
        assert_eq!(
            r.headers()[header::CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
        assert!(r.bytes().await.unwrap().is_empty());

        let r = status((header::ACCEPT_ENCODING, "gzip".parse().unwrap())).await;
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let gz_etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_ne!(gz_etag, etag);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(r.bytes().await.unwrap().as_ref()),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, body.as_ref(), "{ext}: gzip is the same feed");
        let r = client
            .get(&url)
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(header::IF_NONE_MATCH, &gz_etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);

        let r = status((header::ACCEPT_ENCODING, "br".parse().unwrap())).await;
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "br");
        let br_etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut brotli::Decompressor::new(r.bytes().await.unwrap().as_ref(), 4096),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, body.as_ref(), "{ext}: brotli is the same feed");

        // Each representation is its own entity: no tag is shared across formats.
        etags.extend([etag, gz_etag, br_etag]);
        bodies.insert(ext, body);
    }
    let distinct: std::collections::HashSet<_> = etags.iter().collect();
    assert_eq!(distinct.len(), etags.len(), "{etags:?}");

    // Another Host gets its own self links (spliced, not re-rendered) in every format.
    for ext in ["rss", "json"] {
        let r = client
            .get(format!("{base}/feeds/fix.{ext}"))
            .header(header::HOST, "feeds.example.org")
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(
            text.contains(&format!("http://feeds.example.org/feeds/fix.{ext}")),
            "{ext}: {}",
            &text[..text.len().min(800)]
        );
        assert!(
            !text.contains("feedbridge-base-"),
            "{ext}: placeholder leaked"
        );
    }

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for ext in ["rss", "json"] {
        assert!(
            metrics.contains(&format!(
                "feedbridge_http_requests_total{{route=\"/feeds/{{id}}.{ext}\",status=\"200\"}}"
            )),
            "{metrics}"
        );
    }

    // The same entries, in the same order, with the same ids, titles and links.
    let parsed: Vec<(&str, feed_rs::model::Feed)> = bodies
        .iter()
        .map(|(ext, b)| (*ext, feed_rs::parser::parse(b.as_ref()).expect(ext)))
        .collect();
    let summary = |f: &feed_rs::model::Feed| -> Vec<(String, String, String)> {
        f.entries
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.title
                        .as_ref()
                        .map(|t| t.content.clone())
                        .unwrap_or_default(),
                    e.links.first().map(|l| l.href.clone()).unwrap_or_default(),
                )
            })
            .collect()
    };
    let atom = summary(&parsed.iter().find(|(e, _)| *e == "atom").unwrap().1);
    assert_eq!(atom.len(), 27);
    assert!(atom[0].0.starts_with("urn:uuid:"));
    for (ext, feed) in &parsed {
        assert_eq!(summary(feed), atom, "{ext} entries differ from Atom's");
    }

    // Dates in the site's offset in both new formats.
    let rss = String::from_utf8(bodies["rss"].to_vec()).unwrap();
    assert!(rss.contains("<pubDate>Tue, 12 May 2020 00:00:00 +0800</pubDate>"));
    assert!(rss.contains("<dc:creator>河南日报</dc:creator>"));
    let json: serde_json::Value = serde_json::from_slice(&bodies["json"]).unwrap();
    assert_eq!(
        json["items"][0]["date_published"],
        "2020-05-12T00:00:00+08:00"
    );
    assert_eq!(json["items"][0]["authors"][0]["name"], "河南日报");
    assert_eq!(json["feed_url"], format!("{base}/feeds/fix.json"));

    for bad in [
        "/feeds/fix.xml",
        "/feeds/fix",
        "/feeds/nope.rss",
        "/feeds/.json",
    ] {
        let r = client.get(format!("{base}{bad}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rss_follows_the_w3c_validator_and_json_feed_the_1_1_spec() {
    let tmp = TempDir::new("formats-valid");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();
    let rss_url = format!("{base}/feeds/fix.rss");
    let rss = client
        .get(&rss_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let problems = rss_problems(&rss, &rss_url);
    assert!(problems.is_empty(), "{problems:#?}");
    let json_url = format!("{base}/feeds/fix.json");
    let json: serde_json::Value = serde_json::from_slice(
        &client
            .get(&json_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let problems = json_feed_problems(&json);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(json["items"].as_array().unwrap().len(), 27);
}

/// The renderers on their own, with hostile text: still valid by the same rules.
#[test]
fn hostile_items_render_valid_rss_and_json_feed() {
    use chrono::TimeZone;
    use feedbridge::feed::{FeedMeta, Format};
    use feedbridge::model::Item;

    let meta = FeedMeta {
        site_id: "hostile".into(),
        title: "A & B <feed> ]]> \u{1}\u{202e}".into(),
        home: None,
        self_url: "http://127.0.0.1/feeds/hostile.rss".into(),
        language: Some("zh-CN".into()),
        timezone: chrono_tz::America::St_Johns,
    };
    let at = chrono::Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap();
    let items: Vec<_> = [
        Item {
            url: "http://a/1?x=1&y=2".into(),
            title: Some("Tom & Jerry <script>alert(1)</script> ]]> \u{f}\u{0}".into()),
            content: Some("<p>x ]]> &amp; <![CDATA[ y</p>\u{b}".into()),
            images: vec![
                "javascript:alert(1)".into(),
                "http://a/i.svg?a=1&b=\"2\"".into(),
                "https://a/j.png".into(),
            ],
            categories: vec!["<c>".into()],
            source: Some("\u{202e}evil".into()),
            published: Some(at.fixed_offset()),
            ..Item::default()
        },
        Item {
            url: "http://a/2".into(),
            title: Some("\u{200e} ".into()),
            ..Item::default()
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, item)| crate::fuzz::stored(&item, 1_600_000_000_000 + i as i64))
    .collect();
    let rss = String::from_utf8(Format::Rss.render(&meta, &items, at)).unwrap();
    let problems = rss_problems(&rss, &meta.self_url);
    assert!(problems.is_empty(), "{problems:#?}\n{rss}");
    // Newfoundland is -03:30 in January: the offset is the site's, minutes and all.
    assert!(rss.contains("-0330</pubDate>"), "{rss}");
    let json: serde_json::Value =
        serde_json::from_slice(&Format::Json.render(&meta, &items, at)).unwrap();
    let problems = json_feed_problems(&json);
    assert!(problems.is_empty(), "{problems:#?}\n{json:#}");
    assert_eq!(json["items"][0]["image"], "http://a/i.svg?a=1&b=\"2\"");
    assert_eq!(json["items"][0]["authors"][0]["name"], "evil");
    // The renderers agree with Atom on ids, titles, links.
    let atom = feed_rs::parser::parse(&Format::Atom.render(&meta, &items, at)[..]).unwrap();
    for bytes in [rss.as_bytes().to_vec(), serde_json::to_vec(&json).unwrap()] {
        let other = feed_rs::parser::parse(&bytes[..]).unwrap();
        let key = |f: &feed_rs::model::Feed| {
            f.entries
                .iter()
                .map(|e| (e.id.clone(), e.title.clone().map(|t| t.content)))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&other), key(&atom));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn autodiscovery_and_opml_name_every_format() {
    let tmp = TempDir::new("formats-discovery");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();
    let get = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap() }
    };
    for page in [format!("{base}/"), format!("{base}/sites/fix")] {
        let html = get(page.clone()).await.text().await.unwrap();
        for (ext, content_type) in FORMATS {
            let media = content_type.split(';').next().unwrap();
            assert!(
                html.contains(&format!(
                    r#"<link rel="alternate" type="{media}" title="河南省直机关 · 工作动态（示例站点）" href="{base}/feeds/fix.{ext}">"#
                )),
                "{page} lacks {ext}"
            );
        }
    }
    for (query, ext) in [
        ("", "atom"),
        ("?format=atom", "atom"),
        ("?format=rss", "rss"),
        ("?format=json", "json"),
    ] {
        let opml = get(format!("{base}/opml{query}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            opml.contains(&format!(r#"xmlUrl="{base}/feeds/fix.{ext}""#)),
            "{query}: {opml}"
        );
    }
    let r = get(format!("{base}/opml?format=%E2%80%AEx")).await;
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains('\u{202e}'));
}

#[tokio::test(flavor = "multi_thread")]
async fn real_feed_readers_read_every_format_alike() {
    if !real_readers_or_skip("real_feed_readers_read_every_format_alike") {
        return;
    }
    let tmp = TempDir::new("formats-readers");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;

    // feedparser: no bozo, 27 entries, and the same (id, title, link) lists across formats
    // (feedparser 6.0 reads no JSON Feed: newsboat and feed-rs cover that one).
    let script = format!(
        r#"
import feedparser
seen = {{}}
for ext in ("atom", "rss"):
    d = feedparser.parse("{base}/feeds/fix." + ext)
    assert not d.bozo, (ext, d.bozo_exception)
    assert d.version in ("atom10", "rss20"), (ext, d.version)
    assert len(d.entries) == 27, (ext, len(d.entries))
    for e in d.entries:
        assert e.title and e.link and e.id, (ext, e)
        assert e.author, (ext, e)
    first = d.entries[0]
    assert first.author == "河南日报", (ext, first.author)
    assert first.published_parsed[:3] == (2020, 5, 11), (ext, first.published)
    assert "/utf8/gzdt/202005/W020200512083114.png" in first.content[0].value, (ext, first.get("content"))
    seen[ext] = [(e.id, e.title, e.link) for e in d.entries]
assert seen["atom"] == seen["rss"], seen
print("feedparser ok")
"#
    );
    python_ok("feedparser", script).await;

    // newsboat: each format on its own, reloaded non-interactively, 27 unread.
    for ext in NEWSBOAT_FORMATS {
        let said = newsboat_unread(
            tmp.join(&format!("newsboat-{ext}")),
            &format!("{base}/feeds/fix.{ext}"),
        )
        .await;
        assert!(
            said.trim().starts_with("27 unread articles"),
            "newsboat {ext} said: {said}"
        );
    }
}

/// The formats newsboat is driven with: 2.21 (the packaged one) reads no JSON Feed (its
/// json-c is for sync services), which stays with feed-rs and the spec test.
const NEWSBOAT_FORMATS: [&str; 2] = ["atom", "rss"];

/// One XML element: what the RSS rules look at.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// The document as a tree (quick-xml, checking end names); `Err` when it is not XML.
fn parse_xml(xml: &str) -> Result<Node, String> {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let decoder = reader.decoder();
    let open = |e: &BytesStart<'_>| -> Result<Node, String> {
        let mut node = Node {
            name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            ..Node::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            let v = a
                .decoded_and_normalized_value(quick_xml::XmlVersion::Explicit1_0, decoder)
                .map_err(|e| e.to_string())?;
            node.attrs.insert(
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                v.into_owned(),
            );
        }
        Ok(node)
    };
    let mut stack = vec![Node::default()];
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => stack.push(open(&e)?),
            Event::Empty(e) => {
                let node = open(&e)?;
                stack.last_mut().ok_or("no parent")?.children.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced")?;
                stack.last_mut().ok_or("unbalanced")?.children.push(node);
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                stack.last_mut().ok_or("no parent")?.text.push_str(&text);
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                stack.last_mut().ok_or("no parent")?.text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                let reference = format!("&{name};");
                let text = quick_xml::escape::unescape(&reference).map_err(|e| e.to_string())?;
                stack.last_mut().ok_or("no parent")?.text.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack.pop().ok_or("unbalanced")?;
    if !stack.is_empty() || doc.children.len() != 1 {
        return Err("not exactly one root element".into());
    }
    Ok(doc.children.remove(0))
}

/// RFC 822 as the W3C validator takes it (RFC 2822's form, 4-digit year, a numeric
/// offset or GMT): `Tue, 12 May 2020 00:00:00 +0800`.
fn is_rfc822(s: &str) -> bool {
    let re = regex::Regex::new(
        r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} ([+-]\d{4}|GMT)$",
    )
    .unwrap();
    re.is_match(s) && chrono::DateTime::parse_from_rfc2822(s).is_ok()
}

fn is_absolute_http(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The W3C feed validator's RSS 2.0 rules that apply to what we write: the errors it
/// reports and the warnings it gives for our elements. Returns each broken rule.
fn rss_problems(xml: &str, self_url: &str) -> Vec<String> {
    let mut p = Vec::new();
    let root = match parse_xml(xml) {
        Ok(r) => r,
        Err(e) => return vec![format!("not well-formed XML: {e}")],
    };
    if !xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#) {
        p.push("no XML declaration naming UTF-8".into());
    }
    if root.name != "rss" || root.attrs.get("version").map(String::as_str) != Some("2.0") {
        p.push(format!(
            "root is {} {:?}, not rss version 2.0",
            root.name, root.attrs
        ));
    }
    // Every prefix used is declared, with the namespace the validator knows it by.
    let known = [
        ("atom", "http://www.w3.org/2005/Atom"),
        ("content", "http://purl.org/rss/1.0/modules/content/"),
        ("dc", "http://purl.org/dc/elements/1.1/"),
    ];
    let mut used = std::collections::BTreeSet::new();
    fn prefixes(n: &Node, used: &mut std::collections::BTreeSet<String>) {
        if let Some((prefix, _)) = n.name.split_once(':') {
            used.insert(prefix.to_owned());
        }
        for c in &n.children {
            prefixes(c, used);
        }
    }
    prefixes(&root, &mut used);
    for prefix in &used {
        match known.iter().find(|(k, _)| k == prefix) {
            Some((_, ns))
                if root.attrs.get(&format!("xmlns:{prefix}")) == Some(&ns.to_string()) => {}
            _ => p.push(format!(
                "prefix {prefix} used but not declared as the validator expects"
            )),
        }
    }
    let channels: Vec<_> = root.all("channel").collect();
    if channels.len() != 1 || root.children.len() != 1 {
        p.push("rss must hold exactly one channel".into());
        return p;
    }
    let channel = channels[0];
    const CHANNEL: &[&str] = &[
        "title",
        "link",
        "description",
        "language",
        "copyright",
        "managingEditor",
        "webMaster",
        "pubDate",
        "lastBuildDate",
        "category",
        "generator",
        "docs",
        "cloud",
        "ttl",
        "image",
        "rating",
        "textInput",
        "skipHours",
        "skipDays",
        "item",
        "atom:link",
    ];
    for c in &channel.children {
        if !CHANNEL.contains(&c.name.as_str()) {
            p.push(format!("undefined channel element {}", c.name));
        }
    }
    for required in ["title", "link", "description"] {
        let n: Vec<_> = channel.all(required).collect();
        if n.len() != 1 || n[0].text.trim().is_empty() {
            p.push(format!("channel needs exactly one non-empty {required}"));
        }
    }
    for once in ["language", "lastBuildDate", "generator", "pubDate", "ttl"] {
        if channel.all(once).count() > 1 {
            p.push(format!("channel has {once} more than once"));
        }
    }
    if let Some(link) = channel.all("link").next() {
        if !is_absolute_http(&link.text) {
            p.push(format!(
                "channel link {:?} is not an absolute URL",
                link.text
            ));
        }
    }
    for d in channel.all("lastBuildDate").chain(channel.all("pubDate")) {
        if !is_rfc822(&d.text) {
            p.push(format!("channel {} {:?} is not RFC 822", d.name, d.text));
        }
    }
    if let Some(lang) = channel.all("language").next() {
        let ok = lang.text.split('-').enumerate().all(|(i, part)| {
            !part.is_empty()
                && part.len() <= 8
                && part.chars().all(|c| c.is_ascii_alphanumeric())
                && (i > 0 || part.chars().all(|c| c.is_ascii_alphabetic()))
        });
        if !ok {
            p.push(format!("language {:?} is not a language tag", lang.text));
        }
    }
    // The validator's MissingAtomSelfLink warning, and the link's own rules.
    let selfs: Vec<_> = channel
        .all("atom:link")
        .filter(|l| l.attrs.get("rel").map(String::as_str) == Some("self"))
        .collect();
    match selfs[..] {
        [link] => {
            if link.attrs.get("href").map(String::as_str) != Some(self_url) {
                p.push(format!(
                    "self link {:?} is not {self_url}",
                    link.attrs.get("href")
                ));
            }
            if link.attrs.get("type").map(String::as_str) != Some("application/rss+xml") {
                p.push("self link type is not application/rss+xml".into());
            }
        }
        _ => p.push("channel needs one atom:link rel=self".into()),
    }
    const ITEM: &[&str] = &[
        "title",
        "link",
        "description",
        "author",
        "category",
        "comments",
        "enclosure",
        "guid",
        "pubDate",
        "source",
        "dc:creator",
        "content:encoded",
    ];
    let mut guids = std::collections::HashSet::new();
    for (i, item) in channel.all("item").enumerate() {
        for c in &item.children {
            if !ITEM.contains(&c.name.as_str()) {
                p.push(format!("item {i}: undefined element {}", c.name));
            }
            if c.name != "category" && item.all(&c.name).count() > 1 {
                p.push(format!("item {i}: {} more than once", c.name));
            }
        }
        if item.all("title").next().is_none() && item.all("description").next().is_none() {
            p.push(format!("item {i}: needs a title or a description"));
        }
        if item.all("title").any(|t| t.text.trim().is_empty()) {
            p.push(format!("item {i}: empty title"));
        }
        for link in item.all("link") {
            if !is_absolute_http(&link.text) {
                p.push(format!("item {i}: link {:?} is not absolute", link.text));
            }
        }
        match item.all("guid").next() {
            Some(g) => {
                if g.attrs.get("isPermaLink").map(String::as_str) != Some("false") {
                    p.push(format!("item {i}: guid is not isPermaLink=\"false\""));
                }
                if !g.text.starts_with("urn:uuid:") || !guids.insert(g.text.clone()) {
                    p.push(format!("item {i}: guid {:?} not a unique urn", g.text));
                }
            }
            None => p.push(format!("item {i}: no guid")),
        }
        match item.all("pubDate").next() {
            Some(d) if is_rfc822(&d.text) => {}
            d => p.push(format!(
                "item {i}: pubDate {:?} is not RFC 822",
                d.map(|d| &d.text)
            )),
        }
        for e in item.all("enclosure") {
            let url_ok = e.attrs.get("url").is_some_and(|u| is_absolute_http(u));
            let length_ok = e
                .attrs
                .get("length")
                .is_some_and(|l| l.parse::<u64>().is_ok());
            let type_ok = e.attrs.get("type").is_some_and(|t| {
                t.split_once('/')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            });
            if !(url_ok && length_ok && type_ok) || e.attrs.len() != 3 {
                p.push(format!(
                    "item {i}: enclosure {:?} lacks url/length/type",
                    e.attrs
                ));
            }
        }
        for n in item.all("dc:creator").chain(item.all("category")) {
            if n.text.trim().is_empty() {
                p.push(format!("item {i}: empty {}", n.name));
            }
        }
        for n in item.children.iter().filter(|c| !c.children.is_empty()) {
            p.push(format!("item {i}: {} holds markup, not text", n.name));
        }
    }
    p
}

/// JSON Feed 1.1's rules: the top-level and item fields it requires, the types it gives,
/// and the dates it asks for (RFC 3339). Returns each broken rule.
fn json_feed_problems(v: &serde_json::Value) -> Vec<String> {
    let mut p = Vec::new();
    if v["version"] != "https://jsonfeed.org/version/1.1" {
        p.push(format!("version is {}", v["version"]));
    }
    if !v["title"].is_string() {
        p.push("title is required and a string".into());
    }
    for url in ["home_page_url", "feed_url"] {
        match &v[url] {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if is_absolute_http(s) => {}
            other => p.push(format!("{url} {other} is not an absolute URL")),
        }
    }
    if v.get("author").is_some() {
        p.push("`author` is 1.0's; 1.1 has `authors`".into());
    }
    let authors_ok = |a: &serde_json::Value| {
        a.is_null()
            || a.as_array().is_some_and(|list| {
                list.iter()
                    .all(|x| x.is_object() && (x["name"].is_string() || x["url"].is_string()))
            })
    };
    if !authors_ok(&v["authors"]) {
        p.push("feed authors are not objects with a name".into());
    }
    let Some(items) = v["items"].as_array() else {
        p.push("items is required and an array".into());
        return p;
    };
    let mut ids = std::collections::HashSet::new();
    for (i, it) in items.iter().enumerate() {
        match it["id"].as_str() {
            Some(id) if !id.is_empty() && ids.insert(id.to_owned()) => {}
            _ => p.push(format!("item {i}: id missing, empty or repeated")),
        }
        if !it["content_html"].is_string() && !it["content_text"].is_string() {
            p.push(format!("item {i}: neither content_html nor content_text"));
        }
        for s in ["title", "summary", "image", "url"] {
            if !(it[s].is_null() || it[s].is_string()) {
                p.push(format!("item {i}: {s} is not a string"));
            }
        }
        for url in ["url", "image"] {
            if let Some(u) = it[url].as_str() {
                if !is_absolute_http(u) {
                    p.push(format!("item {i}: {url} {u:?} is not absolute"));
                }
            }
        }
        for date in ["date_published", "date_modified"] {
            match &it[date] {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                }
                other => p.push(format!("item {i}: {date} {other} is not RFC 3339")),
            }
        }
        if !authors_ok(&it["authors"]) {
            p.push(format!("item {i}: authors are not objects with a name"));
        }
        if let Some(tags) = it.get("tags") {
            if !tags
                .as_array()
                .is_some_and(|t| t.iter().all(|x| x.is_string()))
            {
                p.push(format!("item {i}: tags are not strings"));
            }
        }
        if let Some(att) = it.get("attachments") {
            let ok = att.as_array().is_some_and(|a| {
                a.iter().all(|x| {
                    x["url"].as_str().is_some_and(is_absolute_http) && x["mime_type"].is_string()
                })
            });
            if !ok {
                p.push(format!("item {i}: attachments need url and mime_type"));
            }
        }
    }
    p
}

/// A WebSub hub on 127.0.0.1 that records each publish's `hub.url`.
async fn recording_hub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hub",
        axum::routing::post(move |body: String| {
            let record = record.clone();
            async move {
                let pairs: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                assert_eq!(pairs.get("hub.mode").map(String::as_str), Some("publish"));
                if let Some(topic) = pairs.get("hub.url") {
                    record.lock().unwrap().push(topic.clone());
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hub"), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn websub_hub_is_named_and_told_once_per_changed_feed_per_run() {
    let (hub, seen) = recording_hub().await;
    let tmp = TempDir::new("formats-websub");
    let site = fixture_site_copy(&tmp);
    let fixture = FixtureServer::start(&site, 0).await.unwrap();
    let public = "http://feeds.example.test";
    let (base, _p) = serve_fixture(
        &tmp,
        &fixture,
        "*/2 * * * * *",
        &["--hub", &hub, "--base-url", public],
    )
    .await;
    let topics: Vec<String> = ["atom", "rss", "json"]
        .iter()
        .map(|ext| format!("{public}/feeds/fix.{ext}"))
        .collect();
    let count = |topic: &str| seen.lock().unwrap().iter().filter(|t| *t == topic).count();

    // Every format names the hub and itself.
    let atom = crate::support::get_text(format!("{base}/feeds/fix.atom")).await;
    assert!(
        atom.contains(&format!(r#"<link href="{hub}" rel="hub"/>"#)),
        "{}",
        &atom[..800]
    );
    let rss = crate::support::get_text(format!("{base}/feeds/fix.rss")).await;
    assert!(rss.contains(&format!(r#"<atom:link href="{hub}" rel="hub"/>"#)));
    assert!(rss.contains(&format!(r#"<atom:link href="{}" rel="self""#, topics[1])));
    let json: serde_json::Value =
        serde_json::from_str(&crate::support::get_text(format!("{base}/feeds/fix.json")).await)
            .unwrap();
    assert_eq!(json["hubs"][0]["type"], "WebSub");
    assert_eq!(json["hubs"][0]["url"], hub.as_str());
    assert!(json_feed_problems(&json).is_empty());
    assert!(rss_problems(&rss, &topics[1]).is_empty());

    // The first run stored 27 items: one publish per feed.
    let told = crate::support::eventually(std::time::Duration::from_secs(30), || async {
        topics.iter().all(|t| count(t) >= 1).then_some(())
    })
    .await;
    assert!(told.is_some(), "hub saw {:?}", seen.lock().unwrap());

    // Runs that change nothing tell the hub nothing; the run that stores a new article
    // tells it once more per feed.
    let status = crate::support::status_json(&base).await.unwrap();
    let first_finished = status["sites"][0]["last_run"]["finished"].clone();
    let quiet_run = crate::support::eventually(std::time::Duration::from_secs(30), || async {
        let s = crate::support::status_json(&base).await?;
        (s["sites"][0]["last_run"]["finished"] != first_finished).then_some(())
    })
    .await;
    assert!(quiet_run.is_some());
    crate::support::add_article(&site, 9999, "省直机关召开新闻发布会", "2020-05-13 10:00");
    let told_again = crate::support::eventually(std::time::Duration::from_secs(60), || async {
        topics.iter().all(|t| count(t) >= 2).then_some(())
    })
    .await;
    assert!(told_again.is_some(), "hub saw {:?}", seen.lock().unwrap());
    let status = crate::support::status_json(&base).await.unwrap();
    assert!(status["sites"][0]["hub_warning"].is_null(), "{status}");
    assert_eq!(status["sites"][0]["hub"], hub.as_str());
    let seen_now = seen.lock().unwrap().clone();
    for t in &topics {
        assert_eq!(
            seen_now.iter().filter(|s| *s == t).count(),
            2,
            "{t}: {seen_now:?}"
        );
    }
    assert_eq!(seen_now.len(), 6, "{seen_now:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn websub_without_a_public_base_warns_in_the_status() {
    let (hub, seen) = recording_hub().await;
    let tmp = TempDir::new("formats-websub-nobase");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &["--hub", &hub]).await;
    let status = crate::support::status_json(&base).await.unwrap();
    let warning = status["sites"][0]["hub_warning"].as_str().unwrap_or("");
    assert!(warning.contains("--base-url"), "{status}");
    let atom = crate::support::get_text(format!("{base}/feeds/fix.atom")).await;
    assert!(atom.contains(&format!(r#"<link href="{hub}" rel="hub"/>"#)));
    assert!(seen.lock().unwrap().is_empty());
}
