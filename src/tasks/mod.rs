//! The work a study does together: tasks on a board, posts under each task, and the files
//! attached to posts. Types and input rules live here; the queries in `store/tasks_sql.rs`,
//! the bytes in `storage/`.

pub mod order;
pub mod rules;

use serde::{Deserialize, Serialize};

use crate::chat::Author;
use crate::ids::{FileId, PostId, StudyId, TaskId};
use crate::store::Millis;

/// Tasks one study may hold: a board is read whole, so it must stay small enough to send
/// in one response.
pub const MAX_TASKS_PER_STUDY: i64 = 500;
/// Attachments one post may carry (the bound).
pub const MAX_ATTACHMENTS: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    Done,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(TaskStatus::Open),
            "done" => Some(TaskStatus::Done),
            _ => None,
        }
    }
}

/// Which tasks a board shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskFilter {
    All,
    Open,
    Done,
    /// Assigned to the caller.
    Mine,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub study_id: StudyId,
    pub title: String,
    pub description: String,
    /// Rendered when written.
    pub description_html: String,
    #[schema(required = true)]
    pub due_on: Option<String>,
    #[schema(required = true)]
    pub assignee: Option<Author>,
    pub status: TaskStatus,
    pub created_by: Author,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[schema(required = true)]
    pub completed_at: Option<Millis>,
    pub post_count: i64,
    /// Bumped by every change to the fields above (see migration 0006).
    pub version: i64,
}

/// A validated task, new or edited.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFields {
    pub title: String,
    pub description: String,
    pub description_html: String,
    pub due_on: Option<String>,
    pub assignee: Option<crate::ids::UserId>,
    pub status: TaskStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PostSummary {
    pub id: PostId,
    pub task_id: TaskId,
    pub title: String,
    pub author: Author,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub attachment_count: i64,
    /// Locked by the leader: the body is read-only for everyone else.
    pub locked: bool,
    /// Bumped by every change to the fields above, the attachment count included.
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Post {
    pub id: PostId,
    pub task_id: TaskId,
    pub study_id: StudyId,
    pub title: String,
    pub body: String,
    /// Rendered when written.
    pub body_html: String,
    pub author: Author,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub attachments: Vec<StoredFile>,
    /// Locked by the leader: the body is read-only for everyone else.
    pub locked: bool,
    pub version: i64,
}

/// A file's metadata; the bytes are in object storage under `object_key`.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StoredFile {
    pub id: FileId,
    #[serde(skip)]
    pub study_id: StudyId,
    #[serde(skip)]
    pub object_key: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_by: Author,
    pub created_at: Millis,
    /// Where members download it.
    pub url: String,
}

impl StoredFile {
    pub fn download_url(study: StudyId, id: FileId) -> String {
        format!("/api/studies/{study}/files/{id}")
    }
}

/// What an upload stored, for the row that makes it visible.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub study_id: StudyId,
    /// `None`: an attachment of the study's recruiting post.
    pub post_id: Option<PostId>,
    pub uploader: crate::ids::UserId,
    pub object_key: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub now: Millis,
    /// The study's storage quota in bytes; the insert fails with `QuotaExceeded` beyond it.
    pub quota: i64,
}

/// Keyset cursor for a task's post list (newest first): the last id seen.
pub fn encode_cursor(id: PostId) -> String {
    id.0.to_string()
}

pub fn decode_cursor(s: &str) -> Option<PostId> {
    s.parse::<i64>().ok().filter(|i| *i > 0).map(PostId)
}
