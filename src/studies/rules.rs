//! Input rules for studies, applications and reviews. Each refusal names its field.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::error::ApiError;

pub const TITLE_CHARS: std::ops::RangeInclusive<usize> = 1..=100;
/// Descriptions are documents, not essays: bounded so one study page stays light.
pub const DESCRIPTION_MAX_CHARS: usize = 20_000;
pub const MAX_TAGS: usize = 10;
pub const TAG_CHARS: std::ops::RangeInclusive<usize> = 1..=30;
pub const CAPACITY: std::ops::RangeInclusive<i64> = 2..=100;
pub const APPLICATION_MESSAGE_MAX: usize = 1000;
pub const REVIEW_BODY_MAX: usize = 1000;
pub const REASON_MAX: usize = 500;

/// The fields of a study as a client sends them; all optional so one shape serves create
/// (where they are required) and edit (where absent means unchanged).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyForm {
    #[schema(min_length = 1, max_length = 100)]
    pub title: Option<String>,
    /// Markdown, rendered and sanitized.
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    #[schema(max_items = 10)]
    pub tags: Option<Vec<String>>,
    /// Members including the leader.
    #[schema(minimum = 2, maximum = 100)]
    pub capacity: Option<i64>,
    #[schema(format = Date)]
    pub recruit_opens_on: Option<String>,
    /// Before `starts_on`.
    #[schema(format = Date)]
    pub recruit_closes_on: Option<String>,
    #[schema(format = Date)]
    pub starts_on: Option<String>,
    /// After `starts_on`.
    #[schema(format = Date)]
    pub ends_on: Option<String>,
}

/// A complete, valid set of study fields.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct StudyFields {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub capacity: i64,
    pub recruit_opens_on: String,
    pub recruit_closes_on: String,
    pub starts_on: String,
    pub ends_on: String,
}

impl StudyForm {
    /// Validates a new study: every field but description and tags is required.
    pub fn into_new(self) -> Result<StudyFields, ApiError> {
        fn req<T>(v: Option<T>, field: &'static str) -> Result<T, ApiError> {
            v.ok_or_else(|| ApiError::validation(field, format!("{field} is required")))
        }
        validate(StudyFields {
            title: req(self.title, "title")?,
            description: self.description.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            capacity: req(self.capacity, "capacity")?,
            recruit_opens_on: req(self.recruit_opens_on, "recruit_opens_on")?,
            recruit_closes_on: req(self.recruit_closes_on, "recruit_closes_on")?,
            starts_on: req(self.starts_on, "starts_on")?,
            ends_on: req(self.ends_on, "ends_on")?,
        })
    }

    /// Applies an edit on top of the current fields and validates the result as a whole
    /// (so moving only the start date still checks it against the deadline).
    pub fn apply_to(self, current: StudyFields) -> Result<StudyFields, ApiError> {
        validate(StudyFields {
            title: self.title.unwrap_or(current.title),
            description: self.description.unwrap_or(current.description),
            tags: self.tags.unwrap_or(current.tags),
            capacity: self.capacity.unwrap_or(current.capacity),
            recruit_opens_on: self.recruit_opens_on.unwrap_or(current.recruit_opens_on),
            recruit_closes_on: self.recruit_closes_on.unwrap_or(current.recruit_closes_on),
            starts_on: self.starts_on.unwrap_or(current.starts_on),
            ends_on: self.ends_on.unwrap_or(current.ends_on),
        })
    }
}

