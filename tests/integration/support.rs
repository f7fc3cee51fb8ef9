//! Helpers: the binary, temporary directories, fixture copies, small generated sites.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_feedbridge");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "feedbridge-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A copy of the bundled fixture site that a test may edit.
pub fn fixture_site_copy(tmp: &TempDir) -> PathBuf {
    let dir = tmp.join("site");
    copy_dir(&root().join("fixtures/site"), &dir);
    dir
}

/// The bundled fixture site's selector file, pointed at `origin` and with `extra` lines
/// replacing keys of the same name.
pub fn fixture_selector(origin: &str, extra: &[(&str, &str)]) -> String {
    let text =
        std::fs::read_to_string(root().join("selectors/fixture-gzdt.toml")).expect("selector");
    let mut out = String::new();
    for (k, v) in extra {
        if !text
            .lines()
            .any(|l| l.split('=').next().unwrap_or("").trim() == *k)
        {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if let Some((_, v)) = extra.iter().find(|(k, _)| *k == key) {
            out.push_str(&format!("{key} = {v}\n"));
        } else {
            out.push_str(&line.replace("http://127.0.0.1:8181", origin));
            out.push('\n');
        }
    }
    out
}

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run feedbridge")
}

pub fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run feedbridge")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `feedbridge` child process, killed on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(dir: &Path, args: &[&str]) -> Proc {
        let child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn feedbridge");
        Proc(child)
    }

    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
    }

    /// Waits for exit at most `limit` (checking at least once); `None` when it did not exit.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_gzip()
        .no_brotli()
        .build()
        .expect("client")
}

/// Polls `check` every 100 ms until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = check().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Writes a small site of `n` articles (seed text) under `dir`; the list is `list.html`.
pub fn small_site(dir: &Path, n: usize, article_prefix: &str) {
    let seed = std::fs::read_to_string(
        root().join("fixtures/site/utf8/gzdt/202005/t20200512_1874321.html"),
    )
    .expect("seed page");
    let mut lis = String::new();
    for i in 0..n {
        let path = format!("{article_prefix}a{i}.html");
        let page = seed.replace(
            "5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动</h1>",
            &format!("测试文章{i}</h1>"),
        );
        let file = dir.join(&path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, page).expect("write article");
        lis.push_str(&format!("<li><span class=\"date\">2020-05-12</span><a href=\"{path}\" title=\"测试文章{i}\">测试文章{i}</a></li>\n"));
    }
    let list = format!("<html><head><meta charset=\"utf-8\"></head><body><div class=\"list\"><ul>\n{lis}</ul></div></body></html>");
    std::fs::write(dir.join("list.html"), list).expect("write list");
}

/// A selector file for [`small_site`] at `origin`.
pub fn small_selector(origin: &str, extra: &str) -> String {
    format!(
        r#"title = "测试站点"
start = ["{origin}/list.html"]
timezone = "Asia/Shanghai"
{extra}

[list]
item = "div.list li"
link = "a"
title = {{ css = "a", attr = "title" }}
date = "span.date"

[article]
title = "div.article h1"
date = {{ css = "div.info font", regex = '时间[:：]\s*(\d{{4}}-\d{{1,2}}-\d{{1,2}})' }}
source = {{ css = "div.info font", regex = '来源[:：]\s*(\S+)' }}
body = "div.content"
remove = ["div.share", "div.related", "script", "style"]
"#
    )
}

/// `feedbridge serve` in `dir` (reading `dir/selectors`, storing in `dir/data`) on a free
/// loopback port; returns its base URL and the process.
pub fn spawn_serve(dir: &Path) -> (String, Proc) {
    spawn_serve_with(dir, &[])
}

/// [`spawn_serve`] with more flags.
pub fn spawn_serve_with(dir: &Path, extra: &[&str]) -> (String, Proc) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "serve",
        "--selectors",
        "selectors",
        "--data",
        "data",
        "--listen",
        &listen,
    ];
    args.extend_from_slice(extra);
    let p = Proc::spawn(dir, &args);
    (format!("http://{listen}"), p)
}

/// `serve` with extra environment variables, its output discarded (a long-running server
/// whose piped log nobody reads would block once the pipe fills).
pub fn spawn_serve_env(dir: &Path, env: &[(&str, &str)]) -> (String, Proc) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--selectors",
        "selectors",
        "--data",
        "data",
        "--listen",
        &listen,
    ])
    .current_dir(dir)
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    (
        format!("http://{listen}"),
        Proc(cmd.spawn().expect("spawn feedbridge")),
    )
}

