//! `feedbridge suggest` on the corpus of fixtures/suggest/: each layout's list page is
//! served on 127.0.0.1, the suggested file is written, checked and previewed, and the
//! previewed items must equal the layout's truth.json.

use feedbridge::fixture_server::FixtureServer;
use serde_json::Value;

use crate::support::{root, run, text, TempDir};

const LAYOUTS: &[&str] = &[
    "trs",
    "table-gbk",
    "cards",
    "dl",
    "blog",
    "news-gbk",
    "trs-js",
    "ol-em",
    "aspnet",
    "date-in-link",
];

fn same_instant(a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => {
            let a = chrono::DateTime::parse_from_rfc3339(a);
            let b = chrono::DateTime::parse_from_rfc3339(b);
            matches!((a, b), (Ok(a), Ok(b)) if a == b)
        }
        _ => a.is_null() && b.is_null(),
    }
}

/// Fields right out of fields checked, with a line per miss.
fn score(origin: &str, truth: &Value, items: &[Value]) -> (usize, usize, Vec<String>) {
    let (mut right, mut total, mut misses) = (0, 0, Vec::new());
    for t in truth["articles"].as_array().unwrap() {
        let url = format!("{origin}{}", t["url"].as_str().unwrap());
        let Some(item) = items.iter().find(|i| i["url"] == url.as_str()) else {
            total += 5;
            misses.push(format!("missing item {url}"));
            continue;
        };
        let content = item["content"].as_str().unwrap_or_default();
        let images: Vec<String> = t["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| format!("{origin}{}", i.as_str().unwrap()))
            .collect();
        let junk = [
            "分享到",
            "打印本页",
            "关闭窗口",
            "相关链接",
            "相关文章",
            "Share this",
        ];
        let checks = [
            ("title", item["title"] == t["title"]),
            (
                "published",
                same_instant(&item["published"], &t["published"]),
            ),
            ("source", item["source"] == t["source"]),
            (
                "body",
                content.contains(t["body_first"].as_str().unwrap())
                    && content.contains(t["body_last"].as_str().unwrap())
                    && !junk.iter().any(|j| content.contains(j)),
            ),
            ("images", item["images"] == serde_json::json!(images)),
        ];
        for (name, ok) in checks {
            total += 1;
            if ok {
                right += 1;
            } else {
                misses.push(format!("{url}: {name}: got {}", item[name]));
            }
        }
    }
    (right, total, misses)
}

#[tokio::test(flavor = "multi_thread")]
async fn suggested_files_extract_every_layout_correctly() {
    let dir = root().join("fixtures/suggest");
    let server = FixtureServer::start(&dir, 0).await.unwrap();
    let origin = server.origin();
    let mut report = Vec::new();
    for layout in LAYOUTS {
        let tmp = TempDir::new("suggest");
        let selectors = tmp.path().to_str().unwrap().to_owned();
        let list = format!("{origin}/{layout}/");
        let out = run(&[
            "suggest",
            &list,
            "--id",
            "x",
            "--write",
            "--selectors",
            &selectors,
        ]);
        assert!(out.status.success(), "{layout}: {}", text(&out.stderr));
        let file = tmp.join("x.toml");
        let file = file.to_str().unwrap();
        let check = run(&["check", file]);
        assert!(check.status.success(), "{layout}: {}", text(&check.stderr));
        // preview reads the first start page (and follows `next`); a site whose pager
        // cannot be followed lists its other pages as further start pages.
        let site = feedbridge::site::load(std::path::Path::new(file)).unwrap();
        let mut items: Vec<Value> = Vec::new();
        for start in site.start_urls() {
            let preview = run(&[
                "preview",
                file,
                "--url",
                start.as_str(),
                "--json",
                "--limit",
                "20",
            ]);
            assert!(
                preview.status.success(),
                "{layout}: {}",
                text(&preview.stderr)
            );
            items.extend(
                text(&preview.stdout)
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
        let truth: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(layout).join("truth.json")).unwrap(),
        )
        .unwrap();
        let (right, total, misses) = score(&origin, &truth, &items);
        report.push(format!(
            "{layout}: {right}/{total} fields, {} items",
            items.len()
        ));
        assert_eq!(
            (right, total),
            (total, total),
            "{layout}: {misses:#?}\n{}",
            std::fs::read_to_string(file).unwrap()
        );
        // A second --write refuses to replace the file (usage error, exit 2).
        let again = run(&[
            "suggest",
            &list,
            "--id",
            "x",
            "--write",
            "--selectors",
            &selectors,
        ]);
        assert_eq!(again.status.code(), Some(2), "{layout}");
        assert!(
            text(&again.stderr).contains("--force"),
            "{}",
            text(&again.stderr)
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_article_page_is_not_a_list() {
    let dir = root().join("fixtures/suggest");
    let server = FixtureServer::start(&dir, 0).await.unwrap();
    let url = format!("{}/trs/202005/t20200512_1874400.html", server.origin());
    let out = run(&["suggest", &url, "--id", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("found no repeated links to articles: is this a list page?"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "no file printed: {}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_fixture_site_gets_a_working_file() {
    let server = FixtureServer::start(&root().join("fixtures/site"), 0)
        .await
        .unwrap();
    let tmp = TempDir::new("suggest-gzdt");
    let selectors = tmp.path().to_str().unwrap().to_owned();
    let list = format!("{}/utf8/gzdt/", server.origin());
    let out = run(&[
        "suggest",
        &list,
        "--id",
        "gzdt",
        "--write",
        "--selectors",
        &selectors,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = tmp.join("gzdt.toml");
    let preview = run(&["preview", file.to_str().unwrap(), "--json", "--limit", "40"]);
    assert!(preview.status.success(), "{}", text(&preview.stderr));
    let items: Vec<Value> = text(&preview.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 27, "both list pages followed");
    let with_source = items.iter().filter(|i| i["source"].is_string()).count();
    let with_title = items.iter().filter(|i| i["title"].is_string()).count();
    assert_eq!(with_title, 27);
    assert!(with_source >= 25, "{with_source} of 27 with a source");
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_pages_robots_and_unreachable_articles() {
    let dir = root().join("fixtures/suggest");
    let server = FixtureServer::start(&dir, 0).await.unwrap();
    let origin = server.origin();
    let saved = dir.join("trs/index.html");
    let saved = saved.to_str().unwrap();

    // A saved list page: the file is printed on stdout, the table on stderr.
    let out = run(&["suggest", &format!("{origin}/trs/"), "--file", saved]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(toml.contains("item = \"div.list li\""), "{toml}");
    assert!(
        text(&out.stderr).contains("(trs): 3 items"),
        "{}",
        text(&out.stderr)
    );

    // The same page said to live where its articles do not exist.
    let out = run(&["suggest", &format!("{origin}/gone/"), "--file", saved]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no sample article could be fetched"),
        "{}",
        text(&out.stderr)
    );

    // robots.txt disallows /private/: nothing is fetched there.
    let out = run(&["suggest", &format!("{origin}/private/list/")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("robots.txt"),
        "{}",
        text(&out.stderr)
    );
    assert!(server.hits_under("/private/").is_empty());

    // An id that could not be a feed path is a usage error.
    let out = run(&["suggest", &format!("{origin}/trs/"), "--id", "Bad_Id"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
