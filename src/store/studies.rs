//! The study query family: studies, membership, applications, bookmarks, reviews and the
//! notification inbox. Every method that acts for a user checks that user's role inside the
//! same transaction that reads or writes the data, and answers `Rule::NotFound` for a study
//! the user may not see, so "missing" and "forbidden" look the same.

use async_trait::async_trait;

use super::{Millis, StoreResult, User};
use crate::ids::{ApplicationId, NotificationId, ReviewId, StudyId, UserId};
use crate::studies::rules::StudyFields;
use crate::studies::{
    Application, ApplicationRef, Member, NewNotification, Notification, Reputation, Review, Role,
    StudyQuery, StudyStatus, StudySummary,
};

/// A domain rule a write broke; nothing was written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize,
)]
pub enum Rule {
    #[error("not found")]
    NotFound,
    #[error("the study is not recruiting")]
    NotRecruiting,
    #[error("the study is full")]
    StudyFull,
    #[error("you are already a member of this study")]
    AlreadyMember,
    #[error("you already have an open application to this study")]
    ApplicationExists,
    #[error("you may not apply to this study")]
    Banned,
    #[error("the application is no longer pending")]
    ApplicationNotPending,
    #[error("the leader must hand the lead to a member before leaving")]
    LeaderMustTransfer,
    #[error("this status change is not allowed")]
    InvalidTransition,
    #[error("capacity cannot be below the current member count")]
    CapacityBelowMembers,
    #[error("you already reviewed this member for this study")]
    ReviewExists,
    #[error("that user is not a member of this study")]
    NotAMember,
    #[error("you cannot review yourself")]
    SelfReview,
    #[error("a study has at most 3 open chat rooms")]
    RoomLimit,
    #[error("the room is closed")]
    RoomClosed,
    #[error("a message with this client_id was already stored")]
    DuplicateMessage,
    #[error("a study holds at most 500 tasks")]
    TaskLimit,
    #[error("a post has at most 10 attachments")]
    AttachmentLimit,
    #[error("the study's storage quota is used up")]
    QuotaExceeded,
    #[error("only the author may do this")]
    NotAuthor,
    #[error("the assignee must be a member of the study")]
    AssigneeNotMember,
    #[error("it was changed since it was read; read it again")]
    Stale,
    #[error("you were not members together while the study was in progress")]
    NotStudyMates,
    #[error("reviews open once the study is completed or one of you has left it")]
    ReviewNotOpen,
    #[error("only the one who created it or the leader may delete a task")]
    NotCreator,
    #[error("a user keeps at most 100 preferences")]
    PrefLimit,
    #[error("you withdrew from this study a moment ago; apply again later")]
    ReapplyTooSoon { retry_after_secs: u64 },
    #[error("only the study's leader may do this")]
    NotLeader,
    #[error("the leader locked this post; only the leader may edit it")]
    PostLocked,
    #[error("a post keeps at most 50 named versions; delete one first")]
    VersionLimit,
    #[error("the document would be larger than the server allows")]
    DocumentTooLarge,
    /// A newer owner of the actor key raised its fence: this (old) owner must not write.
    #[error("a newer owner took this over")]
    Fenced,
}

/// The live state a `Study` actor loads.
#[derive(Debug, Clone)]
pub struct StudyState {
    pub title: String,
    pub leader: UserId,
    pub status: StudyStatus,
    pub members: Vec<UserId>,
}

/// Everything the study page needs, read in one transaction.
pub struct StudyView {
    pub study: StudySummary,
    pub role: Role,
    pub bookmarked: bool,
    pub my_application: Option<ApplicationRef>,
}

/// My studies: the ones I lead, the ones I joined, and my applications with their study.
pub struct MyStudies {
    pub leading: Vec<StudySummary>,
    pub joined: Vec<StudySummary>,
    pub applications: Vec<(Application, StudySummary)>,
}

