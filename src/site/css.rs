//! CSS selector errors in the words of someone writing CSS, pointing at the character.
//! (scraper's `Selector::parse` error drops the position and names Rust enum variants.)

/// selectors' error kinds in the words of someone writing CSS.
/// Returns the byte offset to point at and the words.
pub(super) fn error_words(
    text: &str,
    stopped: usize,
    kind: &cssparser::ParseErrorKind<selectors::parser::SelectorParseErrorKind>,
) -> (usize, String) {
    use cssparser::{BasicParseErrorKind as B, ParseErrorKind as K};
    use selectors::parser::SelectorParseErrorKind as S;
    // The offending token ends where the parser stopped: step back over it (a name,
    // else one punctuation character).
    let is_name = |c: char| c.is_alphanumeric() || c == '-' || c == '_' || !c.is_ascii();
    let before = &text[..stopped];
    let name_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_name(*c))
        .last()
        .map(|(i, _)| i);
    let at = match name_start {
        Some(i) => i,
        None => before.char_indices().next_back().map_or(0, |(i, _)| i),
    };
    let at = if stopped == text.len() && matches!(kind, K::Basic(B::EndOfInput)) {
        stopped
    } else {
        at
    };
    let here: String = match text[at..].chars().next() {
        Some(c) if is_name(c) => text[at..]
            .chars()
            .take_while(|c| is_name(*c))
            .take(40)
            .collect(),
        Some(c) => c.to_string(),
        None => String::new(),
    };
    let unclosed = ['[', '('].into_iter().find(|open| {
        let close = if *open == '[' { ']' } else { ')' };
        text.matches(*open).count() > text.matches(close).count()
    });
    let at = match (kind, unclosed) {
        (K::Basic(B::EndOfInput), Some(open)) => text.rfind(open).unwrap_or(at),
        (K::Custom(S::ClassNeedsIdent), _) => before.rfind('.').unwrap_or(at),
        (K::Custom(S::NoQualifiedNameInAttributeSelector), _) => {
            before.rfind('[').map_or(at, |i| i + 1)
        }
        _ => at,
    };
    let words = match kind {
        K::Basic(B::EndOfInput) => match unclosed {
            Some(open) => format!(
                "unexpected end of selector: a `{open}` is never closed; close it with `{}`",
                if open == '[' { ']' } else { ')' }
            ),
            None => "unexpected end of selector; complete or remove the last part".into(),
        },
        K::Basic(B::UnexpectedToken) if here.is_empty() => {
            "unexpected end of selector; complete or remove the last part".into()
        }
        K::Basic(B::UnexpectedToken) => {
            format!("unexpected `{here}`; check brackets, quotes and combinators here")
        }
        K::Basic(B::AtRuleInvalid | B::AtRuleBodyInvalid | B::QualifiedRuleInvalid) => {
            "only a selector belongs here, not a CSS rule".into()
        }
        K::Custom(S::ClassNeedsIdent) => {
            "expected a class name after `.`; write e.g. div.content".into()
        }
        K::Custom(S::EmptySelector) if text.trim().is_empty() => {
            "the selector is empty; write one, e.g. \"div.list li\"".into()
        }
        K::Custom(S::EmptySelector) if text.split(',').any(|p| p.trim().is_empty()) => {
            "a part between commas is empty; remove the extra ','".into()
        }
        K::Custom(S::EmptySelector) => {
            format!("expected a tag, class, id or attribute at `{here}`")
        }
        K::Custom(S::DanglingCombinator) => {
            "a combinator (`>`, `+`, `~`) must have a selector on both sides".into()
        }
        K::Custom(S::NoQualifiedNameInAttributeSelector) => {
            "expected an attribute name after `[`, e.g. a[href]".into()
        }
        K::Custom(S::UnexpectedTokenInAttributeSelector) => {
            "expected `=`, `~=`, `|=`, `^=`, `$=`, `*=` or `]` in the attribute selector".into()
        }
        K::Custom(S::BadValueInAttr) => {
            "the attribute value must be a name or a quoted string, e.g. [href=\"/a b\"]".into()
        }
        K::Custom(
            S::PseudoElementExpectedColon | S::PseudoElementExpectedIdent | S::NoIdentForPseudo,
        ) => "expected a pseudo-class name after `:`, e.g. li:first-child".into(),
        K::Custom(S::UnsupportedPseudoClassOrElement) => {
            let colons = text[..at].rsplit(|c| c != ':').next().unwrap_or_default();
            format!(
                "unsupported pseudo-class or pseudo-element `{colons}{here}`; use e.g. \
                 :first-child, :nth-child(2), :not(…), :has(…)"
            )
        }
        K::Custom(S::UnexpectedIdent) => format!("unexpected name `{here}`"),
        K::Custom(
            S::ExpectedNamespace
            | S::ExpectedBarInAttr
            | S::InvalidQualNameInAttr
            | S::ExplicitNamespaceUnexpectedToken,
        ) => "namespaces (`|`) are not supported; remove the `ns|` prefix".into(),
        K::Basic(B::TooManyNestedBlocks) => "too deeply nested".into(),
        _ => "this form of selector is not supported here".into(),
    };
    (at, words)
}
