//! Three `serve --shard K/3` nodes behind the nginx config `feedbridge shards` writes, run
//! as a real nginx on loopback: every feed reachable, each site crawled by one node,
//! polls answered by nginx's cache, images from the node that signed them, and a stopped
//! node takes only its own feeds down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use feedbridge::fixture_server::FixtureServer;
use feedbridge::shard::owner;
use reqwest::header;

use crate::support::{
    eventually, free_port, http, root, run, small_selector, small_site, status_json, text, Proc,
    TempDir,
};

const SITES: usize = 12;
const ARTICLES: usize = 2;
const NODES: u32 = 3;

/// nginx, from PATH or where distributions put it (Debian's /usr/sbin is not on a
/// non-root PATH). Without it the test prints a SKIPPED line, unless
/// `FEEDBRIDGE_REAL_CLIENTS=1` (CI), where its absence fails the test.
fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    let required = std::env::var("FEEDBRIDGE_REAL_CLIENTS").is_ok_and(|v| v == "1");
    let candidates = [
        "nginx",
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
        "/opt/homebrew/bin/nginx",
    ];
    let found = candidates.iter().map(PathBuf::from).find(|p| {
        Command::new(p)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            !required,
            "FEEDBRIDGE_REAL_CLIENTS=1 but nginx is not installed (apt-get install nginx)"
        );
        eprintln!("SKIPPED {test}: install nginx, or run .ci/run");
    }
    found
}

/// An nginx master in the foreground, stopped (fast shutdown, so its workers go too) on
/// drop.
struct Nginx(Child);

