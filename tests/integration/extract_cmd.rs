//! `feedbridge extract`: automatic extraction of one page from a file, stdin or the
//! fixture site on 127.0.0.1, with and without a selector file.

use std::io::Write;
use std::process::{Command, Stdio};

use feedbridge::fixture_server::FixtureServer;

use crate::support::{root, run, text, BIN};

const SEED: &str = "fixtures/site/utf8/gzdt/202005/t20200512_1874321.html";
const TITLE: &str = "5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动";

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_str(&text(&out.stdout)).expect("one JSON object")
}

#[test]
fn seed_page_without_selectors_gives_all_five_fields_with_their_evidence() {
    let file = root().join(SEED);
    let v = json(&run(&[
        "extract",
        file.to_str().unwrap(),
        "--url",
        "http://www.example.gov.cn/gzdt/202005/t20200512_1874321.html",
        "--json",
    ]));
    assert_eq!(v["title"], TITLE);
    assert_eq!(v["via"]["title"], "h1");
    assert_eq!(v["published"], "2020-05-12T00:00:00+08:00");
    assert_eq!(v["date_only"], true);
    assert_eq!(v["via"]["published"], "text:时间");
    assert_eq!(v["source"], "河南日报");
    assert_eq!(v["via"]["source"], "meta:contentsource");
    assert_eq!(v["via"]["content"], "density");
    let content = v["content"].as_str().unwrap();
    assert!(
        content.starts_with(
            "<p><img src=\"http://www.example.gov.cn/gzdt/202005/W020200512083114.png\""
        ),
        "{content}"
    );
    for junk in ["打印本页", "相关链接", "分享到", "<script", "隐藏的推广"] {
        assert!(!content.contains(junk), "{junk}");
    }
    assert_eq!(v["images"].as_array().unwrap().len(), 3);
    assert_eq!(v["via"]["images"], "density");
    assert!(v["text"].as_str().unwrap().lines().count() > 10);
    assert_eq!(v["warnings"], serde_json::json!([]));

    // The readable form names the same evidence.
    let out = run(&["extract", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("title     {TITLE}  [h1]")),
        "{shown}"
    );
    assert!(
        shown.contains("source    河南日报  [meta:contentsource]"),
        "{shown}"
    );
}

#[test]
fn stdin_page_with_a_zone_and_a_lying_label() {
    let page = "<html><head><meta charset=\"gb2312\"><title>Nouvelles - Site</title></head><body>\
        <h1>Nouvelles</h1><p>Publié le 2024-03-05 10:00</p><div><p>Un long paragraphe de texte, \
        avec des virgules, et des phrases. Encore une phrase ici, é à ù.</p></div></body></html>";
    let mut child = Command::new(BIN)
        .args(["extract", "-", "--timezone", "Europe/Paris", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let v = json(&child.wait_with_output().unwrap());
    assert_eq!(v["published"], "2024-03-05T10:00:00+01:00");
    assert!(v["text"].as_str().unwrap().contains("é à ù"));
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("valid UTF-8"), "{warnings}");
}

#[test]
fn a_bad_encoding_label_is_a_usage_error() {
    let file = root().join(SEED);
    let out = run(&["extract", file.to_str().unwrap(), "--encoding", "klingon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn fetched_gbk_page_and_selector_rules_first() {
    let server = FixtureServer::start(&root().join("fixtures/site"), 0)
        .await
        .unwrap();
    let url = format!("{}/gbk/gzdt/202005/t20200512_1874321.html", server.origin());
    let auto = json(&run(&["extract", &url, "--json"]));
    assert_eq!(auto["title"], TITLE);
    assert_eq!(auto["source"], "河南日报");
    assert_eq!(auto["published"], "2020-05-12T00:00:00+08:00");

    let selectors = root().join("selectors/fixture-gzdt.toml");
    let ruled = json(&run(&[
        "extract",
        &url,
        "--site",
        selectors.to_str().unwrap(),
        "--json",
    ]));
    for field in ["title", "published", "source", "content"] {
        assert_eq!(ruled["via"][field], "selector", "{field}: {ruled}");
    }
    assert_eq!(ruled["title"], auto["title"]);
    assert_eq!(ruled["published"], auto["published"]);
}

#[test]
fn site_rules_that_miss_are_filled_automatically() {
    let tmp = crate::support::TempDir::new("extract-fill");
    let selectors = tmp.join("partial.toml");
    std::fs::write(
        &selectors,
        r#"title = "partial"
start = ["http://127.0.0.1:8181/utf8/gzdt/index.html"]
schedule = "*/30 * * * *"
timezone = "Asia/Shanghai"

[list]
item = "div.list li"
link = "a"

[article]
title = "div.article h1"
source = "div.no-such-thing"
"#,
    )
    .unwrap();
    let file = root().join(SEED);
    let v = json(&run(&[
        "extract",
        file.to_str().unwrap(),
        "--url",
        "http://www.example.gov.cn/gzdt/202005/t20200512_1874321.html",
        "--site",
        selectors.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["via"]["title"], "selector");
    assert_eq!(v["title"], TITLE);
    // No date or body rule, a source rule that matches nothing: automatic values.
    assert_eq!(v["via"]["published"], "text:时间");
    assert_eq!(v["published"], "2020-05-12T00:00:00+08:00");
    assert_eq!(v["via"]["content"], "density");
    assert!(v["content"].as_str().unwrap().contains("春潮涌动"));
    assert_eq!(v["source"], "河南日报");
    assert_eq!(v["via"]["source"], "meta:contentsource");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("div.no-such-thing"), "{warnings}");
    // The crawl's own words: the same reading as a crawl of this file.
    assert!(
        warnings.contains(
            "source: selector matched nothing, filled automatically (meta:contentsource)"
        ),
        "{warnings}"
    );
}
