//! Byte-to-text decoding in the WHATWG order, because GBK sites break every tool that
//! trusts only the HTTP header (or only the meta tag).
//!
//! Order: byte-order mark, then the operator's `encoding` override, then the HTTP
//! `charset`, then a `<meta charset>` / `http-equiv` prescan, then statistical detection
//! (chardetng, given the host's top-level domain as a hint). `gb2312` is read as GBK, whose decoder
//! is the GB18030 one, a superset.

use std::borrow::Cow;
use std::sync::LazyLock;

use encoding_rs::Encoding;
use regex::bytes::Regex;

static META_CHARSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i-u)<meta\s[^>]*?charset\s*=\s*["']?\s*([a-z0-9_:.\-]+)"#)
        .expect("static regex")
});

/// How the encoding was chosen, for `preview` and warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Bom,
    Override,
    Header,
    Meta,
    Detected,
}

/// Decodes `bytes` to text; malformed sequences become U+FFFD, never an error.
/// `tld` (the host's last label, e.g. `b"cn"`) steers detection between GBK and Big5.
pub fn decode<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
    override_encoding: Option<&'static Encoding>,
    tld: Option<&[u8]>,
) -> (Cow<'a, str>, &'static Encoding, Decided) {
    let (encoding, decided) = choose(bytes, content_type, override_encoding, tld);
    let (text, _had_errors) = encoding.decode_with_bom_removal(bytes);
    (text, encoding, decided)
}

fn choose(
    bytes: &[u8],
    content_type: Option<&str>,
    override_encoding: Option<&'static Encoding>,
    tld: Option<&[u8]>,
) -> (&'static Encoding, Decided) {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return (enc, Decided::Bom);
    }
    if let Some(enc) = override_encoding {
        return (enc, Decided::Override);
    }
    if let Some(enc) = content_type.and_then(header_charset) {
        return (enc, Decided::Header);
    }
    let head = &bytes[..bytes.len().min(4096)];
    if let Some(enc) = META_CHARSET
        .captures(head)
        .and_then(|c| c.get(1))
        .and_then(|m| Encoding::for_label(m.as_bytes()))
    {
        // A page that says UTF-16 in ASCII bytes is not UTF-16 (WHATWG prescan rule).
        let enc = if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
            encoding_rs::UTF_8
        } else {
            enc
        };
        return (enc, Decided::Meta);
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    (
        detector.guess(tld, chardetng::Utf8Detection::Allow),
        Decided::Detected,
    )
}

/// The `charset` parameter of a `Content-Type` header, when it names a known encoding.
pub fn header_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("charset") {
            Encoding::for_label(v.trim().trim_matches('"').as_bytes())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "<p>时间:2020-05-12 来源:河南日报 百舸竞进争出彩——省直机关创建模范机关热潮涌动</p>";

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(s).0.into_owned()
    }

    #[test]
    fn header_charset_wins_over_meta() {
        let page = format!("<meta charset=\"utf-8\">{TEXT}");
        let bytes = gbk(&page);
        let (text, enc, how) = decode(&bytes, Some("text/html; charset=GBK"), None, None);
        assert_eq!((enc, how), (encoding_rs::GBK, Decided::Header));
        assert!(text.contains("河南日报"));
    }

    #[test]
    fn gb2312_meta_reads_as_gbk() {
        let page = format!(
            "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=gb2312\" />{TEXT}"
        );
        let bytes = gbk(&page);
        let (text, enc, how) = decode(&bytes, Some("text/html"), None, None);
        assert_eq!((enc, how), (encoding_rs::GBK, Decided::Meta));
        assert!(text.contains("百舸竞进"));
    }

    #[test]
    fn detection_finds_gbk_and_big5_without_labels() {
        let bytes = gbk(TEXT);
        let (text, enc, how) = decode(&bytes, None, None, Some(b"cn"));
        assert_eq!((enc, how), (encoding_rs::GBK, Decided::Detected));
        assert!(text.contains("河南日报"));
        let big5 = encoding_rs::BIG5
            .encode("<p>臺灣的新聞稿，發佈時間與來源都在這裡。這是繁體中文頁面的內容。</p>")
            .0;
        let (text, enc, _) = decode(&big5, None, None, Some(b"tw"));
        assert_eq!(enc, encoding_rs::BIG5);
        assert!(text.contains("繁體中文"));
    }

    #[test]
    fn override_beats_a_lying_meta_but_not_a_bom() {
        let page = format!("<meta charset=\"iso-8859-1\">{TEXT}");
        let (text, _, how) = decode(page.as_bytes(), None, Some(encoding_rs::UTF_8), None);
        assert_eq!(how, Decided::Override);
        assert!(text.contains("河南日报"));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(TEXT.as_bytes());
        let (text, _, how) = decode(&bom, None, Some(encoding_rs::GBK), None);
        assert_eq!(how, Decided::Bom);
        assert!(text.starts_with("<p>"));
    }

    #[test]
    fn gb18030_four_byte_sequences() {
        let s = "<p>𠀀 emoji 😀 in GB18030</p>";
        let bytes = encoding_rs::GB18030.encode(s).0;
        let (text, _, _) = decode(&bytes, Some("text/html; charset=gb18030"), None, None);
        assert_eq!(text, s);
    }
}
