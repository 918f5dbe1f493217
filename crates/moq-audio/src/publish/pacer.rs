//! Real-time pacing: when each Opus frame may be handed to the track, and its timestamp.
//!
//! TTS produces audio faster than real time. Everything not yet due waits in the producer's
//! queue, where a flush can still drop it; only `lead` of audio is ever on the network ahead of
//! the playout clock. This module is pure arithmetic on [`Instant`]s so it is tested without a
//! network or a real clock.
//!
//! Timestamps are µs on the producer's media clock, which runs with wall time from the
//! producer's creation. A frame stamped `ts` is meant to play at media time `ts` and is handed
//! out at `ts - lead`. The timeline is *anchored*: at the start and after an underrun (the
//! writer paused, e.g. while the user talks), the next frame is stamped `max(next, now)` (never
//! in the past, never decreasing) and the anchor moves to "now", so the first `lead` of audio
//! goes out at once and the rest follows at real-time pace. A flush does not re-anchor: audio
//! of the new generation written at once continues the schedule (see `queue.rs` for why).

use std::time::{Duration, Instant};

/// Where a run of contiguous frames started: the instant and the timestamp it was given.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    at: Instant,
    ts_us: u64,
}

/// The pacing clock of one producer.
#[derive(Debug)]
pub struct Pacer {
    origin: Instant,
    lead: Duration,
    frame_us: u64,
    anchor: Option<Anchor>,
    next_ts_us: u64,
}

impl Pacer {
    /// A pacer for frames of `frame` duration, keeping `lead` ahead of playout.
    pub fn new(origin: Instant, lead: Duration, frame: Duration) -> Self {
        Self {
            origin,
            lead,
            frame_us: frame.as_micros() as u64,
            anchor: None,
            next_ts_us: 0,
        }
    }

    /// The media clock at `now`, in µs.
    pub fn media_now(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_micros() as u64
    }

    /// When the next frame may be handed out, or `None` if it may go now (no anchor yet).
    pub fn due(&self) -> Option<Instant> {
        let anchor = self.anchor?;
        let offset = Duration::from_micros(self.next_ts_us - anchor.ts_us);
        // Frames within the first `lead` of a run are all due at the anchor itself.
        Some(anchor.at + offset.saturating_sub(self.lead))
    }

    /// If the next frame may be handed out at `now`, stamp it and return its timestamp (µs).
    ///
    /// A frame later than `lead` past its due time means the listener has run dry (an
    /// underrun: the writer fell behind real time); the timeline then restarts at `now`.
    pub fn take(&mut self, now: Instant) -> Option<u64> {
        match self.due() {
            Some(due) if now > due + self.lead => self.reanchor(now),
            None => self.reanchor(now),
            Some(_) => {}
        }
        let due = self.due().expect("anchored above");
        if now < due {
            return None;
        }
        let ts = self.next_ts_us;
        self.next_ts_us += self.frame_us;
        Some(ts)
    }

    /// Move the timeline `us` forward without a frame: room for something stamped at
    /// [`next_ts_us`](Self::next_ts_us) that lasts `us` (a flush marker's 2.5 ms packet).
    pub fn advance(&mut self, us: u64) {
        self.next_ts_us += us;
    }

    /// Timestamp the next frame will get if handed out without a re-anchor (µs).
    pub fn next_ts_us(&self) -> u64 {
        self.next_ts_us
    }

    fn reanchor(&mut self, now: Instant) {
        let ts_us = self.next_ts_us.max(self.media_now(now));
        self.next_ts_us = ts_us;
        self.anchor = Some(Anchor { at: now, ts_us });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pacer(t0: Instant) -> Pacer {
        Pacer::new(t0, 60 * MS, 20 * MS)
    }

    /// Hand out every frame that is due at `now`.
    fn drain(p: &mut Pacer, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| p.take(now)).take(10_000).collect()
    }

    #[test]
    fn the_first_lead_goes_out_at_once_then_real_time() {
        let t0 = Instant::now();
        let mut p = pacer(t0);
        // lead 60 ms of 20 ms frames: frames at 0, 20, 40, 60 ms are due at t0 (60 - 60 = 0).
        assert_eq!(drain(&mut p, t0), vec![0, 20_000, 40_000, 60_000]);
        assert_eq!(drain(&mut p, t0 + 19 * MS), Vec::<u64>::new());
        assert_eq!(drain(&mut p, t0 + 20 * MS), vec![80_000]);
        // Over one second of wall time, polled every 5 ms, exactly 50 more frames are released.
        let got: Vec<u64> = (5..=204)
            .flat_map(|k| drain(&mut p, t0 + k * 5 * MS))
            .collect();
        assert_eq!(got.len(), 50);
        assert_eq!(*got.last().unwrap(), 1_080_000);
    }

    #[test]
    fn never_more_than_lead_ahead_of_the_media_clock() {
        let t0 = Instant::now();
        let mut p = pacer(t0);
        for step in 0..500u32 {
            let now = t0 + step * 7 * MS;
            for ts in drain(&mut p, now) {
                assert!(ts <= p.media_now(now) + 60_000, "ts {ts} at {step}");
            }
        }
    }

    #[test]
    fn an_underrun_restarts_the_timeline_at_now_and_stays_monotonic() {
        let t0 = Instant::now();
        let mut p = pacer(t0);
        let first = drain(&mut p, t0);
        // The writer stalls for 2 s; the next frame must not be stamped in the past.
        let late = t0 + 2_000 * MS;
        let ts = p.take(late).unwrap();
        assert!(
            ts >= p.media_now(late),
            "stamped {ts} µs at media time {}",
            p.media_now(late)
        );
        assert!(ts > *first.last().unwrap());
        // And the burst after the restart is again one lead.
        assert_eq!(drain(&mut p, late).len(), 3);
    }

    #[test]
    fn a_small_delay_is_not_an_underrun() {
        let t0 = Instant::now();
        let mut p = pacer(t0);
        drain(&mut p, t0);
        // Frame 80 ms is due at t0 + 20 ms; taken 30 ms late it keeps its stamp.
        assert_eq!(p.take(t0 + 50 * MS), Some(80_000));
    }
}