/// `GET {base}/status.json`, parsed; `None` while the server is not up.
pub async fn status_json(base: &str) -> Option<serde_json::Value> {
    let r = http()
        .get(format!("{base}/status.json"))
        .send()
        .await
        .ok()?;
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

/// Waits (at most 30 s) until the first site has a finished run and `items` stored items.
/// (Not "the last run stored N": on a seconds schedule the next run, with nothing new,
/// may replace that status before a poll sees it.)
pub async fn wait_for_items(base: &str, items: u64) {
    let done = eventually(Duration::from_secs(30), || async {
        let status = status_json(base).await?;
        let site = &status["sites"][0];
        (site["items"].as_u64()? == items && !site["last_run"].is_null()).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "no finished run with {items} stored items at {base}"
    );
}

/// Puts a new article (`202005/t20200513_{n}.html`, seed text) at the top of the UTF-8
/// fixture site's first list page.
pub fn add_article(site: &Path, n: u32, title: &str, when: &str) {
    let dir = site.join("utf8/gzdt");
    let seed =
        std::fs::read_to_string(dir.join("202005/t20200512_1874321.html")).expect("seed page");
    let page = seed
        .replace(
            "5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动</h1>",
            &format!("{title}</h1>"),
        )
        .replace("时间:2020-05-12", &format!("时间:{when}"));
    let file = format!("202005/t20200513_{n}.html");
    std::fs::write(dir.join(&file), page).expect("write article");
    let list = std::fs::read_to_string(dir.join("index.html")).expect("list page");
    let li = format!(
        "<ul>\n      <li><span class=\"date\">2020-05-13</span><a href=\"./{file}\" title=\"{title}\">{title}</a></li>"
    );
    std::fs::write(dir.join("index.html"), list.replacen("<ul>", &li, 1)).expect("write list");
}

/// The body of `GET url` as text (panics on a transport error).
pub async fn get_text(url: String) -> String {
    http()
        .get(&url)
        .send()
        .await
        .expect(&url)
        .text()
        .await
        .expect(&url)
}

/// `serve` (with `extra` flags) over a fixture-site copy served by `fixture`, its selector
/// on `schedule`; returns once the 27 articles are stored.
pub async fn serve_fixture(
    tmp: &TempDir,
    fixture: &feedbridge::fixture_server::FixtureServer,
    schedule: &str,
    extra: &[&str],
) -> (String, Proc) {
    std::fs::create_dir_all(tmp.join("selectors")).expect("mkdir");
    let sel = fixture_selector(
        &fixture.origin(),
        // Tests run on seconds schedules, which `check` refuses unless meant.
        &[
            ("schedule", &format!("\"{schedule}\"")),
            ("min_interval", "\"1s\""),
        ],
    );
    std::fs::write(tmp.join("selectors/fix.toml"), sel).expect("write selector");
    let (base, p) = spawn_serve_with(tmp.path(), extra);
    wait_for_items(&base, 27).await;
    (base, p)
}

/// Whether the real feed readers (Python feedparser, newsboat) are here. Without them a
/// test prints a SKIPPED line naming itself, unless `FEEDBRIDGE_REAL_CLIENTS=1` (CI),
/// where their absence fails it.
pub fn real_readers_or_skip(test: &str) -> bool {
    let required = std::env::var("FEEDBRIDGE_REAL_CLIENTS").is_ok_and(|v| v == "1");
    let python_ok = Command::new("python3")
        .args(["-c", "import feedparser"])
        .status()
        .is_ok_and(|s| s.success());
    let newsboat_ok = Command::new("newsboat")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(python_ok && newsboat_ok) {
        assert!(!required, "FEEDBRIDGE_REAL_CLIENTS=1 but feedparser ({python_ok}) or newsboat ({newsboat_ok}) is missing");
        eprintln!("SKIPPED {test}: install python3-feedparser and newsboat, or run .ci/run");
        return false;
    }
    true
}

/// Runs a Python script (off the async workers) and fails the test with its output
/// unless it exits 0.
pub async fn python_ok(what: &str, script: String) {
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", &script]).output())
            .await
            .expect("join")
            .expect("run python3");
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// newsboat, non-interactively: reloads `feed_url` into a fresh cache under `home` and
/// returns what `print-unread` said (the test fails if newsboat does).
pub async fn newsboat_unread(home: PathBuf, feed_url: &str) -> String {
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::write(home.join("urls"), format!("{feed_url}\n")).expect("urls");
    let (urls, cache) = (home.join("urls"), home.join("cache.db"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("newsboat")
            .args([
                "-u",
                urls.to_str().expect("utf-8 path"),
                "-c",
                cache.to_str().expect("utf-8 path"),
                "-x",
                "reload",
                "print-unread",
            ])
            .env("HOME", &home)
            .output()
    })
    .await
    .expect("join")
    .expect("run newsboat");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "newsboat {feed_url}: {stdout}{}",
        text(&out.stderr)
    );
    stdout
}
