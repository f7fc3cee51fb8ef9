//! Which URLs may be fetched, decided in one place (the fetcher and extraction both ask).
//!
//! Content is hostile: a page can link to `file:///etc/passwd` or to a database on the
//! crawler's own loopback, and whatever the crawler reads ends up in a public feed. Rules:
//!
//! 1. `file://` only where the operator wrote it (`start`, `feed`, preview's `--url`).
//!    Every URL found in content (links, `next`, `<base href>`, images, upstream entries,
//!    redirects) must be http(s): [`found_url`].
//! 2. A host that is, or resolves to, a non-public address ([`AddrClass`]) is refused
//!    unless one of the operator's own hosts is in that class: an intranet site may crawl
//!    its intranet, a site on 127.0.0.1 (the fixture site, tests) may fetch loopback.
//!    Names are checked when connecting ([`PolicyResolver`] filters what DNS answered, so
//!    a rebinding answer is caught); IP literals skip DNS, so [`UrlPolicy::check`] and
//!    [`check_redirect`] refuse them before each request and redirect hop.
//!
//! Not covered: with an HTTP(S)_PROXY in the environment the proxy resolves targets, so
//! only the scheme and IP-literal checks apply to named hosts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

/// Where an address leads. Everything but `Public` needs the operator's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrClass {
    Public,
    /// 127/8, ::1.
    Loopback,
    /// RFC 1918, CGNAT 100.64/10 (inside a carrier: not the open internet either),
    /// ULA fc00::/7 and the old site-local fec0::/10.
    Private,
    /// 169.254/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// 0/8 and `::`: Linux connects them to the local host.
    Unspecified,
    /// Multicast, broadcast, 240/4: never a web server.
    Special,
}

impl AddrClass {
    pub fn of(ip: IpAddr) -> AddrClass {
        match ip {
            IpAddr::V4(v4) => v4_class(v4),
            IpAddr::V6(v6) => v6_class(v6),
        }
    }

    /// The class of an IP-literal host; a name's class is what it resolves to, which
    /// only the connect-time check can know (`localhost` included: one path for names).
    pub fn of_host(host: &Host<&str>) -> Option<AddrClass> {
        match host {
            Host::Ipv4(ip) => Some(v4_class(*ip)),
            Host::Ipv6(ip) => Some(v6_class(*ip)),
            Host::Domain(_) => None,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::fmt::Display for AddrClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddrClass::Public => "public",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Special => "multicast/broadcast/reserved",
        })
    }
}

fn v4_class(ip: Ipv4Addr) -> AddrClass {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if a == 0 {
        AddrClass::Unspecified
    } else if ip.is_private() || (a == 100 && b & 0xc0 == 64) {
        AddrClass::Private
    } else if ip.is_link_local() {
        AddrClass::LinkLocal
    } else if ip.is_multicast() || a >= 240 {
        AddrClass::Special
    } else {
        AddrClass::Public
    }
}

fn v6_class(ip: Ipv6Addr) -> AddrClass {
    if ip.is_unspecified() {
        return AddrClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    let s = ip.segments();
    // Mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms
    // reach the embedded IPv4 address.
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return v4_class(Ipv4Addr::new(a, b, c, d));
    }
    match s[0] {
        x if x & 0xfe00 == 0xfc00 || x & 0xffc0 == 0xfec0 => AddrClass::Private,
        x if x & 0xffc0 == 0xfe80 => AddrClass::LinkLocal,
        x if x & 0xff00 == 0xff00 => AddrClass::Special,
        _ => AddrClass::Public,
    }
}

/// A set of classes a site may reach; public is always in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AddrClasses(u8);

impl AddrClasses {
    pub const PUBLIC_ONLY: AddrClasses = AddrClasses(0);

    pub fn with(self, class: AddrClass) -> AddrClasses {
        AddrClasses(self.0 | class.bit())
    }

    pub fn allows(self, class: AddrClass) -> bool {
        class == AddrClass::Public || self.0 & class.bit() != 0
    }
}

/// Why a URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{scheme}: URLs are fetched only where the operator wrote them; links found in content must be http(s)")]
    Scheme { scheme: String },
    #[error(
        "{host} is a non-public ({class}) address, and none of this site's own start/feed hosts is"
    )]
    Address { host: String, class: AddrClass },
    #[error("{0:?} is not a URL")]
    Invalid(String),
}

/// One site's policy: the URLs its operator wrote and the classes their hosts are in.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    pub allow: AddrClasses,
    operator: Arc<[Url]>,
}

