//! The HTTP API: accounts, sessions, bad input, CSRF, throttling, operator endpoints.

use serde_json::json;
use studyon::server::RunningServer;

use crate::both_backends;
use crate::common::*;

async fn account_lifecycle(b: &Backend) {
    let s = start(b, &[]).await;
    let me = signup(&s).await;
    assert_eq!(me.user["login_id"], json!(me.login_id));
    let (st, body) = get(&s, "/api/auth/me", Some(&me.cookie)).await;
    assert_eq!(st, 200);
    assert_eq!(body["user"], me.user);

    // Log out: the cookie stops working.
    let (st, _, headers) = post(&s, "/api/auth/logout", json!({}), Some(&me.cookie)).await;
    assert_eq!(st, 204);
    assert!(
        headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (st, body) = get(&s, "/api/auth/me", Some(&me.cookie)).await;
    assert_eq!((st, body["error"].as_str()), (401, Some("unauthenticated")));

    // Log in again (login id is case-insensitive): a new token.
    let (st, body, headers) = post(
        &s,
        "/api/auth/login",
        json!({ "login_id": me.login_id.to_uppercase(), "password": me.password }),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let cookie = session_cookie(&headers).unwrap();
    assert_ne!(cookie, me.cookie);
    let set = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"),
        "{set}"
    );
    let (st, body) = get(&s, "/api/auth/me", Some(&cookie)).await;
    assert_eq!((st, &body["user"]), (200, &me.user));
    s.shutdown().await;
}
both_backends!(account_lifecycle);

async fn signup_rules_and_conflicts(b: &Backend) {
    let s = start(b, &[]).await;
    let cases = [
        (
            json!({ "login_id": "ab", "display_name": "x", "password": "long enough pw" }),
            "login_id",
        ),
        (
            json!({ "login_id": "bad-id", "display_name": "x", "password": "long enough pw" }),
            "login_id",
        ),
        (
            json!({ "login_id": "okid_1", "display_name": "가".repeat(41), "password": "long enough pw" }),
            "display_name",
        ),
        (
            json!({ "login_id": "okid_2", "display_name": "x", "password": "short" }),
            "password",
        ),
        (
            json!({ "login_id": "okid_3", "display_name": "x", "password": "p".repeat(257) }),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (st, resp, _) = post(&s, "/api/auth/signup", body.clone(), None).await;
        assert_eq!(st, 400, "{body}");
        assert_eq!(resp["error"], "validation_failed");
        assert_eq!(resp["field"], field, "{resp}");
    }
    // None of those created an account.
    for id in ["okid_1", "okid_2", "okid_3"] {
        let (st, _, _) = post(
            &s,
            "/api/auth/login",
            json!({ "login_id": id, "password": "long enough pw" }),
            None,
        )
        .await;
        assert_eq!(st, 401);
    }

    let id = unique("kim");
    let (st, body, _) = post(
        &s,
        "/api/auth/signup",
        json!({ "login_id": id, "display_name": "김철수", "password": "비밀번호비밀번호" }),
        None,
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["user"]["display_name"], "김철수");
    let (st, body, _) = post(&s, "/api/auth/signup", json!({ "login_id": id.to_uppercase(), "display_name": "other", "password": "long enough pw" }), None).await;
    assert_eq!((st, body["error"].as_str()), (409, Some("login_id_taken")));
    let (st, body, _) = post(&s, "/api/auth/signup", json!({ "login_id": unique("lee"), "display_name": "김철수", "password": "long enough pw" }), None).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (409, Some("display_name_taken"))
    );
    s.shutdown().await;
}
both_backends!(signup_rules_and_conflicts);

#[actix_rt::test]
async fn malformed_bodies_and_unknown_routes() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let c = client();
    let url = |p: &str| format!("{}{p}", s.url());
    let send = |path: &str, ct: &'static str, body: String| {
        c.post(url(path))
            .insert_header(("Origin", s.url()))
            .insert_header(("Content-Type", ct))
            .send_body(body)
    };
    let mut r = send("/api/auth/signup", "application/json", "{not json".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "malformed_json"
    );
    let mut r = send(
        "/api/auth/signup",
        "application/json",
        r#"{"login_id":5,"display_name":"a","password":"b"}"#.into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "malformed_json"
    );
    let mut r = send(
        "/api/auth/signup",
        "application/json",
        r#"{"login_id":"abc"}"#.into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.json::<serde_json::Value>().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("missing field"),
        "{body}"
    );
    let mut r = send("/api/auth/signup", "text/plain", "{}".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unsupported_media_type"
    );
    let big = format!(
        r#"{{"login_id":"{}","display_name":"a","password":"b"}}"#,
        "a".repeat(100_000)
    );
    let mut r = send("/api/auth/signup", "application/json", big)
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "payload_too_large"
    );

    let (st, body) = get(&s, "/api/nope", None).await;
    assert_eq!((st, body["error"].as_str()), (404, Some("not_found")));
    let (st, body, _) = post(&s, "/api/nope", json!({}), None).await;
    assert_eq!((st, body["error"].as_str()), (404, Some("not_found")));
    let (st, body) = get(&s, "/api/auth/login", None).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    s.shutdown().await;
}

