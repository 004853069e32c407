//! The socket shell: one per live connection, on any endpoint.
//!
//! Each socket gets two tasks: this loop, which owns the connection's lifecycle (register in
//! the hub, `hello`, heartbeat, size and rate limits, control messages, close, cleanup) and
//! hands every request, binary frame and control message to the message family that owns it;
//! and a writer, which drains the bounded outbound queue into the socket. Other actors never
//! touch the socket: they push frames through the router. The shell names no family: what a
//! socket can do is the [`Endpoint`]'s list of families.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseReason};
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;

use super::close_code;
use super::family::{Conn, Endpoint, OpenFamily};
use super::frame::{ErrorFrame, Frame, Hello, PROTOCOL_VERSION, Resync, Scope, ServerFrame};
use super::hub::{Outbound, QueueBound};
use super::protocol;
use super::router::Control;
use super::transport::ConnSocket;
use crate::error::{ApiError, ErrorBody};
use crate::http::auth::Authenticated;
use crate::ids::{ConnId, SessionId};
use crate::ratelimit::Policy;
use crate::server::AppState;
use crate::store::{Millis, User, now_millis};

/// Socket messages per user, across all their sockets: by default (`STUDYON_WS_RATE`) a
/// burst of 100, 50 a second sustained. Generous for a few browser tabs and a fast typist,
/// tight enough that one user cannot monopolize their actors' attention however many
/// sockets they open.
pub fn socket_policy(per_second: u32) -> Policy {
    Policy::new(per_second.saturating_mul(2), f64::from(per_second))
}
/// Users whose socket rate is tracked at once (see `KeyedBuckets`).
pub const SOCKET_RATE_TRACKED: usize = 100_000;
/// How long a close frame may wait for room in a congested socket before we just hang up.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// After the close frame is queued, how long the peer has to take what is buffered before it
/// and end the connection; then the connection is reset. A reader that keeps up finishes in
/// a round trip; one that stopped reading must not keep buffers and a socket for longer.
const CLOSE_DRAIN: Duration = Duration::from_secs(5);

/// Upgrades an authenticated request on `/ws`.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "live",
    summary = "Upgrade to the live WebSocket (protocol: src/ws/PROTOCOL.md); Origin checked",
    responses((status = 101, description = "Switching to the WebSocket protocol (see PROTOCOL.md)"), (status = 401, description = "unauthenticated", body = ErrorBody), (status = 403, description = "bad_origin", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    // `?binary=1`: no JSON at all, for clients that take binary frames only.
    let binary =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .is_ok_and(|q| q.get("binary").is_some_and(|v| v == "1"));
    let endpoint = if binary {
        state.ws_binary.clone()
    } else {
        state.ws.clone()
    };
    serve(&req, payload, state, auth, endpoint, Vec::new())
}

/// Upgrades an authenticated request to a WebSocket on `endpoint` and starts the shell.
/// `params` are the endpoint's path parameters, handed to its families.
pub fn serve(
    req: &HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: Authenticated,
    endpoint: Arc<Endpoint>,
    params: Vec<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    // A cross-site page could open a socket with the user's cookie: the upgrade is a GET, so
    // the general CSRF check does not cover it.
    crate::http::check_origin(req, &state)?;
    if state.is_shutting_down() {
        return Err(ApiError::Unavailable);
    }
    let (resp, session, stream) =
        actix_ws::handle(req, payload).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let settings = &state.settings;
    let hard_max = settings.ws_max_message_bytes.saturating_mul(4);
    let stream = stream
        .max_frame_size(hard_max)
        .aggregate_continuations()
        .max_continuation_size(hard_max);
    let bound = QueueBound {
        frames: settings.ws_outbound_queue,
        bytes: settings.ws_outbound_bytes,
    };
    let Some(reg) = state
        .hub
        .register(auth.user.id, bound, settings.ws_max_per_user)
    else {
        // A browser can read a close code but not the status of a refused upgrade.
        metrics::counter!(crate::metrics::WS_CLOSED, "reason" => "too_many_sockets").increment(1);
        let close = CloseReason {
            code: close_code::TOO_MANY_SOCKETS.into(),
            description: Some("too_many_sockets".into()),
        };
        actix_rt::spawn(async move {
            let _ = tokio::time::timeout(CLOSE_WAIT, session.close(Some(close))).await;
        });
        return Ok(resp);
    };
    let writer = actix_rt::spawn(writer(session.clone(), reg.out, reg.queued.clone()));
    let shell = Shell {
        socket: req.conn_data::<Arc<ConnSocket>>().cloned(),
        writer,
        id: reg.id,
        user: auth.user,
        session: auth.session,
        session_expires_at: auth.expires_at,
        out: reg.out_tx,
        ws: session,
        state: state.clone(),
        endpoint,
        params,
        last_heard: Instant::now(),
    };
    actix_rt::spawn(run(shell, stream, reg.ctl));
    Ok(resp)
}

/// Frames taken from the queue per wake-up: everything queued for a connection is handed to
/// the socket back to back, so the HTTP layer encodes them into one buffer and writes them in
/// one go instead of one write per frame.
const WRITE_BATCH: usize = 128;

/// Drains the outbound queue into the socket until either side goes away, or until a queued
/// close is sent (true if it was).
async fn writer(
    mut ws: actix_ws::Session,
    mut out: mpsc::Receiver<Outbound>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
) -> bool {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while out.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for frame in batch.drain(..) {
            if let Outbound::Frame(f) = &frame {
                queued.fetch_sub(f.len(), std::sync::atomic::Ordering::AcqRel);
            }
            let r = match frame {
                Outbound::Frame(Frame::Text(t)) => ws.text(t).await,
                Outbound::Frame(Frame::Binary(b)) => ws.binary(b).await,
                Outbound::Ping => ws.ping(b"").await,
                Outbound::Pong(p) => ws.pong(&p).await,
                Outbound::Close(reason) => return ws.close(Some(reason)).await.is_ok(),
            };
            if r.is_err() {
                return false;
            }
        }
    }
    false
}

