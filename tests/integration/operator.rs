//! The operator's loop: fix a selector and see the feed fixed on the next run, run two
//! sites on one list page, trust the README's commands, read errors that say what broke.

use std::collections::BTreeMap;
use std::path::Path;

use feedbridge::fixture_server::FixtureServer;
use feedbridge::store::Store;

use crate::support::{
    fixture_selector, fixture_site_copy, free_port, root, run, run_in, text, TempDir, BIN,
};

async fn crawl(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let dir = dir.to_owned();
    let mut args: Vec<String> = ["crawl", "--selectors", "selectors", "--data", "data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_in(&dir, &args, &[])
    })
    .await
    .unwrap();
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

fn line_of<'a>(out: &'a str, site: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{site}: ")))
        .unwrap_or_else(|| panic!("no summary for {site} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_selector_fixes_the_feed_window_on_the_next_run() {
    let tmp = TempDir::new("op-fix");
    let site = fixture_site_copy(&tmp);
    let server = FixtureServer::start(&site, 0).await.unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let write = |extra: &[(&str, &str)]| {
        let mut all = vec![("max_items", "10")];
        all.extend_from_slice(extra);
        std::fs::write(
            tmp.join("selectors/fix.toml"),
            fixture_selector(&server.origin(), &all),
        )
        .unwrap();
    };
    // The operator's first attempt: `source` takes the whole info line, label and all.
    write(&[("source", "\"div.info font\"")]);
    let (code, out) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(line_of(&out, "fix").contains("new 27"), "{out}");
    let before: BTreeMap<String, _> = {
        let store = Store::open(&tmp.join("data")).unwrap();
        store
            .recent("fix", 100)
            .unwrap()
            .into_iter()
            .map(|s| (s.item.url.clone(), s))
            .collect()
    };
    assert!(before
        .values()
        .all(|s| s.item.source.as_deref().is_some_and(|v| v.contains("来源"))));

    // The fix. Meanwhile the newest article left the list page: it is still in the feed
    // window, so it is re-read too (from its stored URL). The other list pages did not
    // change and would answer 304 to the old validators; the 10 window entries are
    // re-read and updated in place all the same.
    let list = site.join("utf8/gzdt/index.html");
    let html = std::fs::read_to_string(&list).unwrap();
    let first_li = html.find("<li>").unwrap();
    let end = html[first_li..].find("</li>").unwrap() + first_li + "</li>".len();
    assert!(html[first_li..end].contains("t20200512_1874321.html"));
    std::fs::write(&list, format!("{}{}", &html[..first_li], &html[end..])).unwrap();
    write(&[]);
    let (code, out) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let line = line_of(&out, "fix");
    assert!(line.contains("(304: 0)"), "no 304 for new rules: {line}");
    assert!(
        line.contains("pages 12 "),
        "2 list pages, 10 articles: {line}"
    );
    assert!(line.contains("new 0 / updated 10 / unchanged 17"), "{line}");
    let store = Store::open(&tmp.join("data")).unwrap();
    let after = store.recent("fix", 100).unwrap();
    assert_eq!(after.len(), 27, "no new identities");
    let window = store.recent("fix", 10).unwrap();
    assert!(window
        .iter()
        .any(|s| s.item.url.ends_with("t20200512_1874321.html")));
    for s in &window {
        let old = &before[&s.item.url];
        assert_eq!(s.key(), old.key(), "same id");
        assert!(s.updated > old.updated, "updated moves: {}", s.item.url);
        assert_eq!(s.first_seen, old.first_seen);
        let source = s.item.source.as_deref().unwrap_or_default();
        assert!(
            !source.is_empty() && !source.contains("来源"),
            "fixed source: {source}"
        );
    }
    drop(store);

    // Once fixed, the next run is conditional again.
    let (code, out) = crawl(tmp.path(), &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let line = line_of(&out, "fix");
    assert!(line.contains("NotModified"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sites_on_one_list_page_each_get_a_full_feed() {
    let tmp = TempDir::new("op-twins");
    let server = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    for id in ["one", "two"] {
        std::fs::write(
            tmp.join(&format!("selectors/{id}.toml")),
            fixture_selector(&server.origin(), &[("title", &format!("\"{id}\""))]),
        )
        .unwrap();
    }
    // One at a time: the second runs after the first stored its validators.
    let (code, out) = crawl(tmp.path(), &["--concurrency", "1"]).await;
    assert_eq!(code, Some(0), "{out}");
    for id in ["one", "two"] {
        assert!(line_of(&out, id).contains("new 27"), "{out}");
    }
    let (code, out) = crawl(tmp.path(), &["--concurrency", "1"]).await;
    assert_eq!(code, Some(0), "{out}");
    for id in ["one", "two"] {
        assert!(line_of(&out, id).contains("NotModified"), "{out}");
    }
    let store = Store::open(&tmp.join("data")).unwrap();
    assert_eq!(store.count("one"), 27);
    assert_eq!(store.count("two"), 27);
}

#[test]
fn crawl_refuses_serve_only_flags() {
    let out = run(&["crawl", "--listen", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let help = text(&run(&["crawl", "--help"]).stdout);
    for serve_only in ["--listen", "--base-url", "--max-connections"] {
        assert!(
            !help.contains(serve_only),
            "crawl --help offers {serve_only}"
        );
    }
    let help = text(&run(&["serve", "--help"]).stdout);
    for flag in [
        "--listen",
        "--base-url",
        "--max-connections",
        "--data",
        "--timeout",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crawl_prints_one_summary_and_an_unreachable_host_says_so_once() {
    let tmp = TempDir::new("op-down");
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    // A loopback port nobody listens on; robots.txt obeyed (the default).
    let down = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(
        tmp.join("selectors/down.toml"),
        fixture_selector(&down, &[]),
    )
    .unwrap();
    let (code, out) = crawl(tmp.path(), &["--retries", "0", "--timeout", "2s"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.matches("down: ").count(), 1, "one summary: {out}");
    let line = line_of(&out, "down");
    assert!(line.contains("the host is unreachable"), "{line}");
    assert!(
        !out.contains("robots.txt"),
        "not a robots.txt problem: {out}"
    );
    assert_eq!(out.matches("unreachable").count(), 1, "said once: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_uses_the_operators_user_agent_and_config_file() {
    let tmp = TempDir::new("op-preview-ua");
    let site = fixture_site_copy(&tmp);
    // A robots.txt that shuts out one User-Agent shows which one preview sent.
    std::fs::write(
        site.join("robots.txt"),
        "User-agent: probebot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n",
    )
    .unwrap();
    let server = FixtureServer::start(&site, 0).await.unwrap();
    std::fs::write(
        tmp.join("fix.toml"),
        fixture_selector(&server.origin(), &[]),
    )
    .unwrap();
    let dir = tmp.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let plain = run_in(&dir, &["preview", "fix.toml", "--limit", "1"], &[]);
        let flag = run_in(
            &dir,
            &[
                "preview",
                "fix.toml",
                "--limit",
                "1",
                "--user-agent",
                "probebot/1",
            ],
            &[],
        );
        std::fs::write(dir.join("ops.toml"), "user_agent = \"probebot/2\"\n").unwrap();
        let file = run_in(
            &dir,
            &[
                "--config", "ops.toml", "preview", "fix.toml", "--limit", "1",
            ],
            &[],
        );
        [plain, flag, file]
    })
    .await
    .unwrap();
    let [plain, flag, file] = out;
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    // The table shows the body's text, not a count of HTML characters.
    let table = text(&plain.stdout);
    assert!(!table.contains("characters of HTML"), "{table}");
    assert!(table.contains("     body    "), "{table}");
    for out in [flag, file] {
        assert_ne!(out.status.code(), Some(0));
        assert!(
            text(&out.stderr).contains("disallowed by robots.txt"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_port_names_the_way_out() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = TempDir::new("op-busy");
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let dir = tmp.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run_in(&dir, &["serve", "--data", "data", "--listen", &addr], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{} is in use; pick another with --listen",
            taken.local_addr().unwrap()
        )),
        "{err}"
    );
}

#[test]
fn user_agent_help_names_the_default_that_is_sent() {
    let sent = feedbridge::fetch::FetchSettings::default().user_agent;
    let help = text(&run(&["serve", "--help"]).stdout);
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&format!("[default: {sent}]")), "{help}");
}

/// The commands of README.md's code blocks: every `feedbridge SUB ...` line (also
/// `./target/release/feedbridge` and `cargo run ... -- SUB`) with its flags.
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut in_code = false;
    let mut out = Vec::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let command = line.split(" #").next().unwrap_or_default();
        let words: Vec<&str> = command.split_whitespace().collect();
        let rest: &[&str] = match words.as_slice() {
            [first, rest @ ..] if first.ends_with("feedbridge") => rest,
            ["cargo", "run", ..] => match words.iter().position(|w| *w == "--") {
                Some(i) => &words[i + 1..],
                None => continue,
            },
            _ => continue,
        };
        // Global flags may come before the subcommand.
        let mut sub = None;
        let mut flags = Vec::new();
        let mut skip_value = false;
        for w in rest {
            if let Some(flag) = w.strip_prefix("--") {
                flags.push(format!("--{}", flag.split('=').next().unwrap_or_default()));
                skip_value = flag == "config";
            } else if sub.is_none() && !skip_value {
                sub = Some(w.to_string());
            } else {
                skip_value = false;
            }
        }
        if let Some(sub) = sub {
            out.push((sub, flags));
        }
    }
    out
}

#[test]
fn the_readme_commands_match_the_help() {
    let commands = readme_commands();
    assert!(
        commands.len() >= 6,
        "the README parser found only {commands:?}"
    );
    for (sub, flags) in &commands {
        let out = std::process::Command::new(BIN)
            .args([sub.as_str(), "--help"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "README runs `feedbridge {sub}`, which does not exist"
        );
        let help = text(&out.stdout);
        for flag in flags {
            let listed = help
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == flag);
            assert!(
                listed,
                "README uses `feedbridge {sub} {flag}`, not in its --help"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_applies_a_fixed_selector_to_the_feed_without_a_restart() {
    let tmp = TempDir::new("op-serve-fix");
    let server = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let selector = |source: Option<&str>| {
        let mut extra = vec![
            ("schedule", "\"*/2 * * * * *\""),
            ("min_interval", "\"1s\""),
        ];
        if let Some(s) = source {
            extra.push(("source", s));
        }
        fixture_selector(&server.origin(), &extra)
    };
    std::fs::write(
        tmp.join("selectors/fix.toml"),
        selector(Some("\"div.info font\"")),
    )
    .unwrap();
    let (base, _p) = crate::support::spawn_serve(tmp.path());
    crate::support::wait_for_items(&base, 27).await;
    let url = format!("{base}/feeds/fix.atom");
    let entries = |xml: String| {
        feed_rs::parser::parse(xml.as_bytes())
            .expect("feed")
            .entries
            .into_iter()
            .map(|e| {
                let author: String = e
                    .authors
                    .first()
                    .and_then(|a| a.name.clone())
                    .unwrap_or_default();
                (e.id, (author, e.updated))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let before = entries(crate::support::get_text(url.clone()).await);
    assert_eq!(before.len(), 27);
    assert!(before.values().all(|(author, _)| author.contains("来源")));

    // The fix, written as editors do (temp file, rename).
    std::fs::write(tmp.join("selectors/fix.toml.new"), selector(None)).unwrap();
    std::fs::rename(
        tmp.join("selectors/fix.toml.new"),
        tmp.join("selectors/fix.toml"),
    )
    .unwrap();
    let after = crate::support::eventually(std::time::Duration::from_secs(40), || {
        let url = url.clone();
        async move {
            let after = entries(crate::support::get_text(url).await);
            after
                .values()
                .all(|(author, _)| !author.contains("来源"))
                .then_some(after)
        }
    })
    .await
    .expect("every entry fixed by a scheduled run, without a restart");
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same entries (ids)"
    );
    for (id, (_, updated)) in &after {
        assert!(*updated > before[id].1, "{id}: updated moves");
    }
}
