//! One error type for the archive and the daemon, with kinds that the daemon maps to
//! HTTP statuses in one place (`http::ApiError`), so that e.g. a full disk becomes "resource exhausted" once, not in
//! every handler.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or input is malformed (bad JSON, wrong type).
    BadRequest,
    /// The input is well-formed but its values are not acceptable.
    Invalid,
    /// No such hearing, user or file.
    NotFound,
    /// The action does not fit the current state (e.g. resume when not in recess).
    Conflict,
    /// No or bad credentials.
    Unauthenticated,
    /// Credentials are fine but the role may not do this.
    PermissionDenied,
    /// Disk full or another resource ran out.
    ResourceExhausted,
    /// Too many attempts or requests from this caller: try again later.
    TooMany,
    /// A device or subsystem is not available right now.
    Unavailable,
    /// A bug or an I/O failure we did not expect.
    Internal,
}

impl ErrorKind {
    /// Short machine-readable name used in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::TooMany => "too_many_requests",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error with a kind and a human-readable message that carries its context.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
}

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
        }
    }

    /// Classifies an I/O error: ENOSPC/EDQUOT become `ResourceExhausted` so the clerk
    /// sees "disk full", not "internal error".
    pub fn io(context: impl fmt::Display, e: std::io::Error) -> Self {
        let kind = match e.raw_os_error() {
            Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT => {
                ErrorKind::ResourceExhausted
            }
            _ => match e.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
        };
        Error::new(kind, format!("{context}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand constructors, e.g. `bail!(Conflict, "hearing {id} is closed")`.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($arg:tt)*) => {
        $crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)*))
    };
}

#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::err!($kind, $($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_resource_exhausted() {
        let e = Error::io(
            "writing segment",
            std::io::Error::from_raw_os_error(nix::libc::ENOSPC),
        );
        assert_eq!(e.kind, ErrorKind::ResourceExhausted);
        assert!(e.msg.starts_with("writing segment: "));
    }
}
