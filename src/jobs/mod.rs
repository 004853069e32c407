//! Scheduled jobs (Celery beat in the original app): each job has a cron expression from the
//! settings and runs on exactly one node of a cluster at each fire.
//!
//! | job | does | default (UTC) |
//! |---|---|---|
//! | `orphan_sweep` | removes stored objects no row points at ([`crate::storage::sweep_orphans`]) | every 6 hours |
//! | `session_purge` | deletes expired and revoked sessions | hourly, at :30 |
//! | `recruitment_close` | moves studies past their last recruiting day to in progress; tells the leader and the members | every 10 minutes |
//! | `study_reminders` | tells every member of a study that starts today, once per study | every 10 minutes |
//!
//! The parts: [`schedule`] is the pure core (parse, next fire, sleep, "already ran");
//! [`lock`] keeps a job to one run at a time ([`LocalJobLock`] on one node, [`RedisJobLock`]
//! across a cluster); [`run_once`] runs one job now and records it in `job_runs`; [`start`]
//! runs the scheduler, one loop per enabled job, each also once at startup.
//!
//! The one rule a job follows: running it twice changes nothing the second time. Every write
//! re-checks that it is still due inside its own transaction, so a run that outlives its lock
//! or overlaps another node's changes nothing twice.

pub mod lock;
pub mod schedule;
mod studies;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use lock::{JobGuard, JobLock, LocalJobLock, RedisJobLock};

use crate::config::Settings;
use crate::registry::Registry;
use crate::storage::ObjectStore;
use crate::store::{Store, StoreError};

/// Every 6 hours, the period the sweep had before it was a job (`storage::SWEEP_EVERY`).
pub const ORPHAN_SWEEP_DEFAULT: &str = "0 0 */6 * * *";
/// Hourly: a dead session is refused when read anyway, so purging is housekeeping; at half
/// past, away from the sweep on the hour.
pub const SESSION_PURGE_DEFAULT: &str = "0 30 * * * *";
/// Every 10 minutes: deadlines are dates, so a study comes due at midnight (UTC); a short
/// period closes it within minutes of that and catches up soon after a restart or a lost
/// lock, and a run with nothing due costs one indexed query.
pub const RECRUITMENT_CLOSE_DEFAULT: &str = "0 */10 * * * *";
/// Every 10 minutes, for the same reasons: a start date comes due at midnight (UTC).
pub const STUDY_REMINDERS_DEFAULT: &str = "0 */10 * * * *";

/// Longest text kept as a run's detail: an error chain fits, a page of them does not.
const DETAIL_MAX_CHARS: usize = 500;

/// A scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    OrphanSweep,
    SessionPurge,
    RecruitmentClose,
    StudyReminders,
}

/// Every job, in the order they are documented.
pub const JOBS: [Job; 4] = [
    Job::OrphanSweep,
    Job::SessionPurge,
    Job::RecruitmentClose,
    Job::StudyReminders,
];

impl Job {
    /// Its name in `job_runs`, lock keys and logs.
    pub fn name(self) -> &'static str {
        match self {
            Job::OrphanSweep => "orphan_sweep",
            Job::SessionPurge => "session_purge",
            Job::RecruitmentClose => "recruitment_close",
            Job::StudyReminders => "study_reminders",
        }
    }

    pub fn from_name(name: &str) -> Option<Job> {
        JOBS.into_iter().find(|j| j.name() == name)
    }

    /// The cron expression it runs on unless the settings say otherwise.
    pub fn default_schedule(self) -> &'static str {
        match self {
            Job::OrphanSweep => ORPHAN_SWEEP_DEFAULT,
            Job::SessionPurge => SESSION_PURGE_DEFAULT,
            Job::RecruitmentClose => RECRUITMENT_CLOSE_DEFAULT,
            Job::StudyReminders => STUDY_REMINDERS_DEFAULT,
        }
    }

    /// The environment variable that sets its schedule (for messages).
    pub fn setting(self) -> &'static str {
        match self {
            Job::OrphanSweep => "STUDYON_JOB_ORPHAN_SWEEP",
            Job::SessionPurge => "STUDYON_JOB_SESSION_PURGE",
            Job::RecruitmentClose => "STUDYON_JOB_RECRUITMENT_CLOSE",
            Job::StudyReminders => "STUDYON_JOB_STUDY_REMINDERS",
        }
    }

    /// Its configured cron expression; empty when disabled.
    pub fn schedule_in(self, s: &Settings) -> &str {
        match self {
            Job::OrphanSweep => &s.job_orphan_sweep,
            Job::SessionPurge => &s.job_session_purge,
            Job::RecruitmentClose => &s.job_recruitment_close,
            Job::StudyReminders => &s.job_study_reminders,
        }
    }

    /// How long one run holds its lock: longer than a run takes, and shorter than the
    /// default period, so a node that dies holding it delays the job by one fire at most.
    pub fn lock_ttl(self) -> Duration {
        match self {
            // A sweep pages through all of storage: minutes on a large bucket.
            Job::OrphanSweep => Duration::from_secs(30 * 60),
            // One query, or a few hundred short transactions.
            Job::SessionPurge | Job::RecruitmentClose | Job::StudyReminders => {
                Duration::from_secs(5 * 60)
            }
        }
    }
}

