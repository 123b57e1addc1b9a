//! courtrec: records every hearing of a courtroom as synchronized, hashed, crash-safe
//! segments, and serves them to the people the court rules name.
//!
//! Modules follow the data: [`config`] → [`capture`] (GStreamer) → [`recording`]
//! (lifecycle, segment writer) → [`archive`] (files, manifest, index); [`http`] drives
//! recording and reads the archive; [`monitor`] raises alarms. See `docs/architecture.md`.

pub mod archive;
pub mod capture;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod live;
pub mod monitor;
pub mod recording;
pub mod serve;
pub mod timestamp;
pub mod web;
