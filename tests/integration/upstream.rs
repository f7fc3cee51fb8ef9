//! upstream tests
