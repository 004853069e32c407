//! The task, post and file queries both dialects share (see `sql.rs` for why one macro
//! serves both).

macro_rules! tasks_store_impl {
    ($store:ty, $db:ty) => {
        mod tasks_impl {
            use std::collections::HashSet;

            use sqlx::QueryBuilder;

            use super::*;
            use crate::chat::Author;
            use crate::ids::{FileId, PostId, StudyId, TaskId, UserId};
            use crate::store::studies::Rule;
            use crate::store::tasks::{RemovedObjects, TaskStore};
            use crate::store::{Millis, StoreError, StoreResult};
            use crate::studies::{NewNotification, Notification};
            use crate::studies::Role;
            use crate::tasks::rules::PostFields;
            use crate::tasks::{
                MAX_ATTACHMENTS, MAX_TASKS_PER_STUDY, NewFile, Post, PostSummary, StoredFile, Task, TaskFields,
                TaskFilter, TaskStatus,
            };

            use super::studies_impl::{like_pattern, membership, notify_in, title_of};

            type Conn = <$db as sqlx::Database>::Connection;
            type Db = $db;

            fn rule(r: Rule) -> StoreError {
                StoreError::Rule(r)
            }

            /// The caller's role; not a member reads as "no such thing".
            async fn member(c: &mut Conn, study: StudyId, user: UserId) -> StoreResult<Role> {
                membership(c, study.0, user.0).await?.ok_or(rule(Rule::NotFound))
            }

            const TASK_SELECT: &str = "SELECT t.id, t.study_id, t.title, t.description, t.description_html, t.due_on, t.assignee_id, a.display_name, \
                t.status, t.created_by, c.display_name, t.created_at, t.updated_at, t.completed_at, \
                (SELECT COUNT(*) FROM posts p WHERE p.task_id = t.id), t.version \
                FROM tasks t JOIN users c ON c.id = t.created_by LEFT JOIN users a ON a.id = t.assignee_id";
            type TaskRow = (i64, i64, String, String, String, Option<String>, Option<i64>, Option<String>, String, i64, String, i64, i64, Option<i64>, i64, i64);

            fn task_of(r: TaskRow) -> Task {
                Task {
                    id: TaskId(r.0),
                    study_id: StudyId(r.1),
                    title: r.2,
                    description: r.3,
                    description_html: r.4,
                    due_on: r.5,
                    assignee: r.6.zip(r.7).map(|(id, display_name)| Author { id: UserId(id), display_name }),
                    status: TaskStatus::parse(&r.8).unwrap_or(TaskStatus::Open),
                    created_by: Author { id: UserId(r.9), display_name: r.10 },
                    created_at: r.11,
                    updated_at: r.12,
                    completed_at: r.13,
                    post_count: r.14,
                    version: r.15,
                }
            }

            async fn load_task(c: &mut Conn, study: StudyId, task: TaskId) -> StoreResult<Task> {
                let mut qb = QueryBuilder::<Db>::new(TASK_SELECT);
                qb.push(" WHERE t.id = ").push_bind(task.0).push(" AND t.study_id = ").push_bind(study.0);
                let r: Option<TaskRow> = qb.build_query_as().fetch_optional(&mut *c).await?;
                r.map(task_of).ok_or(rule(Rule::NotFound))
            }

            async fn check_assignee(c: &mut Conn, study: StudyId, assignee: Option<UserId>) -> StoreResult<()> {
                match assignee {
                    Some(a) if membership(c, study.0, a.0).await?.is_none() => Err(rule(Rule::AssigneeNotMember)),
                    _ => Ok(()),
                }
            }

            pub(super) const POST_SELECT: &str = "SELECT p.id, p.task_id, p.title, p.author_id, u.display_name, p.created_at, p.updated_at, \
                (SELECT COUNT(*) FROM files f WHERE f.post_id = p.id), p.study_id, p.body, p.body_html, p.version, p.locked_at \
                FROM posts p JOIN users u ON u.id = p.author_id";
            pub(super) type PostRow = (i64, i64, String, i64, String, i64, i64, i64, i64, String, String, i64, Option<i64>);

            pub(super) fn summary_of(r: &PostRow) -> PostSummary {
                PostSummary {
                    id: PostId(r.0),
                    task_id: TaskId(r.1),
                    title: r.2.clone(),
                    author: Author { id: UserId(r.3), display_name: r.4.clone() },
                    created_at: r.5,
                    updated_at: r.6,
                    attachment_count: r.7,
                    locked: r.12.is_some(),
                    version: r.11,
                }
            }

            const FILE_SELECT: &str = "SELECT f.id, f.study_id, f.object_key, f.name, f.content_type, f.size, f.sha256, \
                f.uploader_id, u.display_name, f.created_at FROM files f JOIN users u ON u.id = f.uploader_id";
            type FileRow = (i64, i64, String, String, String, i64, String, i64, String, i64);

            fn file_of(r: FileRow) -> StoredFile {
                StoredFile {
                    id: FileId(r.0),
                    study_id: StudyId(r.1),
                    object_key: r.2,
                    name: r.3,
                    content_type: r.4,
                    size: r.5,
                    sha256: r.6,
                    uploaded_by: Author { id: UserId(r.7), display_name: r.8 },
                    created_at: r.9,
                    url: StoredFile::download_url(StudyId(r.1), FileId(r.0)),
                }
            }

            /// Files of one post (`Some`) or of the recruiting post (`None`), oldest first.
            async fn files_of(c: &mut Conn, study: StudyId, post: Option<PostId>) -> StoreResult<Vec<StoredFile>> {
                let mut qb = QueryBuilder::<Db>::new(FILE_SELECT);
                qb.push(" WHERE f.study_id = ").push_bind(study.0);
                match post {
                    Some(p) => qb.push(" AND f.post_id = ").push_bind(p.0),
                    None => qb.push(" AND f.post_id IS NULL"),
                };
                qb.push(" ORDER BY f.id");
                let rows: Vec<FileRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                Ok(rows.into_iter().map(file_of).collect())
            }

            pub(super) async fn load_post(c: &mut Conn, study: StudyId, post: PostId) -> StoreResult<Post> {
                let mut qb = QueryBuilder::<Db>::new(POST_SELECT);
                qb.push(" WHERE p.id = ").push_bind(post.0).push(" AND p.study_id = ").push_bind(study.0);
                let r: PostRow = qb.build_query_as().fetch_optional(&mut *c).await?.ok_or(rule(Rule::NotFound))?;
                let s = summary_of(&r);
                Ok(Post {
                    id: s.id,
                    task_id: s.task_id,
                    study_id: StudyId(r.8),
                    title: s.title,
                    body: r.9,
                    body_html: r.10,
                    author: s.author,
                    created_at: s.created_at,
                    updated_at: s.updated_at,
                    attachments: files_of(c, study, Some(post)).await?,
                    locked: s.locked,
                    version: s.version,
                })
            }

            /// Removes file rows matched by `cond` (a condition on `f`, binding `$1` to the
            /// study), gives their bytes back to the quota, and returns their objects.
            async fn remove_files(c: &mut Conn, study: StudyId, cond: &str, arg: i64) -> StoreResult<RemovedObjects> {
                let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT f.object_key, f.size FROM files f WHERE f.study_id = $1 AND {cond}"
                )))
                .bind(study.0)
                .bind(arg)
                .fetch_all(&mut *c)
                .await?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let bytes: i64 = rows.iter().map(|r| r.1).sum();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM files WHERE id IN (SELECT f.id FROM files f WHERE f.study_id = $1 AND {cond})"
                )))
                .bind(study.0)
                .bind(arg)
                .execute(&mut *c)
                .await?;
                sqlx::query("UPDATE studies SET storage_bytes = storage_bytes - $1 WHERE id = $2")
                    .bind(bytes)
                    .bind(study.0)
                    .execute(&mut *c)
                    .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            /// Checks an upload target. With `lock` (adding the file), updating the post (or
            /// study) row first serializes concurrent uploads to it on Postgres, so the
            /// attachment count cannot be raced past its limit (SQLite's write lock already
            /// does); for a post that update is the version bump the new attachment needs.
            async fn check_upload(c: &mut Conn, study: StudyId, post: Option<PostId>, user: UserId, lock: bool) -> StoreResult<i64> {
                let role = member(c, study, user).await?;
                match post {
                    Some(p) => {
                        let author: Option<(i64,)> = sqlx::query_as("SELECT author_id FROM posts WHERE id = $1 AND study_id = $2")
                            .bind(p.0)
                            .bind(study.0)
                            .fetch_optional(&mut *c)
                            .await?;
                        match author {
                            None => return Err(rule(Rule::NotFound)),
                            Some((a,)) if a != user.0 => return Err(rule(Rule::NotAuthor)),
                            _ => {}
                        }
                        if lock {
                            bump_post(c, p).await?;
                        }
                    }
                    None if role != Role::Leader => return Err(rule(Rule::NotAuthor)),
                    None => {
                        if lock {
                            sqlx::query("UPDATE studies SET updated_at = updated_at WHERE id = $1").bind(study.0).execute(&mut *c).await?;
                        }
                    }
                }
                let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM files WHERE study_id = ");
                qb.push_bind(study.0);
                match post {
                    Some(p) => qb.push(" AND post_id = ").push_bind(p.0),
                    None => qb.push(" AND post_id IS NULL"),
                };
                let (n,): (i64,) = qb.build_query_as().fetch_one(&mut *c).await?;
                if n >= MAX_ATTACHMENTS {
                    return Err(rule(Rule::AttachmentLimit));
                }
                let (used,): (i64,) = sqlx::query_as("SELECT storage_bytes FROM studies WHERE id = $1")
                    .bind(study.0)
                    .fetch_one(&mut *c)
                    .await?;
                Ok(used)
            }

            /// Tells `task`'s new assignee that `by` gave it to them (not when they took it
            /// themselves), in the transaction that made the change.
            async fn notify_assignee(c: &mut Conn, task: &Task, by: UserId, now: Millis) -> StoreResult<Vec<Notification>> {
                let Some(assignee) = task.assignee.as_ref().filter(|a| a.id != by) else {
                    return Ok(Vec::new());
                };
                let (name,): (String,) =
                    sqlx::query_as("SELECT display_name FROM users WHERE id = $1").bind(by.0).fetch_one(&mut *c).await?;
                let note = NewNotification {
                    user_id: assignee.id,
                    kind: "task_assigned",
                    payload: serde_json::json!({
                        "study_id": task.study_id,
                        "study_title": title_of(c, task.study_id.0).await?,
                        "task_id": task.id,
                        "task_title": task.title,
                        "by": { "id": by, "display_name": name },
                    }),
                    collapse_key: Some(format!("task_assigned:{}:{by}", task.id)),
                };
                Ok(notify_in(c, &[note], now).await?)
            }

            /// A post's attachment count changed.
            async fn bump_post(c: &mut Conn, post: PostId) -> StoreResult<()> {
                sqlx::query("UPDATE posts SET version = version + 1 WHERE id = $1").bind(post.0).execute(&mut *c).await?;
                Ok(())
            }

            /// A task's post count changed.
            async fn bump_task(c: &mut Conn, task: TaskId) -> StoreResult<()> {
                sqlx::query("UPDATE tasks SET version = version + 1 WHERE id = $1").bind(task.0).execute(&mut *c).await?;
                Ok(())
            }

            #[async_trait::async_trait]
            impl TaskStore for $store {
                async fn create_task(&self, study: StudyId, user: UserId, f: &TaskFields, now: Millis) -> StoreResult<(Task, Vec<Notification>)> {
                    let mut tx = self.begin_write().await?;
                    member(&mut tx, study, user).await?;
                    // Serializes creators of one study on Postgres so the limit holds.
                    sqlx::query("UPDATE studies SET updated_at = updated_at WHERE id = $1").bind(study.0).execute(&mut *tx).await?;
                    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE study_id = $1")
                        .bind(study.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    if n >= MAX_TASKS_PER_STUDY {
                        return Err(rule(Rule::TaskLimit));
                    }
                    check_assignee(&mut tx, study, f.assignee).await?;
                    let done = f.status == TaskStatus::Done;
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO tasks (study_id, title, description, description_html, due_on, assignee_id, status, created_by, \
                         created_at, updated_at, completed_at) VALUES ($1, $2, $3, $10, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
                    )
                    .bind(study.0)
                    .bind(&f.title)
                    .bind(&f.description)
                    .bind(&f.due_on)
                    .bind(f.assignee.map(|a| a.0))
                    .bind(f.status.as_str())
                    .bind(user.0)
                    .bind(now)
                    .bind(done.then_some(now))
                    .bind(&f.description_html)
                    .fetch_one(&mut *tx)
                    .await?;
                    let t = load_task(&mut tx, study, TaskId(id)).await?;
                    let notes = notify_assignee(&mut tx, &t, user, now).await?;
                    tx.commit().await?;
                    Ok((t, notes))
                }

                async fn tasks(&self, study: StudyId, user: UserId, filter: TaskFilter) -> StoreResult<Vec<Task>> {
                    let mut c = self.pool.acquire().await?;
                    member(&mut c, study, user).await?;
                    let mut qb = QueryBuilder::<Db>::new(TASK_SELECT);
                    qb.push(" WHERE t.study_id = ").push_bind(study.0);
                    match filter {
                        TaskFilter::All => {}
                        TaskFilter::Open => {
                            qb.push(" AND t.status = 'open'");
                        }
                        TaskFilter::Done => {
                            qb.push(" AND t.status = 'done'");
                        }
                        TaskFilter::Mine => {
                            qb.push(" AND t.assignee_id = ").push_bind(user.0);
                        }
                    }
                    qb.push(" ORDER BY t.due_on IS NULL, t.due_on, t.id LIMIT ").push_bind(MAX_TASKS_PER_STUDY);
                    let rows: Vec<TaskRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    Ok(rows.into_iter().map(task_of).collect())
                }

                async fn my_open_tasks(&self, user: UserId, limit: i64) -> StoreResult<Vec<(Task, String)>> {
                    let mut c = self.pool.acquire().await?;
                    let mut qb = QueryBuilder::<Db>::new(TASK_SELECT);
                    qb.push(
                        " JOIN memberships m ON m.study_id = t.study_id AND m.left_at IS NULL \
                          WHERE t.status = 'open' AND t.assignee_id = ",
                    )
                    .push_bind(user.0)
                    .push(" AND m.user_id = ")
                    .push_bind(user.0)
                    .push(" ORDER BY t.due_on IS NULL, t.due_on, t.id LIMIT ")
                    .push_bind(limit);
                    let rows: Vec<TaskRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    let tasks: Vec<Task> = rows.into_iter().map(task_of).collect();
                    let mut titles: Vec<(i64, String)> = Vec::new();
                    if !tasks.is_empty() {
                        let mut qb = QueryBuilder::<Db>::new("SELECT id, title FROM studies WHERE id IN (");
                        let mut sep = qb.separated(", ");
                        for t in &tasks {
                            sep.push_bind(t.study_id.0);
                        }
                        qb.push(")");
                        titles = qb.build_query_as().fetch_all(&mut *c).await?;
                    }
                    let title_of = |id: StudyId| titles.iter().find(|s| s.0 == id.0).map(|s| s.1.clone()).unwrap_or_default();
                    Ok(tasks.into_iter().map(|t| {
                        let title = title_of(t.study_id);
                        (t, title)
                    }).collect())
                }

                async fn task(&self, study: StudyId, task: TaskId, user: UserId) -> StoreResult<Task> {
                    let mut c = self.pool.acquire().await?;
                    member(&mut c, study, user).await?;
                    load_task(&mut c, study, task).await
                }

                async fn update_task(&self, study: StudyId, task: TaskId, user: UserId, f: &TaskFields, read: i64, now: Millis) -> StoreResult<(Task, Vec<Notification>)> {
                    let mut tx = self.begin_write().await?;
                    member(&mut tx, study, user).await?;
                    let before = load_task(&mut tx, study, task).await?;
                    // Keeping an assignee who has since left is allowed; naming a new one
                    // requires membership.
                    if f.assignee != before.assignee.as_ref().map(|a| a.id) {
                        check_assignee(&mut tx, study, f.assignee).await?;
                    }
                    let completed_at = match (before.status, f.status) {
                        (TaskStatus::Open, TaskStatus::Done) => Some(now),
                        (TaskStatus::Done, TaskStatus::Done) => before.completed_at,
                        (_, TaskStatus::Open) => None,
                    };
                    if before.version != read {
                        return Err(rule(Rule::Stale));
                    }
                    // Conditional on the version read: on Postgres another edit may commit
                    // between the read above and this write.
                    let written = sqlx::query(
                        "UPDATE tasks SET title = $1, description = $2, due_on = $3, assignee_id = $4, status = $5, \
                         updated_at = $6, completed_at = $7, description_html = $9, version = version + 1 \
                         WHERE id = $8 AND version = $10",
                    )
                    .bind(&f.title)
                    .bind(&f.description)
                    .bind(&f.due_on)
                    .bind(f.assignee.map(|a| a.0))
                    .bind(f.status.as_str())
                    .bind(now)
                    .bind(completed_at)
                    .bind(task.0)
                    .bind(&f.description_html)
                    .bind(read)
                    .execute(&mut *tx)
                    .await?;
                    if written.rows_affected() == 0 {
                        return Err(rule(Rule::Stale));
                    }
                    let t = load_task(&mut tx, study, task).await?;
                    let notes = if f.assignee != before.assignee.as_ref().map(|a| a.id) {
                        notify_assignee(&mut tx, &t, user, now).await?
                    } else {
                        Vec::new()
                    };
                    tx.commit().await?;
                    Ok((t, notes))
                }

                async fn delete_task(&self, study: StudyId, task: TaskId, user: UserId) -> StoreResult<RemovedObjects> {
                    let mut tx = self.begin_write().await?;
                    let role = member(&mut tx, study, user).await?;
                    let t = load_task(&mut tx, study, task).await?;
                    // Members create, edit and complete; deleting (with every post and file
                    // under it) is for the one who created it and the leader.
                    if role != Role::Leader && t.created_by.id != user {
                        return Err(rule(Rule::NotCreator));
                    }
                    let keys = remove_files(&mut tx, study, "f.post_id IN (SELECT p.id FROM posts p WHERE p.task_id = $2)", task.0).await?;
                    sqlx::query("DELETE FROM tasks WHERE id = $1").bind(task.0).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(keys)
                }

                async fn create_post(&self, study: StudyId, task: TaskId, user: UserId, f: &PostFields, now: Millis) -> StoreResult<Post> {
                    let mut tx = self.begin_write().await?;
                    member(&mut tx, study, user).await?;
                    load_task(&mut tx, study, task).await?;
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO posts (study_id, task_id, author_id, title, title_key, body, body_html, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                    )
                    .bind(study.0)
                    .bind(task.0)
                    .bind(user.0)
                    .bind(&f.title)
                    .bind(f.title.to_lowercase())
                    .bind(&f.body)
                    .bind(&f.body_html)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    bump_task(&mut tx, task).await?;
                    let p = load_post(&mut tx, study, PostId(id)).await?;
                    tx.commit().await?;
                    Ok(p)
                }

                async fn posts(&self, study: StudyId, task: TaskId, user: UserId, q: Option<&str>, before: Option<PostId>, limit: i64) -> StoreResult<Vec<PostSummary>> {
                    let mut c = self.pool.acquire().await?;
                    member(&mut c, study, user).await?;
                    load_task(&mut c, study, task).await?;
                    let mut qb = QueryBuilder::<Db>::new(POST_SELECT);
                    qb.push(" WHERE p.study_id = ").push_bind(study.0).push(" AND p.task_id = ").push_bind(task.0);
                    if let Some(text) = q.filter(|t| !t.is_empty()) {
                        qb.push(" AND p.title_key LIKE ").push_bind(like_pattern(text)).push(" ESCAPE '\\'");
                    }
                    if let Some(b) = before {
                        qb.push(" AND p.id < ").push_bind(b.0);
                    }
                    qb.push(" ORDER BY p.id DESC LIMIT ").push_bind(limit);
                    let rows: Vec<PostRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    Ok(rows.iter().map(summary_of).collect())
                }

                async fn post(&self, study: StudyId, post: PostId, user: UserId) -> StoreResult<Post> {
                    let mut c = self.pool.acquire().await?;
                    member(&mut c, study, user).await?;
                    load_post(&mut c, study, post).await
                }

                async fn update_post(&self, study: StudyId, post: PostId, user: UserId, f: &PostFields, read: i64, now: Millis) -> StoreResult<Post> {
                    let mut tx = self.begin_write().await?;
                    member(&mut tx, study, user).await?;
                    let before = load_post(&mut tx, study, post).await?;
                    if before.author.id != user {
                        return Err(rule(Rule::NotAuthor));
                    }
                    if before.version != read {
                        return Err(rule(Rule::Stale));
                    }
                    let written = sqlx::query(
                        "UPDATE posts SET title = $1, title_key = $2, body = $3, body_html = $6, updated_at = $4, \
                         version = version + 1 WHERE id = $5 AND version = $7",
                    )
                        .bind(&f.title)
                        .bind(f.title.to_lowercase())
                        .bind(&f.body)
                        .bind(now)
                        .bind(post.0)
                        .bind(&f.body_html)
                        .bind(read)
                        .execute(&mut *tx)
                        .await?;
                    if written.rows_affected() == 0 {
                        return Err(rule(Rule::Stale));
                    }
                    let p = load_post(&mut tx, study, post).await?;
                    tx.commit().await?;
                    Ok(p)
                }

                async fn delete_post(&self, study: StudyId, post: PostId, user: UserId) -> StoreResult<(TaskId, RemovedObjects)> {
                    let mut tx = self.begin_write().await?;
                    let role = member(&mut tx, study, user).await?;
                    let p = load_post(&mut tx, study, post).await?;
                    if p.author.id != user && role != Role::Leader {
                        return Err(rule(Rule::NotAuthor));
                    }
                    let keys = remove_files(&mut tx, study, "f.post_id = $2", post.0).await?;
                    sqlx::query("DELETE FROM posts WHERE id = $1").bind(post.0).execute(&mut *tx).await?;
                    bump_task(&mut tx, p.task_id).await?;
                    tx.commit().await?;
                    Ok((p.task_id, keys))
                }

                async fn upload_allowed(&self, study: StudyId, post: Option<PostId>, user: UserId) -> StoreResult<i64> {
                    check_upload(&mut *self.pool.acquire().await?, study, post, user, false).await
                }

                async fn add_file(&self, n: &NewFile) -> StoreResult<StoredFile> {
                    let mut tx = self.begin_write().await?;
                    check_upload(&mut tx, n.study_id, n.post_id, n.uploader, true).await?;
                    let charged = sqlx::query(
                        "UPDATE studies SET storage_bytes = storage_bytes + $1 WHERE id = $2 AND storage_bytes + $1 <= $3",
                    )
                    .bind(n.size)
                    .bind(n.study_id.0)
                    .bind(n.quota)
                    .execute(&mut *tx)
                    .await?;
                    if charged.rows_affected() == 0 {
                        return Err(rule(Rule::QuotaExceeded));
                    }
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO files (study_id, post_id, uploader_id, object_key, name, content_type, size, sha256, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    )
                    .bind(n.study_id.0)
                    .bind(n.post_id.map(|p| p.0))
                    .bind(n.uploader.0)
                    .bind(&n.object_key)
                    .bind(&n.name)
                    .bind(&n.content_type)
                    .bind(n.size)
                    .bind(&n.sha256)
                    .bind(n.now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let mut qb = QueryBuilder::<Db>::new(FILE_SELECT);
                    qb.push(" WHERE f.id = ").push_bind(id);
                    let row: FileRow = qb.build_query_as().fetch_one(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(file_of(row))
                }

                async fn file(&self, study: StudyId, file: FileId, user: UserId) -> StoreResult<StoredFile> {
                    let mut c = self.pool.acquire().await?;
                    member(&mut c, study, user).await?;
                    let mut qb = QueryBuilder::<Db>::new(FILE_SELECT);
                    qb.push(" WHERE f.id = ").push_bind(file.0).push(" AND f.study_id = ").push_bind(study.0);
                    let row: Option<FileRow> = qb.build_query_as().fetch_optional(&mut *c).await?;
                    row.map(file_of).ok_or(rule(Rule::NotFound))
                }

                async fn delete_file(&self, study: StudyId, file: FileId, user: UserId) -> StoreResult<(Option<PostId>, RemovedObjects)> {
                    let mut tx = self.begin_write().await?;
                    let role = member(&mut tx, study, user).await?;
                    let row: Option<(i64, Option<i64>)> =
                        sqlx::query_as("SELECT uploader_id, post_id FROM files WHERE id = $1 AND study_id = $2")
                            .bind(file.0)
                            .bind(study.0)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let (uploader, post) = row.ok_or(rule(Rule::NotFound))?;
                    if uploader != user.0 && role != Role::Leader {
                        return Err(rule(Rule::NotAuthor));
                    }
                    let keys = remove_files(&mut tx, study, "f.id = $2", file.0).await?;
                    if let Some(p) = post {
                        bump_post(&mut tx, PostId(p)).await?;
                    }
                    tx.commit().await?;
                    Ok((post.map(PostId), keys))
                }

                async fn study_files(&self, study: StudyId, user: UserId) -> StoreResult<Vec<StoredFile>> {
                    let mut c = self.pool.acquire().await?;
                    member(&mut c, study, user).await?;
                    files_of(&mut c, study, None).await
                }

                async fn delete_study(&self, study: StudyId, user: UserId) -> StoreResult<RemovedObjects> {
                    let mut tx = self.begin_write().await?;
                    if member(&mut tx, study, user).await? != Role::Leader {
                        return Err(rule(Rule::NotFound));
                    }
                    let keys: Vec<(String,)> = sqlx::query_as("SELECT object_key FROM files WHERE study_id = $1")
                        .bind(study.0)
                        .fetch_all(&mut *tx)
                        .await?;
                    // Every study table cascades from studies.
                    sqlx::query("DELETE FROM studies WHERE id = $1").bind(study.0).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(keys.into_iter().map(|k| k.0).collect())
                }

                async fn known_object_keys(&self, keys: &[String]) -> StoreResult<HashSet<String>> {
                    if keys.is_empty() {
                        return Ok(HashSet::new());
                    }
                    let mut qb = QueryBuilder::<Db>::new("SELECT object_key FROM files WHERE object_key IN (");
                    let mut sep = qb.separated(", ");
                    for k in keys {
                        sep.push_bind(k.clone());
                    }
                    qb.push(")");
                    let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *self.pool.acquire().await?).await?;
                    Ok(rows.into_iter().map(|r| r.0).collect())
                }
            }
        }
    };
}

pub(crate) use tasks_store_impl;
