use chrono::TimeZone;

use super::*;
use crate::model::Page;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap()
}

fn run_on(html: &str, url: &str, tz: Option<Tz>) -> AutoArticle {
    let page = Page {
        url: Url::parse(url).unwrap(),
        body: html.as_bytes().to_vec().into(),
        content_type: None,
    };
    let (doc, _) = Document::parse_reporting(&page, None);
    extract(
        &doc,
        Hints {
            url: &page.url,
            timezone: tz,
            now: now(),
        },
    )
}

const SEED: &str = include_str!("../../../fixtures/site/utf8/gzdt/202005/t20200512_1874321.html");
const SEED_URL: &str = "http://127.0.0.1:8181/utf8/gzdt/202005/t20200512_1874321.html";

#[test]
fn seed_page_gives_every_field() {
    let a = run_on(SEED, SEED_URL, None);
    assert_eq!(
        a.title.as_deref(),
        Some("5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动")
    );
    assert_eq!(a.via["title"], "h1");
    let d = a.published.unwrap();
    assert_eq!(d.at.to_rfc3339(), "2020-05-12T00:00:00+08:00");
    assert!(d.date_only);
    assert_eq!(a.source.as_deref(), Some("河南日报"));
    assert_eq!(a.via["source"], "meta:contentsource");
    let content = a.content.unwrap();
    assert!(content.contains("春潮涌动 争创模范机关"), "{content}");
    for junk in [
        "打印本页",
        "相关链接",
        "分享到",
        "时间:2020",
        "隐藏的推广",
        "广告",
    ] {
        assert!(!content.contains(junk), "{junk} in {content}");
        assert!(!a.text.contains(junk), "{junk} in {}", a.text);
    }
    assert!(a.text.starts_with("“把营造"), "{}", a.text);
    assert_eq!(
        a.images,
        [
            "http://127.0.0.1:8181/utf8/gzdt/202005/W020200512083114.png",
            "http://127.0.0.1:8181/uploads/2020/05/lazy_0.jpg",
            "http://img.hnsjgdw.example.cn/photo/2020/05/cdn_0.jpg"
        ]
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

const ENGLISH: &str = r#"<!doctype html><html lang="en"><head>
<title>Rates held steady as inflation cools - Example News</title>
<meta property="og:title" content="Rates held steady as inflation cools">
<meta property="og:image" content="/img/og.jpg">
<script type="application/ld+json">{"@type":"NewsArticle","headline":"Rates held steady as inflation cools",
"datePublished":"2024-03-05T14:30:00-05:00","author":{"@type":"Person","name":"Jane Doe"},"publisher":{"name":"Example News"}}</script>
</head><body>
<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/business">Business</a></nav>
<article><h1>Rates held steady as inflation cools</h1>
<p class="byline">By Jane Doe</p>
<p>The central bank held its key rate steady on Tuesday, saying that inflation had cooled, but not enough.</p>
<figure><img src="/img/chart.png" srcset="/img/chart-400.png 400w, /img/chart-1200.png 1200w" alt="Chart"><figcaption>Prices, monthly.</figcaption></figure>
<p>Officials said they would watch the data closely, and that further moves were possible later this year.</p>
<img src="https://pixel.example.com/t.gif" width="1" height="1">
<div class="share-tools"><a href="/s/fb">Facebook</a> <a href="/s/tw">Twitter</a></div>
<p>Markets rose after the decision, with bond yields falling slightly, as traders priced in cuts.</p>
</article>
<aside class="related"><h2>Related</h2><ul><li><a href="/a">Other story one</a></li><li><a href="/b">Other story two</a></li></ul></aside>
<footer>Copyright 2024</footer></body></html>"#;

#[test]
fn english_page_with_json_ld() {
    let a = run_on(ENGLISH, "https://news.example.com/2024/03/05/rates", None);
    assert_eq!(
        a.title.as_deref(),
        Some("Rates held steady as inflation cools")
    );
    assert_eq!(
        a.published.unwrap().at.to_rfc3339(),
        "2024-03-05T14:30:00-05:00"
    );
    assert_eq!(a.via["published"], "json-ld");
    assert_eq!(a.author.as_deref(), Some("Jane Doe"));
    assert_eq!(a.source.as_deref(), Some("Example News"));
    assert_eq!(a.images, ["https://news.example.com/img/chart-1200.png"]);
    assert!(a.text.starts_with("The central bank"), "{}", a.text);
    assert!(a.text.contains("Prices, monthly."));
    assert!(a.text.ends_with("priced in cuts."), "{}", a.text);
    for junk in ["Facebook", "Other story", "Copyright", "Home"] {
        assert!(!a.text.contains(junk), "{junk}: {}", a.text);
    }
}

#[test]
fn naive_dates_follow_the_zone_and_warn_without_one() {
    let page = "<html><body><h1>Une histoire</h1><p>Publié le 2024-03-05 10:00</p>
        <div><p>Un long paragraphe de texte, avec des virgules, et des phrases. Encore une phrase ici.</p></div></body></html>";
    let a = run_on(page, "https://example.org/x", None);
    assert_eq!(
        a.published.unwrap().at.to_rfc3339(),
        "2024-03-05T10:00:00+00:00"
    );
    assert!(
        a.warnings.iter().any(|w| w.contains("UTC")),
        "{:?}",
        a.warnings
    );
    let a = run_on(page, "https://example.fr/x", None);
    assert_eq!(
        a.published.unwrap().at.to_rfc3339(),
        "2024-03-05T10:00:00+01:00"
    );
    let a = run_on(page, "https://example.org/x", Some(chrono_tz::Asia::Tokyo));
    assert_eq!(
        a.published.unwrap().at.to_rfc3339(),
        "2024-03-05T10:00:00+09:00"
    );
}

#[test]
fn day_only_meta_takes_the_time_from_the_info_line() {
    let page = r#"<html><head><meta name="PubDate" content="2020-05-12"></head><body>
        <h1>标题</h1><div class="info">发布时间：2020-05-12 08:30 来源：新华社 作者：张三</div>
        <div id="zoom"><p>正文第一段，内容很长很长，有逗号。还有句号。再来一句话，足够长了。</p></div></body></html>"#;
    let a = run_on(
        page,
        "http://www.example.gov.cn/a/202005/t20200512_1.html",
        None,
    );
    assert_eq!(
        a.published.unwrap().at.to_rfc3339(),
        "2020-05-12T08:30:00+08:00"
    );
    assert_eq!(a.via["published"], "meta:pubdate+text:时间");
    assert_eq!(a.source.as_deref(), Some("新华社"));
    assert_eq!(a.author.as_deref(), Some("张三"));
    assert!(a.text.starts_with("正文第一段"), "{}", a.text);
}

#[test]
fn hostile_nesting_and_empty_pages_do_not_panic() {
    let deep = "<div>".repeat(3_000) + "深" + &"</div>".repeat(3_000);
    let _ = run_on(&deep, "http://x.cn/", None);
    let a = run_on("", "http://x.cn/", None);
    assert!(a.content.is_none());
    assert!(!a.warnings.is_empty());
}
