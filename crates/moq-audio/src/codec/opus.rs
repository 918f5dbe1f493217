//! Opus encoding and decoding with libopus (through the `opus` crate).

use std::time::Duration;

use crate::{Error, Result};

/// Sample rates libopus encodes and decodes natively, in Hz (RFC 6716 §2).
pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// The largest Opus packet we allow, in bytes: RFC 6716 caps a frame at 1275 bytes; 4000 is
/// libopus' recommended output buffer for any frame size and bitrate.
const MAX_PACKET: usize = 4_000;

/// The Opus rate a stream at `sample_rate` Hz is encoded at: itself if libopus takes it,
/// otherwise 48 kHz (after resampling).
pub fn codec_rate(sample_rate: u32) -> u32 {
    if OPUS_RATES.contains(&sample_rate) {
        sample_rate
    } else {
        48_000
    }
}

/// Opus frame durations we publish. libopus also takes 2.5 and 5 ms, but those cost more per
/// second than they save in latency next to the network's own jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[derive(Default)]
pub enum FrameDuration {
    /// 10 ms frames.
    Ms10,
    /// 20 ms frames: the usual VoIP choice and the default.
    #[default]
    Ms20,
    /// 40 ms frames.
    Ms40,
    /// 60 ms frames.
    Ms60,
}

impl FrameDuration {
    /// Parse a duration in ms.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless `ms` is 10, 20, 40 or 60.
    pub fn from_ms(ms: u32) -> Result<Self> {
        match ms {
            10 => Ok(Self::Ms10),
            20 => Ok(Self::Ms20),
            40 => Ok(Self::Ms40),
            60 => Ok(Self::Ms60),
            _ => Err(Error::InvalidInput(format!(
                "Opus frame duration {ms} ms is not supported (10, 20, 40 or 60 ms)"
            ))),
        }
    }

    /// The duration in ms.
    pub fn as_ms(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
            Self::Ms40 => 40,
            Self::Ms60 => 60,
        }
    }

    /// The duration.
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.as_ms() as u64)
    }

    /// Sample frames (per channel) in one Opus frame at `rate` Hz.
    pub fn samples(self, rate: u32) -> usize {
        (rate as usize * self.as_ms() as usize) / 1000
    }
}

fn channels(n: u32) -> Result<opus::Channels> {
    match n {
        1 => Ok(opus::Channels::Mono),
        2 => Ok(opus::Channels::Stereo),
        _ => Err(Error::InvalidInput(format!(
            "{n} channels is not supported (1 or 2)"
        ))),
    }
}

fn opus_err(e: opus::Error) -> Error {
    Error::Opus(e.to_string())
}

/// An Opus encoder for one stream of fixed-size frames.
pub struct Encoder {
    inner: opus::Encoder,
    rate: u32,
    channels: u32,
    frame: FrameDuration,
}

impl Encoder {
    /// Build an encoder at `rate` Hz (one of [`OPUS_RATES`]) for `channels` channels, tuned
    /// for speech (`OPUS_APPLICATION_VOIP`), at `bitrate` bits/s (`None`: libopus' default for
    /// the rate and channel count).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a rate or channel count libopus does not take, or a
    /// bitrate outside 6 000..=510 000 bits/s (libopus' range).
    pub fn new(
        rate: u32,
        channels_n: u32,
        frame: FrameDuration,
        bitrate: Option<u32>,
    ) -> Result<Self> {
        if !OPUS_RATES.contains(&rate) {
            return Err(Error::InvalidInput(format!(
                "{rate} Hz is not an Opus rate"
            )));
        }
        let mut inner = opus::Encoder::new(rate, channels(channels_n)?, opus::Application::Voip)
            .map_err(opus_err)?;
        if let Some(bps) = bitrate {
            if !(6_000..=510_000).contains(&bps) {
                return Err(Error::InvalidInput(format!(
                    "bitrate {bps} bits/s is out of range (6000..=510000)"
                )));
            }
            inner
                .set_bitrate(opus::Bitrate::Bits(bps as i32))
                .map_err(opus_err)?;
        }
        Ok(Self {
            inner,
            rate,
            channels: channels_n,
            frame,
        })
    }

    /// Interleaved samples in one frame (all channels).
    pub fn frame_samples(&self) -> usize {
        self.frame.samples(self.rate) * self.channels as usize
    }

    /// Encode exactly one frame of interleaved `f32` PCM into an Opus packet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `pcm` is not [`Self::frame_samples`] long; [`Error::Opus`] if
    /// libopus fails.
    pub fn encode(&mut self, pcm: &[f32]) -> Result<Vec<u8>> {
        if pcm.len() != self.frame_samples() {
            return Err(Error::InvalidInput(format!(
                "an Opus frame needs {} samples, got {}",
                self.frame_samples(),
                pcm.len()
            )));
        }
        self.inner
            .encode_vec_float(pcm, MAX_PACKET)
            .map_err(opus_err)
    }

    /// Reset the codec state, so the next packet does not depend on the audio before it
    /// (used when a flush starts a new generation).
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset_state().map_err(opus_err)
    }

    /// Samples of lookahead the encoder adds at the front of the stream, per channel.
    pub fn lookahead(&mut self) -> Result<usize> {
        Ok(self.inner.get_lookahead().map_err(opus_err)? as usize)
    }
}

