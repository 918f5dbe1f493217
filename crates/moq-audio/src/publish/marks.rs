//! Marks and heard-up-to: resolving positions in the audio by what listeners actually played.
//!
//! Positions are "µs into a generation": the audio written since the generation started. The
//! producer records, as it hands frames to the track, which media timestamps a generation's
//! frames got (contiguous runs; a new run starts after an underrun). A listener reports the media
//! timestamp it last rendered (see [`crate::wire::playout`]); the tracker maps it back to µs into the
//! generation, resolves marks up to there as *played*, and on flush resolves the rest as
//! *flushed*. Each mark resolves exactly once (docs/architecture.md, invariant 5).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::wire::playout::PlayoutReport;
use crate::{Error, Result};

/// How a mark resolved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MarkState {
    /// A listener rendered the marked sample.
    Played {
        /// The listener that played it first.
        listener: String,
        /// The listener's wall clock when it rendered the report that covered the mark (ms since
        /// the Unix epoch, listener's clock).
        render_time_ms: f64,
    },
    /// A flush (or cancel) dropped the marked audio before any listener played it.
    Flushed,
    /// No listener reported playout within the timeout; nobody knows whether it was heard.
    Unknown,
}

/// A mark resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct MarkEvent {
    /// The id given to [`crate::AudioProducer::mark`].
    pub id: String,
    /// The generation the mark was made in.
    pub generation: u64,
    /// µs into that generation the mark pins.
    pub position_us: u64,
    /// How it resolved.
    pub state: MarkState,
}

/// How far listeners had rendered into a flushed generation.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Heard {
    /// The furthest any listener got, in ms into the generation (or the estimate).
    pub ms: f64,
    /// `true` when no listener had reported playout of this generation yet, so `ms` is the
    /// sender's estimate: audio handed out, minus the lead and the listener's jitter target.
    pub estimated: bool,
    /// Per listener id: ms into the generation it had rendered.
    pub per_listener: Vec<(String, f64)>,
}

/// Assumed listener delay (jitter buffer target) for the estimate when there is no feedback.
pub const ESTIMATE_LISTENER_DELAY: Duration = Duration::from_millis(40);

#[derive(Debug)]
struct Pending {
    id: String,
    generation: u64,
    position_us: u64,
}

/// A run of contiguous frames: frame `first` of the generation got timestamp `ts_us`.
#[derive(Clone, Copy, Debug)]
struct Run {
    first: u64,
    ts_us: u64,
    frames: u64,
}

#[derive(Debug, Default)]
struct GenerationLog {
    runs: Vec<Run>,
    first_sent: Option<Instant>,
    frame_us: u64,
}

impl GenerationLog {
    /// Map a media timestamp to µs into the generation (clamped into what was sent).
    fn position(&self, ts_us: u64) -> Option<u64> {
        // A timestamp just before the first run (a decoder that shifts its output by the codec
        // delay) is the start of the generation.
        let run = self
            .runs
            .iter()
            .rev()
            .find(|r| r.ts_us <= ts_us)
            .or(self.runs.first())?;
        let into = ts_us
            .saturating_sub(run.ts_us)
            .min(run.frames * self.frame_us);
        Some(run.first * self.frame_us + into)
    }

    fn sent_us(&self) -> u64 {
        self.runs
            .last()
            .map_or(0, |r| (r.first + r.frames) * self.frame_us)
    }
}

/// What one listener last reported about its playout.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ListenerPlayout {
    /// The listener id (the last segment of its feedback broadcast path).
    pub listener: String,
    /// The generation it is rendering.
    pub generation: u64,
    /// How far into that generation it rendered, as of its last report.
    pub position: Duration,
    /// Whether it was rendering at that report (false after it ran dry).
    pub playing: bool,
    /// Time since that report arrived.
    pub age: Duration,
}

#[derive(Debug, Clone)]
struct ListenerState {
    generation: u64,
    position_us: u64,
    playing: bool,
    at: Instant,
}

