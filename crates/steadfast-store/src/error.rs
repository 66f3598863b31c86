//! What can go wrong in a store.

use std::fmt;

use steadfast::gate::Target;

/// A store failed: the database, a record it could not read, or a race lost too often.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error (unreachable, a constraint, a timeout).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    Database(sqlx::Error),
    /// SQLite reported an error on the connection a file store writes and reads gate records
    /// with (a busy file past the busy timeout, a full disk).
    #[cfg(feature = "sqlite")]
    Sqlite(rusqlite::Error),
    /// A stored record could not be read back (its policy snapshot, a negative count).
    Corrupt {
        /// Whose record.
        target: Target,
        /// What is wrong with it.
        message: String,
    },
    /// Other writers kept winning the race for this record.
    Contended {
        /// Whose record.
        target: Target,
    },
    /// The store could not be opened (a bad URL or path, a failed migration).
    Open(String),
    /// The transaction this write was batched into did not commit (SQLite's group commit);
    /// nothing of it was written.
    Batch(String),
    /// The store's writer task is gone (its runtime shut down).
    Closed,
    /// Redis reported an error (unreachable, a script that failed).
    #[cfg(feature = "redis")]
    Redis(redis::RedisError),
    /// A stored value could not be read back (a dead letter's history that is not JSON).
    Unreadable(String),
    /// Options given to a store call are not valid (each problem names its field).
    Invalid(steadfast::ConfigError),
    /// The store answered other than asked (fewer rows than written, a reply of an unknown
    /// kind), or a key kept changing under a claim.
    Unexpected(String),
}

impl StoreError {
    pub(crate) fn contended(target: &Target) -> Self {
        StoreError::Contended {
            target: target.clone(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            StoreError::Database(e) => write!(f, "database: {e}"),
            #[cfg(feature = "sqlite")]
            StoreError::Sqlite(e) => write!(f, "database: {e}"),
            StoreError::Corrupt { target, message } => {
                write!(f, "the record of {target} is unreadable: {message}")
            }
            StoreError::Contended { target } => {
                write!(f, "the record of {target} kept changing under this write")
            }
            StoreError::Open(message) => write!(f, "cannot open the store: {message}"),
            StoreError::Batch(message) => {
                write!(
                    f,
                    "the batch this write was part of did not commit: {message}"
                )
            }
            StoreError::Closed => {
                f.write_str("the store's writer task is gone (was its runtime shut down?)")
            }
            #[cfg(feature = "redis")]
            StoreError::Redis(e) => write!(f, "redis: {e}"),
            StoreError::Unreadable(message) => write!(f, "a stored value is unreadable: {message}"),
            StoreError::Invalid(e) => write!(f, "invalid options: {e}"),
            StoreError::Unexpected(message) => {
                write!(f, "the store answered unexpectedly: {message}")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            StoreError::Database(e) => Some(e),
            #[cfg(feature = "sqlite")]
            StoreError::Sqlite(e) => Some(e),
            #[cfg(feature = "redis")]
            StoreError::Redis(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}
