//! The relational store: one [`Store`] trait, a SQLite and a Postgres implementation.
//!
//! The rest of the server only sees `Arc<dyn Store>`. Both implementations share their query
//! text (see `sql.rs`), and the same conformance suite (`tests/it/store.rs`) runs on both.
//! `sqlx::Any` cannot decode the same values from both dialects, which is why this is a trait
//! with two implementations rather than one `Any` pool.

pub mod chat;
mod chat_sql;
pub mod docs;
mod docs_sql;
pub mod jobs;
mod jobs_sql;
mod postgres;
mod sql;
mod sqlite;
pub mod studies;
mod studies_sql;
pub mod tasks;
mod tasks_sql;
pub mod video;
mod video_sql;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::chat::{NewChatMessage, NewDirectMessage};
use crate::config::{DbKind, Settings};
use crate::ids::{RoomId, SessionId, UserId};

pub use chat::ChatStore;
pub use docs::DocStore;
pub use jobs::JobStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use studies::{Rule, StudyStore};
pub use tasks::TaskStore;
pub use video::VideoStore;

/// Milliseconds since the Unix epoch: the one time format in the store.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub login_id: String,
    pub display_name: String,
    #[serde(skip)]
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    /// Already normalized (lower-cased) and validated.
    pub login_id: String,
    pub display_name: String,
    pub password_hash: String,
    pub now: Millis,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub token_hash: Vec<u8>,
    pub now: Millis,
    pub expires_at: Millis,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    /// The session's user, read with it (one query per authenticated request).
    pub user: User,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A keyed actor's claim on its key as the store checks it: writes under a token lower
/// than the highest one the store has seen for the key are refused (`Rule::Fenced`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub key: String,
    pub token: i64,
}

impl Fence {
    pub fn of(lease: crate::registry::Lease) -> Fence {
        Fence {
            key: lease.key.to_string(),
            // Tokens are microseconds since the epoch: far inside i64.
            token: lease.token as i64,
        }
    }
}

/// A write on a live path, committed by the persistence actor in a group with others.
/// Serializable so a write can be handed to the node that owns the actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DurableWrite {
    /// Upsert one preference of one user.
    UserPref {
        user_id: UserId,
        key: String,
        value: String,
        at: Millis,
    },
    /// A room's next messages, all or none (their seqs must not leave a gap).
    ChatMessages {
        room_id: RoomId,
        messages: Vec<NewChatMessage>,
        /// The writing owner's lease: refused if a newer owner took the room over.
        #[serde(default)]
        fence: Option<Fence>,
    },
    ChatEdit {
        room_id: RoomId,
        seq: i64,
        body: String,
        at: Millis,
    },
    ChatDelete {
        room_id: RoomId,
        seq: i64,
        at: Millis,
    },
    ChatReaction {
        room_id: RoomId,
        seq: i64,
        user_id: UserId,
        emoji: String,
        on: bool,
    },
    /// Moves a read marker forward (never back).
    ChatRead {
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    },
    /// A conversation's next direct messages, all or none.
    DirectMessages {
        pair: (UserId, UserId),
        messages: Vec<NewDirectMessage>,
        #[serde(default)]
        fence: Option<Fence>,
    },
    /// Moves a reader's marker in a conversation forward (never back).
    DirectRead {
        pair: (UserId, UserId),
        reader: UserId,
        seq: i64,
    },
}

/// Preferences one user keeps: UI settings, not storage.
pub const MAX_PREFS: i64 = 100;

/// Which uniqueness rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("this login id is taken")]
    LoginIdTaken,
    #[error("this display name is taken")]
    DisplayNameTaken,
    /// A uniqueness rule no caller expects (a bug or a race we did not foresee).
    #[error("this conflicts with something that already exists")]
    Other,
}

impl Conflict {
    pub fn code(self) -> &'static str {
        match self {
            Conflict::LoginIdTaken => "login_id_taken",
            Conflict::DisplayNameTaken => "display_name_taken",
            Conflict::Other => "conflict",
        }
    }
}

/// The unique constraints a write can break on purpose, by name: Postgres reports the
/// constraint's name; SQLite reports its table and columns (`UNIQUE constraint failed:
/// users.login_id`). Anything else is [`Conflict::Other`].
/// (Postgres constraint name, SQLite columns, the rule it stands for).
type UniqueRule = (&'static str, &'static str, fn() -> StoreError);

const UNIQUE_RULES: &[UniqueRule] = &[
    ("users_login_id_key", "users.login_id", || {
        StoreError::Conflict(Conflict::LoginIdTaken)
    }),
    (
        "users_display_name_key_key",
        "users.display_name_key",
        || StoreError::Conflict(Conflict::DisplayNameTaken),
    ),
    (
        "applications_one_pending",
        "applications.study_id, applications.user_id",
        || StoreError::Rule(Rule::ApplicationExists),
    ),
    (
        "reviews_study_id_author_id_reviewee_id_key",
        "reviews.study_id, reviews.author_id, reviews.reviewee_id",
        || StoreError::Rule(Rule::ReviewExists),
    ),
    // A seq taken or a client id stored before: the sequenced actors tell the two apart by
    // looking the client ids up.
    (
        "chat_messages_pkey",
        "chat_messages.room_id, chat_messages.seq",
        || StoreError::Rule(Rule::DuplicateMessage),
    ),
    (
        "chat_messages_room_id_author_id_client_id_key",
        "chat_messages.room_id, chat_messages.author_id, chat_messages.client_id",
        || StoreError::Rule(Rule::DuplicateMessage),
    ),
    (
        "direct_messages_pkey",
        "direct_messages.user_a, direct_messages.user_b, direct_messages.seq",
        || StoreError::Rule(Rule::DuplicateMessage),
    ),
    (
        "direct_messages_user_a_user_b_sender_id_client_id_key",
        "direct_messages.user_a, direct_messages.user_b, direct_messages.sender_id, direct_messages.client_id",
        || StoreError::Rule(Rule::DuplicateMessage),
    ),
];

