//! The study jobs: closing recruitment when its last day has passed, and telling members a
//! study starts. Each study is one guarded transaction in the store (the change and its
//! notifications together); then the notifications are pushed to open tabs through each
//! user's `UserSession`, as every other notification is.
//!
//! Why the status change is written here and not sent to the `Study` actor (the single
//! writer of status): its `SetStatus` is a leader's command (checked against the leader,
//! with the leader's notifications), and a job's change must commit with the leader's
//! notice so a crash between them cannot lose it. The store's guard (`WHERE status =
//! 'recruiting'` and the deadline, re-checked in the transaction) orders it against a
//! leader's change, as the store's own checks order writes across nodes; the running actor,
//! if any, is told afterwards like any stored change (`StudyMsg::Announce`), and its watchers
//! re-read the study.

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::{JobError, JobsCtx};
use crate::ids::StudyId;
use crate::live::study::{Study, StudyEvent, StudyMsg};
use crate::live::user::push_notifications;
use crate::studies::StudyStatus;

/// Studies read per query: memory stays bounded however many come due at once.
const BATCH: i64 = 200;
/// Days after its start a study is still reminded: a node down over a long weekend still
/// sends it, a study created with a start long past gets none.
const REMINDER_GRACE_DAYS: u64 = 3;

/// The calendar day jobs go by: dates are stored without a zone and read as UTC.
fn today(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
}

/// Closes every study whose recruitment ended before today; returns how many it closed.
pub(super) async fn close_recruitment(ctx: &JobsCtx, now: DateTime<Utc>) -> Result<u64, JobError> {
    let (today, ms) = (today(now), now.timestamp_millis());
    let mut closed = 0;
    let mut after = StudyId(0);
    loop {
        let due = ctx.store.recruitment_due(today, after, BATCH).await?;
        for &study in &due {
            let Some(notifications) = ctx.store.close_recruitment(study, today, ms).await? else {
                continue;
            };
            closed += 1;
            let event = StudyEvent::StatusChanged {
                status: StudyStatus::InProgress,
            };
            if let Err(e) = ctx
                .registry
                .tell_if_running::<Study>(study, StudyMsg::Announce { event })
                .await
            {
                tracing::warn!(%study, error = %e, "watchers not told the recruitment closed (it is stored)");
            }
            push_notifications(&ctx.registry, notifications).await;
        }
        match due.last() {
            Some(&last) if due.len() as i64 == BATCH => after = last,
            _ => return Ok(closed),
        }
    }
}

/// Tells the members of every study starting today (or in the last few days, if no node
/// ran this job then) that it starts; returns how many studies it reminded.
pub(super) async fn remind_starts(ctx: &JobsCtx, now: DateTime<Utc>) -> Result<u64, JobError> {
    let (today, ms) = (today(now), now.timestamp_millis());
    let since = today
        .checked_sub_days(Days::new(REMINDER_GRACE_DAYS))
        .unwrap_or(NaiveDate::MIN);
    let mut reminded = 0;
    let mut after = StudyId(0);
    loop {
        let due = ctx.store.reminders_due(today, since, after, BATCH).await?;
        for &study in &due {
            let Some(notifications) = ctx.store.remind_start(study, today, since, ms).await? else {
                continue;
            };
            reminded += 1;
            push_notifications(&ctx.registry, notifications).await;
        }
        match due.last() {
            Some(&last) if due.len() as i64 == BATCH => after = last,
            _ => return Ok(reminded),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_day_is_the_utc_one() {
        let late = Utc.with_ymd_and_hms(2027, 2, 1, 23, 59, 59).unwrap();
        assert_eq!(today(late).to_string(), "2027-02-01");
        let next = late + chrono::Duration::seconds(1);
        assert_eq!(today(next).to_string(), "2027-02-02");
    }
}
