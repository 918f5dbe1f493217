//! The encode pipeline: input PCM → (resample) → fixed-size Opus frames → packets.

use bytes::Bytes;

use crate::codec::opus::{codec_rate, Encoder, FrameDuration};
use crate::codec::resample::Resampler;
use crate::Result;

/// Turns interleaved `f32` PCM at the input rate into Opus packets of one frame each.
pub struct EncodePipeline {
    resampler: Option<Resampler>,
    encoder: Encoder,
    /// Codec-rate samples waiting for a whole frame.
    pending: Vec<f32>,
}

impl EncodePipeline {
    /// Build the pipeline for input at `sample_rate` Hz with `channels` channels.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] / [`crate::Error::Opus`] / [`crate::Error::Resample`] when a
    /// stage rejects the format.
    pub fn new(
        sample_rate: u32,
        channels: u32,
        frame: FrameDuration,
        bitrate: Option<u32>,
    ) -> Result<Self> {
        let rate = codec_rate(sample_rate);
        let resampler = if rate == sample_rate {
            None
        } else {
            Some(Resampler::new(sample_rate, rate, channels)?)
        };
        Ok(Self {
            resampler,
            encoder: Encoder::new(rate, channels, frame, bitrate)?,
            pending: Vec::new(),
        })
    }

    /// Push input samples; returns the packets of every frame completed.
    pub fn push(&mut self, pcm: &[f32]) -> Result<Vec<Bytes>> {
        match &mut self.resampler {
            Some(r) => {
                let out = r.process(pcm)?;
                self.pending.extend_from_slice(&out);
            }
            None => self.pending.extend_from_slice(pcm),
        }
        self.encode_whole_frames()
    }

    /// End of stream: flush the resampler and pad the last partial frame with silence.
    pub fn drain(&mut self) -> Result<Vec<Bytes>> {
        if let Some(r) = &mut self.resampler {
            let tail = r.drain()?;
            self.pending.extend_from_slice(&tail);
        }
        let frame = self.encoder.frame_samples();
        if !self.pending.is_empty() && !self.pending.len().is_multiple_of(frame) {
            let padded = self.pending.len().div_ceil(frame) * frame;
            self.pending.resize(padded, 0.0);
        }
        self.encode_whole_frames()
    }

    /// Drop everything buffered and reset codec state (a flush started a new generation).
    pub fn reset(&mut self) -> Result<()> {
        self.pending.clear();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.encoder.reset()
    }

    /// Whether any input is held back (in the resampler or a partial frame).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.resampler.as_ref().is_some_and(Resampler::has_pending)
    }

    /// Codec-rate samples buffered, waiting for a whole frame (interleaved).
    pub fn pending_samples(&self) -> usize {
        self.pending.len()
    }

    fn encode_whole_frames(&mut self) -> Result<Vec<Bytes>> {
        let frame = self.encoder.frame_samples();
        let whole = self.pending.len() / frame * frame;
        let mut packets = Vec::with_capacity(whole / frame);
        for chunk in self.pending[..whole].chunks_exact(frame) {
            packets.push(Bytes::from(self.encoder.encode(chunk)?));
        }
        self.pending.drain(..whole);
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_chunking_gives_the_same_frame_count() {
        // 1 s at 24 kHz in uneven chunks → 50 frames of 20 ms.
        let mut p = EncodePipeline::new(24_000, 1, FrameDuration::Ms20, None).unwrap();
        let input = vec![0.1f32; 24_000];
        let mut n = 0;
        for chunk in input.chunks(777) {
            n += p.push(chunk).unwrap().len();
        }
        n += p.drain().unwrap().len();
        assert_eq!(n, 50);
    }

    #[test]
    fn resampled_input_is_padded_to_whole_frames() {
        // 0.5 s at 44.1 kHz → 48 kHz: 24 000 samples = 25 frames of 960.
        let mut p = EncodePipeline::new(44_100, 2, FrameDuration::Ms20, None).unwrap();
        let mut n = p.push(&vec![0.0f32; 44_100]).unwrap().len();
        n += p.drain().unwrap().len();
        assert_eq!(n, 25);
    }

    #[test]
    fn reset_drops_the_partial_frame() {
        let mut p = EncodePipeline::new(48_000, 1, FrameDuration::Ms10, None).unwrap();
        assert!(p.push(&[0.0; 100]).unwrap().is_empty());
        assert_eq!(p.pending_samples(), 100);
        p.reset().unwrap();
        assert_eq!(p.pending_samples(), 0);
    }
}
