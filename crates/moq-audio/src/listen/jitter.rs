//! A generation-aware, adaptive jitter buffer: encoded packets in, a continuous sample stream out.
//!
//! Pure logic, driven by a render clock it keeps itself (the sample frames it rendered; an
//! arriving packet is stamped with it), decoding through a [`PacketDecoder`] at playout time
//! ([`super::player`] drives it in real time). The same specification is implemented by
//! `web-demo/src/jitter.ts` (the browser's worklet); the scenario files in `spec/jitter/` are run
//! against both (`crates/moq-audio/tests/jitter_spec.rs`, `web-demo/tests/spec.test.mjs`).
//!
//! - **Target.** The playout delay over the fastest recent packet ("delay") is steered towards a
//!   target that [`DelayEstimator`] adapts to the arrival jitter and loss-recovery peaks, within
//!   `min_target_us..=max_target_us`.
//! - **Start.** A generation starts once `target` of it is buffered, or once its audio has waited
//!   `target` (so the last frame of an utterance plays instead of waiting for audio that may not
//!   come for seconds).
//! - **Grow fast, shrink slowly, never by a jump.** A late packet that finds the buffer dry holds
//!   playout where it is (concealment, then silence) until it arrives, and plays then: the delay
//!   grows by exactly its lateness, and the estimator raises the target on the same packet.
//!   Otherwise the delay moves by time-scaling quiet chunks ([`stretch`]): shrinking when it is
//!   over max(target, the publisher's lead) + 20 ms (audio the publisher sent ahead costs the
//!   listener no latency it can notice — a flush cuts the buffer whatever its depth — and rides
//!   out late packets for free), growing when it is under target − 20 ms. Only far above the
//!   range (max(max target, lead) + 100 ms, after an outage) is queued audio skipped.
//! - **Missing packets.** A packet missing at its playout time while later ones are buffered (a
//!   hole, ≤ `max_gap_us`) is concealed by the codec's PLC (WebRTC NetEQ's *Expand*). While the
//!   delay is under the target, the concealment holds the position (the packet is probably on
//!   its way, and the delay grows towards the target: NetEQ keeps expanding rather than jump to
//!   a future packet while its buffer is below the target); at or over the target it conceals
//!   the packet's time and moves on, and the packet, when it comes, is dropped as late. A larger
//!   hole is a jump of the publisher's timeline (it ran dry and restarted): closed up. When
//!   nothing is buffered the
//!   buffer is *dry*: 10 ms of concealment faded to silence, then silence, at the same position;
//!   if audio continuing that position arrives, playout resumes at once and an underrun is
//!   counted; a jump or a new generation instead starts afresh (that was the end of an
//!   utterance, not an underrun).
//! - **Generations.** A packet of a newer generation (a flush at the publisher; an empty packet
//!   is its marker): what is left of the old generation is not cut mid-wave but faded out over at
//!   most `fade_us` (≤ 10 ms), whatever the depth; everything else of it is dropped; the decoder
//!   starts a new stream; the new generation then starts as above. A cut while the fade of an
//!   earlier cut is still playing keeps that fade. A packet of an older generation is dropped.
//!
//! Packets are kept in timestamp order and played against a playout position, not in arrival
//! order: groups are read concurrently, so a frame of group k+1 can arrive before the last
//! frames of group k, and must not push them out as "late".

use std::collections::VecDeque;

use bytes::Bytes;

pub use super::conceal::PacketDecoder;
pub use super::delay::DelayEstimator;
use super::stretch;

