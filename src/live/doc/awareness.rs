//! Awareness (who is here, their cursor and name): the server's table of every client's
//! latest state, a plain function core the `PostDoc` actor wraps.
//!
//! The rules are y-protocols' (a higher clock wins; a `null` state at the same clock removes),
//! plus three of ours: a client id belongs to the connection that first sent it, so nobody
//! can move or remove another person's cursor; states are bounded and must be JSON, since
//! every peer parses them; and the server writes who a state belongs to ([`stamp`]), so
//! nobody can show their cursor under another person's name.

use std::collections::HashMap;

use super::proto::{DecodeError, Reader, Writer};
use crate::ids::{ConnId, UserId};

/// Client ids one connection may own: one per document in a tab, with room for a reload
/// racing the old socket's removal.
pub const MAX_CLIENTS_PER_CONN: usize = 4;
/// Longest awareness state (a JSON text): a name, a colour and a cursor are well under 1 KiB.
pub const MAX_STATE_BYTES: usize = 4096;
/// Entries in one awareness message: clients send their own, and a server relay several.
const MAX_ENTRIES: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub client: u64,
    pub clock: u64,
    /// The JSON text; `"null"` means the client left.
    pub state: String,
}

struct Known {
    clock: u64,
    state: String,
    owner: ConnId,
}

/// Every client's newest state in one document.
#[derive(Default)]
pub struct Awareness {
    clients: HashMap<u64, Known>,
}

pub fn decode(buf: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let mut r = Reader::new(buf);
    let n = r.var_uint()?;
    if n > MAX_ENTRIES {
        return Err(DecodeError::Overflow);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let client = r.var_uint()?;
        let clock = r.var_uint()?;
        let state = r.string()?.to_owned();
        out.push(Entry {
            client,
            clock,
            state,
        });
    }
    if !r.is_done() {
        return Err(DecodeError::Trailing);
    }
    Ok(out)
}

pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut w = Writer::default();
    w.var_uint(entries.len() as u64);
    for e in entries {
        w.var_uint(e.client).var_uint(e.clock).string(&e.state);
    }
    w.into_vec()
}

fn is_null(state: &str) -> bool {
    state == "null"
}

/// Writes the sender's user id and display name into an awareness state's `user` object
/// (y-protocols clients read the cursor's label from `user.name`), keeping the rest
/// (colour, cursor). A state that is not a JSON object (`null`, or something no editor
/// reads) is returned as it is; [`Awareness::apply`] judges it.
pub fn stamp(state: &str, user: UserId, name: &str) -> String {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str(state) else {
        return state.to_owned();
    };
    let mut who = match obj.remove("user") {
        Some(serde_json::Value::Object(u)) => u,
        _ => serde_json::Map::new(),
    };
    who.insert("id".into(), user.0.into());
    who.insert("name".into(), name.into());
    obj.insert("user".into(), who.into());
    serde_json::Value::Object(obj).to_string()
}

impl Awareness {
    /// Applies what `from` sent; returns the entries that took effect (to relay). Entries
    /// for another connection's client, oversized or non-JSON states, and stale clocks are
    /// dropped.
    pub fn apply(&mut self, from: ConnId, entries: Vec<Entry>) -> Vec<Entry> {
        let mut accepted = Vec::new();
        for e in entries {
            if e.state.len() > MAX_STATE_BYTES
                || serde_json::from_str::<serde::de::IgnoredAny>(&e.state).is_err()
            {
                continue;
            }
            match self.clients.get_mut(&e.client) {
                Some(k) if k.owner != from => continue,
                Some(k) => {
                    let newer = e.clock > k.clock
                        || (e.clock == k.clock && is_null(&e.state) && !is_null(&k.state));
                    if !newer {
                        continue;
                    }
                    k.clock = e.clock;
                    k.state.clone_from(&e.state);
                }
                None => {
                    let owned = self.clients.values().filter(|k| k.owner == from).count();
                    if owned >= MAX_CLIENTS_PER_CONN || is_null(&e.state) {
                        continue;
                    }
                    self.clients.insert(
                        e.client,
                        Known {
                            clock: e.clock,
                            state: e.state.clone(),
                            owner: from,
                        },
                    );
                }
            }
            accepted.push(e);
        }
        // A removed client's id stays owned (with its clock) until its connection goes, so a
        // late duplicate cannot bring it back; the connection's removal clears it.
        accepted
    }

