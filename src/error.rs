//! The daemon's errors are the archive's ([`courtrec_archive::error`]): one type with
//! kinds, mapped to HTTP statuses in one place (`http::ApiError`).

pub use courtrec_archive::error::*;

/// Index (sled) failures as errors: an I/O failure keeps its kind (a full disk is
/// "resource exhausted"), anything else is internal.
pub fn index_err(e: sled::Error) -> Error {
    match e {
        sled::Error::Io(io) => Error::io("index", io),
        other => Error::new(ErrorKind::Internal, format!("index: {other}")),
    }
}