/// Settings for [`JitterBuffer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JitterOptions {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Target delay before anything was measured, µs. Default 40 ms (two 20 ms frames).
    pub target_us: u64,
    /// Smallest target, µs. Default 20 ms (@moq/watch's floor; one Opus frame).
    pub min_target_us: u64,
    /// Largest target, µs. Default 400 ms: above the worst loss-recovery time measured on the
    /// impairment harness (~250 ms at 100 ms one-way delay).
    pub max_target_us: u64,
    /// Fade-out applied to the old generation at a flush, in µs. Default 5 ms (≤ 10 ms per
    /// docs/architecture.md: long enough to avoid a click, short enough to be inaudible as audio).
    pub fade_us: u64,
    /// Largest timestamp gap concealed; larger jumps (a publisher underrun) are closed up, µs.
    /// Default 100 ms.
    pub max_gap_us: u64,
    /// The publisher's pacing lead (its catalog's `leadMs`), µs: the delay is not shrunk below
    /// it, and the skip threshold is above it. Default 0.
    pub lead_us: u64,
}

impl JitterOptions {
    /// Defaults for `sample_rate` Hz and `channels` channels.
    pub fn new(sample_rate: u32, channels: u32) -> Self {
        Self {
            sample_rate,
            channels,
            target_us: 40_000,
            min_target_us: 20_000,
            max_target_us: 400_000,
            fade_us: 5_000,
            max_gap_us: 100_000,
            lead_us: 0,
        }
    }
}

/// What one rendered stretch of samples was.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rendered {
    /// Generation of the audio, `None` for silence.
    pub generation: Option<u64>,
    /// Media timestamp (µs) of the first sample, for audio (the position held, for concealment
    /// while dry).
    pub ts_us: u64,
    /// Sample frames (per channel) in the stretch.
    pub frames: usize,
    /// Whether this stretch is the fade-out of a flushed generation.
    pub fade: bool,
    /// Whether this stretch was concealed (codec PLC) instead of decoded.
    pub concealed: bool,
}

/// Counters and the adaptation's state, for tests, stats and people.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JitterStats {
    /// Frames dropped because their generation was older than the one playing.
    pub stale_frames: u64,
    /// Frames dropped because they arrived after their time (or were duplicates).
    pub late_frames: u64,
    /// Sample frames of old audio dropped at flushes (not counting the fade).
    pub flushed_frames: u64,
    /// Times playout ran dry and then went on with audio that had been late.
    pub underruns: u64,
    /// Sample frames skipped because the delay was far over the target (after an outage).
    pub skipped_frames: u64,
    /// Sample frames of concealment (PLC) rendered.
    pub concealed_frames: u64,
    /// Sample frames added by stretching quiet audio (the delay grew).
    pub inserted_frames: u64,
    /// Sample frames removed from quiet audio (the delay shrank).
    pub removed_frames: u64,
    /// The current target delay, µs.
    pub target_us: u64,
    /// The measured jitter: the relative arrival delay 99.5 % of packets stay under, µs.
    pub jitter_us: u64,
    /// The loss-recovery peak raising the target (0 when none), µs.
    pub peak_us: u64,
    /// The current playout delay over the fastest recent packet, µs (last known while waiting).
    pub delay_us: u64,
}

/// An encoded packet waiting to be played, by media timestamp.
#[derive(Debug)]
struct Packet {
    ts_us: u64,
    dur_us: u64,
    frames: usize,
    payload: Bytes,
}

/// Decoded (or concealed) audio being played: `media_us` of the timeline over `pcm`.
#[derive(Debug)]
struct Chunk {
    ts_us: u64,
    media_us: u64,
    pcm: Vec<f32>,
    /// Samples (interleaved) already rendered.
    offset: usize,
    concealed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not started: waiting for the target (or for audio).
    Waiting,
    Playing,
    /// Started, and nothing to play at the position: holding it.
    Dry,
}

/// Timestamps within this of each other are contiguous: decoders and resamplers emit frames
/// whose length does not always land on a whole µs.
pub const SLACK_US: u64 = 1_000;
/// Longest stretch of a hole concealed at once, µs (one Opus frame).
pub const HOLE_PIECE_US: u64 = 20_000;
/// Concealment rendered at a time while holding the position at a hole, µs (then the buffer
/// looks again whether the packet came).
pub const HOLD_PIECE_US: u64 = 10_000;
/// Concealment rendered when playout runs dry, faded out to silence, µs.
pub const DRY_CONCEAL_US: u64 = 10_000;
/// The delay is shrunk only when this far over its floor, µs.
pub const SHRINK_HYSTERESIS_US: u64 = 20_000;
/// The delay is grown only when this far under the target, µs (the start rule leaves it up to
/// one 20 ms frame under).
pub const GROW_HYSTERESIS_US: u64 = 20_000;
/// Over max(max target, lead) + this, queued audio is skipped down to the target, µs.
pub const SKIP_MARGIN_US: u64 = 100_000;

