//! The URL policy against a hostile site on 127.0.0.1: content that points at local files,
//! at another address class or redirects there must never be read, and every refusal is
//! a warning in the run status. A trap server stands where a refused URL would land;
//! it must see no request. Nothing here leaves loopback.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::Html;
use axum::routing::get;
use feedbridge::fetch::{FetchError, FetchSettings, Fetcher, Manners};
use feedbridge::fixture_server::FixtureServer;
use feedbridge::store::Store;
use feedbridge::url_policy::UrlPolicy;

use crate::support::{Proc, TempDir, BIN};

const SECRET: &str = "s3cr3t-feedbridge-url-policy-token";

/// Runs the binary with `SECRET_TOKEN` in its environment; gives up (and kills it) after
/// 60 s, so a read that never ends fails the test instead of hanging it.
fn run_with_secret(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("SECRET_TOKEN", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn feedbridge");
    let mut p = Proc(child);
    let status = p.wait_for(Duration::from_secs(60));
    assert!(
        status.is_some(),
        "feedbridge {args:?} did not finish in 60 s"
    );
    let read = |r: Option<&mut dyn std::io::Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    };
    let out = read(p.0.stdout.as_mut().map(|r| r as &mut dyn std::io::Read));
    let err = read(p.0.stderr.as_mut().map(|r| r as &mut dyn std::io::Read));
    (status.and_then(|s| s.code()), out, err)
}

async fn crawl(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = dir.to_owned();
    let mut args: Vec<String> = [
        "crawl",
        "--selectors",
        "selectors",
        "--data",
        "data",
        "--retries",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with_secret(&dir, &args)
    })
    .await
    .unwrap()
}

/// A site whose pages and feed point at local files, at 0.0.0.0 (the trap's port) and at
/// `localhost` (a name: refused when connecting, for a site whose own host is public).
async fn hostile_server(trap_port: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let trap = format!("http://0.0.0.0:{trap_port}");
    let list = format!(
        r#"<html><head><base href="file:///"><meta charset="utf-8"></head><body>
<div class="list"><ul>
<li><a href="file:///etc/passwd">passwd</a></li>
<li><a href="file:///proc/self/environ">environ</a></li>
<li><a href="FILE:///proc/self/environ?x">environ again</a></li>
<li><a href="a1.html">good</a></li>
<li><a href="/redirect-file">redirect to a file</a></li>
<li><a href="/redirect-unspecified">redirect to 0.0.0.0</a></li>
<li><a href="{trap}/direct.html">0.0.0.0</a></li>
<li><a href="http://[::ffff:0.0.0.0]:{trap_port}/mapped.html">mapped 0.0.0.0</a></li>
</ul></div>
<div class="page"><a href="file:///etc/passwd">下一页</a></div></body></html>"#
    );
    let list2 = format!(
        r#"<html><head><meta charset="utf-8"></head><body>
<div class="list"><ul><li><a href="a1.html">good</a></li></ul></div>
<div class="page"><a href="{trap}/page2.html">下一页</a></div></body></html>"#
    );
    let article = r#"<html><head><meta charset="utf-8"><base href="file:///"></head><body>
<h1>正常文章</h1><div class="content"><p>正文内容</p>
<p><a href="file:///etc/passwd">密码</a> <a href="/proc/self/environ">相对链接</a></p>
<img src="file:///etc/passwd" data-original="file:///proc/self/environ">
<img src="pic.png" data-original="pic.png"></div></body></html>"#;
    let feed = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>hostile</title><link>{origin}/</link>
<item><title>passwd</title><link>file:///etc/passwd</link></item>
<item><title>environ</title><link>file:///proc/self/environ</link><guid isPermaLink="false">g2</guid></item>
<item><title>guid only</title><guid>file:///etc/passwd</guid></item>
<item><title>redirect</title><link>{origin}/redirect-file</link></item>
<item><title>good</title><link>{origin}/a1.html</link>
<enclosure url="file:///etc/passwd" type="image/png" length="1"/>
<description>&lt;p&gt;摘要&lt;img src="file:///etc/passwd"&gt;&lt;/p&gt;</description></item>
</channel></rss>"#
    );
    let redirect =
        |to: String| move || async move { (StatusCode::FOUND, [(header::LOCATION, to)]) };
    let app = axum::Router::new()
        .route("/list.html", get(move || async move { Html(list) }))
        .route("/list2.html", get(move || async move { Html(list2) }))
        .route("/a1.html", get(move || async move { Html(article) }))
        .route(
            "/feed.xml",
            get(move || async move { ([(header::CONTENT_TYPE, "application/rss+xml")], feed) }),
        )
        .route("/redirect-file", get(redirect("file:///etc/passwd".into())))
        .route(
            "/redirect-unspecified",
            get(redirect(format!("{trap}/redirected.html"))),
        )
        .route(
            "/redirect-localhost",
            get(redirect(format!("http://localhost:{trap_port}/named.html"))),
        );
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, handle)
}

