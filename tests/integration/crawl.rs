//! crawl tests
