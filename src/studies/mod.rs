//! The study domain: statuses and their transitions, roles and what each may do, input rules,
//! and the shapes the API returns. No IO here; the store and the `Study` actor use these.

pub mod markdown;
pub mod rules;

use serde::{Deserialize, Serialize};

use crate::ids::{ApplicationId, NotificationId, ReviewId, StudyId};
use crate::store::{Millis, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StudyStatus {
    Recruiting,
    InProgress,
    Completed,
}

impl StudyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyStatus::Recruiting => "recruiting",
            StudyStatus::InProgress => "in_progress",
            StudyStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "recruiting" => Some(StudyStatus::Recruiting),
            "in_progress" => Some(StudyStatus::InProgress),
            "completed" => Some(StudyStatus::Completed),
            _ => None,
        }
    }

    /// Recruiting and in progress go back and forth; completed is final.
    pub fn can_become(self, to: StudyStatus) -> bool {
        self != to && self != StudyStatus::Completed
    }
}

/// The caller's relation to one study. "Not found" and "not allowed" look the same from
/// outside: every denial below becomes `404 not_found` (or a rule's own code where the
/// caller may know the study exists).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    None,
    Applicant,
    Member,
    Leader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Applicant => "applicant",
            Role::Member => "member",
            Role::Leader => "leader",
        }
    }

    /// Members and the leader.
    pub fn is_member(self) -> bool {
        matches!(self, Role::Member | Role::Leader)
    }
    pub fn can_view_members(self) -> bool {
        self.is_member()
    }
    /// Edit, change status, decide applications, remove members, transfer the lead.
    pub fn can_manage(self) -> bool {
        self == Role::Leader
    }
    /// Apply: only someone with no relation yet (rules like banned/full come on top).
    pub fn can_apply(self) -> bool {
        self == Role::None
    }
    pub fn can_leave(self) -> bool {
        self == Role::Member
    }
}

/// A study as lists show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudySummary {
    pub id: StudyId,
    pub title: String,
    pub tags: Vec<String>,
    pub status: StudyStatus,
    pub capacity: i64,
    pub member_count: i64,
    pub recruit_opens_on: String,
    pub recruit_closes_on: String,
    pub starts_on: String,
    pub ends_on: String,
    pub leader: User,
    pub created_at: Millis,
    #[serde(skip)]
    pub description: String,
    #[serde(skip)]
    pub updated_at: Millis,
}

/// A study's page: the summary plus the description and the caller's relation to it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudyDetail {
    #[serde(flatten)]
    pub summary: StudySummary,
    pub description: String,
    pub description_html: String,
    pub my_role: Role,
    pub bookmarked: bool,
    #[schema(required = true)]
    pub my_application: Option<ApplicationRef>,
    /// The recruiting post's files; listed for members only (only they may download).
    pub attachments: Vec<crate::tasks::StoredFile>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApplicationRef {
    pub id: ApplicationId,
    pub status: ApplicationStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Pending,
    Accepted,
    Rejected,
    Withdrawn,
}

impl ApplicationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationStatus::Pending => "pending",
            ApplicationStatus::Accepted => "accepted",
            ApplicationStatus::Rejected => "rejected",
            ApplicationStatus::Withdrawn => "withdrawn",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "accepted" => ApplicationStatus::Accepted,
            "rejected" => ApplicationStatus::Rejected,
            "withdrawn" => ApplicationStatus::Withdrawn,
            _ => ApplicationStatus::Pending,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Application {
    pub id: ApplicationId,
    pub study_id: StudyId,
    pub status: ApplicationStatus,
    pub message: String,
    #[schema(required = true)]
    pub reason: Option<String>,
    pub created_at: Millis,
    #[schema(required = true)]
    pub decided_at: Option<Millis>,
    /// The applicant (carried so a reply can travel between nodes intact).
    pub user_id: crate::ids::UserId,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub joined_at: Millis,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Review {
    pub id: ReviewId,
    pub study_id: StudyId,
    pub study_title: String,
    pub author: User,
    pub reviewee: User,
    pub rating: i64,
    pub body: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudyRef {
    pub id: StudyId,
    pub title: String,
}

/// What others wrote about a user, and what they finished: the profile, and what a leader
/// sees about each applicant.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Reputation {
    #[schema(required = true)]
    pub review_average: Option<f64>,
    pub review_count: i64,
    pub reviews: Vec<Review>,
    pub completed_studies: Vec<StudyRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Notification {
    pub id: NotificationId,
    pub kind: String,
    /// What the notification is about; its fields depend on `kind`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub created_at: Millis,
    pub read: bool,
    /// Whose it is (always the reader over HTTP; carried so a live push can travel between
    /// nodes intact).
    pub user_id: crate::ids::UserId,
}

/// After withdrawing an application, applying to the same study again waits this long: a
/// person changing their mind is fine; an apply/withdraw loop notifying the leader is not.
pub const REAPPLY_COOLDOWN_MS: i64 = 10 * 60 * 1000;

/// A notification to store (in the same transaction as its cause) and then push.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub user_id: crate::ids::UserId,
    pub kind: &'static str,
    pub payload: serde_json::Value,
    /// Notifications with the same key for the same user collapse into one unread row (the
    /// later one updates it and is not pushed again): `kind:thing:who`.
    pub collapse_key: Option<String>,
}

/// Which page of the study list, and how it is filtered and sorted.
#[derive(Debug, Clone, Default)]
pub struct StudyQuery {
    pub q: Option<String>,
    pub status: Option<StudyStatus>,
    pub tags: Vec<String>,
    pub sort: StudySort,
    pub cursor: Option<StudyCursor>,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StudySort {
    #[default]
    Newest,
    Deadline,
}

/// Keyset position: the last row's sort key. Newest sorts by id; deadline by (closes_on, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyCursor {
    pub closes_on: Option<String>,
    pub id: i64,
}

impl StudyCursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        let raw = format!("{}|{}", self.closes_on.as_deref().unwrap_or(""), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (date, id) = raw.split_once('|')?;
        let id = id.parse().ok()?;
        let closes_on = if date.is_empty() {
            None
        } else {
            rules::date("cursor", date).ok()?;
            Some(date.to_string())
        };
        Some(StudyCursor { closes_on, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use StudyStatus::*;
        assert!(Recruiting.can_become(InProgress));
        assert!(InProgress.can_become(Recruiting));
        assert!(Recruiting.can_become(Completed));
        assert!(InProgress.can_become(Completed));
        assert!(!Completed.can_become(Recruiting));
        assert!(!Completed.can_become(InProgress));
        assert!(!Recruiting.can_become(Recruiting));
    }

    #[test]
    fn roles() {
        assert!(Role::Leader.can_manage() && !Role::Member.can_manage());
        assert!(Role::Member.can_view_members() && !Role::Applicant.can_view_members());
        assert!(
            Role::None.can_apply() && !Role::Applicant.can_apply() && !Role::Member.can_apply()
        );
        assert!(Role::Member.can_leave() && !Role::Leader.can_leave());
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = StudyCursor {
            closes_on: Some("2026-12-01".into()),
            id: 42,
        };
        assert_eq!(StudyCursor::decode(&c.encode()), Some(c));
        let c = StudyCursor {
            closes_on: None,
            id: 7,
        };
        assert_eq!(StudyCursor::decode(&c.encode()), Some(c));
        assert_eq!(StudyCursor::decode("!!!"), None);
        use base64::Engine;
        let bad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("'; DROP TABLE|1");
        assert_eq!(StudyCursor::decode(&bad), None);
    }
}
