//! The store conformance suite: the same checks on SQLite and on Postgres, plus the test
//! that both dialects' migrations produce the same tables and columns.

use std::sync::Arc;

use studyon::ids::UserId;
use studyon::store::{Conflict, DurableWrite, NewSession, NewUser, Store, StoreError};

use crate::both_backends;
use crate::common::*;

async fn open(b: &Backend) -> Arc<dyn Store> {
    let store = studyon::store::open(&b.settings(&[]))
        .await
        .expect("open store");
    store.migrate().await.expect("migrate");
    // Applying migrations twice is a no-op.
    store.migrate().await.expect("migrate again");
    store
}

fn new_user(login: &str, name: &str) -> NewUser {
    NewUser {
        login_id: login.into(),
        display_name: name.into(),
        password_hash: "$argon2id$x".into(),
        now: 1_000,
    }
}

/// A recruiting study's fields, for tests that need a study row.
fn study_fields(title: &str) -> studyon::studies::rules::StudyFields {
    studyon::studies::rules::StudyFields {
        title: title.into(),
        description: String::new(),
        tags: vec![],
        capacity: 5,
        recruit_opens_on: "2026-11-01".into(),
        recruit_closes_on: "2026-12-31".into(),
        starts_on: "2027-01-01".into(),
        ends_on: "2027-02-01".into(),
    }
}

async fn users_and_conflicts(b: &Backend) {
    let st = open(b).await;
    let u = st.create_user(&new_user("alice", "Alice")).await.unwrap();
    assert_eq!(st.user(u.id).await.unwrap().unwrap(), u);
    let (found, hash) = st.user_credentials("alice").await.unwrap().unwrap();
    assert_eq!((found.id, hash.as_str()), (u.id, "$argon2id$x"));
    assert!(st.user_credentials("nobody").await.unwrap().is_none());
    assert!(st.user(UserId(u.id.0 + 1000)).await.unwrap().is_none());
    match st.create_user(&new_user("alice", "Someone")).await {
        Err(StoreError::Conflict(Conflict::LoginIdTaken)) => {}
        other => panic!("{other:?}"),
    }
    // Display names are unique ignoring case.
    match st.create_user(&new_user("alice2", "ALICE")).await {
        Err(StoreError::Conflict(Conflict::DisplayNameTaken)) => {}
        other => panic!("{other:?}"),
    }
    let k = st.create_user(&new_user("kim", "김철수")).await.unwrap();
    assert_eq!(st.user(k.id).await.unwrap().unwrap().display_name, "김철수");
    st.close().await;
}
both_backends!(users_and_conflicts);