/// The connection's own state; the families' state lives beside it.
struct Shell {
    /// The TCP connection, to reset it when a close cannot complete.
    socket: Option<Arc<ConnSocket>>,
    /// The task writing the outbound queue into the socket.
    writer: actix_rt::task::JoinHandle<bool>,
    id: ConnId,
    user: User,
    session: SessionId,
    session_expires_at: Millis,
    /// This connection's own outbound queue (pings and pongs).
    out: mpsc::Sender<Outbound>,
    ws: actix_ws::Session,
    state: web::Data<AppState>,
    endpoint: Arc<Endpoint>,
    params: Vec<(String, String)>,
    last_heard: Instant,
}

/// How the loop ended, for the close frame and the metric.
struct Ending {
    code: u16,
    reason: &'static str,
}

const SLOW: Ending = Ending {
    code: close_code::SLOW_CONSUMER,
    reason: "slow_consumer",
};

impl Shell {
    fn conn(&self) -> Conn<'_> {
        Conn {
            id: self.id,
            user: &self.user,
            session: self.session,
            app: &self.state,
            params: &self.params,
        }
    }

    /// Counts one incoming message against the size limit and the rate; false (with an
    /// error frame sent) if it is refused.
    fn admit(&mut self, len: usize) -> bool {
        self.admit_frame(len, false).is_ok()
    }

    /// As [`Shell::admit`]; a refused binary frame ends the connection instead (see
    /// [`close_code::RATE_LIMITED`]).
    fn admit_frame(&mut self, len: usize, binary: bool) -> Result<(), Option<Ending>> {
        if binary {
            let max = self.state.settings.ws_max_message_bytes;
            if len > max {
                return Err(Some(Ending {
                    code: close_code::TOO_BIG,
                    reason: "message_too_large",
                }));
            }
            if self
                .state
                .socket_rates
                .take(self.user.id, Instant::now())
                .is_err()
            {
                return Err(Some(Ending {
                    code: close_code::RATE_LIMITED,
                    reason: "rate_limited",
                }));
            }
            return Ok(());
        }
        let max = self.state.settings.ws_max_message_bytes;
        if len > max {
            let e = ErrorFrame::protocol(
                None,
                "message_too_large",
                format!("messages are limited to {max} bytes"),
            );
            self.conn().send(&e);
            return Err(None);
        }
        if let Err(wait) = self.state.socket_rates.take(self.user.id, Instant::now()) {
            let e = ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            };
            self.conn().error(None, &e);
            return Err(None);
        }
        Ok(())
    }
}

