//! Studies end to end over HTTP and the socket, on SQLite and Postgres.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use studyon::http::{Access, RouteSpec};
use studyon::server::RunningServer;
use studyon::studies::Role;

use crate::both_backends;
use crate::common::*;

pub fn study_body(title: &str, tags: &[&str], capacity: i64, closes_on: &str) -> Value {
    json!({
        "title": title,
        "description": "# 목표\n\n**매주** 모여요 <script>alert(1)</script>",
        "tags": tags,
        "capacity": capacity,
        "recruit_opens_on": "2026-01-01",
        "recruit_closes_on": closes_on,
        "starts_on": "2027-03-01",
        "ends_on": "2027-06-01",
    })
}

pub async fn create_study(s: &impl Target, cookie: &str, body: Value) -> i64 {
    let (st, resp, _) = post(s, "/api/studies", body, Some(cookie)).await;
    assert_eq!(st, 201, "{resp}");
    resp["study"]["id"].as_i64().unwrap()
}

pub async fn patch(s: &RunningServer, path: &str, body: Value, cookie: &str) -> (u16, Value) {
    let mut resp = client()
        .patch(format!("{}{}", s.url(), path))
        .insert_header(("Origin", s.url()))
        .insert_header(("Cookie", cookie.to_string()))
        .send_json(&body)
        .await
        .unwrap();
    let st = resp.status().as_u16();
    let bytes = resp.body().await.unwrap();
    (st, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn uid(s: &Session) -> i64 {
    s.user["id"].as_i64().unwrap()
}

/// Applies and returns the application id.
pub async fn apply(s: &impl Target, study: i64, who: &Session) -> i64 {
    let (st, body, _) = post(
        s,
        &format!("/api/studies/{study}/applications"),
        json!({ "message": "저도 할래요" }),
        Some(&who.cookie),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    body["application"]["id"].as_i64().unwrap()
}

pub async fn decide(
    s: &impl Target,
    study: i64,
    app: i64,
    accept: bool,
    leader: &Session,
) -> (u16, Value) {
    let (st, body, _) = post(
        s,
        &format!("/api/studies/{study}/applications/{app}/decision"),
        json!({ "accept": accept }),
        Some(&leader.cookie),
    )
    .await;
    (st, body)
}

async fn create_validate_and_edit(b: &Backend) {
    let s = start(b, &[]).await;
    let leader = signup(&s).await;
    let id = create_study(
        &s,
        &leader.cookie,
        study_body(
            "알고리즘 Study",
            &[" Rust ", "알고리즘", "rust"],
            5,
            "2027-02-01",
        ),
    )
    .await;
    let (st, body) = get(&s, &format!("/api/studies/{id}"), Some(&leader.cookie)).await;
    assert_eq!(st, 200);
    let study = &body["study"];
    assert_eq!(study["tags"], json!(["rust", "알고리즘"]));
    assert_eq!(
        (study["status"].as_str(), study["my_role"].as_str()),
        (Some("recruiting"), Some("leader"))
    );
    assert_eq!(
        (study["member_count"].as_i64(), study["capacity"].as_i64()),
        (Some(1), Some(5))
    );
    let html = study["description_html"].as_str().unwrap();
    assert!(
        html.contains("<strong>매주</strong>") && !html.contains("<script"),
        "{html}"
    );

    // Each bad field is named, and nothing is created.
    let bad = [
        (
            json!({ "recruit_closes_on": "2027-03-01" }),
            "recruit_closes_on",
        ),
        (json!({ "ends_on": "2027-02-01" }), "ends_on"),
        (json!({ "capacity": 1 }), "capacity"),
        (
            json!({ "tags": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"] }),
            "tags",
        ),
        (json!({ "tags": ["x".repeat(31)] }), "tags"),
        (json!({ "title": "" }), "title"),
        (json!({ "starts_on": "2027-02-30" }), "starts_on"),
    ];
    for (over, field) in bad {
        let mut body = study_body("bad", &[], 5, "2027-02-01");
        for (k, v) in over.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, resp, _) = post(&s, "/api/studies", body, Some(&leader.cookie)).await;
        assert_eq!((st, resp["field"].as_str()), (400, Some(field)), "{resp}");
    }
    let (_, mine) = get(&s, "/api/me/studies", Some(&leader.cookie)).await;
    assert_eq!(
        mine["leading"].as_array().unwrap().len(),
        1,
        "no invalid study was stored"
    );

    // Edit: validated as a whole; capacity may not drop below the member count.
    let member = signup(&s).await;
    let app = apply(&s, id, &member).await;
    assert_eq!(decide(&s, id, app, true, &leader).await.0, 200);
    let (st, resp) = patch(
        &s,
        &format!("/api/studies/{id}"),
        json!({ "capacity": 1 }),
        &leader.cookie,
    )
    .await;
    assert_eq!((st, resp["field"].as_str()), (400, Some("capacity")));
    let (st, resp) = patch(
        &s,
        &format!("/api/studies/{id}"),
        json!({ "starts_on": "2027-01-15" }),
        &leader.cookie,
    )
    .await;
    assert_eq!(
        (st, resp["field"].as_str()),
        (400, Some("recruit_closes_on"))
    );
    let (st, resp) = patch(
        &s,
        &format!("/api/studies/{id}"),
        json!({ "title": "새 제목", "capacity": 2 }),
        &leader.cookie,
    )
    .await;
    assert_eq!(st, 200, "{resp}");
    assert_eq!(
        (
            resp["study"]["title"].as_str(),
            resp["study"]["capacity"].as_i64()
        ),
        (Some("새 제목"), Some(2))
    );
    // A member cannot edit; it looks like a missing study.
    let (st, resp) = patch(
        &s,
        &format!("/api/studies/{id}"),
        json!({ "title": "mine now" }),
        &member.cookie,
    )
    .await;
    assert_eq!((st, resp["error"].as_str()), (404, Some("not_found")));
    s.shutdown().await;
}
both_backends!(create_validate_and_edit);

async fn browse_search_and_keyset_paging(b: &Backend) {
    let s = start(b, &[]).await;
    let leader = signup(&s).await;
    let tag = unique("t");
    let mut ids = Vec::new();
    for i in 0..23 {
        let title = match i % 3 {
            0 => format!("Rust 심화 {i}"),
            1 => format!("알고리즘 스터디 {i}"),
            _ => format!("Web basics {i}"),
        };
        let tags: Vec<&str> = if i % 2 == 0 {
            vec![tag.as_str(), "even"]
        } else {
            vec![tag.as_str()]
        };
        let closes = format!("2027-02-{:02}", 1 + (i * 7) % 27);
        ids.push(create_study(&s, &leader.cookie, study_body(&title, &tags, 5, &closes)).await);
    }
    // Newest first, pages of 10, following cursors: every study once, in order.
    for sort in ["newest", "deadline"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let mut path = format!("/api/studies?tag={tag}&limit=10&sort={sort}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (st, page) = get(&s, &path, Some(&leader.cookie)).await;
            assert_eq!(st, 200, "{page}");
            for item in page["items"].as_array().unwrap() {
                seen.push((
                    item["recruit_closes_on"].as_str().unwrap().to_string(),
                    item["id"].as_i64().unwrap(),
                ));
            }
            cursor = page["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 23, "{sort}");
        assert_eq!(
            seen.iter().map(|x| x.1).collect::<HashSet<_>>().len(),
            23,
            "no repeats ({sort})"
        );
        let mut sorted = seen.clone();
        if sort == "newest" {
            sorted.sort_by_key(|x| std::cmp::Reverse(x.1));
        } else {
            sorted.sort();
        }
        assert_eq!(seen, sorted, "order ({sort})");
    }
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    let (_, p) = get(
        &s,
        &format!("/api/studies?tag={tag}&q=RUST&limit=50"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(count(&p), 8, "case-insensitive title search");
    let (_, p) = get(
        &s,
        &format!("/api/studies?tag={tag}&q={}&limit=50", "%EC%95%8C%EA%B3%A0"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(count(&p), 8, "Korean substring search (알고)");
    let (_, p) = get(
        &s,
        &format!("/api/studies?tag={tag}&tag=even&limit=50"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(count(&p), 12, "all tags must match");
    let (_, p) = get(
        &s,
        &format!("/api/studies?tag={tag}&q=100%25&limit=50"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(count(&p), 0, "LIKE wildcards in the query are literal");
    // One in progress.
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{}/status", ids[0]),
        json!({ "status": "in_progress" }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 200);
    let (_, p) = get(
        &s,
        &format!("/api/studies?tag={tag}&status=in_progress"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(p["items"][0]["id"].as_i64(), Some(ids[0]));
    assert_eq!(count(&p), 1);
    for bad in [
        "status=paused",
        "sort=oldest",
        "limit=0",
        "limit=51",
        "cursor=%21%21",
    ] {
        let (st, body) = get(&s, &format!("/api/studies?{bad}"), Some(&leader.cookie)).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (400, Some("validation_failed")),
            "{bad}"
        );
    }
    // Bookmarks toggle and list.
    let (_, r, _) = post(
        &s,
        &format!("/api/studies/{}/bookmark", ids[3]),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(r["bookmarked"], true);
    let (_, r) = get(&s, "/api/me/bookmarks", Some(&leader.cookie)).await;
    assert_eq!(r["items"][0]["id"].as_i64(), Some(ids[3]));
    let (_, r, _) = post(
        &s,
        &format!("/api/studies/{}/bookmark", ids[3]),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(r["bookmarked"], false);
    let (_, r) = get(&s, "/api/me/bookmarks", Some(&leader.cookie)).await;
    assert_eq!(r["items"].as_array().unwrap().len(), 0);
    s.shutdown().await;
}
both_backends!(browse_search_and_keyset_paging);

async fn membership_lifecycle(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, ann, bob, cho, dan] = signups(&s).await;
    let id = create_study(
        &s,
        &leader.cookie,
        study_body("Lifecycle", &["x"], 3, "2027-02-01"),
    )
    .await;
    let a1 = apply(&s, id, &ann).await;
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications"),
        json!({ "message": "again" }),
        Some(&ann.cookie),
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("application_exists"))
    );
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications"),
        json!({ "message": "x".repeat(1001) }),
        Some(&bob.cookie),
    )
    .await;
    assert_eq!((st, body["field"].as_str()), (400, Some("message")));
    let b1 = apply(&s, id, &bob).await;
    let (_, apps) = get(
        &s,
        &format!("/api/studies/{id}/applications"),
        Some(&leader.cookie),
    )
    .await;
    let items = apps["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|a| a["status"] == "pending" && a["applicant"]["review_count"] == 0)
    );
    // The leader was notified of each application.
    let (_, n) = get(&s, "/api/notifications/unread_count", Some(&leader.cookie)).await;
    assert_eq!(n["count"], 2);

    assert_eq!(decide(&s, id, a1, true, &leader).await.0, 200);
    let (st, body) = decide(&s, id, a1, false, &leader).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("application_not_pending"))
    );
    let (st, _) = decide(&s, id, b1, false, &leader).await;
    assert_eq!(st, 200);
    let (_, n) = get(&s, "/api/notifications", Some(&bob.cookie)).await;
    assert_eq!(n["items"][0]["kind"], "application_decided");
    assert_eq!(n["items"][0]["payload"]["accepted"], false);
    let (_, mine) = get(&s, "/api/me/studies", Some(&ann.cookie)).await;
    assert_eq!(mine["joined"][0]["id"].as_i64(), Some(id));
    assert_eq!(mine["applications"][0]["status"], "accepted");
    let (_, members) = get(&s, &format!("/api/studies/{id}/members"), Some(&ann.cookie)).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    assert_eq!(members["items"][0]["role"], "leader");

    // Withdraw: only one's own pending application.
    let c1 = apply(&s, id, &cho).await;
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/applications/{c1}/withdraw"),
        json!({}),
        Some(&bob.cookie),
    )
    .await;
    assert_eq!(st, 404);
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications/{c1}/withdraw"),
        json!({}),
        Some(&cho.cookie),
    )
    .await;
    assert_eq!(
        (st, body["application"]["status"].as_str()),
        (200, Some("withdrawn"))
    );
    // Applying again waits out a cool-down (no apply/withdraw flood of the leader's inbox).
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications"),
        json!({}),
        Some(&cho.cookie),
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (429, Some("rate_limited")));

    // The leader cannot leave before handing over; transfer, then the old leader leaves.
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/leave"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("leader_must_transfer"))
    );
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/transfer"),
        json!({ "user_id": uid(&bob) }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("user_id")),
        "bob is not a member"
    );
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/transfer"),
        json!({ "user_id": uid(&ann) }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/leave"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (_, d) = get(&s, &format!("/api/studies/{id}"), Some(&ann.cookie)).await;
    assert_eq!(
        (
            d["study"]["my_role"].as_str(),
            d["study"]["member_count"].as_i64()
        ),
        (Some("leader"), Some(1))
    );

    // Remove with a ban: the user cannot apply again.
    let c2 = apply(&s, id, &dan).await;
    assert_eq!(decide(&s, id, c2, true, &ann).await.0, 200);
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/members/{}/remove", uid(&dan)),
        json!({ "ban": true }),
        Some(&ann.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (_, n) = get(&s, "/api/notifications", Some(&dan.cookie)).await;
    assert_eq!(n["items"][0]["kind"], "removed_from_study");
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications"),
        json!({}),
        Some(&dan.cookie),
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (403, Some("banned")));

    // Status: completed is final; a study not recruiting takes no applications.
    for (to, want) in [
        ("in_progress", 200),
        ("recruiting", 200),
        ("completed", 200),
        ("recruiting", 409),
        ("bogus", 400),
    ] {
        let (st, body, _) = post(
            &s,
            &format!("/api/studies/{id}/status"),
            json!({ "status": to }),
            Some(&ann.cookie),
        )
        .await;
        assert_eq!(st, want, "{to}: {body}");
        if want == 409 {
            assert_eq!(body["error"], "invalid_status_transition");
        }
    }
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications"),
        json!({}),
        Some(&bob.cookie),
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (409, Some("not_recruiting")));
    // Mark read.
    let (_, n) = get(&s, "/api/notifications?limit=1", Some(&leader.cookie)).await;
    let nid = n["items"][0]["id"].as_i64().unwrap();
    assert!(n["next_cursor"].is_string());
    let (st, _, _) = post(
        &s,
        &format!("/api/notifications/{nid}/read"),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (st, _, _) = post(
        &s,
        &format!("/api/notifications/{nid}/read"),
        json!({}),
        Some(&bob.cookie),
    )
    .await;
    assert_eq!(st, 404, "someone else's notification");
    let (st, _, _) = post(
        &s,
        "/api/notifications/read_all",
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (_, c) = get(&s, "/api/notifications/unread_count", Some(&leader.cookie)).await;
    assert_eq!(c["count"], 0);
    s.shutdown().await;
}
both_backends!(membership_lifecycle);

async fn the_last_seat_goes_to_exactly_one(b: &Backend) {
    let s = start(b, &[]).await;
    let leader = signup(&s).await;
    let [x, y] = signups(&s).await;
    let id = create_study(
        &s,
        &leader.cookie,
        study_body("One seat", &[], 2, "2027-02-01"),
    )
    .await;
    let (ax, ay) = (apply(&s, id, &x).await, apply(&s, id, &y).await);
    let (r1, r2) = tokio::join!(
        decide(&s, id, ax, true, &leader),
        decide(&s, id, ay, true, &leader)
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{r1:?} {r2:?}");
    let loser = if r1.0 == 409 { &r1.1 } else { &r2.1 };
    assert_eq!(loser["error"], "study_full");
    let (_, d) = get(&s, &format!("/api/studies/{id}"), Some(&leader.cookie)).await;
    assert_eq!(d["study"]["member_count"], 2);
    let (_, m) = get(
        &s,
        &format!("/api/studies/{id}/members"),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(m["items"].as_array().unwrap().len(), 2);
    // A full study also refuses new applications.
    let z = signup(&s).await;
    let (st, body, _) = post(
        &s,
        &format!("/api/studies/{id}/applications"),
        json!({}),
        Some(&z.cookie),
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (409, Some("study_full")));
    s.shutdown().await;
}
both_backends!(the_last_seat_goes_to_exactly_one);

async fn reviews_and_profiles(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, m1, m2, m3, outsider] = signups(&s).await;
    let id = create_study(
        &s,
        &leader.cookie,
        study_body("Reviews", &[], 5, "2027-02-01"),
    )
    .await;
    for m in [&m1, &m2, &m3] {
        let a = apply(&s, id, m).await;
        decide(&s, id, a, true, &leader).await;
    }
    let status = |to: &'static str| {
        let s = &s;
        let cookie = leader.cookie.clone();
        async move {
            post(
                s,
                &format!("/api/studies/{id}/status"),
                json!({ "status": to }),
                Some(&cookie),
            )
            .await
            .0
        }
    };
    let rv = |who: &Session, reviewee: &Session, rating: i64| {
        let cookie = who.cookie.clone();
        let body = json!({ "reviewee_id": uid(reviewee), "rating": rating, "body": "성실해요" });
        let s = &s;
        async move {
            post(
                s,
                &format!("/api/studies/{id}/reviews"),
                body,
                Some(&cookie),
            )
            .await
        }
    };
    // Not while recruiting: they have not studied together yet.
    assert_eq!(rv(&m1, &m2, 5).await.1["error"], "not_study_mates");
    assert_eq!(status("in_progress").await, 200);
    // In progress, both still in it: not yet.
    assert_eq!(rv(&m1, &m2, 5).await.1["error"], "review_not_open");
    // A member banned by the leader reviews nobody there, but may be reviewed.
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/members/{}/remove", uid(&m3)),
        json!({ "ban": true }),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let (st, e, _) = rv(&m3, &leader, 1).await;
    assert_eq!((st, e["error"].as_str()), (403, Some("banned")), "{e}");
    assert_eq!(rv(&leader, &m3, 2).await.0, 201, "one of them left");
    assert_eq!(status("completed").await, 200);
    let (st, r, _) = rv(&m1, &m2, 5).await;
    assert_eq!(st, 201, "{r}");
    let rid = r["review"]["id"].as_i64().unwrap();
    assert_eq!(rv(&m1, &m2, 4).await.1["error"], "review_exists");
    assert_eq!(rv(&m1, &m1, 4).await.1["field"], "reviewee_id");
    assert_eq!(rv(&outsider, &m2, 4).await.0, 404);
    assert_eq!(rv(&leader, &m2, 3).await.0, 201);
    for (bad, field) in [(0, "rating"), (6, "rating")] {
        assert_eq!(rv(&m2, &leader, bad).await.1["field"], field);
    }
    // A member who left can still review, and still be reviewed.
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/leave"),
        json!({}),
        Some(&m2.cookie),
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(rv(&m2, &leader, 4).await.0, 201);
    let (st, body) = get(
        &s,
        &format!("/api/users/{}/profile", uid(&m2)),
        Some(&outsider.cookie),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            body["review_count"].as_i64(),
            body["review_average"].as_f64()
        ),
        (Some(2), Some(4.0))
    );
    assert_eq!(
        body["reviews"][0]["reviewee"]["id"].as_i64(),
        Some(uid(&m2))
    );
    // The author edits; nobody else can.
    let (st, _) = patch(
        &s,
        &format!("/api/reviews/{rid}"),
        json!({ "rating": 1 }),
        &m2.cookie,
    )
    .await;
    assert_eq!(st, 404);
    let (st, body) = patch(
        &s,
        &format!("/api/reviews/{rid}"),
        json!({ "rating": 3, "body": "좋아요" }),
        &m1.cookie,
    )
    .await;
    assert_eq!(
        (
            st,
            body["review"]["rating"].as_i64(),
            body["review"]["body"].as_str()
        ),
        (200, Some(3), Some("좋아요"))
    );
    // The reviewee got notifications; a leader sees an applicant's reviews.
    let (_, n) = get(&s, "/api/notifications", Some(&m2.cookie)).await;
    assert!(
        n["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "review_received")
    );
    let other = create_study(
        &s,
        &outsider.cookie,
        study_body("Other", &[], 5, "2027-02-01"),
    )
    .await;
    apply(&s, other, &m2).await;
    let fresh = signup(&s).await;
    apply(&s, other, &fresh).await;
    let (_, apps) = get(
        &s,
        &format!("/api/studies/{other}/applications"),
        Some(&outsider.cookie),
    )
    .await;
    // Each applicant gets their own reputation, read for all of them at once.
    let of = |who: &Session| {
        apps["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["applicant"]["user"]["id"] == who.user["id"])
            .unwrap()["applicant"]
            .clone()
    };
    let f = of(&fresh);
    assert_eq!(
        (
            f["review_count"].as_i64(),
            f["reviews"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    assert!(f["review_average"].is_null());
    let a = &of(&m2);
    // m1 gave 5, edited to 3; the leader gave 3.
    assert_eq!(
        (a["review_count"].as_i64(), a["review_average"].as_f64()),
        (Some(2), Some(3.0))
    );
    assert_eq!(a["reviews"].as_array().unwrap().len(), 2);
    s.shutdown().await;
}
both_backends!(reviews_and_profiles);

async fn ids_from_another_study_change_nothing(b: &Backend) {
    let s = start(b, &[]).await;
    let [la, lb, x] = signups(&s).await;
    let a = create_study(&s, &la.cookie, study_body("A", &[], 5, "2027-02-01")).await;
    let bb = create_study(&s, &lb.cookie, study_body("B", &[], 5, "2027-02-01")).await;
    let app_b = apply(&s, bb, &x).await;
    // Leader of A tries to decide B's application through A's path, and through B's.
    let (st, _) = decide(&s, a, app_b, true, &la).await;
    assert_eq!(st, 404);
    let (st, _) = decide(&s, bb, app_b, true, &la).await;
    assert_eq!(st, 404);
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{a}/members/{}/remove", uid(&lb)),
        json!({}),
        Some(&la.cookie),
    )
    .await;
    assert_eq!(st, 400, "B's leader is not A's member");
    let (st, body) = get(&s, "/api/studies/999999", Some(&la.cookie)).await;
    assert_eq!((st, body["error"].as_str()), (404, Some("not_found")));
    let (st, _) = get(&s, "/api/studies/not-a-number", Some(&la.cookie)).await;
    assert_eq!(st, 404);
    // Nothing changed: B's application is still pending and B has one member.
    let (_, apps) = get(
        &s,
        &format!("/api/studies/{bb}/applications"),
        Some(&lb.cookie),
    )
    .await;
    assert_eq!(apps["items"][0]["status"], "pending");
    let (_, d) = get(&s, &format!("/api/studies/{bb}"), Some(&lb.cookie)).await;
    assert_eq!(d["study"]["member_count"], 1);
    s.shutdown().await;
}
both_backends!(ids_from_another_study_change_nothing);

/// Runs every study route from the route table as six personas and checks each is allowed
/// exactly when the table's policy says so. A new study route without a fixture here fails.
async fn authorization_matrix(b: &Backend) {
    // Every route for every role is far more writes a second than any one person makes.
    let s = start(b, &["--write-burst", "100000"]).await;
    let mut specs: Vec<RouteSpec> = Vec::new();
    let _app = actix_web::App::new().configure(|cfg| specs = studyon::http::routes(cfg));
    let [leader, member, applicant, outsider, other_leader] = signups(&s).await;
    create_study(
        &s,
        &other_leader.cookie,
        study_body("Elsewhere", &[], 5, "2027-02-01"),
    )
    .await;
    let personas: [(&str, Option<&Session>, Role); 6] = [
        ("anonymous", None, Role::None),
        ("outsider", Some(&outsider), Role::None),
        ("applicant", Some(&applicant), Role::Applicant),
        ("member", Some(&member), Role::Member),
        ("leader of another study", Some(&other_leader), Role::None),
        ("leader", Some(&leader), Role::Leader),
    ];
    let mut checked = 0;
    for spec in specs
        .iter()
        .filter(|s| matches!(s.access, Access::Study(_)))
    {
        let Access::Study(allowed) = spec.access else {
            unreachable!()
        };
        for (name, who, role) in &personas {
            // A fresh study per check: leader, one member, one pending applicant.
            let id = create_study(
                &s,
                &leader.cookie,
                study_body("Matrix", &["m"], 10, "2027-02-01"),
            )
            .await;
            let am = apply(&s, id, &member).await;
            decide(&s, id, am, true, &leader).await;
            let app = apply(&s, id, &applicant).await;
            // Reviews open once members studied together and the study is completed.
            if spec.path.ends_with("/reviews") {
                for to in ["in_progress", "completed"] {
                    let (st, _, _) = post(
                        &s,
                        &format!("/api/studies/{id}/status"),
                        json!({ "status": to }),
                        Some(&leader.cookie),
                    )
                    .await;
                    assert_eq!(st, 200);
                }
            }
            // Routes about one chat room get a room of this study.
            let room = if spec.path.contains("{room_id}") {
                let (st, r, _) = post(
                    &s,
                    &format!("/api/studies/{id}/chat_rooms"),
                    json!({ "name": "matrix", "category": "general" }),
                    Some(&leader.cookie),
                )
                .await;
                assert_eq!(st, 201, "{r}");
                r["room"]["id"].as_i64().unwrap()
            } else {
                0
            };
            // Routes about tasks, posts and files get one of each in this study. Writing a
            // post or a file, and deleting a task, is its author's; a member or leader
            // persona acts on their own.
            let author = if matches!(role, Role::Member | Role::Leader) {
                who.unwrap()
            } else {
                &member
            };
            let (task, post_id, file) = if spec.path.contains("{task_id}")
                || spec.path.contains("{post_id}")
                || spec.path.contains("{file_id}")
            {
                let t = crate::tasks::new_task(&s, id, author, json!({ "title": "m" })).await;
                let t = t["id"].as_i64().unwrap();
                let p = crate::tasks::new_post(&s, id, t, author, "m", "").await;
                let p = p["id"].as_i64().unwrap();
                let (st, f) = post_bytes(
                    &s,
                    &format!("/api/studies/{id}/posts/{p}/attachments?name=m.txt"),
                    b"matrix".to_vec(),
                    "text/plain",
                    Some(&author.cookie),
                )
                .await;
                assert_eq!(st, 201, "{f}");
                (t, p, f["file"]["id"].as_i64().unwrap())
            } else {
                (0, 0, 0)
            };
            // Routes about one version of a post's body get a named version of it.
            let version = if spec.path.contains("{version_id}") {
                let (st, v, _) = post(
                    &s,
                    &format!("/api/studies/{id}/posts/{post_id}/versions"),
                    json!({ "name": "m" }),
                    Some(&author.cookie),
                )
                .await;
                assert_eq!(st, 201, "{v}");
                v["version"]["id"].as_i64().unwrap()
            } else {
                0
            };
            let path = spec
                .path
                .replace("{study_id}", &id.to_string())
                .replace("{task_id}", &task.to_string())
                .replace("{post_id}", &post_id.to_string())
                .replace("{file_id}", &file.to_string())
                .replace("{application_id}", &app.to_string())
                .replace("{user_id}", &uid(&member).to_string())
                .replace("{room_id}", &room.to_string())
                .replace("{version_id}", &version.to_string());
            let reviewee = if *role == Role::Leader {
                uid(&member)
            } else {
                uid(&leader)
            };
            let body = match (spec.method, spec.path) {
                ("patch", "/api/studies/{study_id}") => json!({ "title": "renamed" }),
                ("post", p) if p.ends_with("/status") => json!({ "status": "in_progress" }),
                ("post", p) if p.ends_with("/applications") => json!({ "message": "hi" }),
                ("post", p) if p.ends_with("/decision") => json!({ "accept": false }),
                ("post", p) if p.ends_with("/transfer") => json!({ "user_id": uid(&member) }),
                ("post", p) if p.ends_with("/remove") => json!({ "ban": false }),
                ("post", p) if p.ends_with("/reviews") => {
                    json!({ "reviewee_id": reviewee, "rating": 4, "body": "ok" })
                }
                ("put", p) if p.ends_with("/lock") => json!({ "locked": true }),
                ("post", p) if p.ends_with("/versions") => json!({ "name": "v" }),
                ("post", p) if p.ends_with("/restore") => json!({}),
                ("post", p) if p.ends_with("/chat_rooms") => {
                    json!({ "name": "room", "category": "qna" })
                }
                ("post", p) if p.ends_with("/tasks") => json!({ "title": "t" }),
                ("patch", p) if p.ends_with("/tasks/{task_id}") => json!({ "status": "done" }),
                ("post", p) if p.ends_with("/posts") => json!({ "title": "p", "body": "b" }),
                ("patch", p) if p.ends_with("/posts/{post_id}") => json!({ "title": "p2" }),
                ("post", p) if p.ends_with("/attachments") => Value::String("upload".into()),
                ("delete", _) | ("head", _) => Value::Null,
                ("post", p)
                    if p.ends_with("/bookmark")
                        || p.ends_with("/leave")
                        || p.ends_with("/withdraw")
                        || p.ends_with("/close") =>
                {
                    json!({})
                }
                ("get", _) => Value::Null,
                other => panic!("no fixture for {other:?}: add one to the matrix"),
            };
            let cookie = who.map(|w| w.cookie.as_str());
            let st = if spec.method == "get" {
                get(&s, &path, cookie).await.0
            } else if spec.method == "delete" {
                delete(&s, &path, cookie).await.0
            } else if spec.method == "head" {
                let mut req = client().head(format!("{}{path}", s.url()));
                if let Some(c) = cookie {
                    req = req.insert_header(("Cookie", c.to_string()));
                }
                req.send().await.unwrap().status().as_u16()
            } else if body == Value::String("upload".into()) {
                let path = format!("{path}?name=matrix.txt");
                post_bytes(&s, &path, b"bytes".to_vec(), "text/plain", cookie)
                    .await
                    .0
            } else if spec.method == "patch" || spec.method == "put" {
                let method =
                    awc::http::Method::from_bytes(spec.method.to_uppercase().as_bytes()).unwrap();
                match cookie {
                    Some(c) => {
                        let r = client()
                            .request(method, format!("{}{path}", s.url()))
                            .insert_header(("Origin", s.url()))
                            .insert_header(("Cookie", c.to_string()))
                            .send_json(&body)
                            .await
                            .unwrap();
                        r.status().as_u16()
                    }
                    None => {
                        let r = client()
                            .request(method, format!("{}{path}", s.url()))
                            .insert_header(("Origin", s.url()))
                            .send_json(&body)
                            .await
                            .unwrap();
                        r.status().as_u16()
                    }
                }
            } else {
                post(&s, &path, body, cookie).await.0
            };
            let should = who.is_some() && allowed.contains(role);
            if should {
                assert!(
                    (200..300).contains(&st),
                    "{name} should be allowed {} {}: {st}",
                    spec.method,
                    spec.path
                );
            } else {
                assert!(
                    (400..500).contains(&st),
                    "{name} should be denied {} {}: {st}",
                    spec.method,
                    spec.path
                );
                if who.is_none() {
                    assert_eq!(st, 401, "anonymous {} {}", spec.method, spec.path);
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 6 * 12,
        "the matrix covered only {checked} checks"
    );
    s.shutdown().await;
}
both_backends!(authorization_matrix);

/// The live parts: the leader watching the study sees an application arrive; the applicant
/// gets the decision as a notification on every tab; a removed member's watch is cut.
async fn live_events_and_notifications(b: &Backend) {
    let s = start(b, &[]).await;
    let [leader, applicant] = signups(&s).await;
    let id = create_study(&s, &leader.cookie, study_body("Live", &[], 5, "2027-02-01")).await;
    let mut lws = ws_connect(&s, &leader.cookie).await;
    hello(&mut lws).await;
    send_text(
        &mut lws,
        json!({ "type": "study.watch", "id": "w", "study_id": id }).to_string(),
    )
    .await;
    assert_eq!(
        next_json(&mut lws).await,
        json!({ "type": "ack", "id": "w" })
    );
    send_text(
        &mut lws,
        json!({ "type": "study.watch", "id": "w2", "study_id": 987654 }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut lws).await["error"], "not_found");

    let mut tabs = [
        ws_connect(&s, &applicant.cookie).await,
        ws_connect(&s, &applicant.cookie).await,
    ];
    for t in tabs.iter_mut() {
        hello(t).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let app = apply(&s, id, &applicant).await;
    // The leader gets the study event and the notification, in either order.
    let mut kinds = HashSet::new();
    for _ in 0..2 {
        let f = next_json(&mut lws).await;
        match f["type"].as_str().unwrap() {
            "study.event" => {
                kinds.insert(format!("event:{}", f["event"]["kind"].as_str().unwrap()))
            }
            "notification" => kinds.insert(format!(
                "note:{}",
                f["notification"]["kind"].as_str().unwrap()
            )),
            other => panic!("unexpected {other}"),
        };
    }
    assert_eq!(
        kinds,
        HashSet::from([
            "event:application_received".to_string(),
            "note:application_received".to_string()
        ])
    );

    assert_eq!(decide(&s, id, app, true, &leader).await.0, 200);
    for t in tabs.iter_mut() {
        let f = next_json(t).await;
        assert_eq!(f["type"], "notification");
        assert_eq!(f["notification"]["kind"], "application_decided");
        assert_eq!(f["notification"]["payload"]["accepted"], true);
        assert_eq!(f["notification"]["read"], false);
    }
    // The new member watches, then is removed: their watch is cut at once.
    send_text(
        &mut tabs[0],
        json!({ "type": "study.watch", "id": "m", "study_id": id }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut tabs[0]).await["type"], "ack");
    let (st, _, _) = post(
        &s,
        &format!("/api/studies/{id}/members/{}/remove", uid(&applicant)),
        json!({}),
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 204);
    let mut got = HashSet::new();
    for _ in 0..2 {
        got.insert(
            next_json(&mut tabs[0]).await["type"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        got,
        HashSet::from(["study.removed".to_string(), "notification".to_string()])
    );
    s.shutdown().await;
}
both_backends!(live_events_and_notifications);
