//! serve tests
