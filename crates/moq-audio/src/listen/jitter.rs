//! A generation-aware jitter buffer: decoded frames in, a continuous sample stream out.
//!
//! Pure logic, driven by a render clock it is handed ([`super::player`] drives it in real time).
//! - Start: rendering waits until `target` of audio is buffered, so network jitter does not
//!   starve playout.
//! - A frame of a newer generation (a flush at the publisher): the old generation's audio is
//!   dropped. What is left of it is not cut mid-wave but faded out over at most `fade`
//!   (≤ 10 ms, so no click); the new generation then starts like a stream does, once `target`
//!   of it is buffered (the publisher keeps its schedule across a flush, so the new audio
//!   arrives a lead ahead of its time, not in a burst; after an idle writer it does come in a
//!   burst and plays at once).
//! - A frame of an older generation: dropped.
//! - Underrun: silence until `target` is buffered again.

use std::collections::VecDeque;

/// Settings for [`JitterBuffer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JitterOptions {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Audio buffered before playout starts, in µs. Default 40 ms (two 20 ms frames).
    pub target_us: u64,
    /// Fade-out applied to the old generation at a flush, in µs. Default 5 ms (≤ 10 ms per
    /// docs/architecture.md: long enough to avoid a click, short enough to be inaudible as audio).
    pub fade_us: u64,
    /// Largest timestamp gap filled with silence, µs; larger jumps (a publisher underrun) are
    /// closed up. Default 100 ms.
    pub max_gap_us: u64,
    /// Most audio held while playing, µs. Each underrun delays playout by the silence it
    /// inserted; without a cap that delay accumulates (and is stale audio nobody can take back).
    /// Above the cap the oldest audio is skipped down to `target_us`. Default 300 ms: above the
    /// largest pacing lead we recommend (200 ms) plus network jitter.
    pub max_us: u64,
}

impl JitterOptions {
    /// Defaults for `sample_rate` Hz and `channels` channels.
    pub fn new(sample_rate: u32, channels: u32) -> Self {
        Self {
            sample_rate,
            channels,
            target_us: 40_000,
            fade_us: 5_000,
            max_gap_us: 100_000,
            max_us: 300_000,
        }
    }
}

/// What one rendered stretch of samples was.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rendered {
    /// Generation of the audio, `None` for silence.
    pub generation: Option<u64>,
    /// Media timestamp of the first sample (µs), for audio.
    pub ts_us: u64,
    /// Sample frames (per channel) in the stretch.
    pub frames: usize,
    /// Whether this stretch is the fade-out of a flushed generation.
    pub fade: bool,
}

/// Counters for tests and stats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JitterStats {
    /// Frames dropped because their generation was older than the one playing.
    pub stale_frames: u64,
    /// Frames dropped because they arrived after their time.
    pub late_frames: u64,
    /// Sample frames of old audio dropped at flushes (not counting the fade).
    pub flushed_frames: u64,
    /// Times playout ran dry.
    pub underruns: u64,
    /// Sample frames skipped to bring an overfull buffer back to the target.
    pub skipped_frames: u64,
}

/// A decoded frame waiting to be played, by media timestamp.
#[derive(Debug)]
struct Chunk {
    ts_us: u64,
    pcm: Vec<f32>,
}

/// Timestamps within this of each other are contiguous: decoders and resamplers emit frames
/// whose length does not always land on a whole µs.
const SLACK_US: u64 = 1_000;