/// The buffer.
pub struct JitterBuffer<D> {
    opts: JitterOptions,
    decoder: D,
    delay: DelayEstimator,
    generation: Option<u64>,
    /// Packets of the current generation in timestamp order, not yet decoded.
    queue: VecDeque<Packet>,
    cur: Option<Chunk>,
    /// Media timestamp (µs) of the next sample to render; `None` until playout is anchored.
    pos_us: Option<u64>,
    state: State,
    /// Faded tail of the flushed generation, rendered before anything else.
    fade: VecDeque<f32>,
    fade_generation: u64,
    fade_ts: u64,
    stats: JitterStats,
    last: Option<(u64, u64)>,
    /// Render time (µs) the audio now buffered has waited while playout was stopped.
    waited_us: u64,
    /// Sample frames rendered: the render clock.
    rendered: u64,
}

impl<D: PacketDecoder> JitterBuffer<D> {
    /// An empty buffer decoding with `decoder`.
    pub fn new(mut opts: JitterOptions, decoder: D) -> Self {
        opts.max_target_us = opts.max_target_us.max(opts.min_target_us);
        opts.fade_us = opts.fade_us.min(10_000);
        let delay = DelayEstimator::new(
            opts.min_target_us,
            opts.max_target_us,
            opts.target_us,
            opts.max_gap_us,
        );
        let mut b = Self {
            opts,
            decoder,
            delay,
            generation: None,
            queue: VecDeque::new(),
            cur: None,
            pos_us: None,
            state: State::Waiting,
            fade: VecDeque::new(),
            fade_generation: 0,
            fade_ts: 0,
            stats: JitterStats::default(),
            last: None,
            waited_us: 0,
            rendered: 0,
        };
        b.update_state_stats();
        b
    }

    fn ch(&self) -> usize {
        self.opts.channels as usize
    }

    fn us_to_frames(&self, us: u64) -> usize {
        (us * self.opts.sample_rate as u64 / 1_000_000) as usize
    }

    fn frames_to_us(&self, frames: u64) -> u64 {
        frames * 1_000_000 / self.opts.sample_rate as u64
    }

    /// The render clock (µs) at sample `i` of the quantum being rendered.
    fn clock_us(&self, i: usize) -> u64 {
        self.frames_to_us(self.rendered + (i / self.ch()) as u64)
    }

    /// The playout delay over the fastest recent packet at sample `i` of this quantum, µs.
    fn delay_now(&self, i: usize) -> Option<i64> {
        let pos = self.pos_us?;
        let fastest = self.delay.fastest_transit_at(pos)?;
        Some(self.clock_us(i) as i64 - pos as i64 - fastest)
    }

    /// The generation being played (or waited for).
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// Audio buffered in µs (current generation, not yet rendered; gaps not counted).
    pub fn buffered_us(&self) -> u64 {
        let queued: u64 = self.queue.iter().map(|p| p.dur_us).sum();
        let cur = self.cur.as_ref().map_or(0, |c| {
            let left = (c.pcm.len() - c.offset) as u64;
            c.media_us * left / c.pcm.len().max(1) as u64
        });
        queued + cur
    }

    /// Counters and the adaptation's state.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Whether playout is running (not waiting for the target, not dry).
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// The (generation, media timestamp in µs) just past the last sample rendered, if any.
    pub fn last_rendered(&self) -> Option<(u64, u64)> {
        self.last
    }

