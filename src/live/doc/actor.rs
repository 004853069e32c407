//! `PostDoc`: one per post body being edited. It is the document's single writer:
//!
//! - Peers' updates are applied in memory at once, then stored (one log row per commit: the
//!   updates that arrived while the previous commit was in flight are merged into one row)
//!   and only after that commit relayed to the other peers. Nothing anyone saw is lost in a
//!   crash, and a sync step 1 that arrives while updates wait for their commit is answered
//!   after it, so no peer reads state that is not stored yet.
//! - Document writes go straight to the store under their own budget ([`DOC_WRITES`]), not
//!   through the shared persistence queue: a burst of typing cannot make chat sends `busy`.
//! - Past [`COMPACT_ROWS`] rows or [`COMPACT_BYTES`] the log is folded into a snapshot.
//! - The post row's title/body copy (listing, search, HTTP readers) is refreshed on a
//!   debounce ([`REFRESH_AFTER`]); automatic versions are taken when editing goes quiet.
//! - Access: members read and write; a locked post is read-only except for the leader.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::awareness::{self, Awareness, Entry};
use super::proto::{self, Framing, Message, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE};
use super::text::{DocCore, DocError};
use super::{close_code, metric};
use crate::ids::{ConnId, PostId, StudyId, UserId};
use crate::keyed_actor_handlers;
use crate::live::CommandError;
use crate::live::study::{Study, StudyEvent, StudyMsg};
use crate::registry::{Deps, KeyedActor, Registry, ReplyTo, ResyncScope, StartError, Supervision};
use crate::store::docs::{DocVersion, NewDocVersion};
use crate::store::{Rule, now_millis};
use crate::studies::Role;
use crate::tasks::order::{Item, Step};
use crate::ws::frame::Frame;
use crate::ws::router::Control;

/// Document commits in flight at once on this node: enough to keep several documents
/// moving, few enough that documents never hold every store connection chat needs.
const DOC_WRITE_SLOTS: usize = 4;
pub static DOC_WRITES: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(DOC_WRITE_SLOTS));
/// Log rows, or bytes, after which the log is folded into the snapshot: loading replays
/// at most this much, and the table does not grow with every keystroke forever.
pub const COMPACT_ROWS: i64 = 100;
pub const COMPACT_BYTES: usize = 256 * 1024;
/// The post row's body copy lags the document by at most this (the issue's ≤ 2 s).
const REFRESH_AFTER: Duration = Duration::from_millis(1500);
/// Editing quiet for this long ends a session: an automatic version is taken.
pub const VERSION_QUIET: Duration = Duration::from_secs(60);
/// Updates waiting for the next commit before a sender is dropped as too fast: a commit
/// takes milliseconds, so a full queue means the store is stalled.
const PENDING_MAX: usize = 4096;
/// Step-1 answers deferred behind a commit; past this, the asking socket is dropped.
const DEFERRED_MAX: usize = 1024;
/// A peer whose update skips blocks we never got (typically its own edit refused while the
/// post was locked) is asked to sync again; while that request is unanswered, for at most
/// this long, it is not asked again: the answer carries every update sent before it, and a
/// peer that cannot answer must not get a step 1 per keystroke.
const ASK_AGAIN_EVERY: Duration = Duration::from_secs(2);

/// Messages to a post's document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PostDocMsg {
    /// A socket opens the document. Answers `Attached` with whether it may write, or
    /// `not_found` for a non-member.
    Attach {
        conn: ConnId,
        user: UserId,
        /// The user's display name, which the server writes into their awareness states.
        name: String,
        framing: Framing,
    },
    /// One y-protocols message (without a document name) from an attached socket.
    Frame {
        conn: ConnId,
        data: Vec<u8>,
    },
    Detach {
        conn: ConnId,
    },
    /// Makes the body `text` with a minimal edit (the HTTP API, and restoring a version).
    /// Answers after the change is stored and the post row refreshed.
    ReplaceText {
        user: UserId,
        text: String,
        /// The caller is the study's leader (writes a locked post).
        leader: bool,
    },
    /// The leader locked or unlocked the post (already stored).
    SetLock {
        locked: bool,
    },
    /// Takes a named version of the body now.
    TakeVersion {
        user: UserId,
        name: String,
    },
    /// The user left the study or was removed: their sockets lose the document at once.
    DropUser {
        user: UserId,
    },
    /// The post was deleted: every socket is told and the actor stops.
    Deleted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PostDocReply {
    Attached { writable: bool },
    Done,
    Version(DocVersion),
}