/// Producer-side bookkeeping of marks and listener playout. Not thread-safe on its own: the
/// producer keeps it under its queue lock.
#[derive(Debug)]
pub struct MarkTracker {
    pending: VecDeque<Pending>,
    logs: BTreeMap<u64, GenerationLog>,
    listeners: HashMap<String, ListenerState>,
    events: broadcast::Sender<MarkEvent>,
    resolved: VecDeque<MarkEvent>,
    /// When the oldest pending mark started waiting for feedback.
    waiting_since: Option<Instant>,
}

/// Resolved marks remembered for late `wait_mark` callers.
const RESOLVED_KEPT: usize = 1024;

impl Default for MarkTracker {
    fn default() -> Self {
        Self {
            pending: VecDeque::new(),
            logs: BTreeMap::new(),
            listeners: HashMap::new(),
            events: broadcast::channel(1024).0,
            resolved: VecDeque::new(),
            waiting_since: None,
        }
    }
}

impl MarkTracker {
    /// Add a pending mark at `position_us` into `generation`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if a mark with this id is still pending.
    pub fn add(&mut self, id: &str, generation: u64, position_us: u64) -> Result<()> {
        if self.pending.iter().any(|m| m.id == id) {
            return Err(Error::InvalidInput(format!(
                "mark {id:?} is already pending"
            )));
        }
        self.resolved.retain(|e| e.id != id);
        self.pending.push_back(Pending {
            id: id.to_string(),
            generation,
            position_us,
        });
        self.waiting_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Record that frame `index` of `generation` went out stamped `ts_us`.
    pub fn sent(&mut self, generation: u64, index: u64, ts_us: u64, frame_us: u64) {
        let log = self.logs.entry(generation).or_default();
        log.frame_us = frame_us;
        log.first_sent.get_or_insert_with(Instant::now);
        match log.runs.last_mut() {
            Some(run)
                if run.first + run.frames == index
                    && run.ts_us + run.frames * frame_us == ts_us =>
            {
                run.frames += 1
            }
            _ => log.runs.push(Run {
                first: index,
                ts_us,
                frames: 1,
            }),
        }
        // Keep the logs of the last few generations only: reports about older ones are moot.
        while self.logs.len() > 4 {
            self.logs.pop_first();
        }
    }

    /// A listener's playout report arrived at `now`.
    pub fn report(&mut self, report: PlayoutReport, now: Instant) {
        // Any report shows a listener is alive: pending marks keep waiting for it.
        if !self.pending.is_empty() {
            self.waiting_since = Some(now);
        }
        let Some(log) = self.logs.get(&report.generation) else {
            tracing::debug!(
                generation = report.generation,
                "playout report for a generation we have no log of"
            );
            return;
        };
        let Some(position_us) = log.position(report.ts_us) else {
            return;
        };
        let entry = self
            .listeners
            .entry(report.listener.clone())
            .or_insert(ListenerState {
                generation: report.generation,
                position_us,
                playing: report.playing,
                at: now,
            });
        if report.generation < entry.generation {
            return; // a late report about a generation the listener already left
        }
        *entry = ListenerState {
            generation: report.generation,
            position_us: if report.generation == entry.generation {
                position_us.max(entry.position_us)
            } else {
                position_us
            },
            playing: report.playing,
            at: now,
        };
        let reached = entry.position_us;
        let listener = report.listener;
        let played: Vec<Pending> = drain_where(&mut self.pending, |m| {
            m.generation == report.generation && m.position_us <= reached
        });
        for m in played {
            self.resolve(
                m,
                MarkState::Played {
                    listener: listener.clone(),
                    render_time_ms: report.render_time_ms,
                },
            );
        }
    }

    /// `generation` was flushed at `now`: resolve its pending marks as flushed and say how far
    /// listeners had got.
    pub fn flush(&mut self, generation: u64, now: Instant) -> Heard {
        let flushed = drain_where(&mut self.pending, |m| m.generation <= generation);
        for m in flushed {
            self.resolve(m, MarkState::Flushed);
        }
        if self.pending.is_empty() {
            self.waiting_since = None;
        }
        let Some(log) = self.logs.get(&generation) else {
            return Heard {
                estimated: true,
                ..Heard::default()
            };
        };
        let sent = log.sent_us();
        let mut per_listener: Vec<(String, f64)> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.generation == generation)
            .map(|(id, l)| {
                // Between reports the listener kept playing: extrapolate to the cut.
                let since = if l.playing {
                    now.saturating_duration_since(l.at).as_micros() as u64
                } else {
                    0
                };
                (
                    id.clone(),
                    (l.position_us + since).min(sent) as f64 / 1000.0,
                )
            })
            .collect();
        per_listener.sort_by(|a, b| a.0.cmp(&b.0));
        if per_listener.is_empty() {
            let elapsed = log
                .first_sent
                .map_or(0, |t| now.saturating_duration_since(t).as_micros() as u64);
            let ms = elapsed
                .saturating_sub(ESTIMATE_LISTENER_DELAY.as_micros() as u64)
                .min(sent) as f64
                / 1000.0;
            return Heard {
                ms,
                estimated: true,
                per_listener,
            };
        }
        let ms = per_listener.iter().map(|(_, v)| *v).fold(0.0, f64::max);
        Heard {
            ms,
            estimated: false,
            per_listener,
        }
    }

