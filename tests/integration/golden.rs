//! Golden tests: every selector file against its saved pages, and every broken selector
//! file against the message it must give.
//!
//! `fixtures/<site-id>/list-*.html` and `article-*.html` start with the IE "saved from"
//! comment naming their URL. Run with `UPDATE_GOLDEN=1` to rewrite the `.expected.json`
//! files after a deliberate change, then review the diff.

use chrono::{TimeZone, Utc};
use feedbridge::cli::preview_json;
use feedbridge::extract::{extract_article, extract_list, item_from_entry};
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
    if name.starts_with("feed-") {
        let entries = feedbridge::upstream::entries(page, site, now).expect("upstream feed parses");
        let items: Vec<_> = entries
            .iter()
            .map(|e| json(&item_from_entry(e, site)))
            .collect();
        serde_json::json!({ "items": items })
    } else if name.starts_with("list-") {
        let Source::List { rules, .. } = &site.source else {
            panic!("{name}: a list page for a feed site")
        };
        let list = extract_list(page, site, rules, now);
        let items: Vec<_> = list
            .entries
            .iter()
            .map(|e| json(&item_from_entry(e, site)))
            .collect();
        serde_json::json!({ "matched": list.matched, "next": list.next.map(|u| u.to_string()), "items": items })
    } else {
        let rules = site.article.as_ref().expect("article rules");
        let entry = ListEntry {
            url: Some(canonical_url(&page.url)),
            ..ListEntry::default()
        };
        json(&extract_article(page, site, rules, &entry, now))
    }
}

#[test]
fn every_selector_file_matches_its_golden_pages() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    for file in site::selector_files(&root().join("selectors")).unwrap() {
        let site = site::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let dir = root().join("fixtures").join(&site.id);
        let mut pages: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| {
                panic!(
                    "selectors/{}.toml has no fixtures/{}/ directory",
                    site.id, site.id
                )
            })
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "html" || e == "xml"))
            .collect();
        pages.sort();
        assert!(!pages.is_empty(), "fixtures/{} has no saved pages", site.id);
        for page_path in pages {
            let name = page_path.file_stem().unwrap().to_str().unwrap().to_owned();
            let body = std::fs::read(&page_path).unwrap();
            let page = Page {
                url: saved_from(&body),
                body: body.into(),
                content_type: None,
            };
            let got = golden_value(&site, &name, &page);
            let expected_path = page_path.with_extension("expected.json");
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
                page_path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} golden pages");
}

#[test]
fn gbk_page_extracts_like_its_utf8_twin() {
    let dir = root().join("fixtures/fixture-gzdt");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let utf8 = read("article-seed.expected.json");
    let gbk = read("article-seed-gbk.expected.json").replace("/gbk/", "/utf8/");
    assert_eq!(utf8, gbk);
}

#[test]
fn every_broken_selector_file_gives_its_message() {
    let dir = root().join("fixtures/invalid");
    let files = site::selector_files(&dir).unwrap();
    assert!(files.len() >= 12, "only {} broken files", files.len());
    for f in &files {
        let expect = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# expect: ")
            .to_owned();
        let out = run(&["check", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", f.display());
        let stderr = text(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        let wanted = format!("{}:{expect}", f.display());
        assert!(
            first.starts_with(wanted.trim_end()),
            "{}:\n  want {wanted}\n  got  {first}",
            f.display()
        );
    }
    // All at once: one line per problem, exit 2.
    let mut args = vec!["check"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr)
            .lines()
            .filter(|l| l.contains(".toml:"))
            .count(),
        files.len()
    );
}

#[test]
fn bundled_selector_files_check_clean() {
    let out = run(&[
        "check",
        "--selectors",
        root().join("selectors").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok "));
}