#[actix_rt::test]
async fn state_changes_need_a_matching_origin() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let body = json!({ "login_id": unique("csrf"), "display_name": unique("csrf"), "password": "long enough pw" });
    let url = format!("{}/api/auth/signup", s.url());
    let mut r = client().post(&url).send_json(&body).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "bad_origin"
    );
    let r = client()
        .post(&url)
        .insert_header(("Origin", "https://evil.example"))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing was created: the same signup with the right origin succeeds.
    let (st, _, _) = post(&s, "/api/auth/signup", body, None).await;
    assert_eq!(st, 201);

    // The WebSocket upgrade checks Origin too.
    let me = signup(&s).await;
    let r = client()
        .ws(format!("{}/ws", s.url()))
        .origin("https://evil.example")
        .set_header("Cookie", me.cookie.clone())
        .connect()
        .await;
    match r {
        Err(awc::error::WsClientError::InvalidResponseStatus(st)) => assert_eq!(st.as_u16(), 403),
        other => panic!("cross-origin upgrade must fail: {:?}", other.map(|_| ())),
    }
    let r = client()
        .ws(format!("{}/ws", s.url()))
        .origin(s.url())
        .connect()
        .await;
    match r {
        Err(awc::error::WsClientError::InvalidResponseStatus(st)) => assert_eq!(st.as_u16(), 401),
        other => panic!("anonymous upgrade must fail: {:?}", other.map(|_| ())),
    }
    s.shutdown().await;
}

#[actix_rt::test]
async fn login_is_throttled_and_unknown_ids_look_like_wrong_passwords() {
    let b = Backend::new(Db::Sqlite).await;
    // Behind a proxy on loopback, so the test can speak from several client addresses.
    let s = start(&b, &["--trusted-proxies", "127.0.0.1"]).await;
    let me = signup(&s).await;
    let (st1, wrong_pw, _) = post(
        &s,
        "/api/auth/login",
        json!({ "login_id": me.login_id, "password": "wrong password!" }),
        None,
    )
    .await;
    let (st2, unknown, _) = post(
        &s,
        "/api/auth/login",
        json!({ "login_id": "nobody_here", "password": "wrong password!" }),
        None,
    )
    .await;
    assert_eq!((st1, st2), (401, 401));
    assert_eq!(
        wrong_pw, unknown,
        "same answer for unknown id and wrong password"
    );
    assert_eq!(wrong_pw["error"], "invalid_credentials");
    // A guesser from an address the account never logged in from runs into the account's
    // limit...
    let login_from = |from: &'static str, password: String| {
        let (s, login_id) = (&s, me.login_id.clone());
        async move {
            let mut resp = client()
                .post(format!("{}/api/auth/login", s.url()))
                .insert_header(("Origin", origin(s)))
                .insert_header(("X-Forwarded-For", from))
                .send_json(&json!({ "login_id": login_id, "password": password }))
                .await
                .unwrap();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (resp.status().as_u16(), body, resp.headers().clone())
        }
    };
    let mut limited = None;
    for _ in 0..10 {
        let (st, body, headers) = login_from("203.0.113.66", "wrong password!".into()).await;
        if st == 429 {
            limited = Some((body, headers));
            break;
        }
    }
    let (body, headers) = limited.expect("throttled within 10 attempts");
    assert_eq!(body["error"], "rate_limited");
    let retry = retry_after(&headers);
    assert!(retry >= 1);
    // ...and so does anyone else at an unknown address, even with the right password...
    let (st, _, _) = login_from("198.51.100.7", me.password.clone()).await;
    assert_eq!(st, 429);
    // ...but the owner, at the address they signed up from, is not locked out.
    let (st, body, _) = login_from("127.0.0.1", me.password.clone()).await;
    assert_eq!(st, 200, "{body}");
    s.shutdown().await;
}

