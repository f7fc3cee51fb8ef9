//! WebSub publishing (W3C Recommendation): aggregators that follow thousands of feeds
//! would rather be told than poll. Every feed of a site with a hub names it (rendered by
//! `feed`); after a run that stored new or updated items, the hub gets one
//! `hub.mode=publish` per topic (each format's feed URL), retried with backoff.
//!
//! It watches finished runs in the store instead of sitting in the crawl: a slow or dead
//! hub never delays a run, and a run never waits for a hub.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use url::Url;

use crate::feed::Format;
use crate::site::SiteSet;
use crate::store::Store;

/// Attempts per publish; the waits between them double from [`FIRST_RETRY`].
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How often finished runs are looked for.
const TICK: Duration = Duration::from_millis(500);

/// What went wrong telling a site's hub, per site, for `/status.json`.
#[derive(Default)]
pub struct HubWarnings(Mutex<HashMap<String, String>>);

impl HubWarnings {
    pub fn get(&self, site: &str) -> Option<String> {
        self.0.lock().ok()?.get(site).cloned()
    }

    pub fn set(&self, site: &str, warning: Option<String>) {
        if let Ok(mut map) = self.0.lock() {
            match warning {
                Some(w) => map.insert(site.to_owned(), w),
                None => map.remove(site),
            };
        }
    }
}

/// A publish that did not reach the hub.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("hub {hub} answered {status} for {topic}")]
    Refused {
        hub: String,
        topic: String,
        status: u16,
    },
    #[error("hub {hub} unreachable for {topic}: {source}")]
    Transport {
        hub: String,
        topic: String,
        source: reqwest::Error,
    },
}

/// The topic URLs of a site's feeds under the public `base`.
pub fn topics(base: &Url, site_id: &str) -> Vec<String> {
    let base = base.as_str().trim_end_matches('/');
    Format::ALL
        .iter()
        .map(|f| format!("{base}/feeds/{site_id}.{}", f.ext()))
        .collect()
}

/// Watches finished runs and tells hubs about changed feeds until `shutdown`.
pub struct Publisher {
    store: Arc<Store>,
    sites: watch::Receiver<Arc<SiteSet>>,
    base: Url,
    default_hub: Option<Url>,
    client: reqwest::Client,
    warnings: Arc<HubWarnings>,
    /// Per site, the last run looked at (`None`: no run yet) and the store generation
    /// last published. The generation, not the last run's counts, decides: two runs that
    /// finish between two looks still publish their changes.
    seen: HashMap<String, (Option<DateTime<Utc>>, u64)>,
}

impl Publisher {
    /// Takes the runs already finished as seen: a restart publishes nothing old.
    pub fn new(
        store: Arc<Store>,
        sites: watch::Receiver<Arc<SiteSet>>,
        base: Url,
        default_hub: Option<Url>,
        warnings: Arc<HubWarnings>,
    ) -> Result<Publisher, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!(
                "feedbridge/",
                env!("CARGO_PKG_VERSION"),
                " (WebSub)"
            ))
            .build()?;
        let mut publisher = Publisher {
            store,
            sites,
            base,
            default_hub,
            client,
            warnings,
            seen: HashMap::new(),
        };
        let ids: Vec<String> = publisher.sites.borrow().sites.keys().cloned().collect();
        for id in ids {
            let finished = publisher.finished(&id);
            let generation = publisher.store.generation(&id);
            publisher.seen.insert(id, (finished, generation));
        }
        Ok(publisher)
    }

    fn finished(&self, site: &str) -> Option<DateTime<Utc>> {
        self.store
            .run_status(site)
            .ok()
            .flatten()
            .map(|s| s.finished)
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let set = self.sites.borrow().clone();
            for site in set.sites.values() {
                let Some(hub) = site.hub.as_ref().or(self.default_hub.as_ref()) else {
                    continue;
                };
                let generation = self.store.generation(&site.id);
                let Ok(Some(status)) = self.store.run_status(&site.id) else {
                    // No run yet: any change so far is the first run's doing.
                    self.seen.entry(site.id.clone()).or_insert((None, 0));
                    continue;
                };
                let (last_run, published) = self
                    .seen
                    .entry(site.id.clone())
                    // A site that appeared with runs already recorded: from now on.
                    .or_insert((Some(status.finished), generation));
                if *last_run == Some(status.finished) {
                    continue;
                }
                *last_run = Some(status.finished);
                if *published == generation {
                    continue;
                }
                *published = generation;
                // Spawned: the next site, and the next run, never wait for a hub.
                tokio::spawn(publish_site(
                    self.client.clone(),
                    hub.clone(),
                    topics(&self.base, &site.id),
                    site.id.clone(),
                    self.warnings.clone(),
                ));
            }
        }
    }
}

async fn publish_site(
    client: reqwest::Client,
    hub: Url,
    topics: Vec<String>,
    site: String,
    warnings: Arc<HubWarnings>,
) {
    let mut failures = Vec::new();
    for topic in &topics {
        if let Err(e) = publish(&client, &hub, topic).await {
            tracing::warn!(site, error = %e, "WebSub publish failed");
            failures.push(e.to_string());
        }
    }
    warnings.set(
        &site,
        (!failures.is_empty()).then(|| format!("WebSub: {}", failures.join("; "))),
    );
}

/// One `hub.mode=publish` for `topic`, retried on failure: at most [`ATTEMPTS`].
pub async fn publish(client: &reqwest::Client, hub: &Url, topic: &str) -> Result<(), PublishError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "publish")
        .append_pair("hub.url", topic)
        .finish();
    let mut wait = FIRST_RETRY;
    let mut attempt = 1;
    loop {
        let sent = client
            .post(hub.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.clone())
            .send()
            .await;
        let error = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => PublishError::Refused {
                hub: hub.to_string(),
                topic: topic.to_owned(),
                status: r.status().as_u16(),
            },
            Err(source) => PublishError::Transport {
                hub: hub.to_string(),
                topic: topic.to_owned(),
                source,
            },
        };
        if attempt >= ATTEMPTS {
            return Err(error);
        }
        attempt += 1;
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_every_format_under_the_base() {
        let base = Url::parse("https://feeds.example.org/sub/").unwrap();
        assert_eq!(
            topics(&base, "a"),
            [
                "https://feeds.example.org/sub/feeds/a.atom",
                "https://feeds.example.org/sub/feeds/a.rss",
                "https://feeds.example.org/sub/feeds/a.json",
            ]
        );
    }
}
