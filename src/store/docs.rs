//! The document query family: co-edited post bodies (their update log, snapshot and version
//! history) and post locks. The `PostDoc` actor is the only writer of a post's log; it
//! checks who may edit when a connection attaches, so the log writes here take no user.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Millis, StoreResult};
use crate::chat::Author;
use crate::ids::{PostId, StudyId, UserId};
use crate::tasks::PostSummary;

/// Versions kept per post: automatic ones beyond this are pruned oldest first; named ones
/// are refused beyond it. A history a person can scan, and a bound on stored text.
pub const MAX_AUTO_VERSIONS: i64 = 100;
pub const MAX_NAMED_VERSIONS: i64 = 50;

/// What a `PostDoc` actor loads.
#[derive(Debug, Clone)]
pub struct DocRecord {
    pub study_id: StudyId,
    pub author_id: UserId,
    pub locked: bool,
    /// The post's stored body: the document's first content when it has no log yet (a post
    /// written before co-editing, or just created).
    pub body: String,
    /// The compacted state (a v1 update) and the last log seq it covers.
    pub snapshot: Option<(Vec<u8>, i64)>,
    /// Log rows after the snapshot, oldest first.
    pub updates: Vec<(i64, Vec<u8>)>,
}

/// One entry of a post's version history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocVersion {
    pub id: i64,
    /// Given when the version was taken by name; `null` for automatic ones.
    pub name: Option<String>,
    pub created_at: Millis,
    /// Who asked for a named version; `null` for automatic ones.
    pub created_by: Option<Author>,
    /// Who edited the body between the previous version and this one.
    pub authors: Vec<Author>,
    /// The body's length in characters.
    pub chars: i64,
}

/// A version to store.
#[derive(Debug, Clone)]
pub struct NewDocVersion<'a> {
    pub post: PostId,
    pub name: Option<&'a str>,
    pub body: &'a str,
    pub authors: &'a [UserId],
    pub created_by: Option<UserId>,
    pub now: Millis,
}

#[async_trait]
pub trait DocStore: Send + Sync {
    /// The post's document: snapshot, log after it, and what the actor checks access with.
    async fn doc_record(&self, post: PostId) -> StoreResult<DocRecord>;
    /// Appends one log row. `seq` is the actor's next; a taken seq (another writer) fails
    /// with a conflict and writes nothing; a deleted post with `Rule::NotFound`.
    async fn doc_append(&self, post: PostId, seq: i64, data: &[u8], now: Millis)
    -> StoreResult<()>;
    /// Replaces the snapshot with `state` (covering the log through `upto_seq`) and deletes
    /// the rows it covers, in one transaction.
    async fn doc_compact(
        &self,
        post: PostId,
        state: &[u8],
        upto_seq: i64,
        now: Millis,
    ) -> StoreResult<()>;
    /// Copies the document's text into the post row (for listing, search and readers of the
    /// HTTP API) and bumps its version. Returns the new summary and study.
    async fn doc_refresh_post(
        &self,
        post: PostId,
        body: &str,
        body_html: &str,
        now: Millis,
    ) -> StoreResult<(StudyId, PostSummary)>;
    /// Locks or unlocks a post (the study's leader; `Rule::NotLeader` for other members).
    async fn set_post_locked(
        &self,
        study: StudyId,
        post: PostId,
        user: UserId,
        locked: bool,
        now: Millis,
    ) -> StoreResult<PostSummary>;
    /// Stores a version. Named ones past [`MAX_NAMED_VERSIONS`] are refused
    /// (`Rule::VersionLimit`); automatic ones past [`MAX_AUTO_VERSIONS`] push out the oldest.
    async fn add_doc_version(&self, v: &NewDocVersion<'_>) -> StoreResult<DocVersion>;
    /// A post's versions, newest first (members).
    async fn doc_versions(
        &self,
        study: StudyId,
        post: PostId,
        user: UserId,
    ) -> StoreResult<Vec<DocVersion>>;
    /// One version with its text (members).
    async fn doc_version(
        &self,
        study: StudyId,
        post: PostId,
        version: i64,
        user: UserId,
    ) -> StoreResult<(DocVersion, String)>;
    /// The ids of a study's posts (to tell their documents about membership changes).
    async fn post_ids(&self, study: StudyId) -> StoreResult<Vec<PostId>>;
}
