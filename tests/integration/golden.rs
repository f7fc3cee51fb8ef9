//! Golden tests: every bundled selector file against its saved pages (broken selector
//! files and their messages are in `check.rs`).
//!
//! A selector file is *bundled* when `fixtures/<site-id>/` exists: then its golden pages
//! must match. Any other file in `selectors/` is an operator's own site; it is only
//! compiled (what `feedbridge check` does), so adding a site never needs fixtures.
//!
//! `fixtures/<site-id>/list-*.html` and `article-*.html` start with the IE "saved from"
//! comment naming their URL. Run with `UPDATE_GOLDEN=1` to rewrite the `.expected.json`
//! files after a deliberate change, then review the diff.

use chrono::{TimeZone, Utc};
use feedbridge::cli::preview_json;
use feedbridge::extract::{extract_article, item_from_entry, listing};
use feedbridge::model::{canonical_url, ListEntry, Page};
use feedbridge::site::{self, Source};
use url::Url;

use crate::support::{root, run, text};

fn saved_from(html: &[u8]) -> Url {
    let head = String::from_utf8_lossy(&html[..html.len().min(300)]);
    let start =
        head.find("saved from url=(").expect("saved-from comment") + "saved from url=(0000)".len();
    let end = head[start..].find(" -->").expect("comment end") + start;
    Url::parse(&head[start..end]).expect("saved-from URL")
}

fn golden_value(site: &site::Site, name: &str, page: &Page) -> serde_json::Value {
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
    let json = |item: &feedbridge::model::Item| {
        serde_json::from_str::<serde_json::Value>(&preview_json(item)).unwrap()
    };
    // The same entry point the crawler and `preview` read pages with.
    if name.starts_with("feed-") || name.starts_with("list-") {
        let listing = listing(page, site, now).expect("the page reads");
        let items: Vec<_> = listing
            .entries
            .iter()
            .map(|e| json(&item_from_entry(e, site)))
            .collect();
        match &site.source {
            Source::Feed { .. } => serde_json::json!({ "items": items }),
            Source::List { .. } => serde_json::json!({
                "matched": listing.matched,
                "next": listing.next.map(|u| u.to_string()),
                "items": items
            }),
        }
    } else {
        let rules = site.article.as_ref().expect("article rules");
        let entry = ListEntry {
            url: Some(canonical_url(&page.url)),
            ..ListEntry::default()
        };
        json(&extract_article(page, site, rules, &entry, now))
    }
}

/// A site's golden pages: saved pages in its fixture directory (`list-*.html`,
/// `article-*.html`, `feed-*.xml`, each naming its URL in a "saved from" comment), and the
/// fixture-site pages its `pages.toml` points at (name, file, url), so those need no copy.
fn golden_pages(dir: &std::path::Path) -> Vec<(String, Page)> {
    #[derive(serde::Deserialize)]
    struct Listed {
        page: Vec<ListedPage>,
    }
    #[derive(serde::Deserialize)]
    struct ListedPage {
        name: String,
        file: String,
        url: String,
    }
    let mut pages = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|_| {
        panic!(
            "{} is missing: every selector file needs fixtures",
            dir.display()
        )
    });
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if ext == "html" || ext == "xml" {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let body = std::fs::read(&path).unwrap();
            let url = saved_from(&body);
            pages.push((
                name,
                Page {
                    url,
                    body: body.into(),
                    content_type: None,
                },
            ));
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("pages.toml")) {
        let listed: Listed = toml::from_str(&text).expect("pages.toml");
        for p in listed.page {
            let body =
                std::fs::read(dir.join(&p.file)).unwrap_or_else(|e| panic!("{}: {e}", p.file));
            let url = Url::parse(&p.url).expect("pages.toml url");
            pages.push((
                p.name,
                Page {
                    url,
                    body: body.into(),
                    content_type: None,
                },
            ));
        }
    }
    pages.sort_by(|a, b| a.0.cmp(&b.0));
    pages
}