impl UrlPolicy {
    /// From the operator's URLs; IP-literal hosts only (see [`Self::resolved`]).
    pub fn new(operator: impl IntoIterator<Item = Url>) -> UrlPolicy {
        let operator: Arc<[Url]> = operator.into_iter().collect();
        let allow = operator
            .iter()
            .filter_map(|u| AddrClass::of_host(&u.host()?))
            .fold(AddrClasses::PUBLIC_ONLY, AddrClasses::with);
        UrlPolicy { allow, operator }
    }

    /// [`Self::new`], plus the classes the operator's host *names* resolve to, so an
    /// intranet name keeps its intranet. Resolved once per run; a failed or slow (5 s)
    /// lookup adds nothing (the start fetch then fails on its own).
    pub async fn resolved(operator: impl IntoIterator<Item = Url>) -> UrlPolicy {
        let mut policy = UrlPolicy::new(operator);
        let mut names: Vec<(&str, u16)> = policy
            .operator
            .iter()
            .filter_map(|u| match (u.host()?, u.port_or_known_default()?) {
                (Host::Domain(name), port) => Some((name, port)),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut allow = policy.allow;
        for name in names {
            let lookup = tokio::net::lookup_host(name);
            if let Ok(Ok(addrs)) = tokio::time::timeout(Duration::from_secs(5), lookup).await {
                for a in addrs {
                    allow = allow.with(AddrClass::of(a.ip()));
                }
            }
        }
        policy.allow = allow;
        policy
    }

    pub fn is_operator_url(&self, url: &Url) -> bool {
        self.operator.iter().any(|u| u == url)
    }

    /// Before a request: the scheme (file only where the operator wrote it) and an
    /// IP-literal host; names are checked by [`PolicyResolver`] when connecting.
    pub fn check(&self, url: &Url) -> Result<(), Refusal> {
        if url.scheme() == "file" && self.is_operator_url(url) {
            return Ok(());
        }
        check_redirect(self.allow, url)
    }
}

/// A found or redirect URL: http(s), and an IP-literal host in an allowed class.
pub fn check_redirect(allow: AddrClasses, url: &Url) -> Result<(), Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme {
            scheme: url.scheme().to_owned(),
        });
    }
    match url.host() {
        Some(host) => match AddrClass::of_host(&host) {
            Some(class) if !allow.allows(class) => Err(Refusal::Address {
                host: host.to_string(),
                class,
            }),
            _ => Ok(()),
        },
        None => Err(Refusal::Invalid(url.to_string())),
    }
}

/// A URL found in content (`raw`, relative to `base`): joined, and only when http(s).
pub fn found_url(base: &Url, raw: &str) -> Result<Url, Refusal> {
    let url = base
        .join(raw.trim())
        .map_err(|_| Refusal::Invalid(raw.to_owned()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Refusal::Scheme {
            scheme: other.to_owned(),
        }),
    }
}

/// What DNS answered for `host`, less the addresses in classes not allowed; an error when
/// nothing is left, so the connection is never attempted.
pub fn filter_addrs(
    host: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow: AddrClasses,
) -> Result<Vec<SocketAddr>, Refusal> {
    let mut refused = None;
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| {
            let class = AddrClass::of(a.ip());
            let ok = allow.allows(class);
            if !ok {
                refused.get_or_insert(class);
            }
            ok
        })
        .collect();
    match (kept.is_empty(), refused) {
        (true, Some(class)) => Err(Refusal::Address {
            host: host.to_owned(),
            class,
        }),
        _ => Ok(kept),
    }
}

