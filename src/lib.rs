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

pub mod cli;
pub mod config;
pub mod cpu;
pub mod date;
pub mod extract;
pub mod feed;
pub mod fetch;
pub mod fixture_server;
pub mod metrics;
pub mod model;
pub mod schedule;
pub mod serve;
pub mod site;
pub mod store;
pub mod suggest;
pub mod url_policy;
