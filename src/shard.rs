//! Sharding: splitting the sites over N `serve` nodes, so one box is no longer the limit.
//!
//! Every node reads the same selector files and keeps its own data dir; `serve --shard
//! K/N` crawls and serves only the sites whose rendezvous (highest-random-weight) hash
//! falls on shard K. Rendezvous hashing needs no ring or table: each shard scores each
//! site id and the highest score owns it, so adding shard N+1 moves only the sites that
//! now score highest there (about 1/(N+1) of them), all to the new shard, and nothing
//! else. The score is blake3 of a versioned string, so it is the same on every platform,
//! build and release (never std's `DefaultHasher`, whose output may change).
//!
//! Shards are numbered from 1 (`1/3`, `2/3`, `3/3`), as the operator counts nodes: the
//! K-th node of `feedbridge shards --nodes` is `--shard K/N`.
//!
//! [`nginx_config`] writes the reverse proxy in front of the nodes from the same hash.
//! Pure functions: the CLI reads the selectors and prints.

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

use url::Url;

/// Past this many nodes, a typo (`--shard 1/30000`) is likelier than a real fleet.
pub const MAX_SHARDS: u32 = 1024;

/// Why a shard, a node list or a proxy option is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("shard {0:?} must look like K/N, e.g. 2/3 (shard K of N, counted from 1)")]
    Syntax(String),
    #[error("shard {index}/{count}: K must be between 1 and N (shards are counted from 1)")]
    OutOfRange { index: u32, count: u32 },
    #[error("shard count {0} is more than {MAX_SHARDS}")]
    TooMany(u32),
    #[error("--nodes is empty; give name=URL pairs separated by commas, in shard order")]
    NoNodes,
    #[error("node {0:?} must look like name=http://host:port")]
    NodeSyntax(String),
    #[error("node name {0:?} must be lower-case letters, digits, '-' or '_' (at most 32), starting with a letter or digit")]
    NodeName(String),
    #[error("node name {0:?} is given twice")]
    DuplicateNode(String),
    #[error("node {name}: {url:?} {why}")]
    NodeUrl {
        name: String,
        url: String,
        why: &'static str,
    },
    #[error("{what} {value:?} cannot go into an nginx config (no spaces, quotes, ';', '{{', '}}', '#' or '$')")]
    Unsafe { what: &'static str, value: String },
}

/// Shard `index` of `count`, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count > MAX_SHARDS {
            return Err(ShardError::TooMany(count));
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// K, from 1.
    pub fn index(self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this shard crawls and serves `site_id`.
    pub fn owns(self, site_id: &str) -> bool {
        owner(site_id, self.count) == self.index
    }

    /// The shard that owns `site_id` among this one's N.
    pub fn owner_of(self, site_id: &str) -> Shard {
        Shard {
            index: owner(site_id, self.count),
            count: self.count,
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(s.chars().take(40).collect());
        let (k, n) = s.trim().split_once('/').ok_or_else(syntax)?;
        let number = |t: &str| -> Result<u32, ShardError> {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            // Digits only, so the one failure left is overflow.
            t.parse().map_err(|_| ShardError::TooMany(u32::MAX))
        };
        Shard::new(number(k)?, number(n)?)
    }
}

/// Shard `index`'s score for `site_id`. The prefix versions the scheme: changing it
/// would move every site, so it never changes within a major version.
fn score(site_id: &str, index: u32) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"feedbridge-shard-v1\0");
    h.update(&index.to_le_bytes());
    h.update(site_id.as_bytes());
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The shard (1..=count) that owns `site_id`: the one with the highest score (ties, which
/// need a 64-bit collision, go to the lower number). `count` 0 is treated as 1.
pub fn owner(site_id: &str, count: u32) -> u32 {
    (1..=count.max(1))
        .map(|k| (score(site_id, k), std::cmp::Reverse(k)))
        .max()
        .map_or(1, |(_, std::cmp::Reverse(k))| k)
}

/// One `serve` node behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// `host:port` as nginx's `server` takes it (IPv6 hosts in brackets).
    pub addr: String,
}

