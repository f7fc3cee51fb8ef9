//! feedbridge turns web sites without feeds into Atom feeds.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! selectors/*.toml -> site (compiled rules) -> schedule -> refresh(site)
//!                                                           |
//!          fetch (conditional GET, politeness, charset) ----+
//!          extract (pure: bytes + rules -> items) ----------+
//!          store (sled: dedup, updates, run status) --------+
//! serve (HTTP) -> store (recent items) -> feed (pure: items -> Atom bytes, cached)
//! ```
//!
//! `schedule::refresh` is the only place that calls fetch, extract and store together;
//! the scheduler only decides *when*. `extract` and `feed` do no I/O and never read the
//! clock: the time is passed in, so both are tested with plain values.
//!
//! Beside the flow: `url_policy` decides which URLs found in hostile pages may be
//! fetched (fetch and extract both ask it); `cpu` runs parsing, extraction and
//! compression on a bounded blocking pool, never on the async workers that serve HTTP;
//! `extract::listing` and `extract::extract_article` are the one reading of a page for
//! the crawler and `preview`, with `extract::auto` filling what selectors miss; `suggest`
//! writes a selector file from a list page, on top of extract and fetch; `shard` splits
//! the sites over several `serve` nodes and writes the nginx config in front of them.

pub mod cli;
pub mod config;
pub mod cpu;
pub mod date;
pub mod extract;
pub mod feed;
pub mod fetch;
pub mod fixture_server;
pub mod malloc;
pub mod metrics;
pub mod model;
pub mod schedule;
pub mod serve;
pub mod shard;
pub mod site;
pub mod store;
pub mod suggest;
pub mod url_policy;
