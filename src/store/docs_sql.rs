//! The document queries both dialects share (see `sql.rs` for why one macro serves both).

macro_rules! docs_store_impl {
    ($store:ty, $db:ty) => {
        mod docs_impl {
            use sqlx::QueryBuilder;

            use super::*;
            use crate::chat::Author;
            use crate::ids::{PostId, StudyId, UserId};
            use crate::store::docs::{DocRecord, DocStore, DocVersion, NewDocVersion, MAX_AUTO_VERSIONS, MAX_NAMED_VERSIONS};
            use crate::store::studies::Rule;
            use crate::store::{Millis, StoreError, StoreResult};
            use crate::studies::Role;
            use crate::tasks::PostSummary;

            use super::studies_impl::membership;
            use super::tasks_impl::{summary_of, PostRow, POST_SELECT};

            type Conn = <$db as sqlx::Database>::Connection;
            type Db = $db;

            fn rule(r: Rule) -> StoreError {
                StoreError::Rule(r)
            }

            async fn summary(c: &mut Conn, post: PostId) -> StoreResult<(StudyId, PostSummary)> {
                let mut qb = QueryBuilder::<Db>::new(POST_SELECT);
                qb.push(" WHERE p.id = ").push_bind(post.0);
                let r: PostRow = qb.build_query_as().fetch_optional(&mut *c).await?.ok_or(rule(Rule::NotFound))?;
                Ok((StudyId(r.8), summary_of(&r)))
            }

            /// The post, if it is in `study` and `user` is a member there.
            async fn member_post(c: &mut Conn, study: StudyId, post: PostId, user: UserId) -> StoreResult<Role> {
                let role = membership(c, study.0, user.0).await?.ok_or(rule(Rule::NotFound))?;
                let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM posts WHERE id = $1 AND study_id = $2")
                    .bind(post.0)
                    .bind(study.0)
                    .fetch_optional(&mut *c)
                    .await?;
                found.map(|_| role).ok_or(rule(Rule::NotFound))
            }

            const VERSION_SELECT: &str = "SELECT v.id, v.name, v.created_at, v.created_by, u.display_name, CAST(LENGTH(v.body) AS BIGINT) \
                FROM doc_versions v LEFT JOIN users u ON u.id = v.created_by";
            type VersionRow = (i64, Option<String>, i64, Option<i64>, Option<String>, i64);

            /// Versions with their authors (one query for all of them).
            async fn with_authors(c: &mut Conn, rows: Vec<VersionRow>) -> StoreResult<Vec<DocVersion>> {
                let mut authors: Vec<(i64, i64, String)> = Vec::new();
                if !rows.is_empty() {
                    let mut qb = QueryBuilder::<Db>::new(
                        "SELECT a.version_id, u.id, u.display_name FROM doc_version_authors a \
                         JOIN users u ON u.id = a.user_id WHERE a.version_id IN (",
                    );
                    let mut list = qb.separated(", ");
                    for r in &rows {
                        list.push_bind(r.0);
                    }
                    qb.push(") ORDER BY u.id");
                    authors = qb.build_query_as().fetch_all(&mut *c).await?;
                }
                Ok(rows
                    .into_iter()
                    .map(|r| DocVersion {
                        id: r.0,
                        name: r.1,
                        created_at: r.2,
                        created_by: r.3.zip(r.4).map(|(id, display_name)| Author { id: UserId(id), display_name }),
                        authors: authors
                            .iter()
                            .filter(|a| a.0 == r.0)
                            .map(|a| Author { id: UserId(a.1), display_name: a.2.clone() })
                            .collect(),
                        chars: r.5,
                    })
                    .collect())
            }

            #[async_trait::async_trait]
            impl DocStore for $store {
                async fn doc_record(&self, post: PostId) -> StoreResult<DocRecord> {
                    let mut c = self.pool.acquire().await?;
                    let p: Option<(i64, i64, Option<i64>, String)> =
                        sqlx::query_as("SELECT study_id, author_id, locked_at, body FROM posts WHERE id = $1")
                            .bind(post.0)
                            .fetch_optional(&mut *c)
                            .await?;
                    let (study, author, locked_at, body) = p.ok_or(rule(Rule::NotFound))?;
                    let snapshot: Option<(Vec<u8>, i64)> =
                        sqlx::query_as("SELECT data, upto_seq FROM doc_snapshots WHERE post_id = $1")
                            .bind(post.0)
                            .fetch_optional(&mut *c)
                            .await?;
                    let after = snapshot.as_ref().map_or(0, |s| s.1);
                    let updates: Vec<(i64, Vec<u8>)> =
                        sqlx::query_as("SELECT seq, data FROM doc_updates WHERE post_id = $1 AND seq > $2 ORDER BY seq")
                            .bind(post.0)
                            .bind(after)
                            .fetch_all(&mut *c)
                            .await?;
                    Ok(DocRecord {
                        study_id: StudyId(study),
                        author_id: UserId(author),
                        locked: locked_at.is_some(),
                        body,
                        snapshot,
                        updates,
                    })
                }

                async fn doc_append(&self, post: PostId, seq: i64, data: &[u8], now: Millis) -> StoreResult<()> {
                    let r = sqlx::query("INSERT INTO doc_updates (post_id, seq, data, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(post.0)
                        .bind(seq)
                        .bind(data)
                        .bind(now)
                        .execute(&self.pool)
                        .await;
                    match r {
                        Ok(_) => Ok(()),
                        // The post is gone (deleted meanwhile): its document is too.
                        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(rule(Rule::NotFound)),
                        Err(e) => Err(e.into()),
                    }
                }

                async fn doc_compact(&self, post: PostId, state: &[u8], upto_seq: i64, now: Millis) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO doc_snapshots (post_id, data, upto_seq, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (post_id) DO UPDATE SET data = excluded.data, upto_seq = excluded.upto_seq, \
                         created_at = excluded.created_at",
                    )
                    .bind(post.0)
                    .bind(state)
                    .bind(upto_seq)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM doc_updates WHERE post_id = $1 AND seq <= $2")
                        .bind(post.0)
                        .bind(upto_seq)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn doc_refresh_post(&self, post: PostId, body: &str, body_html: &str, now: Millis) -> StoreResult<(StudyId, PostSummary)> {
                    let mut tx = self.begin_write().await?;
                    let written = sqlx::query(
                        "UPDATE posts SET body = $1, body_html = $2, updated_at = $3, version = version + 1 WHERE id = $4",
                    )
                    .bind(body)
                    .bind(body_html)
                    .bind(now)
                    .bind(post.0)
                    .execute(&mut *tx)
                    .await?;
                    if written.rows_affected() == 0 {
                        return Err(rule(Rule::NotFound));
                    }
                    let s = summary(&mut tx, post).await?;
                    tx.commit().await?;
                    Ok(s)
                }

                async fn set_post_locked(&self, study: StudyId, post: PostId, user: UserId, locked: bool, now: Millis) -> StoreResult<PostSummary> {
                    let mut tx = self.begin_write().await?;
                    if member_post(&mut tx, study, post, user).await? != Role::Leader {
                        return Err(rule(Rule::NotLeader));
                    }
                    sqlx::query(
                        "UPDATE posts SET locked_at = CASE WHEN $1 THEN COALESCE(locked_at, $2) ELSE NULL END, \
                         version = version + 1 WHERE id = $3",
                    )
                    .bind(locked)
                    .bind(now)
                    .bind(post.0)
                    .execute(&mut *tx)
                    .await?;
                    let (_, s) = summary(&mut tx, post).await?;
                    tx.commit().await?;
                    Ok(s)
                }

                async fn add_doc_version(&self, v: &NewDocVersion<'_>) -> StoreResult<DocVersion> {
                    let mut tx = self.begin_write().await?;
                    let named = v.name.is_some();
                    let (count,): (i64,) = sqlx::query_as(if named {
                        "SELECT COUNT(*) FROM doc_versions WHERE post_id = $1 AND name IS NOT NULL"
                    } else {
                        "SELECT COUNT(*) FROM doc_versions WHERE post_id = $1 AND name IS NULL"
                    })
                    .bind(v.post.0)
                    .fetch_one(&mut *tx)
                    .await?;
                    if named && count >= MAX_NAMED_VERSIONS {
                        return Err(rule(Rule::VersionLimit));
                    }
                    if !named && count >= MAX_AUTO_VERSIONS {
                        sqlx::query(
                            "DELETE FROM doc_versions WHERE id IN (SELECT id FROM doc_versions WHERE post_id = $1 \
                             AND name IS NULL ORDER BY id LIMIT $2)",
                        )
                        .bind(v.post.0)
                        .bind(count - MAX_AUTO_VERSIONS + 1)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let (id,): (i64,) = sqlx::query_as(
                        "INSERT INTO doc_versions (post_id, name, body, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(v.post.0)
                    .bind(v.name)
                    .bind(v.body)
                    .bind(v.created_by.map(|u| u.0))
                    .bind(v.now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(ref d) if d.is_foreign_key_violation() => rule(Rule::NotFound),
                        e => e.into(),
                    })?;
                    for a in v.authors {
                        sqlx::query(
                            "INSERT INTO doc_version_authors (version_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        )
                        .bind(id)
                        .bind(a.0)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let mut qb = QueryBuilder::<Db>::new(VERSION_SELECT);
                    qb.push(" WHERE v.id = ").push_bind(id);
                    let rows: Vec<VersionRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    let mut out = with_authors(&mut tx, rows).await?;
                    tx.commit().await?;
                    out.pop().ok_or(rule(Rule::NotFound))
                }

                async fn doc_versions(&self, study: StudyId, post: PostId, user: UserId) -> StoreResult<Vec<DocVersion>> {
                    let mut c = self.pool.acquire().await?;
                    member_post(&mut c, study, post, user).await?;
                    let mut qb = QueryBuilder::<Db>::new(VERSION_SELECT);
                    qb.push(" WHERE v.post_id = ").push_bind(post.0).push(" ORDER BY v.id DESC");
                    let rows: Vec<VersionRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    with_authors(&mut c, rows).await
                }

                async fn doc_version(&self, study: StudyId, post: PostId, version: i64, user: UserId) -> StoreResult<(DocVersion, String)> {
                    let mut c = self.pool.acquire().await?;
                    member_post(&mut c, study, post, user).await?;
                    let mut qb = QueryBuilder::<Db>::new(VERSION_SELECT);
                    qb.push(" WHERE v.id = ").push_bind(version).push(" AND v.post_id = ").push_bind(post.0);
                    let rows: Vec<VersionRow> = qb.build_query_as().fetch_all(&mut *c).await?;
                    let v = with_authors(&mut c, rows).await?.pop().ok_or(rule(Rule::NotFound))?;
                    let (body,): (String,) = sqlx::query_as("SELECT body FROM doc_versions WHERE id = $1")
                        .bind(version)
                        .fetch_one(&mut *c)
                        .await?;
                    Ok((v, body))
                }

                async fn post_ids(&self, study: StudyId) -> StoreResult<Vec<PostId>> {
                    let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM posts WHERE study_id = $1")
                        .bind(study.0)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(|(p,)| PostId(p)).collect())
                }
            }
        }
    };
}

pub(super) use docs_store_impl;