async fn run(
    mut shell: Shell,
    mut stream: AggregatedMessageStream,
    mut ctl: mpsc::Receiver<Control>,
) {
    let mut families = shell.endpoint.families.open(&shell.conn());
    if shell.endpoint.hello {
        let hello = Hello {
            v: PROTOCOL_VERSION,
            conn_id: shell.id.to_string(),
            user: &shell.user,
            heartbeat_ms: shell.state.settings.heartbeat().as_millis() as u64,
            max_message_bytes: shell.state.settings.ws_max_message_bytes,
        }
        .to_frame();
        shell.conn().push(hello);
    }
    for f in &mut families {
        f.opened(&shell.conn()).await;
    }

    let heartbeat = shell.state.settings.heartbeat();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let ending = loop {
        tokio::select! {
            msg = stream.recv() => match msg {
                None => break None,
                Some(Ok(m)) => {
                    shell.last_heard = Instant::now();
                    if let Some(end) = on_message(&mut shell, &mut families, m).await {
                        break Some(end);
                    }
                }
                Some(Err(e)) => {
                    let (code, reason) = match e {
                        actix_ws::ProtocolError::Overflow => (close_code::TOO_BIG, "frame_too_large"),
                        // A message in fragments past the limit: actix-ws reports it as an
                        // I/O error of kind `Other` (a UTF-8 failure is `InvalidData`).
                        actix_ws::ProtocolError::Io(ref io) if io.kind() == std::io::ErrorKind::Other => {
                            (close_code::TOO_BIG, "message_too_large")
                        }
                        _ => (close_code::PROTOCOL_ERROR, "protocol_error"),
                    };
                    break Some(Ending { code, reason });
                }
            },
            c = ctl.recv() => match c {
                None => break Some(Ending { code: close_code::GOING_AWAY, reason: "server_stopping" }),
                Some(c) => if let Some(end) = on_control(&mut shell, &mut families, c).await {
                    break Some(end);
                },
            },
            _ = tick.tick() => {
                if shell.last_heard.elapsed() >= heartbeat * 2 {
                    break Some(Ending { code: close_code::HEARTBEAT_TIMEOUT, reason: "heartbeat_timeout" });
                }
                if now_millis() >= shell.session_expires_at {
                    break Some(Ending { code: close_code::SESSION_ENDED, reason: "session_expired" });
                }
                if shell.out.try_send(Outbound::Ping).is_err() {
                    break Some(SLOW);
                }
            }
        }
    };
    let mut queued = false;
    if let Some(end) = &ending {
        metrics::counter!(crate::metrics::WS_CLOSED, "reason" => end.reason).increment(1);
        if end.code == close_code::SLOW_CONSUMER {
            // What is still queued would only delay the close frame behind it.
            shell.writer.abort();
        }
        let close = CloseReason {
            code: end.code.into(),
            description: Some(end.reason.to_string()),
        };
        // Behind what is queued (an error frame explaining the close goes first), unless the
        // queue is full or the writer is gone; then straight to the socket.
        let in_order = end.code != close_code::SLOW_CONSUMER
            && shell.out.try_send(Outbound::Close(close.clone())).is_ok();
        queued = if in_order {
            matches!(
                tokio::time::timeout(CLOSE_WAIT, &mut shell.writer).await,
                Ok(Ok(true))
            )
        } else {
            let closing = shell.ws.clone().close(Some(close));
            matches!(tokio::time::timeout(CLOSE_WAIT, closing).await, Ok(Ok(())))
        };
    }
    shell.state.hub.unregister(shell.id);
    for f in &mut families {
        f.closed(&shell.conn()).await;
    }
    if ending.is_some() {
        // The peer reads up to the close frame and the connection ends; if it does not within
        // CLOSE_DRAIN (or the frame could not even be queued), the connection is reset.
        let drained = async { while stream.recv().await.is_some() {} };
        let finished = queued && tokio::time::timeout(CLOSE_DRAIN, drained).await.is_ok();
        if !finished && let Some(socket) = &shell.socket {
            metrics::counter!(crate::metrics::WS_CLOSED, "reason" => "reset").increment(1);
            socket.abort();
        }
    }
}