pub type PostDocResult = Result<PostDocReply, CommandError>;

struct Peer {
    user: UserId,
    /// Display name, stamped on this peer's awareness states.
    name: String,
    leader: bool,
    framing: Framing,
    /// When we asked this peer to sync again, until its step 2 answers (see
    /// [`ASK_AGAIN_EVERY`]).
    asked_again: Option<Instant>,
}

/// An update applied in memory and waiting for its commit.
struct Pending {
    data: Vec<u8>,
    /// The socket it came from (not echoed back), or none for the server's own edits.
    from: Option<ConnId>,
    /// Who answers once it is stored (`ReplaceText`).
    waiter: Option<ReplyTo<PostDocResult>>,
}

pub struct PostDoc {
    id: PostId,
    study: StudyId,
    sup: Supervision,
    deps: Arc<Deps>,
    registry: Registry,
    core: DocCore,
    locked: bool,
    peers: HashMap<ConnId, Peer>,
    awareness: Awareness,
    /// The seq the next log row gets.
    next_seq: i64,
    /// Log rows and bytes since the snapshot.
    log_rows: i64,
    log_bytes: usize,
    pending: Vec<Pending>,
    /// A commit or compaction is running.
    writing: bool,
    /// Step-1 answers held until nothing is waiting for a commit.
    deferred: Vec<(ConnId, Vec<u8>)>,
    /// Body text last copied into the post row, and whether a copy is scheduled.
    refreshed: String,
    refresh_scheduled: bool,
    /// Who changed the text since the last version, and when the last change was.
    authors: HashSet<UserId>,
    last_edit: Instant,
    version_timer: bool,
    /// Post-row refreshes and version writes running (the actor must not stop under them).
    side_writes: usize,
    /// Size last reported to the document-bytes gauge.
    reported_bytes: usize,
}