/// The buffer.
///
/// Frames are kept in timestamp order and played against a playout position, not in arrival
/// order: groups are read concurrently, so a frame of group k+1 can arrive before the last
/// frames of group k, and must not push them out as "late".
#[derive(Debug)]
pub struct JitterBuffer {
    opts: JitterOptions,
    generation: Option<u64>,
    /// Chunks of the current generation in timestamp order.
    queue: VecDeque<Chunk>,
    /// Samples already rendered from the front chunk.
    offset: usize,
    /// Media timestamp (µs) of the next sample to render; `None` until playout is anchored.
    pos_us: Option<u64>,
    playing: bool,
    /// Faded tail of the flushed generation, rendered before anything else.
    fade: VecDeque<f32>,
    fade_generation: u64,
    fade_ts: u64,
    stats: JitterStats,
    last: Option<(u64, u64)>,
    /// Render time (µs) the audio now buffered has waited while playout was stopped.
    waited_us: u64,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(opts: JitterOptions) -> Self {
        Self {
            opts,
            generation: None,
            queue: VecDeque::new(),
            offset: 0,
            pos_us: None,
            playing: false,
            fade: VecDeque::new(),
            fade_generation: 0,
            fade_ts: 0,
            stats: JitterStats::default(),
            last: None,
            waited_us: 0,
        }
    }

    fn ch(&self) -> usize {
        self.opts.channels as usize
    }

    fn us_to_frames(&self, us: u64) -> usize {
        (us * self.opts.sample_rate as u64 / 1_000_000) as usize
    }

    fn frames_to_us(&self, frames: usize) -> u64 {
        frames as u64 * 1_000_000 / self.opts.sample_rate as u64
    }

    fn end_of(&self, chunk: &Chunk) -> u64 {
        chunk.ts_us + self.frames_to_us(chunk.pcm.len() / self.ch())
    }

    /// Where playout is (or would start): the next sample's media timestamp.
    fn head_us(&self) -> Option<u64> {
        let front = self.queue.front()?;
        Some(match self.pos_us {
            Some(pos) if self.playing => pos,
            _ => front.ts_us + self.frames_to_us(self.offset / self.ch()),
        })
    }

    /// The generation being played (or waited for).
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// Audio buffered in µs (current generation, not yet rendered; gaps not counted).
    pub fn buffered_us(&self) -> u64 {
        let samples: usize = self.queue.iter().map(|c| c.pcm.len()).sum::<usize>() - self.offset;
        self.frames_to_us(samples / self.ch())
    }

    /// Counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Whether playout is running (not waiting for the target, not dry).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// The (generation, media timestamp in µs) just past the last sample rendered, if any.
    pub fn last_rendered(&self) -> Option<(u64, u64)> {
        self.last
    }

    /// Add a decoded frame of interleaved samples stamped `ts_us` (µs) of `generation`.
    ///
    /// A frame with no samples only announces its generation (a flush marker).
    pub fn push(&mut self, generation: u64, ts_us: u64, pcm: &[f32]) {
        match self.generation {
            Some(g) if generation < g => {
                self.stats.stale_frames += 1;
                return;
            }
            Some(g) if generation > g => self.cut_to(generation),
            None => self.generation = Some(generation),
            _ => {}
        }
        if pcm.is_empty() {
            return;
        }
        let ch = self.ch();
        let mut ts = ts_us;
        let mut pcm = pcm;
        // Before the playout position: late; the part still ahead of it is kept.
        if let (true, Some(pos)) = (self.playing, self.pos_us) {
            let end = ts + self.frames_to_us(pcm.len() / ch);
            if end <= pos + SLACK_US {
                self.stats.late_frames += 1;
                return;
            }
            if ts + SLACK_US < pos {
                let skip = (self.us_to_frames(pos - ts) * ch).min(pcm.len());
                pcm = &pcm[skip..];
                ts = pos;
            }
        }
        // Insert in timestamp order; a frame overlapping one we have is a duplicate.
        let at = self.queue.partition_point(|c| c.ts_us < ts);
        let end = ts + self.frames_to_us(pcm.len() / ch);
        let overlaps_prev = at > 0 && self.end_of(&self.queue[at - 1]) > ts + SLACK_US;
        let overlaps_next = at < self.queue.len() && self.queue[at].ts_us + SLACK_US < end;
        if overlaps_prev || overlaps_next {
            self.stats.late_frames += 1;
            return;
        }
        if at == 0 && self.offset > 0 {
            // Never slip in front of a chunk that is half played.
            self.stats.late_frames += 1;
            return;
        }
        self.queue.insert(at, Chunk { ts_us: ts, pcm: pcm.to_vec() });
        self.cap();
    }

