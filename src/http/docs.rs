//! Co-edited post bodies over HTTP: the lock, the version history, and restoring a version.
//! (Editing the body itself is `PATCH …/posts/{post_id}`, which goes through the document.)

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_types::PostEnvelope;
use super::auth::Authenticated;
use super::tasks::{announce, summary};
use crate::error::{ApiError, ErrorBody};
use crate::ids::{PostId, StudyId, UserId};
use crate::live::doc::{PostDoc, PostDocMsg, PostDocReply};
use crate::live::study::StudyEvent;
use crate::server::AppState;
use crate::store::docs::DocVersion;
use crate::store::now_millis;
use crate::studies::Role;
use crate::tasks::order::{Item, Step};

type Res = Result<HttpResponse, ApiError>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockForm {
    pub locked: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionForm {
    /// What to call this version.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// Longest version name, in characters.
const VERSION_NAME_MAX: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsEnvelope {
    pub versions: Vec<DocVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEnvelope {
    pub version: DocVersion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPreview {
    pub version: DocVersion,
    /// The body's markdown at that version.
    pub body: String,
    /// The same, rendered and sanitized.
    pub body_html: String,
}

/// Sets a post's body through its document, so live editors converge on it; answers once
/// it is stored and the post row shows it.
pub(super) async fn replace_body(
    state: &AppState,
    study: StudyId,
    post: PostId,
    user: UserId,
    text: String,
) -> Result<(), ApiError> {
    let leader = state.store.role_of(study, user).await? == Some(Role::Leader);
    let msg = PostDocMsg::ReplaceText { user, text, leader };
    state.registry.ask::<PostDoc>(post, msg).await??;
    Ok(())
}

/// `PUT /api/studies/{study_id}/posts/{post_id}/lock` (leader)
#[utoipa::path(
    put,
    path = "/api/studies/{study_id}/posts/{post_id}/lock",
    tag = "tasks",
    summary = "Lock a post (read-only for everyone but the leader) or unlock it",
    request_body = LockForm,
    params(("study_id" = i64, Path), ("post_id" = i64, Path)),
    responses((status = 200, description = "{post}", body = PostEnvelope), (status = 403, description = "not_leader", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn lock(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    form: web::Json<LockForm>,
) -> Res {
    let (study, post) = (StudyId(path.0), PostId(path.1));
    let locked = form.locked;
    state
        .store
        .set_post_locked(study, post, auth.user.id, locked, now_millis())
        .await?;
    // A running document applies it at once; one that is not loaded reads it when it loads.
    let _ = state
        .registry
        .tell_if_running::<PostDoc>(post, PostDocMsg::SetLock { locked })
        .await;
    let p = state.store.post(study, post, auth.user.id).await?;
    let order = Some((Item::Post(p.id), Step::At(p.version)));
    announce(
        &state,
        study,
        StudyEvent::PostUpdated { post: summary(&p) },
        order,
    )
    .await;
    Ok(HttpResponse::Ok().json(PostEnvelope { post: p }))
}

/// `GET /api/studies/{study_id}/posts/{post_id}/versions` (members)
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/posts/{post_id}/versions",
    tag = "tasks",
    summary = "A post body's version history, newest first",
    params(("study_id" = i64, Path), ("post_id" = i64, Path)),
    responses((status = 200, description = "{versions}", body = VersionsEnvelope), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn versions(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let versions = state
        .store
        .doc_versions(StudyId(path.0), PostId(path.1), auth.user.id)
        .await?;
    Ok(HttpResponse::Ok().json(VersionsEnvelope { versions }))
}

/// `POST /api/studies/{study_id}/posts/{post_id}/versions` (members)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/posts/{post_id}/versions",
    tag = "tasks",
    summary = "Take a named version of the body now",
    request_body = VersionForm,
    params(("study_id" = i64, Path), ("post_id" = i64, Path)),
    responses((status = 201, description = "{version}", body = VersionEnvelope), (status = 404, description = "not_found", body = ErrorBody), (status = 409, description = "version_limit", body = ErrorBody), (status = 400, description = "validation_failed", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn take_version(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    form: web::Json<VersionForm>,
) -> Res {
    let (study, post) = (StudyId(path.0), PostId(path.1));
    let name = form.into_inner().name.trim().to_owned();
    if name.is_empty() || name.chars().count() > VERSION_NAME_MAX {
        return Err(ApiError::validation(
            "name",
            "a version name has 1 to 100 characters",
        ));
    }
    // The route checked membership; the post must be in this study.
    state.store.post(study, post, auth.user.id).await?;
    let msg = PostDocMsg::TakeVersion {
        user: auth.user.id,
        name,
    };
    match state.registry.ask::<PostDoc>(post, msg).await?? {
        PostDocReply::Version(version) => {
            Ok(HttpResponse::Created().json(VersionEnvelope { version }))
        }
        _ => Err(ApiError::Internal(anyhow::anyhow!("no version taken"))),
    }
}

/// `GET /api/studies/{study_id}/posts/{post_id}/versions/{version_id}` (members)
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/posts/{post_id}/versions/{version_id}",
    tag = "tasks",
    summary = "One version's text, with its rendering (a preview)",
    params(("study_id" = i64, Path), ("post_id" = i64, Path), ("version_id" = i64, Path)),
    responses((status = 200, description = "{version, body, body_html}", body = VersionPreview), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn version(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64, i64)>,
) -> Res {
    let (version, body) = state
        .store
        .doc_version(StudyId(path.0), PostId(path.1), path.2, auth.user.id)
        .await?;
    let text = body.clone();
    let body_html = web::block(move || crate::studies::markdown::render(&text))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("render task failed: {e}")))?;
    Ok(HttpResponse::Ok().json(VersionPreview {
        version,
        body,
        body_html,
    }))
}

/// `POST /api/studies/{study_id}/posts/{post_id}/versions/{version_id}/restore` (members)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/posts/{post_id}/versions/{version_id}/restore",
    tag = "tasks",
    summary = "Restore a version: its text becomes the body, as an edit live editors converge on",
    params(("study_id" = i64, Path), ("post_id" = i64, Path), ("version_id" = i64, Path)),
    responses((status = 200, description = "{post}", body = PostEnvelope), (status = 403, description = "post_locked", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 413, description = "document_too_large", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn restore(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64, i64)>,
) -> Res {
    let (study, post) = (StudyId(path.0), PostId(path.1));
    let (_, body) = state
        .store
        .doc_version(study, post, path.2, auth.user.id)
        .await?;
    replace_body(&state, study, post, auth.user.id, body).await?;
    let p = state.store.post(study, post, auth.user.id).await?;
    Ok(HttpResponse::Ok().json(PostEnvelope { post: p }))
}
