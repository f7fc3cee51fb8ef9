//! Byte-to-text decoding in the WHATWG order, because GBK sites break every tool that
//! trusts only the HTTP header (or only the meta tag).
//!
//! Order: byte-order mark, then the operator's `encoding` override, then the HTTP
//! `charset`, then a `<meta charset>` / `http-equiv` prescan, then statistical detection
//! (chardetng, given the host's top-level domain as a hint). `gb2312` is read as GBK, whose decoder
//! is the GB18030 one, a superset.
//!
//! Labels lie, so the bytes get a say over both the header and the meta tag (never over a
//! BOM or the operator's override, which are deliberate):
//! - bytes that are valid UTF-8 and hold non-ASCII text are UTF-8 whatever the label says.
//!   Text really written in GBK, Big5 or a Latin code page is practically never valid
//!   UTF-8 beyond a few characters, while a migrated CMS that still sends
//!   `charset=gb2312` (in its template *or* its server config) is common, so the HTTP
//!   header loses too;
//! - bytes labelled UTF-8 that are mostly not UTF-8 (a GBK page behind a UTF-8 default)
//!   are decoded by detection. A UTF-8 page with a few broken bytes stays UTF-8.

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
    /// The header or meta named another encoding, but the bytes are valid UTF-8.
    Utf8OverLabel,
    /// The header or meta said UTF-8, but the bytes are not: detection chose.
    DetectedOverLabel,
}

/// The whole decision: what was used, what the page claimed, and why they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub encoding: &'static Encoding,
    pub decided: Decided,
    /// What the HTTP header (else the meta tag) named, when anything.
    pub declared: Option<&'static Encoding>,
    /// Byte sequences that were not UTF-8 in a page kept as UTF-8 (they become U+FFFD).
    pub broken_utf8: usize,
}

impl Decision {
    /// A sentence for the page's warnings when the label was overruled or bytes were lost.
    pub fn warning(&self) -> Option<String> {
        let declared = self.declared.map_or("nothing", |e| e.name());
        match self.decided {
            Decided::Utf8OverLabel => Some(format!(
                "the page declares {declared} but its bytes are valid UTF-8: read as UTF-8"
            )),
            Decided::DetectedOverLabel => Some(format!(
                "the page declares {declared} but its bytes are not UTF-8: read as {} (detected)",
                self.encoding.name()
            )),
            _ if self.broken_utf8 > 0 => Some(format!(
                "{} byte sequences are not UTF-8 in a UTF-8 page: shown as U+FFFD",
                self.broken_utf8
            )),
            _ => None,
        }
    }
}

/// What the bytes say about UTF-8: non-ASCII characters that decode, sequences that don't.
struct Utf8Census {
    non_ascii: usize,
    invalid: usize,
}

impl Utf8Census {
    fn of(bytes: &[u8]) -> Self {
        // The common case (a clean page) costs one validation pass.
        if let Ok(s) = std::str::from_utf8(bytes) {
            return Utf8Census {
                non_ascii: s.chars().filter(|c| !c.is_ascii()).take(64).count(),
                invalid: 0,
            };
        }
        let mut census = Utf8Census {
            non_ascii: 0,
            invalid: 0,
        };
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            census.non_ascii += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
            // An incomplete sequence at the very end is a truncated page, not a lie.
            if !chunk.invalid().is_empty() && chunks.peek().is_some() {
                census.invalid += 1;
            }
        }
        census
    }

    fn is_utf8_text(&self) -> bool {
        self.invalid == 0 && self.non_ascii > 0
    }

    /// UTF-8 with a few damaged bytes (a bad copy-paste), not another encoding.
    fn is_mostly_utf8(&self) -> bool {
        self.non_ascii >= 20 * self.invalid.max(1)
    }
}

/// Decodes `bytes` to text; malformed sequences become U+FFFD, never an error.
/// `tld` (the host's last label, e.g. `b"cn"`) steers detection between GBK and Big5.
pub fn decode<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
    override_encoding: Option<&'static Encoding>,
    tld: Option<&[u8]>,
) -> (Cow<'a, str>, &'static Encoding, Decided) {
    let (text, d) = decode_page(bytes, content_type, override_encoding, tld);
    (text, d.encoding, d.decided)
}

/// [`decode`] with the whole [`Decision`], so callers can surface an overruled label.
pub fn decode_page<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
    override_encoding: Option<&'static Encoding>,
    tld: Option<&[u8]>,
) -> (Cow<'a, str>, Decision) {
    let decision = decide(bytes, content_type, override_encoding, tld);
    let (text, _had_errors) = decision.encoding.decode_with_bom_removal(bytes);
    (text, decision)
}

