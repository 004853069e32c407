//! Scheduled jobs on SQLite and Postgres: the study jobs run through `jobs::run_once` at a
//! chosen instant (the function the scheduler calls), so no test waits on cron timing; one
//! test runs the real scheduler of a started server.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use studyon::jobs::{Job, JobsCtx, run_once};
use studyon::server::RunningServer;

use crate::both_backends;
use crate::common::*;
use crate::studies::{apply, create_study, decide, patch};

/// A server whose scheduler leaves the study jobs alone: the tests run them by hand.
async fn server(b: &Backend) -> RunningServer {
    start(b, &["--job-recruitment-close=", "--job-study-reminders="]).await
}

fn ctx(s: &RunningServer) -> JobsCtx {
    JobsCtx::from_state(&s.state)
}

/// `2027-MM-DD hh:mm` UTC.
fn at(month: u32, day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, month, day, h, m, 0).unwrap()
}

fn study(title: &str, closes_on: &str, starts_on: &str) -> Value {
    json!({
        "title": title,
        "description": "",
        "tags": [],
        "capacity": 10,
        "recruit_opens_on": "2026-01-01",
        "recruit_closes_on": closes_on,
        "starts_on": starts_on,
        "ends_on": "2027-12-31",
    })
}

async fn join(s: &RunningServer, study: i64, who: &Session, leader: &Session) {
    let app = apply(s, study, who).await;
    assert_eq!(decide(s, study, app, true, leader).await.0, 200);
}

async fn status_of(s: &RunningServer, study: i64, who: &Session) -> String {
    let (st, body) = get(s, &format!("/api/studies/{study}"), Some(&who.cookie)).await;
    assert_eq!(st, 200, "{body}");
    body["study"]["status"].as_str().unwrap().to_string()
}

/// The user's inbox notifications of one kind about one study.
async fn inbox(s: &RunningServer, who: &Session, kind: &str, study: i64) -> Vec<Value> {
    let (st, body) = get(s, "/api/notifications?limit=50", Some(&who.cookie)).await;
    assert_eq!(st, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == kind && n["payload"]["study_id"] == study)
        .cloned()
        .collect()
}

/// A signed-in tab, ready for live frames.
async fn tab(s: &RunningServer, who: &Session) -> WsConn {
    let mut ws = ws_connect(s, &who.cookie).await;
    hello(&mut ws).await;
    ws
}

/// The next frame of `type` (and, for notifications, of `kind`), skipping others.
async fn next_of(ws: &mut WsConn, ty: &str, kind: Option<&str>) -> Value {
    loop {
        let f = next_json(ws).await;
        if f["type"] == ty && kind.is_none_or(|k| f["notification"]["kind"] == k) {
            return f;
        }
    }
}

/// No notification frame arrives within a moment.
async fn quiet(ws: &mut WsConn) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    while let Ok(f) = tokio::time::timeout_at(deadline, next_json(ws)).await {
        assert_ne!(f["type"], "notification", "unexpected {f}");
    }
}

