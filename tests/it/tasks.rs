//! Tasks and posts end to end over HTTP and the socket, on SQLite and Postgres.

use std::time::Duration;

use serde_json::{Value, json};
use studyon::server::RunningServer;

use crate::both_backends;
use crate::common::*;
use crate::studies::{apply, create_study, decide, patch, study_body};

fn uid(s: &Session) -> i64 {
    s.user["id"].as_i64().unwrap()
}

/// A study led by the first session with the others as members.
pub async fn study_with_members(s: &impl Target, leader: &Session, members: &[&Session]) -> i64 {
    let id = create_study(s, &leader.cookie, study_body("Work", &[], 10, "2027-02-01")).await;
    for m in members {
        let app = apply(s, id, m).await;
        let (st, d) = decide(s, id, app, true, leader).await;
        assert_eq!(st, 200, "{d}");
    }
    id
}

pub async fn new_task(s: &RunningServer, study: i64, who: &Session, body: Value) -> Value {
    let (st, t, _) = post(
        s,
        &format!("/api/studies/{study}/tasks"),
        body,
        Some(&who.cookie),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    t["task"].clone()
}

pub async fn new_post(
    s: &RunningServer,
    study: i64,
    task: i64,
    who: &Session,
    title: &str,
    body: &str,
) -> Value {
    let (st, p, _) = post(
        s,
        &format!("/api/studies/{study}/tasks/{task}/posts"),
        json!({ "title": title, "body": body }),
        Some(&who.cookie),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    p["post"].clone()
}

fn titles(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect()
}

async fn tasks_board_filters_and_edits(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member, outsider, bystander] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&member, &bystander]).await;
    let base = format!("/api/studies/{id}/tasks");

    new_task(&s, id, &member, json!({ "title": "undated" })).await;
    let late = new_task(
        &s,
        id,
        &member,
        json!({ "title": "late", "due_on": "2026-12-20" }),
    )
    .await;
    let soon = new_task(
        &s,
        id,
        &leader,
        json!({ "title": "soon", "description": "**읽기** <script>x</script>", "due_on": "2026-12-01", "assignee_id": uid(&member) }),
    )
    .await;
    assert_eq!(soon["assignee"]["id"], uid(&member));
    assert_eq!(soon["status"], "open");
    assert_eq!(soon["description_html"], "<p><strong>읽기</strong> </p>\n");

    // Ordered by due date, undated last.
    let (st, all) = get(&s, &base, Some(&member.cookie)).await;
    assert_eq!(st, 200);
    assert_eq!(titles(&all), ["soon", "late", "undated"]);
    let (_, mine) = get(&s, &format!("{base}?filter=mine"), Some(&member.cookie)).await;
    assert_eq!(titles(&mine), ["soon"]);
    let (_, mine) = get(&s, &format!("{base}?filter=mine"), Some(&leader.cookie)).await;
    assert_eq!(titles(&mine), Vec::<String>::new());

    // Complete, then reopen: completed_at follows.
    let soon_path = format!("{base}/{}", soon["id"]);
    let (st, done) = patch(&s, &soon_path, json!({ "status": "done" }), &leader.cookie).await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["task"]["status"], "done");
    assert!(done["task"]["completed_at"].is_i64());
    assert_eq!(
        done["task"]["due_on"], "2026-12-01",
        "absent fields are kept"
    );
    let (_, open) = get(&s, &format!("{base}?filter=open"), Some(&member.cookie)).await;
    assert_eq!(titles(&open), ["late", "undated"]);
    let (_, dn) = get(&s, &format!("{base}?filter=done"), Some(&member.cookie)).await;
    assert_eq!(titles(&dn), ["soon"]);
    let (_, re) = patch(
        &s,
        &soon_path,
        json!({ "status": "open", "due_on": null, "assignee_id": null }),
        &member.cookie,
    )
    .await;
    assert_eq!(re["task"]["status"], "open");
    assert!(re["task"]["completed_at"].is_null());
    assert!(re["task"]["due_on"].is_null());
    assert!(re["task"]["assignee"].is_null());

    // Bad input: a clear code and nothing changed.
    let before = get(&s, &base, Some(&member.cookie)).await.1;
    for (body, field) in [
        (json!({ "title": "" }), "title"),
        (json!({ "due_on": "2026-02-30" }), "due_on"),
        (json!({ "status": "archived" }), "status"),
        (json!({ "assignee_id": uid(&outsider) }), "assignee_id"),
    ] {
        let (st, e) = patch(
            &s,
            &format!("{base}/{}", late["id"]),
            body.clone(),
            &member.cookie,
        )
        .await;
        assert_eq!(
            (st, e["error"].as_str(), e["field"].as_str()),
            (400, Some("validation_failed"), Some(field)),
            "{body}"
        );
    }
    let (st, e, _) = post(
        &s,
        &base,
        json!({ "title": "x", "assignee_id": uid(&outsider) }),
        Some(&member.cookie),
    )
    .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("assignee_id")));
    let (st, e, _) = post(
        &s,
        &base,
        json!({ "title": "x", "extra": 1 }),
        Some(&member.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("malformed_json")));
    let (st, _) = get(&s, &format!("{base}?filter=someone"), Some(&member.cookie)).await;
    assert_eq!(st, 400);
    assert_eq!(get(&s, &base, Some(&member.cookie)).await.1, before);

    // Outsiders and ids from another study see nothing and change nothing.
    assert_eq!(get(&s, &base, Some(&outsider.cookie)).await.0, 404);
    let other = create_study(
        &s,
        &outsider.cookie,
        study_body("Other", &[], 5, "2027-02-01"),
    )
    .await;
    let other_path = format!("/api/studies/{other}/tasks/{}", late["id"]);
    assert_eq!(get(&s, &other_path, Some(&outsider.cookie)).await.0, 404);
    assert_eq!(
        patch(
            &s,
            &other_path,
            json!({ "title": "hijack" }),
            &outsider.cookie
        )
        .await
        .0,
        404
    );
    assert_eq!(delete(&s, &other_path, Some(&outsider.cookie)).await.0, 404);
    assert_eq!(get(&s, &base, Some(&member.cookie)).await.1, before);

    // Deleting is for the task's creator and the leader: another member is refused.
    let (st, e) = delete(
        &s,
        &format!("{base}/{}", late["id"]),
        Some(&bystander.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_creator")), "{e}");
    let extra = new_task(&s, id, &member, json!({ "title": "extra" })).await;
    assert_eq!(
        delete(&s, &format!("{base}/{}", extra["id"]), Some(&leader.cookie))
            .await
            .0,
        204,
        "the leader deletes a member's task"
    );
    // The creator deletes.
    assert_eq!(
        delete(&s, &format!("{base}/{}", late["id"]), Some(&member.cookie))
            .await
            .0,
        204
    );
    let (_, after) = get(&s, &base, Some(&member.cookie)).await;
    // Both undated now (the reopen cleared "soon"'s date): by id.
    assert_eq!(titles(&after), ["undated", "soon"]);
    assert_eq!(
        get(&s, &format!("{base}/{}", late["id"]), Some(&member.cookie))
            .await
            .0,
        404
    );
    s.shutdown().await;
}
both_backends!(tasks_board_filters_and_edits);

/// A member who leaves or is removed gives back their open tasks (an assignee must be a
/// member); the tasks they finished keep their name.
async fn leaving_unassigns_open_tasks(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, quitter, removed] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&quitter, &removed]).await;
    let mut open = Vec::new();
    for who in [&quitter, &removed] {
        open.push(
            new_task(
                &s,
                id,
                &leader,
                json!({ "title": "open", "assignee_id": uid(who) }),
            )
            .await,
        );
        new_task(
            &s,
            id,
            &leader,
            json!({ "title": "done", "assignee_id": uid(who), "status": "done" }),
        )
        .await;
    }
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/leave"),
        json!({}),
        Some(&quitter.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/members/{}/remove", uid(&removed)),
        json!({ "ban": false }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (_, board) = get(
        &s,
        &format!("/api/studies/{id}/tasks"),
        Some(&leader.cookie),
    )
    .await;
    let assignees: Vec<(String, Value)> = board["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["title"].as_str().unwrap().to_string(),
                t["assignee"]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        assignees,
        [
            ("open".to_string(), Value::Null),
            ("done".to_string(), json!(uid(&quitter))),
            ("open".to_string(), Value::Null),
            ("done".to_string(), json!(uid(&removed))),
        ]
    );
    s.shutdown().await;
}
both_backends!(leaving_unassigns_open_tasks);

async fn posts_search_paging_and_authorship(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, alice, bob] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&alice, &bob]).await;
    let task = new_task(&s, id, &alice, json!({ "title": "chapter 3" })).await;
    let tid = task["id"].as_i64().unwrap();
    let list = format!("/api/studies/{id}/tasks/{tid}/posts");
    let mut made = Vec::new();
    for i in 0..23 {
        let title = match i % 3 {
            0 => format!("Rust 정리 {i}"),
            1 => format!("알고리즘 노트 {i}"),
            _ => format!("misc_{i}%"),
        };
        made.push(
            new_post(&s, id, tid, &alice, &title, "body").await["id"]
                .as_i64()
                .unwrap(),
        );
    }

    // Keyset pages, newest first: no repeats, no gaps.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, page) = get(
            &s,
            &format!("{list}?limit=10&cursor={cursor}"),
            Some(&bob.cookie),
        )
        .await;
        assert_eq!(st, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made);

    // Title search: any case, Korean, and LIKE metacharacters taken literally.
    let search = |q: &str| {
        format!(
            "{list}?q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        )
    };
    let (_, r) = get(&s, &search("RUST"), Some(&bob.cookie)).await;
    assert_eq!(r["items"].as_array().unwrap().len(), 8);
    let (_, r) = get(&s, &search("노트"), Some(&bob.cookie)).await;
    assert_eq!(r["items"].as_array().unwrap().len(), 8);
    let (_, r) = get(&s, &search("%"), Some(&bob.cookie)).await;
    assert_eq!(
        r["items"].as_array().unwrap().len(),
        7,
        "only titles with a literal %"
    );
    // `_` is no wildcard: "_1" must not match "정리 12".
    let (_, r) = get(&s, &search("_1"), Some(&bob.cookie)).await;
    assert_eq!(titles(&r), ["misc_17%", "misc_14%", "misc_11%"]);

    // Rendered markdown: highlighted code, inert scripts.
    let p = new_post(
        &s,
        id,
        tid,
        &alice,
        "code",
        "```python\ndef f(): return 1\n```\n<img src=x onerror=alert(1)>",
    )
    .await;
    let html = p["body_html"].as_str().unwrap();
    assert!(
        html.contains("<pre class=\"hl-code\"><code class=\"language-python\">"),
        "{html}"
    );
    assert!(html.contains("hl-keyword"), "{html}");
    assert!(!html.contains("onerror"), "{html}");

    // The longest body fits in a request even in Korean (3 bytes a character); one more
    // character is a validation error, not a transport one.
    let long = "가".repeat(100_000);
    let p_long = new_post(&s, id, tid, &alice, "long", &long).await;
    assert_eq!(p_long["body"].as_str().unwrap().chars().count(), 100_000);
    let (st, e, _) = post(
        &s,
        &list,
        json!({ "title": "too long", "body": format!("{long}가") }),
        Some(&alice.cookie),
    )
    .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("body")));

    // Only the author edits; the author or the leader deletes.
    let path = format!("/api/studies/{id}/posts/{}", p["id"]);
    let (st, e) = patch(&s, &path, json!({ "title": "mine now" }), &bob.cookie).await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_author")));
    let (st, e) = patch(&s, &path, json!({ "title": "mine now" }), &leader.cookie).await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_author")));
    let (st, e) = patch(&s, &path, json!({ "body": "`x`" }), &alice.cookie).await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["post"]["title"], "code");
    assert_eq!(e["post"]["body_html"], "<p><code>x</code></p>\n");
    let (st, e) = delete(&s, &path, Some(&bob.cookie)).await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_author")));
    assert_eq!(get(&s, &path, Some(&bob.cookie)).await.0, 200);
    assert_eq!(delete(&s, &path, Some(&leader.cookie)).await.0, 204);
    assert_eq!(get(&s, &path, Some(&bob.cookie)).await.0, 404);
    let other = format!("/api/studies/{id}/posts/{}", made[0]);
    assert_eq!(delete(&s, &other, Some(&alice.cookie)).await.0, 204);

    // A post id under another study, or a task of another study, is not found.
    let elsewhere = create_study(&s, &bob.cookie, study_body("B's", &[], 5, "2027-02-01")).await;
    let (st, _) = get(
        &s,
        &format!("/api/studies/{elsewhere}/posts/{}", made[1]),
        Some(&bob.cookie),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{elsewhere}/tasks/{tid}/posts"),
        json!({ "title": "t", "body": "" }),
        Some(&bob.cookie),
    )
    .await;
    assert_eq!(st, 404);

    // Deleting the task (the leader may) takes its posts.
    assert_eq!(
        delete(
            &s,
            &format!("/api/studies/{id}/tasks/{tid}"),
            Some(&leader.cookie)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        get(
            &s,
            &format!("/api/studies/{id}/posts/{}", made[1]),
            Some(&alice.cookie)
        )
        .await
        .0,
        404
    );
    s.shutdown().await;
}
both_backends!(posts_search_paging_and_authorship);

