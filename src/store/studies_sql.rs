//! The study queries both dialects share (see `sql.rs` for why one macro serves both).

macro_rules! studies_store_impl {
    ($store:ty, $db:ty) => {
        mod studies_impl {
            use std::collections::HashMap;

            use sqlx::QueryBuilder;

            use super::*;
            use crate::ids::{ApplicationId, NotificationId, ReviewId, StudyId, UserId};
            use crate::store::studies::{MyStudies, Rule, StudyState, StudyStore, StudyView};
            use crate::store::{Millis, StoreError, StoreResult, User};
            use crate::studies::rules::StudyFields;
            use crate::studies::{
                Application, ApplicationRef, ApplicationStatus, Member, NewNotification, Notification, Reputation,
                Review, Role, StudyQuery, StudyRef, StudySort, StudyStatus, StudySummary,
            };

            type Conn = <$db as sqlx::Database>::Connection;
            type Db = $db;

            const STUDY_SELECT: &str = "SELECT s.id, s.leader_id, u.login_id, u.display_name, u.created_at, \
                s.title, s.description, s.capacity, s.member_count, s.status, s.recruit_opens_on, \
                s.recruit_closes_on, s.starts_on, s.ends_on, s.created_at, s.updated_at \
                FROM studies s JOIN users u ON u.id = s.leader_id";
            type StudyRow =
                (i64, i64, String, String, i64, String, String, i64, i64, String, String, String, String, String, i64, i64);

            const APP_COLUMNS: &str = "a.id, a.study_id, a.user_id, a.message, a.status, a.reason, a.created_at, a.decided_at";
            type AppRow = (i64, i64, i64, String, String, Option<String>, i64, Option<i64>);

            /// Reviews and completed studies listed per user in a reputation.
            const REPUTATION_LIST_MAX: i64 = 50;

            const REVIEW_SELECT: &str = "SELECT r.id, r.study_id, s.title, a.id, a.login_id, a.display_name, \
                a.created_at, e.id, e.login_id, e.display_name, e.created_at, r.rating, r.body, r.created_at, \
                r.updated_at FROM reviews r JOIN studies s ON s.id = r.study_id \
                JOIN users a ON a.id = r.author_id JOIN users e ON e.id = r.reviewee_id";
            type ReviewRow =
                (i64, i64, String, i64, String, String, i64, i64, String, String, i64, i64, String, i64, i64);

            fn err(r: Rule) -> StoreError {
                StoreError::Rule(r)
            }

            fn user(id: i64, login_id: String, display_name: String, created_at: i64) -> User {
                User { id: UserId(id), login_id, display_name, created_at }
            }

            fn app(r: AppRow) -> Application {
                Application {
                    id: ApplicationId(r.0),
                    study_id: StudyId(r.1),
                    user_id: UserId(r.2),
                    message: r.3,
                    status: ApplicationStatus::parse(&r.4),
                    reason: r.5,
                    created_at: r.6,
                    decided_at: r.7,
                }
            }

            fn review(r: ReviewRow) -> Review {
                Review {
                    id: ReviewId(r.0),
                    study_id: StudyId(r.1),
                    study_title: r.2,
                    author: user(r.3, r.4, r.5, r.6),
                    reviewee: user(r.7, r.8, r.9, r.10),
                    rating: r.11,
                    body: r.12,
                    created_at: r.13,
                    updated_at: r.14,
                }
            }

            pub(super) fn like_pattern(q: &str) -> String {
                let mut p = String::from("%");
                for ch in q.to_lowercase().chars() {
                    if matches!(ch, '%' | '_' | '\\') {
                        p.push('\\');
                    }
                    p.push(ch);
                }
                p.push('%');
                p
            }

            /// Rows plus their tags (one extra query for the whole page).
            async fn with_tags(c: &mut Conn, rows: Vec<StudyRow>) -> Result<Vec<StudySummary>, sqlx::Error> {
                let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
                if !rows.is_empty() {
                    let mut qb = QueryBuilder::<Db>::new("SELECT study_id, tag FROM study_tags WHERE study_id IN (");
                    let mut sep = qb.separated(", ");
                    for r in &rows {
                        sep.push_bind(r.0);
                    }
                    qb.push(") ORDER BY tag");
                    let pairs: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *c).await?;
                    for (id, t) in pairs {
                        tags.entry(id).or_default().push(t);
                    }
                }
                Ok(rows
                    .into_iter()
                    .map(|r| StudySummary {
                        id: StudyId(r.0),
                        leader: user(r.1, r.2, r.3, r.4),
                        title: r.5,
                        description: r.6,
                        capacity: r.7,
                        member_count: r.8,
                        status: StudyStatus::parse(&r.9).unwrap_or(StudyStatus::Recruiting),
                        recruit_opens_on: r.10,
                        recruit_closes_on: r.11,
                        starts_on: r.12,
                        ends_on: r.13,
                        created_at: r.14,
                        updated_at: r.15,
                        tags: tags.remove(&r.0).unwrap_or_default(),
                    })
                    .collect())
            }

            async fn study_by_id(c: &mut Conn, id: i64) -> Result<Option<StudySummary>, sqlx::Error> {
                let mut qb = QueryBuilder::<Db>::new(STUDY_SELECT);
                qb.push(" WHERE s.id = ").push_bind(id);
                let rows: Vec<StudyRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                Ok(with_tags(c, rows).await?.pop())
            }

            async fn studies_by_ids(c: &mut Conn, ids: &[i64]) -> Result<Vec<StudySummary>, sqlx::Error> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = QueryBuilder::<Db>::new(STUDY_SELECT);
                qb.push(" WHERE s.id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                qb.push(")");
                let rows: Vec<StudyRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                with_tags(c, rows).await
            }

            /// `Leader` or `Member` for a current member, `None` otherwise (chat uses it too).
            pub(super) async fn membership(c: &mut Conn, study: i64, user: i64) -> Result<Option<Role>, sqlx::Error> {
                let m: Option<(String,)> = sqlx::query_as(
                    "SELECT role FROM memberships WHERE study_id = $1 AND user_id = $2 AND left_at IS NULL",
                )
                .bind(study)
                .bind(user)
                .fetch_optional(&mut *c)
                .await?;
                Ok(m.map(|(r,)| if r == "leader" { Role::Leader } else { Role::Member }))
            }

            /// The user's role, or `None` when the study does not exist.
            async fn role_in(c: &mut Conn, study: i64, user: i64) -> Result<Option<Role>, sqlx::Error> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM studies WHERE id = $1")
                    .bind(study)
                    .fetch_one(&mut *c)
                    .await?;
                if n == 0 {
                    return Ok(None);
                }
                if let Some(role) = membership(c, study, user).await? {
                    return Ok(Some(role));
                }
                let (p,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM applications WHERE study_id = $1 AND user_id = $2 AND status = 'pending'",
                )
                .bind(study)
                .bind(user)
                .fetch_one(&mut *c)
                .await?;
                Ok(Some(if p > 0 { Role::Applicant } else { Role::None }))
            }

            /// Fails with `NotFound` unless `user` leads `study`.
            async fn require_leader(c: &mut Conn, study: i64, user: i64) -> StoreResult<()> {
                match role_in(c, study, user).await? {
                    Some(Role::Leader) => Ok(()),
                    _ => Err(err(Rule::NotFound)),
                }
            }

            pub(super) async fn title_of(c: &mut Conn, study: i64) -> Result<String, sqlx::Error> {
                let (t,): (String,) =
                    sqlx::query_as("SELECT title FROM studies WHERE id = $1").bind(study).fetch_one(&mut *c).await?;
                Ok(t)
            }

            /// One `kind` notification for every current member of `study` (with
            /// `with_leader`, the leader too), all with one payload and the collapse key
            /// `kind:study`.
            pub(super) async fn member_notes(
                c: &mut Conn,
                study: i64,
                with_leader: bool,
                kind: &'static str,
                payload: serde_json::Value,
            ) -> Result<Vec<NewNotification>, sqlx::Error> {
                let q = if with_leader {
                    "SELECT user_id FROM memberships WHERE study_id = $1 AND left_at IS NULL ORDER BY user_id"
                } else {
                    "SELECT user_id FROM memberships WHERE study_id = $1 AND left_at IS NULL AND role = 'member' ORDER BY user_id"
                };
                let members: Vec<(i64,)> = sqlx::query_as(q).bind(study).fetch_all(&mut *c).await?;
                Ok(members
                    .into_iter()
                    .map(|(u,)| NewNotification {
                        user_id: UserId(u),
                        kind,
                        payload: payload.clone(),
                        collapse_key: Some(format!("{kind}:{study}")),
                    })
                    .collect())
            }

            pub(super) async fn notify_in(c: &mut Conn, list: &[NewNotification], now: Millis) -> Result<Vec<Notification>, sqlx::Error> {
                let mut out = Vec::with_capacity(list.len());
                for n in list {
                    let payload = n.payload.to_string();
                    // Inserted unless an unread one with the same collapse key exists (the
                    // unique partial index decides, so two racing writers cannot both insert);
                    // then that one is updated instead and not pushed again.
                    let inserted: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO notifications (user_id, kind, payload, created_at, collapse_key) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (user_id, collapse_key) WHERE read_at IS NULL AND collapse_key IS NOT NULL \
                         DO NOTHING RETURNING id",
                    )
                    .bind(n.user_id.0)
                    .bind(n.kind)
                    .bind(&payload)
                    .bind(now)
                    .bind(&n.collapse_key)
                    .fetch_optional(&mut *c)
                    .await?;
                    let Some((id,)) = inserted else {
                        sqlx::query(
                            "UPDATE notifications SET payload = $1, created_at = $2 \
                             WHERE user_id = $3 AND collapse_key = $4 AND read_at IS NULL",
                        )
                        .bind(&payload)
                        .bind(now)
                        .bind(n.user_id.0)
                        .bind(&n.collapse_key)
                        .execute(&mut *c)
                        .await?;
                        continue;
                    };
                    out.push(Notification {
                        id: NotificationId(id),
                        kind: n.kind.to_string(),
                        payload: n.payload.clone(),
                        created_at: now,
                        read: false,
                        user_id: n.user_id,
                    });
                }
                Ok(out)
            }

            async fn put_tags(c: &mut Conn, study: i64, tags: &[String]) -> Result<(), sqlx::Error> {
                sqlx::query("DELETE FROM study_tags WHERE study_id = $1").bind(study).execute(&mut *c).await?;
                for t in tags {
                    sqlx::query("INSERT INTO study_tags (study_id, tag) VALUES ($1, $2)")
                        .bind(study)
                        .bind(t)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            }

            /// Ends a membership (leave or removal), keeping the history row for reviews.
            async fn end_membership(c: &mut Conn, study: i64, user: i64, now: Millis) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE memberships SET left_at = $1 WHERE study_id = $2 AND user_id = $3")
                    .bind(now)
                    .bind(study)
                    .bind(user)
                    .execute(&mut *c)
                    .await?;
                sqlx::query("UPDATE studies SET member_count = member_count - 1, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(study)
                    .execute(&mut *c)
                    .await?;
                // Open work goes back to the pool (an assignee must be a member); done tasks
                // keep who did them.
                sqlx::query(
                    "UPDATE tasks SET assignee_id = NULL, updated_at = $1, version = version + 1 WHERE study_id = $2 AND assignee_id = $3 AND status = 'open'",
                )
                .bind(now)
                .bind(study)
                .bind(user)
                .execute(&mut *c)
                .await?;
                Ok(())
            }

            async fn app_by_id(c: &mut Conn, study: i64, id: i64) -> Result<Option<Application>, sqlx::Error> {
                let row: Option<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {APP_COLUMNS} FROM applications a WHERE a.id = $1 AND a.study_id = $2"
                )))
                .bind(id)
                .bind(study)
                .fetch_optional(&mut *c)
                .await?;
                Ok(row.map(app))
            }

            async fn review_by_id(c: &mut Conn, id: i64) -> Result<Review, sqlx::Error> {
                let row: ReviewRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("{REVIEW_SELECT} WHERE r.id = $1")))
                    .bind(id)
                    .fetch_one(&mut *c)
                    .await?;
                Ok(review(row))
            }

            fn notification(r: (i64, i64, String, String, i64, Option<i64>)) -> Notification {
                Notification {
                    id: NotificationId(r.0),
                    user_id: UserId(r.1),
                    kind: r.2,
                    payload: serde_json::from_str(&r.3).unwrap_or(serde_json::Value::Null),
                    created_at: r.4,
                    read: r.5.is_some(),
                }
            }

            #[async_trait::async_trait]
            impl StudyStore for $store {
                async fn create_study(&self, leader: UserId, f: &StudyFields, now: Millis) -> StoreResult<StudyId> {
                    let mut tx = self.begin_write().await?;
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO studies (leader_id, title, title_key, description, capacity, member_count, status, \
                         recruit_opens_on, recruit_closes_on, starts_on, ends_on, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, 1, 'recruiting', $6, $7, $8, $9, $10, $10) RETURNING id",
                    )
                    .bind(leader.0)
                    .bind(&f.title)
                    .bind(f.title.to_lowercase())
                    .bind(&f.description)
                    .bind(f.capacity)
                    .bind(&f.recruit_opens_on)
                    .bind(&f.recruit_closes_on)
                    .bind(&f.starts_on)
                    .bind(&f.ends_on)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    put_tags(&mut tx, id, &f.tags).await?;
                    sqlx::query(
                        "INSERT INTO memberships (study_id, user_id, role, joined_at) VALUES ($1, $2, 'leader', $3)",
                    )
                    .bind(id)
                    .bind(leader.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(StudyId(id))
                }

                async fn study_view(&self, id: StudyId, viewer: UserId) -> StoreResult<Option<StudyView>> {
                    let mut tx = self.pool.begin().await?;
                    let Some(study) = study_by_id(&mut tx, id.0).await? else { return Ok(None) };
                    let role = role_in(&mut tx, id.0, viewer.0).await?.unwrap_or(Role::None);
                    let (b,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bookmarks WHERE user_id = $1 AND study_id = $2")
                        .bind(viewer.0)
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    let mine: Option<(i64, String)> = sqlx::query_as(
                        "SELECT id, status FROM applications WHERE study_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT 1",
                    )
                    .bind(id.0)
                    .bind(viewer.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(Some(StudyView {
                        study,
                        role,
                        bookmarked: b > 0,
                        my_application: mine.map(|(id, s)| ApplicationRef { id: ApplicationId(id), status: ApplicationStatus::parse(&s) }),
                    }))
                }

                async fn study_state(&self, id: StudyId) -> StoreResult<Option<StudyState>> {
                    let mut tx = self.pool.begin().await?;
                    let row: Option<(String, i64, String)> =
                        sqlx::query_as("SELECT title, leader_id, status FROM studies WHERE id = $1")
                            .bind(id.0)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let Some((title, leader, status)) = row else { return Ok(None) };
                    let members: Vec<(i64,)> =
                        sqlx::query_as("SELECT user_id FROM memberships WHERE study_id = $1 AND left_at IS NULL")
                            .bind(id.0)
                            .fetch_all(&mut *tx)
                            .await?;
                    tx.commit().await?;
                    Ok(Some(StudyState {
                        title,
                        leader: UserId(leader),
                        status: StudyStatus::parse(&status).unwrap_or(StudyStatus::Recruiting),
                        members: members.into_iter().map(|(u,)| UserId(u)).collect(),
                    }))
                }

                async fn role_of(&self, id: StudyId, user: UserId) -> StoreResult<Option<Role>> {
                    let mut c = self.pool.acquire().await?;
                    Ok(role_in(&mut c, id.0, user.0).await?)
                }

                async fn list_studies(&self, q: &StudyQuery) -> StoreResult<Vec<StudySummary>> {
                    let mut qb = QueryBuilder::<Db>::new(STUDY_SELECT);
                    qb.push(" WHERE 1 = 1");
                    if let Some(s) = q.status {
                        qb.push(" AND s.status = ").push_bind(s.as_str());
                    }
                    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
                        qb.push(" AND s.title_key LIKE ").push_bind(like_pattern(text)).push(" ESCAPE '\\'");
                    }
                    for t in &q.tags {
                        qb.push(" AND EXISTS (SELECT 1 FROM study_tags t WHERE t.study_id = s.id AND t.tag = ")
                            .push_bind(t.clone())
                            .push(")");
                    }
                    match (q.sort, &q.cursor) {
                        (StudySort::Newest, Some(c)) => {
                            qb.push(" AND s.id < ").push_bind(c.id);
                        }
                        (StudySort::Deadline, Some(c)) => {
                            let d = c.closes_on.clone().unwrap_or_default();
                            qb.push(" AND (s.recruit_closes_on > ").push_bind(d.clone());
                            qb.push(" OR (s.recruit_closes_on = ").push_bind(d).push(" AND s.id > ").push_bind(c.id).push("))");
                        }
                        _ => {}
                    }
                    qb.push(match q.sort {
                        StudySort::Newest => " ORDER BY s.id DESC",
                        StudySort::Deadline => " ORDER BY s.recruit_closes_on ASC, s.id ASC",
                    });
                    qb.push(" LIMIT ").push_bind(q.limit);
                    let mut c = self.pool.acquire().await?;
                    let rows: Vec<StudyRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    Ok(with_tags(&mut c, rows).await?)
                }

                async fn update_study(&self, id: StudyId, leader: UserId, f: &StudyFields, now: Millis) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    require_leader(&mut tx, id.0, leader.0).await?;
                    let (count,): (i64,) = sqlx::query_as("SELECT member_count FROM studies WHERE id = $1")
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if f.capacity < count {
                        return Err(err(Rule::CapacityBelowMembers));
                    }
                    sqlx::query(
                        "UPDATE studies SET title = $1, title_key = $2, description = $3, capacity = $4, \
                         recruit_opens_on = $5, recruit_closes_on = $6, starts_on = $7, ends_on = $8, updated_at = $9 \
                         WHERE id = $10",
                    )
                    .bind(&f.title)
                    .bind(f.title.to_lowercase())
                    .bind(&f.description)
                    .bind(f.capacity)
                    .bind(&f.recruit_opens_on)
                    .bind(&f.recruit_closes_on)
                    .bind(&f.starts_on)
                    .bind(&f.ends_on)
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    put_tags(&mut tx, id.0, &f.tags).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn set_status(&self, id: StudyId, leader: UserId, to: StudyStatus, now: Millis) -> StoreResult<Vec<Notification>> {
                    let mut tx = self.begin_write().await?;
                    require_leader(&mut tx, id.0, leader.0).await?;
                    let (status, title): (String, String) = sqlx::query_as("SELECT status, title FROM studies WHERE id = $1")
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    let from = StudyStatus::parse(&status).unwrap_or(StudyStatus::Recruiting);
                    if !from.can_become(to) {
                        return Err(err(Rule::InvalidTransition));
                    }
                    // The in-progress period (for reviews) starts the first time the study goes
                    // in progress and ends when it completes.
                    sqlx::query(
                        "UPDATE studies SET status = $1, updated_at = $2, \
                         progress_started_at = CASE WHEN $1 = 'in_progress' THEN COALESCE(progress_started_at, $2) ELSE progress_started_at END, \
                         completed_at = CASE WHEN $1 = 'completed' THEN $2 ELSE completed_at END \
                         WHERE id = $3",
                    )
                    .bind(to.as_str())
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    let payload = serde_json::json!({ "study_id": id, "study_title": title, "status": to });
                    let list = member_notes(&mut tx, id.0, false, "study_status_changed", payload).await?;
                    let out = notify_in(&mut tx, &list, now).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn toggle_bookmark(&self, id: StudyId, user: UserId, now: Millis) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    if role_in(&mut tx, id.0, user.0).await?.is_none() {
                        return Err(err(Rule::NotFound));
                    }
                    let removed = sqlx::query("DELETE FROM bookmarks WHERE user_id = $1 AND study_id = $2")
                        .bind(user.0)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if removed == 0 {
                        sqlx::query("INSERT INTO bookmarks (user_id, study_id, created_at) VALUES ($1, $2, $3)")
                            .bind(user.0)
                            .bind(id.0)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(removed == 0)
                }

                async fn bookmarks(&self, user: UserId) -> StoreResult<Vec<StudySummary>> {
                    let mut qb = QueryBuilder::<Db>::new(STUDY_SELECT);
                    qb.push(" JOIN bookmarks b ON b.study_id = s.id WHERE b.user_id = ")
                        .push_bind(user.0)
                        .push(" ORDER BY b.created_at DESC LIMIT 200");
                    let mut c = self.pool.acquire().await?;
                    let rows: Vec<StudyRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    Ok(with_tags(&mut c, rows).await?)
                }

                async fn members(&self, id: StudyId, viewer: UserId) -> StoreResult<Vec<Member>> {
                    let mut tx = self.pool.begin().await?;
                    if !role_in(&mut tx, id.0, viewer.0).await?.is_some_and(Role::can_view_members) {
                        return Err(err(Rule::NotFound));
                    }
                    let rows: Vec<(i64, String, String, i64, String, i64)> = sqlx::query_as(
                        "SELECT u.id, u.login_id, u.display_name, u.created_at, m.role, m.joined_at FROM memberships m \
                         JOIN users u ON u.id = m.user_id WHERE m.study_id = $1 AND m.left_at IS NULL ORDER BY m.joined_at, u.id",
                    )
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    let mut out: Vec<Member> = rows
                        .into_iter()
                        .map(|r| Member {
                            user: user(r.0, r.1, r.2, r.3),
                            role: if r.4 == "leader" { Role::Leader } else { Role::Member },
                            joined_at: r.5,
                        })
                        .collect();
                    out.sort_by_key(|m| m.role != Role::Leader);
                    Ok(out)
                }

                async fn apply(&self, id: StudyId, applicant: UserId, message: &str, now: Millis) -> StoreResult<(Application, Vec<Notification>)> {
                    let mut tx = self.begin_write().await?;
                    let role = role_in(&mut tx, id.0, applicant.0).await?.ok_or(err(Rule::NotFound))?;
                    match role {
                        Role::Member | Role::Leader => return Err(err(Rule::AlreadyMember)),
                        Role::Applicant => return Err(err(Rule::ApplicationExists)),
                        Role::None => {}
                    }
                    let (banned,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM study_bans WHERE study_id = $1 AND user_id = $2")
                        .bind(id.0)
                        .bind(applicant.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if banned > 0 {
                        return Err(err(Rule::Banned));
                    }
                    let (status, count, capacity, leader, title): (String, i64, i64, i64, String) = sqlx::query_as(
                        "SELECT status, member_count, capacity, leader_id, title FROM studies WHERE id = $1",
                    )
                    .bind(id.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    if status != "recruiting" {
                        return Err(err(Rule::NotRecruiting));
                    }
                    if count >= capacity {
                        return Err(err(Rule::StudyFull));
                    }
                    // Applying again right after withdrawing waits out a cool-down, so nobody
                    // can flood a leader with apply/withdraw rounds.
                    let (withdrawn,): (Option<i64>,) = sqlx::query_as(
                        "SELECT MAX(decided_at) FROM applications WHERE study_id = $1 AND user_id = $2 AND status = 'withdrawn'",
                    )
                    .bind(id.0)
                    .bind(applicant.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    if let Some(at) = withdrawn {
                        let wait = at + crate::studies::REAPPLY_COOLDOWN_MS - now;
                        if wait > 0 {
                            let retry_after_secs = (wait as u64).div_ceil(1000);
                            return Err(err(Rule::ReapplyTooSoon { retry_after_secs }));
                        }
                    }
                    let (app_id,): (i64,) = sqlx::query_as(
                        "INSERT INTO applications (study_id, user_id, message, status, created_at) \
                         VALUES ($1, $2, $3, 'pending', $4) RETURNING id",
                    )
                    .bind(id.0)
                    .bind(applicant.0)
                    .bind(message)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let (name,): (String,) = sqlx::query_as("SELECT display_name FROM users WHERE id = $1")
                        .bind(applicant.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    let n = NewNotification {
                        user_id: UserId(leader),
                        kind: "application_received",
                        payload: serde_json::json!({
                            "study_id": id, "study_title": title, "application_id": app_id,
                            "applicant": { "id": applicant, "display_name": name },
                        }),
                        collapse_key: Some(format!("application_received:{id}:{applicant}")),
                    };
                    let out = notify_in(&mut tx, &[n], now).await?;
                    let a = app_by_id(&mut tx, id.0, app_id).await?.expect("just inserted");
                    tx.commit().await?;
                    Ok((a, out))
                }

                async fn applications(&self, id: StudyId, viewer: UserId) -> StoreResult<Vec<(Application, User)>> {
                    let mut tx = self.pool.begin().await?;
                    require_leader(&mut tx, id.0, viewer.0).await?;
                    let rows: Vec<(i64, i64, i64, String, String, Option<String>, i64, Option<i64>, String, String, i64)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "SELECT {APP_COLUMNS}, u.login_id, u.display_name, u.created_at FROM applications a \
                             JOIN users u ON u.id = a.user_id WHERE a.study_id = $1 \
                             ORDER BY CASE WHEN a.status = 'pending' THEN 0 ELSE 1 END, a.id DESC LIMIT 500"
                        )))
                        .bind(id.0)
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(rows
                        .into_iter()
                        .map(|r| (app((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7)), user(r.2, r.8, r.9, r.10)))
                        .collect())
                }

                async fn withdraw(&self, id: StudyId, app_id: ApplicationId, applicant: UserId, now: Millis) -> StoreResult<Application> {
                    let mut tx = self.begin_write().await?;
                    let a = app_by_id(&mut tx, id.0, app_id.0).await?.filter(|a| a.user_id == applicant).ok_or(err(Rule::NotFound))?;
                    if a.status != ApplicationStatus::Pending {
                        return Err(err(Rule::ApplicationNotPending));
                    }
                    // The guard holds even if a decision committed after the read above (two
                    // nodes, or Postgres's read committed): a decided application stays decided.
                    let changed = sqlx::query(
                        "UPDATE applications SET status = 'withdrawn', decided_at = $1 WHERE id = $2 AND status = 'pending'",
                    )
                    .bind(now)
                    .bind(app_id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed != 1 {
                        return Err(err(Rule::ApplicationNotPending));
                    }
                    let a = app_by_id(&mut tx, id.0, app_id.0).await?.expect("exists");
                    tx.commit().await?;
                    Ok(a)
                }

                async fn decide(
                    &self,
                    id: StudyId,
                    app_id: ApplicationId,
                    leader: UserId,
                    accept: bool,
                    reason: Option<String>,
                    now: Millis,
                ) -> StoreResult<(Application, Vec<Notification>)> {
                    let mut tx = self.begin_write().await?;
                    require_leader(&mut tx, id.0, leader.0).await?;
                    let a = app_by_id(&mut tx, id.0, app_id.0).await?.ok_or(err(Rule::NotFound))?;
                    if a.status != ApplicationStatus::Pending {
                        return Err(err(Rule::ApplicationNotPending));
                    }
                    if accept {
                        // The guard in the UPDATE holds the capacity even across nodes.
                        let seated = sqlx::query(
                            "UPDATE studies SET member_count = member_count + 1, updated_at = $1 \
                             WHERE id = $2 AND member_count < capacity",
                        )
                        .bind(now)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if seated != 1 {
                            return Err(err(Rule::StudyFull));
                        }
                        sqlx::query(
                            "INSERT INTO memberships (study_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3) \
                             ON CONFLICT (study_id, user_id) DO UPDATE SET role = 'member', joined_at = excluded.joined_at, left_at = NULL",
                        )
                        .bind(id.0)
                        .bind(a.user_id.0)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let status = if accept { "accepted" } else { "rejected" };
                    let changed = sqlx::query(
                        "UPDATE applications SET status = $1, reason = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
                    )
                    .bind(status)
                    .bind(&reason)
                    .bind(now)
                    .bind(app_id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed != 1 {
                        return Err(err(Rule::ApplicationNotPending));
                    }
                    let title = title_of(&mut tx, id.0).await?;
                    let n = NewNotification {
                        user_id: a.user_id,
                        kind: "application_decided",
                        payload: serde_json::json!({
                            "study_id": id, "study_title": title, "application_id": app_id,
                            "accepted": accept, "reason": reason,
                        }),
                        collapse_key: None,
                    };
                    let out = notify_in(&mut tx, &[n], now).await?;
                    let a = app_by_id(&mut tx, id.0, app_id.0).await?.expect("exists");
                    tx.commit().await?;
                    Ok((a, out))
                }

                async fn leave(&self, id: StudyId, member: UserId, now: Millis) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    match role_in(&mut tx, id.0, member.0).await? {
                        Some(Role::Leader) => return Err(err(Rule::LeaderMustTransfer)),
                        Some(Role::Member) => {}
                        _ => return Err(err(Rule::NotFound)),
                    }
                    end_membership(&mut tx, id.0, member.0, now).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn transfer(&self, id: StudyId, leader: UserId, to: UserId, now: Millis) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    require_leader(&mut tx, id.0, leader.0).await?;
                    if role_in(&mut tx, id.0, to.0).await? != Some(Role::Member) {
                        return Err(err(Rule::NotAMember));
                    }
                    for (user, role) in [(leader, "member"), (to, "leader")] {
                        sqlx::query("UPDATE memberships SET role = $1 WHERE study_id = $2 AND user_id = $3")
                            .bind(role)
                            .bind(id.0)
                            .bind(user.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query("UPDATE studies SET leader_id = $1, updated_at = $2 WHERE id = $3")
                        .bind(to.0)
                        .bind(now)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn remove_member(&self, id: StudyId, leader: UserId, member: UserId, ban: bool, now: Millis) -> StoreResult<Vec<Notification>> {
                    let mut tx = self.begin_write().await?;
                    require_leader(&mut tx, id.0, leader.0).await?;
                    if role_in(&mut tx, id.0, member.0).await? != Some(Role::Member) {
                        return Err(err(Rule::NotAMember));
                    }
                    end_membership(&mut tx, id.0, member.0, now).await?;
                    if ban {
                        sqlx::query(
                            "INSERT INTO study_bans (study_id, user_id, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (study_id, user_id) DO NOTHING",
                        )
                        .bind(id.0)
                        .bind(member.0)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let title = title_of(&mut tx, id.0).await?;
                    let n = NewNotification {
                        user_id: member,
                        kind: "removed_from_study",
                        payload: serde_json::json!({ "study_id": id, "study_title": title, "banned": ban }),
                        collapse_key: None,
                    };
                    let out = notify_in(&mut tx, &[n], now).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn create_review(
                    &self,
                    id: StudyId,
                    author: UserId,
                    reviewee: UserId,
                    rating: i64,
                    body: &str,
                    now: Millis,
                ) -> StoreResult<(Review, Vec<Notification>)> {
                    if author == reviewee {
                        return Err(err(Rule::SelfReview));
                    }
                    let mut tx = self.begin_write().await?;
                    // Reviews are between people who were members together while the study was
                    // in progress, once it is completed or one of them has left. Someone the
                    // study banned reviews nobody in it.
                    let stint = |u: UserId| {
                        sqlx::query_as::<_, (i64, Option<i64>)>(
                            "SELECT joined_at, left_at FROM memberships WHERE study_id = $1 AND user_id = $2",
                        )
                        .bind(id.0)
                        .bind(u.0)
                    };
                    let Some(mine) = stint(author).fetch_optional(&mut *tx).await? else {
                        return Err(err(Rule::NotFound));
                    };
                    let Some(theirs) = stint(reviewee).fetch_optional(&mut *tx).await? else {
                        return Err(err(Rule::NotAMember));
                    };
                    let (banned,): (i64,) =
                        sqlx::query_as("SELECT COUNT(*) FROM study_bans WHERE study_id = $1 AND user_id = $2")
                            .bind(id.0)
                            .bind(author.0)
                            .fetch_one(&mut *tx)
                            .await?;
                    if banned > 0 {
                        return Err(err(Rule::Banned));
                    }
                    let (started, completed): (Option<i64>, Option<i64>) =
                        sqlx::query_as("SELECT progress_started_at, completed_at FROM studies WHERE id = $1")
                            .bind(id.0)
                            .fetch_one(&mut *tx)
                            .await?;
                    let together = crate::studies::rules::served_together(mine, theirs, started, completed);
                    if !together {
                        return Err(err(Rule::NotStudyMates));
                    }
                    if completed.is_none() && mine.1.is_none() && theirs.1.is_none() {
                        return Err(err(Rule::ReviewNotOpen));
                    }
                    let (dup,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM reviews WHERE study_id = $1 AND author_id = $2 AND reviewee_id = $3",
                    )
                    .bind(id.0)
                    .bind(author.0)
                    .bind(reviewee.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    if dup > 0 {
                        return Err(err(Rule::ReviewExists));
                    }
                    let (rid,): (i64,) = sqlx::query_as(
                        "INSERT INTO reviews (study_id, author_id, reviewee_id, rating, body, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                    )
                    .bind(id.0)
                    .bind(author.0)
                    .bind(reviewee.0)
                    .bind(rating)
                    .bind(body)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let rev = review_by_id(&mut tx, rid).await?;
                    let n = NewNotification {
                        user_id: reviewee,
                        kind: "review_received",
                        payload: serde_json::json!({
                            "study_id": id, "study_title": rev.study_title, "review_id": rid,
                            "author": { "id": author, "display_name": rev.author.display_name }, "rating": rating,
                        }),
                        collapse_key: Some(format!("review_received:{id}:{author}")),
                    };
                    let out = notify_in(&mut tx, &[n], now).await?;
                    tx.commit().await?;
                    Ok((rev, out))
                }

                async fn update_review(&self, id: ReviewId, author: UserId, rating: Option<i64>, body: Option<String>, now: Millis) -> StoreResult<Review> {
                    let mut tx = self.begin_write().await?;
                    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM reviews WHERE id = $1 AND author_id = $2")
                        .bind(id.0)
                        .bind(author.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if n == 0 {
                        return Err(err(Rule::NotFound));
                    }
                    sqlx::query(
                        "UPDATE reviews SET rating = COALESCE($1, rating), body = COALESCE($2, body), updated_at = $3 WHERE id = $4",
                    )
                    .bind(rating)
                    .bind(body)
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    let r = review_by_id(&mut tx, id.0).await?;
                    tx.commit().await?;
                    Ok(r)
                }

                async fn reputation(&self, u: UserId) -> StoreResult<Reputation> {
                    Ok(self.reputations(&[u]).await?.remove(&u).unwrap_or_default())
                }

                async fn reputations(&self, users: &[UserId]) -> StoreResult<std::collections::HashMap<UserId, Reputation>> {
                    let mut out: std::collections::HashMap<UserId, Reputation> =
                        users.iter().map(|u| (*u, Reputation::default())).collect();
                    if users.is_empty() {
                        return Ok(out);
                    }
                    // Three queries for any number of users; the newest REPUTATION_LIST_MAX
                    // reviews and completed studies of each, picked by a window function.
                    let in_list = |qb: &mut QueryBuilder<Db>| {
                        qb.push(" IN (");
                        let mut sep = qb.separated(", ");
                        for u in users {
                            sep.push_bind(u.0);
                        }
                        qb.push(")");
                    };
                    let mut tx = self.pool.begin().await?;
                    let mut qb = QueryBuilder::<Db>::new(
                        "SELECT reviewee_id, COUNT(*), CAST(COALESCE(SUM(rating), 0) AS BIGINT) FROM reviews WHERE reviewee_id",
                    );
                    in_list(&mut qb);
                    qb.push(" GROUP BY reviewee_id");
                    let counts: Vec<(i64, i64, i64)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    for (u, count, sum) in counts {
                        if let Some(r) = out.get_mut(&UserId(u)) {
                            r.review_count = count;
                            r.review_average = (count > 0).then(|| (sum as f64 / count as f64 * 100.0).round() / 100.0);
                        }
                    }
                    let mut qb = QueryBuilder::<Db>::new(format!(
                        "{REVIEW_SELECT} WHERE r.id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                         (PARTITION BY reviewee_id ORDER BY id DESC) AS rn FROM reviews WHERE reviewee_id"
                    ));
                    in_list(&mut qb);
                    qb.push(") t WHERE t.rn <= ").push_bind(REPUTATION_LIST_MAX).push(") ORDER BY r.id DESC");
                    let rows: Vec<ReviewRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    for row in rows {
                        let r = review(row);
                        if let Some(rep) = out.get_mut(&r.reviewee.id) {
                            rep.reviews.push(r);
                        }
                    }
                    let mut qb = QueryBuilder::<Db>::new(
                        "SELECT user_id, id, title FROM (SELECT m.user_id, s.id, s.title, s.ends_on, ROW_NUMBER() OVER \
                         (PARTITION BY m.user_id ORDER BY s.ends_on DESC, s.id DESC) AS rn FROM memberships m \
                         JOIN studies s ON s.id = m.study_id WHERE m.left_at IS NULL AND s.status = 'completed' AND m.user_id",
                    );
                    in_list(&mut qb);
                    qb.push(") t WHERE t.rn <= ").push_bind(REPUTATION_LIST_MAX).push(" ORDER BY t.user_id, t.ends_on DESC, t.id DESC");
                    let done: Vec<(i64, i64, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    for (u, id, title) in done {
                        if let Some(rep) = out.get_mut(&UserId(u)) {
                            rep.completed_studies.push(StudyRef { id: StudyId(id), title });
                        }
                    }
                    Ok(out)
                }

                async fn my_studies(&self, u: UserId) -> StoreResult<MyStudies> {
                    let mut tx = self.pool.begin().await?;
                    let mine = |role: &'static str| {
                        let mut qb = QueryBuilder::<Db>::new(STUDY_SELECT);
                        qb.push(" JOIN memberships m ON m.study_id = s.id WHERE m.left_at IS NULL AND m.user_id = ")
                            .push_bind(u.0)
                            .push(" AND m.role = ")
                            .push_bind(role)
                            .push(" ORDER BY s.id DESC LIMIT 500");
                        qb
                    };
                    let mut lead_q = mine("leader");
                    let lead_rows: Vec<StudyRow> = lead_q.build_query_as().fetch_all(&mut *tx).await?;
                    let mut join_q = mine("member");
                    let join_rows: Vec<StudyRow> = join_q.build_query_as().fetch_all(&mut *tx).await?;
                    let leading = with_tags(&mut tx, lead_rows).await?;
                    let joined = with_tags(&mut tx, join_rows).await?;
                    let apps: Vec<AppRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {APP_COLUMNS} FROM applications a WHERE a.user_id = $1 ORDER BY a.id DESC LIMIT 200"
                    )))
                    .bind(u.0)
                    .fetch_all(&mut *tx)
                    .await?;
                    let apps: Vec<Application> = apps.into_iter().map(app).collect();
                    let mut ids: Vec<i64> = apps.iter().map(|a| a.study_id.0).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    let studies: HashMap<StudyId, StudySummary> =
                        studies_by_ids(&mut tx, &ids).await?.into_iter().map(|s| (s.id, s)).collect();
                    tx.commit().await?;
                    let applications = apps
                        .into_iter()
                        .filter_map(|a| studies.get(&a.study_id).cloned().map(|s| (a, s)))
                        .collect();
                    Ok(MyStudies { leading, joined, applications })
                }

                async fn notifications(&self, u: UserId, before: Option<NotificationId>, limit: i64) -> StoreResult<Vec<Notification>> {
                    let rows: Vec<(i64, i64, String, String, i64, Option<i64>)> = sqlx::query_as(
                        "SELECT id, user_id, kind, payload, created_at, read_at FROM notifications \
                         WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    )
                    .bind(u.0)
                    .bind(before.map_or(i64::MAX, |b| b.0))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(notification).collect())
                }

                async fn unread_count(&self, u: UserId) -> StoreResult<i64> {
                    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
                        .bind(u.0)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(n)
                }

                async fn mark_read(&self, u: UserId, id: NotificationId, now: Millis) -> StoreResult<bool> {
                    let r = sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
                        .bind(now)
                        .bind(id.0)
                        .bind(u.0)
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected() == 1)
                }

                async fn mark_all_read(&self, u: UserId, now: Millis) -> StoreResult<u64> {
                    let r = sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
                        .bind(now)
                        .bind(u.0)
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected())
                }

                async fn insert_notifications(&self, n: &[NewNotification], now: Millis) -> StoreResult<Vec<Notification>> {
                    let mut tx = self.begin_write().await?;
                    let out = notify_in(&mut tx, n, now).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn last_collapsed_at(&self, key: &str) -> StoreResult<Option<Millis>> {
                    let (at,): (Option<i64>,) = sqlx::query_as("SELECT MAX(created_at) FROM notifications WHERE collapse_key = $1")
                        .bind(key)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(at)
                }
            }
        }
    };
}

pub(crate) use studies_store_impl;
