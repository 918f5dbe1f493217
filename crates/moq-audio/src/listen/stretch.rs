//! Time-scaling of quiet audio: how the jitter buffer changes its delay without an audible jump.
//!
//! WebRTC NetEQ shrinks its buffer with *Accelerate* and grows it with *Preemptive Expand*
//! (`time_stretch.cc`): remove or repeat one pitch period where the signal is periodic, and,
//! where it is not active speech (low energy), remove or repeat audio freely because nobody
//! hears it. We only use that second branch: a decoded chunk whose RMS is below [`QUIET_RMS`]
//! (pauses between words and sentences, unvoiced stretches) loses or gains up to half of its
//! length, joined with a [`CROSSFADE_US`] linear crossfade so the splice has no click. Loud audio
//! is never touched, so speech keeps its pitch and rhythm; the price is that the delay moves only
//! as fast as the speech pauses allow (TTS speech has a pause every few hundred ms).
//!
//! Pure functions on interleaved `f32` PCM.

/// Below this RMS (−40 dBFS) a chunk counts as quiet: a pause or breath, not a voice.
pub const QUIET_RMS: f32 = 0.01;
/// Length of the crossfade at a splice, µs.
pub const CROSSFADE_US: u64 = 2_500;

/// Whether `pcm` is quiet enough to stretch or shrink unheard.
pub fn is_quiet(pcm: &[f32]) -> bool {
    if pcm.is_empty() {
        return false;
    }
    let energy: f64 = pcm.iter().map(|&s| s as f64 * s as f64).sum();
    (energy / pcm.len() as f64).sqrt() < QUIET_RMS as f64
}

/// `a·(1 − w) + b·w` with `w` rising over `n` steps (1/(n+1) .. n/(n+1)).
fn crossfade(out: &mut Vec<f32>, a: &[f32], b: &[f32], ch: usize) {
    let n = a.len() / ch;
    for i in 0..n {
        let w = (i + 1) as f32 / (n + 1) as f32;
        for c in 0..ch {
            out.push(a[i * ch + c] * (1.0 - w) + b[i * ch + c] * w);
        }
    }
}

/// `pcm` (interleaved, `ch` channels) with `remove` sample frames taken out of its middle,
/// crossfaded over `xf` frames. `None` if it is too short (`remove + xf` > its length).
pub fn shrink(pcm: &[f32], ch: usize, remove: usize, xf: usize) -> Option<Vec<f32>> {
    let n = pcm.len() / ch;
    if remove == 0 || remove + xf > n {
        return None;
    }
    let m = (n - remove - xf) / 2;
    let mut out = Vec::with_capacity((n - remove) * ch);
    out.extend_from_slice(&pcm[..m * ch]);
    crossfade(
        &mut out,
        &pcm[m * ch..(m + xf) * ch],
        &pcm[(m + remove) * ch..(m + remove + xf) * ch],
        ch,
    );
    out.extend_from_slice(&pcm[(m + remove + xf) * ch..]);
    Some(out)
}

/// `pcm` with `insert` sample frames added in its middle (a stretch of it played twice),
/// crossfaded over `xf` frames. `None` if it is too short (`insert + xf` > its length).
pub fn grow(pcm: &[f32], ch: usize, insert: usize, xf: usize) -> Option<Vec<f32>> {
    let n = pcm.len() / ch;
    if insert == 0 || insert + xf > n {
        return None;
    }
    let m = (n - insert - xf) / 2;
    let mut out = Vec::with_capacity((n + insert) * ch);
    out.extend_from_slice(&pcm[..(m + insert) * ch]);
    crossfade(
        &mut out,
        &pcm[(m + insert) * ch..(m + insert + xf) * ch],
        &pcm[m * ch..(m + xf) * ch],
        ch,
    );
    out.extend_from_slice(&pcm[(m + xf) * ch..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, amp: f32) -> Vec<f32> {
        let mut x: u32 = 1;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                amp * ((x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn quiet_is_below_minus_40_dbfs() {
        assert!(is_quiet(&noise(960, 0.01)));
        assert!(!is_quiet(&noise(960, 0.1)));
        assert!(!is_quiet(&[]));
    }

    #[test]
    fn shrink_and_grow_change_the_length_and_keep_the_ends() {
        let pcm = noise(960, 0.005);
        let short = shrink(&pcm, 1, 400, 120).unwrap();
        assert_eq!(short.len(), 560);
        assert_eq!(&short[..10], &pcm[..10]);
        assert_eq!(short[short.len() - 1], pcm[959]);
        let long = grow(&pcm, 1, 400, 120).unwrap();
        assert_eq!(long.len(), 1360);
        assert_eq!(&long[..10], &pcm[..10]);
        assert_eq!(long[long.len() - 1], pcm[959]);
        assert!(shrink(&pcm, 1, 900, 120).is_none());
    }

    #[test]
    fn a_splice_of_a_constant_is_that_constant_and_stereo_stays_paired() {
        let pcm: Vec<f32> = (0..960).flat_map(|_| [0.25, -0.5]).collect();
        for out in [
            shrink(&pcm, 2, 100, 120).unwrap(),
            grow(&pcm, 2, 100, 120).unwrap(),
        ] {
            assert!(out
                .chunks(2)
                .all(|f| (f[0] - 0.25).abs() < 1e-6 && (f[1] + 0.5).abs() < 1e-6));
        }
    }
}