/// The connect-time check: reqwest asks it for every name it connects to.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver {
    pub allow: AddrClasses,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = filter_addrs(&host, addrs, allow)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddrClass::*;

    fn class(s: &str) -> AddrClass {
        AddrClass::of(s.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        for (ip, c) in [
            ("8.8.8.8", Public),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.128.0.1", Public),
            ("169.254.169.254", LinkLocal),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("224.0.0.1", Special),
            ("255.255.255.255", Special),
            ("240.0.0.1", Special),
        ] {
            assert_eq!(class(ip), c, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes_and_embedded_ipv4() {
        for (ip, c) in [
            ("2001:4860::8888", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fd00::1", Private),
            ("fc12::1", Private),
            ("fec0::1", Private),
            ("fe80::1", LinkLocal),
            ("ff02::1", Special),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::10.0.0.1", Private),
            ("64:ff9b::8.8.8.8", Public),
        ] {
            assert_eq!(class(ip), c, "{ip}");
        }
    }

    #[test]
    fn literal_hosts_are_classified_without_dns() {
        let of = |u: &str| AddrClass::of_host(&Url::parse(u).unwrap().host().unwrap());
        assert_eq!(of("http://127.1/"), Some(Loopback), "short form");
        assert_eq!(of("http://2130706433/"), Some(Loopback), "decimal form");
        assert_eq!(of("http://0x7f.0.0.1/"), Some(Loopback), "hex form");
        assert_eq!(of("http://[::ffff:7f00:1]/"), Some(Loopback));
        assert_eq!(of("http://localhost/"), None, "names need DNS");
    }

    #[test]
    fn same_class_exception() {
        let url = |s: &str| Url::parse(s).unwrap();
        let public = UrlPolicy::new([url("http://www.example.gov.cn/list/")]);
        let lo = UrlPolicy::new([url("http://127.0.0.1:8181/list/")]);
        let intranet = UrlPolicy::new([url("http://10.0.0.5/"), url("file:///srv/list.html")]);
        for target in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://127.0.0.1:6379/",
        ] {
            assert!(public.check(&url(target)).is_err(), "{target}");
            assert!(lo.check(&url(target)).is_ok(), "{target}");
            assert!(intranet.check(&url(target)).is_err(), "{target}");
        }
        assert!(intranet.check(&url("http://192.168.1.1/")).is_ok());
        for refused in [
            "http://0.0.0.0:8181/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/",
        ] {
            assert!(lo.check(&url(refused)).is_err(), "{refused}");
            assert!(intranet.check(&url(refused)).is_err(), "{refused}");
        }
        assert!(public.check(&url("https://other.example.com/a")).is_ok());
        // file: only as the operator wrote it, never found or redirected to.
        assert!(intranet.check(&url("file:///srv/list.html")).is_ok());
        assert!(intranet.check(&url("file:///etc/passwd")).is_err());
        assert!(lo.check(&url("file:///etc/passwd")).is_err());
        assert!(lo.check(&url("ftp://127.0.0.1/")).is_err());
    }

    #[tokio::test]
    async fn an_operator_name_brings_the_class_it_resolves_to() {
        let policy =
            UrlPolicy::resolved([Url::parse("http://localhost:8181/list/").unwrap()]).await;
        assert!(policy.allow.allows(Loopback));
        assert!(!policy.allow.allows(Private));
    }

    #[test]
    fn found_urls_are_http_only() {
        let base = Url::parse("http://www.example.gov.cn/gzdt/").unwrap();
        assert_eq!(
            found_url(&base, " ../a.html ").unwrap().as_str(),
            "http://www.example.gov.cn/a.html"
        );
        for bad in [
            "file:///etc/passwd",
            "FILE:///proc/self/environ",
            "javascript:alert(1)",
            "data:text/html,x",
            "gopher://127.0.0.1:6379/",
        ] {
            assert!(
                matches!(found_url(&base, bad), Err(Refusal::Scheme { .. })),
                "{bad}"
            );
        }
        let file_page = Url::parse("file:///srv/list.html").unwrap();
        assert!(
            found_url(&file_page, "a.html").is_err(),
            "relative to a file page"
        );
    }

    #[test]
    fn resolver_filter_drops_disallowed_answers() {
        let a = |s: &str| SocketAddr::new(s.parse().unwrap(), 80);
        let answer = [a("127.0.0.1"), a("93.184.216.34")];
        let kept = filter_addrs("rebind.example", answer, AddrClasses::PUBLIC_ONLY).unwrap();
        assert_eq!(kept, [a("93.184.216.34")]);
        assert!(matches!(
            filter_addrs("rebind.example", [a("127.0.0.1")], AddrClasses::PUBLIC_ONLY),
            Err(Refusal::Address {
                class: Loopback,
                ..
            })
        ));
        let lo = AddrClasses::PUBLIC_ONLY.with(Loopback);
        assert!(filter_addrs("x", [a("::1")], lo).is_ok());
        assert!(filter_addrs("x", [a("0.0.0.0")], lo).is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_a_name_that_resolves_to_loopback() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = || reqwest::dns::Name::from_str("localhost").unwrap();
        let public = PolicyResolver {
            allow: AddrClasses::PUBLIC_ONLY,
        };
        let err = public.resolve(name()).await.err().unwrap();
        assert!(err.downcast_ref::<Refusal>().is_some(), "{err}");
        let lo = PolicyResolver {
            allow: AddrClasses::PUBLIC_ONLY.with(Loopback),
        };
        assert!(lo.resolve(name()).await.unwrap().next().is_some());
    }
}
