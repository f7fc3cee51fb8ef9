//! `feedbridge serve` against hostile clients: sockets that never finish a request, more
//! sockets than the cap, a Host header that changes on every request, and feed names
//! full of control characters.

use std::io::Read;
use std::time::{Duration, Instant};

use feedbridge::fixture_server::FixtureServer;
use reqwest::header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{eventually, fixture_site_copy, get_text, http, serve_fixture, TempDir};

fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the socket (EOF or reset), at most `limit`; what was
/// read, or `None` when the socket was still open at the limit.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_sockets_are_closed_after_the_header_timeout() {
    let tmp = TempDir::new("sockets-slowloris");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &["--header-timeout", "2s"]).await;
    let started = Instant::now();
    let mut sockets = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(addr(&base)).await.unwrap();
        // A request line and part of the headers, then nothing.
        let partial = format!("GET /feeds/fix.atom HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ");
        s.write_all(partial.as_bytes()).await.unwrap();
        sockets.push(s);
    }
    // Legit clients are served throughout the attack.
    for _ in 0..3 {
        let r = http().get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // Every stalled socket is closed within the 2 s header timeout plus slack.
    let closed = futures_util::future::join_all(
        sockets
            .iter_mut()
            .map(|s| read_until_closed(s, Duration::from_secs(8))),
    )
    .await;
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(still_open, 0, "slowloris sockets left open after 8 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "closed before the header timeout: {elapsed:?}"
    );
    let r = http().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_open_connection_cap_sockets_get_503_and_idle_ones_are_closed() {
    let tmp = TempDir::new("sockets-cap");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(
        &tmp,
        &fixture,
        "0 0 1 1 *",
        &["--max-open-connections", "50", "--idle-timeout", "2s"],
    )
    .await;
    // The status polls' connections are gone once a fresh request is not turned away.
    let settled = eventually(Duration::from_secs(10), || async {
        let r = http().get(format!("{base}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(settled.is_some());

    let mut sockets = Vec::new();
    for _ in 0..60 {
        sockets.push(TcpStream::connect(addr(&base)).await.unwrap());
    }
    // Idle sockets within the cap are closed by the idle timeout without a word; the
    // excess ones get a 503 at once.
    let answers = futures_util::future::join_all(
        sockets
            .iter_mut()
            .map(|s| read_until_closed(s, Duration::from_secs(8))),
    )
    .await;
    assert!(
        answers.iter().all(Option::is_some),
        "idle sockets left open"
    );
    let rejected: Vec<String> = answers
        .iter()
        .flatten()
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        rejected.len() >= 10,
        "{} of 60 sockets turned away",
        rejected.len()
    );
    for a in &rejected {
        assert!(a.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{a}");
        assert!(a.contains("\r\nRetry-After: 1\r\n"), "{a}");
        assert!(a.contains("\r\nConnection: close\r\n"), "{a}");
    }
    // The server keeps serving once the idle sockets are gone.
    let served = eventually(Duration::from_secs(10), || async {
        let r = http().get(format!("{base}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(served.is_some());
    let feed = get_text(format!("{base}/feeds/fix.atom")).await;
    assert!(feed.contains("</feed>"));
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotating_host_gets_its_own_self_link_from_one_rendering() {
    let tmp = TempDir::new("sockets-host");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let client = http();
    let url = format!("{base}/feeds/fix.atom");
    let get = |host: String, encoding: Option<&'static str>| {
        let mut r = client.get(&url).header(header::HOST, host);
        if let Some(e) = encoding {
            r = r.header(header::ACCEPT_ENCODING, e);
        }
        r.send()
    };
    let mut template: Option<Vec<u8>> = None;
    let mut etags = std::collections::HashSet::new();
    for i in 0..200 {
        let host = format!("Feeds-{i}.Example.test:{}", 8000 + i);
        let lower = host.to_ascii_lowercase();
        let r = get(host.clone(), None).await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        let length: usize = r.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let identity = r.bytes().await.unwrap().to_vec();
        assert_eq!(identity.len(), length);
        let xml = String::from_utf8(identity.clone()).unwrap();
        let self_link = format!(
            r#"<link href="http://{lower}/feeds/fix.atom" rel="self" type="application/atom+xml"/>"#
        );
        assert!(xml.contains(&self_link), "{}", &xml[..600]);
        assert_eq!(xml.matches(&lower).count(), 1);
        // Apart from the self link, every host gets the same bytes.
        let neutral = xml.replace(&lower, "HOST").into_bytes();
        match &template {
            None => template = Some(neutral),
            Some(t) => assert!(*t == neutral, "host {host} got other content"),
        }
        assert!(etags.insert(etag.clone()), "ETag {etag} repeated");

        // The same host again: same tag, and 304 on it.
        let again = client
            .get(&url)
            .header(header::HOST, host.clone())
            .header(header::IF_NONE_MATCH, etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);

        let gz = get(host.clone(), Some("gzip")).await.unwrap();
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let gz_tag = gz.headers()[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(gz_tag, format!("{}-gz\"", etag.trim_end_matches('"')));
        assert_eq!(gunzip(&gz.bytes().await.unwrap()), identity);

        if i % 20 == 0 {
            let br = get(host.clone(), Some("br, gzip")).await.unwrap();
            let encoding = br.headers()[header::CONTENT_ENCODING]
                .to_str()
                .unwrap()
                .to_owned();
            let body = br.bytes().await.unwrap();
            let decoded = match encoding.as_str() {
                "br" => unbrotli(&body),
                "gzip" => gunzip(&body),
                other => panic!("unexpected encoding {other}"),
            };
            assert_eq!(decoded, identity);
        }
    }
    // 200 hosts, one rendering.
    let metrics = get_text(format!("{base}/metrics")).await;
    assert!(
        metrics.contains("feedbridge_feed_renders_total{site=\"fix\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_never_echoes_control_characters() {
    let tmp = TempDir::new("sockets-404");
    let fixture = FixtureServer::start(&fixture_site_copy(&tmp), 0)
        .await
        .unwrap();
    let (base, _p) = serve_fixture(&tmp, &fixture, "0 0 1 1 *", &[]).await;
    let long = "a".repeat(5000);
    for name in [
        "%00evil%1b%5B31m%0d%0aX-Injected:%201.atom",
        "%E2%80%AEtxt.atom%E2%81%A6",
        "%C2%85%7Fnel.atom",
        "%FF%FE.atom",
        long.as_str(),
    ] {
        let r = http()
            .get(format!("{base}/feeds/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{name}");
        let body = r.text().await.unwrap();
        assert!(body.starts_with("no such feed: "), "{body:?}");
        let shown = body.trim_end_matches('\n');
        assert!(
            !shown.chars().any(|c| c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
            "{body:?}"
        );
        assert!(shown.chars().count() <= 120, "{}", shown.len());
    }
}