/// Task and post changes reach members watching the study, not other watchers.
async fn changes_are_pushed_to_member_watchers_only(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member, outsider] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&member]).await;
    let mut watch = Vec::new();
    for who in [&member, &outsider] {
        let mut c = ws_connect(&s, &who.cookie).await;
        hello(&mut c).await;
        send_text(
            &mut c,
            json!({ "type": "study.watch", "id": "w", "study_id": id }).to_string(),
        )
        .await;
        assert_eq!(next_json(&mut c).await, json!({ "type": "ack", "id": "w" }));
        watch.push(c);
    }
    let task = new_task(&s, id, &leader, json!({ "title": "live one" })).await;
    let p = new_post(&s, id, task["id"].as_i64().unwrap(), &leader, "first", "hi").await;
    patch(
        &s,
        &format!("/api/studies/{id}/tasks/{}", task["id"]),
        json!({ "status": "done" }),
        &leader.cookie,
    )
    .await;
    delete(
        &s,
        &format!("/api/studies/{id}/posts/{}", p["id"]),
        Some(&leader.cookie),
    )
    .await;

    let mut kinds = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..6 {
        let f = next_json(&mut watch[0]).await;
        assert_eq!(f["type"], "study.event", "{f}");
        kinds.push(f["event"]["kind"].as_str().unwrap().to_string());
        match f["event"]["kind"].as_str().unwrap() {
            "task_created" => assert_eq!(f["event"]["task"]["title"], "live one"),
            "post_created" => assert_eq!(f["event"]["post"]["title"], "first"),
            "task_updated" => counts.push((
                f["event"]["task"]["post_count"].as_i64().unwrap(),
                f["event"]["task"]["status"].as_str().unwrap().to_string(),
            )),
            "post_deleted" => assert_eq!(f["event"]["post_id"], p["id"]),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        kinds,
        [
            "task_created",
            "post_created",
            "task_updated",
            "task_updated",
            "post_deleted",
            "task_updated"
        ]
    );
    // The post count follows posts; the status follows the edit.
    assert_eq!(
        counts,
        [
            (1, "open".to_string()),
            (1, "done".to_string()),
            (0, "done".to_string())
        ]
    );
    // The outsider watching the public study page hears none of it.
    let quiet = tokio::time::timeout(Duration::from_millis(400), next_json(&mut watch[1])).await;
    assert!(quiet.is_err(), "an outsider got {quiet:?}");
    s.shutdown().await;
}
both_backends!(changes_are_pushed_to_member_watchers_only);

