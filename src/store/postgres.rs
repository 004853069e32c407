//! PostgreSQL: the cluster store, and an option for a single node.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use super::chat_sql::chat_store_impl;
use super::docs_sql::docs_store_impl;
use super::jobs_sql::jobs_store_impl;
use super::sql::shared_store_impl;
use super::studies_sql::studies_store_impl;
use super::tasks_sql::tasks_store_impl;
use super::video_sql::video_store_impl;
use crate::config::DbKind;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const KIND: DbKind = DbKind::Postgres;
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    const SCHEMA_SQL: &'static str = "SELECT table_name::text, column_name::text \
        FROM information_schema.columns WHERE table_schema = current_schema() \
        AND table_name NOT LIKE '\\_sqlx%'";

    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            // A request waits at most this long for a pooled connection, then gets 503.
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    /// Postgres row locks and the guarded UPDATEs keep concurrent writers correct under the
    /// default isolation; no special begin is needed.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

shared_store_impl!(PgStore, Postgres);
studies_store_impl!(PgStore, Postgres);
chat_store_impl!(PgStore, Postgres);
tasks_store_impl!(PgStore, Postgres);
docs_store_impl!(PgStore, Postgres);
jobs_store_impl!(PgStore, Postgres);
video_store_impl!(PgStore, Postgres);