/// An Opus decoder producing interleaved `f32` PCM.
pub struct Decoder {
    inner: opus::Decoder,
    rate: u32,
    channels: u32,
    buf: Vec<f32>,
}

impl Decoder {
    /// Build a decoder that outputs at `rate` Hz (one of [`OPUS_RATES`]) with `channels` channels.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a rate or channel count libopus does not take.
    pub fn new(rate: u32, channels_n: u32) -> Result<Self> {
        if !OPUS_RATES.contains(&rate) {
            return Err(Error::InvalidInput(format!(
                "{rate} Hz is not an Opus rate"
            )));
        }
        let inner = opus::Decoder::new(rate, channels(channels_n)?).map_err(opus_err)?;
        // 120 ms is the longest Opus packet (RFC 6716 §3.2.5).
        let buf = vec![0.0; rate as usize * 120 / 1000 * channels_n as usize];
        Ok(Self {
            inner,
            rate,
            channels: channels_n,
            buf,
        })
    }

    /// Output rate in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decode one packet into interleaved `f32`.
    ///
    /// # Errors
    /// [`Error::Opus`] for a corrupt packet.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>> {
        let n = self
            .inner
            .decode_float(packet, &mut self.buf, false)
            .map_err(opus_err)?;
        Ok(self.buf[..n * self.channels as usize].to_vec())
    }

    /// Packet loss concealment: `frames` sample frames (per channel) that continue the decoded
    /// stream where a packet is missing, from libopus' own PLC (RFC 6716 §4.4). `frames` must be
    /// a multiple of 2.5 ms at the decoder's rate.
    ///
    /// # Errors
    /// [`Error::Opus`] for a length libopus cannot conceal.
    pub fn conceal(&mut self, frames: usize) -> Result<Vec<f32>> {
        let samples = frames * self.channels as usize;
        if samples > self.buf.len() {
            return Err(Error::Opus(format!(
                "cannot conceal {frames} frames at once"
            )));
        }
        let n = self
            .inner
            .decode_float(&[], &mut self.buf[..samples], false)
            .map_err(opus_err)?;
        Ok(self.buf[..n * self.channels as usize].to_vec())
    }

    /// Reset the codec state (a new generation starts a new stream).
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset_state().map_err(opus_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_rate_keeps_opus_rates_and_resamples_the_rest() {
        assert_eq!(codec_rate(24_000), 24_000);
        assert_eq!(codec_rate(16_000), 16_000);
        assert_eq!(codec_rate(22_050), 48_000);
        assert_eq!(codec_rate(44_100), 48_000);
    }

    #[test]
    fn frame_durations() {
        assert_eq!(FrameDuration::from_ms(20).unwrap().samples(48_000), 960);
        assert_eq!(FrameDuration::from_ms(60).unwrap().samples(24_000), 1440);
        assert!(FrameDuration::from_ms(25)
            .unwrap_err()
            .to_string()
            .contains("25 ms"));
    }

    #[test]
    fn round_trip_preserves_a_tone() {
        let rate = 48_000;
        let mut enc = Encoder::new(rate, 1, FrameDuration::Ms20, Some(64_000)).unwrap();
        let mut dec = Decoder::new(rate, 1).unwrap();
        let n = rate as usize; // 1 s
        let input: Vec<f32> = (0..n)
            .map(|i| 0.4 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect();
        let mut out = Vec::new();
        for frame in input.chunks_exact(enc.frame_samples()) {
            let packet = enc.encode(frame).unwrap();
            assert!(
                packet.len() < 400,
                "{} bytes for 20 ms at 64 kbit/s",
                packet.len()
            );
            out.extend(dec.decode(&packet).unwrap());
        }
        assert_eq!(out.len(), n, "one output sample per input sample");
        // Skip the first 100 ms (codec start-up), then compare with a fitted 440 Hz tone.
        let snr_db = crate::codec::pcm::tone_snr_db(&out[4_800..], rate, 440.0);
        assert!(snr_db > 20.0, "SNR {snr_db:.1} dB");
    }

    #[test]
    fn concealment_continues_the_tone_instead_of_silence() {
        let rate = 48_000;
        let mut enc = Encoder::new(rate, 1, FrameDuration::Ms20, Some(64_000)).unwrap();
        let mut dec = Decoder::new(rate, 1).unwrap();
        let tone: Vec<f32> = (0..rate as usize / 2)
            .map(|i| 0.4 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect();
        for frame in tone.chunks_exact(enc.frame_samples()) {
            dec.decode(&enc.encode(frame).unwrap()).unwrap();
        }
        let concealed = dec.conceal(960).unwrap();
        assert_eq!(concealed.len(), 960);
        let rms = (concealed.iter().map(|s| s * s).sum::<f32>() / 960.0).sqrt();
        assert!(
            rms > 0.05,
            "PLC continues the signal (rms {rms:.3}), it is not silence"
        );
    }

    #[test]
    fn wrong_frame_size_and_bitrate_are_rejected() {
        let mut enc = Encoder::new(24_000, 1, FrameDuration::Ms20, None).unwrap();
        assert!(enc.encode(&[0.0; 100]).is_err());
        assert!(Encoder::new(24_000, 1, FrameDuration::Ms20, Some(1_000)).is_err());
        assert!(Encoder::new(44_100, 1, FrameDuration::Ms20, None).is_err());
    }
}