    /// Add a packet stamped `ts_us` (µs) of `generation`; it arrived now (on the render clock).
    ///
    /// An empty packet only announces its generation (a flush marker).
    pub fn push(&mut self, generation: u64, ts_us: u64, packet: Bytes) {
        match self.generation {
            Some(g) if generation < g => {
                self.stats.stale_frames += 1;
                return;
            }
            Some(g) if generation > g => self.cut_to(generation),
            None => self.generation = Some(generation),
            _ => {}
        }
        if packet.is_empty() {
            return;
        }
        let Some(frames) = self.decoder.frames(&packet).filter(|&f| f > 0) else {
            tracing::debug!("dropping a packet that does not parse");
            return;
        };
        let dur_us = self.frames_to_us(frames as u64);
        // Only what arrives once playout runs tells about the network (see DelayEstimator).
        let learn = self.state != State::Waiting;
        self.delay.on_arrival(ts_us, self.clock_us(0), learn);
        self.update_state_stats();
        // At or before the playout position (or inside what is being played): late.
        let played_to = match (&self.cur, self.pos_us) {
            (Some(c), _) => Some(c.ts_us + c.media_us),
            (None, pos) => pos,
        };
        if played_to.is_some_and(|p| ts_us + SLACK_US < p) {
            self.stats.late_frames += 1;
            return;
        }
        // Insert in timestamp order; a packet overlapping one we have is a duplicate.
        let at = self.queue.partition_point(|p| p.ts_us < ts_us);
        let end = ts_us + dur_us;
        let overlaps_prev =
            at > 0 && self.queue[at - 1].ts_us + self.queue[at - 1].dur_us > ts_us + SLACK_US;
        let overlaps_next = at < self.queue.len() && self.queue[at].ts_us + SLACK_US < end;
        if overlaps_prev || overlaps_next {
            self.stats.late_frames += 1;
            return;
        }
        self.queue.insert(
            at,
            Packet {
                ts_us,
                dur_us,
                frames,
                payload: packet,
            },
        );
    }

    /// A newer generation arrived: fade out what the listener is hearing and drop the rest.
    fn cut_to(&mut self, generation: u64) {
        let ch = self.ch();
        if self.fade.is_empty() && self.state != State::Waiting {
            let want = self.us_to_frames(self.opts.fade_us).max(1) * ch;
            self.fade_ts = self.pos_us.unwrap_or(0);
            self.fade_generation = self.generation.expect("cut from a generation");
            let mut old = Vec::with_capacity(want);
            while old.len() < want {
                if let Some(c) = self.cur.as_mut().filter(|c| c.offset < c.pcm.len()) {
                    let take = (c.pcm.len() - c.offset).min(want - old.len());
                    old.extend_from_slice(&c.pcm[c.offset..c.offset + take]);
                    c.offset += take;
                    continue;
                }
                let pos = self
                    .cur
                    .as_ref()
                    .map(|c| c.ts_us + c.media_us)
                    .or(self.pos_us);
                match (self.state, self.queue.front(), pos) {
                    (State::Playing, Some(p), Some(pos)) if p.ts_us <= pos + SLACK_US => {
                        let p = self.queue.pop_front().expect("front");
                        let pcm = self.decode(&p);
                        self.cur = Some(Chunk {
                            ts_us: p.ts_us,
                            media_us: p.dur_us,
                            pcm,
                            offset: 0,
                            concealed: false,
                        });
                    }
                    _ => break,
                }
            }
            let frames = old.len() / ch;
            self.fade.clear();
            for (i, s) in old.into_iter().enumerate() {
                let gain = 1.0 - (i / ch + 1) as f32 / frames as f32;
                self.fade.push_back(s * gain);
            }
        }
        let cur_left = self
            .cur
            .as_ref()
            .filter(|c| !c.concealed)
            .map_or(0, |c| (c.pcm.len() - c.offset) / ch);
        let queued: usize = self.queue.iter().map(|p| p.frames).sum();
        self.stats.flushed_frames += (cur_left + queued) as u64;
        self.queue.clear();
        self.cur = None;
        self.pos_us = None;
        self.generation = Some(generation);
        self.state = State::Waiting;
        self.waited_us = 0;
        self.decoder.reset();
    }