    /// Skip the oldest audio when more than `max_us` is buffered while playing.
    fn cap(&mut self) {
        if !self.playing || self.buffered_us() <= self.opts.max_us {
            return;
        }
        let excess = self.us_to_frames(self.buffered_us() - self.opts.target_us) * self.ch();
        let skipped = self.take_audio(excess).len() / self.ch();
        self.stats.skipped_frames += skipped as u64;
    }

    /// A newer generation arrived: fade out what the listener is hearing and drop the rest.
    fn cut_to(&mut self, generation: u64) {
        let ch = self.ch();
        if self.playing && !self.queue.is_empty() {
            let fade_frames = self.us_to_frames(self.opts.fade_us).max(1);
            self.fade_ts = self.head_us().unwrap_or(0);
            self.fade_generation = self.generation.expect("cut from a generation");
            let old = self.take_audio(fade_frames * ch);
            let frames = old.len() / ch;
            self.fade.clear();
            for (i, s) in old.into_iter().enumerate() {
                let gain = 1.0 - (i / ch + 1) as f32 / frames as f32;
                self.fade.push_back(s * gain);
            }
        }
        let left: usize = self.queue.iter().map(|c| c.pcm.len()).sum::<usize>() - self.offset;
        self.stats.flushed_frames += (left / ch) as u64;
        self.queue.clear();
        self.offset = 0;
        self.pos_us = None;
        self.generation = Some(generation);
        // The new generation starts once `target` of it is buffered, like a stream.
        self.playing = false;
        self.waited_us = 0;
    }