impl Actor for PostDoc {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        metrics::gauge!(metric::DOCS_LOADED).increment(1.0);
        self.report_bytes();
        if self.core.text() != self.refreshed {
            // The process stopped between a commit and the row's refresh: catch up now.
            self.refresh_scheduled = true;
            ctx.run_later(Duration::ZERO, |act, ctx| {
                act.refresh_scheduled = false;
                act.refresh(Vec::new(), ctx);
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!(metric::DOCS_LOADED).decrement(1.0);
        metrics::gauge!(metric::DOC_EDITORS).decrement(self.peers.len() as f64);
        metrics::gauge!(metric::DOC_BYTES).decrement(self.reported_bytes as f64);
        // Anyone still waiting learns the actor is gone (their update was not stored).
        for p in self.pending.drain(..) {
            if let Some(w) = p.waiter {
                w.send(Err(CommandError::Unavailable));
            }
        }
    }
}

impl PostDoc {
    fn report_bytes(&mut self) {
        let now = self.core.bytes();
        let g = metrics::gauge!(metric::DOC_BYTES);
        if now >= self.reported_bytes {
            g.increment((now - self.reported_bytes) as f64);
        } else {
            g.decrement((self.reported_bytes - now) as f64);
        }
        self.reported_bytes = now;
    }

    fn writable(&self, peer: &Peer) -> bool {
        !self.locked || peer.leader
    }

    fn send(&self, conn: ConnId, bytes: Vec<u8>) {
        self.deps
            .sockets
            .push(conn, Frame::Binary(Bytes::from(bytes)));
    }

    /// Sends a message to every peer but `except`, encoded once per framing.
    fn broadcast(&self, except: Option<ConnId>, encode: impl Fn(&Framing) -> Vec<u8>) {
        let mut plain = Vec::new();
        let mut named: HashMap<&Framing, Vec<ConnId>> = HashMap::new();
        for (c, p) in &self.peers {
            if Some(*c) == except {
                continue;
            }
            match &p.framing {
                Framing::Plain => plain.push(*c),
                f => named.entry(f).or_default().push(*c),
            }
        }
        if !plain.is_empty() {
            let frame = Frame::Binary(Bytes::from(encode(&Framing::Plain)));
            self.deps.sockets.push_many(&plain, &frame);
        }
        for (f, conns) in named {
            let frame = Frame::Binary(Bytes::from(encode(f)));
            self.deps.sockets.push_many(&conns, &frame);
        }
    }

    fn broadcast_awareness(&self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let update = awareness::encode(entries);
        // The sender too: it keeps the client's "connection alive" watchdog fed, and it is
        // what y-websocket's server does.
        self.broadcast(None, |f| f.awareness(&update));
    }

    /// Closes a socket's hold on the document: a plain socket is closed with `code`, a
    /// multiplexed one is told (permission denied) and keeps its other documents.
    fn cut(&mut self, conn: ConnId, code: u16, reason: &str) {
        if let Some(peer) = self.peers.get(&conn) {
            if peer.framing.is_named() {
                self.send(conn, peer.framing.denied(reason));
                self.deps.sockets.control(
                    conn,
                    Control::Released {
                        key: self.sup.key(),
                    },
                );
            } else {
                self.deps.sockets.control(
                    conn,
                    Control::Close {
                        code,
                        reason: reason.into(),
                    },
                );
            }
        }
        self.detach(conn);
    }

    fn detach(&mut self, conn: ConnId) {
        if self.peers.remove(&conn).is_some() {
            metrics::gauge!(metric::DOC_EDITORS).decrement(1.0);
        }
        self.sup.unwatch(&conn);
        self.deferred.retain(|(c, _)| *c != conn);
        let gone = self.awareness.remove_conn(conn);
        self.broadcast_awareness(&gone);
    }

    fn attach(
        &mut self,
        conn: ConnId,
        user: UserId,
        name: String,
        framing: Framing,
        reply: ReplyTo<PostDocResult>,
        ctx: &mut Context<Self>,
    ) {
        let (store, study) = (self.deps.store.clone(), self.study);
        ctx.spawn(
            async move { store.role_of(study, user).await }
                .into_actor(self)
                .map(move |role, act, _ctx| {
                    let leader = match role {
                        Ok(Some(Role::Leader)) => true,
                        Ok(Some(Role::Member)) => false,
                        Ok(_) => return reply.send(Err(CommandError::Rule(Rule::NotFound))),
                        Err(e) => return reply.send(Err(e.into())),
                    };
                    let peer = Peer {
                        user,
                        name,
                        leader,
                        framing,
                        asked_again: None,
                    };
                    let writable = act.writable(&peer);
                    // Our step 1 first: the client answers with what we lack (edits it made
                    // offline), then everyone present.
                    act.send(
                        conn,
                        peer.framing.sync(SYNC_STEP1, &act.core.state_vector()),
                    );
                    let present = act.awareness.present();
                    if !present.is_empty() {
                        act.send(conn, peer.framing.awareness(&awareness::encode(&present)));
                    }
                    if act.peers.insert(conn, peer).is_none() {
                        metrics::gauge!(metric::DOC_EDITORS).increment(1.0);
                    }
                    act.sup.watch(conn);
                    reply.send(Ok(PostDocReply::Attached { writable }));
                }),
        );
    }

    fn on_frame(&mut self, conn: ConnId, data: Vec<u8>, ctx: &mut Context<Self>) {
        let Some(peer) = self.peers.get(&conn) else {
            return; // detached meanwhile; the socket learns from its own state
        };
        let msg = match proto::decode(&data) {
            Ok(m) => m,
            Err(e) => {
                metrics::counter!(metric::DOC_REFUSED, "reason" => "malformed_message")
                    .increment(1);
                return self.refuse(conn, "malformed_message", &e.to_string());
            }
        };
        match msg {
            Message::SyncStep1(sv) => {
                if self.pending.is_empty() && !self.writing {
                    self.answer_step1(conn, sv);
                } else if self.deferred.len() < DEFERRED_MAX {
                    self.deferred.push((conn, sv.to_vec()));
                } else {
                    self.cut(conn, close_code::BUSY, "busy");
                }
            }
            Message::SyncStep2(u) | Message::Update(u) => {
                if matches!(msg, Message::SyncStep2(_))
                    && let Some(p) = self.peers.get_mut(&conn)
                {
                    // The answer to our step 1 (if we asked): the next gap may ask again.
                    p.asked_again = None;
                }
                let Some(peer) = self.peers.get(&conn) else {
                    return;
                };
                if !self.writable(peer) {
                    if !self.core.would_change(u) {
                        // Every client answers our step 1 with a step 2, usually empty: that
                        // is no write, so a read-only peer is not told off for it.
                        if peer.framing.is_named() {
                            self.send(conn, peer.framing.sync_status(true));
                        }
                        return;
                    }
                    metrics::counter!(metric::DOC_REFUSED, "reason" => "post_locked").increment(1);
                    return self.refuse(
                        conn,
                        "post_locked",
                        "this post is locked by the study's leader",
                    );
                }
                let user = peer.user;
                self.apply(conn, user, u, ctx);
            }
            Message::Awareness(b) => match awareness::decode(b) {
                Ok(mut entries) => {
                    // Whose cursor it is comes from the socket's login, not the client.
                    for e in &mut entries {
                        e.state = awareness::stamp(&e.state, peer.user, &peer.name);
                    }
                    let accepted = self.awareness.apply(conn, entries);
                    self.broadcast_awareness(&accepted);
                }
                Err(e) => self.refuse(conn, "malformed_message", &e.to_string()),
            },
            Message::QueryAwareness => {
                let present = self.awareness.present();
                self.send(conn, peer.framing.awareness(&awareness::encode(&present)));
            }
            Message::AuthToken => {
                let bytes = peer.framing.authenticated(self.writable(peer));
                self.send(conn, bytes);
            }
            Message::Close => self.detach(conn),
            Message::AuthOther | Message::Stateless | Message::SyncStatus => {}
        }
    }

    /// Sends the peer our step 1 so it answers with everything we lack (a refused edit its
    /// later edits build on, now that it may write).
    fn ask_again(&mut self, conn: ConnId) {
        let sv = self.core.state_vector();
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer
            .asked_again
            .is_some_and(|t| t.elapsed() < ASK_AGAIN_EVERY)
        {
            return;
        }
        peer.asked_again = Some(Instant::now());
        let bytes = peer.framing.sync(SYNC_STEP1, &sv);
        self.send(conn, bytes);
    }

    fn answer_step1(&mut self, conn: ConnId, sv: &[u8]) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        match self.core.diff(sv) {
            Ok(diff) => self.send(conn, peer.framing.sync(SYNC_STEP2, &diff)),
            Err(e) => self.refuse(conn, "malformed_message", &e.to_string()),
        }
    }

    /// Tells a socket its message was refused: a multiplexed client gets a sync status of
    /// `false` and a stateless JSON error; a y-websocket client, which has no error message,
    /// a permission-denied auth message with the code (its provider logs it).
    fn refuse(&self, conn: ConnId, code: &str, message: &str) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        if peer.framing.is_named() {
            self.send(conn, peer.framing.sync_status(false));
            let body = serde_json::json!({ "type": "error", "code": code, "message": message });
            self.send(conn, peer.framing.stateless(&body.to_string()));
        } else {
            self.send(conn, peer.framing.denied(code));
        }
    }

