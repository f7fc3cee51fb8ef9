//! Typed reads of a parsed TOML table that record every problem instead of stopping.
//!
//! serde's derive stops at the first unknown key or wrong type and words it in Rust terms
//! (`expected i64`). Selector files are written by operators, so each table is read key
//! by key here: unknown keys get a "did you mean", wrong types are named as TOML types,
//! and every problem of the file is collected with its position.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::clipped;
use super::compile::Ctx;

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// One table of the file (the root, `[list]`, `[article]`, or a field's inline table).
pub(super) struct Table<'a, 'i> {
    ctx: &'a Ctx<'a>,
    table: &'a DeTable<'i>,
    /// `list.` etc.: how keys are named in messages.
    prefix: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Reads `table`, reporting every key not in `known`.
    pub fn new(ctx: &'a Ctx<'a>, table: &'a DeTable<'i>, prefix: &str, known: &[&str]) -> Self {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match closest(name, known) {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("the keys here are {}", known.join(", ")),
            };
            ctx.problem(
                key.span().start,
                format!("unknown key `{prefix}{}`; {hint}", shown_key(name)),
            );
        }
        Table {
            ctx,
            table,
            prefix: prefix.to_owned(),
        }
    }

    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    fn wrong_type(&self, key: &str, value: &Value<'_>, wanted: &str) {
        self.ctx.problem(
            value.span().start,
            format!(
                "`{}` must be {wanted}, found {} ({})",
                self.name(key),
                a_type(value.get_ref()),
                clipped(self.ctx.source(value.span()))
            ),
        );
    }

    pub fn string(&self, key: &str) -> Option<Spanned<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            _ => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    pub fn integer(&self, key: &str) -> Option<Spanned<i64>> {
        let v = self.get(key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        if n.is_none() {
            self.wrong_type(key, v, "an integer");
        }
        n.map(|n| Spanned::new(v.span(), n))
    }

    pub fn boolean(&self, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        let b = v.get_ref().as_bool();
        if b.is_none() {
            self.wrong_type(key, v, "true or false");
        }
        b
    }

    /// An array of strings; wrong elements are reported one by one.
    pub fn strings(&self, key: &str) -> Option<Spanned<Vec<Spanned<String>>>> {
        let v = self.get(key)?;
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                other => {
                    ok = false;
                    self.ctx.problem(
                        item.span().start,
                        format!(
                            "`{}` must hold strings only, found {} ({})",
                            self.name(key),
                            a_type(other),
                            clipped(self.ctx.source(item.span()))
                        ),
                    );
                }
            }
        }
        ok.then(|| Spanned::new(v.span(), out))
    }

    /// A `[section]`.
    pub fn table(&self, key: &str) -> Option<Spanned<&'a DeTable<'i>>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Spanned::new(v.span(), t)),
            _ => {
                self.wrong_type(key, v, &format!("a table ([{key}])"));
                None
            }
        }
    }
}

/// The article ("a string", "an integer") for a value's TOML type.
fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A key as written, one line and at most 60 characters (quoted keys can hold anything).
fn shown_key(k: &str) -> String {
    let short: String = k.chars().take(60).collect();
    let more = if short.len() < k.len() { "…" } else { "" };
    clipped(&short) + more
}

/// The known name nearest to a typo (edit distance up to 2, or one for short names).
pub(super) fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let typo = norm(typo);
    known
        .iter()
        .map(|k| (edit_distance(&typo, &norm(k)), *k))
        .filter(|(d, k)| *d <= if k.len() <= 4 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["timezone", "max_pages", "title", "item", "link"];
        assert_eq!(closest("tiemzone", &keys), Some("timezone"));
        assert_eq!(closest("max-pages", &keys), Some("max_pages"));
        assert_eq!(closest("maxpage", &keys), Some("max_pages"));
        assert_eq!(closest("lnk", &keys), Some("link"));
        assert_eq!(closest("colour", &keys), None);
    }
}
