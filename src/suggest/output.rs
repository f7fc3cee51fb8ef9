//! The suggested selector file as TOML text, each rule with a comment on its evidence.

use std::fmt::Write;

use super::Rule;

/// Site-wide settings chosen for the file, each with why.
#[derive(Debug, Clone)]
pub struct Settings {
    pub title: (String, String),
    pub home: String,
    pub start: Vec<String>,
    pub start_why: String,
    pub schedule: (String, String),
    pub timezone: (String, String),
    pub encoding: (String, String),
    pub language: Option<(String, String)>,
    pub delay: (String, String),
}

pub struct Sections<'a> {
    pub source_url: &'a str,
    pub settings: &'a Settings,
    pub list: Vec<(&'static str, Option<&'a Rule>)>,
    pub max_pages: (u32, String),
    pub article: Vec<(&'static str, Option<&'a Rule>)>,
    pub left: &'a [(&'static str, String)],
    pub remove: &'a [(String, String)],
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML literal string when possible, so regex backslashes stay readable.
fn quote_regex(s: &str) -> String {
    if s.contains('\'') || s.contains('\n') {
        quote(s)
    } else {
        format!("'{s}'")
    }
}

pub fn rule_value(r: &Rule) -> String {
    if r.attr.is_none() && r.regex.is_none() && r.text.is_none() {
        return quote(&r.css);
    }
    let mut parts = vec![format!("css = {}", quote(&r.css))];
    if let Some(a) = &r.attr {
        parts.push(format!("attr = {}", quote(a)));
    }
    if let Some(t) = &r.text {
        parts.push(format!("text = {}", quote(t)));
    }
    if let Some(x) = &r.regex {
        parts.push(format!("regex = {}", quote_regex(x)));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

pub fn render(s: &Sections<'_>) -> String {
    let mut out = String::new();
    let st = s.settings;
    let _ = writeln!(
        out,
        "# Suggested by `feedbridge suggest {}`.\n# Each rule says what chose it and on how many pages it held; \
         review with `feedbridge preview`.\n",
        one_line(s.source_url)
    );
    let mut kv = |k: &str, v: String, why: &str| {
        let _ = writeln!(out, "# {}", one_line(why));
        let _ = writeln!(out, "{k} = {v}");
    };
    kv("title", quote(&st.title.0), &st.title.1);
    kv(
        "home",
        quote(&st.home),
        "the list page itself (the feed's alternate link)",
    );
    kv(
        "start",
        format!(
            "[{}]",
            st.start
                .iter()
                .map(|u| quote(u))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        &st.start_why,
    );
    kv("schedule", quote(&st.schedule.0), &st.schedule.1);
    kv("timezone", quote(&st.timezone.0), &st.timezone.1);
    kv("encoding", quote(&st.encoding.0), &st.encoding.1);
    if let Some((l, why)) = &st.language {
        kv("language", quote(l), why);
    }
    kv("delay", quote(&st.delay.0), &st.delay.1);

    let _ = writeln!(out, "\n[list]");
    for (k, r) in &s.list {
        if let Some(r) = r {
            let _ = writeln!(out, "# {}", one_line(&r.why));
            let _ = writeln!(out, "{k} = {}", rule_value(r));
        }
    }
    let _ = writeln!(out, "# {}", one_line(&s.max_pages.1));
    let _ = writeln!(out, "max_pages = {}", s.max_pages.0);

    let _ = writeln!(out, "\n[article]");
    for (k, r) in &s.article {
        if let Some(r) = r {
            let _ = writeln!(out, "# {}", one_line(&r.why));
            let _ = writeln!(out, "{k} = {}", rule_value(r));
        }
    }
    for (k, why) in s.left {
        let _ = writeln!(
            out,
            "# {k}: left to automatic extraction ({}); write a rule here to pin it",
            one_line(why)
        );
    }
    let mut remove: Vec<String> = s.remove.iter().map(|(n, _)| quote(n)).collect();
    for (n, why) in s.remove {
        let _ = writeln!(out, "# remove {n}: {}", one_line(why));
    }
    let _ = writeln!(out, "# remove script/style: never content");
    remove.push(quote("script"));
    remove.push(quote("style"));
    let _ = writeln!(out, "remove = [{}]", remove.join(", "));
    out
}
