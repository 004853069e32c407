//! The scheduler's pure core: a job's cron expression, when it fires next, how long to sleep
//! before looking again, and whether a fire already ran elsewhere. No IO and no clock: `now`
//! comes in, so every rule is a unit test.
//!
//! Expressions are the `cron` crate's: six fields with seconds first (`sec min hour day month
//! weekday`, an optional seventh for the year) or a shorthand (`@hourly`, `@daily`, …), in UTC.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron::Schedule;

use super::JobError;
use crate::store::Millis;

/// The longest single sleep: the wall clock is read again at least this often, so a clock
/// step (NTP, a suspended VM) moves a fire by at most this much.
pub const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// Parses a job's setting. Empty (or blank) means the job is disabled: `Ok(None)`.
pub fn parse(expr: &str) -> Result<Option<Schedule>, JobError> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Ok(None);
    }
    let invalid = |reason: String| JobError::Schedule {
        expr: expr.to_string(),
        reason,
    };
    // Classic five-field cron is the likeliest mistake: say what to add.
    if !expr.starts_with('@') && expr.split_whitespace().count() == 5 {
        return Err(invalid(format!(
            "it has 5 fields; these expressions start with a seconds field, e.g. \"0 {expr}\""
        )));
    }
    Schedule::from_str(expr)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// The first fire strictly after `now`; `None` if the schedule never fires again (an
/// expression pinned to past years).
pub fn next_after(schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&now).next()
}

/// How long to sleep before looking at the clock again: until `fire`, at most
/// [`RECHECK_EVERY`], nothing if it is due.
pub fn sleep_for(fire: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (fire - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(RECHECK_EVERY)
}

/// How far ahead of this node's clock a recorded start may be and still count: more than
/// nodes' clocks differ, less than a clock that jumped (whose start would otherwise hold
/// the job off until the clock caught up).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Whether a run that started at `last_started` (from `job_runs`) already covers the fire
/// due at `fire`, as seen at `now`. Every node computes the same fire instants from the same
/// expression, and the node that runs one records a start at or after it on its own clock;
/// so a node that gets the lock later for the same fire (its clock a little behind, or the
/// first run already done and released) sees that and skips it. A start recorded further
/// ahead of `now` than [`MAX_CLOCK_SKEW`] is ignored.
pub fn already_ran(last_started: Option<Millis>, fire: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let horizon = now.timestamp_millis() + MAX_CLOCK_SKEW.as_millis() as Millis;
    last_started.is_some_and(|at| at >= fire.timestamp_millis() && at <= horizon)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::jobs::Job;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 2, 1, h, m, s).unwrap()
    }

    fn schedule(expr: &str) -> Schedule {
        parse(expr).unwrap().unwrap()
    }

    #[test]
    fn empty_disables_and_bad_expressions_say_why() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("   ").unwrap().is_none());
        let five = parse("*/10 * * * *").unwrap_err().to_string();
        assert!(
            five.contains("seconds field") && five.contains("\"0 */10 * * * *\""),
            "{five}"
        );
        assert!(parse("0 0 25 * * *").is_err(), "hour 25");
        assert!(parse("every ten minutes").is_err());
        assert!(parse("@hourly").unwrap().is_some());
    }

    #[test]
    fn the_defaults_parse_and_fire_as_documented() {
        for job in crate::jobs::JOBS {
            assert!(parse(job.default_schedule()).unwrap().is_some(), "{job:?}");
        }
        let fires = |job: Job, from: DateTime<Utc>, n: usize| -> Vec<DateTime<Utc>> {
            schedule(job.default_schedule())
                .after(&from)
                .take(n)
                .collect()
        };
        // The sweep's period is what it was before it became a job.
        let sweep = fires(Job::OrphanSweep, at(0, 0, 1), 2);
        assert_eq!(sweep, vec![at(6, 0, 0), at(12, 0, 0)]);
        assert_eq!(
            (sweep[1] - sweep[0]).to_std().unwrap(),
            crate::storage::SWEEP_EVERY
        );
        assert_eq!(
            fires(Job::SessionPurge, at(0, 0, 0), 2),
            vec![at(0, 30, 0), at(1, 30, 0)]
        );
        for job in [Job::RecruitmentClose, Job::StudyReminders] {
            assert_eq!(fires(job, at(0, 0, 0), 2), vec![at(0, 10, 0), at(0, 20, 0)]);
        }
    }

    #[test]
    fn next_fire_is_strictly_after_now() {
        let every_10 = schedule("0 */10 * * * *");
        assert_eq!(next_after(&every_10, at(0, 9, 59)), Some(at(0, 10, 0)));
        // Exactly on a fire: that one is taken, so the next is the one after.
        assert_eq!(next_after(&every_10, at(0, 10, 0)), Some(at(0, 20, 0)));
        let just_before = at(0, 9, 59) + chrono::Duration::milliseconds(999);
        assert_eq!(next_after(&every_10, just_before), Some(at(0, 10, 0)));
        let just_after = at(0, 10, 0) + chrono::Duration::milliseconds(1);
        assert_eq!(next_after(&every_10, just_after), Some(at(0, 20, 0)));
        // Across midnight and the month's end.
        let hourly = schedule("@hourly");
        let feb_end = Utc.with_ymd_and_hms(2027, 2, 28, 23, 30, 0).unwrap();
        assert_eq!(
            next_after(&hourly, feb_end),
            Some(Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap())
        );
        // Pinned to a past year: never again.
        assert_eq!(next_after(&schedule("0 0 0 1 1 * 2020"), at(0, 0, 0)), None);
    }

    #[test]
    fn sleeps_are_bounded_and_never_negative() {
        assert_eq!(
            sleep_for(at(0, 0, 30), at(0, 0, 0)),
            Duration::from_secs(30)
        );
        assert_eq!(sleep_for(at(6, 0, 0), at(0, 0, 0)), RECHECK_EVERY);
        assert_eq!(sleep_for(at(0, 0, 0), at(0, 0, 0)), Duration::ZERO);
        assert_eq!(sleep_for(at(0, 0, 0), at(0, 5, 0)), Duration::ZERO);
    }

    #[test]
    fn a_fire_counts_as_run_once_a_start_at_or_after_it_is_recorded() {
        let fire = at(0, 10, 0);
        let now = at(0, 10, 1);
        let ms = fire.timestamp_millis();
        let ran = |at: Option<Millis>| already_ran(at, fire, now);
        assert!(!ran(None));
        assert!(!ran(Some(ms - 600_000)), "the previous fire's run");
        assert!(!ran(Some(ms - 1)));
        assert!(ran(Some(ms)));
        assert!(ran(Some(ms + 2_500)), "another node, a bit later");
        assert!(
            ran(Some(ms + 60_000)),
            "a node whose clock runs a minute ahead"
        );
        // A start from a clock that jumped ahead (or a test's chosen instant) blocks nothing.
        let horizon = now.timestamp_millis() + MAX_CLOCK_SKEW.as_millis() as Millis;
        assert!(ran(Some(horizon)));
        assert!(!ran(Some(horizon + 1)));
    }
}