/// Maps a unique violation to the rule it broke (see [`UNIQUE_RULES`]).
fn unique_violation(constraint: Option<&str>, message: &str) -> StoreError {
    let sqlite_columns = message
        .split_once("constraint failed: ")
        .map(|(_, cols)| cols.trim());
    UNIQUE_RULES
        .iter()
        .find(|(pg, sqlite, _)| constraint == Some(*pg) || sqlite_columns == Some(*sqlite))
        .map_or(StoreError::Conflict(Conflict::Other), |(_, _, rule)| rule())
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; nothing was written.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// A domain rule was broken (or the caller may not see the thing); nothing was written.
    #[error("{0}")]
    Rule(Rule),
    /// The database could not be reached (pool timeout, connection refused).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e)
            }
            // The study rules are checked before writing; these catch a race between nodes.
            sqlx::Error::Database(ref d) if d.is_unique_violation() => {
                unique_violation(d.constraint(), d.message())
            }
            other => StoreError::Db(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store:
    StudyStore + ChatStore + TaskStore + DocStore + JobStore + VideoStore + Send + Sync + 'static
{
    fn kind(&self) -> DbKind;
    /// Applies pending migrations of this dialect.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    async fn close(&self);

    async fn create_user(&self, new: &NewUser) -> StoreResult<User>;
    async fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The user and their PHC password hash, by normalized login id.
    async fn user_credentials(&self, login_id: &str) -> StoreResult<Option<(User, String)>>;

    async fn create_session(&self, new: &NewSession) -> StoreResult<SessionId>;
    async fn session_by_token_hash(&self, token_hash: &[u8]) -> StoreResult<Option<SessionRecord>>;
    async fn touch_session(&self, id: SessionId, now: Millis) -> StoreResult<()>;
    /// Marks the session revoked; false if it was already revoked or does not exist.
    async fn revoke_session(&self, id: SessionId, now: Millis) -> StoreResult<bool>;
    /// Deletes sessions revoked, or idle or past their lifetime, before the given instants
    /// (and login addresses unused since `idle_before`).
    async fn purge_sessions(&self, idle_before: Millis, now: Millis) -> StoreResult<u64>;
    /// Whether the account with this (normalized) login id logged in successfully from
    /// this address since `since`.
    async fn logged_in_from(&self, login_id: &str, ip: &str, since: Millis) -> StoreResult<bool>;

    /// Commits every write in one transaction; all or nothing.
    async fn commit_batch(&self, writes: &[DurableWrite]) -> StoreResult<()>;
    /// Raises the key's fence to `fence.token` (a new owner starting); `Rule::Fenced` if a
    /// newer owner raised it further already.
    async fn raise_fence(&self, fence: &Fence) -> StoreResult<()>;
    async fn user_prefs(&self, user_id: UserId) -> StoreResult<Vec<(String, String)>>;

    /// (table, column) of every application table, sorted: for the dialect parity test.
    async fn schema(&self) -> StoreResult<Vec<(String, String)>>;
}

/// Opens the store the settings name, creating the SQLite file (and data dir) if needed.
pub async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = settings.database_url();
    Ok(match settings.db_kind()? {
        DbKind::Sqlite => {
            std::fs::create_dir_all(&settings.data_dir)?;
            Arc::new(SqliteStore::connect(&url, settings.db_max_connections).await?)
        }
        DbKind::Postgres => Arc::new(PgStore::connect(&url, settings.db_max_connections).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_map_by_constraint_and_unknown_ones_are_a_plain_conflict() {
        let pg =
            |name| unique_violation(Some(name), "duplicate key value violates unique constraint");
        let sqlite =
            |cols: &str| unique_violation(None, &format!("UNIQUE constraint failed: {cols}"));
        for e in [pg("users_login_id_key"), sqlite("users.login_id")] {
            assert!(
                matches!(e, StoreError::Conflict(Conflict::LoginIdTaken)),
                "{e:?}"
            );
        }
        for e in [
            pg("users_display_name_key_key"),
            sqlite("users.display_name_key"),
        ] {
            assert!(
                matches!(e, StoreError::Conflict(Conflict::DisplayNameTaken)),
                "{e:?}"
            );
        }
        for e in [
            pg("chat_messages_pkey"),
            sqlite(
                "direct_messages.user_a, direct_messages.user_b, direct_messages.sender_id, direct_messages.client_id",
            ),
        ] {
            assert!(
                matches!(e, StoreError::Rule(Rule::DuplicateMessage)),
                "{e:?}"
            );
        }
        // A session token or an object key colliding is nobody's login id.
        for e in [
            pg("sessions_token_hash_key"),
            sqlite("sessions.token_hash"),
            pg("files_object_key_key"),
            unique_violation(None, "something else"),
        ] {
            assert!(matches!(e, StoreError::Conflict(Conflict::Other)), "{e:?}");
        }
        assert_eq!(Conflict::Other.code(), "conflict");
    }
}
