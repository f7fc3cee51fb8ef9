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

#[path = "integration/check.rs"]
mod check;
#[path = "integration/dashboard.rs"]
mod dashboard;
#[path = "integration/operator.rs"]
mod operator;
#[path = "integration/url_policy.rs"]
mod url_policy;
#[path = "integration/xss.rs"]
mod xss;

#[path = "integration/auto_score.rs"]
mod auto_score;
#[path = "integration/crawl_safety.rs"]
mod crawl_safety;
#[path = "integration/fuzz.rs"]
mod fuzz;
#[path = "integration/sockets.rs"]
mod sockets;

#[path = "integration/extract_cmd.rs"]
mod extract_cmd;

#[path = "integration/suggest.rs"]
mod suggest;

#[path = "integration/auto_fallback.rs"]
mod auto_fallback;

#[path = "integration/formats.rs"]
mod formats;
#[path = "integration/images.rs"]
mod images;
#[path = "integration/reload_scale.rs"]
mod reload_scale;
#[path = "integration/shards.rs"]
mod shards;