/// Chooses the encoding without decoding.
pub fn decide(
    bytes: &[u8],
    content_type: Option<&str>,
    override_encoding: Option<&'static Encoding>,
    tld: Option<&[u8]>,
) -> Decision {
    let plain = |encoding, decided, declared| Decision {
        encoding,
        decided,
        declared,
        broken_utf8: 0,
    };
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return plain(enc, Decided::Bom, None);
    }
    if let Some(enc) = override_encoding {
        return plain(enc, Decided::Override, None);
    }
    let declared = match content_type.and_then(header_charset) {
        Some(enc) => Some((enc, Decided::Header)),
        None => meta_charset(bytes).map(|enc| (enc, Decided::Meta)),
    };
    let census = Utf8Census::of(bytes);
    match declared {
        Some((enc, how)) if enc == encoding_rs::UTF_8 => {
            if census.invalid == 0 || census.is_mostly_utf8() {
                Decision {
                    broken_utf8: census.invalid,
                    ..plain(enc, how, Some(enc))
                }
            } else {
                plain(detect(bytes, tld), Decided::DetectedOverLabel, Some(enc))
            }
        }
        Some((enc, _)) if census.is_utf8_text() && is_ascii_compatible(enc) => {
            plain(encoding_rs::UTF_8, Decided::Utf8OverLabel, Some(enc))
        }
        Some((enc, how)) => plain(enc, how, Some(enc)),
        None if census.is_utf8_text() => plain(encoding_rs::UTF_8, Decided::Detected, None),
        None => plain(detect(bytes, tld), Decided::Detected, None),
    }
}

/// UTF-16 and ISO-2022-JP pages can be valid UTF-8 by accident of their ASCII bytes; a
/// label naming them is kept (they are rare enough that a label is meant).
fn is_ascii_compatible(enc: &'static Encoding) -> bool {
    enc.is_ascii_compatible()
}

fn meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(4096)];
    let enc = META_CHARSET
        .captures(head)
        .and_then(|c| c.get(1))
        .and_then(|m| Encoding::for_label(m.as_bytes()))?;
    // A page that says UTF-16 in ASCII bytes is not UTF-16 (WHATWG prescan rule).
    Some(
        if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
            encoding_rs::UTF_8
        } else {
            enc
        },
    )
}

fn detect(bytes: &[u8], tld: Option<&[u8]>) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    detector.guess(tld, chardetng::Utf8Detection::Allow)
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

    #[test]
    fn valid_utf8_beats_a_lying_meta_and_header() {
        let page = format!("<meta charset=\"gb2312\">{TEXT}");
        let (text, d) = decode_page(page.as_bytes(), None, None, Some(b"cn"));
        assert_eq!(
            (d.encoding, d.decided, d.declared),
            (
                encoding_rs::UTF_8,
                Decided::Utf8OverLabel,
                Some(encoding_rs::GBK)
            )
        );
        assert!(text.contains("河南日报"));
        assert!(d.warning().is_some_and(|w| w.contains("GBK")));
        let (text, d) = decode_page(
            TEXT.as_bytes(),
            Some("text/html; charset=iso-8859-1"),
            None,
            None,
        );
        assert_eq!(d.decided, Decided::Utf8OverLabel);
        assert!(text.contains("百舸竞进"));
        // A page cut inside its last character is still UTF-8.
        let cut = &TEXT.as_bytes()[..TEXT.len() - 5];
        let (_, d) = decode_page(cut, Some("text/html; charset=gbk"), None, None);
        assert_eq!(d.encoding, encoding_rs::UTF_8);
    }

    #[test]
    fn ascii_pages_keep_their_label() {
        let (_, d) = decode_page(b"<meta charset=gbk><p>plain</p>", None, None, None);
        assert_eq!((d.encoding, d.decided), (encoding_rs::GBK, Decided::Meta));
        assert_eq!(d.warning(), None);
    }

    #[test]
    fn gbk_bytes_labelled_utf8_are_detected() {
        let bytes = gbk(&format!("<meta charset=\"utf-8\">{TEXT}"));
        let (text, d) = decode_page(&bytes, None, None, Some(b"cn"));
        assert_eq!(
            (d.encoding, d.decided),
            (encoding_rs::GBK, Decided::DetectedOverLabel)
        );
        assert!(text.contains("河南日报"));
        assert!(d.warning().is_some_and(|w| w.contains("detected")));
        let (_, d) = decode_page(
            &gbk(TEXT),
            Some("text/html; charset=utf-8"),
            None,
            Some(b"cn"),
        );
        assert_eq!(d.encoding, encoding_rs::GBK);
    }

    #[test]
    fn a_few_broken_bytes_do_not_make_a_utf8_page_another_encoding() {
        let mut bytes = format!("<meta charset=utf-8>{TEXT}").into_bytes();
        bytes.push(0xff);
        bytes.extend_from_slice(TEXT.as_bytes());
        let (text, d) = decode_page(&bytes, None, None, Some(b"cn"));
        assert_eq!((d.encoding, d.decided), (encoding_rs::UTF_8, Decided::Meta));
        assert_eq!(d.broken_utf8, 1);
        assert!(text.contains('\u{fffd}') && text.contains("河南日报"));
        assert!(d.warning().is_some());
    }
}
