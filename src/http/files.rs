//! Files over HTTP: uploads (streamed to a spool file, checked, stored, then recorded),
//! downloads (members only, as attachments, with ranges) and deletes. Also the highlighter's
//! stylesheet and deleting a whole study, whose objects go with it.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio_util::io::ReaderStream;

use super::api_types::*;
use super::auth::Authenticated;
use super::tasks::{announce, delete_objects, post_changed};
use crate::error::ApiError;
use crate::ids::{FileId, PostId, StudyId, UserId};
use crate::live::study::{Study, StudyEvent, StudyMsg, StudyOutcome};
use crate::server::AppState;
use crate::storage::download::{RangeAnswer, content_disposition, parse_range};
use crate::storage::sniff::{compatible, sniff, stored_type};
use crate::storage::upload::{filename, spool};
use crate::storage::{StorageError, new_key};
use crate::store::now_millis;
use crate::tasks::NewFile;

/// An upload must finish within this: 50 MiB at about 1 Mbit/s. A client trickling bytes
/// slower than that holds a spool file and a connection for nothing.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes read from storage per chunk of a download response.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

type Res = Result<HttpResponse, ApiError>;

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Remote(_) => {
                tracing::warn!(error = %e, "object storage failed");
                ApiError::Unavailable
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

/// `POST /api/studies/{study_id}/posts/{post_id}/attachments?name=` (the post's author)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/posts/{post_id}/attachments",
    tag = "files",
    summary = "Attach a file to a post (its author): the body is the raw bytes, ?name= the filename; type sniffed from the bytes",
    request_body(content = Vec<u8>, content_type = "*/*", description = "the file's bytes"),
    params(("study_id" = i64, Path), ("post_id" = i64, Path), ("name" = String, Query, min_length = 1, max_length = 255, description = "the original filename")),
    responses((status = 201, description = "{file}", body = FileEnvelope), (status = 400, description = "empty_file, invalid_filename or upload_aborted", body = ErrorBody), (status = 403, description = "not_author", body = ErrorBody), (status = 409, description = "attachment_limit (10 per post)", body = ErrorBody), (status = 413, description = "payload_too_large or quota_exceeded", body = ErrorBody), (status = 415, description = "content_type_mismatch", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn upload_to_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    body: web::Payload,
) -> Res {
    let (study, post) = (StudyId(path.0), PostId(path.1));
    let file = upload(&req, &state, auth.user.id, study, Some(post), body).await?;
    post_changed(&state, study, post, auth.user.id).await;
    Ok(HttpResponse::Created().json(FileEnvelope { file }))
}

/// `POST /api/studies/{study_id}/attachments?name=` (leader): the recruiting post's files.
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/attachments",
    tag = "files",
    summary = "Attach a file to the recruiting post (leader); as for post attachments",
    request_body(content = Vec<u8>, content_type = "*/*", description = "the file's bytes"),
    params(("study_id" = i64, Path), ("name" = String, Query, min_length = 1, max_length = 255, description = "the original filename")),
    responses((status = 201, description = "{file}", body = FileEnvelope), (status = 400, description = "empty_file, invalid_filename or upload_aborted", body = ErrorBody), (status = 409, description = "attachment_limit", body = ErrorBody), (status = 413, description = "payload_too_large or quota_exceeded", body = ErrorBody), (status = 415, description = "content_type_mismatch", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn upload_to_study(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Payload,
) -> Res {
    let study = StudyId(*path);
    let file = upload(&req, &state, auth.user.id, study, None, body).await?;
    announce(&state, study, StudyEvent::StudyAttachmentsChanged, None).await;
    Ok(HttpResponse::Created().json(FileEnvelope { file }))
}

/// The upload path, counted by outcome for operators.
async fn upload(
    req: &HttpRequest,
    state: &AppState,
    user: UserId,
    study: StudyId,
    post: Option<PostId>,
    body: web::Payload,
) -> Result<crate::tasks::StoredFile, ApiError> {
    let res = checked_upload(req, state, user, study, post, body).await;
    let result = match &res {
        Ok(f) => {
            metrics::counter!(crate::metrics::UPLOAD_BYTES).increment(f.size as u64);
            "stored"
        }
        Err(e) => e.code(),
    };
    metrics::counter!(crate::metrics::UPLOADS, "result" => result).increment(1);
    res
}

/// Everything that can be refused from the headers is refused before the body is read; the
/// rest is checked on the spooled file before anything is stored.
async fn checked_upload(
    req: &HttpRequest,
    state: &AppState,
    user: UserId,
    study: StudyId,
    post: Option<PostId>,
    body: web::Payload,
) -> Result<crate::tasks::StoredFile, ApiError> {
    // The caller's role first: someone who may not see the study learns nothing else.
    let used = state.store.upload_allowed(study, post, user).await?.max(0) as u64;
    let name = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let name = filename(&name)?;
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (max, quota) = (
        state.settings.upload_max_bytes,
        state.settings.study_quota_bytes,
    );
    match length {
        Some(l) if l > max => return Err(ApiError::PayloadTooLarge),
        Some(0) => return Err(ApiError::EmptyFile),
        _ => {}
    }
    if used + length.unwrap_or(1) > quota {
        return Err(ApiError::QuotaExceeded);
    }
    let _slot = state.uploads.take(user).ok_or(ApiError::Busy)?;
    let rate = state.settings.upload_rate();
    let spooled = tokio::time::timeout(UPLOAD_TIMEOUT, spool(body, &state.spool_dir, max, &rate))
        .await
        .map_err(|_| ApiError::UploadAborted("the upload took too long".into()))??;
    if spooled.size == 0 {
        return Err(ApiError::EmptyFile);
    }
    let sniffed = sniff(&spooled.head, spooled.size > spooled.head.len() as u64);
    if !compatible(declared.as_deref(), sniffed) {
        return Err(ApiError::ContentTypeMismatch {
            declared: declared.unwrap_or_default(),
            sniffed: sniffed.to_string(),
        });
    }
    let content_type = stored_type(declared.as_deref(), sniffed);
    let key = new_key();
    state
        .objects
        .put_file(&key, spooled.file.path(), spooled.size, &content_type)
        .await?;
    let new = NewFile {
        study_id: study,
        post_id: post,
        uploader: user,
        object_key: key.clone(),
        name,
        content_type,
        size: spooled.size as i64,
        sha256: spooled.sha256.clone(),
        now: now_millis(),
        quota: quota as i64,
    };
    match state.store.add_file(&new).await {
        Ok(f) => Ok(f),
        Err(e) => {
            // The row was refused (quota raced, post deleted meanwhile): the object goes too.
            delete_objects(state, vec![key]).await;
            Err(e.into())
        }
    }
}

/// `GET` (and `HEAD`) `/api/studies/{study_id}/files/{file_id}` (members): the bytes, as an
/// attachment.
#[utoipa::path(
    method(get, head),
    path = "/api/studies/{study_id}/files/{file_id}",
    tag = "files",
    summary = "Download a file (members): Content-Disposition attachment, nosniff, Range and If-Range, ETag",
    params(("study_id" = i64, Path), ("file_id" = i64, Path)),
    responses((status = 200, description = "The file (or the requested byte range, 206)", content_type = "*/*", body = Vec<u8>), (status = 206, description = "A byte range", content_type = "*/*", body = Vec<u8>), (status = 304, description = "Not modified (If-None-Match)"), (status = 416, description = "range_not_satisfiable", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let f = state
        .store
        .file(StudyId(path.0), FileId(path.1), auth.user.id)
        .await?;
    let size = f.size as u64;
    // The content never changes under an id, so its hash is a strong validator.
    let etag = format!("\"{}\"", f.sha256);
    let header_str = |h| req.headers().get(h).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH) == Some(etag.as_str()) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    // A range against another version of the file is answered with the whole file.
    let range = match header_str(header::IF_RANGE) {
        Some(v) if v != etag => RangeAnswer::Full,
        _ => parse_range(header_str(header::RANGE), size),
    };
    let (start, end, mut resp) = match range {
        RangeAnswer::Full => (0, size - 1, HttpResponse::Ok()),
        RangeAnswer::Partial { start, end } => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            (start, end, r)
        }
        RangeAnswer::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
    };
    resp.insert_header((header::CONTENT_TYPE, f.content_type.as_str()))
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(&f.name)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Even if a browser were talked into rendering it, the file can run nothing.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"));
    let len = end + 1 - start;
    // HEAD (download managers probe with it): the same headers and length, and no object
    // read; the server sends no body for HEAD whatever the body says.
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(resp.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>(),
        )));
    }
    let body = state.objects.get(&f.object_key, start, end).await?;
    Ok(resp.body(SizedStream::new(
        len,
        ReaderStream::with_capacity(body, DOWNLOAD_CHUNK),
    )))
}

