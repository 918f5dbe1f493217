//! The jitter buffer's target delay, adapted to the network: how late packets arrive, measured.
//!
//! Pure logic on two clocks: each packet's media timestamp and the render clock at which it
//! arrived (both µs). Nothing here knows about audio samples or generations.
//!
//! What is taken from where:
//! - **Relative arrival delay** (WebRTC NetEQ, `DelayManager::CalculateRelativePacketArrivalDelay`,
//!   `max_history_ms = 2000`): a packet's transit (arrival − timestamp) minus the smallest transit
//!   of the packets in the last 2 s of media time. The publisher's clock offset and its pacing
//!   lead cancel out; what is left is how much later than the fastest recent packet this one came.
//!   NetEQ sums inter-arrival deviations of in-order packets; the minimum over the window is the
//!   same quantity and also holds for reordered packets (groups are read concurrently here).
//!   Like NetEQ, the history restarts at a timestamp jump (a publisher that paused and
//!   restarted its timeline): the fastest transit of the stretch before the jump is kept for
//!   positions before it ([`DelayEstimator::fastest_transit_at`]), so a jump does not look like
//!   a sudden excess of delay while the audio before it still plays.
//! - **Histogram and quantile** (NetEQ `DelayManagerConfig`: forget factor 0.9993 per packet,
//!   `Histogram` with a start weight): relative delays go into a histogram that forgets
//!   exponentially (a 20 ms packet stream forgets with a time constant of ~29 s: the "shrink
//!   slowly" half of the adaptation); the measured jitter is the delay [`QUANTILE`] of packets
//!   stay under. Deviations:
//!   - the quantile, 0.995 where NetEQ uses 0.97. NetEQ is tuned for RTP, where a lost packet is
//!     gone and waiting for it gains nothing. Over QUIC every lost packet comes, a retransmission
//!     later, and the frames behind it in its group wait with it: at 3 % loss some 5-10 % of
//!     packets are late by the recovery time, and at 0.97 the target sat inside that tail (~3 %
//!     of the audio concealed on the harness at 80 ms ±40 ms, 3 % loss);
//!   - 10 ms buckets up to 2 s (NetEQ: 20 ms, its packet length; our render quantum is 10 ms);
//!   - the configured start target is the histogram's prior, weighted as [`PRIOR_PACKETS`]
//!     packets: packet n weighs 1 / (n + 2) until that falls to the forget rate (NetEQ's start
//!     weight 2, under which the very first packet replaces the histogram). At the 99.5 %
//!     quantile the start target holds until 2 / (n + 2) < 0.5 %: ~400 packets, 8 s of 20 ms
//!     packets, instead of one sample deciding the first reply's buffer.
//! - **Peak detection** (NetEQ `DelayPeakDetector`: a peak is a delay above
//!   min(2 × target, target + 78 ms); `kMaxNumPeaks` 8; peak mode lasts while the last peak is
//!   less than 2 × `kMaxPeakPeriodMs` = 20 s old; the target is raised to the highest peak).
//!   Over QUIC a lost packet is not lost but retransmitted, about one RTT later (RFC 9002's loss
//!   detection: 9/8 RTT), and the frames behind it in its group wait with it: loss shows up as
//!   delay peaks of the loss-recovery time, a few % of packets. The quantile covers them once
//!   it has seen enough; a peak covers them at once. Deviations: the first peak already triggers
//!   (NetEQ waits for 2), because one retransmission is a measurement of the recovery time the
//!   next loss will need, and an underrun costs more here than a deeper buffer (a flush cuts the
//!   buffer whatever its depth); peaks are judged against the jitter measured before the packet;
//!   and the target goes to 1.25 × the peak ([`PEAK_HEADROOM_PCT`], @moq/watch's factor on the
//!   RTT), because the next retransmission varies with the jitter and the ACK timing.
//! - **@moq/watch** (`Sync`, 0.4.6) bounds its jitter buffer by a latency range `[min, max]` and
//!   only skips ahead above the ceiling; in "real-time" mode its target is 1.25 × the minimum RTT
//!   (at least 20 ms): the same idea, loss recovery ≈ one RTT, from the transport's RTT instead
//!   of from arrivals. We take the range (`min_target_us`..`max_target_us`, the 20 ms floor) and
//!   measure the recovery time on arrivals, which also works behind relays whose RTT we do not
//!   see.

use std::collections::VecDeque;