/// Deleting a study ends every watch of it: the watchers are told, and the socket's watch
/// slot (16 per socket) is free again.
async fn deleting_a_study_ends_its_watches(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member] = signups(&s).await;
    let doomed = study_with_members(&s, &leader, &[&member]).await;
    let mut c = ws_connect(&s, &member.cookie).await;
    hello(&mut c).await;
    let watch = |id: i64| json!({ "type": "study.watch", "id": id, "study_id": id }).to_string();
    send_text(&mut c, watch(doomed)).await;
    assert_eq!(next_json(&mut c).await["type"], "ack");
    let mut others = Vec::new();
    for _ in 0..16 {
        others.push(
            create_study(
                &s,
                &leader.cookie,
                study_body("Other", &[], 5, "2027-02-01"),
            )
            .await,
        );
    }
    for id in &others[..15] {
        send_text(&mut c, watch(*id)).await;
        assert_eq!(next_json(&mut c).await["type"], "ack");
    }
    // All 16 slots are taken.
    send_text(&mut c, watch(others[15])).await;
    assert_eq!(next_json(&mut c).await["error"], "validation_failed");

    assert_eq!(
        delete(&s, &format!("/api/studies/{doomed}"), Some(&leader.cookie))
            .await
            .0,
        204
    );
    let f = next_json(&mut c).await;
    assert_eq!(
        (f["type"].as_str(), f["event"]["kind"].as_str()),
        (Some("study.event"), Some("deleted"))
    );
    // The deleted study's slot is free.
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_text(&mut c, watch(others[15])).await;
    assert_eq!(
        next_json(&mut c).await,
        json!({ "type": "ack", "id": others[15] })
    );
    s.shutdown().await;
}
both_backends!(deleting_a_study_ends_its_watches);