/// `name=http://host:port,...`: the nodes in shard order (the first is shard 1).
pub fn parse_nodes(s: &str) -> Result<Vec<Node>, ShardError> {
    let mut nodes: Vec<Node> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| ShardError::NodeSyntax(part.chars().take(80).collect()))?;
        let (name, url) = (name.trim(), url.trim());
        let name_ok = name.len() <= 32
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(ShardError::NodeName(name.chars().take(40).collect()));
        }
        if nodes.iter().any(|n| n.name == name) {
            return Err(ShardError::DuplicateNode(name.to_owned()));
        }
        let bad = |why: &'static str| ShardError::NodeUrl {
            name: name.to_owned(),
            url: url.chars().take(80).collect(),
            why,
        };
        let parsed = Url::parse(url).map_err(|_| bad("is not a URL like http://10.0.0.5:8080"))?;
        if parsed.scheme() != "http" {
            // nginx talks to the nodes; TLS belongs at nginx's public side.
            return Err(bad("must be http:// (nginx terminates TLS for the public)"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("must not carry a user or password"));
        }
        if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(
                "must be an origin only (no path): feedbridge serves at /",
            ));
        }
        let host = parsed.host_str().ok_or_else(|| bad("has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        nodes.push(Node {
            name: name.to_owned(),
            addr: format!("{host}:{port}"),
        });
    }
    if nodes.is_empty() {
        return Err(ShardError::NoNodes);
    }
    if nodes.len() > MAX_SHARDS as usize {
        return Err(ShardError::TooMany(nodes.len() as u32));
    }
    Ok(nodes)
}

/// Where the generated nginx server listens and keeps its cache.
#[derive(Debug, Clone)]
pub struct NginxOptions {
    /// nginx `listen` parameters, e.g. `80` or `127.0.0.1:8080`.
    pub listen: String,
    pub cache_dir: std::path::PathBuf,
}

fn nginx_safe(what: &'static str, value: &str) -> Result<(), ShardError> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"';{}#$\\".contains(c));
    if bad {
        return Err(ShardError::Unsafe {
            what,
            value: value.chars().take(80).collect(),
        });
    }
    Ok(())
}

/// The URL prefix a sharded node puts before its `/img/` proxy paths, so the reverse
/// proxy can send an image request to the node whose key signed it (the key is per data
/// dir: node B cannot verify node A's signature).
pub fn image_prefix(shard: Shard) -> String {
    format!("/shard/{}", shard.index)
}

