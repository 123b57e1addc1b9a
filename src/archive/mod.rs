//! The archive as the daemon uses it: the storage format, manifests, checkpoints,
//! bundles and the verifier come from the `courtrec-archive` crate (no GStreamer, no
//! HTTP: `crates/archive`); the `sled` index that makes hearings quick to find, and
//! `courtrec check`, which compares it with the folders, live here.

pub use courtrec_archive::*;

pub mod catalog;
pub mod check;
pub mod exports;
pub mod index;