    fn apply(&mut self, conn: ConnId, user: UserId, update: &[u8], ctx: &mut Context<Self>) {
        if self.pending.len() >= PENDING_MAX {
            return self.cut(conn, close_code::BUSY, "busy");
        }
        match self.core.apply(update) {
            Ok(true) => {
                metrics::counter!(metric::DOC_UPDATES_APPLIED).increment(1);
                self.pending.push(Pending {
                    data: update.to_vec(),
                    from: Some(conn),
                    waiter: None,
                });
                self.edited(user, ctx);
                self.commit(ctx);
                if self.core.has_missing() {
                    self.ask_again(conn);
                }
            }
            Ok(false) => {
                // Nothing new (a resend): stored already, so say so at once.
                if let Some(peer) = self.peers.get(&conn)
                    && peer.framing.is_named()
                {
                    self.send(conn, peer.framing.sync_status(true));
                }
            }
            Err(DocError::TooLarge { max }) => {
                metrics::counter!(metric::DOC_REFUSED, "reason" => "document_too_large")
                    .increment(1);
                // The client now holds an edit the document will never take: a plain client
                // is closed (it stops reconnecting on a 44xx code) rather than left diverged.
                self.refuse(
                    conn,
                    "document_too_large",
                    &format!("a document holds at most {max} bytes"),
                );
                if let Some(peer) = self.peers.get(&conn)
                    && !peer.framing.is_named()
                {
                    self.cut(conn, close_code::TOO_LARGE, "document_too_large");
                }
            }
            Err(DocError::Gap) => {
                // Dropped: the peer's answer to our step 1 carries this update and the one it
                // builds on (anything it sent before answering is in that answer).
                metrics::counter!(metric::DOC_REFUSED, "reason" => "gap").increment(1);
                self.ask_again(conn);
            }
            Err(e @ DocError::Malformed(_)) => {
                metrics::counter!(metric::DOC_REFUSED, "reason" => "malformed_update").increment(1);
                self.refuse(conn, "malformed_update", &e.to_string());
            }
            Err(e @ DocError::Rejected(_)) => {
                // Yrs may have half-applied it: rebuild from what is stored, and make every
                // socket sync again (their unstored edits come back in the sync).
                metrics::counter!(metric::DOC_REFUSED, "reason" => "malformed_update").increment(1);
                tracing::warn!(post = %self.id, error = %e, "update broke the document; reloading it");
                self.refuse(conn, "malformed_update", &e.to_string());
                self.restart_clean(ctx);
            }
        }
    }

