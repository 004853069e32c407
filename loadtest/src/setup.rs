//! The HTTP setup for `chat-fanout` on StudyOn: users, one study they all belong to, one room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::http::{self, Response};

const TIMEOUT: Duration = Duration::from_secs(60);
pub const PASSWORD: &str = "loadtest-password-1234";

pub struct Setup {
    /// `Cookie` header value per user (index 0 is the leader).
    pub cookies: Vec<String>,
    pub room_id: Value,
    pub study_id: String,
}

/// A task on the set-up study's board, created by its leader; returns its id.
pub async fn create_task(
    addr: SocketAddr,
    origin: &str,
    s: &Setup,
    title: &str,
) -> Result<String, String> {
    let path = format!("/api/studies/{}/tasks", s.study_id);
    let r = post(
        addr,
        origin,
        Some(&s.cookies[0]),
        &path,
        json!({ "title": title }),
    )
    .await?;
    let task = expect(&r, 201, "create task")?;
    id_text(&task["task"]["id"]).ok_or_else(|| "create task: no task.id".to_string())
}

pub fn expect(resp: &Response, status: u16, what: &str) -> Result<Value, String> {
    if resp.status != status {
        return Err(format!(
            "{what}: HTTP {} (wanted {status}): {}",
            resp.status,
            resp.text()
        ));
    }
    resp.json()
}

pub async fn post(
    addr: SocketAddr,
    origin: &str,
    cookie: Option<&str>,
    path: &str,
    body: Value,
) -> Result<Response, String> {
    let mut headers = vec![("Origin", origin)];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    http::request(addr, "POST", path, &headers, Some(&body), TIMEOUT).await
}

/// Signs up `users` users (4 at a time: each hashes a password on the server), has user 0
/// create a study and a room, and has everyone else apply and get accepted.
pub async fn run(addr: SocketAddr, origin: &str, users: usize) -> Result<Setup, String> {
    let gate = Arc::new(Semaphore::new(4));
    let mut tasks = Vec::new();
    for i in 0..users {
        let gate = gate.clone();
        let origin = origin.to_string();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let body = json!({
                "login_id": format!("load_user_{i:03}"),
                "display_name": format!("Load {i}"),
                "password": PASSWORD,
            });
            let r = post(addr, &origin, None, "/api/auth/signup", body).await?;
            expect(&r, 201, "sign-up")?;
            r.session_cookie()
                .ok_or_else(|| "sign-up set no studyon_session cookie".to_string())
        }));
    }
    let mut cookies = Vec::with_capacity(users);
    for t in tasks {
        cookies.push(t.await.map_err(|e| e.to_string())??);
    }
    let leader = cookies[0].as_str();
    let study_id = study_of(addr, origin, &cookies).await?;

    let path = format!("/api/studies/{study_id}/chat_rooms");
    let r = post(
        addr,
        origin,
        Some(leader),
        &path,
        json!({ "name": "load", "category": "general" }),
    )
    .await?;
    if r.status == 404 || r.status == 405 {
        return Err(format!(
            "create chat room: HTTP {} — this server build has no chat rooms yet ({})",
            r.status,
            r.text()
        ));
    }
    let room = expect(&r, 201, "create chat room")?;
    let room_id = room["room"]["id"].clone();
    if room_id.is_null() {
        return Err("create chat room: no room.id".into());
    }
    Ok(Setup {
        cookies,
        room_id,
        study_id,
    })
}

/// A study led by `cookies[0]` with the others as members; returns its id.
pub async fn study_of(
    addr: SocketAddr,
    origin: &str,
    cookies: &[String],
) -> Result<String, String> {
    let leader = cookies.first().ok_or("a study needs a leader")?.as_str();
    let r = post(
        addr,
        origin,
        Some(leader),
        "/api/studies",
        json!({
            "title": "Load test study",
            "description": "Created by the chat-fanout load test.",
            "tags": [],
            "capacity": 100,
            "recruit_opens_on": "2026-01-01",
            "recruit_closes_on": "2027-02-01",
            "starts_on": "2027-03-01",
            "ends_on": "2027-06-01",
        }),
    )
    .await?;
    let study = expect(&r, 201, "create study")?;
    let study_id = id_text(&study["study"]["id"]).ok_or("create study: no study.id")?;

    for (i, cookie) in cookies.iter().enumerate().skip(1) {
        let path = format!("/api/studies/{study_id}/applications");
        let r = post(addr, origin, Some(cookie), &path, json!({ "message": "" })).await?;
        let app = expect(&r, 201, &format!("user {i} applies"))?;
        let app_id = id_text(&app["application"]["id"]).ok_or("apply: no application.id")?;
        let path = format!("/api/studies/{study_id}/applications/{app_id}/decision");
        let r = post(addr, origin, Some(leader), &path, json!({ "accept": true })).await?;
        if !(200..300).contains(&r.status) {
            return Err(format!("accept user {i}: HTTP {}: {}", r.status, r.text()));
        }
    }
    Ok(study_id)
}

/// An id as it goes into a path: numbers and strings alike.
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
