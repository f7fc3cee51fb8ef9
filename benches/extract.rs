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
