//! The scheduled-jobs query family: the record of each job's last run, and the study jobs'
//! guarded writes. Each write re-checks, inside its transaction, that it is still due, and
//! marks what it did in the same transaction as the notifications it stores, so a job run
//! twice (or on two nodes at once) changes nothing the second time.

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Serialize;

use super::{Millis, StoreResult};
use crate::ids::StudyId;
use crate::studies::Notification;

/// The last run of one job, as `job_runs` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRun {
    pub job: String,
    pub last_started_at: Millis,
    /// `None` until the first run finishes; earlier than `last_started_at` while a run is
    /// going (or after a node died in one).
    pub last_finished_at: Option<Millis>,
    pub last_ok: Option<bool>,
    /// What the last finished run did, or its error.
    pub last_detail: String,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Records that a run of `job` started at `at` (the previous run's outcome stays).
    async fn job_started(&self, job: &str, at: Millis) -> StoreResult<()>;
    /// Records how the run that started last ended.
    async fn job_finished(&self, job: &str, at: Millis, ok: bool, detail: &str) -> StoreResult<()>;
    async fn job_run(&self, job: &str) -> StoreResult<Option<JobRun>>;
    /// Every job that ever ran, by name.
    async fn job_runs(&self) -> StoreResult<Vec<JobRun>>;

    /// Studies still recruiting after their last recruiting day (`recruit_closes_on` before
    /// `today`) that the job has not closed for that deadline yet; ids above `after`,
    /// ascending, at most `limit`.
    async fn recruitment_due(
        &self,
        today: NaiveDate,
        after: StudyId,
        limit: i64,
    ) -> StoreResult<Vec<StudyId>>;
    /// Moves one study from recruiting to in progress if it is still due, and stores the
    /// notifications that go with it in the same transaction (`recruitment_closed` to the
    /// leader, `study_status_changed` to the members). `None` when it was no longer due.
    async fn close_recruitment(
        &self,
        study: StudyId,
        today: NaiveDate,
        now: Millis,
    ) -> StoreResult<Option<Vec<Notification>>>;

    /// Studies starting between `since` and `today` (inclusive) whose members were not told
    /// yet, not completed; ids above `after`, ascending, at most `limit`.
    async fn reminders_due(
        &self,
        today: NaiveDate,
        since: NaiveDate,
        after: StudyId,
        limit: i64,
    ) -> StoreResult<Vec<StudyId>>;
    /// Marks one study reminded if it is still due, and stores a `study_starting`
    /// notification for each current member (the leader too) in the same transaction.
    /// `None` when it was no longer due.
    async fn remind_start(
        &self,
        study: StudyId,
        today: NaiveDate,
        since: NaiveDate,
        now: Millis,
    ) -> StoreResult<Option<Vec<Notification>>>;
}