/// Media time over which the fastest transit is looked for, µs (NetEQ `max_history_ms`).
pub const HISTORY_US: u64 = 2_000_000;
/// Width of a histogram bucket, µs.
pub const BUCKET_US: u64 = 10_000;
/// Buckets: delays up to 2 s are registered (NetEQ: 100 × 20 ms).
pub const BUCKETS: usize = 200;
/// Quantile of the relative delay the target covers (NetEQ `DelayManagerConfig::quantile` is
/// 0.97; see the module header for why higher).
pub const QUANTILE: f64 = 0.995;
/// Histogram forget factor per packet (NetEQ `DelayManagerConfig::forget_factor`).
pub const FORGET: f64 = 0.9993;
/// Weight of the start target in the histogram, in packets (NetEQ's start forget weight).
pub const PRIOR_PACKETS: f64 = 2.0;
/// A delay this far above the jitter target is a peak (NetEQ `kPeakHeightMs`), µs.
pub const PEAK_HEIGHT_US: u64 = 78_000;
/// A peak raises the target to this % of its height: the next retransmission is about as late,
/// give or take the jitter and the ACK timing (@moq/watch sizes its buffer at 1.25 × RTT).
pub const PEAK_HEADROOM_PCT: u64 = 125;
/// Peaks remembered (NetEQ `kMaxNumPeaks`).
pub const MAX_PEAKS: usize = 8;
/// How long a peak keeps the target up, µs (NetEQ: 2 × `kMaxPeakPeriodMs`).
pub const PEAK_HOLD_US: u64 = 20_000_000;

/// Stretches of the timeline before jumps remembered.
const MAX_EPOCHS: usize = 8;

/// The target-delay estimator.
#[derive(Clone, Debug)]
pub struct DelayEstimator {
    min_us: u64,
    max_us: u64,
    jump_us: u64,
    /// (timestamp µs, transit µs) of recent packets since the last jump, oldest first.
    history: VecDeque<(u64, i64)>,
    /// (first timestamp after a jump, fastest transit of the stretch before it), oldest first.
    epochs: VecDeque<(u64, i64)>,
    /// Probability of each bucket; sums to 1.
    buckets: Vec<f64>,
    adds: u64,
    /// (height µs, render clock µs when seen) of recent peaks.
    peaks: VecDeque<(u64, u64)>,
    jitter_us: u64,
    peak_us: u64,
    target_us: u64,
}

impl DelayEstimator {
    /// An estimator whose target stays within `min_us..=max_us` and starts at `start_us`; a
    /// timestamp more than `jump_us` past the newest one starts a new stretch of the timeline.
    pub fn new(min_us: u64, max_us: u64, start_us: u64, jump_us: u64) -> Self {
        let max_us = max_us.max(min_us);
        let start_us = start_us.clamp(min_us, max_us);
        let mut buckets = vec![0.0; BUCKETS];
        buckets[bucket_of(start_us.saturating_sub(1))] = 1.0;
        let mut est = Self {
            min_us,
            max_us,
            jump_us,
            history: VecDeque::new(),
            epochs: VecDeque::new(),
            buckets,
            adds: 0,
            peaks: VecDeque::new(),
            jitter_us: 0,
            peak_us: 0,
            target_us: start_us,
        };
        est.jitter_us = est.quantile_us();
        est
    }

