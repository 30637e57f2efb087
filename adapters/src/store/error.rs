//! Storage failures: [`StoreError`] (with `is_unavailable`, which decides 503) and the typed
//! optimistic-concurrency [`Conflict`]; how sqlx and migration errors are classified.

/// Optimistic concurrency failure: the stream moved on since the command read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream version conflict: expected {expected}, actual {actual}")]
pub struct Conflict {
    /// The version the command was decided on.
    pub expected: u64,
    /// The stream's version now.
    pub actual: u64,
}

/// Storage failures. `Display` never contains row contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The command lost a race on its stream: reload and decide again (HTTP 409 / retry).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The database cannot be reached right now: connection refused or closed, no pooled
    /// connection within the acquire timeout, I/O, the server shutting down or not yet
    /// accepting connections (SQLSTATE class 08, 57P01–57P03, 53300), a session ended for
    /// sitting idle in a transaction (25P03), SQLite busy or locked.
    /// Transient: retry later (HTTP 503, Cloud API code 131016). The pool reconnects by itself
    /// once the database is back.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement or failed in a way a retry does not cure (a bug, a
    /// schema that does not match): HTTP 500, code 131000, alert.
    #[error("database error: {0}")]
    Database(String),
    /// Stored data could not be opened or parsed: corruption or tampering (HTTP 500, alert).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A key needed to write was destroyed: the erasure fence (HTTP 400, code 131026).
    #[error("key was destroyed")]
    KeyDestroyed,
    /// The request itself was malformed (a bug in the caller).
    #[error("invalid store request: {0}")]
    Invalid(&'static str),
    /// A write guarded by a lease ([`super::Fence`]) whose lease another node has taken over
    /// since: nothing was written; the writer stops that work (ADR 0016). Holds the lease's
    /// name (a role and ids, never personal).
    #[error("lease {0} is held by another node now")]
    Fenced(String),
}

impl StoreError {
    /// Whether a guarded write was refused because its lease was taken over: the writer stops
    /// that work; not a failure to alert on.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced(_))
    }

    /// Whether the failure is transient (the database is down, unreachable or busy) rather
    /// than a bug or corruption: the caller answers 503 and retries later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Postgres SQLSTATEs that mean "the server cannot serve this connection now": the whole
/// connection-exception class 08, admin / crash shutdown and cannot-connect-now (57P01–57P03),
/// too many connections (53300), and a session the server ended for sitting idle inside a
/// transaction (25P03: this node was paused; its transaction rolled back, retry).
fn pg_state_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25P03")
}

/// The primary SQLite result code of an extended one.
fn sqlite_primary(code: &str) -> Option<i32> {
    code.parse::<i32>().ok().map(|c| c & 0xff)
}

/// SQLite result codes that mean "try again": BUSY (5) and LOCKED (6).
fn sqlite_code_unavailable(code: &str) -> bool {
    matches!(sqlite_primary(code), Some(5 | 6))
}

/// SQLite result codes that mean the file is damaged: CORRUPT (11) and NOTADB (26).
fn sqlite_code_corrupt(code: &str) -> bool {
    matches!(sqlite_primary(code), Some(11 | 26))
}

/// Whether a sqlx error is transient: the database is unreachable, gone or busy.
fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => match db.code() {
            Some(code)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                pg_state_unavailable(&code)
            }
            Some(code) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                sqlite_code_unavailable(&code)
            }
            _ => false,
        },
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors name the statement's problem or the connection's, never bound values.
        if sqlx_unavailable(&e) {
            return StoreError::Unavailable(e.to_string());
        }
        let sqlite_corrupt = e.as_database_error().is_some_and(|db| {
            db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && db.code().is_some_and(|c| sqlite_code_corrupt(&c))
        });
        if sqlite_corrupt {
            StoreError::Corrupt("the database file is damaged")
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        let transient = match &e {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => {
                sqlx_unavailable(inner)
            }
            _ => false,
        };
        if transient {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_and_result_codes_are_classified() {
        for code in [
            "08000", "08001", "08003", "08006", "57P01", "57P02", "57P03", "53300", "25P03",
        ] {
            assert!(pg_state_unavailable(code), "{code}");
        }
        for code in ["42601", "23505", "40001", "XX000", "57014"] {
            assert!(!pg_state_unavailable(code), "{code}");
        }
        // BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT, LOCKED, LOCKED_SHAREDCACHE.
        for code in ["5", "261", "517", "6", "262"] {
            assert!(sqlite_code_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "11", "26", "x"] {
            assert!(!sqlite_code_unavailable(code), "{code}");
        }
        assert!(sqlite_code_corrupt("11") && sqlite_code_corrupt("26"));
        assert!(!sqlite_code_corrupt("5"));
    }

    #[test]
    fn connection_failures_are_unavailable_and_the_rest_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [
            sqlx::Error::Io(refused),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
        ] {
            assert!(StoreError::from(e).is_unavailable());
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("c".into()),
            sqlx::Error::Protocol("bad".into()),
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Database(_)));
        }
        assert!(!StoreError::Corrupt("x").is_unavailable());
        assert!(!StoreError::KeyDestroyed.is_unavailable());
    }
}