    /// The queued tail of `old` continues as generation `new` (a reconnect): pending marks of
    /// `old` past `shift_us` (what had been handed out) move to `new`, `shift_us` earlier.
    /// Marks on audio already handed out stay with `old`.
    pub fn rebase(&mut self, old: u64, new: u64, shift_us: u64) {
        for m in self
            .pending
            .iter_mut()
            .filter(|m| m.generation == old && m.position_us > shift_us)
        {
            m.generation = new;
            m.position_us -= shift_us;
        }
    }

    /// Resolve marks as unknown when no listener reported for `timeout` while they waited.
    pub fn expire(&mut self, now: Instant, timeout: Duration) {
        let Some(since) = self.waiting_since else {
            return;
        };
        if now.saturating_duration_since(since) < timeout {
            return;
        }
        let all: Vec<Pending> = self.pending.drain(..).collect();
        for m in all {
            self.resolve(m, MarkState::Unknown);
        }
        self.waiting_since = None;
    }

    /// What each listener last reported, sorted by listener id.
    pub fn listeners(&self, now: Instant) -> Vec<ListenerPlayout> {
        let mut out: Vec<ListenerPlayout> = self
            .listeners
            .iter()
            .map(|(id, l)| ListenerPlayout {
                listener: id.clone(),
                generation: l.generation,
                position: Duration::from_micros(l.position_us),
                playing: l.playing,
                age: now.saturating_duration_since(l.at),
            })
            .collect();
        out.sort_by(|a, b| a.listener.cmp(&b.listener));
        out
    }

    /// Subscribe to resolutions.
    pub fn subscribe(&self) -> broadcast::Receiver<MarkEvent> {
        self.events.subscribe()
    }

    /// The resolution of `id`, if it resolved recently.
    pub fn resolved(&self, id: &str) -> Option<MarkEvent> {
        self.resolved.iter().rev().find(|e| e.id == id).cloned()
    }

    /// Whether any mark is pending.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether `id` is still pending.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.iter().any(|m| m.id == id)
    }

    fn resolve(&mut self, m: Pending, state: MarkState) {
        let event = MarkEvent {
            id: m.id,
            generation: m.generation,
            position_us: m.position_us,
            state,
        };
        self.resolved.push_back(event.clone());
        while self.resolved.len() > RESOLVED_KEPT {
            self.resolved.pop_front();
        }
        let _ = self.events.send(event);
    }
}