async fn sessions(b: &Backend) {
    let st = open(b).await;
    let u = st.create_user(&new_user("sess", "Sess")).await.unwrap();
    let mk = |hash: u8, now: i64| NewSession {
        user_id: u.id,
        token_hash: vec![hash; 32],
        now,
        expires_at: now + 10_000,
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
    };
    let a = st.create_session(&mk(1, 1_000)).await.unwrap();
    let b2 = st.create_session(&mk(2, 1_000)).await.unwrap();
    let rec = st.session_by_token_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (
            rec.id,
            rec.user.id,
            rec.last_seen_at,
            rec.expires_at,
            rec.revoked_at
        ),
        (a, u.id, 1_000, 11_000, None)
    );
    st.touch_session(a, 5_000).await.unwrap();
    // Touching never moves last_seen backwards.
    st.touch_session(a, 2_000).await.unwrap();
    assert_eq!(
        st.session_by_token_hash(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        5_000
    );
    assert!(st.revoke_session(a, 6_000).await.unwrap());
    assert!(
        !st.revoke_session(a, 7_000).await.unwrap(),
        "second revoke is a no-op"
    );
    assert_eq!(
        st.session_by_token_hash(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(6_000)
    );
    // Purge: the revoked one goes; the live one (seen at 1000, idle cut at 500) stays.
    assert_eq!(st.purge_sessions(500, 2_000).await.unwrap(), 1);
    assert!(st.session_by_token_hash(&[1; 32]).await.unwrap().is_none());
    assert_eq!(
        st.session_by_token_hash(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .id,
        b2
    );
    // Past its absolute lifetime it goes too.
    assert_eq!(st.purge_sessions(500, 20_000).await.unwrap(), 1);
    // A colliding token is nobody's login id: a plain conflict (this was `login_id_taken`).
    st.create_session(&mk(3, 30_000)).await.unwrap();
    match st.create_session(&mk(3, 30_000)).await {
        Err(StoreError::Conflict(Conflict::Other)) => {}
        other => panic!("{other:?}"),
    }
    st.close().await;
}
both_backends!(sessions);

async fn batches_commit_all_or_nothing(b: &Backend) {
    let st = open(b).await;
    let u = st.create_user(&new_user("prefs", "Prefs")).await.unwrap();
    let w = |k: &str, v: &str| DurableWrite::UserPref {
        user_id: u.id,
        key: k.into(),
        value: v.into(),
        at: 1,
    };
    st.commit_batch(&[w("a", "1"), w("b", "2"), w("a", "3")])
        .await
        .unwrap();
    assert_eq!(
        st.user_prefs(u.id).await.unwrap(),
        vec![("a".into(), "3".into()), ("b".into(), "2".into())]
    );
    // A batch with a write for a missing user fails as a whole: "c" is not stored either.
    let bad = DurableWrite::UserPref {
        user_id: UserId(999_999),
        key: "x".into(),
        value: "y".into(),
        at: 1,
    };
    assert!(st.commit_batch(&[w("c", "4"), bad]).await.is_err());
    assert_eq!(st.user_prefs(u.id).await.unwrap().len(), 2);
    st.close().await;
}
both_backends!(batches_commit_all_or_nothing);

async fn persister_acks_after_commit_and_isolates_bad_writes(b: &Backend) {
    let st = open(b).await;
    let u = st.create_user(&new_user("gc", "GC")).await.unwrap();
    let u2 = st.create_user(&new_user("gc2", "GC2")).await.unwrap();
    let p = studyon::persist::Persister::start(st.clone(), 1024);
    // Two users, a hundred preferences each (the most one user keeps).
    let good = |i: i64| DurableWrite::UserPref {
        user_id: if i < 100 { u.id } else { u2.id },
        key: format!("k{i}"),
        value: format!("v{i}"),
        at: i,
    };
    let bad = DurableWrite::UserPref {
        user_id: UserId(424_242),
        key: "x".into(),
        value: "y".into(),
        at: 0,
    };
    // One poll of `join_all` queues every write before the persister runs (the test runtime
    // has one thread), so they all land in one batch, the bad one in the middle.
    let mut writes: Vec<DurableWrite> = (0..100).map(good).collect();
    writes.push(bad);
    writes.extend((100..200).map(good));
    let results = futures_util::future::join_all(writes.into_iter().map(|w| p.persist(w))).await;
    assert_eq!(
        p.batches_split(),
        1,
        "the bad write shared one batch with the good ones, which was then split"
    );
    for (i, r) in results.iter().enumerate() {
        if i == 100 {
            assert!(r.is_err(), "the bad write fails");
        } else {
            assert!(r.is_ok(), "good write {i} succeeds beside a bad one: {r:?}");
        }
    }
    assert_eq!(st.user_prefs(u.id).await.unwrap().len(), 100);
    assert_eq!(st.user_prefs(u2.id).await.unwrap().len(), 100);
    p.shutdown().await;
    let late = DurableWrite::UserPref {
        user_id: u.id,
        key: "late".into(),
        value: "v".into(),
        at: 0,
    };
    assert!(matches!(
        p.persist(late).await,
        Err(studyon::persist::PersistError::Closed)
    ));
    st.close().await;
}
both_backends!(persister_acks_after_commit_and_isolates_bad_writes);

#[actix_rt::test]
async fn both_dialects_have_the_same_tables_and_columns() {
    let s = Backend::new(Db::Sqlite).await;
    let p = Backend::new(Db::Postgres).await;
    let (ss, ps) = (open(&s).await, open(&p).await);
    let (a, b) = (ss.schema().await.unwrap(), ps.schema().await.unwrap());
    assert!(
        a.iter().any(|(t, c)| t == "users" && c == "login_id"),
        "{a:?}"
    );
    assert_eq!(a, b);
    ss.close().await;
    ps.close().await;
    p.drop_db().await;
}

/// The DM inbox in one query: newest conversation first, the other user, the last message,
/// and only the other side's messages past my read marker counted as unread.
async fn conversation_list(b: &Backend) {
    let st = open(b).await;
    let me = st.create_user(&new_user("me", "Me")).await.unwrap();
    let x = st.create_user(&new_user("xx", "X")).await.unwrap();
    let y = st.create_user(&new_user("yy", "Y")).await.unwrap();
    let dm = |with: UserId, seq: i64, from: UserId, at: i64| {
        let pair = studyon::chat::pair(me.id, with);
        DurableWrite::DirectMessages {
            pair,
            fence: None,
            messages: vec![studyon::chat::NewDirectMessage {
                seq,
                client_id: format!("c{seq}-{}", from.0),
                sender_id: from,
                body: format!("m{seq}"),
                at,
            }],
        }
    };
    st.commit_batch(&[
        dm(x.id, 1, x.id, 10),
        dm(x.id, 2, x.id, 11),
        dm(x.id, 3, me.id, 12),
        dm(y.id, 1, y.id, 20),
    ])
    .await
    .unwrap();
    st.commit_batch(&[DurableWrite::DirectRead {
        pair: studyon::chat::pair(me.id, x.id),
        reader: me.id,
        seq: 1,
    }])
    .await
    .unwrap();
    let list = st.conversations(me.id).await.unwrap();
    let got: Vec<(UserId, i64, i64, Option<String>)> = list
        .iter()
        .map(|c| {
            (
                c.user.id,
                c.last_seq,
                c.unread,
                c.last_message.as_ref().map(|m| m.body.clone()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (y.id, 1, 1, Some("m1".into())),
            // x sent 1 and 2, I read 1 and wrote 3: one unread.
            (x.id, 3, 1, Some("m3".into())),
        ]
    );
    assert_eq!(list[1].last_message.as_ref().unwrap().sender.id, me.id);
    // The other side's view counts my message.
    let theirs = st.conversations(x.id).await.unwrap();
    assert_eq!(
        (theirs.len(), theirs[0].user.id, theirs[0].unread),
        (1, me.id, 1)
    );
    // Both unique rules of a conversation (a taken seq, a stored client id) are named as a
    // duplicate message on both dialects.
    for write in [dm(x.id, 3, x.id, 13), {
        let mut w = dm(x.id, 4, x.id, 13);
        if let DurableWrite::DirectMessages { messages, .. } = &mut w {
            messages[0].client_id = "c2-".to_string() + &x.id.0.to_string();
        }
        w
    }] {
        match st.commit_batch(&[write]).await {
            Err(StoreError::Rule(studyon::store::Rule::DuplicateMessage)) => {}
            other => panic!("{other:?}"),
        }
    }
    st.close().await;
}
both_backends!(conversation_list);

/// A withdrawal racing a decision: the decision commits after the withdrawal read the
/// application as pending. The withdrawal must fail and leave the decision standing (on
/// Postgres its UPDATE re-reads the row after the decision's commit; on SQLite the write
/// lock orders them).
async fn a_withdrawal_never_overwrites_a_decision(b: &Backend) {
    use sqlx::Connection;
    let st = open(b).await;
    let leader = st.create_user(&new_user("wl", "WL")).await.unwrap();
    let applicant = st.create_user(&new_user("wa", "WA")).await.unwrap();
    let fields = study_fields("race");
    let study = st.create_study(leader.id, &fields, 1).await.unwrap();
    let (app, _) = st.apply(study, applicant.id, "hi", 2).await.unwrap();
    let decide = "UPDATE applications SET status = 'accepted', decided_at = 3 WHERE id = $1";
    let status = "SELECT status FROM applications WHERE id = $1";
    let withdraw = {
        let st = st.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            st.withdraw(study, app.id, applicant.id, 4).await
        }
    };
    let (withdrawn, now) = match b.db {
        Db::Postgres => {
            let mut c = sqlx::PgConnection::connect(&b.database_url).await.unwrap();
            let mut tx = c.begin().await.unwrap();
            sqlx::query(decide)
                .bind(app.id.0)
                .execute(&mut *tx)
                .await
                .unwrap();
            let pending = tokio::spawn(withdraw);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            tx.commit().await.unwrap();
            let r = pending.await.unwrap();
            let (s,): (String,) = sqlx::query_as(status)
                .bind(app.id.0)
                .fetch_one(&mut c)
                .await
                .unwrap();
            (r, s)
        }
        Db::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&b.database_url)
                .await
                .unwrap();
            let mut tx = c.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query(decide)
                .bind(app.id.0)
                .execute(&mut *tx)
                .await
                .unwrap();
            let pending = tokio::spawn(withdraw);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            tx.commit().await.unwrap();
            let r = pending.await.unwrap();
            let (s,): (String,) = sqlx::query_as(status)
                .bind(app.id.0)
                .fetch_one(&mut c)
                .await
                .unwrap();
            (r, s)
        }
    };
    assert!(
        matches!(
            withdrawn,
            Err(StoreError::Rule(
                studyon::store::Rule::ApplicationNotPending
            ))
        ),
        "{withdrawn:?}"
    );
    assert_eq!(now, "accepted", "the decision stands");
    st.close().await;
}
both_backends!(a_withdrawal_never_overwrites_a_decision);

/// The fence: once a newer owner raised a key's fence, an older owner's single-owner write
/// is refused and stores nothing, and an older raise is refused too; the newer owner writes.
/// A collapse key remembers when it last notified anyone: a fresh notice, a refreshed
/// unread one, and one after the earlier was read all count; other keys do not.
async fn a_collapse_key_remembers_its_last_notice(b: &Backend) {
    use studyon::studies::NewNotification;
    let st = open(b).await;
    let u1 = st
        .create_user(&new_user("note1", "Note One"))
        .await
        .unwrap();
    let u2 = st
        .create_user(&new_user("note2", "Note Two"))
        .await
        .unwrap();
    let note = |user: UserId, key: &str| NewNotification {
        user_id: user,
        kind: "call_started",
        payload: serde_json::json!({}),
        collapse_key: Some(key.to_string()),
    };
    assert_eq!(st.last_collapsed_at("k").await.unwrap(), None);
    st.insert_notifications(&[note(u1.id, "k"), note(u2.id, "k")], 1_000)
        .await
        .unwrap();
    assert_eq!(st.last_collapsed_at("k").await.unwrap(), Some(1_000));
    assert_eq!(st.last_collapsed_at("other").await.unwrap(), None);
    st.mark_all_read(u1.id, 1_500).await.unwrap();
    st.insert_notifications(&[note(u1.id, "k")], 2_000)
        .await
        .unwrap();
    assert_eq!(st.last_collapsed_at("k").await.unwrap(), Some(2_000));
    // u2's unread one is refreshed in place.
    st.insert_notifications(&[note(u2.id, "k")], 3_000)
        .await
        .unwrap();
    assert_eq!(st.last_collapsed_at("k").await.unwrap(), Some(3_000));
    st.insert_notifications(&[note(u2.id, "other")], 4_000)
        .await
        .unwrap();
    assert_eq!(st.last_collapsed_at("k").await.unwrap(), Some(3_000));
    st.close().await;
}
both_backends!(a_collapse_key_remembers_its_last_notice);

/// A call's saved moderation is one row per study: written, replaced, read with its stamp,
/// deleted.
async fn video_moderation_is_kept_per_study(b: &Backend) {
    let st = open(b).await;
    let leader = st.create_user(&new_user("vm", "VM")).await.unwrap();
    let fields = study_fields("call");
    let study = st.create_study(leader.id, &fields, 1).await.unwrap();
    let other = st.create_study(leader.id, &fields, 1).await.unwrap();
    assert_eq!(st.video_moderation(study).await.unwrap(), None);
    st.set_video_moderation(study, Some("{\"a\":1}"), 10)
        .await
        .unwrap();
    st.set_video_moderation(study, Some("{\"a\":2}"), 20)
        .await
        .unwrap();
    st.set_video_moderation(other, Some("{}"), 30)
        .await
        .unwrap();
    assert_eq!(
        st.video_moderation(study).await.unwrap(),
        Some(("{\"a\":2}".to_string(), 20))
    );
    st.set_video_moderation(study, None, 40).await.unwrap();
    assert_eq!(st.video_moderation(study).await.unwrap(), None);
    assert_eq!(
        st.video_moderation(other).await.unwrap(),
        Some(("{}".to_string(), 30))
    );
    // Deleting a row that is not there is no error.
    st.set_video_moderation(study, None, 50).await.unwrap();
    st.close().await;
}
both_backends!(video_moderation_is_kept_per_study);

async fn an_older_owner_is_fenced_out(b: &Backend) {
    let st = open(b).await;
    let me = st.create_user(&new_user("fence_a", "A")).await.unwrap();
    let you = st.create_user(&new_user("fence_b", "B")).await.unwrap();
    let pair = studyon::chat::pair(me.id, you.id);
    let fence = |token: i64| studyon::store::Fence {
        key: "direct_chat:1-2".into(),
        token,
    };
    let write = |seq: i64, token: i64| DurableWrite::DirectMessages {
        pair,
        fence: Some(fence(token)),
        messages: vec![studyon::chat::NewDirectMessage {
            seq,
            client_id: format!("c{seq}"),
            sender_id: me.id,
            body: format!("m{seq}"),
            at: seq,
        }],
    };
    st.raise_fence(&fence(10)).await.unwrap();
    st.commit_batch(&[write(1, 10)]).await.unwrap();
    // A new owner takes over.
    st.raise_fence(&fence(20)).await.unwrap();
    let old = st.commit_batch(&[write(2, 10)]).await.unwrap_err();
    assert!(
        matches!(old, StoreError::Rule(studyon::store::Rule::Fenced)),
        "{old:?}"
    );
    assert!(matches!(
        st.raise_fence(&fence(15)).await.unwrap_err(),
        StoreError::Rule(studyon::store::Rule::Fenced)
    ));
    st.commit_batch(&[write(2, 20)]).await.unwrap();
    let (last, _, _) = st.direct_state(pair).await.unwrap();
    assert_eq!(
        last, 2,
        "the old owner's seq 2 was not stored; the new owner's was"
    );
}
both_backends!(an_older_owner_is_fenced_out);