/// Four edits of one task, each naming a different field, sent at once: every change is
/// kept (a read-apply-write without the version check loses all but the last), and a
/// member watching sees the task's versions only go up, ending at the stored state.
async fn concurrent_edits_merge_and_arrive_in_order(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&member]).await;
    let mut c = ws_connect(&s, &member.cookie).await;
    hello(&mut c).await;
    send_text(
        &mut c,
        json!({ "type": "study.watch", "id": "w", "study_id": id }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut c).await, json!({ "type": "ack", "id": "w" }));
    let edits = [
        json!({ "status": "done" }),
        json!({ "title": "renamed" }),
        json!({ "due_on": "2027-03-01" }),
        json!({ "description": "now described" }),
    ];
    for round in 0..3 {
        let task = new_task(&s, id, &leader, json!({ "title": format!("t{round}") })).await;
        let tid = task["id"].as_i64().unwrap();
        assert_eq!(task["version"], 1);
        let path = format!("/api/studies/{id}/tasks/{tid}");
        let who = [&leader, &member, &leader, &member];
        let answers = futures_util::future::join_all(
            edits
                .iter()
                .zip(who)
                .map(|(e, w)| patch(&s, &path, e.clone(), &w.cookie)),
        )
        .await;
        for (st, body) in &answers {
            assert_eq!(*st, 200, "{body}");
        }
        let (st, now) = get(&s, &path, Some(&leader.cookie)).await;
        assert_eq!(st, 200);
        let t = &now["task"];
        assert_eq!(
            (&t["status"], &t["title"], &t["due_on"], &t["description"]),
            (
                &json!("done"),
                &json!("renamed"),
                &json!("2027-03-01"),
                &json!("now described")
            ),
            "round {round}: an edit was lost: {t}"
        );
        assert_eq!(t["version"], 5, "one version per edit");

        // The watcher: task_created, then updates with rising versions up to the last.
        let created = next_json(&mut c).await;
        assert_eq!(created["event"]["kind"], "task_created", "{created}");
        let mut last = 1;
        while last < 5 {
            let f = next_json(&mut c).await;
            assert_eq!(f["event"]["kind"], "task_updated", "{f}");
            let v = f["event"]["task"]["version"].as_i64().unwrap();
            assert!(v > last, "version {v} after {last}");
            last = v;
            if v == 5 {
                assert_eq!(
                    &f["event"]["task"], t,
                    "the last event shows the stored task"
                );
            }
        }
    }
    s.shutdown().await;
}
both_backends!(concurrent_edits_merge_and_arrive_in_order);

