//! Live task and post events in version order. Writes commit in the store and are announced
//! afterwards by the request that made them, so two edits of one task can reach the `Study`
//! actor in the opposite order to their commits. Each event carries the row version it
//! shows (migration 0006); the actor forwards an event only if nothing at that version or
//! newer went out before, so a watcher never sees a task step back to an older state, and a
//! deleted task or post never comes back through a late update. A plain state machine:
//! the actor owns one per study and calls `admit` as events arrive.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::{PostId, TaskId};

/// Items one study remembers the last announced version of. Enough for every task a study
/// may hold (500) and thousands of posts; forgetting the oldest-seen item only matters if
/// an event for it were delayed behind this many other items' events.
pub const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Item {
    Task(TaskId),
    Post(PostId),
    /// The study's video call: who is in it, stamped by its `VideoRoom` (the room's actor
    /// tells the study from spawned futures, which may arrive out of order).
    Call,
}

/// What an event says about its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The item as stored at this version.
    At(i64),
    /// The item is gone; nothing about it goes out after this.
    Deleted,
}

impl Step {
    fn rank(self) -> i64 {
        match self {
            Step::At(v) => v,
            Step::Deleted => i64::MAX,
        }
    }
}

#[derive(Debug, Default)]
pub struct Newest {
    shown: HashMap<Item, i64>,
    /// Items in the order first seen, for forgetting the oldest.
    seen: VecDeque<Item>,
}

impl Newest {
    /// True if an event showing `item` at `step` should go out: only when it is newer than
    /// everything already sent about that item (a repeat of the same version is dropped).
    pub fn admit(&mut self, item: Item, step: Step) -> bool {
        let rank = step.rank();
        match self.shown.get_mut(&item) {
            Some(last) if *last >= rank => false,
            Some(last) => {
                *last = rank;
                true
            }
            None => {
                if self.seen.len() == REMEMBERED
                    && let Some(old) = self.seen.pop_front()
                {
                    self.shown.remove(&old);
                }
                self.shown.insert(item, rank);
                self.seen.push_back(item);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Item = Item::Task(TaskId(1));
    const T2: Item = Item::Task(TaskId(2));
    const P1: Item = Item::Post(PostId(1));

    #[test]
    fn newer_versions_pass_and_older_ones_are_dropped() {
        let mut n = Newest::default();
        assert!(n.admit(T1, Step::At(1)));
        assert!(n.admit(T1, Step::At(3)));
        assert!(
            !n.admit(T1, Step::At(2)),
            "an older state after a newer one"
        );
        assert!(!n.admit(T1, Step::At(3)), "the same version twice");
        assert!(n.admit(T1, Step::At(4)));
    }

    #[test]
    fn items_are_ordered_independently() {
        let mut n = Newest::default();
        assert!(n.admit(T1, Step::At(5)));
        assert!(n.admit(T2, Step::At(1)));
        // A post and a task with the same number are different items.
        assert!(n.admit(P1, Step::At(1)));
        assert!(!n.admit(T2, Step::At(1)));
    }

    #[test]
    fn nothing_about_a_deleted_item_goes_out_after_its_deletion() {
        let mut n = Newest::default();
        assert!(n.admit(T1, Step::At(2)));
        assert!(n.admit(T1, Step::Deleted));
        assert!(
            !n.admit(T1, Step::At(3)),
            "a late update would bring it back"
        );
        assert!(!n.admit(T1, Step::Deleted), "deleted once");
        // Deleted before any update was announced: still final.
        assert!(n.admit(P1, Step::Deleted));
        assert!(!n.admit(P1, Step::At(1)));
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_oldest_seen_item() {
        let mut n = Newest::default();
        assert!(n.admit(T1, Step::At(7)));
        for i in 0..REMEMBERED as i64 {
            assert!(n.admit(Item::Post(PostId(1000 + i)), Step::At(1)));
            assert!(n.len() <= REMEMBERED);
        }
        assert_eq!(n.len(), REMEMBERED);
        // T1 was seen first, so it was forgotten: its next event goes out whatever it is.
        assert!(n.admit(T1, Step::At(1)));
        // The newest items are still remembered.
        assert!(!n.admit(
            Item::Post(PostId(1000 + REMEMBERED as i64 - 1)),
            Step::At(1)
        ));
    }
}
