//! The scenarios that span several services live in `tests/`; this crate has
//! no code of its own.