/// `DELETE /api/studies/{study_id}/files/{file_id}` (the uploader, or the leader)
#[utoipa::path(
    delete,
    path = "/api/studies/{study_id}/files/{file_id}",
    tag = "files",
    summary = "Delete a file (its uploader, or the leader)",
    params(("study_id" = i64, Path), ("file_id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "not_author", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let study = StudyId(path.0);
    let (post, keys) = state
        .store
        .delete_file(study, FileId(path.1), auth.user.id)
        .await?;
    delete_objects(&state, keys).await;
    match post {
        Some(p) => post_changed(&state, study, p, auth.user.id).await,
        None => announce(&state, study, StudyEvent::StudyAttachmentsChanged, None).await,
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/studies/{study_id}` (leader): the study, everything in it, and its files.
#[utoipa::path(
    delete,
    path = "/api/studies/{study_id}",
    tag = "studies",
    summary = "Delete the study with everything in it, files included (leader); watchers get a `deleted` event",
    params(("study_id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn delete_study(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    let outcome = state
        .registry
        .ask::<Study>(
            StudyId(*path),
            StudyMsg::Delete {
                leader: auth.user.id,
            },
        )
        .await??;
    if let StudyOutcome::Deleted(keys) = outcome {
        delete_objects(&state, keys).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/highlight.css`: colours for server-highlighted code.
#[utoipa::path(
    get,
    path = "/api/highlight.css",
    tag = "files",
    summary = "Stylesheet for the hl-* classes of server-highlighted code blocks",
    responses((status = 200, description = "The stylesheet for highlighted code", content_type = "text/css", body = String))
)]
pub async fn highlight_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(crate::studies::markdown::highlight_css())
}