/// An nginx config (http-level: include it inside `http { }`) that routes every feed and
/// site page to the node owning the site, and caches feeds so that aggregator polls are
/// answered by nginx. `site_ids` are valid site ids (`[a-z0-9][a-z0-9-]*`).
pub fn nginx_config(
    nodes: &[Node],
    site_ids: &[String],
    options: &NginxOptions,
) -> Result<String, ShardError> {
    let count = u32::try_from(nodes.len()).map_err(|_| ShardError::TooMany(u32::MAX))?;
    if count == 0 {
        return Err(ShardError::NoNodes);
    }
    if count > MAX_SHARDS {
        return Err(ShardError::TooMany(count));
    }
    nginx_safe("--listen", &options.listen)?;
    let cache_dir = options.cache_dir.display().to_string();
    nginx_safe("--cache-dir", &cache_dir)?;
    for n in nodes {
        nginx_safe("node address", &n.addr)?;
    }
    let mut out = String::new();
    let names: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} (--shard {}/{count})", n.name, i + 1))
        .collect();
    let _ = write!(
        out,
        r#"# Generated by `feedbridge shards --format nginx` for {count} node(s) and {sites} site(s):
#   {names}
# Include this file inside nginx's `http {{ }}` block (e.g. as
# /etc/nginx/conf.d/feedbridge.conf, which Debian's nginx.conf includes there), then
# `nginx -t && nginx -s reload`. Regenerate it when selector files are added or removed
# or the nodes change: a site missing from the map below is tried on every node in turn.
# Every node needs the same --base-url (this server's public URL) so that its feeds,
# /opml and image links point here.

"#,
        sites = site_ids.len(),
        names = names.join("\n#   "),
    );
    for (i, n) in nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "upstream feedbridge_{} {{\n    server {};\n    keepalive 8;\n}}",
            i + 1,
            n.addr
        );
    }
    out.push_str("# Any node: for /opml (every node lists every feed) and sites not in the map.\nupstream feedbridge_any {\n");
    for n in nodes {
        let _ = writeln!(out, "    server {};", n.addr);
    }
    out.push_str("    keepalive 8;\n}\n\n");
    let _ = write!(
        out,
        r#"proxy_cache_path {cache_dir} levels=1:2 keys_zone=feedbridge:10m max_size=1g inactive=7d use_temp_path=off;

# Feeds vary on Accept-Encoding only (br, gzip or identity; the public Host too, when
# nodes run without --base-url). Readers spell the header in many ways: it is reduced to
# the one coding the node would pick, which goes upstream and into the cache key, so a
# feed is cached at most three times. A header with q=0 in it is kept as it is.
map $http_accept_encoding $feedbridge_encoding {{
    default       "";
    "~q=0"        $http_accept_encoding;
    "~*\bbr\b"    br;
    "~*\bgzip\b"  gzip;
}}

# The site id in the URI, then the node that owns it (rendezvous hash of the id, the
# same function as `serve --shard`).
map $uri $feedbridge_site {{
    default "";
    "~^/feeds/([a-z0-9][a-z0-9-]*)\.(?:atom|rss|json)$" $1;
    "~^/sites/([a-z0-9][a-z0-9-]*)$" $1;
}}

map $feedbridge_site $feedbridge_node {{
    default feedbridge_any;
"#
    );
    let mut ids: Vec<&String> = site_ids.iter().collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let _ = writeln!(out, "    {id} feedbridge_{};", owner(id, count));
    }
    out.push_str("}\n\n");
    let _ = write!(
        out,
        r#"server {{
    listen {listen};

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    # HIT / REVALIDATED / MISS / EXPIRED / UPDATING: who answered a poll.
    add_header X-Cache-Status $upstream_cache_status always;

    # Feeds: cached for 10 s, then revalidated with the node's ETag / Last-Modified (a
    # node answers that 304 from memory). A burst of polls for an expired feed makes one
    # upstream request (lock); the others get the stale copy meanwhile (updating). The
    # node's max-age (up to an hour) is ignored here so that nginx is at most 10 s behind
    # a crawl; readers still get it. Vary is handled by the normalized coding in the key.
    # A stopped node's feeds fail (502) rather than being served stale; add
    # `error timeout http_502` to proxy_cache_use_stale to keep serving them from cache.
    location /feeds/ {{
        proxy_pass http://$feedbridge_node;
        proxy_set_header Accept-Encoding $feedbridge_encoding;
        proxy_cache feedbridge;
        proxy_cache_key "$host$uri|$feedbridge_encoding";
        proxy_ignore_headers Cache-Control Expires Vary;
        proxy_cache_valid 200 10s;
        proxy_cache_revalidate on;
        proxy_cache_lock on;
        proxy_cache_lock_timeout 10s;
        proxy_cache_use_stale updating;
        # Only for sites not in the map (feedbridge_any): the node that does not own the
        # site answers 404, so try the next.
        proxy_next_upstream error timeout http_404;
    }}

    location /sites/ {{
        proxy_pass http://$feedbridge_node;
        proxy_next_upstream error timeout http_404;
    }}

    location = /opml {{
        proxy_pass http://feedbridge_any;
        proxy_next_upstream error timeout http_502 http_503;
    }}

"#,
        listen = options.listen,
    );
    for (i, n) in nodes.iter().enumerate() {
        let k = i + 1;
        let _ = write!(
            out,
            r#"    # Node {name} (shard {k}/{count}): its proxied images (signed with its own key),
    # and its own dashboard, status.json, metrics and healthz under /nodes/{name}/.
    location {prefix}/img/ {{
        proxy_pass http://feedbridge_{k}/img/;
        proxy_cache feedbridge;
    }}
    location /nodes/{name}/ {{
        proxy_pass http://feedbridge_{k}/;
    }}

"#,
            name = n.name,
            prefix = image_prefix(Shard {
                index: k as u32,
                count
            }),
        );
    }
    out.push_str(
        r#"    # /, /status.json, /metrics, /healthz: any live node (each shows its own sites).
    location / {
        proxy_pass http://feedbridge_any;
        proxy_next_upstream error timeout http_502 http_503;
    }
}
"#,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("site-{i}")).collect()
    }

    #[test]
    fn shard_syntax_and_range() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!(" 1/1 ".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in ["", "3", "a/3", "1/", "/3", "-1/3", "1/3/4", "1.0/3", "+1/3"] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            "0/3".parse::<Shard>(),
            Err(ShardError::OutOfRange { index: 0, count: 3 })
        );
        assert_eq!(
            "4/3".parse::<Shard>(),
            Err(ShardError::OutOfRange { index: 4, count: 3 })
        );
        assert!(matches!(
            "1/99999999999".parse::<Shard>(),
            Err(ShardError::TooMany(_))
        ));
        assert!(matches!(
            "1/2000".parse::<Shard>(),
            Err(ShardError::TooMany(2000))
        ));
    }

    /// The hash must never change between builds: these owners are pinned.
    #[test]
    fn owners_are_pinned() {
        let got: Vec<u32> = ["a", "henan-gzdt", "fixture-gzdt", "site-0", "site-1"]
            .iter()
            .map(|id| owner(id, 5))
            .collect();
        assert_eq!(got, PINNED);
    }
    const PINNED: [u32; 5] = [3, 3, 2, 5, 2];

    #[test]
    fn every_site_has_exactly_one_owner_and_shards_are_balanced() {
        let ids = ids(10_000);
        let mut per = [0usize; 4];
        for id in &ids {
            let owners: Vec<u32> = (1..=4)
                .filter(|k| Shard::new(*k, 4).unwrap().owns(id))
                .collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            per[owners[0] as usize - 1] += 1;
        }
        for n in per {
            assert!((2_200..=2_800).contains(&n), "{per:?}");
        }
    }

    #[test]
    fn adding_a_shard_moves_only_its_share_and_only_to_it() {
        let ids = ids(10_000);
        let mut moved = 0;
        for id in &ids {
            let (before, after) = (owner(id, 3), owner(id, 4));
            if before != after {
                assert_eq!(
                    after, 4,
                    "{id} moved from {before} to {after}, not to the new shard"
                );
                moved += 1;
            }
        }
        // Expected 1/4 of 10,000.
        assert!((2_200..=2_800).contains(&moved), "moved {moved}");
    }

    #[test]
    fn nodes_are_parsed_in_order_and_checked() {
        let nodes =
            parse_nodes("a=http://127.0.0.1:8081, b=http://[::1]:8082/,c=http://n3").unwrap();
        let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
        assert_eq!(addrs, ["127.0.0.1:8081", "[::1]:8082", "n3:80"]);
        assert_eq!(parse_nodes(""), Err(ShardError::NoNodes));
        assert!(matches!(parse_nodes("a"), Err(ShardError::NodeSyntax(_))));
        assert!(matches!(
            parse_nodes("A=http://x"),
            Err(ShardError::NodeName(_))
        ));
        assert!(matches!(
            parse_nodes("a=http://x,a=http://y"),
            Err(ShardError::DuplicateNode(_))
        ));
        for bad in [
            "https://x",
            "http://x/feeds",
            "http://u:p@x",
            "x:80",
            "http://x/?a",
        ] {
            assert!(
                matches!(
                    parse_nodes(&format!("a={bad}")),
                    Err(ShardError::NodeUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn nginx_map_follows_the_hash() {
        let nodes =
            parse_nodes("a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3").unwrap();
        let options = NginxOptions {
            listen: "127.0.0.1:9".into(),
            cache_dir: "/tmp/cache".into(),
        };
        let ids = ids(50);
        let conf = nginx_config(&nodes, &ids, &options).unwrap();
        for id in &ids {
            let line = format!("\n    {id} feedbridge_{};\n", owner(id, 3));
            assert!(conf.contains(&line), "{line}");
        }
        assert!(
            conf.contains("location /shard/2/img/ {\n        proxy_pass http://feedbridge_2/img/;")
        );
        assert!(conf.contains("proxy_cache_revalidate on;"));
        assert!(conf.contains("proxy_cache_lock on;"));
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
        let evil = NginxOptions {
            listen: "80; include /etc/passwd".into(),
            ..options
        };
        assert!(matches!(
            nginx_config(&nodes, &ids, &evil),
            Err(ShardError::Unsafe { .. })
        ));
    }
}