    /// Ends this actor without a crash restart: every socket is closed with "going away"
    /// (a multiplexed one just loses the document) and the next use loads from the store.
    fn restart_clean(&mut self, ctx: &mut Context<Self>) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for c in conns {
            self.cut(c, crate::ws::close_code::GOING_AWAY, "document_reloading");
        }
        self.sup.stop_cleanly();
        ctx.stop();
    }

    fn edited(&mut self, user: UserId, ctx: &mut Context<Self>) {
        self.authors.insert(user);
        self.last_edit = Instant::now();
        self.report_bytes();
        if !self.refresh_scheduled {
            self.refresh_scheduled = true;
            ctx.run_later(REFRESH_AFTER, |act, ctx| {
                act.refresh_scheduled = false;
                act.refresh(Vec::new(), ctx);
            });
        }
        if !self.version_timer {
            self.version_timer = true;
            ctx.run_later(VERSION_QUIET, |act, ctx| act.version_when_quiet(ctx));
        }
    }

    /// Stores what waits, as one row; relays it after the commit.
    fn commit(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let batch = std::mem::take(&mut self.pending);
        let row = if batch.len() == 1 {
            Ok(batch[0].data.clone())
        } else {
            yrs::merge_updates_v1(batch.iter().map(|p| p.data.as_slice()))
        };
        let seq = self.next_seq;
        let (store, post) = (self.deps.store.clone(), self.id);
        let write = async move {
            let row = row.map_err(|e| CommandError::Internal(format!("merging updates: {e}")))?;
            let _slot = DOC_WRITES
                .acquire()
                .await
                .map_err(|_| CommandError::Unavailable)?;
            let started = Instant::now();
            store.doc_append(post, seq, &row, now_millis()).await?;
            metrics::histogram!(metric::DOC_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
            Ok::<usize, CommandError>(row.len())
        };
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| {
            act.writing = false;
            match res {
                Ok(len) => {
                    act.next_seq += 1;
                    act.log_rows += 1;
                    act.log_bytes += len;
                    metrics::counter!(metric::DOC_LOG_ROWS).increment(1);
                    act.committed(batch, ctx);
                }
                Err(e) => {
                    // Not stored, so never relayed: the editors still hold these edits and send
                    // them again when they reconnect to a freshly loaded document.
                    tracing::warn!(post = %act.id, error = %e, "could not store document updates");
                    for p in batch {
                        if let Some(w) = p.waiter {
                            w.send(Err(e.clone()));
                        }
                    }
                    act.restart_clean(ctx);
                }
            }
        }));
    }

    fn committed(&mut self, batch: Vec<Pending>, ctx: &mut Context<Self>) {
        let mut waiters = Vec::new();
        for p in batch {
            let others =
                self.peers.len() - usize::from(p.from.is_some_and(|c| self.peers.contains_key(&c)));
            metrics::counter!(metric::DOC_FRAMES_RELAYED).increment(others as u64);
            self.broadcast(p.from, |f| f.sync(SYNC_UPDATE, &p.data));
            if let Some(c) = p.from
                && let Some(peer) = self.peers.get(&c)
                && peer.framing.is_named()
            {
                self.send(c, peer.framing.sync_status(true));
            }
            waiters.extend(p.waiter);
        }
        if !waiters.is_empty() {
            // An API edit answers once the post row shows it too.
            self.refresh(waiters, ctx);
        }
        if self.pending.is_empty() {
            for (c, sv) in std::mem::take(&mut self.deferred) {
                self.answer_step1(c, &sv);
            }
            if self.log_rows >= COMPACT_ROWS || self.log_bytes >= COMPACT_BYTES {
                return self.compact(ctx);
            }
        }
        self.commit(ctx);
    }

    /// Folds the log into the snapshot. Runs as the one write in flight, so no row can land
    /// between the state taken and the rows deleted.
    fn compact(&mut self, ctx: &mut Context<Self>) {
        self.writing = true;
        let state = self.core.encode_state();
        self.report_bytes();
        let upto = self.next_seq - 1;
        let (store, post) = (self.deps.store.clone(), self.id);
        let write = async move {
            let _slot = DOC_WRITES.acquire().await;
            store.doc_compact(post, &state, upto, now_millis()).await
        };
        ctx.spawn(write.into_actor(self).map(|res, act, ctx| {
            act.writing = false;
            match res {
                Ok(()) => {
                    metrics::counter!(metric::DOC_COMPACTIONS).increment(1);
                    act.log_rows = 0;
                    act.log_bytes = 0;
                }
                // The log is intact; the next commit tries again.
                Err(e) => {
                    tracing::warn!(post = %act.id, error = %e, "could not compact a document log")
                }
            }
            for (c, sv) in std::mem::take(&mut act.deferred) {
                act.answer_step1(c, &sv);
            }
            act.commit(ctx);
        }));
    }

    /// Copies the text into the post row and tells the study's members.
    fn refresh(&mut self, waiters: Vec<ReplyTo<PostDocResult>>, ctx: &mut Context<Self>) {
        let text = self.core.text();
        if text == self.refreshed {
            for w in waiters {
                w.send(Ok(PostDocReply::Done));
            }
            return;
        }
        let (store, registry, post) = (self.deps.store.clone(), self.registry.clone(), self.id);
        let body = text.clone();
        self.side_writes += 1;
        let work = async move {
            let (body, html) = tokio::task::spawn_blocking(move || {
                let html = crate::studies::markdown::render(&body);
                (body, html)
            })
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
            let (study, summary) = store
                .doc_refresh_post(post, &body, &html, now_millis())
                .await?;
            let order = Some((Item::Post(post), Step::At(summary.version)));
            let event = StudyEvent::PostUpdated { post: summary };
            let _ = registry
                .tell_if_running::<Study>(study, StudyMsg::AnnounceToMembers { event, order })
                .await;
            Ok::<(), CommandError>(())
        };
        ctx.spawn(work.into_actor(self).map(move |res, act, _ctx| {
            act.side_writes -= 1;
            match &res {
                Ok(()) => act.refreshed = text,
                Err(e) => {
                    tracing::warn!(post = %act.id, error = %e, "could not refresh a post's body")
                }
            }
            for w in waiters {
                w.send(res.clone().map(|()| PostDocReply::Done));
            }
        }));
    }

    /// The last editor left: the editing session ends with an automatic version (once what
    /// they typed is stored).
    fn session_ended(&mut self, ctx: &mut Context<Self>) {
        if !self.peers.is_empty() || self.authors.is_empty() {
            return;
        }
        if self.writing || !self.pending.is_empty() {
            ctx.run_later(Duration::from_millis(200), |act, ctx| {
                act.session_ended(ctx)
            });
            return;
        }
        self.take_version(None, None, ReplyTo::none(), ctx);
    }

    fn version_when_quiet(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.last_edit.elapsed();
        if quiet < VERSION_QUIET || self.writing || !self.pending.is_empty() {
            let wait = VERSION_QUIET
                .saturating_sub(quiet)
                .max(Duration::from_secs(1));
            ctx.run_later(wait, |act, ctx| act.version_when_quiet(ctx));
            return;
        }
        self.version_timer = false;
        self.take_version(None, None, ReplyTo::none(), ctx);
    }

    fn take_version(
        &mut self,
        name: Option<String>,
        by: Option<UserId>,
        reply: ReplyTo<PostDocResult>,
        ctx: &mut Context<Self>,
    ) {
        if name.is_none() && self.authors.is_empty() {
            return reply.send(Ok(PostDocReply::Done));
        }
        let authors: Vec<UserId> = std::mem::take(&mut self.authors).into_iter().collect();
        let body = self.core.text();
        let (store, post) = (self.deps.store.clone(), self.id);
        let kept = authors.clone();
        self.side_writes += 1;
        let work = async move {
            let v = NewDocVersion {
                post,
                name: name.as_deref(),
                body: &body,
                authors: &authors,
                created_by: by,
                now: now_millis(),
            };
            store.add_doc_version(&v).await
        };
        ctx.spawn(work.into_actor(self).map(move |res, act, _ctx| {
            act.side_writes -= 1;
            match res {
                Ok(v) => reply.send(Ok(PostDocReply::Version(v))),
                Err(e) => {
                    // The authors still count toward the next version.
                    act.authors.extend(kept);
                    reply.send(Err(e.into()));
                }
            }
        }));
    }

    fn replace_text(
        &mut self,
        user: UserId,
        text: String,
        leader: bool,
        reply: ReplyTo<PostDocResult>,
        ctx: &mut Context<Self>,
    ) {
        if self.locked && !leader {
            return reply.send(Err(CommandError::Rule(Rule::PostLocked)));
        }
        match self.core.replace_text(&text) {
            Ok(None) => reply.send(Ok(PostDocReply::Done)),
            Ok(Some(update)) => {
                metrics::counter!(metric::DOC_UPDATES_APPLIED).increment(1);
                self.pending.push(Pending {
                    data: update,
                    from: None,
                    waiter: Some(reply),
                });
                self.edited(user, ctx);
                self.commit(ctx);
            }
            Err(DocError::TooLarge { .. }) => {
                reply.send(Err(CommandError::Rule(Rule::DocumentTooLarge)))
            }
            Err(e) => reply.send(Err(CommandError::Internal(e.to_string()))),
        }
    }
}