impl Nginx {
    fn start(bin: &Path, dir: &Path, snippet: &Path) -> Nginx {
        let d = dir.display();
        // As root (CI containers) the workers would run as `nobody`, who cannot write here.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| text(&o.stdout).trim() == "0");
        let user = if as_root { "user root;\n" } else { "" };
        let conf = format!(
            "{user}worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n  fastcgi_temp_path {d}/tmp-fastcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n  scgi_temp_path {d}/tmp-scgi;\n  include {};\n}}\n",
            snippet.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let test = Command::new(bin)
            .args(["-t", "-p"])
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .output()
            .expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx refuses the generated config: {}",
            text(&test.stderr)
        );
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn site_id(i: usize) -> String {
    format!("site-{i}")
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_behind_nginx() {
    let Some(nginx_bin) = nginx_or_skip("three_shards_behind_nginx") else {
        return;
    };
    let tmp = TempDir::new("shards");
    let sites_dir = tmp.join("site");
    let png = root().join("fixtures/site/utf8/gzdt/202005/W020200512083114.png");
    for i in 0..SITES {
        let dir = sites_dir.join(format!("s{i}"));
        small_site(&dir, ARTICLES, "");
        // The seed article's own image, which `images = "proxy"` sends through /img/.
        std::fs::copy(&png, dir.join("W020200512083114.png")).expect("copy png");
    }
    let fixture = FixtureServer::start(&sites_dir, 0).await.expect("fixture");
    let selectors = tmp.join("selectors");
    std::fs::create_dir_all(&selectors).expect("mkdir");
    for i in 0..SITES {
        let origin = format!("{}/s{i}", fixture.origin());
        let rules = small_selector(
            &origin,
            "schedule = \"0 0 1 1 *\"\ndelay = \"0s\"\nimages = \"proxy\"",
        );
        std::fs::write(selectors.join(format!("{}.toml", site_id(i))), rules).expect("write");
    }
    let owners: Vec<u32> = (0..SITES).map(|i| owner(&site_id(i), NODES)).collect();
    for k in 1..=NODES {
        assert!(owners.contains(&k), "shard {k} owns none of {owners:?}");
    }

    let public_port = free_port();
    let public = format!("http://127.0.0.1:{public_port}");
    let mut nodes: Vec<(String, Proc)> = Vec::new();
    for k in 1..=NODES {
        let dir = tmp.join(&format!("node{k}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let listen = format!("127.0.0.1:{}", free_port());
        let shard = format!("{k}/{NODES}");
        let p = Proc::spawn(
            &dir,
            &[
                "serve",
                "--selectors",
                selectors.to_str().expect("utf-8 path"),
                "--data",
                "data",
                "--listen",
                &listen,
                "--base-url",
                &public,
                "--shard",
                &shard,
            ],
        );
        nodes.push((format!("http://{listen}"), p));
    }

    // Each node lists exactly its own sites, says which shard it is, and crawls them.
    for (k, (base, _)) in (1..=NODES).zip(&nodes) {
        let mut mine: Vec<String> = (0..SITES)
            .filter(|i| owners[*i] == k)
            .map(site_id)
            .collect();
        mine.sort();
        let done = eventually(Duration::from_secs(60), || async {
            let s = status_json(base).await?;
            let sites = s["sites"].as_array()?;
            let ready = sites.len() == mine.len()
                && sites.iter().all(|x| {
                    x["items"].as_u64() == Some(ARTICLES as u64) && !x["last_run"].is_null()
                });
            ready.then_some(s)
        })
        .await
        .unwrap_or_else(|| panic!("node {k} did not crawl its {} sites", mine.len()));
        assert_eq!(done["shard"], format!("{k}/{NODES}"));
        let ids: Vec<&str> = done["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .filter_map(|x| x["id"].as_str())
            .collect();
        assert_eq!(ids, mine, "node {k}");
        let page = http()
            .get(format!("{base}/"))
            .send()
            .await
            .expect("dashboard");
        assert!(page
            .text()
            .await
            .expect("body")
            .contains(&format!("shard {k}/{NODES}")));
    }
    // Each site crawled by exactly one node: one read of its list page in all.
    for i in 0..SITES {
        let reads = fixture.hits_under(&format!("/s{i}/list.html")).len();
        assert_eq!(reads, 1, "site {i}'s list page was read {reads} times");
    }

    // A node asked for another shard's feed names the owner.
    let (other_id, other_owner) = (0..SITES)
        .find(|i| owners[*i] != 1)
        .map(|i| (site_id(i), owners[i]))
        .expect("a site off shard 1");
    let r = http()
        .get(format!("{}/feeds/{other_id}.atom", nodes[0].0))
        .send()
        .await
        .expect("misrouted");
    assert_eq!(r.status(), 404);
    let why = r.text().await.expect("body");
    assert!(
        why.contains(&format!("served by shard {other_owner}/{NODES}")),
        "{why}"
    );

    // The nginx config from the same selectors, in front of the three nodes.
    let node_list = nodes
        .iter()
        .enumerate()
        .map(|(i, (base, _))| format!("n{}={base}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let nginx_dir = tmp.join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("mkdir");
    let out = run(&[
        "shards",
        "--nodes",
        &node_list,
        "--selectors",
        selectors.to_str().expect("utf-8 path"),
        "--format",
        "nginx",
        "--listen",
        &format!("127.0.0.1:{public_port}"),
        "--cache-dir",
        nginx_dir.join("cache").to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snippet = nginx_dir.join("feedbridge.conf");
    std::fs::write(&snippet, &out.stdout).expect("write snippet");
    let _nginx = Nginx::start(&nginx_bin, &nginx_dir, &snippet);
    let up = eventually(Duration::from_secs(10), || async {
        let r = http().get(format!("{public}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(up.is_some(), "nginx did not come up on {public}");

    // Every feed through nginx; its images from the node that signed them.
    // The fixture image's enclosure (the feed's other images are never asked for: one is
    // on a non-loopback host).
    let img_re = regex::Regex::new(r#"<link href="([^"]+\.png)" rel="enclosure""#).expect("regex");
    for (i, shard) in owners.iter().enumerate() {
        let url = format!("{public}/feeds/{}.atom", site_id(i));
        let r = http().get(&url).send().await.expect(&url);
        assert_eq!(r.status(), 200, "{url}");
        let feed = r.text().await.expect("feed");
        assert_eq!(feed.matches("<entry").count(), ARTICLES, "{url}");
        let src = img_re
            .captures(&feed)
            .unwrap_or_else(|| panic!("{url}: no PNG enclosure"))[1]
            .to_owned();
        let prefix = format!("{public}/shard/{shard}/img/");
        assert!(src.starts_with(&prefix), "{src} not under {prefix}");
        let img = http().get(&src).send().await.expect(&src);
        assert_eq!(img.status(), 200, "{src}");
        assert_eq!(img.headers()[header::CONTENT_TYPE], "image/png");
        assert_eq!(
            img.bytes().await.expect("png").as_ref(),
            std::fs::read(&png).expect("png")
        );
        // Without nginx: the owner answers its prefixed path itself; another node's key
        // does not verify the signature.
        let path = src.strip_prefix(&public).expect("under the public URL");
        let own = &nodes[*shard as usize - 1].0;
        let direct = http().get(format!("{own}{path}")).send().await.expect(path);
        assert_eq!(direct.status(), 200, "{own}{path}");
        let unprefixed = path.replacen(&format!("/shard/{shard}"), "", 1);
        let other = &nodes[(*shard as usize) % nodes.len()].0;
        let r = http()
            .get(format!("{other}{unprefixed}"))
            .send()
            .await
            .expect(path);
        assert_eq!(r.status(), 404, "{other}{unprefixed}");
    }

    // One OPML from any node lists every feed under the public URL.
    let opml = http()
        .get(format!("{public}/opml"))
        .send()
        .await
        .expect("opml")
        .text()
        .await
        .expect("opml");
    for i in 0..SITES {
        let xml_url = format!("xmlUrl=\"{public}/feeds/{}.atom\"", site_id(i));
        assert!(opml.contains(&xml_url), "{xml_url} missing from {opml}");
    }
    assert_eq!(opml.matches("<outline").count(), SITES);

    // A site added after the config was written: its owner alone picks it up (the reload
    // keeps the shard), and nginx, which has no map entry for it, finds it by trying the
    // nodes in turn.
    let new_id = site_id(SITES);
    let new_owner = owner(&new_id, NODES);
    small_site(&sites_dir.join(format!("s{SITES}")), ARTICLES, "");
    let rules = small_selector(
        &format!("{}/s{SITES}", fixture.origin()),
        "schedule = \"0 0 1 1 *\"\ndelay = \"0s\"",
    );
    std::fs::write(selectors.join(format!("{new_id}.toml")), rules).expect("write");
    let owner_base = &nodes[new_owner as usize - 1].0;
    let crawled = eventually(Duration::from_secs(30), || async {
        let s = status_json(owner_base).await?;
        s["sites"]
            .as_array()?
            .iter()
            .find(|x| x["id"] == new_id.as_str() && x["items"].as_u64() == Some(ARTICLES as u64))?;
        Some(())
    })
    .await;
    assert!(
        crawled.is_some(),
        "shard {new_owner} did not pick up {new_id}"
    );
    let url = format!("{public}/feeds/{new_id}.atom");
    let r = http().get(&url).send().await.expect(&url);
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(
        r.text().await.expect("feed").matches("<entry").count(),
        ARTICLES
    );
    for (k, (base, _)) in (1..=NODES).zip(&nodes) {
        let s = status_json(base).await.expect("status");
        let listed = s["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .any(|x| x["id"] == new_id.as_str());
        assert_eq!(listed, k == new_owner, "node {k} lists {new_id}: {listed}");
    }
    let reads = fixture.hits_under(&format!("/s{SITES}/list.html")).len();
    assert_eq!(reads, 1, "the new site's list page was read {reads} times");

    // A poll with the ETag is answered 304 by nginx; readers' different spellings of
    // Accept-Encoding share one cached copy.
    let url = format!("{public}/feeds/{}.atom", site_id(0));
    let first = http()
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip, deflate")
        .send()
        .await
        .expect(&url);
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
    let etag = first.headers()[header::ETAG].clone();
    let again = http()
        .get(&url)
        .header(header::ACCEPT_ENCODING, "deflate,gzip")
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .expect(&url);
    assert_eq!(again.status(), 304);
    let by = again.headers()["x-cache-status"].to_str().expect("ascii");
    assert!(by == "HIT" || by == "REVALIDATED", "304 came from {by}");

    // A burst of polls for a feed nginx has not cached makes one request to its node
    // (proxy_cache_lock); the rest wait and get the cached copy.
    let burst_id = site_id(0);
    let burst_node = &nodes[owners[0] as usize - 1].0;
    let url = format!("{public}/feeds/{burst_id}.json");
    let polls: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                http()
                    .get(&url)
                    .header(header::ACCEPT_ENCODING, "gzip")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for p in polls {
        assert_eq!(p.await.expect("join").expect("poll"), 200);
    }
    let metrics = http()
        .get(format!("{burst_node}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics");
    let upstream: f64 = metrics
        .lines()
        .filter(|l| l.contains("route=\"/feeds/{id}.json\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        upstream, 1.0,
        "the node saw {upstream} requests for 20 polls"
    );

    // Node 2 stops: its feeds fail, every other feed is still served (asked in RSS, which
    // nginx has not cached, so the answers are the nodes' own).
    let (_, stopped) = &mut nodes[1];
    stopped.sigterm();
    assert!(
        stopped.wait_for(Duration::from_secs(15)).is_some(),
        "node 2 did not stop"
    );
    for (i, shard) in owners.iter().enumerate() {
        let url = format!("{public}/feeds/{}.rss", site_id(i));
        let status = http().get(&url).send().await.expect(&url).status();
        if *shard == 2 {
            assert!(
                status.is_server_error(),
                "{url}: {status} from a stopped node"
            );
        } else {
            assert_eq!(status, 200, "{url}");
        }
    }
}
