//! PCM input: validation and conversion to interleaved `f32`.
//!
//! Everything a caller hands to [`crate::AudioProducer::write`] passes through here first, so a
//! bad buffer is rejected before anything is queued (invariant 7 in docs/architecture.md).

use crate::{Error, Result};

/// Lowest input sample rate accepted, in Hz (narrow-band telephony).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest input sample rate accepted, in Hz (Opus' full-band rate).
pub const MAX_SAMPLE_RATE: u32 = 48_000;
/// Most channels accepted (Opus mono or stereo; more needs multistream, which we do not offer).
pub const MAX_CHANNELS: u32 = 2;

/// A borrowed block of interleaved PCM as the caller supplied it.
///
/// `channels` samples make one sample frame; the slice length must be a multiple of it.
#[derive(Clone, Copy, Debug)]
pub enum Pcm<'a> {
    /// Signed 16-bit samples, full scale ±32768.
    I16(&'a [i16]),
    /// 32-bit float samples, full scale ±1.0. NaN and ±inf are rejected.
    F32(&'a [f32]),
}

impl Pcm<'_> {
    /// Number of samples (all channels together).
    pub fn len(&self) -> usize {
        match self {
            Pcm::I16(s) => s.len(),
            Pcm::F32(s) => s.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Validate and convert to interleaved `f32` in [-1, 1].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the length is not a multiple of `channels`, or an `f32`
    /// sample is NaN or infinite (the message gives the index of the first bad sample).
    pub fn to_f32(&self, channels: u32) -> Result<Vec<f32>> {
        let channels = channels as usize;
        if !self.len().is_multiple_of(channels) {
            return Err(Error::InvalidInput(format!(
                "{} samples is not a whole number of {channels}-channel sample frames",
                self.len()
            )));
        }
        match self {
            Pcm::I16(s) => Ok(s.iter().map(|&v| v as f32 / 32768.0).collect()),
            Pcm::F32(s) => {
                if let Some(i) = s.iter().position(|v| !v.is_finite()) {
                    return Err(Error::InvalidInput(format!(
                        "sample {i} is {} (PCM must be finite)",
                        s[i]
                    )));
                }
                // Out-of-range floats are clipped rather than rejected: TTS engines overshoot
                // slightly and libopus would clip them the same way.
                Ok(s.iter().map(|v| v.clamp(-1.0, 1.0)).collect())
            }
        }
    }
}

/// Parse little-endian signed 16-bit PCM bytes (`s16le`).
///
/// # Errors
/// [`Error::InvalidInput`] for an odd byte count.
pub fn s16le_to_i16(bytes: &[u8]) -> Result<Vec<i16>> {
    if !bytes.len().is_multiple_of(2) {
        return Err(Error::InvalidInput(format!(
            "{} bytes is an odd byte count; s16le PCM has 2 bytes per sample",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Check a sample rate and channel count for an input stream.
///
/// # Errors
/// [`Error::InvalidInput`] naming the value out of range.
pub fn check_format(sample_rate: u32, channels: u32) -> Result<()> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(Error::InvalidInput(format!(
            "sample rate {sample_rate} Hz is out of range ({MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz)"
        )));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(Error::InvalidInput(format!(
            "{channels} channels is not supported (1 or 2)"
        )));
    }
    Ok(())
}

/// Duration of `samples` interleaved samples, in µs.
pub fn samples_to_us(samples: usize, sample_rate: u32, channels: u32) -> u64 {
    (samples as u64 / channels as u64) * 1_000_000 / sample_rate as u64
}

/// Convert interleaved `f32` to `i16` with rounding and saturation (for WAV output).
pub fn f32_to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Test helper: SNR (dB) of `x` against the best-fitting sinusoid at `hz`, so a delay or phase
/// shift does not count as noise.
#[cfg(test)]
pub(crate) fn tone_snr_db(x: &[f32], rate: u32, hz: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz as f64 / rate as f64;
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for (i, &v) in x.iter().enumerate() {
        s += v as f64 * (w * i as f64).sin();
        c += v as f64 * (w * i as f64).cos();
    }
    let n = x.len() as f64;
    let (a, b) = (2.0 * s / n, 2.0 * c / n);
    let mut err = 0.0;
    for (i, &v) in x.iter().enumerate() {
        let fit = a * (w * i as f64).sin() + b * (w * i as f64).cos();
        err += (v as f64 - fit).powi(2);
    }
    let power = (a * a + b * b) / 2.0 * n;
    10.0 * (power / err).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_full_scale_maps_to_unit_range() {
        let out = Pcm::I16(&[i16::MIN, 0, i16::MAX]).to_f32(1).unwrap();
        assert_eq!(out[0], -1.0);
        assert_eq!(out[1], 0.0);
        assert!((out[2] - 0.99997).abs() < 1e-4);
    }

    #[test]
    fn f32_is_clipped_not_rejected() {
        let out = Pcm::F32(&[1.5, -2.0, 0.25, 0.5]).to_f32(2).unwrap();
        assert_eq!(out, vec![1.0, -1.0, 0.25, 0.5]);
    }

    #[test]
    fn nan_and_inf_are_rejected_with_index() {
        let err = Pcm::F32(&[0.0, f32::NAN]).to_f32(1).unwrap_err();
        assert!(err.to_string().contains("sample 1"), "{err}");
        assert!(Pcm::F32(&[f32::INFINITY]).to_f32(1).is_err());
    }

    #[test]
    fn partial_sample_frame_is_rejected() {
        let err = Pcm::I16(&[1, 2, 3]).to_f32(2).unwrap_err();
        assert!(err.to_string().contains("2-channel"), "{err}");
    }

    #[test]
    fn s16le_parses_and_rejects_odd_counts() {
        assert_eq!(
            s16le_to_i16(&[0x01, 0x00, 0xff, 0xff]).unwrap(),
            vec![1, -1]
        );
        assert!(s16le_to_i16(&[0x01])
            .unwrap_err()
            .to_string()
            .contains("odd byte count"));
    }

    #[test]
    fn formats_are_checked() {
        for rate in [8_000, 16_000, 22_050, 24_000, 44_100, 48_000] {
            check_format(rate, 1).unwrap();
        }
        assert!(check_format(7_999, 1).is_err());
        assert!(check_format(96_000, 1).is_err());
        assert!(check_format(48_000, 3)
            .unwrap_err()
            .to_string()
            .contains("3 channels"));
        assert!(check_format(48_000, 0).is_err());
    }

    #[test]
    fn round_trip_to_i16_saturates() {
        assert_eq!(f32_to_i16(1.0), 32767);
        assert_eq!(f32_to_i16(-1.0), -32768);
        assert_eq!(f32_to_i16(0.5), 16384);
    }
}