keyed_actor_handlers!(PostDoc);

impl KeyedActor for PostDoc {
    const KIND: &'static str = "post_doc";
    type Id = PostId;
    type Msg = PostDocMsg;
    type Reply = PostDocResult;

    fn resync_scope(id: PostId) -> ResyncScope {
        ResyncScope::with(Self::KIND, "post_id", id.0)
    }

    fn load(
        id: PostId,
        deps: Arc<Deps>,
        registry: Registry,
        sup: Supervision,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        Box::pin(async move {
            let rec = deps.store.doc_record(id).await?;
            let max = deps.doc_max_bytes;
            let stored = rec
                .snapshot
                .iter()
                .map(|(s, _)| s.as_slice())
                .chain(rec.updates.iter().map(|(_, u)| u.as_slice()));
            let mut core = DocCore::load(max, stored)
                .map_err(|e| StartError::Failed(format!("post {id}: {e}")))?;
            let mut next_seq = rec
                .updates
                .last()
                .map(|(s, _)| *s)
                .or(rec.snapshot.as_ref().map(|(_, s)| *s))
                .unwrap_or(0)
                + 1;
            let log_bytes = rec.updates.iter().map(|(_, u)| u.len()).sum();
            let mut log_rows = rec.updates.len() as i64;
            if rec.snapshot.is_none() && rec.updates.is_empty() && !rec.body.is_empty() {
                // A post written before co-editing (or just created): its body becomes the
                // document's first, stored, update, so every peer builds on the same items.
                if let Ok(Some(seed)) = core.replace_text(&rec.body) {
                    deps.store
                        .doc_append(id, next_seq, &seed, now_millis())
                        .await?;
                    next_seq += 1;
                    log_rows += 1;
                }
            }
            Ok(PostDoc {
                id,
                study: rec.study_id,
                sup,
                deps,
                registry,
                core,
                locked: rec.locked,
                peers: HashMap::new(),
                awareness: Awareness::default(),
                next_seq,
                log_rows,
                log_bytes,
                pending: Vec::new(),
                writing: false,
                deferred: Vec::new(),
                // What the row holds; `started` refreshes it if the document moved on.
                refreshed: rec.body,
                refresh_scheduled: false,
                authors: HashSet::new(),
                last_edit: Instant::now(),
                version_timer: false,
                side_writes: 0,
                reported_bytes: 0,
            })
        })
    }

