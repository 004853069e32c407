//! The leader's locks: a room-wide "members may not turn this on" per source, as
//! BigBlueButton's viewer locks and Jitsi's audio/video moderation have it. A class that
//! wants one speaker at a time locks microphones; a lecture locks cameras and screens.
//! The leader is never held, and may allow one participant a locked source (the one whose
//! hand went up), until that participant is muted or stopped again or the lock is lifted.
//!
//! A plain value the `VideoRoom` owns; what follows from a change (telling people,
//! stopping forwarding) is the room's work.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::sfu::route::Source;
use crate::ids::UserId;

/// Every source, in the order lists show them.
pub const SOURCES: [Source; 3] = [Source::Mic, Source::Camera, Source::Screen];

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Locks {
    locked: [bool; 3],
    /// Who the leader allowed a locked source; forgotten when that lock is lifted, so
    /// locking again holds everyone.
    allowed: HashSet<(UserId, Source)>,
}

fn slot(source: Source) -> usize {
    match source {
        Source::Mic => 0,
        Source::Camera => 1,
        Source::Screen => 2,
    }
}

impl Locks {
    /// Locks or unlocks a source; returns whether anything changed. Either way nobody is
    /// allowed it any more: a fresh lock holds everyone, a lifted one needs no allowance.
    pub fn set(&mut self, source: Source, locked: bool) -> bool {
        self.allowed.retain(|(_, s)| *s != source);
        let changed = self.locked[slot(source)] != locked;
        self.locked[slot(source)] = locked;
        changed
    }

    pub fn is_locked(&self, source: Source) -> bool {
        self.locked[slot(source)]
    }

    /// The locked sources, in [`SOURCES`] order.
    pub fn locked(&self) -> Vec<Source> {
        SOURCES.into_iter().filter(|s| self.is_locked(*s)).collect()
    }

    /// Lets `user` turn `source` on while it is locked. An allowance for an unlocked source
    /// would outlive the next lock, so there is nothing to remember then.
    pub fn allow(&mut self, user: UserId, source: Source) {
        if self.is_locked(source) {
            self.allowed.insert((user, source));
        }
    }

    /// Takes an allowance back (the leader muted or stopped them again).
    pub fn revoke(&mut self, user: UserId, source: Source) {
        self.allowed.remove(&(user, source));
    }

    /// Whether the locks keep `user` from turning `source` on, `leader` being the study's.
    pub fn holds(&self, user: UserId, leader: UserId, source: Source) -> bool {
        self.is_locked(source) && user != leader && !self.allowed.contains(&(user, source))
    }

    /// The camera and screen the locks keep `user` from, in [`SOURCES`] order (a held
    /// microphone is a mute, shown and enforced as one).
    pub fn held_video(&self, user: UserId, leader: UserId) -> Vec<Source> {
        [Source::Camera, Source::Screen]
            .into_iter()
            .filter(|s| self.holds(user, leader, *s))
            .collect()
    }

    /// Everything forgotten (the room ended).
    pub fn clear(&mut self) {
        *self = Locks::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAD: UserId = UserId(1);
    const ANN: UserId = UserId(2);
    const BOB: UserId = UserId(3);

    #[test]
    fn a_lock_holds_everyone_but_the_leader() {
        let mut l = Locks::default();
        assert!(!l.holds(ANN, LEAD, Source::Camera));
        assert!(l.set(Source::Camera, true));
        assert!(
            !l.set(Source::Camera, true),
            "locking twice changes nothing"
        );
        assert!(l.holds(ANN, LEAD, Source::Camera));
        assert!(!l.holds(LEAD, LEAD, Source::Camera));
        assert!(!l.holds(ANN, LEAD, Source::Mic), "other sources stay free");
        assert_eq!(l.locked(), vec![Source::Camera]);
        assert_eq!(l.held_video(ANN, LEAD), vec![Source::Camera]);
        assert!(l.held_video(LEAD, LEAD).is_empty());
        // A new leader is free of it; the old one is held.
        assert!(l.holds(LEAD, ANN, Source::Camera));
        assert!(!l.holds(ANN, ANN, Source::Camera));
    }

    #[test]
    fn an_allowance_lasts_until_revoked_or_the_lock_moves() {
        let mut l = Locks::default();
        l.allow(ANN, Source::Mic);
        l.set(Source::Mic, true);
        assert!(
            l.holds(ANN, LEAD, Source::Mic),
            "an allowance given before the lock does not count"
        );
        l.allow(ANN, Source::Mic);
        assert!(!l.holds(ANN, LEAD, Source::Mic));
        assert!(l.holds(BOB, LEAD, Source::Mic));
        l.set(Source::Screen, true);
        assert!(
            l.holds(ANN, LEAD, Source::Screen),
            "an allowance is per source"
        );
        l.revoke(ANN, Source::Mic);
        assert!(l.holds(ANN, LEAD, Source::Mic));
        l.allow(ANN, Source::Mic);
        l.set(Source::Mic, false);
        l.set(Source::Mic, true);
        assert!(
            l.holds(ANN, LEAD, Source::Mic),
            "locking again holds everyone"
        );
        l.allow(BOB, Source::Mic);
        l.clear();
        assert!(l.locked().is_empty());
        l.set(Source::Mic, true);
        assert!(l.holds(BOB, LEAD, Source::Mic));
    }
}
