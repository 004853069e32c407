//! The document core: a Yrs `Doc` holding the post body as the `Y.Text` named `body`, with
//! size accounting and the two ways it changes (a peer's update, or a whole new text from
//! the HTTP API turned into a minimal edit). Plain functions of (state, input); the
//! `PostDoc` actor wraps them with persistence and relay.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yrs::updates::decoder::Decode;
use yrs::{
    Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update,
};

/// The shared type every client binds its editor to.
pub const BODY: &str = "body";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// The bytes are not a Yjs update (or state vector).
    #[error("malformed update: {0}")]
    Malformed(String),
    /// The update decoded but could not be integrated; the document must be rebuilt from
    /// what is stored before it is used again.
    #[error("update could not be applied: {0}")]
    Rejected(String),
    /// The update starts past a clock we have for its client: an earlier update of that
    /// peer never arrived (refused while the post was locked, or lost). Nothing is applied;
    /// the peer is asked to sync, which brings both.
    #[error("the update skips changes the document never got")]
    Gap,
    /// The document would grow past its limit.
    #[error("the document would exceed {max} bytes")]
    TooLarge { max: usize },
}

pub struct DocCore {
    doc: Doc,
    body: TextRef,
    /// Encoded size of everything applied: the loaded state plus each update since. Updates
    /// overlap, so this is an upper bound; compaction sets it to the exact size.
    bytes: usize,
    max_bytes: usize,
}

impl DocCore {
    /// An empty document that may grow to `max_bytes` (encoded).
    pub fn new(max_bytes: usize) -> DocCore {
        // Offsets in bytes: the server's own edits are computed on Rust strings. Clients
        // count in UTF-16; the offsets never leave this process.
        let doc = Doc::with_options(Options {
            offset_kind: OffsetKind::Bytes,
            ..Options::default()
        });
        let body = doc.get_or_insert_text(BODY);
        DocCore {
            doc,
            body,
            bytes: 0,
            max_bytes,
        }
    }

    /// Loads stored state (snapshot and log rows, in order). Stored updates were checked when
    /// they arrived, so the size limit does not apply; a failure means a corrupt store.
    pub fn load<'a>(
        max_bytes: usize,
        stored: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<DocCore, DocError> {
        let mut core = DocCore::new(max_bytes);
        for u in stored {
            core.apply_unchecked(u)?;
        }
        Ok(core)
    }

    pub fn text(&self) -> String {
        self.body.get_string(&self.doc.transact())
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Applies a peer's update. `Ok(false)` if it changed nothing (already known or empty):
    /// such an update is neither stored nor relayed.
    pub fn apply(&mut self, update: &[u8]) -> Result<bool, DocError> {
        if self.bytes.saturating_add(update.len()) > self.max_bytes {
            return Err(DocError::TooLarge {
                max: self.max_bytes,
            });
        }
        let decoded = decode_update(update)?;
        let known = self.doc.transact().state_vector();
        // Yrs integrates blocks past a gap in a client's clocks, where Yjs holds them back;
        // the server must not get ahead of its peers (nor claim clocks it has no blocks for).
        if decoded
            .state_vector_lower()
            .iter()
            .any(|(client, lower)| *lower > known.get(client))
        {
            return Err(DocError::Gap);
        }
        self.integrate(decoded, &known, update.len())
    }

    /// Whether an update would change the document (without applying it): a read-only
    /// peer's sync step 2 that adds nothing is no write, and is not refused.
    pub fn would_change(&self, update: &[u8]) -> bool {
        decode_update(update).map_or(true, |u| adds(&u, &self.doc.transact().state_vector()))
    }

    /// Applies stored state (checked when it arrived).
    fn apply_unchecked(&mut self, update: &[u8]) -> Result<bool, DocError> {
        let decoded = decode_update(update)?;
        let known = self.doc.transact().state_vector();
        self.integrate(decoded, &known, update.len())
    }

    /// Integrates a decoded update into a document at state `known`; `len` is its encoded
    /// size.
    fn integrate(
        &mut self,
        decoded: Update,
        known: &StateVector,
        len: usize,
    ) -> Result<bool, DocError> {
        if decoded.is_empty() {
            return Ok(false);
        }
        // Stored and relayed if it adds blocks (even ones Yrs must hold back until their
        // predecessors arrive) or deletes anything; an update of known blocks is a resend.
        let changed = adds(&decoded, known);
        // Yrs may panic on input that decodes but breaks its invariants; a panic must not take
        // the actor (and every editor of the post) down with it. The caller rebuilds.
        let applied = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            txn.apply_update(decoded)
        }));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(DocError::Rejected(e.to_string())),
            Err(_) => return Err(DocError::Rejected("update broke the document".into())),
        }
        if changed {
            self.bytes += len;
        }
        Ok(changed)
    }

    /// Whether applied updates wait for blocks the document never got (Yrs holds them back
    /// until their predecessors arrive).
    pub fn has_missing(&self) -> bool {
        self.doc.transact().has_missing_updates()
    }

    /// The document's state vector (lib0 v1), for sync step 1.
    pub fn state_vector(&self) -> Vec<u8> {
        use yrs::updates::encoder::Encode;
        self.doc.transact().state_vector().encode_v1()
    }

    /// What a peer with state vector `sv` lacks (sync step 2).
    pub fn diff(&self, sv: &[u8]) -> Result<Vec<u8>, DocError> {
        let sv = catch_unwind(|| StateVector::decode_v1(sv))
            .map_err(|_| DocError::Malformed("undecodable state vector".into()))?
            .map_err(|e| DocError::Malformed(e.to_string()))?;
        Ok(self.doc.transact().encode_state_as_update_v1(&sv))
    }

    /// The whole state as one update (the snapshot); also makes the size exact.
    pub fn encode_state(&mut self) -> Vec<u8> {
        let state = self
            .doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        self.bytes = state.len();
        state
    }

    /// Turns the body into `new` with the smallest edit at one place (common prefix and
    /// suffix kept), so concurrent editors' text around it survives. Returns the update, or
    /// `None` if the text is already `new`.
    pub fn replace_text(&mut self, new: &str) -> Result<Option<Vec<u8>>, DocError> {
        let old = self.text();
        if old == new {
            return Ok(None);
        }
        let (start, old_end, new_end) = edit_span(&old, new);
        let grows = (new_end - start).saturating_sub(old_end - start);
        if self.bytes.saturating_add(grows + 64) > self.max_bytes {
            return Err(DocError::TooLarge {
                max: self.max_bytes,
            });
        }
        let update = {
            let mut txn = self.doc.transact_mut();
            if old_end > start {
                self.body
                    .remove_range(&mut txn, start as u32, (old_end - start) as u32);
            }
            if new_end > start {
                self.body
                    .insert(&mut txn, start as u32, &new[start..new_end]);
            }
            txn.encode_update_v1()
        };
        self.bytes += update.len();
        Ok(Some(update))
    }
}

