//! A few counters in Prometheus text format. Hand-rolled: a process-global recorder
//! (the `metrics` crates) is awkward in tests and these are a dozen lines.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Counters keyed by metric name and label set.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), f64>>,
}

impl Metrics {
    /// Adds `by` to `name{labels}`; labels are `(key, value)` pairs.
    pub fn add(&self, name: &str, labels: &[(&str, &str)], by: f64) {
        let labels = render_labels(labels);
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name.to_owned(), labels)).or_default() += by;
        }
    }

    /// Appends every counter to `out` in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let Ok(c) = self.counters.lock() else { return };
        let mut last = "";
        for ((name, labels), v) in c.iter() {
            if name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    }
}

/// `{a="b",c="d"}` with values escaped as the format wants.
pub fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}
