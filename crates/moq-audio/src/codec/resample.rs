//! Sample-rate conversion with rubato, over interleaved `f32`.
//!
//! Used on the publish side when the caller's rate is not one libopus encodes natively
//! (22.05 kHz, 44.1 kHz, ...) and on the listen side when a listener asks for such a rate.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler as _, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

use crate::{Error, Result};

/// Input frames per rubato call: 10 ms at the input rate, so the added latency stays small.
fn chunk_frames(input_rate: u32) -> usize {
    (input_rate / 100) as usize
}

/// A streaming resampler: push any amount of interleaved PCM, get what is ready.
///
/// Output is aligned with input: the sinc filter's startup delay is dropped from the front and
/// [`Resampler::drain`] returns the tail, so `N` input frames yield `N · out/in` output frames
/// (± 1) over the life of a stream.
pub struct Resampler {
    inner: Async<f32>,
    channels: usize,
    chunk: usize,
    ratio: f64,
    /// Interleaved input not yet a whole chunk.
    pending: Vec<f32>,
    /// Output scratch, sized for the largest chunk rubato can emit.
    scratch: Vec<f32>,
    /// Leading output frames still to drop (the filter's delay).
    skip: usize,
    /// Input frames consumed since the last reset, for sizing the tail.
    consumed: u64,
    /// Output frames emitted since the last reset.
    emitted: u64,
}

impl Resampler {
    /// Build a resampler from `input_rate` to `output_rate` Hz for `channels` channels.
    ///
    /// The filter is a 128-tap Blackman-Harris windowed sinc with cutoff at 0.95 · Nyquist,
    /// rubato's recommended quality/cost balance for speech.
    ///
    /// # Errors
    /// [`Error::Resample`] if rubato rejects the rate pair.
    pub fn new(input_rate: u32, output_rate: u32, channels: u32) -> Result<Self> {
        let params = SincInterpolationParameters {
            sinc_len: 128,
            f_cutoff: Some(0.95),
            interpolation: SincInterpolationType::Linear,
            oversampling_factor: 128,
            window: WindowFunction::BlackmanHarris2,
        };
        let ratio = output_rate as f64 / input_rate as f64;
        let chunk = chunk_frames(input_rate);
        let inner = Async::<f32>::new_sinc(
            ratio,
            1.0,
            &params,
            chunk,
            channels as usize,
            FixedAsync::Input,
        )
        .map_err(|e| Error::Resample(e.to_string()))?;
        let scratch = vec![0.0; inner.output_frames_max() * channels as usize];
        let skip = inner.output_delay();
        Ok(Self {
            inner,
            channels: channels as usize,
            chunk,
            ratio,
            pending: Vec::new(),
            scratch,
            skip,
            consumed: 0,
            emitted: 0,
        })
    }

    /// Resample `input` (interleaved), returning the output frames that are ready.
    ///
    /// # Errors
    /// [`Error::Resample`] on an internal rubato error (not expected with valid input).
    pub fn process(&mut self, input: &[f32]) -> Result<Vec<f32>> {
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        let chunk_samples = self.chunk * self.channels;
        let mut offset = 0;
        while self.pending.len() - offset >= chunk_samples {
            self.run(offset, self.chunk, &mut out)?;
            offset += chunk_samples;
        }
        self.pending.drain(..offset);
        Ok(out)
    }

