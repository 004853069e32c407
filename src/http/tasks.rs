//! Tasks and posts over HTTP. Writes go straight to the store, which checks the caller's
//! role in the same transaction; the `Study` actor then pushes the change to the members who
//! have the study open.

use actix_web::{HttpRequest, HttpResponse, web};

use super::api_types::*;
use super::auth::Authenticated;
use super::paging::{self, PAGE_DEFAULT, PAGE_MAX};
use crate::error::ApiError;
use crate::ids::{PostId, StudyId, TaskId};
use crate::live::study::{Study, StudyEvent, StudyMsg};
use crate::live::user::push_notifications;
use crate::server::AppState;
use crate::store::{Rule, StoreError, now_millis};
use crate::tasks::order::{Item, Step};
use crate::tasks::rules::{PostFields, PostForm, TaskForm};
use crate::tasks::{self, TaskFields, TaskFilter};

type Res = Result<HttpResponse, ApiError>;

/// Rounds of read-apply-write an edit without a `version` makes when another edit of the
/// same task or post commits in between. Concurrent edits of one item are rare, so a fifth
/// collision means sustained contention: answered with `edit_conflict`, never by writing
/// over the other edit.
const EDIT_ROUNDS: usize = 5;

/// Runs `round` (read, apply the form, write if still at the version read) until it does
/// not collide with another edit, at most `EDIT_ROUNDS` times; a client that named the
/// version it edited gets the collision at once.
async fn edit_rounds<T, F, Fut>(client_version: Option<i64>, mut round: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, StoreError>, ApiError>>,
{
    for n in 1.. {
        match round().await? {
            Err(StoreError::Rule(Rule::Stale)) if client_version.is_none() && n < EDIT_ROUNDS => {}
            done => return Ok(done?),
        }
    }
    unreachable!("the loop returns by its last round")
}

/// Tells the members watching the study (best effort: the change is stored, and a tab that
/// missed it re-reads on reconnect). `order` names the task or post and the version the
/// event shows, so the actor drops it if a newer one already went out. The study's actor
/// runs while anyone watches it; if it runs nowhere, nobody is watching and nothing is lost.
pub(super) async fn announce(
    state: &AppState,
    study: StudyId,
    event: StudyEvent,
    order: Option<(Item, Step)>,
) {
    let _ = state
        .registry
        .tell_if_running::<Study>(study, StudyMsg::AnnounceToMembers { event, order })
        .await;
}

/// Deletes objects whose rows are gone. A failure leaves an orphan object (never a row
/// without its object), which the startup sweep removes.
pub(super) async fn delete_objects(state: &AppState, keys: Vec<String>) {
    for k in keys {
        if let Err(e) = state.objects.delete(&k).await {
            tracing::warn!(key = %k, error = %e, "could not delete an object; the sweep will");
        }
    }
}

/// Runs CPU-heavy form work (markdown rendering and highlighting) off the request threads.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("render task failed: {e}")))?
}

