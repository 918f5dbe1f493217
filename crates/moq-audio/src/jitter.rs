//! A generation-aware jitter buffer: decoded frames in, a continuous sample stream out.
//!
//! Pure logic, driven by a render clock it is handed ([`crate::player`] drives it in real time).
//! - Start: rendering waits until `target` of audio is buffered, so network jitter does not
//!   starve playout.
//! - A frame of a newer generation (a flush at the publisher): the old generation's audio is
//!   dropped. What is left of it is not cut mid-wave but faded out over at most `fade`
//!   (≤ 10 ms, so no click), and the new generation plays right after, without waiting for a
//!   target (the publisher sends its first lead at once).
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
    /// DESIGN.md: long enough to avoid a click, short enough to be inaudible as audio).
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

#[derive(Debug)]
struct Chunk {
    ts_us: u64,
    pcm: Vec<f32>,
    /// Samples already rendered from the front.
    offset: usize,
}

/// The buffer.
#[derive(Debug)]
pub struct JitterBuffer {
    opts: JitterOptions,
    generation: Option<u64>,
    /// Chunks of the current generation in timestamp order.
    queue: VecDeque<Chunk>,
    /// Interleaved samples in `queue` not yet rendered.
    queued: usize,
    /// Media timestamp just past the end of `queue` (µs).
    end_ts: u64,
    playing: bool,
    /// Faded tail of the flushed generation, rendered before anything else.
    fade: VecDeque<f32>,
    fade_generation: u64,
    fade_ts: u64,
    stats: JitterStats,
    last: Option<(u64, u64)>,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(opts: JitterOptions) -> Self {
        Self {
            opts,
            generation: None,
            queue: VecDeque::new(),
            queued: 0,
            end_ts: 0,
            playing: false,
            fade: VecDeque::new(),
            fade_generation: 0,
            fade_ts: 0,
            stats: JitterStats::default(),
            last: None,
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

    /// The generation being played (or waited for).
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// Audio buffered in µs (current generation).
    pub fn buffered_us(&self) -> u64 {
        self.frames_to_us(self.queued / self.ch())
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

    fn enqueue(&mut self, ts_us: u64, pcm: Vec<f32>) {
        self.end_ts = ts_us + self.frames_to_us(pcm.len() / self.ch());
        self.queued += pcm.len();
        self.queue.push_back(Chunk { ts_us, pcm, offset: 0 });
    }

    /// Add a decoded frame of interleaved samples stamped `ts_us` (µs) of `generation`.
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
            return; // a generation marker: the cut above is all it does
        }
        let dur = self.frames_to_us(pcm.len() / self.ch());
        if self.queue.is_empty() && !self.playing {
            // Nothing buffered and not playing: the timeline (re)starts here.
            self.enqueue(ts_us, pcm.to_vec());
            return;
        }
        if ts_us + dur <= self.end_ts {
            self.stats.late_frames += 1;
            return;
        }
        if ts_us < self.end_ts {
            // Overlaps what is queued or played: keep the part after end_ts.
            let skip = self.us_to_frames(self.end_ts - ts_us) * self.ch();
            let ts = self.end_ts;
            self.enqueue(ts, pcm[skip.min(pcm.len())..].to_vec());
            return;
        }
        let gap = ts_us - self.end_ts;
        if gap > 0 && gap <= self.opts.max_gap_us && !self.queue.is_empty() {
            // A lost frame: keep the timeline with silence.
            let ts = self.end_ts;
            self.enqueue(ts, vec![0.0; self.us_to_frames(gap) * self.ch()]);
        }
        // A larger jump (the publisher ran dry and restarted its timeline) is closed up.
        self.enqueue(ts_us, pcm.to_vec());
        self.cap();
    }

    /// Skip the oldest audio when more than `max_us` is buffered while playing.
    fn cap(&mut self) {
        if !self.playing || self.buffered_us() <= self.opts.max_us {
            return;
        }
        let excess = self.us_to_frames(self.buffered_us() - self.opts.target_us) * self.ch();
        let skipped = self.drain_samples(excess).len() / self.ch();
        self.stats.skipped_frames += skipped as u64;
    }

    /// A newer generation arrived: fade out what the listener is hearing and drop the rest.
    fn cut_to(&mut self, generation: u64) {
        let ch = self.ch();
        if self.playing && self.queued > 0 {
            let fade_frames = self.us_to_frames(self.opts.fade_us).min(self.queued / ch);
            self.fade_ts = self.front_ts();
            self.fade_generation = self.generation.expect("cut from a generation");
            let mut old = self.drain_samples(fade_frames * ch).into_iter();
            self.fade.clear();
            for frame in 0..fade_frames {
                let gain = 1.0 - (frame + 1) as f32 / fade_frames as f32;
                for _ in 0..ch {
                    self.fade.push_back(old.next().unwrap_or(0.0) * gain);
                }
            }
        }
        self.stats.flushed_frames += (self.queued / ch) as u64;
        self.queue.clear();
        self.queued = 0;
        self.end_ts = 0;
        self.generation = Some(generation);
        // The new generation plays at once: the publisher sent its first lead in a burst.
        self.playing = true;
    }

    fn front_ts(&self) -> u64 {
        self.queue
            .front()
            .map_or(self.end_ts, |c| c.ts_us + self.frames_to_us(c.offset / self.ch()))
    }

    /// Take up to `n` samples from the front, updating `last`.
    fn drain_samples(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let ch = self.ch();
            let rate = self.opts.sample_rate as u64;
            let Some(chunk) = self.queue.front_mut() else { break };
            let take = (chunk.pcm.len() - chunk.offset).min(n - out.len());
            out.extend_from_slice(&chunk.pcm[chunk.offset..chunk.offset + take]);
            chunk.offset += take;
            let ts = chunk.ts_us + (chunk.offset / ch) as u64 * 1_000_000 / rate;
            self.last = Some((self.generation.expect("queued audio has a generation"), ts));
            if chunk.offset == chunk.pcm.len() {
                self.queue.pop_front();
            }
        }
        self.queued -= out.len();
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
        // 2. Wait for the target before starting.
        if !self.playing && self.generation.is_some() && self.buffered_us() >= self.opts.target_us {
            self.playing = true;
        }
        // 3. Audio of the current generation.
        if self.playing && i < out.len() {
            let ts_us = self.front_ts();
            let audio = self.drain_samples(out.len() - i);
            if !audio.is_empty() {
                out[i..i + audio.len()].copy_from_slice(&audio);
                spans.push(Rendered {
                    generation: self.generation,
                    ts_us,
                    frames: audio.len() / ch,
                    fade: false,
                });
                i += audio.len();
            }
            if i < out.len() {
                // Ran dry.
                self.stats.underruns += 1;
                self.playing = false;
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
        b.push(1, 920_000, &frame(0.3));
        let (out, _) = render(&mut b, 960);
        assert!(out.iter().all(|&s| s == 0.3));
    }

    #[test]
    fn small_gaps_are_silence_and_big_jumps_are_closed() {
        let mut b = buf();
        b.push(0, 0, &frame(0.1));
        b.push(0, 40_000, &frame(0.2)); // one frame lost
        assert_eq!(b.buffered_us(), 60_000);
        b.push(0, 5_000_000, &frame(0.3)); // underrun at the publisher
        assert_eq!(b.buffered_us(), 80_000);
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
