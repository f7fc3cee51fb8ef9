//! The one integration test binary: the real binary and the real server against fixture
//! sites served on 127.0.0.1. Nothing here touches the internet.

#[path = "integration/support.rs"]
mod support;

#[path = "integration/golden.rs"]
mod golden;

#[path = "integration/preview.rs"]
mod preview;

#[path = "integration/crawl.rs"]
mod crawl;

#[path = "integration/serve.rs"]
mod serve;

#[path = "integration/service.rs"]
mod service;

#[path = "integration/upstream.rs"]
mod upstream;

#[path = "integration/auto_score.rs"]
mod auto_score;

#[path = "integration/extract_cmd.rs"]
mod extract_cmd;

#[path = "integration/suggest.rs"]
mod suggest;