/// Directories of `fixtures/` that are not a bundled site's golden pages.
/// Fixture folders that are not one site's golden pages: the fixture site itself, broken
/// selector files, upstream feeds, automatic-extraction pages, XSS vectors, suggest layouts.
const NOT_SITES: &[&str] = &[
    "site",
    "invalid",
    "upstream-linkless",
    "auto",
    "xss",
    "suggest",
];

#[test]
fn every_bundled_selector_file_matches_its_golden_pages() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    let mut bundled = Vec::new();
    for file in site::selector_files(&root().join("selectors")).unwrap() {
        // Every file must compile, bundled or not: the same rule as `check`.
        let site = site::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let dir = root().join("fixtures").join(&site.id);
        if !dir.is_dir() {
            continue;
        }
        bundled.push(site.id.clone());
        let pages = golden_pages(&dir);
        assert!(!pages.is_empty(), "fixtures/{} has no saved pages", site.id);
        for (name, page) in pages {
            let got = golden_value(&site, &name, &page);
            let expected_path = dir.join(format!("{name}.expected.json"));
            let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
            if update {
                std::fs::write(&expected_path, &pretty).unwrap();
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
                panic!(
                    "{} is missing; run with UPDATE_GOLDEN=1",
                    expected_path.display()
                )
            });
            assert_eq!(
                pretty,
                expected,
                "{} differs from its golden file",
                expected_path.display()
            );
            checked += 1;
        }
    }
    // A fixture directory without its selector file would silently test nothing.
    for entry in std::fs::read_dir(root().join("fixtures")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !NOT_SITES.contains(&name.as_str()) {
            assert!(
                bundled.contains(&name),
                "fixtures/{name}/ has no selectors/{name}.toml"
            );
        }
    }
    for id in ["fixture-gzdt", "fixture-rss", "gov-cn-yaowen"] {
        assert!(bundled.iter().any(|b| b == id), "{id} is not bundled");
    }
    assert!(checked >= 6, "only {checked} golden pages");
}

#[test]
fn an_operators_own_selector_file_needs_no_fixtures() {
    // The same rule as above, applied to a copy of `selectors/` plus the operator's file:
    // it has no `fixtures/<id>/`, so it is compiled (checked) and nothing more.
    let tmp = crate::support::TempDir::new("own-site");
    crate::support::copy_dir(&root().join("selectors"), &tmp.join("selectors"));
    let own = tmp.join("selectors/my-own-site.toml");
    std::fs::write(
        &own,
        crate::support::small_selector("http://127.0.0.1:9", "schedule = \"0 * * * *\""),
    )
    .unwrap();
    let mut own_sites = 0;
    for file in site::selector_files(&tmp.join("selectors")).unwrap() {
        let site = site::load(&file).unwrap_or_else(|e| panic!("{e}"));
        if !root().join("fixtures").join(&site.id).is_dir() {
            own_sites += 1;
        }
    }
    assert_eq!(own_sites, 1);
    let out = run(&[
        "check",
        "--selectors",
        tmp.join("selectors").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn page_buttons_stay_out_of_the_bundled_bodies() {
    let dir = root().join("fixtures/fixture-gzdt");
    for name in [
        "article-seed",
        "article-seed-gbk",
        "article-timed",
        "article-nodate",
    ] {
        let got = std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap();
        assert!(got.contains("</p>"), "{name} has a body");
        for button in ["打印本页", "返回列表"] {
            assert!(!got.contains(button), "{name} carries {button}");
        }
    }
}

#[test]
fn gbk_page_extracts_like_its_utf8_twin() {
    let dir = root().join("fixtures/fixture-gzdt");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let utf8 = read("article-seed.expected.json");
    let gbk = read("article-seed-gbk.expected.json").replace("/gbk/", "/utf8/");
    assert_eq!(utf8, gbk);
}
