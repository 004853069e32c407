//! The API error enum and its one mapping to HTTP status and stable snake_case code.
//!
//! Every error a client can see, over HTTP or as a socket error frame, is one of these. The
//! `code` strings are part of the public contract (the web client translates them): never
//! rename one, add a new variant instead.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::persist::PersistError;
use crate::registry::{RegistryError, StartError};
use crate::store::{Rule, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field broke a rule; `field` names it so the form can point at it.
    #[error("{message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    /// The body was not JSON, or not the JSON shape the route takes.
    #[error("{0}")]
    MalformedJson(String),
    /// The body is larger than the route accepts.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The edit would make a co-edited document larger than the server's limit.
    #[error("the document would be larger than the server allows")]
    DocumentTooLarge,
    /// The study's stored files would pass its quota.
    #[error("the study's storage quota is used up; delete files to make room")]
    QuotaExceeded,
    /// An upload with no bytes.
    #[error("the file is empty")]
    EmptyFile,
    /// A filename that tries to be a path, or is unusable.
    #[error("{0}")]
    InvalidFilename(String),
    /// The declared content type contradicts the file's bytes.
    #[error("the file's content is {sniffed}, not {declared}")]
    ContentTypeMismatch { declared: String, sniffed: String },
    /// The client stopped sending the body partway.
    #[error("the upload was cut off: {0}")]
    UploadAborted(String),
    /// The body came in slower than the minimum rate; the upload was dropped.
    #[error("the upload was too slow; try again on a better connection")]
    UploadTooSlow,
    /// The requested byte range lies outside the file (`size` goes in `Content-Range`).
    #[error("the requested range is outside the file")]
    RangeNotSatisfiable { size: u64 },
    /// The route takes `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The caller may see the thing but not do this (`banned`).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// No valid session cookie.
    #[error("you are not logged in")]
    Unauthenticated,
    /// Unknown login id or wrong password: deliberately the same answer for both.
    #[error("the login id or password is wrong")]
    InvalidCredentials,
    /// The `Origin` header is missing or not one of the configured public origins (CSRF).
    #[error("the request origin is not allowed")]
    BadOrigin,
    /// No such route or resource, or one the caller may not see (the two look the same).
    #[error("not found")]
    NotFound,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Input a live protocol refuses with its own code (`bad_sdp`, `too_many_tracks`).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A uniqueness rule: `code` says which (`login_id_taken`, `display_name_taken`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many attempts; try again after `retry_after_secs`.
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The actor that owns this resource has a full mailbox; retry shortly.
    #[error("the server is busy; try again shortly")]
    Busy,
    /// The server is shutting down or its store is unreachable.
    #[error("the service is unavailable; try again shortly")]
    Unavailable,
    /// A bug or an unexpected failure; details go to the log, never to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field,
            message: message.into(),
        }
    }

    /// The stable snake_case code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_failed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::DocumentTooLarge => "document_too_large",
            ApiError::QuotaExceeded => "quota_exceeded",
            ApiError::EmptyFile => "empty_file",
            ApiError::InvalidFilename(_) => "invalid_filename",
            ApiError::ContentTypeMismatch { .. } => "content_type_mismatch",
            ApiError::UploadAborted(_) => "upload_aborted",
            ApiError::UploadTooSlow => "upload_too_slow",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::BadOrigin => "bad_origin",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::BadRequest { code, .. } => code,
            ApiError::Forbidden { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Busy => "busy",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. }
            | ApiError::MalformedJson(_)
            | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::EmptyFile | ApiError::InvalidFilename(_) | ApiError::UploadAborted(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PayloadTooLarge | ApiError::QuotaExceeded | ApiError::DocumentTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType | ApiError::ContentTypeMismatch { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::UploadTooSlow => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::BadOrigin | ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body shared by HTTP responses and socket error frames.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            message: self.to_string(),
            field: match self {
                ApiError::Validation { field, .. } => Some(field),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        let mut resp = HttpResponse::build(self.status());
        match self {
            ApiError::RateLimited { retry_after_secs } => {
                resp.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            ApiError::Busy | ApiError::Unavailable => {
                resp.insert_header(("Retry-After", "1"));
            }
            ApiError::RangeNotSatisfiable { size } => {
                resp.insert_header(("Content-Range", format!("bytes */{size}")));
            }
            _ => {}
        }
        resp.json(self.body())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(c) => ApiError::Conflict {
                code: c.code(),
                message: c.to_string(),
            },
            StoreError::Unavailable(_) => ApiError::Unavailable,
            StoreError::Rule(r) => r.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<Rule> for ApiError {
    fn from(r: Rule) -> Self {
        let message = r.to_string();
        let conflict = |code| ApiError::Conflict {
            code,
            message: message.clone(),
        };
        match r {
            Rule::NotFound => ApiError::NotFound,
            Rule::Banned => ApiError::Forbidden {
                code: "banned",
                message,
            },
            Rule::CapacityBelowMembers => ApiError::Validation {
                field: "capacity",
                message,
            },
            Rule::NotAMember => ApiError::Validation {
                field: "user_id",
                message,
            },
            Rule::SelfReview => ApiError::Validation {
                field: "reviewee_id",
                message,
            },
            Rule::NotRecruiting => conflict("not_recruiting"),
            Rule::StudyFull => conflict("study_full"),
            Rule::AlreadyMember => conflict("already_member"),
            Rule::ApplicationExists => conflict("application_exists"),
            Rule::ApplicationNotPending => conflict("application_not_pending"),
            Rule::LeaderMustTransfer => conflict("leader_must_transfer"),
            Rule::InvalidTransition => conflict("invalid_status_transition"),
            Rule::ReviewExists => conflict("review_exists"),
            Rule::RoomLimit => conflict("room_limit"),
            Rule::RoomClosed => conflict("room_closed"),
            Rule::DuplicateMessage => conflict("duplicate_message"),
            Rule::TaskLimit => conflict("task_limit"),
            Rule::AttachmentLimit => conflict("attachment_limit"),
            Rule::Stale => conflict("edit_conflict"),
            Rule::PrefLimit => conflict("pref_limit"),
            Rule::NotStudyMates => conflict("not_study_mates"),
            Rule::ReviewNotOpen => conflict("review_not_open"),
            Rule::ReapplyTooSoon { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
            Rule::QuotaExceeded => ApiError::QuotaExceeded,
            Rule::NotAuthor => ApiError::Forbidden {
                code: "not_author",
                message,
            },
            Rule::NotCreator => ApiError::Forbidden {
                code: "not_creator",
                message,
            },
            Rule::NotLeader => ApiError::Forbidden {
                code: "not_leader",
                message,
            },
            Rule::PostLocked => ApiError::Forbidden {
                code: "post_locked",
                message,
            },
            Rule::VersionLimit => conflict("version_limit"),
            Rule::DocumentTooLarge => ApiError::DocumentTooLarge,
            // The key moved to another node mid-write: nothing was stored; retry reaches it.
            Rule::Fenced => ApiError::Unavailable,
            Rule::AssigneeNotMember => ApiError::Validation {
                field: "assignee_id",
                message,
            },
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Busy { .. } | RegistryError::AtCapacity { .. } => ApiError::Busy,
            // The owner is elsewhere and could not be reached (or is moving): retry shortly.
            RegistryError::OwnedElsewhere { .. } | RegistryError::Unreachable { .. } => {
                ApiError::Unavailable
            }
            RegistryError::ShuttingDown => ApiError::Unavailable,
            // A keyed actor whose thing does not exist (or is not visible) cannot start.
            RegistryError::Start {
                reason: StartError::NotFound,
                ..
            } => ApiError::NotFound,
            RegistryError::Start {
                reason: StartError::Unavailable | StartError::TimedOut,
                ..
            } => ApiError::Unavailable,
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<crate::auth::password::HashError> for ApiError {
    fn from(e: crate::auth::password::HashError) -> Self {
        match e {
            crate::auth::password::HashError::Busy => ApiError::Busy,
            crate::auth::password::HashError::Failed(e) => ApiError::Internal(e),
        }
    }
}

impl From<PersistError> for ApiError {
    fn from(e: PersistError) -> Self {
        match e {
            PersistError::Busy => ApiError::Busy,
            PersistError::Closed => ApiError::Unavailable,
            PersistError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_statuses_are_errors() {
        let all = [
            ApiError::validation("login_id", "x"),
            ApiError::MalformedJson("x".into()),
            ApiError::PayloadTooLarge,
            ApiError::DocumentTooLarge,
            ApiError::BadRequest {
                code: "bad_sdp",
                message: "x".into(),
            },
            ApiError::UnsupportedMediaType,
            ApiError::Unauthenticated,
            ApiError::InvalidCredentials,
            ApiError::BadOrigin,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::RateLimited {
                retry_after_secs: 3,
            },
            ApiError::Busy,
            ApiError::Unavailable,
            ApiError::Internal(anyhow::anyhow!("boom")),
        ];
        for e in all {
            let code = e.code();
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
            assert!(e.status().is_client_error() || e.status().is_server_error());
        }
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let e = ApiError::Internal(anyhow::anyhow!("password=hunter2 at db"));
        assert_eq!(e.body().message, "internal error");
    }

    #[test]
    fn rate_limited_sets_retry_after() {
        let resp = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "7");
    }
}