/// A PATCH that must succeed; its answer.
async fn patched(s: &RunningServer, path: &str, body: Value, who: &Session) -> Value {
    let (st, a) = patch(s, path, body, &who.cookie).await;
    assert_eq!(st, 200, "{a}");
    a
}

/// A PATCH that must answer 409 `edit_conflict`.
async fn refused_as_stale(s: &RunningServer, path: &str, body: Value, who: &Session) {
    let (st, e) = patch(s, path, body, &who.cookie).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (409, Some("edit_conflict")),
        "{e}"
    );
}

/// An edit that names the version it was based on is refused once the item has moved on:
/// 409 `edit_conflict`, nothing written. Post and task counts move versions too.
async fn stale_versions_are_refused(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, member] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&member]).await;
    let task = new_task(&s, id, &leader, json!({ "title": "base" })).await;
    let tid = task["id"].as_i64().unwrap();
    let tpath = format!("/api/studies/{id}/tasks/{tid}");

    let a = patched(
        &s,
        &tpath,
        json!({ "version": 1, "title": "first" }),
        &leader,
    )
    .await;
    assert_eq!(a["task"]["version"], 2, "{a}");
    refused_as_stale(
        &s,
        &tpath,
        json!({ "version": 1, "title": "second" }),
        &member,
    )
    .await;
    let (_, now) = get(&s, &tpath, Some(&leader.cookie)).await;
    assert_eq!(
        (&now["task"]["title"], &now["task"]["version"]),
        (&json!("first"), &json!(2))
    );

    // A new post changes the task's post count, so the task's version moves.
    let p = new_post(&s, id, tid, &member, "p", "body").await;
    let pid = p["id"].as_i64().unwrap();
    let (_, now) = get(&s, &tpath, Some(&leader.cookie)).await;
    assert_eq!(
        (&now["task"]["post_count"], &now["task"]["version"]),
        (&json!(1), &json!(3))
    );
    refused_as_stale(
        &s,
        &tpath,
        json!({ "version": 2, "status": "done" }),
        &leader,
    )
    .await;

    let ppath = format!("/api/studies/{id}/posts/{pid}");
    let a = patched(
        &s,
        &ppath,
        json!({ "version": 1, "body": "edited" }),
        &member,
    )
    .await;
    assert_eq!(a["post"]["version"], 2, "{a}");
    refused_as_stale(
        &s,
        &ppath,
        json!({ "version": 1, "title": "clobber" }),
        &member,
    )
    .await;
    // Without a version the edit applies to what is current and keeps the other field.
    let a = patched(&s, &ppath, json!({ "title": "retitled" }), &member).await;
    assert_eq!(
        (
            &a["post"]["title"],
            &a["post"]["body"],
            &a["post"]["version"]
        ),
        (&json!("retitled"), &json!("edited"), &json!(3))
    );
    s.shutdown().await;
}
both_backends!(stale_versions_are_refused);