/// `GET /api/limits`: the bounds a client checks before sending (an upload refused by its
/// `Content-Length` may reach a browser as a reset connection rather than a 413).
#[utoipa::path(
    get,
    path = "/api/limits",
    tag = "files",
    summary = "Limits a client checks before sending: upload_max_bytes, study_quota_bytes, attachments_per_post, tasks_per_study",
    responses((status = 200, description = "{upload_max_bytes, …}", body = Limits), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn limits(state: web::Data<AppState>, _auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(Limits {
        upload_max_bytes: state.settings.upload_max_bytes,
        study_quota_bytes: state.settings.study_quota_bytes,
        attachments_per_post: tasks::MAX_ATTACHMENTS,
        tasks_per_study: tasks::MAX_TASKS_PER_STUDY,
    })
}

/// `GET /api/studies/{study_id}/tasks?filter=all|open|done|mine`
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/tasks",
    tag = "tasks",
    summary = "The task board (members): ?filter=all|open|done|mine, by due date (undated last)",
    params(("study_id" = i64, Path), ("filter" = Option<String>, Query, description = "all, open, done or mine")),
    responses((status = 200, description = "{items: Task[]}", body = Items<Task>), (status = 400, description = "validation_failed (filter)", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    let mut filter = TaskFilter::All;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if k == "filter" {
            filter = match v.as_ref() {
                "all" | "" => TaskFilter::All,
                "open" => TaskFilter::Open,
                "done" => TaskFilter::Done,
                "mine" => TaskFilter::Mine,
                _ => {
                    return Err(ApiError::validation(
                        "filter",
                        "filter is all, open, done or mine",
                    ));
                }
            };
        }
    }
    let items = state
        .store
        .tasks(StudyId(*path), auth.user.id, filter)
        .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// Tasks the home page lists: a person's open work fits, and the list stays one response.
const MY_TASKS_MAX: i64 = 50;

/// `GET /api/me/tasks`: the caller's open tasks across their studies, soonest due first.
#[utoipa::path(
    get,
    path = "/api/me/tasks",
    tag = "tasks",
    summary = "My open tasks across the studies I am in, soonest due first (at most 50), each with study_title",
    responses((status = 200, description = "{items: Task[]}", body = Items<MyTask>), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn mine(state: web::Data<AppState>, auth: Authenticated) -> Res {
    let rows = state
        .store
        .my_open_tasks(auth.user.id, MY_TASKS_MAX)
        .await?;
    let items: Vec<MyTask> = rows
        .into_iter()
        .map(|(task, study_title)| MyTask { task, study_title })
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `POST /api/studies/{study_id}/tasks`
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/tasks",
    tag = "tasks",
    summary = "Create a task (members)",
    request_body = TaskForm,
    params(("study_id" = i64, Path)),
    responses((status = 201, description = "{task}", body = TaskEnvelope), (status = 400, description = "validation_failed (title, description, due_on, status, assignee_id)", body = ErrorBody), (status = 409, description = "task_limit (500 per study)", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<TaskForm>,
) -> Res {
    let study = StudyId(*path);
    let fields = off_thread(move || body.into_inner().into_new()).await?;
    let (task, notes) = state
        .store
        .create_task(study, auth.user.id, &fields, now_millis())
        .await?;
    push_notifications(&state.registry, notes).await;
    announce(
        &state,
        study,
        StudyEvent::TaskCreated { task: task.clone() },
        Some((Item::Task(task.id), Step::At(task.version))),
    )
    .await;
    Ok(HttpResponse::Created().json(TaskEnvelope { task }))
}

/// `GET /api/studies/{study_id}/tasks/{task_id}`
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/tasks/{task_id}",
    tag = "tasks",
    summary = "One task (members)",
    params(("study_id" = i64, Path), ("task_id" = i64, Path)),
    responses((status = 200, description = "{task}", body = TaskEnvelope), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, task) = path.into_inner();
    let task = state
        .store
        .task(StudyId(study), TaskId(task), auth.user.id)
        .await?;
    Ok(HttpResponse::Ok().json(TaskEnvelope { task }))
}

/// `PATCH /api/studies/{study_id}/tasks/{task_id}`: edit, complete (`status: done`), reopen.
#[utoipa::path(
    patch,
    path = "/api/studies/{study_id}/tasks/{task_id}",
    tag = "tasks",
    summary = "Edit, complete (status done) or reopen (status open) a task (members); null clears due_on/assignee_id",
    request_body = TaskForm,
    params(("study_id" = i64, Path), ("task_id" = i64, Path)),
    responses((status = 200, description = "{task}", body = TaskEnvelope), (status = 400, description = "validation_failed", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 409, description = "edit_conflict (version given and stale)", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn edit(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    body: web::Json<TaskForm>,
) -> Res {
    let (study, task) = (StudyId(path.0), TaskId(path.1));
    let form = body.into_inner();
    let (task, notes) = edit_rounds(form.version, || async {
        let t = state.store.task(study, task, auth.user.id).await?;
        if form.version.is_some_and(|v| v != t.version) {
            return Err(Rule::Stale.into());
        }
        let current = TaskFields {
            title: t.title,
            description: t.description,
            description_html: t.description_html,
            due_on: t.due_on,
            assignee: t.assignee.map(|a| a.id),
            status: t.status,
        };
        let f = form.clone();
        let fields = off_thread(move || f.apply_to(current)).await?;
        Ok(state
            .store
            .update_task(study, task, auth.user.id, &fields, t.version, now_millis())
            .await)
    })
    .await?;
    push_notifications(&state.registry, notes).await;
    announce(
        &state,
        study,
        StudyEvent::TaskUpdated { task: task.clone() },
        Some((Item::Task(task.id), Step::At(task.version))),
    )
    .await;
    Ok(HttpResponse::Ok().json(TaskEnvelope { task }))
}

/// `DELETE /api/studies/{study_id}/tasks/{task_id}`: with its posts and their files.
#[utoipa::path(
    delete,
    path = "/api/studies/{study_id}/tasks/{task_id}",
    tag = "tasks",
    summary = "Delete a task with its posts and their files (members)",
    params(("study_id" = i64, Path), ("task_id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, task) = (StudyId(path.0), TaskId(path.1));
    let keys = state.store.delete_task(study, task, auth.user.id).await?;
    delete_objects(&state, keys).await;
    announce(
        &state,
        study,
        StudyEvent::TaskDeleted { task_id: task },
        Some((Item::Task(task), Step::Deleted)),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/studies/{study_id}/tasks/{task_id}/posts?q=&cursor=&limit=`: newest first.
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/tasks/{task_id}/posts",
    tag = "tasks",
    summary = "A task's posts, newest first (members): ?q= title search, ?cursor= from next_cursor, ?limit=1–50",
    params(("study_id" = i64, Path), ("task_id" = i64, Path), ("q" = Option<String>, Query, description = "title search"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 50)),
    responses((status = 200, description = "{items: PostSummary[], next_cursor}", body = Page<PostSummary>), (status = 400, description = "validation_failed (q, cursor, limit)", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn posts(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, task) = (StudyId(path.0), TaskId(path.1));
    let (mut q, mut cursor, mut limit) = (None, None, PAGE_DEFAULT);
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "q" => q = Some(paging::search(&v)?),
            "cursor" if !v.is_empty() => {
                cursor = Some(
                    tasks::decode_cursor(&v)
                        .ok_or_else(|| ApiError::validation("cursor", "invalid cursor"))?,
                );
            }
            "limit" => limit = paging::limit(&v, PAGE_MAX)?,
            _ => {}
        }
    }
    let mut items = state
        .store
        .posts(study, task, auth.user.id, q.as_deref(), cursor, limit + 1)
        .await?;
    let next_cursor = paging::finish(&mut items, limit, |p| tasks::encode_cursor(p.id));
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

pub(super) fn summary(p: &tasks::Post) -> tasks::PostSummary {
    tasks::PostSummary {
        id: p.id,
        task_id: p.task_id,
        title: p.title.clone(),
        author: p.author.clone(),
        created_at: p.created_at,
        updated_at: p.updated_at,
        attachment_count: p.attachments.len() as i64,
        locked: p.locked,
        version: p.version,
    }
}

/// `POST /api/studies/{study_id}/tasks/{task_id}/posts`
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/tasks/{task_id}/posts",
    tag = "tasks",
    summary = "Write a post under a task (members); markdown rendered, highlighted and sanitized on the server",
    request_body = PostForm,
    params(("study_id" = i64, Path), ("task_id" = i64, Path)),
    responses((status = 201, description = "{post}", body = PostEnvelope), (status = 400, description = "validation_failed (title, body)", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn create_post(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    body: web::Json<PostForm>,
) -> Res {
    let (study, task) = (StudyId(path.0), TaskId(path.1));
    let fields = off_thread(move || body.into_inner().into_new()).await?;
    let post = state
        .store
        .create_post(study, task, auth.user.id, &fields, now_millis())
        .await?;
    announce(
        &state,
        study,
        StudyEvent::PostCreated {
            post: summary(&post),
        },
        Some((Item::Post(post.id), Step::At(post.version))),
    )
    .await;
    task_changed(&state, study, task, auth.user.id).await;
    Ok(HttpResponse::Created().json(PostEnvelope { post }))
}

/// `GET /api/studies/{study_id}/posts/{post_id}`
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/posts/{post_id}",
    tag = "tasks",
    summary = "One post with body_html and attachments (members)",
    params(("study_id" = i64, Path), ("post_id" = i64, Path)),
    responses((status = 200, description = "{post}", body = PostEnvelope), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn get_post(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let post = state
        .store
        .post(StudyId(path.0), PostId(path.1), auth.user.id)
        .await?;
    Ok(HttpResponse::Ok().json(PostEnvelope { post }))
}

/// `PATCH /api/studies/{study_id}/posts/{post_id}` (the author)
#[utoipa::path(
    patch,
    path = "/api/studies/{study_id}/posts/{post_id}",
    tag = "tasks",
    summary = "Edit a post (its author)",
    request_body = PostForm,
    params(("study_id" = i64, Path), ("post_id" = i64, Path)),
    responses((status = 200, description = "{post}", body = PostEnvelope), (status = 403, description = "not_author", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 409, description = "edit_conflict (version given and stale)", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn edit_post(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    body: web::Json<PostForm>,
) -> Res {
    let (study, post) = (StudyId(path.0), PostId(path.1));
    let mut form = body.into_inner();
    // The body is the co-edited document's: it changes by an edit live editors converge
    // on, never by overwriting the row (see `live::doc`).
    let new_body = form
        .body
        .take()
        .map(crate::tasks::rules::post_body)
        .transpose()?;
    if form.title.is_none() {
        // Only the body: the author and version checks, then the document's edit (which
        // bumps the version once, when the row is refreshed).
        let p = state.store.post(study, post, auth.user.id).await?;
        if p.author.id != auth.user.id {
            return Err(Rule::NotAuthor.into());
        }
        if form.version.is_some_and(|v| v != p.version) {
            return Err(ApiError::from(Rule::Stale));
        }
        if let Some(text) = new_body {
            super::docs::replace_body(&state, study, post, auth.user.id, text).await?;
        }
        let post = state.store.post(study, post, auth.user.id).await?;
        return Ok(HttpResponse::Ok().json(PostEnvelope { post }));
    }
    let post = edit_rounds(form.version, || async {
        let p = state.store.post(study, post, auth.user.id).await?;
        if p.author.id != auth.user.id {
            return Err(Rule::NotAuthor.into());
        }
        if form.version.is_some_and(|v| v != p.version) {
            return Err(Rule::Stale.into());
        }
        let current = PostFields {
            title: p.title,
            body: p.body,
            body_html: p.body_html,
        };
        let f = form.clone();
        let fields = off_thread(move || f.apply_to(current)).await?;
        Ok(state
            .store
            .update_post(study, post, auth.user.id, &fields, p.version, now_millis())
            .await)
    })
    .await?;
    announce(
        &state,
        study,
        StudyEvent::PostUpdated {
            post: summary(&post),
        },
        Some((Item::Post(post.id), Step::At(post.version))),
    )
    .await;
    let post = match new_body {
        Some(text) => {
            super::docs::replace_body(&state, study, post.id, auth.user.id, text).await?;
            state.store.post(study, post.id, auth.user.id).await?
        }
        None => post,
    };
    Ok(HttpResponse::Ok().json(PostEnvelope { post }))
}

/// `DELETE /api/studies/{study_id}/posts/{post_id}` (the author, or the leader)
#[utoipa::path(
    delete,
    path = "/api/studies/{study_id}/posts/{post_id}",
    tag = "tasks",
    summary = "Delete a post and its files (its author, or the leader)",
    params(("study_id" = i64, Path), ("post_id" = i64, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "not_author", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn delete_post(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, post) = (StudyId(path.0), PostId(path.1));
    let (task, keys) = state.store.delete_post(study, post, auth.user.id).await?;
    let _ = state
        .registry
        .tell_if_running::<crate::live::doc::PostDoc>(post, crate::live::doc::PostDocMsg::Deleted)
        .await;
    delete_objects(&state, keys).await;
    announce(
        &state,
        study,
        StudyEvent::PostDeleted {
            task_id: task,
            post_id: post,
        },
        Some((Item::Post(post), Step::Deleted)),
    )
    .await;
    task_changed(&state, study, task, auth.user.id).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-reads a task whose post count changed and tells the members.
async fn task_changed(state: &AppState, study: StudyId, task: TaskId, user: crate::ids::UserId) {
    if let Ok(t) = state.store.task(study, task, user).await {
        let order = Some((Item::Task(t.id), Step::At(t.version)));
        announce(
            state,
            study,
            StudyEvent::TaskUpdated { task: t.clone() },
            order,
        )
        .await;
    }
}

/// Re-reads a post after its attachments changed and tells the members.
pub(super) async fn post_changed(
    state: &AppState,
    study: StudyId,
    post: PostId,
    user: crate::ids::UserId,
) {
    if let Ok(p) = state.store.post(study, post, user).await {
        announce(
            state,
            study,
            StudyEvent::PostUpdated { post: summary(&p) },
            Some((Item::Post(p.id), Step::At(p.version))),
        )
        .await;
    }
}
