//! `feedbridge preview` against the fixture site served on 127.0.0.1.

use feedbridge::fixture_server::FixtureServer;

use crate::support::{root, run, text};

/// Runs `feedbridge preview` of the bundled fixture selector on `url`.
fn run_preview(url: &str, extra: &[&str]) -> std::process::Output {
    let file = root().join("selectors/fixture-gzdt.toml");
    let mut args = vec!["preview", file.to_str().unwrap(), "--url", url];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn preview(origin: &str, copy: &str) -> Vec<serde_json::Value> {
    let out = run_preview(
        &format!("{origin}/{copy}/gzdt/index.html"),
        &["--json", "--limit", "40"],
    );
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn utf8_and_gbk_copies_give_identical_items() {
    let server = FixtureServer::start(&root().join("fixtures/site"), 0)
        .await
        .unwrap();
    let origin = server.origin();
    let utf8 = preview(&origin, "utf8");
    let gbk = preview(&origin, "gbk");
    assert_eq!(utf8.len(), 27, "both list pages followed");
    let gbk_as_utf8: Vec<serde_json::Value> = gbk
        .iter()
        .map(|v| serde_json::from_str(&v.to_string().replace("/gbk/", "/utf8/")).unwrap())
        .collect();
    assert_eq!(utf8, gbk_as_utf8);

    let seed = &utf8[0];
    assert_eq!(
        seed["title"],
        "5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动"
    );
    assert_eq!(seed["published"], "2020-05-12T00:00:00+08:00");
    assert_eq!(seed["source"], "河南日报");
    assert_eq!(
        seed["images"][0],
        format!("{origin}/utf8/gzdt/202005/W020200512083114.png")
    );
    let content = seed["content"].as_str().unwrap();
    for banned in [
        "<script",
        "onclick",
        "javascript:",
        "分享到",
        "相关链接",
        "隐藏的推广文字",
        "&nbsp;",
        "<p></p>",
    ] {
        assert!(!content.contains(banned), "{banned} in content");
    }
    assert!(content.contains("春潮涌动 争创模范机关"));
    // The timed article keeps its time; the full-width colon is read.
    assert_eq!(utf8[1]["published"], "2020-05-11T16:20:00+08:00");
    assert_eq!(utf8[1]["source"], "省委直属机关工委");
    // The tracking parameters and fragment are gone from the canonical URL.
    assert_eq!(
        utf8[2]["url"],
        format!("{origin}/utf8/gzdt/202005/t20200510_1874323.html")
    );
    // No date on the page or the list: automatic extraction reads the URL's
    // (t20200507_…), and says the date rule matched nothing.
    assert_eq!(utf8[5]["published"], "2020-05-07T00:00:00+08:00");
    assert_eq!(utf8[5]["via"]["date"], "auto:url");
    assert!(utf8[5]["warnings"]
        .to_string()
        .contains("date: selector matched nothing, filled automatically (url)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn table_output_for_people() {
    let server = FixtureServer::start(&root().join("fixtures/site"), 0)
        .await
        .unwrap();
    let out = run_preview(
        &format!("{}/gbk/gzdt/index.html", server.origin()),
        &["--limit", "2"],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("#1   5月10日《河南日报》"), "{stdout}");
    assert!(stdout.contains("date    2020-05-12T00:00:00+08:00"));
    assert!(stdout.contains("source  河南日报"));
    assert!(text(&out.stderr).contains("25 more items"));
}

#[test]
fn saved_page_with_base() {
    let file = root().join("selectors/fixture-gzdt.toml");
    let page = root().join("fixtures/site/gbk/gzdt/202005/t20200511_1874322.html");
    let out = run(&[
        "preview",
        file.to_str().unwrap(),
        "--file",
        page.to_str().unwrap(),
        "--base",
        "http://www.example.gov.cn/gzdt/202005/x.html",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        v["images"][0],
        "http://www.example.gov.cn/gzdt/202005/W020200512083114.png"
    );
    assert_eq!(v["published"], "2020-05-11T16:20:00+08:00");
}

/// Without `--url`, preview reads every `start` page, as a crawl does (a suggested file
/// may list several).
#[tokio::test(flavor = "multi_thread")]
async fn preview_reads_every_start_page() {
    let server = FixtureServer::start(&root().join("fixtures/site"), 0)
        .await
        .unwrap();
    let origin = server.origin();
    let tmp = crate::support::TempDir::new("preview-starts");
    let file = tmp.join("two.toml");
    let starts = format!("[\"{origin}/utf8/gzdt/index.html\", \"{origin}/gbk/gzdt/index.html\"]");
    std::fs::write(
        &file,
        crate::support::fixture_selector(&origin, &[("start", &starts)]),
    )
    .unwrap();
    let out = run(&["preview", file.to_str().unwrap(), "--json", "--limit", "80"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let urls: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["url"].to_string())
        .collect();
    assert_eq!(urls.len(), 54, "27 items from each start page");
    assert_eq!(urls.iter().filter(|u| u.contains("/gbk/")).count(), 27);
}
