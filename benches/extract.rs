//! Extraction of one seed article page (UTF-8 and GBK) beside a bare html5ever parse of
//! the same page, the floor no extractor can beat. `cargo bench --bench extract`.

use std::path::Path;

use chrono::{TimeZone, Utc};
use divan::{black_box, Bencher};
use feedbridge::extract::{extract_article, extract_list};
use feedbridge::model::{ListEntry, Page};
use feedbridge::site::{self, Source};
use url::Url;

fn main() {
    divan::main();
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn page(copy: &str, rel: &str) -> Page {
    let body =
        std::fs::read(root().join("fixtures/site").join(copy).join(rel)).expect("fixture page");
    let url = Url::parse(&format!("http://127.0.0.1:8181/{copy}/{rel}")).expect("url");
    let content_type = (copy == "gbk").then(|| "text/html; charset=gbk".to_owned());
    Page {
        url,
        body: body.into(),
        content_type,
    }
}

const ARTICLE: &str = "gzdt/202005/t20200512_1874321.html";

#[divan::bench(args = ["utf8", "gbk"])]
fn article(bencher: Bencher, copy: &str) {
    let site = site::load(&root().join("selectors/fixture-gzdt.toml")).expect("selector");
    let rules = site.article.clone().expect("article rules");
    let page = page(copy, ARTICLE);
    let entry = ListEntry::default();
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(page.body.len()))
        .bench(|| {
            black_box(extract_article(
                black_box(&page),
                &site,
                &rules,
                &entry,
                now,
            ))
        });
}

#[divan::bench]
fn list_page(bencher: Bencher) {
    let site = site::load(&root().join("selectors/fixture-gzdt.toml")).expect("selector");
    let Source::List { rules, .. } = &site.source else {
        panic!("list site")
    };
    let page = page("utf8", "gzdt/index.html");
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    bencher.bench(|| black_box(extract_list(black_box(&page), &site, rules, now)));
}

/// The floor: html5ever building the tree of the same UTF-8 page, nothing else.
#[divan::bench]
fn bare_html5ever_parse(bencher: Bencher) {
    let page = page("utf8", ARTICLE);
    let text = std::str::from_utf8(&page.body).expect("utf-8");
    bencher
        .counter(divan::counter::BytesCount::new(page.body.len()))
        .bench(|| black_box(scraper::Html::parse_document(black_box(text))));
}

/// Development pages for the automatic extractor (issue 15): a Chinese portal page, a
/// government CMS page and an English news page, each gzip-compressed in fixtures/auto.
const AUTO_PAGES: &[&str] = &[
    "zh/163_1.html.gz",
    "zh/zyyfy_1.html.gz",
    "multi/04a6711caa7c687592777718866e781e976e0fe684faebe8b3cedcef8cd0ea34.html.gz",
];

fn auto_page(rel: &str) -> Page {
    use std::io::Read;
    let file = std::fs::File::open(root().join("fixtures/auto").join(rel)).expect("dev page");
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut body)
        .expect("gzip");
    Page {
        url: Url::parse("https://news.example.com/2019/11/19/page.html").expect("url"),
        body: body.into(),
        content_type: None,
    }
}

/// Decode + parse + automatic extraction of every field, no selectors.
#[divan::bench(args = AUTO_PAGES)]
fn auto_extract(bencher: Bencher, rel: &str) {
    use feedbridge::extract::{auto, Document};
    let page = auto_page(rel);
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(page.body.len()))
        .bench(|| {
            let (doc, _) = Document::parse_reporting(black_box(&page), None);
            black_box(auto::extract(
                &doc,
                auto::Hints {
                    url: &page.url,
                    timezone: None,
                    now,
                },
            ))
        });
}

/// The floor for `auto_extract`: html5ever building the tree of the same decoded page.
#[divan::bench(args = AUTO_PAGES)]
fn auto_bare_parse(bencher: Bencher, rel: &str) {
    let page = auto_page(rel);
    let text = String::from_utf8_lossy(&page.body).into_owned();
    bencher
        .counter(divan::counter::BytesCount::new(page.body.len()))
        .bench(|| black_box(scraper::Html::parse_document(black_box(&text))));
}
