//! SQLite: the embedded single-machine default.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::chat_sql::chat_store_impl;
use super::docs_sql::docs_store_impl;
use super::jobs_sql::jobs_store_impl;
use super::sql::shared_store_impl;
use super::studies_sql::studies_store_impl;
use super::tasks_sql::tasks_store_impl;
use super::video_sql::video_store_impl;
use crate::config::DbKind;

/// How long a writer waits for SQLite's single write lock before failing: long enough to ride
/// out a group commit, short enough that a stuck writer surfaces as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    const KIND: DbKind = DbKind::Sqlite;
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
    const SCHEMA_SQL: &'static str = "SELECT m.name, p.name FROM sqlite_master m \
        JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
        AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'";

    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL lets readers run beside the one writer.
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit: an acknowledged write survives not only a
            // killed process but a power cut. Group commit amortizes the cost.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Write transactions take SQLite's write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// transaction that reads and then writes fails at once with SQLITE_BUSY when another
    /// writer got there first, instead of waiting out the busy timeout.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

shared_store_impl!(SqliteStore, Sqlite);
studies_store_impl!(SqliteStore, Sqlite);
chat_store_impl!(SqliteStore, Sqlite);
tasks_store_impl!(SqliteStore, Sqlite);
docs_store_impl!(SqliteStore, Sqlite);
jobs_store_impl!(SqliteStore, Sqlite);
video_store_impl!(SqliteStore, Sqlite);