/// The `Study` actor forwards a task event only if it is newer than what went out: an older
/// state announced late (an edit's announcement overtaken by a later edit's) is dropped,
/// and so is an update announced after the task's deletion.
async fn the_study_actor_drops_older_and_posthumous_events(b: &Backend) {
    use studyon::ids::{StudyId, TaskId};
    use studyon::live::study::{Study, StudyEvent, StudyMsg};
    use studyon::tasks::order::{Item, Step};

    let s = start(b, &[]).await;
    let [leader, member] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&member]).await;
    let mut c = ws_connect(&s, &member.cookie).await;
    hello(&mut c).await;
    send_text(
        &mut c,
        json!({ "type": "study.watch", "id": "w", "study_id": id }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut c).await, json!({ "type": "ack", "id": "w" }));
    let task = new_task(&s, id, &leader, json!({ "title": "v1" })).await;
    let tid = task["id"].as_i64().unwrap();
    let path = format!("/api/studies/{id}/tasks/{tid}");
    assert_eq!(
        patch(&s, &path, json!({ "title": "v2" }), &leader.cookie)
            .await
            .0,
        200
    );
    assert_eq!(next_json(&mut c).await["event"]["task"]["version"], 1);
    assert_eq!(next_json(&mut c).await["event"]["task"]["version"], 2);

    let late = |title: &str, version: i64| {
        let mut task: studyon::tasks::Task = serde_json::from_value(task.clone()).unwrap();
        task.title = title.into();
        task.version = version;
        StudyMsg::AnnounceToMembers {
            event: StudyEvent::TaskUpdated { task },
            order: Some((Item::Task(TaskId(tid)), Step::At(version))),
        }
    };
    let registry = &s.state.registry;
    assert!(
        registry
            .tell_if_running::<Study>(StudyId(id), late("stale", 1))
            .await
            .unwrap()
    );
    assert_eq!(
        patch(&s, &path, json!({ "title": "v3" }), &leader.cookie)
            .await
            .0,
        200
    );
    let f = next_json(&mut c).await;
    assert_eq!(
        f["event"]["task"]["title"], "v3",
        "the stale v1 went out: {f}"
    );

    assert_eq!(delete(&s, &path, Some(&leader.cookie)).await.0, 204);
    assert_eq!(next_json(&mut c).await["event"]["kind"], "task_deleted");
    assert!(
        registry
            .tell_if_running::<Study>(StudyId(id), late("ghost", 9))
            .await
            .unwrap()
    );
    // Something after it, so the test need not wait on silence.
    new_task(&s, id, &leader, json!({ "title": "next" })).await;
    let f = next_json(&mut c).await;
    assert_eq!(
        (
            f["event"]["kind"].as_str(),
            f["event"]["task"]["title"].as_str()
        ),
        (Some("task_created"), Some("next")),
        "an update after the deletion went out: {f}"
    );
    s.shutdown().await;
}
both_backends!(the_study_actor_drops_older_and_posthumous_events);