    fn decode(&mut self, p: &Packet) -> Vec<f32> {
        match self.decoder.decode(&p.payload) {
            Ok(pcm) => pcm,
            Err(e) => {
                tracing::warn!(%e, "concealing a packet that does not decode");
                self.conceal(p.frames)
            }
        }
    }

    fn conceal(&mut self, frames: usize) -> Vec<f32> {
        self.decoder.conceal(frames).unwrap_or_else(|e| {
            tracing::warn!(%e, "concealment failed; silence instead");
            vec![0.0; frames * self.ch()]
        })
    }

    /// Make the chunk at the playout position current: decode the packet there, conceal a hole,
    /// or close up a jump. `false` when nothing is buffered (dry).
    fn next_chunk(&mut self, i: usize) -> bool {
        self.skip_if_far_behind(i);
        loop {
            let pos = self.pos_us.expect("playing at a position");
            let Some(front) = self.queue.front() else {
                return false;
            };
            if front.ts_us <= pos + SLACK_US {
                let p = self.queue.pop_front().expect("front");
                self.pos_us = Some(p.ts_us);
                let pcm = self.decode(&p);
                let pcm = self.time_scale(pcm, i);
                if self.set_chunk(p.ts_us, p.dur_us, pcm, false) {
                    return true;
                }
                continue;
            }
            let gap = front.ts_us - pos;
            if gap <= self.opts.max_gap_us {
                // A packet that is not there (yet): the codec conceals it. Under the target,
                // holding the position (it is probably on its way); else moving past it.
                let target = self.delay.target_us() as i64;
                let hold = self.delay_now(i).is_some_and(|d| d < target);
                let (frames, media) = if hold {
                    (self.us_to_frames(HOLD_PIECE_US), 0)
                } else {
                    let piece = gap.min(HOLE_PIECE_US);
                    (self.us_to_frames(piece), piece)
                };
                let mut pcm = self.conceal(frames.max(1));
                if pcm.is_empty() && media == 0 {
                    pcm = vec![0.0; frames.max(1) * self.ch()]; // (a resampler still filling)
                }
                if self.set_chunk(pos, media, pcm, true) {
                    return true;
                }
                continue;
            }
            // A jump (the publisher ran dry and restarted its timeline): close it up.
            self.pos_us = Some(front.ts_us);
        }
    }

    /// Make `pcm` the current chunk, or (empty: a resampler still filling) move past it.
    fn set_chunk(&mut self, ts_us: u64, media_us: u64, pcm: Vec<f32>, concealed: bool) -> bool {
        if pcm.is_empty() {
            self.pos_us = Some(ts_us + media_us);
            return false;
        }
        self.cur = Some(Chunk {
            ts_us,
            media_us,
            pcm,
            offset: 0,
            concealed,
        });
        true
    }

    /// Skip queued packets, down to the target, when the delay is far over the range.
    fn skip_if_far_behind(&mut self, i: usize) {
        let limit = (self.opts.max_target_us.max(self.opts.lead_us) + SKIP_MARGIN_US) as i64;
        if self.delay_now(i).is_none_or(|d| d <= limit) {
            return;
        }
        let target = self.delay.target_us() as i64;
        while self.delay_now(i).is_some_and(|d| d > target) && self.queue.len() > 1 {
            let span = self.queue.back().map_or(0, |p| p.ts_us + p.dur_us) - self.queue[0].ts_us;
            if span <= target as u64 {
                break;
            }
            let p = self.queue.pop_front().expect("front");
            self.stats.skipped_frames += p.frames as u64;
            self.pos_us = Some(p.ts_us + p.dur_us);
        }
    }