async fn on_control(
    shell: &mut Shell,
    families: &mut [Box<dyn OpenFamily>],
    c: Control,
) -> Option<Ending> {
    match c {
        Control::Close { code, reason } => Some(Ending {
            code,
            reason: match code {
                close_code::SESSION_ENDED => "session_ended",
                close_code::GOING_AWAY => "server_stopping",
                _ => {
                    tracing::debug!(%reason, "closing connection");
                    "closed_by_server"
                }
            },
        }),
        Control::SlowConsumer => Some(SLOW),
        Control::Resync { key } => {
            // The families re-attach first (a study is watched again), then the client is
            // told to re-fetch, so nothing it re-reads can miss a live frame.
            for f in families.iter_mut() {
                f.control(&shell.conn(), &Control::Resync { key }).await;
            }
            // A binary-only endpoint's clients read no JSON: their families resync them in
            // their own protocol (a document sends its sync step 1 on re-attach).
            if shell.endpoint.text
                && let Some(scope) = shell.state.registry.kinds().resync_scope(&key)
            {
                shell.conn().send(&Resync {
                    scope: Scope(scope),
                });
            }
            None
        }
        c @ Control::Released { .. } => {
            for f in families.iter_mut() {
                f.control(&shell.conn(), &c).await;
            }
            None
        }
    }
}

async fn on_message(
    shell: &mut Shell,
    families: &mut [Box<dyn OpenFamily>],
    msg: AggregatedMessage,
) -> Option<Ending> {
    match msg {
        AggregatedMessage::Text(text) => on_text(shell, families, text).await,
        AggregatedMessage::Binary(bytes) => on_binary(shell, families, bytes).await,
        AggregatedMessage::Ping(p) => {
            if shell.out.try_send(Outbound::Pong(p)).is_err() {
                return Some(SLOW);
            }
            None
        }
        AggregatedMessage::Pong(_) => None,
        AggregatedMessage::Close(_) => Some(Ending {
            code: 1000,
            reason: "client_closed",
        }),
    }
}

async fn on_text(
    shell: &mut Shell,
    families: &mut [Box<dyn OpenFamily>],
    text: ByteString,
) -> Option<Ending> {
    if !shell.endpoint.text {
        return Some(Ending {
            code: close_code::UNSUPPORTED_DATA,
            reason: "unsupported_text",
        });
    }
    if !shell.admit(text.len()) {
        return None;
    }
    let route = &shell.endpoint.families;
    let envelope = match protocol::parse(&text, |t| route.route(t).is_some()) {
        Ok(e) => e,
        Err(e) => {
            shell
                .conn()
                .send(&ErrorFrame::protocol(e.id(), e.code(), e.message()));
            return None;
        }
    };
    let index = route.route(&envelope.ty).expect("parse checked the type");
    families[index]
        .request(&shell.conn(), envelope.id, envelope.body)
        .await;
    None
}

/// Offers a binary frame to each family in turn; the first that takes it handles it.
async fn on_binary(
    shell: &mut Shell,
    families: &mut [Box<dyn OpenFamily>],
    bytes: Bytes,
) -> Option<Ending> {
    if let Err(end) = shell.admit_frame(bytes.len(), true) {
        return end;
    }
    let mut frame = bytes;
    for f in families.iter_mut() {
        match f.binary(&shell.conn(), frame).await {
            None => return None,
            Some(back) => frame = back,
        }
    }
    if !shell.endpoint.text {
        return Some(Ending {
            code: close_code::UNSUPPORTED_DATA,
            reason: "unsupported_binary",
        });
    }
    let e = ErrorFrame::protocol(
        None,
        "unsupported_binary",
        "no message family on this connection takes binary frames".into(),
    );
    shell.conn().send(&e);
    None
}
