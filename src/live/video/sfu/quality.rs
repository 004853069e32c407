//! A participant's connection quality, as everyone in the call sees it on their tile: a
//! pure judgement of what str0m measured of the link in one stats interval (round trip,
//! and the worse of the loss on what the server received from them and on what it sent
//! them). The media loop reports a participant's quality only when it changes: worse at
//! once, better only once it held for [`RECOVER_INTERVALS`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Loss from which a link is poor: video freezes now and then even with resends, and it
/// is also where the server gives a subscriber a lower layer (`route::LOSS_DOWN`).
pub const POOR_LOSS: f32 = 0.10;
/// Loss from which a link is fair: resends still hide most of it, but not all.
pub const FAIR_LOSS: f32 = 0.03;
/// Round trip from which a link is poor: about 300 ms each way, where people start to
/// talk over each other.
pub const POOR_RTT: Duration = Duration::from_millis(600);
/// Round trip from which a link is fair: about 150 ms each way, the usual limit of a
/// comfortable conversation.
pub const FAIR_RTT: Duration = Duration::from_millis(300);

/// Stats intervals in a row a link must judge better before its tile shows it (10 s):
/// a link near a threshold would otherwise flip its badge every 5 s, and people act on
/// a warning (turn the camera off, move closer to the router) only if it is steady.
pub const RECOVER_INTERVALS: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    Fair,
    Poor,
}

/// The quality of a link with this round trip (if measured) and loss (0–1).
pub fn judge(rtt: Option<Duration>, loss: f32) -> Quality {
    let by_loss = if loss >= POOR_LOSS {
        Quality::Poor
    } else if loss >= FAIR_LOSS {
        Quality::Fair
    } else {
        Quality::Good
    };
    let by_rtt = match rtt {
        Some(r) if r >= POOR_RTT => Quality::Poor,
        Some(r) if r >= FAIR_RTT => Quality::Fair,
        _ => Quality::Good,
    };
    by_loss.max(by_rtt)
}

/// What one participant's link showed since its last judgement.
#[derive(Debug, Default)]
pub struct LinkWatch {
    /// The worst loss any of the server's streams to them reported (receiver reports).
    egress_loss: f32,
    shown: Option<Quality>,
    /// Judgements in a row better than what is shown.
    better: u8,
}

impl LinkWatch {
    /// A receiver report's loss on one of the streams sent to this participant.
    pub fn egress(&mut self, loss: f32) {
        self.egress_loss = self.egress_loss.max(loss);
    }

    /// The interval's peer stats: the quality to show if that changed (the egress loss
    /// seen so far counts toward it, then starts over). Worse shows at once, better after
    /// [`RECOVER_INTERVALS`] judgements in a row.
    pub fn judge(&mut self, rtt: Option<Duration>, ingress_loss: Option<f32>) -> Option<Quality> {
        let loss = ingress_loss.unwrap_or(0.0).max(self.egress_loss);
        self.egress_loss = 0.0;
        let q = judge(rtt, loss);
        match self.shown {
            Some(s) if q == s => {
                self.better = 0;
                return None;
            }
            Some(s) if q < s => {
                self.better += 1;
                if self.better < RECOVER_INTERVALS {
                    return None;
                }
            }
            _ => {}
        }
        self.better = 0;
        self.shown = Some(q);
        Some(q)
    }

    /// The last quality could not be told: tell the next judgement whatever it is.
    pub fn untold(&mut self) {
        self.shown = None;
        self.better = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worse_of_loss_and_round_trip_decides() {
        let ms = Duration::from_millis;
        assert_eq!(judge(None, 0.0), Quality::Good);
        assert_eq!(judge(Some(ms(40)), 0.01), Quality::Good);
        assert_eq!(judge(Some(ms(40)), FAIR_LOSS), Quality::Fair);
        assert_eq!(judge(Some(ms(40)), 0.33), Quality::Poor);
        assert_eq!(judge(Some(ms(300)), 0.0), Quality::Fair);
        assert_eq!(judge(Some(ms(700)), 0.0), Quality::Poor);
        assert_eq!(judge(Some(ms(350)), 0.2), Quality::Poor);
    }

    #[test]
    fn a_watch_reports_changes_only_and_takes_the_worst_stream() {
        let mut w = LinkWatch::default();
        assert_eq!(w.judge(None, Some(0.0)), Some(Quality::Good));
        assert_eq!(w.judge(None, Some(0.0)), None, "no change, no news");
        // One clean stream and one lossy one: the lossy one counts.
        w.egress(0.0);
        w.egress(0.2);
        assert_eq!(w.judge(None, Some(0.0)), Some(Quality::Poor));
        // The egress loss was for that interval only; better shows after two in a row.
        assert_eq!(w.judge(None, None), None);
        assert_eq!(w.judge(None, None), Some(Quality::Good));
        // Loss on what the server received from them counts too, at once.
        assert_eq!(w.judge(None, Some(0.05)), Some(Quality::Fair));
    }

    #[test]
    fn a_link_near_a_threshold_does_not_flap() {
        let mut w = LinkWatch::default();
        assert_eq!(w.judge(None, Some(0.0)), Some(Quality::Good));
        assert_eq!(
            w.judge(None, Some(0.04)),
            Some(Quality::Fair),
            "worse at once"
        );
        // Good, fair, good, fair: never two good ones in a row, so it stays fair.
        for loss in [0.01, 0.04, 0.0, 0.05, 0.02] {
            assert_eq!(w.judge(None, Some(loss)), None, "loss {loss}");
        }
        assert_eq!(w.judge(None, Some(0.0)), Some(Quality::Good));
        // Poor, then fair and good: two better ones in a row show the latest.
        assert_eq!(w.judge(None, Some(0.2)), Some(Quality::Poor));
        assert_eq!(w.judge(None, Some(0.04)), None);
        assert_eq!(w.judge(None, Some(0.0)), Some(Quality::Good));
        // A quality that could not be told is told again next time.
        w.untold();
        assert_eq!(w.judge(None, Some(0.0)), Some(Quality::Good));
    }
}
