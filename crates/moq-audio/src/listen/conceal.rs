//! Decoding at playout time, so a missing packet can be concealed by the codec itself.
//!
//! Packet loss concealment (PLC) continues the decoded signal from the decoder's state, so it
//! has to run in playout order, at the moment the packet is missing: WebRTC NetEQ keeps
//! *encoded* packets in its buffer and decodes (or expands) only when audio is due. The jitter
//! buffer does the same through [`PacketDecoder`]; [`OpusPackets`] is libopus' decoder with its
//! own PLC (RFC 6716 §4.4), resampled when the listener asked for a rate Opus does not decode.

use crate::codec::opus::{codec_rate, Decoder, OPUS_RATES};
use crate::codec::resample::Resampler;
use crate::Result;

/// What the jitter buffer needs from a codec: durations before decoding, in-order decoding,
/// concealment, and a fresh stream at a new generation.
pub trait PacketDecoder {
    /// Sample frames (per channel, at the output rate) `packet` decodes to; `None` if it does
    /// not parse.
    fn frames(&self, packet: &[u8]) -> Option<usize>;
    /// Decode the next packet into interleaved PCM.
    ///
    /// # Errors
    /// A packet the codec cannot decode.
    fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>>;
    /// About `frames` sample frames (interleaved PCM) continuing the stream where a packet is
    /// missing. The codec may round the length to its own granularity.
    ///
    /// # Errors
    /// A codec failure.
    fn conceal(&mut self, frames: usize) -> Result<Vec<f32>>;
    /// Start a new stream (the next packet does not continue the previous ones).
    fn reset(&mut self);
}

/// libopus decoding and PLC at the listener's output rate.
pub struct OpusPackets {
    decoder: Decoder,
    resampler: Option<Resampler>,
    output_rate: u32,
    channels: u32,
}

impl OpusPackets {
    /// Decode a stream encoded at `stream_rate` Hz (the catalog's) with `channels` channels, to
    /// `output_rate` Hz: natively when that is an Opus rate, else at the stream's codec rate and
    /// resampled (as [`super::consumer::AudioConsumer`] does).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a channel count or rate libopus or rubato rejects.
    pub fn new(output_rate: u32, stream_rate: u32, channels: u32) -> Result<Self> {
        let decode_rate = if OPUS_RATES.contains(&output_rate) {
            output_rate
        } else {
            codec_rate(stream_rate)
        };
        let decoder = Decoder::new(decode_rate, channels)?;
        let resampler = (decode_rate != output_rate)
            .then(|| Resampler::new(decode_rate, output_rate, channels))
            .transpose()?;
        Ok(Self {
            decoder,
            resampler,
            output_rate,
            channels,
        })
    }

    fn resample(&mut self, pcm: Vec<f32>) -> Result<Vec<f32>> {
        match &mut self.resampler {
            Some(r) => r.process(&pcm),
            None => Ok(pcm),
        }
    }
}

impl PacketDecoder for OpusPackets {
    fn frames(&self, packet: &[u8]) -> Option<usize> {
        // (opus_packet_get_nb_samples; codec::opus wraps the decoder, not this helper)
        let n = opus::packet::get_nb_samples(packet, self.decoder.rate()).ok()?;
        Some((n as u64 * self.output_rate as u64 / self.decoder.rate() as u64) as usize)
    }

    fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>> {
        let pcm = self.decoder.decode(packet)?;
        self.resample(pcm)
    }

    fn conceal(&mut self, frames: usize) -> Result<Vec<f32>> {
        // libopus conceals whole multiples of 2.5 ms, at most 120 ms per call.
        let rate = self.decoder.rate() as usize;
        let step = rate / 400;
        let at_decode_rate = frames * rate / self.output_rate as usize;
        let n = at_decode_rate.div_ceil(step).clamp(1, 48) * step;
        let pcm = self.decoder.conceal(n)?;
        debug_assert_eq!(pcm.len(), n * self.channels as usize);
        self.resample(pcm)
    }

    fn reset(&mut self) {
        if let Err(e) = self.decoder.reset() {
            tracing::warn!(%e, "resetting the Opus decoder failed");
        }
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::opus::{Encoder, FrameDuration};

    fn tone_packets(rate: u32, n: usize) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new(rate, 1, FrameDuration::Ms20, Some(32_000)).unwrap();
        let frame = enc.frame_samples();
        (0..n)
            .map(|k| {
                let pcm: Vec<f32> = (0..frame)
                    .map(|i| {
                        let t = (k * frame + i) as f32 / rate as f32;
                        0.4 * (2.0 * std::f32::consts::PI * 300.0 * t).sin()
                    })
                    .collect();
                enc.encode(&pcm).unwrap()
            })
            .collect()
    }

    fn rms(pcm: &[f32]) -> f32 {
        (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32).sqrt()
    }

    #[test]
    fn durations_decoding_and_plc_at_an_opus_rate() {
        let packets = tone_packets(24_000, 10);
        let mut d = OpusPackets::new(24_000, 24_000, 1).unwrap();
        assert_eq!(d.frames(&packets[0]), Some(480));
        assert_eq!(d.frames(&[]), None);
        for p in &packets {
            assert_eq!(d.decode(p).unwrap().len(), 480);
        }
        let plc = d.conceal(480).unwrap();
        assert_eq!(plc.len(), 480);
        assert!(
            rms(&plc) > 0.05,
            "PLC continues the tone, rms {}",
            rms(&plc)
        );
    }

    #[test]
    fn a_non_opus_output_rate_is_resampled() {
        let packets = tone_packets(48_000, 10);
        let mut d = OpusPackets::new(44_100, 48_000, 1).unwrap();
        assert_eq!(d.frames(&packets[0]), Some(882));
        let mut total = 0;
        for p in &packets {
            total += d.decode(p).unwrap().len();
        }
        // The resampler's filter delay holds back a few ms at the start of a stream.
        assert!((8_000..=8_820).contains(&total), "{total}");
        assert!(!d.conceal(882).unwrap().is_empty());
    }
}