    fn supervision(&mut self) -> &mut Supervision {
        &mut self.sup
    }

    fn is_idle(&mut self) -> bool {
        self.peers.is_empty()
            && self.pending.is_empty()
            && !self.writing
            && !self.refresh_scheduled
            && self.authors.is_empty()
            && self.side_writes == 0
    }

    fn handle_msg(
        &mut self,
        msg: PostDocMsg,
        reply: ReplyTo<PostDocResult>,
        ctx: &mut Context<Self>,
    ) {
        match msg {
            PostDocMsg::Attach {
                conn,
                user,
                name,
                framing,
            } => self.attach(conn, user, name, framing, reply, ctx),
            PostDocMsg::Frame { conn, data } => {
                self.on_frame(conn, data, ctx);
                reply.send(Ok(PostDocReply::Done));
            }
            PostDocMsg::Detach { conn } => {
                self.detach(conn);
                self.session_ended(ctx);
                reply.send(Ok(PostDocReply::Done));
            }
            PostDocMsg::ReplaceText { user, text, leader } => {
                self.replace_text(user, text, leader, reply, ctx)
            }
            PostDocMsg::SetLock { locked } => {
                self.locked = locked;
                for (c, p) in &self.peers {
                    if p.framing.is_named() {
                        self.send(*c, p.framing.authenticated(self.writable(p)));
                    }
                }
                reply.send(Ok(PostDocReply::Done));
            }
            PostDocMsg::TakeVersion { user, name } => {
                self.take_version(Some(name), Some(user), reply, ctx)
            }
            PostDocMsg::DropUser { user } => {
                let conns: Vec<ConnId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.user == user)
                    .map(|(c, _)| *c)
                    .collect();
                for c in conns {
                    self.cut(c, close_code::FORBIDDEN, "removed");
                }
                reply.send(Ok(PostDocReply::Done));
            }
            PostDocMsg::Deleted => {
                let conns: Vec<ConnId> = self.peers.keys().copied().collect();
                for c in conns {
                    self.cut(c, close_code::DELETED, "deleted");
                }
                for p in self.pending.drain(..) {
                    if let Some(w) = p.waiter {
                        w.send(Err(CommandError::Rule(Rule::NotFound)));
                    }
                }
                reply.send(Ok(PostDocReply::Done));
                self.sup.stop_cleanly();
                ctx.stop();
            }
        }
    }
}