#[async_trait]
pub trait StudyStore: Send + Sync {
    async fn create_study(
        &self,
        leader: UserId,
        f: &StudyFields,
        now: Millis,
    ) -> StoreResult<StudyId>;
    async fn study_view(&self, id: StudyId, viewer: UserId) -> StoreResult<Option<StudyView>>;
    async fn study_state(&self, id: StudyId) -> StoreResult<Option<StudyState>>;
    /// `None` when the study does not exist.
    async fn role_of(&self, id: StudyId, user: UserId) -> StoreResult<Option<Role>>;
    /// One page (`q.limit` rows) of the study list.
    async fn list_studies(&self, q: &StudyQuery) -> StoreResult<Vec<StudySummary>>;
    /// Leader only. Keeps capacity at or above the member count.
    async fn update_study(
        &self,
        id: StudyId,
        leader: UserId,
        f: &StudyFields,
        now: Millis,
    ) -> StoreResult<()>;
    /// Leader only. Returns the notifications for the members.
    async fn set_status(
        &self,
        id: StudyId,
        leader: UserId,
        to: StudyStatus,
        now: Millis,
    ) -> StoreResult<Vec<Notification>>;
    async fn toggle_bookmark(&self, id: StudyId, user: UserId, now: Millis) -> StoreResult<bool>;
    async fn bookmarks(&self, user: UserId) -> StoreResult<Vec<StudySummary>>;
    /// Members and the leader only.
    async fn members(&self, id: StudyId, viewer: UserId) -> StoreResult<Vec<Member>>;
    async fn apply(
        &self,
        id: StudyId,
        user: UserId,
        message: &str,
        now: Millis,
    ) -> StoreResult<(Application, Vec<Notification>)>;
    /// Leader only: every application with its applicant.
    async fn applications(
        &self,
        id: StudyId,
        viewer: UserId,
    ) -> StoreResult<Vec<(Application, User)>>;
    async fn withdraw(
        &self,
        id: StudyId,
        app: ApplicationId,
        user: UserId,
        now: Millis,
    ) -> StoreResult<Application>;
    async fn decide(
        &self,
        id: StudyId,
        app: ApplicationId,
        leader: UserId,
        accept: bool,
        reason: Option<String>,
        now: Millis,
    ) -> StoreResult<(Application, Vec<Notification>)>;
    async fn leave(&self, id: StudyId, user: UserId, now: Millis) -> StoreResult<()>;
    async fn transfer(
        &self,
        id: StudyId,
        leader: UserId,
        to: UserId,
        now: Millis,
    ) -> StoreResult<()>;
    async fn remove_member(
        &self,
        id: StudyId,
        leader: UserId,
        user: UserId,
        ban: bool,
        now: Millis,
    ) -> StoreResult<Vec<Notification>>;
    async fn create_review(
        &self,
        id: StudyId,
        author: UserId,
        reviewee: UserId,
        rating: i64,
        body: &str,
        now: Millis,
    ) -> StoreResult<(Review, Vec<Notification>)>;
    async fn update_review(
        &self,
        id: ReviewId,
        author: UserId,
        rating: Option<i64>,
        body: Option<String>,
        now: Millis,
    ) -> StoreResult<Review>;
    async fn reputation(&self, user: UserId) -> StoreResult<Reputation>;
    /// The reputations of many users in a fixed number of queries (the applicant list).
    async fn reputations(
        &self,
        users: &[UserId],
    ) -> StoreResult<std::collections::HashMap<UserId, Reputation>>;
    async fn my_studies(&self, user: UserId) -> StoreResult<MyStudies>;
    async fn notifications(
        &self,
        user: UserId,
        before: Option<NotificationId>,
        limit: i64,
    ) -> StoreResult<Vec<Notification>>;
    async fn unread_count(&self, user: UserId) -> StoreResult<i64>;
    async fn mark_read(&self, user: UserId, id: NotificationId, now: Millis) -> StoreResult<bool>;
    async fn mark_all_read(&self, user: UserId, now: Millis) -> StoreResult<u64>;
    /// Stores notifications outside a study transaction (used by tests and later issues).
    async fn insert_notifications(
        &self,
        n: &[NewNotification],
        now: Millis,
    ) -> StoreResult<Vec<Notification>>;
    /// When a notification with this collapse key was last stored or refreshed, for
    /// anyone (`None`: never).
    async fn last_collapsed_at(&self, collapse_key: &str) -> StoreResult<Option<Millis>>;
}