/// The session cookie follows the origin the request came through: with an http and an
/// https public origin, a sign-up or login through https gets `Secure` and `__Host-`, one
/// through http a plain cookie; either authenticates.
#[actix_rt::test]
async fn cookies_follow_the_origin_the_request_came_through() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(
        &b,
        &[
            "--public-origin",
            "http://study.example,https://study.example",
        ],
    )
    .await;
    let login_id = unique("sec");
    let through = |origin: &'static str, path: &'static str, body: serde_json::Value| {
        let s = &s;
        async move {
            let r = client()
                .post(format!("{}{path}", s.url()))
                .insert_header(("Origin", origin))
                .send_json(&body)
                .await
                .unwrap();
            let set = r
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (r.status().as_u16(), set)
        }
    };
    let signup = json!({ "login_id": login_id, "display_name": unique("sec"), "password": "long enough pw" });
    let (st, set) = through("https://study.example", "/api/auth/signup", signup).await;
    assert_eq!(st, 201);
    assert!(
        set.starts_with("__Host-studyon_session=")
            && set.contains("Secure")
            && set.contains("Path=/"),
        "{set}"
    );
    let login = json!({ "login_id": login_id, "password": "long enough pw" });
    let (st, set) = through("http://study.example", "/api/auth/login", login.clone()).await;
    assert_eq!(st, 200);
    assert!(
        set.starts_with("studyon_session=") && !set.contains("Secure"),
        "{set}"
    );
    let (st, set) = through("https://study.example", "/api/auth/login", login).await;
    assert_eq!(st, 200);
    assert!(
        set.starts_with("__Host-studyon_session=") && set.contains("Secure"),
        "{set}"
    );
    // The secure cookie authenticates.
    let cookie = set.split(';').next().unwrap().to_string();
    let (st, me) = get(&s, "/api/auth/me", Some(&cookie)).await;
    assert_eq!(
        (st, me["user"]["login_id"].as_str()),
        (200, Some(login_id.as_str()))
    );
    s.shutdown().await;
}

async fn operator_endpoints(b: &Backend) {
    let s = start(b, &[]).await;
    let (st, body) = get(&s, "/healthz", None).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("ok")));
    let (st, body) = get(&s, "/readyz", None).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("ready")));
    let _ = signup(&s).await;
    // Metrics are on their own (loopback) listener, not on the public app port.
    let text = metrics_text(&s).await;
    assert!(text.contains("studyon_http_responses_total"), "{text}");
    assert_eq!(get(&s, "/metrics", None).await.0, 404);
    let (st, doc) = get(&s, "/api/openapi.json", None).await;
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/auth/signup"]["post"].is_object());
    s.shutdown().await;
}
both_backends!(operator_endpoints);

