//! Input rules for tasks and posts: every form is checked here before anything is written.

use serde::{Deserialize, Deserializer};

use super::{TaskFields, TaskStatus};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::studies::markdown;
use crate::studies::rules::date;

/// A title fits a list row.
const TITLE_MAX_CHARS: usize = 200;
/// A task description is a note, not a document.
const TASK_DESCRIPTION_MAX_CHARS: usize = 20_000;
/// A post is a write-up; 100k characters is a long paper, and bounds the rendering work.
const POST_BODY_MAX_CHARS: usize = 100_000;

/// `null` and absent mean different things in a PATCH: absent keeps, `null` clears.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskForm {
    /// On an edit, the version the client's form was based on: a task changed since then
    /// is refused with `edit_conflict`. Without it, the given fields are applied to
    /// whatever is current (other fields' concurrent edits are kept). Ignored on create.
    pub version: Option<i64>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Markdown.
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    /// `YYYY-MM-DD`; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub due_on: Option<Option<String>>,
    /// A current member; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub assignee_id: Option<Option<UserId>>,
    #[schema(value_type = Option<crate::tasks::TaskStatus>)]
    pub status: Option<String>,
}

impl TaskForm {
    /// A new task: a title is required; everything else has a default.
    pub fn into_new(self) -> Result<TaskFields, ApiError> {
        if self.title.is_none() {
            return Err(ApiError::validation("title", "a task needs a title"));
        }
        self.apply_to(TaskFields {
            title: String::new(),
            description: String::new(),
            description_html: String::new(),
            due_on: None,
            assignee: None,
            status: TaskStatus::Open,
        })
    }

    /// An edit: the given fields replace the current ones.
    pub fn apply_to(self, current: TaskFields) -> Result<TaskFields, ApiError> {
        let title = match self.title {
            Some(t) => title(&t)?,
            None => current.title,
        };
        let (description, description_html) = match self.description {
            Some(d) => {
                let d = bounded("description", d, TASK_DESCRIPTION_MAX_CHARS)?;
                let html = markdown::render(&d);
                (d, html)
            }
            None => (current.description, current.description_html),
        };
        let due_on = match self.due_on {
            Some(Some(d)) => Some(date("due_on", &d)?.to_string()),
            Some(None) => None,
            None => current.due_on,
        };
        let assignee = match self.assignee_id {
            Some(a) => a,
            None => current.assignee,
        };
        let status = match self.status {
            Some(s) => TaskStatus::parse(&s)
                .ok_or_else(|| ApiError::validation("status", "status is open or done"))?,
            None => current.status,
        };
        Ok(TaskFields {
            title,
            description,
            description_html,
            due_on,
            assignee,
            status,
        })
    }
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostForm {
    /// As `TaskForm::version`.
    pub version: Option<i64>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Markdown; fenced code is highlighted.
    #[schema(max_length = 100000)]
    pub body: Option<String>,
}

/// A validated post with its body rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct PostFields {
    pub title: String,
    pub body: String,
    pub body_html: String,
}

impl PostForm {
    /// Rendering a long body with code costs milliseconds: callers run this off the
    /// request threads.
    pub fn into_new(self) -> Result<PostFields, ApiError> {
        if self.title.is_none() {
            return Err(ApiError::validation("title", "a post needs a title"));
        }
        self.apply_to(PostFields {
            title: String::new(),
            body: String::new(),
            body_html: String::new(),
        })
    }

    pub fn apply_to(self, current: PostFields) -> Result<PostFields, ApiError> {
        let title = match self.title {
            Some(n) => title(&n)?,
            None => current.title,
        };
        let (body, body_html) = match self.body {
            Some(n) => {
                let b = bounded("body", n, POST_BODY_MAX_CHARS)?;
                let html = markdown::render(&b);
                (b, html)
            }
            None => (current.body, current.body_html),
        };
        Ok(PostFields {
            title,
            body,
            body_html,
        })
    }
}

fn title(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    let n = t.chars().count();
    if n == 0 || n > TITLE_MAX_CHARS || t.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "title",
            format!("title must be 1–{TITLE_MAX_CHARS} characters"),
        ));
    }
    Ok(t.to_string())
}

/// A post body as typed (the co-edited text the HTTP API sets).
pub fn post_body(s: String) -> Result<String, ApiError> {
    bounded("body", s, POST_BODY_MAX_CHARS)
}

fn bounded(field: &'static str, s: String, max: usize) -> Result<String, ApiError> {
    if s.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("{field} is limited to {max} characters"),
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(json: &str) -> TaskForm {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn patch_keeps_absent_and_clears_null() {
        let current = form(r#"{"title":"Read ch. 3","due_on":"2026-12-01","assignee_id":7}"#)
            .into_new()
            .unwrap();
        assert_eq!(current.due_on.as_deref(), Some("2026-12-01"));
        let kept = form(r#"{"title":"Read ch. 4"}"#)
            .apply_to(current.clone())
            .unwrap();
        assert_eq!(kept.due_on.as_deref(), Some("2026-12-01"));
        assert_eq!(kept.assignee, Some(UserId(7)));
        let cleared = form(r#"{"due_on":null,"assignee_id":null,"status":"done"}"#)
            .apply_to(current)
            .unwrap();
        assert_eq!(cleared.due_on, None);
        assert_eq!(cleared.assignee, None);
        assert_eq!(cleared.status, TaskStatus::Done);
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |r: Result<TaskFields, ApiError>| match r {
            Err(ApiError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(form(r#"{}"#).into_new()), "title");
        assert_eq!(field(form(r#"{"title":"  "}"#).into_new()), "title");
        assert_eq!(
            field(form(r#"{"title":"x","due_on":"2026-13-01"}"#).into_new()),
            "due_on"
        );
        assert_eq!(
            field(form(r#"{"title":"x","status":"closed"}"#).into_new()),
            "status"
        );
        let long = format!(r#"{{"title":"{}"}}"#, "가".repeat(201));
        assert_eq!(field(form(&long).into_new()), "title");
        assert!(serde_json::from_str::<TaskForm>(r#"{"title":"x","owner":1}"#).is_err());
    }

    #[test]
    fn post_needs_a_title_and_bounds_the_body() {
        let p: PostForm = serde_json::from_str(r#"{"body":"x"}"#).unwrap();
        assert!(p.into_new().is_err());
        let p: PostForm = serde_json::from_str(&format!(
            r#"{{"title":"t","body":"{}"}}"#,
            "a".repeat(POST_BODY_MAX_CHARS + 1)
        ))
        .unwrap();
        assert!(p.into_new().is_err());
        let p: PostForm = serde_json::from_str(r#"{"title":" 정리 ","body":"**b**"}"#).unwrap();
        let f = p.into_new().unwrap();
        assert_eq!(f.title, "정리");
        assert_eq!(f.body_html, "<p><strong>b</strong></p>\n");
    }
}