/// An empty loopback server on a free port: where 0.0.0.0:PORT would land on Linux.
async fn trap() -> (TempDir, FixtureServer) {
    let dir = TempDir::new("url-policy-trap");
    let server = FixtureServer::start(dir.path(), 0).await.unwrap();
    // The trap is a real witness: 0.0.0.0 does reach this loopback listener.
    #[cfg(target_os = "linux")]
    assert!(std::net::TcpStream::connect(("0.0.0.0", server.addr.port())).is_ok());
    (dir, server)
}

fn list_selector(start: &str) -> String {
    format!(
        r#"title = "恶意站点"
start = ["{start}"]
timezone = "Asia/Shanghai"
delay = "0s"

[list]
item = "div.list li"
link = "a"
next = {{ css = "div.page a", text = "下一页" }}
max_pages = 3

[article]
title = "h1"
body = "div.content"
images = {{ css = "div.content img", attr = "data-original" }}
"#
    )
}

fn feed_selector(feed: &str) -> String {
    format!(
        r#"title = "恶意源"
feed = "{feed}"
timezone = "Asia/Shanghai"
delay = "0s"

[article]
title = "h1"
body = "div.content"
"#
    )
}

/// Nothing from /etc/passwd or the environment, anywhere.
fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "{what} leaks the environment:\n{text}"
    );
    assert!(!text.contains("root:"), "{what} leaks /etc/passwd:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_links_bases_images_feeds_and_redirects_are_refused() {
    let tmp = TempDir::new("url-policy-crawl");
    let (_trap_dir, trap) = trap().await;
    let (origin, _h) = hostile_server(trap.addr.port()).await;
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let write = |name: &str, text: String| {
        std::fs::write(tmp.join(&format!("selectors/{name}.toml")), text).unwrap()
    };
    write("hostile", list_selector(&format!("{origin}/list.html")));
    write(
        "hostile-next",
        list_selector(&format!("{origin}/list2.html")),
    );
    write("hostile-rss", feed_selector(&format!("{origin}/feed.xml")));

    let (code, out, err) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_clean("crawl output", &(out.clone() + &err));

    let store = Store::open(&tmp.join("data")).unwrap();
    for site in ["hostile", "hostile-next", "hostile-rss"] {
        let items = store.recent(site, 100).unwrap();
        let urls: Vec<&str> = items.iter().map(|i| i.item.url.as_str()).collect();
        // Upstream entries whose link was refused are kept like link-less ones, under a
        // stand-in URL on the feed that is never fetched; HTML lists have no such entries.
        let fetched: Vec<&str> = urls
            .iter()
            .copied()
            .filter(|u| !u.starts_with(&format!("{origin}/feed.xml#entry-")))
            .collect();
        assert_eq!(
            fetched,
            [format!("{origin}/a1.html")],
            "{site}: only the good article; the <base href=\"file:///\"> was ignored"
        );
        if site != "hostile-rss" {
            assert_eq!(urls.len(), 1, "{site}: {urls:?}");
        }
        for stand_in in &items {
            // A guid is an identity string (an alias), never dereferenced or rendered;
            // warnings name the refused link on purpose (they go to the run status).
            let mut shown = stand_in.item.clone();
            shown.aliases.clear();
            shown.warnings.clear();
            assert!(
                !format!("{shown:?}").contains("file:"),
                "{site}: {:?}",
                stand_in.item
            );
            assert_clean(site, &format!("{:?}", stand_in.item));
        }
        let item = &items
            .iter()
            .find(|i| i.item.url == format!("{origin}/a1.html"))
            .unwrap()
            .item;
        assert!(!format!("{item:?}").contains("file:"), "{site}: {item:?}");
        assert_clean(site, &format!("{item:?}"));
        assert_eq!(item.images, [format!("{origin}/pic.png")], "{site}");
        let feed = feedbridge::feed::render(
            &feedbridge::feed::FeedMeta {
                site_id: site.into(),
                title: site.into(),
                home: None,
                self_url: format!("http://127.0.0.1/feeds/{site}.atom"),
                language: None,
                timezone: chrono_tz::Asia::Shanghai,
            },
            &items,
            chrono::Utc::now(),
        );
        let feed = String::from_utf8(feed).unwrap();
        assert!(!feed.contains("file:"), "{site}: {feed}");
        assert_clean(site, &feed);
    }

    let warnings = |site: &str| {
        let status = store.run_status(site).unwrap().unwrap();
        assert!(status.last_error.is_none(), "{site}: {status:?}");
        assert_eq!(
            status.articles_failed, 0,
            "a refusal is no failure: {status:?}"
        );
        status.warnings.join("\n")
    };
    let w = warnings("hostile");
    for expected in [
        "list.link: \"file:///etc/passwd\" not followed",
        "list.link: \"file:///proc/self/environ\" not followed",
        "list.next: \"file:///etc/passwd\" not followed",
        "/redirect-file: refused by the URL policy: file:",
        "/redirect-unspecified: refused by the URL policy: 0.0.0.0 is a non-public (unspecified) address",
        "/direct.html: refused by the URL policy",
        "/mapped.html: refused by the URL policy",
    ] {
        assert!(w.contains(expected), "no {expected:?} in:\n{w}");
    }
    assert_clean("warnings", &w);
    let w = warnings("hostile-next");
    assert!(
        w.contains("list.next:") && w.contains("/page2.html: refused by the URL policy"),
        "{w}"
    );
    let w = warnings("hostile-rss");
    for expected in [
        "upstream entry link \"file:///etc/passwd\" not followed",
        "upstream entry link \"file:///proc/self/environ\" not followed",
        "/redirect-file: refused by the URL policy",
    ] {
        assert!(w.contains(expected), "no {expected:?} in:\n{w}");
    }
    drop(store);
    assert!(
        trap.hits_under("/").is_empty(),
        "{:?}",
        trap.hits_under("/")
    );

    // preview reads the same way and prints the same refusals.
    let file = tmp.join("selectors/hostile.toml");
    let (code, out, err) = run_with_secret(
        tmp.path(),
        &["preview", file.to_str().unwrap(), "--json", "--limit", "20"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_clean("preview", &(out.clone() + &err));
    let items: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 5, "a1 and the 4 refused links: {out}");
    assert!(!out.contains("\"file:"), "{out}");
    assert!(err.contains("not followed"), "{err}");
    assert!(
        trap.hits_under("/").is_empty(),
        "{:?}",
        trap.hits_under("/")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_resolving_to_a_refused_class_is_refused_when_connecting() {
    let (_trap_dir, trap) = trap().await;
    let (origin, _h) = hostile_server(trap.addr.port()).await;
    let fetcher = Fetcher::new(FetchSettings {
        retries: 0,
        ..FetchSettings::default()
    })
    .unwrap();
    // A site whose own host is public (a documentation address, never contacted): the
    // name `localhost` resolves to loopback, which it may not reach.
    let public = Manners {
        delay: Duration::ZERO,
        robots: false,
        policy: UrlPolicy::new(["http://192.0.2.1/list/".parse().unwrap()]),
    };
    let named = format!("http://localhost:{}/named.html", trap.addr.port())
        .parse()
        .unwrap();
    let e = fetcher.get(&named, None, &public).await.unwrap_err();
    assert!(matches!(e, FetchError::Refused { .. }), "{e}");
    assert_eq!(e.class(), "url-policy");

    // The same refusal on a redirect hop (from a loopback site, to a name): for that,
    // the site's own class must allow the first hop, so its policy is loopback's own.
    let loopback = Manners {
        policy: UrlPolicy::new([format!("{origin}/list.html").parse().unwrap()]),
        ..public.clone()
    };
    let hop = format!("{origin}/redirect-localhost").parse().unwrap();
    assert!(
        fetcher.get(&hop, None, &loopback).await.is_err(),
        "localhost is allowed for a loopback site, but the trap has no /named.html"
    );
    let unspecified = format!("{origin}/redirect-unspecified").parse().unwrap();
    let e = fetcher
        .get(&unspecified, None, &loopback)
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Refused { .. }), "{e}");
    let file = "file:///etc/passwd".parse().unwrap();
    let e = fetcher.get(&file, None, &loopback).await.unwrap_err();
    assert!(matches!(e, FetchError::Refused { .. }), "{e}");

    let hits: Vec<String> = trap.hits_under("/").into_iter().map(|h| h.path).collect();
    assert_eq!(
        hits,
        ["/named.html"],
        "only the allowed loopback hop arrived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_files_are_capped_and_must_be_regular() {
    let tmp = TempDir::new("url-policy-files");
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let fifo = tmp.join("pipe.html");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let sparse = tmp.join("sparse.html");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let small = tmp.join("small.html");
    std::fs::write(
        &small,
        r#"<html><body><div class="list"><ul><li><a href="file:///etc/passwd">x</a></li></ul></div></body></html>"#,
    )
    .unwrap();
    let url = |p: &Path| url::Url::from_file_path(p).unwrap().to_string();
    for (name, start) in [
        ("fifo", url(&fifo)),
        ("sparse", url(&sparse)),
        ("devzero", "file:///dev/zero".to_owned()),
        ("small", url(&small)),
    ] {
        std::fs::write(
            tmp.join(&format!("selectors/{name}.toml")),
            list_selector(&start),
        )
        .unwrap();
    }
    let (_, out, err) = crawl(tmp.path(), &["--max-body", "1000000"]).await;
    let store = Store::open(&tmp.join("data")).unwrap();
    let status = |site: &str| store.run_status(site).unwrap().unwrap();
    // Devices and FIFOs are refused when the file is loaded (what `check` says), so they
    // are never opened; the fetcher refuses non-regular files again at read time.
    let said = format!("{out}\n{err}");
    for (site, why) in [("fifo", "not a regular file"), ("devzero", "reads /dev")] {
        assert!(store.run_status(site).unwrap().is_none(), "{site} ran");
        assert!(said.contains(why), "{site}: no {why:?} in\n{said}");
    }
    let e = status("sparse").last_error.unwrap_or_default();
    assert!(e.contains("larger than the 1000000-byte cap"), "{e}");
    // An operator's own file is read, but what it links to is content: http(s) only.
    let s = status("small");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("\"file:///etc/passwd\" not followed")),
        "{s:?}"
    );
    assert!(store.recent("small", 10).unwrap().is_empty());
}