#[actix_rt::test]
async fn serves_the_web_client_and_its_routes() {
    let b = Backend::new(Db::Sqlite).await;
    let web = tempfile::tempdir().unwrap();
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><title>StudyOn shell</title>",
    )
    .unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("assets/app-123.js"), "console.log(1)").unwrap();
    let dir = web.path().display().to_string();
    let s = start(&b, &["--web-dir", &dir]).await;
    let c = client();
    for path in ["/", "/login", "/studies/42"] {
        let mut r = c.get(format!("{}{path}", s.url())).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(String::from_utf8_lossy(&r.body().await.unwrap()).contains("StudyOn shell"));
    }
    let mut r = c
        .get(format!("{}/assets/app-123.js", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(&r.body().await.unwrap()[..], b"console.log(1)");
    // A missing asset is a 404, not the app shell.
    let r = c
        .get(format!("{}/assets/missing.js", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Hidden files and paths out of the web dir are never served.
    std::fs::write(web.path().join(".env"), "SECRET=hunter2").unwrap();
    std::fs::write(b.dir.path().join("outside.txt"), "OUTSIDE-SECRET").unwrap();
    let outside = format!(
        "/%2e%2e/{}/outside.txt",
        b.dir.path().file_name().unwrap().to_string_lossy()
    );
    for path in [
        "/.env",
        "/%2e%2e/%2e%2e/etc/passwd",
        outside.as_str(),
        "/assets/..%2f.env",
    ] {
        let mut r = c.get(format!("{}{path}", s.url())).send().await.unwrap();
        let body = String::from_utf8_lossy(&r.body().await.unwrap()).to_string();
        assert!(
            !body.contains("hunter2")
                && !body.contains("OUTSIDE-SECRET")
                && !body.contains("root:"),
            "{path}: {body}"
        );
    }
    s.shutdown().await;
}

/// Sign-ups are limited per client address (`--signup-burst`, then one every 20 s): the
/// refused one answers 429 `rate_limited` with `Retry-After` and creates nothing; invalid
/// input is refused for what it is and does not use up the burst.
#[actix_rt::test]
async fn signups_are_limited_per_address() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &["--signup-burst", "2"]).await;
    let bad = json!({ "login_id": "short_pw", "display_name": "Short", "password": "x" });
    for _ in 0..3 {
        let (st, body, _) = post(&s, "/api/auth/signup", bad.clone(), None).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (400, Some("validation_failed"))
        );
    }
    signup(&s).await;
    signup(&s).await;
    let body = json!({ "login_id": "one_too_many", "display_name": "Late", "password": "correct horse battery" });
    let (st, refused, headers) = post(&s, "/api/auth/signup", body, None).await;
    assert_eq!(
        (st, refused["error"].as_str()),
        (429, Some("rate_limited")),
        "{refused}"
    );
    let retry = retry_after(&headers);
    assert!((1..=20).contains(&retry), "{retry}");
    let (st, _, _) = post(
        &s,
        "/api/auth/login",
        json!({ "login_id": "one_too_many", "password": "correct horse battery" }),
        None,
    )
    .await;
    assert_eq!(st, 401, "the refused sign-up created no account");
    s.shutdown().await;
}

