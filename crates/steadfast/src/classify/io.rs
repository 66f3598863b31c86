//! [`std::io::Error`] classification by [`ErrorKind`].
//!
//! Retryable (the peer or the network may recover): `ConnectionRefused`, `ConnectionReset`,
//! `ConnectionAborted`, `NotConnected`, `BrokenPipe`, `UnexpectedEof`, `TimedOut`,
//! `Interrupted`, `WouldBlock`, `HostUnreachable`, `NetworkUnreachable`, `NetworkDown`.
//! Everything else (`NotFound`, `PermissionDenied`, `InvalidInput`, `InvalidData`, …) is not
//! retryable.
//!
//! # Example
//! ```
//! use std::io::ErrorKind;
//! use steadfast::classify::{io, Outcome};
//!
//! assert_eq!(io::kind(ErrorKind::ConnectionReset), Outcome::RETRYABLE);
//! assert_eq!(io::kind(ErrorKind::PermissionDenied), Outcome::NonRetryable);
//! ```

use std::io::{Error, ErrorKind};

use super::{Classify, Outcome};

/// The outcome for an I/O error kind (see the [module docs](self) for the list).
pub fn kind(kind: ErrorKind) -> Outcome {
    use ErrorKind::*;
    match kind {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
        | UnexpectedEof | TimedOut | Interrupted | WouldBlock | HostUnreachable
        | NetworkUnreachable | NetworkDown => Outcome::RETRYABLE,
        _ => Outcome::NonRetryable,
    }
}

/// The outcome for an I/O error, by its kind.
pub fn error(error: &Error) -> Outcome {
    kind(error.kind())
}

impl Classify for Error {
    fn classify(&self) -> Outcome {
        error(self)
    }
}

impl Classify for ErrorKind {
    fn classify(&self) -> Outcome {
        kind(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_list_is_honoured() {
        for k in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::TimedOut,
            ErrorKind::Interrupted,
            ErrorKind::WouldBlock,
        ] {
            assert!(kind(k).is_retryable(), "{k:?}");
        }
        for k in [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::InvalidInput,
        ] {
            assert_eq!(kind(k), Outcome::NonRetryable, "{k:?}");
        }
    }
}
