//! Studies over HTTP: recruiting posts, browsing, bookmarks, applications, membership,
//! reviews and profiles. Membership and status changes go through the `Study` actor (the
//! single writer); reads go to the store, which checks the caller's role in the same
//! transaction as the read.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::api_types::*;
use super::auth::Authenticated;
use super::paging::{self, PAGE_DEFAULT, PAGE_MAX};
use crate::error::ApiError;
use crate::ids::{ApplicationId, ReviewId, StudyId, UserId};
use crate::live::study::{Study, StudyMsg, StudyOutcome};
use crate::live::user::push_notifications;
use crate::server::AppState;
use crate::store::now_millis;
use crate::studies::rules::{self, StudyFields, StudyForm};
use crate::studies::{
    Application, StudyCursor, StudyDetail, StudyQuery, StudySort, StudyStatus, markdown,
};

/// Tags one search may filter by.
const MAX_FILTER_TAGS: usize = 5;

type Res = Result<HttpResponse, ApiError>;

async fn detail(state: &AppState, id: StudyId, viewer: UserId) -> Result<StudyDetail, ApiError> {
    let v = state
        .store
        .study_view(id, viewer)
        .await?
        .ok_or(ApiError::NotFound)?;
    let description = v.study.description.clone();
    let attachments = if v.role.is_member() {
        state.store.study_files(id, viewer).await?
    } else {
        Vec::new()
    };
    Ok(StudyDetail {
        attachments,
        description_html: markdown::render(&description),
        description,
        summary: v.study,
        my_role: v.role,
        bookmarked: v.bookmarked,
        my_application: v.my_application,
    })
}

/// Sends a command to the study's actor and maps its answer.
async fn command(state: &AppState, id: StudyId, msg: StudyMsg) -> Result<StudyOutcome, ApiError> {
    Ok(state.registry.ask::<Study>(id, msg).await??)
}

/// `POST /api/studies`
#[utoipa::path(
    post,
    path = "/api/studies",
    tag = "studies",
    summary = "Create a study (you become its leader)",
    request_body = StudyForm,
    responses((status = 201, description = "Created", body = StudyEnvelope), (status = 400, description = "validation_failed with field", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Json<StudyForm>,
) -> Res {
    let fields = body.into_inner().into_new()?;
    let id = state
        .store
        .create_study(auth.user.id, &fields, now_millis())
        .await?;
    let study = detail(&state, id, auth.user.id).await?;
    Ok(HttpResponse::Created().json(StudyEnvelope { study }))
}

/// `GET /api/studies?q=&status=&tag=&sort=&cursor=&limit=`
#[utoipa::path(
    get,
    path = "/api/studies",
    tag = "studies",
    summary = "Browse: q (title, any case), status, tag (repeatable; all must match), sort=newest|deadline, cursor, limit ≤ 50",
    params(("q" = Option<String>, Query, description = "title search, any case"), ("status" = Option<String>, Query, description = "recruiting, in_progress or completed"), ("tag" = Option<String>, Query, description = "comma-separated tags; a study must have all"), ("sort" = Option<String>, Query, description = "newest (default) or deadline"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 50)),
    responses((status = 200, description = "One page and the next cursor", body = Page<StudySummary>), (status = 400, description = "validation_failed", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>, _auth: Authenticated) -> Res {
    let mut q = StudyQuery {
        limit: PAGE_DEFAULT,
        ..Default::default()
    };
    let mut tags = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "q" => q.q = Some(paging::search(&v)?),
            "status" if !v.is_empty() => {
                q.status = Some(
                    StudyStatus::parse(&v)
                        .ok_or_else(|| ApiError::validation("status", "unknown status"))?,
                );
            }
            "tag" => tags.extend(
                v.split(',')
                    .filter(|t| !t.trim().is_empty())
                    .map(str::to_string),
            ),
            "sort" => {
                q.sort = match v.as_ref() {
                    "newest" | "" => StudySort::Newest,
                    "deadline" => StudySort::Deadline,
                    _ => return Err(ApiError::validation("sort", "sort is newest or deadline")),
                }
            }
            "cursor" if !v.is_empty() => {
                q.cursor = Some(
                    StudyCursor::decode(&v)
                        .ok_or_else(|| ApiError::validation("cursor", "invalid cursor"))?,
                );
            }
            "limit" => q.limit = paging::limit(&v, PAGE_MAX)?,
            _ => {}
        }
    }
    q.tags = rules::tags(&tags)?;
    if q.tags.len() > MAX_FILTER_TAGS {
        return Err(ApiError::validation("tag", "filter by at most 5 tags"));
    }
    // A deadline cursor must carry a date, a newest cursor must not.
    if let Some(c) = &q.cursor
        && c.closes_on.is_some() != (q.sort == StudySort::Deadline)
    {
        return Err(ApiError::validation(
            "cursor",
            "the cursor belongs to another sort order",
        ));
    }
    let limit = q.limit;
    q.limit += 1;
    let mut items = state.store.list_studies(&q).await?;
    let next_cursor = paging::finish(&mut items, limit, |s| {
        StudyCursor {
            closes_on: (q.sort == StudySort::Deadline).then(|| s.recruit_closes_on.clone()),
            id: s.id.0,
        }
        .encode()
    });
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// `GET /api/studies/{study_id}`
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}",
    tag = "studies",
    summary = "A study, with my role, bookmark and application",
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "The study", body = StudyEnvelope), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn get(state: web::Data<AppState>, auth: Authenticated, path: web::Path<i64>) -> Res {
    Ok(HttpResponse::Ok().json(StudyEnvelope {
        study: detail(&state, StudyId(*path), auth.user.id).await?,
    }))
}

