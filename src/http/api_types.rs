//! The JSON shapes the API answers with, as types: the handlers build these, and the OpenAPI
//! document is derived from the same types, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

// The element types lists answer with, for the handlers' `#[utoipa::path]` declarations.
pub use crate::chat::{ChatMessage, Conversation, DirectMessage, Room};
pub use crate::error::ErrorBody;
pub use crate::store::User;
pub use crate::studies::{
    Application, Member, Notification, Reputation, Review, StudyDetail, StudySummary,
};
pub use crate::tasks::{Post, PostSummary, StoredFile, Task};

/// A list answered in one response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// One page of a list; `next_cursor` continues it (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: User,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrefsEnvelope {
    pub prefs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StudyEnvelope {
    pub study: StudyDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Bookmarked {
    pub bookmarked: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationEnvelope {
    pub application: Application,
}

/// A user with what others wrote about them and what they finished.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub user: User,
    #[serde(flatten)]
    pub reputation: Reputation,
}

/// An application as the leader reviews it: with the applicant's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationWithApplicant {
    #[serde(flatten)]
    pub application: Application,
    pub applicant: Profile,
}

/// One of my applications, with the study it is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyApplication {
    #[serde(flatten)]
    pub application: Application,
    pub study: StudySummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyStudies {
    pub leading: Vec<StudySummary>,
    pub joined: Vec<StudySummary>,
    pub applications: Vec<MyApplication>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewEnvelope {
    pub review: Review,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomEnvelope {
    pub room: Room,
}

/// A page of a conversation, with how far the other side has read (the check marks).
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectHistory {
    pub items: Vec<DirectMessage>,
    pub read_seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileEnvelope {
    pub file: StoredFile,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskEnvelope {
    pub task: Task,
}

/// One of my open tasks, with the title of its study.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyTask {
    #[serde(flatten)]
    pub task: Task,
    pub study_title: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PostEnvelope {
    pub post: Post,
}

/// The bounds a client checks before sending.
#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    pub upload_max_bytes: u64,
    pub study_quota_bytes: u64,
    pub attachments_per_post: i64,
    pub tasks_per_study: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// `local` or `s3`.
    pub storage: &'static str,
}