    /// A connection went away: its clients are removed, as `null` states one clock later
    /// (what peers need to drop their cursors).
    pub fn remove_conn(&mut self, conn: ConnId) -> Vec<Entry> {
        let gone: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, k)| k.owner == conn)
            .map(|(c, _)| *c)
            .collect();
        let mut out = Vec::new();
        for client in gone {
            if let Some(k) = self.clients.remove(&client)
                && !is_null(&k.state)
            {
                out.push(Entry {
                    client,
                    clock: k.clock + 1,
                    state: "null".into(),
                });
            }
        }
        out
    }

    /// Everyone present, for a connection that just arrived.
    pub fn present(&self) -> Vec<Entry> {
        self.clients
            .iter()
            .filter(|(_, k)| !is_null(&k.state))
            .map(|(c, k)| Entry {
                client: *c,
                clock: k.clock,
                state: k.state.clone(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u64) -> ConnId {
        ConnId { node: 1, seq: n }
    }

    #[test]
    fn the_server_writes_whose_state_it_is() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        // A borrowed name is replaced, and the rest of `user` and of the state is kept.
        let spoofed = r##"{"user":{"name":"The Leader","color":"#e0457b"},"cursor":{"anchor":3}}"##;
        assert_eq!(
            v(&stamp(spoofed, UserId(7), "Ann")),
            v(r##"{"user":{"name":"Ann","id":7,"color":"#e0457b"},"cursor":{"anchor":3}}"##)
        );
        // No `user` (or not an object): one is made.
        assert_eq!(
            v(&stamp(r#"{"cursor":null}"#, UserId(7), "Ann")),
            v(r#"{"user":{"name":"Ann","id":7},"cursor":null}"#)
        );
        assert_eq!(
            v(&stamp(r#"{"user":"The Leader"}"#, UserId(7), "Ann")),
            v(r#"{"user":{"name":"Ann","id":7}}"#)
        );
        // A name with quotes stays valid JSON.
        assert_eq!(
            v(&stamp("{}", UserId(7), r#"A "quoted" name"#))["user"]["name"],
            r#"A "quoted" name"#
        );
        // Leaving (null), and what is not an object, pass as they are.
        assert_eq!(stamp("null", UserId(7), "Ann"), "null");
        assert_eq!(stamp("[1,2]", UserId(7), "Ann"), "[1,2]");
        assert_eq!(stamp("not json", UserId(7), "Ann"), "not json");
    }

    fn e(client: u64, clock: u64, state: &str) -> Entry {
        Entry {
            client,
            clock,
            state: state.into(),
        }
    }

    #[test]
    fn newer_clocks_win_and_owners_are_kept() {
        let mut a = Awareness::default();
        assert_eq!(a.apply(conn(1), vec![e(10, 1, r#"{"n":"a"}"#)]).len(), 1);
        // Stale and equal clocks change nothing.
        assert!(a.apply(conn(1), vec![e(10, 1, r#"{"n":"b"}"#)]).is_empty());
        assert!(a.apply(conn(1), vec![e(10, 0, r#"{"n":"b"}"#)]).is_empty());
        // Another connection cannot move or remove client 10.
        assert!(a.apply(conn(2), vec![e(10, 5, "null")]).is_empty());
        assert_eq!(a.present(), vec![e(10, 1, r#"{"n":"a"}"#)]);
        // The owner removes it at the same clock with null.
        assert_eq!(a.apply(conn(1), vec![e(10, 1, "null")]).len(), 1);
        assert!(a.present().is_empty());
    }

    #[test]
    fn bad_states_and_too_many_clients_are_dropped() {
        let mut a = Awareness::default();
        assert!(a.apply(conn(1), vec![e(1, 1, "{not json")]).is_empty());
        let big = format!("\"{}\"", "x".repeat(MAX_STATE_BYTES));
        assert!(a.apply(conn(1), vec![e(1, 1, &big)]).is_empty());
        let many: Vec<Entry> = (0..10).map(|c| e(c, 1, "{}")).collect();
        assert_eq!(a.apply(conn(1), many).len(), MAX_CLIENTS_PER_CONN);
    }

    #[test]
    fn a_closed_connection_removes_its_clients_one_clock_later() {
        let mut a = Awareness::default();
        a.apply(conn(1), vec![e(7, 3, "{}")]);
        a.apply(conn(2), vec![e(8, 1, "{}")]);
        assert_eq!(a.remove_conn(conn(1)), vec![e(7, 4, "null")]);
        assert_eq!(a.present(), vec![e(8, 1, "{}")]);
        assert!(a.remove_conn(conn(1)).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_awareness_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            if let Ok(entries) = decode(&bytes) {
                let mut a = Awareness::default();
                a.apply(conn(1), entries);
                // However the bytes came out, one connection owns at most its share of ids.
                proptest::prop_assert!(a.len() <= MAX_CLIENTS_PER_CONN);
            }
        }
    }

    #[test]
    fn codec_round_trips() {
        let entries = vec![e(1, 2, "{}"), e(u32::MAX as u64, 0, "null")];
        assert_eq!(decode(&encode(&entries)), Ok(entries));
        assert_eq!(decode(&[1, 1]), Err(DecodeError::Eof));
        assert_eq!(decode(&[100]), Err(DecodeError::Overflow));
    }
}