/// Decodes a v1 update. Yrs' decoder asserts on some out-of-range fields instead of
/// returning an error (found by the fuzz test below): a panic there is a malformed update too.
fn decode_update(update: &[u8]) -> Result<Update, DocError> {
    catch_unwind(|| Update::decode_v1(update))
        .map_err(|_| DocError::Malformed("undecodable update".into()))?
        .map_err(|e| DocError::Malformed(e.to_string()))
}

/// Whether an update holds anything a document at state `known` lacks: blocks overlapping
/// or past its clocks (even after a gap, which Yrs holds back until the gap is filled) or
/// deletions. `Update::extends` alone misses blocks after a gap.
fn adds(u: &Update, known: &StateVector) -> bool {
    u.extends(known)
        || u.state_vector_lower()
            .iter()
            .any(|(client, lower)| *lower >= known.get(client))
        || !u.delete_set().is_empty()
}

/// Byte offsets of the one changed span: `old[start..old_end]` becomes `new[start..new_end]`,
/// on character boundaries.
pub fn edit_span(old: &str, new: &str) -> (usize, usize, usize) {
    let mut start = old
        .bytes()
        .zip(new.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(start) || !new.is_char_boundary(start) {
        start -= 1;
    }
    let max_suffix = (old.len() - start).min(new.len() - start);
    let mut suffix = old
        .bytes()
        .rev()
        .zip(new.bytes().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(old.len() - suffix) || !new.is_char_boundary(new.len() - suffix) {
        suffix -= 1;
    }
    (start, old.len() - suffix, new.len() - suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 2 << 20;

    /// A client's document that edits and hands over its updates.
    fn client_edit(base: &[u8], f: impl FnOnce(&TextRef, &mut yrs::TransactionMut)) -> Vec<u8> {
        let doc = Doc::new();
        let text = doc.get_or_insert_text(BODY);
        if !base.is_empty() {
            doc.transact_mut()
                .apply_update(Update::decode_v1(base).unwrap())
                .unwrap();
        }
        let mut txn = doc.transact_mut();
        f(&text, &mut txn);
        txn.encode_update_v1()
    }

    #[test]
    fn applies_updates_and_ignores_known_ones() {
        let mut core = DocCore::new(MAX);
        let u = client_edit(&[], |t, txn| t.insert(txn, 0, "hello"));
        assert_eq!(core.apply(&u), Ok(true));
        assert_eq!(core.text(), "hello");
        assert_eq!(core.apply(&u), Ok(false), "a resend changes nothing");
        assert!(!core.would_change(&u) && !core.would_change(&[0, 0]));
        assert!(core.would_change(&client_edit(&[], |t, txn| t.insert(txn, 0, "new"))));
        let state = core.encode_state();
        let d = client_edit(&state, |t, txn| t.remove_range(txn, 0, 1));
        assert_eq!(core.apply(&d), Ok(true), "a delete-only update is a change");
        assert_eq!(core.text(), "ello");
    }

    #[test]
    fn an_update_after_a_clock_gap_is_not_applied() {
        // Yrs would integrate it, but Yjs peers hold it back until the gap is filled: the
        // server must not get ahead of them, nor claim a clock it lacks the blocks for.
        let mut core = DocCore::new(MAX);
        core.replace_text("base").unwrap();
        let base = core.encode_state();
        let doc = Doc::new();
        let text = doc.get_or_insert_text(BODY);
        doc.transact_mut()
            .apply_update(Update::decode_v1(&base).unwrap())
            .unwrap();
        let first = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "one ");
            txn.encode_update_v1()
        };
        let second = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 8, " two");
            txn.encode_update_v1()
        };
        assert_eq!(core.apply(&second), Err(DocError::Gap));
        assert_eq!(core.text(), "base");
        core.apply(&first).unwrap();
        core.apply(&second).unwrap();
        assert_eq!(core.text(), "one base two");
    }

    #[test]
    fn a_malformed_update_leaves_the_document_untouched() {
        let mut core = DocCore::new(MAX);
        core.replace_text("keep me").unwrap();
        assert!(matches!(
            core.apply(&[1, 2, 3, 250, 251]),
            Err(DocError::Malformed(_))
        ));
        let u = client_edit(&[], |t, txn| t.insert(txn, 0, "x"));
        assert!(core.apply(&u[..u.len() - 2]).is_err(), "a truncated update");
        assert_eq!(core.text(), "keep me");
    }

    #[test]
    fn size_limit_refuses_growth() {
        let mut core = DocCore::new(100);
        let u = client_edit(&[], |t, txn| t.insert(txn, 0, &"y".repeat(200)));
        assert_eq!(core.apply(&u), Err(DocError::TooLarge { max: 100 }));
        assert_eq!(core.text(), "");
        assert!(core.replace_text(&"z".repeat(200)).is_err());
    }

    #[test]
    fn replacing_text_converges_with_a_concurrent_edit() {
        let mut core = DocCore::new(MAX);
        core.replace_text("one two three").unwrap();
        let base = core.encode_state();
        // A peer appends at the end while the API rewrites the middle.
        let peer = client_edit(&base, |t, txn| t.insert(txn, 13, " four"));
        let api = core.replace_text("one 2 three").unwrap().unwrap();
        core.apply(&peer).unwrap();
        assert_eq!(core.text(), "one 2 three four");
        // The peer gets the API's update and ends with the same text.
        let other = DocCore::load(MAX, [base.as_slice(), peer.as_slice(), api.as_slice()]).unwrap();
        assert_eq!(other.text(), core.text());
        assert_eq!(core.replace_text("one 2 three four"), Ok(None));
    }

    #[test]
    fn edit_span_stays_on_char_boundaries() {
        assert_eq!(edit_span("abc", "abc"), (3, 3, 3));
        assert_eq!(edit_span("가나다", "가다"), (3, 6, 3));
        assert_eq!(edit_span("😀a", "😁a"), (0, 4, 4));
        assert_eq!(edit_span("aaa", "aa"), (2, 3, 2));
    }

    proptest! {
        #[test]
        fn replace_text_reaches_any_text(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let mut core = DocCore::new(MAX);
            core.replace_text(&a).unwrap();
            core.replace_text(&b).unwrap();
            prop_assert_eq!(core.text(), b);
        }

        /// The decode-and-apply path on mutated updates: an error or a change, never a panic
        /// out of the core, and an error leaves the text as it was.
        #[test]
        fn mutated_updates_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                       cut in any::<usize>()) {
            let mut core = DocCore::new(MAX);
            core.replace_text("base text").unwrap();
            let base = core.encode_state();
            let mut u = client_edit(&base, |t, txn| { t.insert(txn, 4, "XYZ"); t.remove_range(txn, 0, 2); });
            for (i, b) in flips {
                let n = u.len();
                u[i % n] = b;
            }
            u.truncate(cut % (u.len() + 1));
            match core.apply(&u) {
                Err(DocError::Rejected(_)) => {} // the actor rebuilds the document
                Err(_) => prop_assert_eq!(core.text(), "base text"),
                Ok(_) => {}
            }
        }
    }
}