    /// Shrink or grow a quiet decoded chunk to steer the delay towards the target.
    fn time_scale(&mut self, pcm: Vec<f32>, i: usize) -> Vec<f32> {
        let Some(delay) = self.delay_now(i) else {
            return pcm;
        };
        if !stretch::is_quiet(&pcm) {
            return pcm;
        }
        let ch = self.ch();
        let half = pcm.len() / ch / 2;
        let xf = self.us_to_frames(stretch::CROSSFADE_US);
        let target = self.delay.target_us() as i64;
        let floor = target.max(self.opts.lead_us as i64);
        if delay > floor + SHRINK_HYSTERESIS_US as i64 {
            let remove = self.us_to_frames((delay - floor) as u64).min(half);
            if let Some(out) = stretch::shrink(&pcm, ch, remove, xf) {
                self.stats.removed_frames += remove as u64;
                return out;
            }
        } else if delay + (GROW_HYSTERESIS_US as i64) < target {
            let insert = self.us_to_frames((target - delay) as u64).min(half);
            if let Some(out) = stretch::grow(&pcm, ch, insert, xf) {
                self.stats.inserted_frames += insert as u64;
                return out;
            }
        }
        pcm
    }

    /// Playout ran dry: a short concealment, faded out, holding the position.
    fn dry_conceal(&mut self) {
        let frames = self.us_to_frames(DRY_CONCEAL_US).max(1);
        let ch = self.ch();
        let mut pcm = self.conceal(frames);
        let n = pcm.len() / ch;
        for (k, s) in pcm.iter_mut().enumerate() {
            *s *= 1.0 - (k / ch + 1) as f32 / n as f32;
        }
        let pos = self.pos_us.expect("dry at a position");
        self.set_chunk(pos, 0, pcm, true);
    }

    fn update_state_stats(&mut self) {
        self.stats.target_us = self.delay.target_us();
        self.stats.jitter_us = self.delay.jitter_us();
        self.stats.peak_us = self.delay.peak_us();
    }