/// The home page's list: my open tasks across my studies, soonest due first (undated last),
/// with each study's title; not done ones, not someone else's, and not those of a study I
/// have left.
async fn my_open_tasks_across_studies(b: &Backend) {
    let s = start(b, &[]).await;
    let [me, lead_a, lead_b] = signups(&s).await;
    let a = study_with_members(&s, &lead_a, &[&me]).await;
    let b_id = study_with_members(&s, &lead_b, &[&me]).await;
    let (st, _) = patch(
        &s,
        &format!("/api/studies/{b_id}"),
        json!({ "title": "알고리즘" }),
        &lead_b.cookie,
    )
    .await;
    assert_eq!(st, 200);
    let mine = |title: &str, due: Option<&str>| json!({ "title": title, "assignee_id": uid(&me), "due_on": due });
    new_task(&s, a, &lead_a, mine("undated", None)).await;
    new_task(&s, b_id, &lead_b, mine("soon", Some("2027-01-05"))).await;
    new_task(&s, a, &lead_a, mine("sooner", Some("2027-01-02"))).await;
    let done = new_task(&s, a, &lead_a, mine("finished", Some("2027-01-01"))).await;
    patch(
        &s,
        &format!("/api/studies/{a}/tasks/{}", done["id"]),
        json!({ "status": "done" }),
        &lead_a.cookie,
    )
    .await;
    new_task(
        &s,
        a,
        &lead_a,
        json!({ "title": "the leader's", "assignee_id": uid(&lead_a) }),
    )
    .await;

    let list = |who: &Session| {
        let cookie = who.cookie.clone();
        let s = &s;
        async move {
            let (st, v) = get(s, "/api/me/tasks", Some(&cookie)).await;
            assert_eq!(st, 200, "{v}");
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["title"].as_str().unwrap().to_string(),
                        t["study_title"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let (ta, tb) = ("Work".to_string(), "알고리즘".to_string());
    assert_eq!(
        list(&me).await,
        [
            ("sooner".to_string(), ta.clone()),
            ("soon".to_string(), tb),
            ("undated".to_string(), ta)
        ]
    );
    // Leaving study b takes its tasks off the list (and gives them back to the pool).
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{b_id}/leave"),
        json!({}),
        Some(&me.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let titles: Vec<String> = list(&me).await.into_iter().map(|t| t.0).collect();
    assert_eq!(titles, ["sooner", "undated"]);
    assert_eq!(list(&lead_b).await, Vec::<(String, String)>::new());
    s.shutdown().await;
}
both_backends!(my_open_tasks_across_studies);

/// Giving someone a task tells them, live and in their inbox: on create and when the
/// assignee changes, never for taking a task oneself.
async fn assignees_are_notified(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, ann, bob] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&ann, &bob]).await;
    let mut bob_ws = ws_connect(&s, &bob.cookie).await;
    hello(&mut bob_ws).await;
    let inbox = |who: &Session| {
        let cookie = who.cookie.clone();
        let s = &s;
        async move {
            let (st, v) = get(s, "/api/notifications", Some(&cookie)).await;
            assert_eq!(st, 200, "{v}");
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["kind"] == "task_assigned")
                .map(|n| n["payload"].clone())
                .collect::<Vec<_>>()
        }
    };
    let t = new_task(
        &s,
        id,
        &leader,
        json!({ "title": "slides", "assignee_id": uid(&ann) }),
    )
    .await;
    let got = inbox(&ann).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            &got[0]["task_id"],
            &got[0]["task_title"],
            &got[0]["study_id"],
            &got[0]["by"]["id"]
        ),
        (&t["id"], &json!("slides"), &json!(id), &leader.user["id"])
    );
    assert_eq!(got[0]["study_title"], "Work");
    // Taking a task oneself, or editing it without changing hands, tells nobody.
    new_task(
        &s,
        id,
        &ann,
        json!({ "title": "mine", "assignee_id": uid(&ann) }),
    )
    .await;
    let path = format!("/api/studies/{id}/tasks/{}", t["id"]);
    assert_eq!(
        patch(&s, &path, json!({ "title": "slides v2" }), &ann.cookie)
            .await
            .0,
        200
    );
    assert_eq!(inbox(&ann).await.len(), 1);
    // Handing it to bob tells bob, live on his socket too.
    assert_eq!(
        patch(&s, &path, json!({ "assignee_id": uid(&bob) }), &ann.cookie)
            .await
            .0,
        200
    );
    let f = next_json(&mut bob_ws).await;
    assert_eq!(f["type"], "notification", "{f}");
    assert_eq!(f["notification"]["kind"], "task_assigned");
    assert_eq!(f["notification"]["payload"]["task_title"], "slides v2");
    assert_eq!(f["notification"]["payload"]["by"]["id"], ann.user["id"]);
    assert_eq!(inbox(&bob).await.len(), 1);
    assert!(inbox(&leader).await.is_empty());
    s.shutdown().await;
}
both_backends!(assignees_are_notified);