    /// A packet stamped `ts_us` arrived at render clock `clock_us`: update the statistics and
    /// return its relative arrival delay (µs). `learn: false` only tracks the fastest transit:
    /// for packets that arrive while playout waits to start, whose order says nothing about the
    /// network (a listener joining mid-group gets the group's earlier frames after the next
    /// group's first one; a new generation's first frames come in a burst).
    pub fn on_arrival(&mut self, ts_us: u64, clock_us: u64, learn: bool) -> u64 {
        let transit = clock_us as i64 - ts_us as i64;
        let newest = self.history.iter().map(|&(t, _)| t).max();
        let rel = match newest {
            Some(newest) if ts_us > newest + self.jump_us => {
                // A jump: a new stretch of the timeline, measured on its own.
                let fastest = self.fastest_transit().expect("a history");
                self.epochs.push_back((ts_us, fastest));
                if self.epochs.len() > MAX_EPOCHS {
                    self.epochs.pop_front();
                }
                self.history.clear();
                self.history.push_back((ts_us, transit));
                0
            }
            _ if self.epochs.back().is_some_and(|&(start, _)| ts_us < start) => {
                // A late packet from before the last jump: against its own stretch.
                let fastest = self.fastest_transit_at(ts_us).expect("an epoch");
                (transit - fastest).max(0) as u64
            }
            _ => {
                let newest = newest.map_or(ts_us, |n| n.max(ts_us));
                self.history.push_back((ts_us, transit));
                while let Some(&(t, _)) = self.history.front() {
                    if t + HISTORY_US < newest {
                        self.history.pop_front();
                    } else {
                        break;
                    }
                }
                let fastest = self.fastest_transit().expect("a history");
                (transit - fastest) as u64
            }
        };

        // The histogram, forgetting (with the prior's weight while few packets were seen).
        if !learn {
            return rel;
        }
        // Peaks, against the jitter expected before this packet (and not the peak-raised target:
        // the next retransmission is as late as the last, and must still count as a peak).
        let threshold = (2 * self.jitter_us).min(self.jitter_us + PEAK_HEIGHT_US);
        if rel > threshold {
            self.peaks.push_back((rel, clock_us));
            if self.peaks.len() > MAX_PEAKS {
                self.peaks.pop_front();
            }
        }

        self.adds += 1;
        let weight = (1.0 - FORGET).max(1.0 / (self.adds as f64 + PRIOR_PACKETS));
        if (rel / BUCKET_US) < BUCKETS as u64 {
            for p in &mut self.buckets {
                *p *= 1.0 - weight;
            }
            self.buckets[bucket_of(rel)] += weight;
        }
        self.jitter_us = self.quantile_us();
        while let Some(&(_, at)) = self.peaks.front() {
            if at + PEAK_HOLD_US < clock_us {
                self.peaks.pop_front();
            } else {
                break;
            }
        }
        self.peak_us = self
            .peaks
            .iter()
            .map(|&(h, _)| round_up(h * PEAK_HEADROOM_PCT / 100))
            .max()
            .unwrap_or(0);
        self.target_us = self
            .jitter_us
            .max(self.peak_us)
            .clamp(self.min_us, self.max_us);
        rel
    }

    /// The smallest transit (arrival − timestamp, µs) of the recent packets: the fastest path.
    pub fn fastest_transit(&self) -> Option<i64> {
        self.history.iter().map(|&(_, tr)| tr).min()
    }

    /// The fastest transit of the stretch of the timeline that media time `ts_us` belongs to
    /// (before a jump: that stretch's; else the recent packets').
    pub fn fastest_transit_at(&self, ts_us: u64) -> Option<i64> {
        match self.epochs.iter().find(|&&(start, _)| ts_us < start) {
            Some(&(_, fastest)) => Some(fastest),
            None => self.fastest_transit(),
        }
    }

    /// The target playout delay over the fastest path, µs, within the configured range.
    pub fn target_us(&self) -> u64 {
        self.target_us
    }

    /// The measured jitter: the relative arrival delay 99.5 % of packets stay under, µs.
    pub fn jitter_us(&self) -> u64 {
        self.jitter_us
    }

    /// The loss-recovery peak in effect (0 when none), µs.
    pub fn peak_us(&self) -> u64 {
        self.peak_us
    }

    fn quantile_us(&self) -> u64 {
        let mut sum = 0.0;
        for (i, p) in self.buckets.iter().enumerate() {
            sum += p;
            if sum >= QUANTILE {
                return (i as u64 + 1) * BUCKET_US;
            }
        }
        BUCKETS as u64 * BUCKET_US
    }
}

fn bucket_of(us: u64) -> usize {
    ((us / BUCKET_US) as usize).min(BUCKETS - 1)
}