/// State-changing requests are limited per user (a burst of 120, then 10 a second): the
/// refused write answers 429 and stores nothing, reads go on, and other users are not
/// affected.
#[actix_rt::test]
async fn writes_are_limited_per_user() {
    let b = Backend::new(Db::Sqlite).await;
    let s = start(&b, &[]).await;
    let [flooder, other] = signups(&s).await;
    let study = crate::studies::create_study(
        &s,
        &flooder.cookie,
        crate::studies::study_body("Flood", &[], 5, "2027-02-01"),
    )
    .await;
    let path = format!("/api/studies/{study}/tasks");
    let started = std::time::Instant::now();
    let mut stored = 0;
    let refused = loop {
        let (st, body, headers) = post(
            &s,
            &path,
            json!({ "title": "again" }),
            Some(&flooder.cookie),
        )
        .await;
        match st {
            201 => stored += 1,
            429 => break (body, headers),
            _ => panic!("{st} {body}"),
        }
        assert!(stored < 400, "never limited");
    };
    // The burst (less the study it created), plus what refilled while it ran.
    let refilled = (started.elapsed().as_secs_f64() * 10.0).ceil() as i64;
    assert!(
        stored >= 119 && stored <= 119 + refilled + 1,
        "{stored} writes, {refilled} refilled"
    );
    assert_eq!(refused.0["error"], "rate_limited");
    assert!(retry_after(&refused.1) >= 1);
    // Writes that follow at once are refused the same way (these take the short path that
    // skips the session lookup) and store nothing, except what refilled meanwhile.
    let again = std::time::Instant::now();
    let mut refused_again = 0;
    for _ in 0..5 {
        let (st, body, headers) = post(
            &s,
            &path,
            json!({ "title": "again" }),
            Some(&flooder.cookie),
        )
        .await;
        match st {
            201 => stored += 1,
            429 => {
                assert_eq!(body["error"], "rate_limited");
                assert!(retry_after(&headers) >= 1);
                refused_again += 1;
            }
            _ => panic!("{st} {body}"),
        }
    }
    let refilled = (again.elapsed().as_secs_f64() * 10.0).ceil() as i64 + 1;
    assert!(
        refused_again >= 5 - refilled.min(5),
        "{refused_again} of 5 refused, {refilled} refilled"
    );
    let (st, board) = get(&s, &path, Some(&flooder.cookie)).await;
    assert_eq!(st, 200, "reads are not limited");
    assert_eq!(
        board["items"].as_array().unwrap().len() as i64,
        stored,
        "the refused write stored nothing"
    );
    // Someone else writes as usual.
    let (st, _, _) = post(
        &s,
        "/api/studies",
        crate::studies::study_body("Mine", &[], 5, "2027-02-01"),
        Some(&other.cookie),
    )
    .await;
    assert_eq!(st, 201);
    // And the flooder may write again once a token has refilled.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (st, _, _) = post(
        &s,
        &path,
        json!({ "title": "later" }),
        Some(&flooder.cookie),
    )
    .await;
    assert_eq!(st, 201);
    s.shutdown().await;
}

/// A sign-up claiming to come from `forwarded_for`; its status.
async fn signup_via(s: &RunningServer, forwarded_for: &str) -> u16 {
    let body = json!({
        "login_id": unique("xff"),
        "display_name": unique("proxied"),
        "password": "correct horse battery",
    });
    client()
        .post(format!("{}/api/auth/signup", s.url()))
        .insert_header(("Origin", origin(s)))
        .insert_header(("X-Forwarded-For", forwarded_for.to_string()))
        .send_json(&body)
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// Behind a trusted proxy each client has its own sign-up limit, taken from the proxy's
/// `X-Forwarded-For`; without `--trusted-proxies` the header is ignored, so writing it does
/// not buy more sign-ups.
#[actix_rt::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let b = Backend::new(Db::Sqlite).await;
    let proxied = start(
        &b,
        &["--signup-burst", "1", "--trusted-proxies", "127.0.0.1"],
    )
    .await;
    assert_eq!(signup_via(&proxied, "203.0.113.1").await, 201);
    assert_eq!(
        signup_via(&proxied, "203.0.113.2").await,
        201,
        "another client"
    );
    assert_eq!(
        signup_via(&proxied, "203.0.113.1").await,
        429,
        "the first client again"
    );
    // A client-written entry left of the proxy's does not make a new client.
    assert_eq!(signup_via(&proxied, "198.51.100.9, 203.0.113.2").await, 429);
    proxied.shutdown().await;

    let b = Backend::new(Db::Sqlite).await;
    let direct = start(&b, &["--signup-burst", "1"]).await;
    assert_eq!(signup_via(&direct, "203.0.113.1").await, 201);
    assert_eq!(
        signup_via(&direct, "203.0.113.2").await,
        429,
        "the header was believed"
    );
    direct.shutdown().await;
}