    /// Take up to `n` samples of audio from the playout position on (gaps skipped), moving the
    /// position past them.
    fn take_audio(&mut self, n: usize) -> Vec<f32> {
        let ch = self.ch();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(chunk) = self.queue.front() else { break };
            let take = (chunk.pcm.len() - self.offset).min(n - out.len());
            out.extend_from_slice(&chunk.pcm[self.offset..self.offset + take]);
            self.offset += take;
            let ts = chunk.ts_us + self.frames_to_us(self.offset / ch);
            self.pos_us = Some(ts);
            if self.offset == chunk.pcm.len() {
                self.queue.pop_front();
                self.offset = 0;
            }
        }
        out
    }

    /// Render `out.len() / channels` sample frames into `out` (interleaved), returning what
    /// each stretch was.
    pub fn render(&mut self, out: &mut [f32]) -> Vec<Rendered> {
        let ch = self.ch();
        let mut spans = Vec::new();
        let mut i = 0;
        // 1. The fade-out of a flushed generation.
        if !self.fade.is_empty() {
            let n = self.fade.len().min(out.len());
            for (o, s) in out[..n].iter_mut().zip(self.fade.drain(..n)) {
                *o = s;
            }
            spans.push(Rendered {
                generation: Some(self.fade_generation),
                ts_us: self.fade_ts,
                frames: n / ch,
                fade: true,
            });
            i = n;
        }
        // 2. Wait for the target before starting, but no longer than the target itself: the end
        //    of an utterance (a last frame below the target) must play, not wait for audio that
        //    may not come for seconds.
        if !self.playing && self.generation.is_some() && !self.queue.is_empty() {
            if self.buffered_us() >= self.opts.target_us || self.waited_us >= self.opts.target_us {
                self.playing = true;
                self.pos_us = None;
                self.waited_us = 0;
            } else {
                self.waited_us += self.frames_to_us((out.len() - i) / ch);
            }
        }
        // 3. Audio of the current generation, against the playout position.
        while self.playing && i < out.len() {
            let generation = self.generation.expect("playing a generation");
            let Some(front) = self.queue.front() else {
                // Ran dry.
                self.stats.underruns += 1;
                self.playing = false;
                break;
            };
            let front_ts = front.ts_us;
            let pos = *self.pos_us.get_or_insert(front_ts);
            if self.offset == 0 && front_ts > pos + SLACK_US {
                let gap = front_ts - pos;
                if gap > self.opts.max_gap_us {
                    // A jump (the publisher ran dry and restarted its timeline): close it up.
                    self.pos_us = Some(front_ts);
                    continue;
                }
                // A frame that never came: silence in its place, on the generation's timeline.
                let n = (self.us_to_frames(gap).max(1) * ch).min(out.len() - i);
                out[i..i + n].fill(0.0);
                spans.push(Rendered {
                    generation: Some(generation),
                    ts_us: pos,
                    frames: n / ch,
                    fade: false,
                });
                self.pos_us = Some(pos + self.frames_to_us(n / ch));
                i += n;
                continue;
            }
            let audio = self.take_audio(out.len() - i);
            out[i..i + audio.len()].copy_from_slice(&audio);
            spans.push(Rendered {
                generation: Some(generation),
                ts_us: pos,
                frames: audio.len() / ch,
                fade: false,
            });
            i += audio.len();
        }
        if let (Some(generation), Some(pos)) = (self.generation, self.pos_us) {
            if spans.iter().any(|s| !s.fade && s.generation.is_some()) {
                self.last = Some((generation, pos));
            }
        }
        // 4. Silence for the rest.
        if i < out.len() {
            out[i..].fill(0.0);
            spans.push(Rendered {
                generation: None,
                ts_us: 0,
                frames: (out.len() - i) / ch,
                fade: false,
            });
        }
        spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const FRAME: usize = 960; // 20 ms

    fn buf() -> JitterBuffer {
        JitterBuffer::new(JitterOptions::new(RATE, 1))
    }

    fn frame(v: f32) -> Vec<f32> {
        vec![v; FRAME]
    }

    fn render(b: &mut JitterBuffer, frames: usize) -> (Vec<f32>, Vec<Rendered>) {
        let mut out = vec![9.0; frames];
        let spans = b.render(&mut out);
        (out, spans)
    }

    #[test]
    fn waits_for_the_target_then_plays_in_order() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1));
        let (out, _) = render(&mut b, 480);
        assert!(out.iter().all(|&s| s == 0.0), "silent below the 40 ms target");
        b.push(0, 20_000, &frame(0.2));
        let (out, spans) = render(&mut b, 1920);
        assert_eq!(&out[..960], &frame(0.1)[..]);
        assert_eq!(&out[960..], &frame(0.2)[..]);
        assert_eq!(spans[0].generation, Some(0));
        assert_eq!(b.last_rendered(), Some((0, 40_000)));
    }

    #[test]
    fn a_new_generation_fades_the_old_one_and_plays_at_once() {
        let mut b = buf();
        for k in 0..10 {
            b.push(0, k * 20_000, &frame(0.5));
        }
        render(&mut b, 960);
        b.push(1, 500_000, &frame(-0.25));
        b.push(1, 520_000, &frame(-0.25)); // the 40 ms target of the new generation
        let (out, spans) = render(&mut b, 960);
        let fade = 240; // 5 ms at 48 kHz
        assert!(spans[0].fade && spans[0].frames == fade);
        assert!(out[..fade].windows(2).all(|w| w[1].abs() <= w[0].abs()), "monotonic fade");
        assert!(out[fade - 1].abs() < 0.01, "faded to silence");
        assert!(out[fade..fade + 720].iter().all(|&s| s == -0.25), "new generation right after the fade");
        assert_eq!(b.stats().flushed_frames, 9 * 960 - 240);
        // Old audio arriving late is dropped.
        b.push(0, 200_000, &frame(0.5));
        assert_eq!(b.stats().stale_frames, 1);
        let (out, _) = render(&mut b, 240);
        assert!(out.iter().all(|&s| s == -0.25));
    }

    #[test]
    fn an_overfull_buffer_skips_back_to_the_target() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1));
        b.push(0, 20_000, &frame(0.1));
        render(&mut b, 480); // playing
        for k in 2..20 {
            b.push(0, k * 20_000, &frame(0.2));
        }
        // Crossing 300 ms skipped back to the 40 ms target; four more frames came after.
        assert_eq!(b.buffered_us(), 40_000 + 4 * 20_000);
        assert_eq!(b.stats().skipped_frames, 270 * 48);
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.2));
    }

    #[test]
    fn an_empty_frame_of_a_new_generation_cuts_at_once() {
        let mut b = buf();
        for k in 0..5 {
            b.push(0, k * 20_000, &frame(0.5));
        }
        render(&mut b, 960);
        b.push(1, 0, &[]);
        assert_eq!(b.buffered_us(), 0);
        let (out, spans) = render(&mut b, 960);
        assert!(spans[0].fade);
        assert!(out[240..].iter().all(|&s| s == 0.0), "silent after the fade");
        b.push(1, 900_000, &frame(0.3));
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.0), "below the target: still waiting");
        b.push(1, 920_000, &frame(0.3));
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.3));
    }

    #[test]
    fn frames_arriving_out_of_order_play_in_timestamp_order() {
        // Two groups read concurrently: group 1's frames come in before group 0's last ones.
        let mut b = buf();
        for (k, v) in [(5, 0.6), (6, 0.7), (0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4), (4, 0.5)] {
            b.push(0, k * 20_000, &frame(v));
        }
        let (out, _) = render(&mut b, 7 * 960);
        for (k, v) in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7].iter().enumerate() {
            assert!(out[k * 960..(k + 1) * 960].iter().all(|s| s == v), "frame {k}");
        }
        assert_eq!(b.stats().late_frames, 0);
        assert_eq!(b.last_rendered(), Some((0, 140_000)));
    }

    #[test]
    fn a_missing_frame_is_silence_and_fills_in_if_it_comes_in_time() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1));
        b.push(0, 40_000, &frame(0.3)); // 20 000 has not come (yet)
        assert_eq!(b.buffered_us(), 40_000);
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.1));
        b.push(0, 20_000, &frame(0.2)); // arrives before its turn
        let (out, _) = render(&mut b, 1920);
        assert!(out[..960].iter().all(|&s| s == 0.2) && out[960..].iter().all(|&s| s == 0.3));
        // A frame that never comes is played as silence, and a late one is dropped.
        b.push(0, 80_000, &frame(0.5));
        b.push(0, 100_000, &frame(0.5));
        let (out, _) = render(&mut b, 1920);
        assert!(out[..960].iter().all(|&s| s == 0.0) && out[960..].iter().all(|&s| s == 0.5));
        b.push(0, 60_000, &frame(0.4));
        assert_eq!(b.stats().late_frames, 1);
    }

    #[test]
    fn big_jumps_are_closed_up() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1));
        b.push(0, 20_000, &frame(0.1));
        render(&mut b, 960);
        b.push(0, 5_000_000, &frame(0.3)); // the publisher ran dry and restarted its timeline
        let (out, _) = render(&mut b, 1920);
        assert!(out[..960].iter().all(|&s| s == 0.1) && out[960..].iter().all(|&s| s == 0.3));
        assert_eq!(b.last_rendered(), Some((0, 5_020_000)));
    }

    #[test]
    fn audio_below_the_target_plays_once_it_has_waited_the_target() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1)); // 20 ms: the end of an utterance, below the 40 ms target
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.0), "waits first");
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.0), "40 ms waited: starts at the next quantum");
        let (out, spans) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.1), "then plays rather than waiting forever");
        assert_eq!(spans[0].generation, Some(0));
    }

    #[test]
    fn underrun_renders_silence_and_restarts_at_the_target() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1));
        b.push(0, 20_000, &frame(0.1));
        let (_, spans) = render(&mut b, 2400);
        assert_eq!(spans.last().unwrap().generation, None);
        assert_eq!(b.stats().underruns, 1);
        b.push(0, 1_000_000, &frame(0.4));
        b.push(0, 1_020_000, &frame(0.4));
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.4));
    }
}