/// `PATCH /api/studies/{study_id}` (leader)
#[utoipa::path(
    patch,
    path = "/api/studies/{study_id}",
    tag = "studies",
    summary = "Edit the study (leader); omitted fields stay",
    request_body = StudyForm,
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "The study", body = StudyEnvelope), (status = 400, description = "validation_failed", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn edit(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<StudyForm>,
) -> Res {
    let id = StudyId(*path);
    let v = state
        .store
        .study_view(id, auth.user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !v.role.can_manage() {
        return Err(ApiError::NotFound);
    }
    let s = v.study;
    let current = StudyFields {
        title: s.title,
        description: s.description,
        tags: s.tags,
        capacity: s.capacity,
        recruit_opens_on: s.recruit_opens_on,
        recruit_closes_on: s.recruit_closes_on,
        starts_on: s.starts_on,
        ends_on: s.ends_on,
    };
    let fields = body.into_inner().apply_to(current)?;
    command(
        &state,
        id,
        StudyMsg::Edit {
            leader: auth.user.id,
            fields,
        },
    )
    .await?;
    let study = detail(&state, id, auth.user.id).await?;
    Ok(HttpResponse::Ok().json(StudyEnvelope { study }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    #[schema(value_type = StudyStatus)]
    status: String,
}

/// `POST /api/studies/{study_id}/status` (leader)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/status",
    tag = "studies",
    summary = "Change status (leader): recruiting ↔ in_progress, either → completed (final)",
    request_body = StatusBody,
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "The study", body = StudyEnvelope), (status = 409, description = "invalid_status_transition", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn set_status(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<StatusBody>,
) -> Res {
    let id = StudyId(*path);
    let status = StudyStatus::parse(&body.status)
        .ok_or_else(|| ApiError::validation("status", "unknown status"))?;
    command(
        &state,
        id,
        StudyMsg::SetStatus {
            leader: auth.user.id,
            status,
        },
    )
    .await?;
    let study = detail(&state, id, auth.user.id).await?;
    Ok(HttpResponse::Ok().json(StudyEnvelope { study }))
}

/// `POST /api/studies/{study_id}/bookmark` (toggle)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/bookmark",
    tag = "studies",
    summary = "Toggle my bookmark on a study",
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "{bookmarked}", body = Bookmarked), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn bookmark(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    let on = state
        .store
        .toggle_bookmark(StudyId(*path), auth.user.id, now_millis())
        .await?;
    Ok(HttpResponse::Ok().json(Bookmarked { bookmarked: on }))
}

/// `GET /api/studies/{study_id}/members` (members)
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/members",
    tag = "studies",
    summary = "Members (members and leader only)",
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "{items: Member[]}", body = Items<Member>), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn members(state: web::Data<AppState>, auth: Authenticated, path: web::Path<i64>) -> Res {
    let items = state.store.members(StudyId(*path), auth.user.id).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    #[serde(default)]
    #[schema(max_length = 1000)]
    message: String,
}

fn application(outcome: StudyOutcome) -> Result<Application, ApiError> {
    match outcome {
        StudyOutcome::Application(a) => Ok(a),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "study actor returned no application"
        ))),
    }
}