    /// Render `out.len() / channels` sample frames into `out` (interleaved), returning what
    /// each stretch was.
    pub fn render(&mut self, out: &mut [f32]) -> Vec<Rendered> {
        let ch = self.ch();
        let n = out.len();
        let mut spans = Vec::new();
        let mut i = 0;
        // 1. The fade-out of a flushed generation.
        if !self.fade.is_empty() {
            let k = self.fade.len().min(n);
            for (o, s) in out[..k].iter_mut().zip(self.fade.drain(..k)) {
                *o = s;
            }
            spans.push(Rendered {
                generation: Some(self.fade_generation),
                ts_us: self.fade_ts,
                frames: k / ch,
                fade: true,
                concealed: false,
            });
            i = k;
        }
        // 2. Wait for the target before starting, but no longer than the target itself: the end
        //    of an utterance (a last frame below the target) must play, not wait for audio that
        //    may not come for seconds.
        if self.state == State::Waiting && self.generation.is_some() && !self.queue.is_empty() {
            let target = self.delay.target_us();
            if self.buffered_us() >= target || self.waited_us >= target {
                self.state = State::Playing;
                self.pos_us = Some(self.queue[0].ts_us);
                self.waited_us = 0;
            } else {
                self.waited_us += self.frames_to_us(((n - i) / ch) as u64);
            }
        }
        // 3. Audio of the current generation, against the playout position.
        while i < n && self.state != State::Waiting {
            let generation = self.generation.expect("playing a generation");
            if let Some(c) = self.cur.as_mut().filter(|c| c.offset < c.pcm.len()) {
                let take = (c.pcm.len() - c.offset).min(n - i);
                out[i..i + take].copy_from_slice(&c.pcm[c.offset..c.offset + take]);
                let pos = self.pos_us.expect("a position");
                spans.push(Rendered {
                    generation: Some(generation),
                    ts_us: pos,
                    frames: take / ch,
                    fade: false,
                    concealed: c.concealed,
                });
                if c.concealed {
                    self.stats.concealed_frames += (take / ch) as u64;
                }
                c.offset += take;
                let total = (c.pcm.len() / ch) as u64;
                let done = (c.offset / ch) as u64;
                self.pos_us = Some(c.ts_us + c.media_us * done / total);
                if c.offset == c.pcm.len() {
                    self.pos_us = Some(c.ts_us + c.media_us);
                    self.cur = None;
                }
                i += take;
                continue;
            }
            if self.state == State::Dry {
                let pos = self.pos_us.expect("dry at a position");
                match self.queue.front() {
                    None => break,
                    Some(p) if p.ts_us <= pos + self.opts.max_gap_us => {
                        // The late audio came: go on where playout stopped.
                        self.state = State::Playing;
                        self.stats.underruns += 1;
                    }
                    Some(_) => {
                        // A new stretch of the timeline: that was the end of an utterance.
                        self.state = State::Waiting;
                        self.pos_us = None;
                        self.waited_us = 0;
                        break;
                    }
                }
            }
            if !self.next_chunk(i) {
                self.state = State::Dry;
                self.dry_conceal();
            }
        }
        if let (Some(generation), Some(pos)) = (self.generation, self.pos_us) {
            if spans.iter().any(|s| !s.fade && s.generation.is_some()) {
                self.last = Some((generation, pos));
            }
        }
        // 4. Silence for the rest.
        if i < n {
            out[i..].fill(0.0);
            spans.push(Rendered {
                generation: None,
                ts_us: 0,
                frames: (n - i) / ch,
                fade: false,
                concealed: false,
            });
        }
        self.rendered += (n / ch) as u64;
        if let Some(d) = self.delay_now(0) {
            self.stats.delay_us = d.max(0) as u64;
        }
        spans
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Result;

    pub const RATE: u32 = 48_000;
    pub const FRAME: usize = 960; // 20 ms

    /// A stand-in codec for the buffer's logic: a packet is (value f32, frames u32) and decodes
    /// to `frames` samples of `value`; concealment repeats the last value (like PLC continues
    /// the signal) so tests can tell it from silence.
    pub struct ConstCodec {
        pub channels: usize,
        last: f32,
    }

    impl ConstCodec {
        pub fn new(channels: usize) -> Self {
            Self {
                channels,
                last: 0.0,
            }
        }
    }

    pub fn packet(value: f32, frames: usize) -> Bytes {
        let mut b = value.to_le_bytes().to_vec();
        b.extend_from_slice(&(frames as u32).to_le_bytes());
        Bytes::from(b)
    }

    impl PacketDecoder for ConstCodec {
        fn frames(&self, packet: &[u8]) -> Option<usize> {
            Some(u32::from_le_bytes(packet.get(4..8)?.try_into().ok()?) as usize)
        }
        fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>> {
            self.last = f32::from_le_bytes(packet[..4].try_into().unwrap());
            Ok(vec![
                self.last;
                self.frames(packet).unwrap() * self.channels
            ])
        }
        fn conceal(&mut self, frames: usize) -> Result<Vec<f32>> {
            Ok(vec![self.last; frames * self.channels])
        }
        fn reset(&mut self) {
            self.last = 0.0;
        }
    }

    fn buf() -> JitterBuffer<ConstCodec> {
        JitterBuffer::new(JitterOptions::new(RATE, 1), ConstCodec::new(1))
    }

    fn push(b: &mut JitterBuffer<ConstCodec>, g: u64, ts: u64, v: f32) {
        b.push(g, ts, packet(v, FRAME));
    }

    fn render(b: &mut JitterBuffer<ConstCodec>, frames: usize) -> (Vec<f32>, Vec<Rendered>) {
        let mut out = vec![9.0; frames];
        let spans = b.render(&mut out);
        (out, spans)
    }

    #[test]
    fn waits_for_the_target_then_plays_in_order() {
        let mut b = buf();
        push(&mut b, 0, 0, 0.1);
        let (out, _) = render(&mut b, 480);
        assert!(
            out.iter().all(|&s| s == 0.0),
            "silent below the 40 ms target"
        );
        push(&mut b, 0, 20_000, 0.2);
        let (out, spans) = render(&mut b, 1920);
        assert_eq!(&out[..960], &[0.1; 960][..]);
        assert_eq!(&out[960..], &[0.2; 960][..]);
        assert_eq!(spans[0].generation, Some(0));
        assert_eq!(b.last_rendered(), Some((0, 40_000)));
    }

    #[test]
    fn a_new_generation_fades_the_old_one() {
        let mut b = buf();
        for k in 0..10 {
            push(&mut b, 0, k * 20_000, 0.5);
        }
        render(&mut b, 960);
        push(&mut b, 1, 500_000, -0.25);
        push(&mut b, 1, 520_000, -0.25); // the 40 ms target of the new generation
        let (out, spans) = render(&mut b, 960);
        let fade = 240; // 5 ms at 48 kHz
        assert!(spans[0].fade && spans[0].frames == fade);
        assert!(
            out[..fade].windows(2).all(|w| w[1].abs() <= w[0].abs()),
            "monotonic fade"
        );
        assert!(out[fade - 1].abs() < 0.01, "faded to silence");
        assert!(
            out[fade..].iter().all(|&s| s == -0.25),
            "new generation right after the fade"
        );
        assert_eq!(b.stats().flushed_frames, 9 * 960 - 240);
        // Old audio arriving late is dropped.
        push(&mut b, 0, 200_000, 0.5);
        assert_eq!(b.stats().stale_frames, 1);
    }

    #[test]
    fn a_missing_packet_is_concealed_and_dropped_when_it_comes_late() {
        let mut b = buf();
        for k in [0, 1, 3, 4, 5] {
            push(&mut b, 0, k * 20_000, 0.1 * (k + 1) as f32);
        }
        let (out, spans) = render(&mut b, 3 * 960);
        assert!(out[..1920].iter().all(|&s| s != 0.0));
        // Packet 2 is concealed (the codec continues the last value), not silence.
        assert!(
            spans
                .iter()
                .any(|s| s.concealed && s.ts_us == 40_000 && s.frames == 960),
            "{spans:?}"
        );
        assert!(out[1920..].iter().all(|&s| (s - 0.2).abs() < 1e-6));
        push(&mut b, 0, 40_000, 0.3); // its retransmission, too late
        assert_eq!(b.stats().late_frames, 1);
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| (s - 0.4).abs() < 1e-6));
        assert_eq!(b.stats().concealed_frames, 960);
    }

    #[test]
    fn a_dry_buffer_holds_its_position_until_the_late_packet_comes() {
        let mut b = buf();
        push(&mut b, 0, 0, 0.1);
        push(&mut b, 0, 20_000, 0.2);
        let (_, spans) = render(&mut b, 2880); // 40 ms of audio, then dry
        assert!(
            spans[2].concealed && spans[2].frames == 480,
            "10 ms of concealment: {spans:?}"
        );
        assert_eq!(spans.last().unwrap().generation, None);
        assert!(!b.is_playing());
        assert_eq!(
            b.stats().underruns,
            0,
            "not yet: this may be the end of the utterance"
        );
        render(&mut b, 4320);
        push(&mut b, 0, 40_000, 0.3); // 150 ms after its time (130 ms after the fastest)
        let (out, spans) = render(&mut b, 960);
        assert!(out.iter().all(|&s| (s - 0.3).abs() < 1e-6));
        assert_eq!(spans[0].ts_us, 40_000);
        assert_eq!(b.stats().underruns, 1);
        assert!(
            b.stats().target_us >= 130_000,
            "the late packet raised the target: {:?}",
            b.stats()
        );
    }

    #[test]
    fn an_utterance_end_is_not_an_underrun() {
        let mut b = buf();
        push(&mut b, 0, 0, 0.1);
        push(&mut b, 0, 20_000, 0.1);
        render(&mut b, 2400);
        render(&mut b, 48_000);
        // The next utterance, after the publisher restarted its timeline.
        push(&mut b, 0, 5_000_000, 0.3);
        push(&mut b, 0, 5_020_000, 0.3);
        render(&mut b, 480);
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| (s - 0.3).abs() < 1e-6));
        assert_eq!(b.stats().underruns, 0);
    }
}
