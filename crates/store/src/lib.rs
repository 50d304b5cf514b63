//! The gateway's durable state in one SQLite file: sessions, their transcripts,
//! agent runs, idempotency keys, the messaging channels' inbound log, reply outbox
//! and pairing state, and the paired operator devices (device tokens as digests only).
//!
//! The file is created with mode 0600 and runs in WAL mode. A [`Store`] owns one
//! connection behind a mutex so it can be shared between threads and tasks, and
//! every multi-statement write runs in a single transaction, so a crash at any
//! point leaves the database consistent. All timestamps are epoch milliseconds
//! supplied by the caller, which keeps the store deterministic under test.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, Row};
use serde::Serialize;

mod channels;
mod devices;
mod handle;
mod prune;
mod runs;
mod schema;
mod sessions;
#[cfg(test)]
mod tests;

pub use channels::{InboundRow, NewInbound, NewOutbox, OutboxRow, PairingOutcome, PairingRequest};
pub use devices::{DeviceRequestRow, DeviceRow, DeviceTokenRow};
pub use handle::{StoreHandle, DEFAULT_QUEUE};
pub use prune::{PruneCounts, Retention};
pub use runs::INTERRUPTED_ERROR;

/// Everything that can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not found: {0}")]
    NotFound(String),
    /// Creating the database file failed (before SQLite is involved).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The file was migrated by a newer build; refusing beats silently misreading it.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The caller passed a value the store refuses (an unknown status, a code generator
    /// that keeps colliding).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The store thread is gone or a call on it panicked.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// One chat session, addressed by its canonical key (e.g. `agent:main:main`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub key: String,
    /// Changes on every reset; transcript entries hang off this, not off `key`.
    pub session_id: String,
    pub agent_id: String,
    pub model_override: Option<String>,
    pub label: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_activity_at: Option<i64>,
    pub status: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// One stored transcript entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryRow {
    /// UUID v4.
    pub id: String,
    pub session_key: String,
    pub session_id: String,
    /// 1-based position within `session_id`.
    pub seq: i64,
    pub role: String,
    pub content: serde_json::Value,
    pub run_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub usage: Option<serde_json::Value>,
    pub meta: Option<serde_json::Value>,
    pub ts: i64,
}

/// A transcript entry to append; the store assigns `id`, `session_id` and `seq`.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    pub session_key: &'a str,
    pub role: &'a str,
    pub content: &'a serde_json::Value,
    pub run_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub usage: Option<&'a serde_json::Value>,
    pub meta: Option<&'a serde_json::Value>,
    pub ts: i64,
}

/// One agent run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub session_key: String,
    pub session_id: String,
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub stop_reason: Option<String>,
    pub error: Option<String>,
    pub result: Option<serde_json::Value>,
}

/// Outcome of [`Store::claim_idempotency`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First time this key was seen: the caller should do the work.
    New,
    /// A retry: the work already started under this run.
    Existing { run_id: String },
}

/// Handle to the database; cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
    /// Dropping it stops the background checkpointer.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the background thread moves the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);

/// Checkpoints (which fsync) run on their own connection and thread, so no request waits
/// for the disk; the request path only appends to the WAL.
fn spawn_checkpointer(path: &Path) -> Option<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path).ok()?;
    conn.busy_timeout(Duration::from_millis(5000)).ok()?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || loop {
            match rx.recv_timeout(CHECKPOINT_EVERY) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
                _ => {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                    return;
                }
            }
        })
        .ok()?;
    Some(tx)
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Create the file ourselves so it is never world-readable, not even briefly;
        // SQLite gives its -wal/-shm side files the same mode as the main file.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let conn = Connection::open(path)?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A private, throw-away database (for tests).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Store, StoreError> {
        // Set first, so even the WAL switch and the migrations wait out other processes.
        conn.busy_timeout(Duration::from_millis(5000))?;
        // The pragma answers with the resulting mode; in-memory databases stay "memory".
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        // NORMAL is durable against application crashes in WAL mode and far cheaper than FULL.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
        schema::migrate(&mut conn)?;
        let checkpointer = match &path {
            Some(p) => {
                let c = spawn_checkpointer(p);
                if c.is_some() {
                    // The background thread checkpoints; commits only append to the WAL.
                    conn.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
                }
                c
            }
            None => None,
        };
        Ok(Store {
            conn: Mutex::new(conn),
            path,
            _checkpointer: checkpointer,
        })
    }

    /// The file this store was opened from (`None` when in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied write behind (an
        // unfinished transaction rolls back on drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads a TEXT column holding JSON; a malformed value surfaces as a conversion error.
fn json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn opt_json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))),
    }
}

fn opt_json_text(v: Option<&serde_json::Value>) -> Result<Option<String>, StoreError> {
    Ok(v.map(serde_json::to_string).transpose()?)
}

/// SQLite integers are i64; a `usize` beyond that is clamped rather than wrapped.
fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Counts coming back from SQLite are never negative; clamp instead of panicking.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}