    /// End the stream: resample what is buffered, flush the filter, and reset for a new stream.
    ///
    /// # Errors
    /// [`Error::Resample`] on an internal rubato error.
    pub fn drain(&mut self) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        let partial = self.pending.len() / self.channels;
        let expected = ((self.consumed + partial as u64) as f64 * self.ratio).round() as u64;
        if partial > 0 {
            self.run(0, partial, &mut out)?;
            self.consumed -= (self.chunk - partial) as u64;
        }
        // Push silence until the filter has given back everything it holds.
        while self.emitted < expected {
            self.run_silence(&mut out)?;
        }
        let extra = (self.emitted - expected) as usize * self.channels;
        out.truncate(out.len().saturating_sub(extra));
        self.reset();
        Ok(out)
    }

    /// Forget buffered input and filter state (after a flush): the next sample starts a new stream.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.pending.clear();
        self.skip = self.inner.output_delay();
        self.consumed = 0;
        self.emitted = 0;
    }

    /// Input frames held back waiting for a whole chunk.
    pub fn pending_frames(&self) -> usize {
        self.pending.len() / self.channels
    }

    /// Whether any input has not come out yet: a partial chunk, or what the sinc filter's delay
    /// still holds (the output lags the input by [`rubato::Resampler::output_delay`]).
    /// [`Resampler::drain`] gives it all back.
    pub fn has_pending(&self) -> bool {
        self.pending_frames() > 0
            || ((self.consumed as f64 * self.ratio).round() as u64) > self.emitted
    }

    fn run(&mut self, offset: usize, valid: usize, out: &mut Vec<f32>) -> Result<()> {
        // A whole chunk of input, zero-padded when only `valid` frames are left at the end.
        let mut input = vec![0.0; self.chunk * self.channels];
        input[..valid * self.channels]
            .copy_from_slice(&self.pending[offset..offset + valid * self.channels]);
        self.consumed += self.chunk as u64;
        self.resample_chunk(&input, out)
    }

    fn run_silence(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let silence = vec![0.0; self.chunk * self.channels];
        self.resample_chunk(&silence, out)
    }

    fn resample_chunk(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let frames_out_max = self.scratch.len() / self.channels;
        let input = InterleavedSlice::new(input, self.channels, self.chunk)
            .map_err(|e| Error::Resample(e.to_string()))?;
        let mut output =
            InterleavedSlice::new_mut(&mut self.scratch, self.channels, frames_out_max)
                .map_err(|e| Error::Resample(e.to_string()))?;
        let (_, produced) = self
            .inner
            .process_into_buffer(&input, &mut output, None::<&Indexing>)
            .map_err(|e| Error::Resample(e.to_string()))?;
        let drop = self.skip.min(produced);
        self.skip -= drop;
        out.extend_from_slice(&self.scratch[drop * self.channels..produced * self.channels]);
        self.emitted += (produced - drop) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn output_length_matches_ratio() {
        let mut r = Resampler::new(44_100, 48_000, 1).unwrap();
        let input = sine(44_100, 440.0, 44_100);
        let mut out = Vec::new();
        for block in input.chunks(1000) {
            out.extend(r.process(block).unwrap());
        }
        out.extend(r.drain().unwrap());
        assert!(
            (out.len() as i64 - 48_000).abs() <= 1,
            "{} frames",
            out.len()
        );
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_level() {
        let mut r = Resampler::new(22_050, 48_000, 1).unwrap();
        let mut out = r.process(&sine(22_050, 1_000.0, 22_050)).unwrap();
        out.extend(r.drain().unwrap());
        assert!((out.len() as i64 - 48_000).abs() <= 1);
        // Away from the edges, where the filter ramps, compare with a fitted 1 kHz tone.
        let snr_db = crate::codec::pcm::tone_snr_db(&out[4_800..43_200], 48_000, 1_000.0);
        let level = (out[4_800..43_200].iter().map(|v| v * v).sum::<f32>() / 38_400.0).sqrt();
        assert!((level - 0.5 / 2f32.sqrt()).abs() < 0.01, "RMS {level}");
        assert!(snr_db > 40.0, "SNR {snr_db:.1} dB");
    }

    #[test]
    fn stereo_channels_stay_separate() {
        let mut r = Resampler::new(16_000, 48_000, 2).unwrap();
        let input: Vec<f32> = (0..16_000).flat_map(|_| [0.5f32, -0.25]).collect();
        let out = r.process(&input).unwrap();
        let mid = &out[out.len() / 2 - 2..out.len() / 2];
        assert!(
            (mid[0] - 0.5).abs() < 0.01 && (mid[1] + 0.25).abs() < 0.01,
            "{mid:?}"
        );
    }

    #[test]
    fn the_filter_delay_counts_as_pending_until_drained() {
        let mut r = Resampler::new(22_050, 48_000, 1).unwrap();
        // Whole chunks only, so nothing waits for a chunk: what is held is the filter's delay.
        let input = 220 * 10; // ten 10 ms chunks (220 frames each at 22.05 kHz)
        let expected = (input as f64 * 48_000.0 / 22_050.0).round() as usize;
        let out = r.process(&vec![0.1; input]).unwrap();
        assert_eq!(r.pending_frames(), 0);
        assert!(
            out.len() < expected,
            "the filter holds some output back ({} of {expected})",
            out.len()
        );
        assert!(
            r.has_pending(),
            "held-back output must count, or a writer's last words never go out"
        );
        let tail = r.drain().unwrap();
        assert_eq!(out.len() + tail.len(), expected);
        assert!(!r.has_pending());
    }

    #[test]
    fn reset_starts_a_fresh_stream() {
        let mut r = Resampler::new(24_000, 48_000, 1).unwrap();
        r.process(&[0.3; 100]).unwrap();
        assert_eq!(r.pending_frames(), 100);
        r.reset();
        assert_eq!(r.pending_frames(), 0);
        let out = r.process(&[0.0; 240]).unwrap();
        assert!(
            out.len() < 480,
            "startup delay is dropped again after reset"
        );
    }
}