/// `POST /api/studies/{study_id}/applications`
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/applications",
    tag = "studies",
    summary = "Apply with a message (≤ 1000 characters)",
    request_body = ApplyBody,
    params(("study_id" = i64, Path)),
    responses((status = 201, description = "{application}", body = ApplicationEnvelope), (status = 403, description = "banned", body = ErrorBody), (status = 409, description = "not_recruiting, study_full, already_member or application_exists", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn apply(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<ApplyBody>,
) -> Res {
    let message = rules::application_message(&body.message)?;
    let a = application(
        command(
            &state,
            StudyId(*path),
            StudyMsg::Apply {
                user: auth.user.id,
                message,
            },
        )
        .await?,
    )?;
    Ok(HttpResponse::Created().json(ApplicationEnvelope { application: a }))
}

/// `GET /api/studies/{study_id}/applications` (leader): each applicant with the reviews
/// others wrote about them and the studies they completed.
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/applications",
    tag = "studies",
    summary = "Applications with each applicant's reviews and completed studies (leader)",
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "{items: Application[]}", body = Items<ApplicationWithApplicant>), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn applications(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    let rows = state
        .store
        .applications(StudyId(*path), auth.user.id)
        .await?;
    let mut ids: Vec<UserId> = rows.iter().map(|(_, u)| u.id).collect();
    ids.sort();
    ids.dedup();
    let reputations = state.store.reputations(&ids).await?;
    let items: Vec<ApplicationWithApplicant> = rows
        .into_iter()
        .map(|(application, user)| {
            let reputation = reputations.get(&user.id).cloned().unwrap_or_default();
            ApplicationWithApplicant {
                application,
                applicant: Profile { user, reputation },
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `POST /api/studies/{study_id}/applications/{application_id}/withdraw` (the applicant)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/applications/{application_id}/withdraw",
    tag = "studies",
    summary = "Withdraw my pending application",
    params(("study_id" = i64, Path), ("application_id" = i64, Path)),
    responses((status = 200, description = "{application}", body = ApplicationEnvelope), (status = 409, description = "application_not_pending", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn withdraw(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (sid, aid) = path.into_inner();
    let msg = StudyMsg::Withdraw {
        user: auth.user.id,
        application: ApplicationId(aid),
    };
    let a = application(command(&state, StudyId(sid), msg).await?)?;
    Ok(HttpResponse::Ok().json(ApplicationEnvelope { application: a }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    accept: bool,
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// `POST /api/studies/{study_id}/applications/{application_id}/decision` (leader)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/applications/{application_id}/decision",
    tag = "studies",
    summary = "Accept or reject an application (leader); capacity holds under races",
    request_body = DecisionBody,
    params(("study_id" = i64, Path), ("application_id" = i64, Path)),
    responses((status = 200, description = "{application}", body = ApplicationEnvelope), (status = 409, description = "study_full or application_not_pending", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn decide(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    body: web::Json<DecisionBody>,
) -> Res {
    let (sid, aid) = path.into_inner();
    let body = body.into_inner();
    let reason = rules::reason(body.reason)?;
    let msg = StudyMsg::Decide {
        leader: auth.user.id,
        application: ApplicationId(aid),
        accept: body.accept,
        reason,
    };
    let a = application(command(&state, StudyId(sid), msg).await?)?;
    Ok(HttpResponse::Ok().json(ApplicationEnvelope { application: a }))
}

/// `POST /api/studies/{study_id}/leave` (member)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/leave",
    tag = "studies",
    summary = "Leave the study (members; the leader transfers first)",
    params(("study_id" = i64, Path)),
    responses((status = 204, description = "Left"), (status = 409, description = "leader_must_transfer", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn leave(state: web::Data<AppState>, auth: Authenticated, path: web::Path<i64>) -> Res {
    command(
        &state,
        StudyId(*path),
        StudyMsg::Leave { user: auth.user.id },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    user_id: i64,
}

/// `POST /api/studies/{study_id}/transfer` (leader)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/transfer",
    tag = "studies",
    summary = "Hand the lead to a member (leader)",
    request_body = TransferBody,
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "The study", body = StudyEnvelope), (status = 400, description = "validation_failed (user_id not a member)", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn transfer(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<TransferBody>,
) -> Res {
    let id = StudyId(*path);
    command(
        &state,
        id,
        StudyMsg::Transfer {
            leader: auth.user.id,
            to: UserId(body.user_id),
        },
    )
    .await?;
    let study = detail(&state, id, auth.user.id).await?;
    Ok(HttpResponse::Ok().json(StudyEnvelope { study }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    #[serde(default)]
    ban: bool,
}

/// `POST /api/studies/{study_id}/members/{user_id}/remove` (leader)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/members/{user_id}/remove",
    tag = "studies",
    summary = "Remove a member, optionally banning them from applying again (leader)",
    request_body = RemoveBody,
    params(("study_id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204, description = "Removed; their live connections to the study are dropped"), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
    body: web::Json<RemoveBody>,
) -> Res {
    let (sid, uid) = path.into_inner();
    command(
        &state,
        StudyId(sid),
        StudyMsg::Remove {
            leader: auth.user.id,
            user: UserId(uid),
            ban: body.ban,
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    reviewee_id: i64,
    #[schema(minimum = 1, maximum = 5)]
    rating: i64,
    #[serde(default)]
    #[schema(max_length = 1000)]
    body: String,
}

/// `POST /api/studies/{study_id}/reviews` (present or past member)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/reviews",
    tag = "reviews",
    summary = "Review another present or past member, once per study",
    request_body = ReviewBody,
    params(("study_id" = i64, Path)),
    responses((status = 201, description = "{review}", body = ReviewEnvelope), (status = 409, description = "review_exists", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn review(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<ReviewBody>,
) -> Res {
    let b = body.into_inner();
    let text = rules::review(b.rating, &b.body)?;
    let (r, notes) = state
        .store
        .create_review(
            StudyId(*path),
            auth.user.id,
            UserId(b.reviewee_id),
            b.rating,
            &text,
            now_millis(),
        )
        .await?;
    push_notifications(&state.registry, notes).await;
    Ok(HttpResponse::Created().json(ReviewEnvelope { review: r }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewPatch {
    #[schema(minimum = 1, maximum = 5)]
    rating: Option<i64>,
    #[schema(max_length = 1000)]
    body: Option<String>,
}

/// `PATCH /api/reviews/{review_id}` (author)
#[utoipa::path(
    patch,
    path = "/api/reviews/{review_id}",
    tag = "reviews",
    summary = "Edit my review",
    request_body = ReviewPatch,
    params(("review_id" = i64, Path)),
    responses((status = 200, description = "{review}", body = ReviewEnvelope), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn edit_review(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<ReviewPatch>,
) -> Res {
    let b = body.into_inner();
    let text = match (&b.body, b.rating) {
        (Some(t), r) => Some(rules::review(r.unwrap_or(3), t)?),
        (None, Some(r)) => {
            rules::review(r, "")?;
            None
        }
        (None, None) => None,
    };
    let r = state
        .store
        .update_review(ReviewId(*path), auth.user.id, b.rating, text, now_millis())
        .await?;
    Ok(HttpResponse::Ok().json(ReviewEnvelope { review: r }))
}

/// `GET /api/users/{user_id}/profile`
#[utoipa::path(
    get,
    path = "/api/users/{user_id}/profile",
    tag = "reviews",
    summary = "A user's profile: reviews (average, count, texts) and completed studies",
    params(("user_id" = i64, Path)),
    responses((status = 200, description = "Profile", body = Profile), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn profile(
    state: web::Data<AppState>,
    _auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    let user = state
        .store
        .user(UserId(*path))
        .await?
        .ok_or(ApiError::NotFound)?;
    let reputation = state.store.reputation(user.id).await?;
    Ok(HttpResponse::Ok().json(Profile { user, reputation }))
}

/// `GET /api/me/studies`
#[utoipa::path(
    get,
    path = "/api/me/studies",
    tag = "studies",
    summary = "My studies: the ones I lead, the ones I joined, my applications",
    responses((status = 200, description = "My studies", body = MyStudies), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn my_studies(state: web::Data<AppState>, auth: Authenticated) -> Res {
    let m = state.store.my_studies(auth.user.id).await?;
    let applications = m
        .applications
        .into_iter()
        .map(|(application, study)| MyApplication { application, study })
        .collect();
    Ok(HttpResponse::Ok().json(MyStudies {
        leading: m.leading,
        joined: m.joined,
        applications,
    }))
}

/// `GET /api/me/bookmarks`
#[utoipa::path(
    get,
    path = "/api/me/bookmarks",
    tag = "studies",
    summary = "My bookmarked studies (wishlist)",
    responses((status = 200, description = "Studies", body = Items<StudySummary>), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn my_bookmarks(state: web::Data<AppState>, auth: Authenticated) -> Res {
    let items = state.store.bookmarks(auth.user.id).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
