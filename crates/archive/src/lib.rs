//! courtrec's archive: the storage format of a hearing (manifest, segments, signed
//! checkpoints, trusted timestamps), the device log, export bundles, and the offline
//! verifier that checks them.
//!
//! Nothing here depends on GStreamer, HTTP or an async runtime, so that a court's expert
//! can audit the format and its checks alone, and build `courtrec-verify` on a laptop
//! with nothing but Rust (see `docs/verify.md`).
//!
//! Layout of `DATA/hearings/<hearing-id>/`:
//! - `manifest.jsonl`: one JSON record per line, each chained to the previous by its
//!   SHA-256 (see [`manifest`]). The first record (`created`) holds the hearing's
//!   metadata; events and segments follow in the order they happened.
//! - `tracks/<track>/<seq>.ts`: the MPEG-TS segments of each track.
//! - `checkpoints/<size>.note`: signed checkpoints (see [`checkpoint`]), and
//!   `<size>.tsr` RFC 3161 tokens.
//! - `device.vkey`: the recording box's verifier key.

pub mod audit;
pub mod bundle;
pub mod checkpoint;
pub mod cli;
pub mod devlog;
pub mod doc;
pub mod error;
pub mod exportlog;
pub mod fault;
pub mod files;
pub mod fsread;
pub mod log;
pub mod manifest;
pub mod merkle;
pub mod playlist;
pub mod progress;
pub mod records;
mod signedlog;
pub mod signing;
pub mod ts;
pub mod tsa;
pub mod verify;
pub mod wallclock;

pub use files::*;