/// What the jobs work with.
#[derive(Clone)]
pub struct JobsCtx {
    pub store: Arc<dyn Store>,
    pub objects: Arc<dyn ObjectStore>,
    pub settings: Arc<Settings>,
    /// To push stored notifications to open tabs and tell watching study pages.
    pub registry: Registry,
}

impl JobsCtx {
    pub fn from_state(state: &crate::server::AppState) -> Self {
        JobsCtx {
            store: state.store.clone(),
            objects: state.objects.clone(),
            settings: state.settings.clone(),
            registry: state.registry.clone(),
        }
    }
}

/// Why a job, its schedule or its lock failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A job setting is not an expression this scheduler reads.
    #[error("invalid schedule {expr:?}: {reason}")]
    Schedule { expr: String, reason: String },
    /// The store failed; the write in progress rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The orphan sweep failed (listing or deleting objects, or the store under it).
    #[error("orphan sweep: {0:#}")]
    Sweep(anyhow::Error),
    /// The lock service (Redis) failed or could not be reached.
    #[error("job lock: {0}")]
    Lock(#[from] redis::RedisError),
    /// The system gave no randomness for a lock token.
    #[error("job lock token: {0}")]
    Token(getrandom::Error),
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub job: Job,
    /// How many things it changed (objects removed, sessions purged, studies closed or
    /// reminded); 0 when nothing was due.
    pub changed: u64,
    /// One line for `job_runs` and the log.
    pub detail: String,
}

/// Runs `job` once, as of `now`, and records the run in `job_runs` (its start, then how it
/// ended). The scheduler calls this with the lock held; tests call it directly. It always
/// runs: idempotence is the job's own (see the module docs).
pub async fn run_once(job: Job, ctx: &JobsCtx, now: DateTime<Utc>) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let at = now.timestamp_millis();
    ctx.store.job_started(job.name(), at).await?;
    let result = run_job(job, ctx, now).await;
    let finished = at + i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
    let (ok, detail) = match &result {
        Ok(r) => (true, r.detail.clone()),
        Err(e) => (
            false,
            e.to_string().chars().take(DETAIL_MAX_CHARS).collect(),
        ),
    };
    if let Err(e) = ctx
        .store
        .job_finished(job.name(), finished, ok, &detail)
        .await
    {
        tracing::warn!(job = job.name(), error = %e, "could not record the end of a job run");
    }
    result
}

async fn run_job(job: Job, ctx: &JobsCtx, now: DateTime<Utc>) -> Result<JobReport, JobError> {
    let ms = now.timestamp_millis();
    let (changed, detail) = match job {
        Job::OrphanSweep => {
            let n = crate::storage::sweep_orphans(&*ctx.store, &*ctx.objects, ms)
                .await
                .map_err(JobError::Sweep)? as u64;
            (n, format!("removed {n} orphaned objects"))
        }
        Job::SessionPurge => {
            let idle = i64::try_from(ctx.settings.session_idle_secs).unwrap_or(i64::MAX / 2000);
            let n = ctx.store.purge_sessions(ms - idle * 1000, ms).await?;
            (n, format!("purged {n} expired sessions"))
        }
        Job::RecruitmentClose => {
            let n = studies::close_recruitment(ctx, now).await?;
            (n, format!("closed recruitment of {n} studies"))
        }
        Job::StudyReminders => {
            let n = studies::remind_starts(ctx, now).await?;
            (n, format!("reminded the members of {n} studies"))
        }
    };
    Ok(JobReport {
        job,
        changed,
        detail,
    })
}

/// Starts the scheduler: one loop per enabled job, each running it once now and then at
/// every fire of its schedule, under `lock`. The loops stop when `shutdown` is cancelled,
/// abandoning a run in progress (its open transaction rolls back, its lock is given back).
/// Settings are validated at startup; a job whose expression does not parse is skipped here
/// with an error in the log.
pub fn start(
    ctx: JobsCtx,
    lock: Arc<dyn JobLock>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut loops = Vec::new();
        for job in JOBS {
            match schedule::parse(job.schedule_in(&ctx.settings)) {
                Ok(Some(s)) => loops.push(job_loop(
                    job,
                    s,
                    ctx.clone(),
                    lock.clone(),
                    shutdown.clone(),
                )),
                Ok(None) => tracing::info!(job = job.name(), "scheduled job disabled"),
                Err(e) => {
                    tracing::error!(job = job.name(), error = %e, "scheduled job not started")
                }
            }
        }
        futures_util::future::join_all(loops).await;
    })
}

