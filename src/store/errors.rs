//! The store's failures, sorted by what court IT has to do about them.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use serde::Serialize;

/// Which kind of trouble a call to the store ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// No answer: the network, the address, or the store is down.
    Unreachable,
    /// The store refuses this box's key (wrong id or secret, clock skew).
    Credentials,
    /// The key is known but may not do this.
    Denied,
    /// The bucket does not exist.
    NoBucket,
    /// No such object.
    NotFound,
    /// The store answered with a server error (5xx).
    Server,
    /// The answer was not S3 (a proxy's page, garbage, a cut-off reply).
    Garbage,
    /// The store refused the bytes: they differ from their checksum.
    Rejected,
    /// The store does not implement this call.
    NotImplemented,
    /// The bucket has no Object Lock configuration.
    NoLock,
    /// An object is already there with other content (never overwritten).
    Conflict,
    /// Anything else (a refused request, a bad setting).
    Other,
}

/// A failed call to the store: its kind and what happened, in words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct StoreError {
    pub fault: Fault,
    pub detail: String,
}

impl StoreError {
    pub fn new(fault: Fault, detail: impl Into<String>) -> StoreError {
        StoreError {
            fault,
            detail: detail.into(),
        }
    }

    /// Whether waiting and trying again may help (the store or the line is down), as
    /// opposed to a setting someone must fix.
    pub fn transient(&self) -> bool {
        matches!(
            self.fault,
            Fault::Unreachable | Fault::Server | Fault::Garbage
        )
    }

    /// What is wrong, for an alarm (English).
    pub fn plain(&self) -> String {
        match self.fault {
            Fault::Unreachable => "The court's archive cannot be reached (network or store down)".into(),
            Fault::Credentials => "The court's archive refuses this box's access key (wrong key id or secret, or the box's clock is wrong)".into(),
            Fault::Denied => "The court's archive does not allow this box's key to write to the bucket".into(),
            Fault::NoBucket => "The archive's bucket does not exist on the store".into(),
            Fault::Server => "The court's archive answers with server errors".into(),
            Fault::Garbage => "The archive's address answers, but not as an S3 store (wrong endpoint, or a proxy in between)".into(),
            Fault::Rejected => "The court's archive refused the bytes sent: they did not match their checksum".into(),
            Fault::Conflict => "The archive already holds a different object where this box's must go".into(),
            Fault::NotFound | Fault::NotImplemented | Fault::NoLock | Fault::Other => {
                "The court's archive refused a request".into()
            }
        }
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        use crate::error::ErrorKind;
        let kind = match e.fault {
            Fault::NotFound => ErrorKind::NotFound,
            Fault::Conflict => ErrorKind::Conflict,
            Fault::Credentials | Fault::Denied => ErrorKind::Unavailable,
            _ => ErrorKind::Unavailable,
        };
        crate::error::Error::new(kind, format!("the archive store: {}", e.detail))
    }
}

/// Sorts an SDK error into a [`Fault`], keeping the store's own code and message.
pub(crate) fn classify<E>(
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    what: &str,
    key: &str,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let ctx = format!("{what} {key}");
    match &e {
        SdkError::DispatchFailure(d) => {
            let why = d
                .as_connector_error()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "no connection".into());
            StoreError::new(Fault::Unreachable, format!("{ctx}: {why}"))
        }
        SdkError::TimeoutError(_) => {
            StoreError::new(Fault::Unreachable, format!("{ctx}: no answer in time"))
        }
        SdkError::ResponseError(r) => StoreError::new(
            Fault::Garbage,
            format!(
                "{ctx}: the answer (HTTP {}) is not S3's",
                r.raw().status().as_u16()
            ),
        ),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("");
            let fault = match code {
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "RequestTimeTooSkewed"
                | "ExpiredToken"
                | "InvalidToken" => Fault::Credentials,
                // Garage says AccessDenied for a bad signature: the key is wrong.
                "AccessDenied" if message.to_ascii_lowercase().contains("signature") => {
                    Fault::Credentials
                }
                "AccessDenied" | "AllAccessDisabled" => Fault::Denied,
                "NoSuchBucket" => Fault::NoBucket,
                "NoSuchKey" | "NotFound" => Fault::NotFound,
                "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" => Fault::Rejected,
                "NotImplemented" => Fault::NotImplemented,
                "ObjectLockConfigurationNotFoundError" | "NoSuchObjectLockConfiguration" => {
                    Fault::NoLock
                }
                _ if status == 404 => Fault::NotFound,
                _ if status == 403 => Fault::Credentials,
                _ if status == 501 => Fault::NotImplemented,
                _ if status >= 500 => Fault::Server,
                // An answer with no S3 error code at all: not an S3 store.
                "" if status != 400 => Fault::Garbage,
                _ => Fault::Other,
            };
            let code = if code.is_empty() {
                "no error code"
            } else {
                code
            };
            StoreError::new(
                fault,
                format!(
                    "{ctx}: HTTP {status} {code}{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ),
            )
        }
        _ => StoreError::new(
            Fault::Other,
            format!("{ctx}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
        ),
    }
}
