//! The task query family: tasks, posts and file metadata. As everywhere in the store, each
//! method that acts for a user checks that user's role inside the transaction that reads or
//! writes, and answers `Rule::NotFound` when the user is not a member of the study (or the
//! thing belongs to another study), so "missing" and "forbidden" look the same.

use std::collections::HashSet;

use async_trait::async_trait;

use super::{Millis, StoreResult};
use crate::ids::{FileId, PostId, StudyId, TaskId, UserId};
use crate::studies::Notification;
use crate::tasks::rules::PostFields;
use crate::tasks::{NewFile, Post, PostSummary, StoredFile, Task, TaskFields, TaskFilter};

/// Object keys whose rows a delete removed: the caller deletes the objects after the commit,
/// so a row never points at a missing object.
pub type RemovedObjects = Vec<String>;

#[async_trait]
pub trait TaskStore: Send + Sync {
    async fn create_task(
        &self,
        study: StudyId,
        user: UserId,
        fields: &TaskFields,
        now: Millis,
    ) -> StoreResult<(Task, Vec<Notification>)>;
    /// The board, ordered by due date (undated last), then id.
    async fn tasks(
        &self,
        study: StudyId,
        user: UserId,
        filter: TaskFilter,
    ) -> StoreResult<Vec<Task>>;
    async fn task(&self, study: StudyId, task: TaskId, user: UserId) -> StoreResult<Task>;
    /// Open tasks assigned to `user` in the studies they are still in, soonest due first
    /// (undated last), at most `limit`, each with its study's title.
    async fn my_open_tasks(&self, user: UserId, limit: i64) -> StoreResult<Vec<(Task, String)>>;
    /// Writes `fields` if the task is still at version `read` (else `Rule::Stale`). A new
    /// assignee other than `user` gets a `task_assigned` notification (as on create),
    /// stored in the same transaction and returned for pushing.
    #[allow(clippy::too_many_arguments)]
    async fn update_task(
        &self,
        study: StudyId,
        task: TaskId,
        user: UserId,
        fields: &TaskFields,
        read: i64,
        now: Millis,
    ) -> StoreResult<(Task, Vec<Notification>)>;
    /// Deletes the task with its posts and their files.
    async fn delete_task(
        &self,
        study: StudyId,
        task: TaskId,
        user: UserId,
    ) -> StoreResult<RemovedObjects>;

    async fn create_post(
        &self,
        study: StudyId,
        task: TaskId,
        user: UserId,
        fields: &PostFields,
        now: Millis,
    ) -> StoreResult<Post>;
    /// A task's posts, newest first, optionally with a title search, before a keyset cursor.
    async fn posts(
        &self,
        study: StudyId,
        task: TaskId,
        user: UserId,
        q: Option<&str>,
        before: Option<PostId>,
        limit: i64,
    ) -> StoreResult<Vec<PostSummary>>;
    async fn post(&self, study: StudyId, post: PostId, user: UserId) -> StoreResult<Post>;
    /// The author only; writes `fields` if the post is still at version `read` (else
    /// `Rule::Stale`).
    #[allow(clippy::too_many_arguments)]
    async fn update_post(
        &self,
        study: StudyId,
        post: PostId,
        user: UserId,
        fields: &PostFields,
        read: i64,
        now: Millis,
    ) -> StoreResult<Post>;
    /// The author or the leader. Returns the post's task and its files' objects.
    async fn delete_post(
        &self,
        study: StudyId,
        post: PostId,
        user: UserId,
    ) -> StoreResult<(TaskId, RemovedObjects)>;

    /// May `user` attach a file here (the post's author, or the leader for the recruiting
    /// post; the post under its attachment limit)? Returns the study's bytes in use.
    async fn upload_allowed(
        &self,
        study: StudyId,
        post: Option<PostId>,
        user: UserId,
    ) -> StoreResult<i64>;
    /// Records a stored object, re-checking everything `upload_allowed` checked and charging
    /// the quota, all in one transaction.
    async fn add_file(&self, new: &NewFile) -> StoreResult<StoredFile>;
    /// A file of the study, for a member.
    async fn file(&self, study: StudyId, file: FileId, user: UserId) -> StoreResult<StoredFile>;
    /// The uploader or the leader. Returns the file's post (if any) and its object.
    async fn delete_file(
        &self,
        study: StudyId,
        file: FileId,
        user: UserId,
    ) -> StoreResult<(Option<PostId>, RemovedObjects)>;
    /// The recruiting post's attachments, for a member.
    async fn study_files(&self, study: StudyId, user: UserId) -> StoreResult<Vec<StoredFile>>;
    /// Deletes the study and everything in it (leader). Returns its files' objects.
    async fn delete_study(&self, study: StudyId, user: UserId) -> StoreResult<RemovedObjects>;
    /// Which of these object keys a file row names (for the orphan sweep).
    async fn known_object_keys(&self, keys: &[String]) -> StoreResult<HashSet<String>>;
}