async fn recruitment_closes_once_and_tells_the_leader(b: &Backend) {
    let s = server(b).await;
    let [leader, member, applicant] = signups(&s).await;
    let due = create_study(&s, &leader.cookie, study("Due", "2027-02-01", "2027-03-01")).await;
    let later = create_study(
        &s,
        &leader.cookie,
        study("Later", "2027-02-02", "2027-03-01"),
    )
    .await;
    join(&s, due, &member, &leader).await;
    apply(&s, due, &applicant).await;

    let mut lws = tab(&s, &leader).await;
    send_text(
        &mut lws,
        json!({ "type": "study.watch", "id": "w", "study_id": due }).to_string(),
    )
    .await;
    assert_eq!(
        next_json(&mut lws).await,
        json!({ "type": "ack", "id": "w" })
    );
    let mut mws = tab(&s, &member).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Five past midnight after the last recruiting day: only the due study moves on.
    let now = at(2, 2, 0, 5);
    let r = run_once(Job::RecruitmentClose, &ctx(&s), now)
        .await
        .unwrap();
    assert_eq!(r.changed, 1, "{r:?}");
    assert_eq!(status_of(&s, due, &leader).await, "in_progress");
    assert_eq!(status_of(&s, later, &leader).await, "recruiting");

    // Live: the watching tab is told the status changed, the leader and the member are
    // notified, each as the inbox has it.
    let ev = next_of(&mut lws, "study.event", None).await;
    assert_eq!(
        (ev["study_id"].as_i64(), ev["event"]["kind"].as_str()),
        (Some(due), Some("status_changed"))
    );
    assert_eq!(ev["event"]["status"], "in_progress");
    let n = next_of(&mut lws, "notification", Some("recruitment_closed")).await;
    let p = &n["notification"]["payload"];
    assert_eq!(p["study_id"], due);
    assert_eq!(p["study_title"], "Due");
    assert_eq!(p["recruit_closes_on"], "2027-02-01");
    assert_eq!(
        (
            p["member_count"].as_i64(),
            p["pending_applications"].as_i64()
        ),
        (Some(2), Some(1))
    );
    let n = next_of(&mut mws, "notification", Some("study_status_changed")).await;
    assert_eq!(n["notification"]["payload"]["status"], "in_progress");
    assert_eq!(inbox(&s, &leader, "recruitment_closed", due).await.len(), 1);
    assert_eq!(
        inbox(&s, &member, "study_status_changed", due).await.len(),
        1
    );
    assert!(
        inbox(&s, &applicant, "study_status_changed", due)
            .await
            .is_empty(),
        "an applicant is not a member"
    );

    // Again, at once and ten minutes later: nothing changes, nobody is told twice.
    for now in [now, at(2, 2, 0, 15)] {
        let r = run_once(Job::RecruitmentClose, &ctx(&s), now)
            .await
            .unwrap();
        assert_eq!(r.changed, 0, "{r:?}");
    }
    quiet(&mut lws).await;
    assert_eq!(inbox(&s, &leader, "recruitment_closed", due).await.len(), 1);
    assert_eq!(status_of(&s, due, &leader).await, "in_progress");

    // A leader who reopens recruitment keeps it open: the job closed this deadline already.
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{due}/status"),
        json!({ "status": "recruiting" }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r = run_once(Job::RecruitmentClose, &ctx(&s), at(2, 3, 0, 5))
        .await
        .unwrap();
    assert_eq!(r.changed, 1, "only the later study: {r:?}");
    assert_eq!(status_of(&s, due, &leader).await, "recruiting");
    assert_eq!(status_of(&s, later, &leader).await, "in_progress");
    // A new deadline that passes closes it again.
    let (st, body) = patch(
        &s,
        &format!("/api/studies/{due}"),
        json!({ "recruit_closes_on": "2027-02-10" }),
        &leader.cookie,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r = run_once(Job::RecruitmentClose, &ctx(&s), at(2, 10, 23, 59))
        .await
        .unwrap();
    assert_eq!(r.changed, 0, "the last recruiting day is not over: {r:?}");
    let r = run_once(Job::RecruitmentClose, &ctx(&s), at(2, 11, 0, 0))
        .await
        .unwrap();
    assert_eq!(r.changed, 1, "{r:?}");
    assert_eq!(status_of(&s, due, &leader).await, "in_progress");

    // Each run is recorded.
    let runs = s.state.store.job_runs().await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.job == "recruitment_close")
        .expect("recorded");
    let started = at(2, 11, 0, 0).timestamp_millis();
    assert_eq!(run.last_started_at, started);
    assert!(
        run.last_finished_at.is_some_and(|f| f >= started),
        "{run:?}"
    );
    assert_eq!(run.last_ok, Some(true));
    assert_eq!(run.last_detail, "closed recruitment of 1 studies");
    s.shutdown().await;
}
both_backends!(recruitment_closes_once_and_tells_the_leader);

async fn members_are_reminded_once_when_a_study_starts(b: &Backend) {
    let s = server(b).await;
    let [leader, ann, bob, gone, other] = signups(&s).await;
    let starts = create_study(
        &s,
        &leader.cookie,
        study("Starts", "2027-02-01", "2027-03-01"),
    )
    .await;
    let later = create_study(
        &s,
        &other.cookie,
        study("Later", "2027-02-01", "2027-03-05"),
    )
    .await;
    // Started long ago: past the grace period, it gets no reminder.
    let old = create_study(&s, &other.cookie, study("Old", "2026-12-31", "2027-01-01")).await;
    for who in [&ann, &bob, &gone] {
        join(&s, starts, who, &leader).await;
    }
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{starts}/leave"),
        json!({}),
        Some(&gone.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let mut aws = tab(&s, &ann).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let now = at(3, 1, 0, 10);
    let r = run_once(Job::StudyReminders, &ctx(&s), now).await.unwrap();
    assert_eq!(r.changed, 1, "{r:?}");
    let n = next_of(&mut aws, "notification", Some("study_starting")).await;
    let p = &n["notification"]["payload"];
    assert_eq!(
        (
            p["study_id"].as_i64(),
            p["study_title"].as_str(),
            p["starts_on"].as_str()
        ),
        (Some(starts), Some("Starts"), Some("2027-03-01"))
    );
    // Later that day: nothing new.
    let r = run_once(Job::StudyReminders, &ctx(&s), at(3, 1, 18, 0))
        .await
        .unwrap();
    assert_eq!(r.changed, 0, "{r:?}");
    quiet(&mut aws).await;
    // Every current member once (the leader too); whoever left, nothing.
    for who in [&leader, &ann, &bob] {
        assert_eq!(inbox(&s, who, "study_starting", starts).await.len(), 1);
    }
    assert!(inbox(&s, &gone, "study_starting", starts).await.is_empty());
    assert!(inbox(&s, &other, "study_starting", later).await.is_empty());

    // The later study on its day; the first is not reminded again; the old one never is.
    let r = run_once(Job::StudyReminders, &ctx(&s), at(3, 5, 0, 10))
        .await
        .unwrap();
    assert_eq!(r.changed, 1, "{r:?}");
    assert_eq!(inbox(&s, &other, "study_starting", later).await.len(), 1);
    assert_eq!(inbox(&s, &ann, "study_starting", starts).await.len(), 1);
    assert!(inbox(&s, &other, "study_starting", old).await.is_empty());

    let run = s
        .state
        .store
        .job_runs()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.job == "study_reminders")
        .expect("recorded");
    assert_eq!(
        (run.last_started_at, run.last_ok),
        (at(3, 5, 0, 10).timestamp_millis(), Some(true))
    );
    assert_eq!(run.last_detail, "reminded the members of 1 studies");
    s.shutdown().await;
}
both_backends!(members_are_reminded_once_when_a_study_starts);

/// The real scheduler: every enabled job runs at startup (the orphan sweep did before it
/// was a job), then on its schedule; a disabled one never runs; shutdown stops it.
async fn the_scheduler_runs_jobs_at_startup_and_on_schedule(b: &Backend) {
    let s = start(
        b,
        &[
            "--job-session-purge",
            "* * * * * *",
            "--job-recruitment-close",
            studyon::jobs::RECRUITMENT_CLOSE_DEFAULT,
            "--job-study-reminders=",
        ],
    )
    .await;
    let store = s.state.store.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let first_purge = loop {
        let runs = store.job_runs().await.unwrap();
        let done = |name: &str| {
            runs.iter()
                .find(|r| r.job == name && r.last_finished_at.is_some())
                .cloned()
        };
        if let (Some(_), Some(p), Some(_)) = (
            done("orphan_sweep"),
            done("session_purge"),
            done("recruitment_close"),
        ) {
            assert!(runs.iter().all(|r| r.last_ok == Some(true)), "{runs:?}");
            assert!(
                runs.iter().all(|r| r.job != "study_reminders"),
                "a disabled job ran: {runs:?}"
            );
            break p.last_started_at;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not run at startup: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every second, as configured.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = store.job_run("session_purge").await.unwrap().unwrap();
        if run.last_started_at > first_purge {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no scheduled run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopping = std::time::Instant::now();
    s.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(10));
}
both_backends!(the_scheduler_runs_jobs_at_startup_and_on_schedule);