/// `us` rounded up to a whole bucket (a delay of 0..10 ms needs a 10 ms target).
fn round_up(us: u64) -> u64 {
    (us / BUCKET_US + 1) * BUCKET_US
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of 20 ms, packet k arriving at k·20 ms + `delay(k)`.
    fn feed(est: &mut DelayEstimator, from: u64, n: u64, delay: impl Fn(u64) -> u64) {
        for k in from..from + n {
            est.on_arrival(k * 20_000, 1_000_000 + k * 20_000 + delay(k), true);
        }
    }

    #[test]
    fn a_steady_stream_settles_at_the_floor() {
        let mut est = DelayEstimator::new(20_000, 400_000, 40_000, 100_000);
        assert_eq!(est.target_us(), 40_000);
        feed(&mut est, 0, 500, |_| 0);
        assert_eq!(est.jitter_us(), 10_000);
        assert_eq!(est.target_us(), 20_000);
        assert_eq!(est.peak_us(), 0);
    }

    #[test]
    fn jitter_raises_the_target_to_its_quantile() {
        let mut est = DelayEstimator::new(20_000, 400_000, 40_000, 100_000);
        // Delays cycling 0..=79 ms (uniform): 99.5 % stay under ~79 ms.
        feed(&mut est, 0, 2_000, |k| (k * 37 % 80) * 1_000);
        assert!(
            (70_000..=90_000).contains(&est.jitter_us()),
            "{}",
            est.jitter_us()
        );
        assert_eq!(est.target_us(), est.jitter_us().max(est.peak_us()));
    }

    #[test]
    fn one_retransmission_peak_raises_the_target_at_once_and_expires() {
        let mut est = DelayEstimator::new(20_000, 400_000, 40_000, 100_000);
        feed(&mut est, 0, 100, |_| 0);
        assert_eq!(
            est.target_us(),
            40_000,
            "the start target still weighs 2 % of 100 packets"
        );
        feed(&mut est, 100, 400, |_| 0);
        assert_eq!(est.target_us(), 20_000);
        // Packet 500 comes 210 ms late (a retransmission).
        est.on_arrival(500 * 20_000, 1_000_000 + 500 * 20_000 + 210_000, true);
        assert_eq!(est.peak_us(), 270_000, "210 ms × 1.25, rounded up to 10 ms");
        assert_eq!(est.target_us(), 270_000);
        feed(&mut est, 501, 900, |_| 0); // 18 s later: still held, though the histogram forgot it
        assert!(est.jitter_us() < 100_000, "{}", est.jitter_us());
        assert_eq!(est.target_us(), 270_000);
        feed(&mut est, 1_401, 200, |_| 0); // > 20 s after the peak
        assert_eq!(est.peak_us(), 0);
        assert_eq!(est.target_us(), 20_000);
    }

    #[test]
    fn the_target_stays_in_its_range() {
        let mut est = DelayEstimator::new(20_000, 100_000, 500_000, 100_000);
        assert_eq!(est.target_us(), 100_000);
        feed(&mut est, 0, 50, |k| if k == 40 { 900_000 } else { 0 });
        assert_eq!(est.target_us(), 100_000);
    }

    #[test]
    fn the_publishers_lead_burst_is_not_jitter() {
        // The first 3 packets (60 ms of lead) arrive at once, the rest paced.
        let mut est = DelayEstimator::new(20_000, 400_000, 40_000, 100_000);
        for k in 0..3u64 {
            assert_eq!(est.on_arrival(k * 20_000, 1_000_000, true), 0);
        }
        for k in 3..200u64 {
            assert_eq!(
                est.on_arrival(k * 20_000, 1_000_000 + (k - 2) * 20_000, true),
                0
            );
        }
        assert_eq!(est.fastest_transit(), Some(1_000_000 - 40_000));
    }

    #[test]
    fn arrivals_while_waiting_to_start_only_set_the_fastest_transit() {
        let mut est = DelayEstimator::new(20_000, 400_000, 40_000, 100_000);
        // Joining mid-group: the next group's first frame, then the earlier group's frames.
        est.on_arrival(100_000, 1_000_000, false);
        assert_eq!(est.on_arrival(20_000, 1_000_000, false), 80_000);
        assert_eq!(est.fastest_transit(), Some(900_000));
        assert_eq!(
            (est.peak_us(), est.target_us()),
            (0, 40_000),
            "nothing learnt"
        );
        assert_eq!(est.on_arrival(120_000, 1_020_000, true), 0);
    }

    #[test]
    fn a_jump_starts_a_new_stretch_and_the_old_one_keeps_its_fastest_transit() {
        let mut est = DelayEstimator::new(20_000, 400_000, 40_000, 100_000);
        feed(&mut est, 0, 10, |_| 0); // transit 1 s
                                      // The publisher restarted its timeline 5 s later, 200 ms after the last packet.
        assert_eq!(est.on_arrival(5_000_000, 1_400_000, true), 0);
        assert_eq!(est.fastest_transit_at(100_000), Some(1_000_000));
        assert_eq!(
            est.fastest_transit_at(5_000_000),
            Some(1_400_000 - 5_000_000)
        );
        // A straggler from before the jump is measured against its own stretch.
        assert_eq!(est.on_arrival(200_000, 1_500_000, true), 300_000);
        assert_eq!(est.target_us(), 380_000, "a peak: 300 ms × 1.25");
    }
}
