//! Recording: the hearing lifecycle (create, open, recess, resume, close, marks), the
//! gate that routes captured frames to per-track segment writers, and crash recovery.
//!
//! Data flows one way: capture pushes frames into [`router::Router`]; the writers
//! write segments and append them to the hearing's [`crate::archive::log::HearingLog`].

mod clockstep;
#[cfg(test)]
mod fixtures;
mod health;
pub mod hearings;
pub mod interleave;
mod livestream;
pub mod recorder;
pub mod recovery;
pub mod router;
pub mod segment;
pub mod tsmux;
mod writer;
