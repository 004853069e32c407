//! The scheduled-job queries both dialects share (see `sql.rs` for why one macro serves both).

macro_rules! jobs_store_impl {
    ($store:ty, $db:ty) => {
        mod jobs_impl {
            use chrono::NaiveDate;

            use super::*;
            use crate::ids::{StudyId, UserId};
            use crate::store::jobs::{JobRun, JobStore};
            use crate::store::{Millis, StoreResult};
            use crate::studies::{NewNotification, Notification, StudyStatus};

            use super::studies_impl::{member_notes, notify_in};

            const RUN_SELECT: &str =
                "SELECT job, last_started_at, last_finished_at, last_ok, last_detail FROM job_runs";
            type RunRow = (String, i64, Option<i64>, Option<bool>, String);

            fn run(r: RunRow) -> JobRun {
                JobRun { job: r.0, last_started_at: r.1, last_finished_at: r.2, last_ok: r.3, last_detail: r.4 }
            }

            /// Dates are stored as ISO `YYYY-MM-DD` text, which sorts as the dates do.
            fn day(d: NaiveDate) -> String {
                d.format("%Y-%m-%d").to_string()
            }

            /// Still recruiting after its last recruiting day, and not closed by the job for
            /// this deadline before (a leader who reopened keeps it open).
            const RECRUITMENT_DUE: &str = "status = 'recruiting' AND recruit_closes_on < $1 \
                AND (recruit_closed_for IS NULL OR recruit_closed_for <> recruit_closes_on)";
            /// Starts between `since` and `today`, not told yet, not over.
            const REMINDER_DUE: &str = "start_reminded_at IS NULL AND starts_on >= $1 AND starts_on <= $2 \
                AND status <> 'completed'";

            #[async_trait::async_trait]
            impl JobStore for $store {
                async fn job_started(&self, job: &str, at: Millis) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO job_runs (job, last_started_at) VALUES ($1, $2) \
                         ON CONFLICT (job) DO UPDATE SET last_started_at = excluded.last_started_at",
                    )
                    .bind(job)
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn job_finished(&self, job: &str, at: Millis, ok: bool, detail: &str) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE job_runs SET last_finished_at = $1, last_ok = $2, last_detail = $3 WHERE job = $4",
                    )
                    .bind(at)
                    .bind(ok)
                    .bind(detail)
                    .bind(job)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn job_run(&self, job: &str) -> StoreResult<Option<JobRun>> {
                    let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{RUN_SELECT} WHERE job = $1")))
                        .bind(job)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(run))
                }

                async fn job_runs(&self) -> StoreResult<Vec<JobRun>> {
                    let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{RUN_SELECT} ORDER BY job")))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(run).collect())
                }

                async fn recruitment_due(&self, today: NaiveDate, after: StudyId, limit: i64) -> StoreResult<Vec<StudyId>> {
                    let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT id FROM studies WHERE {RECRUITMENT_DUE} AND id > $2 ORDER BY id LIMIT $3"
                    )))
                    .bind(day(today))
                    .bind(after.0)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(|(id,)| StudyId(id)).collect())
                }

                async fn close_recruitment(&self, study: StudyId, today: NaiveDate, now: Millis) -> StoreResult<Option<Vec<Notification>>> {
                    let mut tx = self.begin_write().await?;
                    // The guard re-checks that it is due inside the transaction: a leader who
                    // changed the status meanwhile, or another run, wins.
                    let closed: Option<(i64, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "UPDATE studies SET status = 'in_progress', updated_at = $3, \
                         progress_started_at = COALESCE(progress_started_at, $3), \
                         recruit_closed_for = recruit_closes_on \
                         WHERE id = $2 AND {RECRUITMENT_DUE} \
                         RETURNING leader_id, title, recruit_closes_on, member_count"
                    )))
                    .bind(day(today))
                    .bind(study.0)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((leader, title, closes_on, member_count)) = closed else {
                        return Ok(None);
                    };
                    let (pending,): (i64,) =
                        sqlx::query_as("SELECT COUNT(*) FROM applications WHERE study_id = $1 AND status = 'pending'")
                            .bind(study.0)
                            .fetch_one(&mut *tx)
                            .await?;
                    let mut list = vec![NewNotification {
                        user_id: UserId(leader),
                        kind: "recruitment_closed",
                        payload: serde_json::json!({
                            "study_id": study, "study_title": title, "recruit_closes_on": closes_on,
                            "member_count": member_count, "pending_applications": pending,
                        }),
                        collapse_key: Some(format!("recruitment_closed:{study}")),
                    }];
                    // The members get what a leader's own status change sends them.
                    let payload = serde_json::json!({
                        "study_id": study, "study_title": title, "status": StudyStatus::InProgress,
                    });
                    list.extend(member_notes(&mut tx, study.0, false, "study_status_changed", payload).await?);
                    let out = notify_in(&mut tx, &list, now).await?;
                    tx.commit().await?;
                    Ok(Some(out))
                }

                async fn reminders_due(&self, today: NaiveDate, since: NaiveDate, after: StudyId, limit: i64) -> StoreResult<Vec<StudyId>> {
                    let rows: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT id FROM studies WHERE {REMINDER_DUE} AND id > $3 ORDER BY id LIMIT $4"
                    )))
                    .bind(day(since))
                    .bind(day(today))
                    .bind(after.0)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(|(id,)| StudyId(id)).collect())
                }

                async fn remind_start(&self, study: StudyId, today: NaiveDate, since: NaiveDate, now: Millis) -> StoreResult<Option<Vec<Notification>>> {
                    let mut tx = self.begin_write().await?;
                    // Marked in the transaction that stores the reminders: once per study.
                    let marked: Option<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "UPDATE studies SET start_reminded_at = $4 WHERE id = $3 AND {REMINDER_DUE} RETURNING title, starts_on"
                    )))
                    .bind(day(since))
                    .bind(day(today))
                    .bind(study.0)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((title, starts_on)) = marked else {
                        return Ok(None);
                    };
                    let payload = serde_json::json!({ "study_id": study, "study_title": title, "starts_on": starts_on });
                    let list = member_notes(&mut tx, study.0, true, "study_starting", payload).await?;
                    let out = notify_in(&mut tx, &list, now).await?;
                    tx.commit().await?;
                    Ok(Some(out))
                }
            }
        }
    };
}

pub(super) use jobs_store_impl;
