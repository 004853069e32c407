//! The prefs family: small per-user UI settings, read and written over the socket. Writes go
//! through the group-commit persister and are acked after the commit; a tab may have a few
//! in flight at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::store::{DurableWrite, now_millis};
use crate::ws::family::{Conn, Family};
use crate::ws::frame::{self, ReqId};
use crate::ws::router::ConnRouter;

/// Requests awaiting a durable commit per connection; beyond this the client gets `busy`.
pub const MAX_IN_FLIGHT: usize = 64;
/// Preference keys: short identifiers; values: small strings (UI settings, not documents).
const PREF_KEY_MAX: usize = 64;
const PREF_VALUE_MAX: usize = 4096;

crate::client_requests! {
    pub enum PrefsRequest {
        /// Durably store one preference; acknowledged after commit.
        "prefs.set" => Set { key: String, value: String },
        "prefs.get" => Get {},
    }
}

crate::server_frames! {
    /// The reply to `prefs.get`.
    "prefs" => Prefs { id: Option<ReqId>, prefs: BTreeMap<String, String> }
}

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<PrefsSocket>("prefs");
}

pub struct PrefsSocket {
    in_flight: Arc<Semaphore>,
}

#[async_trait(?Send)]
impl Family for PrefsSocket {
    type Request = PrefsRequest;
    const FRAMES: &'static [&'static str] = SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        PrefsSocket {
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: PrefsRequest) {
        match req {
            PrefsRequest::Get {} => match conn.app.store.user_prefs(conn.user.id).await {
                Ok(p) => conn.send(&Prefs {
                    id,
                    prefs: p.into_iter().collect(),
                }),
                Err(e) => conn.error(id, &e.into()),
            },
            PrefsRequest::Set { key, value } => self.set(conn, id, key, value).await,
        }
    }
}

impl PrefsSocket {
    /// Stores a preference through the group-commit persister and acks after the commit.
    /// The wait happens off the socket's loop so one tab can have many writes in flight.
    async fn set(&self, conn: &Conn<'_>, id: Option<ReqId>, key: String, value: String) {
        let key_ok = !key.is_empty()
            && key.len() <= PREF_KEY_MAX
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !key_ok {
            let e = ApiError::validation(
                "key",
                format!("key must be 1–{PREF_KEY_MAX} of a–z 0–9 _ . -"),
            );
            return conn.error(id, &e);
        }
        if value.len() > PREF_VALUE_MAX {
            let e = ApiError::validation(
                "value",
                format!("value must be at most {PREF_VALUE_MAX} bytes"),
            );
            return conn.error(id, &e);
        }
        // A socket write is a write: it spends the same per-user budget as HTTP writes.
        if let Err(wait) = conn.app.take_write(conn.user.id).await {
            let e = ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            };
            return conn.error(id, &e);
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return conn.error(id, &ApiError::Busy);
        };
        let write = DurableWrite::UserPref {
            user_id: conn.user.id,
            key,
            value,
            at: now_millis(),
        };
        let persister = conn.app.persister.clone();
        let hub = conn.app.hub.clone();
        let me = conn.id;
        actix_rt::spawn(async move {
            let reply = match persister.persist(write).await {
                Ok(()) => frame::ack(id),
                Err(e) => frame::error(id, &ApiError::from(e)),
            };
            // Freed before the reply goes out: a client that waits for its acks never sees
            // `busy` from writes it already saw answered.
            drop(permit);
            hub.push(me, reply);
        });
    }
}
