//! service tests