pub fn validate(f: StudyFields) -> Result<StudyFields, ApiError> {
    let title = f.title.trim().to_string();
    if !TITLE_CHARS.contains(&title.chars().count()) || title.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "title",
            "title must be 1–100 characters",
        ));
    }
    if f.description.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(ApiError::validation(
            "description",
            format!("description is limited to {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    let tags = tags(&f.tags)?;
    if !CAPACITY.contains(&f.capacity) {
        return Err(ApiError::validation(
            "capacity",
            "capacity must be 2–100 members including the leader",
        ));
    }
    let opens = date("recruit_opens_on", &f.recruit_opens_on)?;
    let closes = date("recruit_closes_on", &f.recruit_closes_on)?;
    let starts = date("starts_on", &f.starts_on)?;
    let ends = date("ends_on", &f.ends_on)?;
    if closes < opens {
        return Err(ApiError::validation(
            "recruit_closes_on",
            "recruitment must close on or after the day it opens",
        ));
    }
    if closes >= starts {
        return Err(ApiError::validation(
            "recruit_closes_on",
            "recruitment must close before the study starts",
        ));
    }
    if ends <= starts {
        return Err(ApiError::validation(
            "ends_on",
            "the study must end after it starts",
        ));
    }
    Ok(StudyFields {
        title,
        description: f.description,
        tags,
        capacity: f.capacity,
        recruit_opens_on: opens.to_string(),
        recruit_closes_on: closes.to_string(),
        starts_on: starts.to_string(),
        ends_on: ends.to_string(),
    })
}

/// Trimmed, lower-cased, de-duplicated; at most 10 of 1–30 characters.
pub fn tags(raw: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim().to_lowercase();
        if !TAG_CHARS.contains(&t.chars().count()) || t.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "tags",
                "each tag must be 1–30 characters",
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::validation(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    Ok(out)
}

/// A calendar date `YYYY-MM-DD`.
pub fn date(field: &'static str, raw: &str) -> Result<NaiveDate, ApiError> {
    if raw.len() != 10 {
        return Err(ApiError::validation(
            field,
            format!("{field} must be a date like 2026-12-01"),
        ));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::validation(field, format!("{field} must be a date like 2026-12-01")))
}

pub fn application_message(raw: &str) -> Result<String, ApiError> {
    let m = raw.trim();
    if m.chars().count() > APPLICATION_MESSAGE_MAX {
        return Err(ApiError::validation(
            "message",
            "the message is limited to 1000 characters",
        ));
    }
    Ok(m.to_string())
}

pub fn reason(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > REASON_MAX => Err(ApiError::validation(
            "reason",
            "the reason is limited to 500 characters",
        )),
        other => Ok(other),
    }
}

pub fn review(rating: i64, body: &str) -> Result<String, ApiError> {
    if !(1..=5).contains(&rating) {
        return Err(ApiError::validation("rating", "rating must be 1–5"));
    }
    let b = body.trim();
    if b.chars().count() > REVIEW_BODY_MAX {
        return Err(ApiError::validation(
            "body",
            "a review is limited to 1000 characters",
        ));
    }
    Ok(b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> StudyForm {
        StudyForm {
            title: Some("  Rust 스터디 ".into()),
            description: Some("desc".into()),
            tags: Some(vec![" Rust ".into(), "rust".into(), "알고리즘".into()]),
            capacity: Some(5),
            recruit_opens_on: Some("2026-12-01".into()),
            recruit_closes_on: Some("2026-12-10".into()),
            starts_on: Some("2026-12-15".into()),
            ends_on: Some("2027-02-01".into()),
        }
    }

    fn field(r: Result<StudyFields, ApiError>) -> &'static str {
        match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn normalizes_a_valid_study() {
        let f = form().into_new().unwrap();
        assert_eq!(f.title, "Rust 스터디");
        assert_eq!(f.tags, vec!["rust", "알고리즘"]);
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(
            field(
                StudyForm {
                    title: Some(" ".into()),
                    ..form()
                }
                .into_new()
            ),
            "title"
        );
        assert_eq!(
            field(
                StudyForm {
                    title: Some("x".repeat(101)),
                    ..form()
                }
                .into_new()
            ),
            "title"
        );
        assert_eq!(
            field(
                StudyForm {
                    capacity: Some(1),
                    ..form()
                }
                .into_new()
            ),
            "capacity"
        );
        assert_eq!(
            field(
                StudyForm {
                    capacity: Some(101),
                    ..form()
                }
                .into_new()
            ),
            "capacity"
        );
        assert_eq!(
            field(
                StudyForm {
                    capacity: None,
                    ..form()
                }
                .into_new()
            ),
            "capacity"
        );
        assert_eq!(
            field(
                StudyForm {
                    tags: Some((0..11).map(|i| format!("t{i}")).collect()),
                    ..form()
                }
                .into_new()
            ),
            "tags"
        );
        assert_eq!(
            field(
                StudyForm {
                    tags: Some(vec!["x".repeat(31)]),
                    ..form()
                }
                .into_new()
            ),
            "tags"
        );
        assert_eq!(
            field(
                StudyForm {
                    tags: Some(vec!["  ".into()]),
                    ..form()
                }
                .into_new()
            ),
            "tags"
        );
        assert_eq!(
            field(
                StudyForm {
                    starts_on: Some("2026-13-01".into()),
                    ..form()
                }
                .into_new()
            ),
            "starts_on"
        );
        assert_eq!(
            field(
                StudyForm {
                    recruit_closes_on: Some("2026-12-15".into()),
                    ..form()
                }
                .into_new()
            ),
            "recruit_closes_on"
        );
        assert_eq!(
            field(
                StudyForm {
                    recruit_closes_on: Some("2026-11-30".into()),
                    ..form()
                }
                .into_new()
            ),
            "recruit_closes_on"
        );
        assert_eq!(
            field(
                StudyForm {
                    ends_on: Some("2026-12-15".into()),
                    ..form()
                }
                .into_new()
            ),
            "ends_on"
        );
    }

    #[test]
    fn edits_are_validated_as_a_whole() {
        let current = form().into_new().unwrap();
        let moved = StudyForm {
            starts_on: Some("2026-12-05".into()),
            ..Default::default()
        };
        assert_eq!(field(moved.apply_to(current.clone())), "recruit_closes_on");
        let ok = StudyForm {
            title: Some("New".into()),
            ..Default::default()
        }
        .apply_to(current)
        .unwrap();
        assert_eq!(ok.title, "New");
    }

    #[test]
    fn reviews_and_messages() {
        assert!(review(0, "x").is_err());
        assert!(review(6, "x").is_err());
        assert_eq!(review(5, " good ").unwrap(), "good");
        assert!(review(3, &"x".repeat(1001)).is_err());
        assert!(application_message(&"가".repeat(1000)).is_ok());
        assert!(application_message(&"가".repeat(1001)).is_err());
        assert_eq!(reason(Some("  ".into())).unwrap(), None);
    }
}

/// Whether two memberships (`(joined_at, left_at)`) overlapped while the study was in
/// progress (from `started` until `completed`, or still). A study that never went in
/// progress had no such time.
pub fn served_together(
    a: (i64, Option<i64>),
    b: (i64, Option<i64>),
    started: Option<i64>,
    completed: Option<i64>,
) -> bool {
    let Some(started) = started else {
        return false;
    };
    let from = a.0.max(b.0).max(started);
    let until = [a.1, b.1, completed]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(i64::MAX);
    from < until
}

#[cfg(test)]
mod review_tests {
    use super::served_together;

    #[test]
    fn members_served_together_only_if_their_stints_overlap_the_progress_period() {
        // Both joined before it started, still there, study ongoing.
        assert!(served_together((1, None), (2, None), Some(10), None));
        // Never went in progress.
        assert!(!served_together((1, None), (2, None), None, None));
        // One left before it started (a member banned while recruiting).
        assert!(!served_together((1, Some(5)), (2, None), Some(10), None));
        // One joined after it completed.
        assert!(!served_together((1, None), (30, None), Some(10), Some(20)));
        // Their stints do not overlap each other, though each overlaps the period.
        assert!(!served_together((1, Some(12)), (15, None), Some(10), None));
        // Overlap inside the period.
        assert!(served_together(
            (1, Some(18)),
            (15, None),
            Some(10),
            Some(20)
        ));
        // Touching at one instant is not time together.
        assert!(!served_together((1, Some(15)), (15, None), Some(10), None));
    }
}
