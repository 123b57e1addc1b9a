//! courtrec: records every hearing of a courtroom as synchronized, hashed, crash-safe
//! segments, and serves them to the people the court rules name.
//!
//! Modules follow the data: [`config`] → [`capture`] (GStreamer) → [`recording`]
//! (lifecycle, segment writer) → [`archive`] (files, manifest, index); [`http`] drives
//! recording and reads the archive; [`monitor`] raises alarms. See `docs/architecture.md`.

pub use courtrec_archive::{bail, err};

pub mod archive;
pub mod capture;
pub mod central;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod live;
pub mod media;
pub mod metrics;
pub mod monitor;
pub mod recording;
pub mod replication;
pub mod serve;
pub mod store;
pub mod timestamp;
pub mod web;