fn drain_where<T>(queue: &mut VecDeque<T>, pred: impl Fn(&T) -> bool) -> Vec<T> {
    let mut out = Vec::new();
    let mut keep = VecDeque::with_capacity(queue.len());
    for item in queue.drain(..) {
        if pred(&item) {
            out.push(item);
        } else {
            keep.push_back(item);
        }
    }
    *queue = keep;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 20_000;

    fn report(listener: &str, generation: u64, ts_us: u64) -> PlayoutReport {
        PlayoutReport {
            listener: listener.into(),
            generation,
            ts_us,
            playing: true,
            render_time_ms: 0.0,
        }
    }

    /// Send `n` frames of `generation` starting at timestamp `ts0`.
    fn send(t: &mut MarkTracker, generation: u64, first: u64, n: u64, ts0: u64) {
        for i in 0..n {
            t.sent(generation, first + i, ts0 + i * FRAME, FRAME);
        }
    }

    #[test]
    fn marks_resolve_played_then_flushed_exactly_once() {
        let mut t = MarkTracker::default();
        let mut rx = t.subscribe();
        t.add("s1", 0, 1_000_000).unwrap();
        t.add("s2", 0, 2_000_000).unwrap();
        t.add("s3", 0, 3_000_000).unwrap();
        send(&mut t, 0, 0, 150, 5_000_000);
        let now = Instant::now();
        t.report(report("a", 0, 5_000_000 + 1_500_000), now);
        t.report(report("b", 0, 5_000_000 + 2_100_000), now);
        t.report(report("a", 0, 5_000_000 + 2_200_000), now); // s2 already played: not again
        let heard = t.flush(0, now);
        t.flush(0, now); // a second flush resolves nothing twice
        let events: Vec<MarkEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let states: Vec<(&str, bool)> = events
            .iter()
            .map(|e| (e.id.as_str(), matches!(e.state, MarkState::Played { .. })))
            .collect();
        assert_eq!(states, vec![("s1", true), ("s2", true), ("s3", false)]);
        assert!(!heard.estimated);
        assert_eq!(heard.per_listener.len(), 2);
        assert!((heard.ms - 2_200.0).abs() < 5.0, "{heard:?}");
    }

    #[test]
    fn a_run_restart_after_underrun_maps_back_to_generation_time() {
        let mut t = MarkTracker::default();
        send(&mut t, 2, 0, 10, 1_000_000); // 200 ms
        send(&mut t, 2, 10, 10, 9_000_000); // underrun: timeline jumped
        let log = &t.logs[&2];
        assert_eq!(log.position(1_100_000), Some(100_000));
        assert_eq!(log.position(9_050_000), Some(250_000));
        // Between runs (the gap): clamped to the end of the first run.
        assert_eq!(log.position(5_000_000), Some(200_000));
    }

    #[test]
    fn without_feedback_heard_is_flagged_as_an_estimate() {
        let mut t = MarkTracker::default();
        send(&mut t, 0, 0, 50, 0);
        let heard = t.flush(0, Instant::now() + Duration::from_millis(500));
        assert!(heard.estimated);
        assert!(heard.ms > 400.0 && heard.ms <= 1000.0, "{heard:?}");
    }

    #[test]
    fn a_reconnect_moves_marks_on_queued_audio_to_the_new_generation() {
        let mut t = MarkTracker::default();
        let mut rx = t.subscribe();
        t.add("sent", 0, 400_000).unwrap();
        t.add("queued", 0, 1_500_000).unwrap();
        send(&mut t, 0, 0, 50, 0); // 1 s handed out before the outage
        t.rebase(0, 1, 1_000_000);
        send(&mut t, 1, 0, 50, 9_000_000); // the carried audio, later on the timeline
        t.report(report("a", 1, 9_000_000 + 600_000), Instant::now());
        let event = rx.try_recv().unwrap();
        assert_eq!(
            (event.id.as_str(), event.generation, event.position_us),
            ("queued", 1, 500_000)
        );
        assert!(matches!(event.state, MarkState::Played { .. }));
        assert!(
            t.is_pending("sent"),
            "audio sent before the outage keeps its generation"
        );
    }

    #[test]
    fn silent_listener_resolves_unknown_after_timeout() {
        let mut t = MarkTracker::default();
        let mut rx = t.subscribe();
        t.add("m", 0, 10).unwrap();
        let start = Instant::now();
        t.expire(start, Duration::from_secs(3));
        assert!(rx.try_recv().is_err());
        t.expire(start + Duration::from_secs(4), Duration::from_secs(3));
        assert_eq!(rx.try_recv().unwrap().state, MarkState::Unknown);
        assert!(t.add("m", 0, 20).is_ok(), "a resolved id can be reused");
        assert!(t.add("m", 0, 30).is_err(), "a pending id cannot");
    }
}