/// A token cancelled when the server starts shutting down (checked every 100 ms), for
/// [`start`]; it stops watching once cancelled.
pub fn shutdown_token(state: &actix_web::web::Data<crate::server::AppState>) -> CancellationToken {
    // How often the server's shutdown flag is looked at: well inside the shutdown budget.
    const POLL: Duration = Duration::from_millis(100);
    let token = CancellationToken::new();
    let (state, t) = (state.clone(), token.clone());
    actix_rt::spawn(async move {
        while !state.is_shutting_down() && !t.is_cancelled() {
            tokio::select! {
                _ = t.cancelled() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        t.cancel();
    });
    token
}

/// One job's loop: run at startup, then at each fire.
async fn job_loop(
    job: Job,
    schedule: cron::Schedule,
    ctx: JobsCtx,
    lock: Arc<dyn JobLock>,
    shutdown: CancellationToken,
) {
    // The first run is now: the sweep clears what a killed process left, the others catch
    // up on what came due while no node ran them.
    let mut fire = Utc::now();
    loop {
        loop {
            let now = Utc::now();
            if now >= fire {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(schedule::sleep_for(fire, now)) => {}
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = fire_once(job, &ctx, &*lock, fire) => {}
        }
        match schedule::next_after(&schedule, Utc::now()) {
            Some(next) => fire = next,
            None => {
                tracing::info!(job = job.name(), "schedule has no more fires");
                return;
            }
        }
    }
}

/// One fire: take the lock, skip the fire if another node already ran it, run, give the
/// lock back. Failures are logged (and recorded by `run_once`); the next fire tries again.
async fn fire_once(job: Job, ctx: &JobsCtx, lock: &dyn JobLock, fire: DateTime<Utc>) {
    let name = job.name();
    let guard = match lock.try_acquire(name, job.lock_ttl()).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            tracing::debug!(job = name, "job is running elsewhere; this fire is theirs");
            return;
        }
        Err(e) => {
            tracing::warn!(job = name, error = %e, "job lock unavailable; skipping this fire");
            return;
        }
    };
    match ctx.store.job_run(name).await {
        Ok(last)
            if schedule::already_ran(
                last.as_ref().map(|r| r.last_started_at),
                fire,
                Utc::now(),
            ) =>
        {
            tracing::debug!(job = name, "this fire already ran on another node");
        }
        Ok(_) => match run_once(job, ctx, Utc::now()).await {
            Ok(r) if r.changed > 0 => tracing::info!(job = name, detail = %r.detail, "job ran"),
            Ok(r) => tracing::debug!(job = name, detail = %r.detail, "job ran"),
            Err(e) => tracing::warn!(job = name, error = %e, "job failed"),
        },
        Err(e) => tracing::warn!(job = name, error = %e, "could not read the job's last run"),
    }
    match guard.release().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            job = name,
            ttl_secs = job.lock_ttl().as_secs(),
            "job ran longer than its lock"
        ),
        Err(e) => tracing::debug!(job = name, error = %e, "job lock not released; it expires"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for job in JOBS {
            assert_eq!(Job::from_name(job.name()), Some(job));
            assert!(job.setting().starts_with("STUDYON_JOB_"));
        }
        let mut names: Vec<_> = JOBS.iter().map(|j| j.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), JOBS.len());
        assert_eq!(Job::from_name("nope"), None);
    }

    /// The settings' defaults are the table's, and each setting is read by its own job.
    #[test]
    fn settings_carry_each_jobs_schedule() {
        let s = Settings::defaults();
        for job in JOBS {
            assert_eq!(job.schedule_in(&s), job.default_schedule(), "{job:?}");
        }
        let names: Vec<String> = crate::config::env_names()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        for job in JOBS {
            assert!(
                names.iter().any(|n| n == job.setting()),
                "{}",
                job.setting()
            );
        }
    }

    /// An empty setting disables a job; one that does not parse stops startup and names
    /// its setting.
    #[test]
    fn schedules_come_from_settings_and_are_validated() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let mut v = vec!["studyon"];
            v.extend_from_slice(args);
            crate::config::Cli::try_parse_from(v).unwrap().settings
        };
        let s = parse(&["--job-orphan-sweep=", "--job-session-purge", "@daily"]);
        s.validate().unwrap();
        assert!(
            schedule::parse(Job::OrphanSweep.schedule_in(&s))
                .unwrap()
                .is_none()
        );
        assert_eq!(Job::SessionPurge.schedule_in(&s), "@daily");
        let err = parse(&["--job-recruitment-close", "*/10 * * * *"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("STUDYON_JOB_RECRUITMENT_CLOSE") && err.contains("seconds"),
            "{err}"
        );
        let err = parse(&["--job-study-reminders", "soon"])
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("STUDYON_JOB_STUDY_REMINDERS"),
            "{err}"
        );
    }

    /// A lock outlives no default period, so a dead holder costs one fire at most.
    #[test]
    fn locks_expire_within_a_default_period() {
        let from = Utc::now();
        for job in JOBS {
            let s = schedule::parse(job.default_schedule()).unwrap().unwrap();
            let a = schedule::next_after(&s, from).unwrap();
            let b = schedule::next_after(&s, a).unwrap();
            assert!(job.lock_ttl() < (b - a).to_std().unwrap(), "{job:?}");
        }
    }
}
