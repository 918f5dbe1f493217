//! Encode-cost benchmark: moq-audio's encode path against raw libopus on the same PCM, in one
//! process run (so the ratio holds on a noisy machine).
//!
//! Variants, all over the same synthetic speech-like PCM cut into 20 ms chunks:
//! - `raw_libopus_f32`: `opus::Encoder::encode_float` (libopus `opus_encode_float`) into a reused
//!   buffer: the floor.
//! - `raw_libopus_i16`: `opus::Encoder::encode` (libopus `opus_encode`) on the int16 samples.
//! - `opus_encoder`: `moq_audio::codec::opus::Encoder::encode` (our thin wrapper, one `Vec` per packet).
//! - `pipeline_f32`: `moq_audio::publish::encode::EncodePipeline::push` with f32 chunks (framing into whole
//!   Opus frames, packets as `Bytes`).
//! - `pipeline_i16`: what `AudioProducer::write` does per chunk before queueing: int16 →
//!   validated f32 (`Pcm::to_f32`) and then `EncodePipeline::push`.
//! - at 44.1 kHz only `pipeline_i16` (it includes resampling to 48 kHz); the ratio is against raw
//!   libopus at 48 kHz on the same duration.
//!
//! Rounds run the variants in rotating order; the reported time per variant is the median over
//! rounds. Output: one JSON object on stdout.
//!
//! ```text
//! cargo build --release -p moq-audio --example bench_encode
//! target/release/examples/bench_encode [--seconds 30] [--rounds 7] [--rates 48000,24000,44100]
//! ```

use std::time::Instant;

use moq_audio::codec::opus::{Encoder, FrameDuration};
use moq_audio::publish::encode::EncodePipeline;
use moq_audio::Pcm;

/// Deterministic speech-like test signal: a voiced source (harmonics of a gliding 90–260 Hz
/// pitch) under a 4 Hz syllable envelope, with short noise bursts (fricatives) and pauses.
fn speech_like(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (rate as f64 * seconds) as usize;
    let mut out = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let f0 = 175.0 + 85.0 * (2.0 * std::f64::consts::PI * 0.31 * t).sin();
        phase += 2.0 * std::f64::consts::PI * f0 / rate as f64;
        let mut voiced = 0.0;
        for h in 1..=12 {
            // Formant-ish spectral tilt.
            voiced += (phase * h as f64).sin() / (h as f64).powf(1.2);
        }
        let syllable = (2.0 * std::f64::consts::PI * 4.0 * t).sin().max(0.0);
        let sentence = if (t % 3.0) < 2.6 { 1.0 } else { 0.02 };
        let fricative = if (t * 4.0).fract() > 0.8 {
            0.25 * noise()
        } else {
            0.01 * noise()
        };
        let s = sentence * (0.25 * syllable * voiced + fricative);
        out.push((s.clamp(-1.0, 1.0) * 32767.0) as i16);
    }
    out
}

struct Args {
    seconds: f64,
    rounds: usize,
    rates: Vec<u32>,
}

fn parse_args() -> Args {
    let mut a = Args {
        seconds: 30.0,
        rounds: 7,
        rates: vec![48_000, 24_000, 44_100],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = val().parse().expect("--seconds"),
            "--rounds" => a.rounds = val().parse().expect("--rounds"),
            "--rates" => {
                a.rates = val()
                    .split(',')
                    .map(|r| r.parse().expect("--rates"))
                    .collect()
            }
            "-h" | "--help" => {
                eprintln!("bench_encode [--seconds S] [--rounds N] [--rates 48000,24000,44100]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn chunks(rate: u32) -> usize {
    (rate / 50) as usize // 20 ms
}

/// One timed pass of a variant; returns (seconds, packets, bytes).
fn run_variant(name: &str, rate: u32, pcm_i16: &[i16], pcm_f32: &[f32]) -> (f64, usize, usize) {
    let frame = FrameDuration::Ms20;
    let chunk = chunks(rate);
    let mut packets = 0usize;
    let mut bytes = 0usize;
    let start;
    match name {
        "raw_libopus_f32" | "raw_libopus_i16" => {
            let mut enc =
                opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip).unwrap();
            let mut buf = vec![0u8; 4000];
            start = Instant::now();
            if name == "raw_libopus_f32" {
                for c in pcm_f32.chunks_exact(chunk) {
                    let n = enc.encode_float(c, &mut buf).unwrap();
                    packets += 1;
                    bytes += n;
                }
            } else {
                for c in pcm_i16.chunks_exact(chunk) {
                    let n = enc.encode(c, &mut buf).unwrap();
                    packets += 1;
                    bytes += n;
                }
            }
        }
        "opus_encoder" => {
            let mut enc = Encoder::new(rate, 1, frame, None).unwrap();
            start = Instant::now();
            for c in pcm_f32.chunks_exact(chunk) {
                let p = enc.encode(c).unwrap();
                packets += 1;
                bytes += p.len();
            }
        }
        "pipeline_f32" => {
            let mut p = EncodePipeline::new(rate, 1, frame, None).unwrap();
            start = Instant::now();
            for c in pcm_f32.chunks(chunk) {
                for pkt in p.push(c).unwrap() {
                    packets += 1;
                    bytes += pkt.len();
                }
            }
        }
        "pipeline_i16" => {
            let mut p = EncodePipeline::new(rate, 1, frame, None).unwrap();
            start = Instant::now();
            for c in pcm_i16.chunks(chunk) {
                let f = Pcm::I16(c).to_f32(1).unwrap();
                for pkt in p.push(&f).unwrap() {
                    packets += 1;
                    bytes += pkt.len();
                }
            }
        }
        _ => unreachable!(),
    }
    (start.elapsed().as_secs_f64(), packets, bytes)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args = parse_args();
    let mut rates = serde_json::Map::new();
    for &rate in &args.rates {
        // Rates libopus cannot take are resampled by the pipeline; the raw baseline runs at 48 kHz.
        let native = moq_audio::codec::opus::OPUS_RATES.contains(&rate);
        let base_rate = if native { rate } else { 48_000 };
        let to_f32 =
            |pcm: &[i16]| -> Vec<f32> { pcm.iter().map(|&v| v as f32 / 32768.0).collect() };
        let base_i16 = speech_like(base_rate, args.seconds);
        let base_f32 = to_f32(&base_i16);
        let (in_i16, in_f32) = if native {
            (base_i16.clone(), base_f32.clone())
        } else {
            let i = speech_like(rate, args.seconds);
            let f = to_f32(&i);
            (i, f)
        };
        // The raw baselines run at the base rate, the rest at the tested rate.
        let input = |v: &str| -> (u32, &[i16], &[f32]) {
            if v.starts_with("raw") {
                (base_rate, &base_i16, &base_f32)
            } else {
                (rate, &in_i16, &in_f32)
            }
        };
        let variants: Vec<&str> = if native {
            vec![
                "raw_libopus_f32",
                "raw_libopus_i16",
                "opus_encoder",
                "pipeline_f32",
                "pipeline_i16",
            ]
        } else {
            vec!["raw_libopus_f32", "pipeline_i16"]
        };
        // Warm-up pass of each on 2 s (page faults, caches, CPU frequency).
        for v in &variants {
            let (r, pi, pf) = input(v);
            let two_s = r as usize * 2;
            run_variant(v, r, &pi[..pi.len().min(two_s)], &pf[..pf.len().min(two_s)]);
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        let mut counts = vec![(0usize, 0usize); variants.len()];
        for round in 0..args.rounds {
            for k in 0..variants.len() {
                let idx = (k + round) % variants.len();
                let (r, pi, pf) = input(variants[idx]);
                let (t, p, b) = run_variant(variants[idx], r, pi, pf);
                times[idx].push(t);
                counts[idx] = (p, b);
            }
            eprintln!(
                "bench_encode: {rate} Hz round {}/{}",
                round + 1,
                args.rounds
            );
        }
        let raw_med = median(&mut times[0].clone());
        let mut vobjs = serde_json::Map::new();
        for (i, v) in variants.iter().enumerate() {
            let med = median(&mut times[i].clone());
            let frames = counts[i].0.max(1);
            vobjs.insert(
                v.to_string(),
                serde_json::json!({
                    "median_s": med,
                    "times_s": times[i],
                    "packets": counts[i].0,
                    "bytes": counts[i].1,
                    "us_per_frame": med / frames as f64 * 1e6,
                    "realtime_factor": args.seconds / med,
                    "ratio_vs_raw_f32": med / raw_med,
                }),
            );
        }
        rates.insert(
            rate.to_string(),
            serde_json::json!({"native_opus_rate": native, "raw_rate": base_rate, "variants": vobjs}),
        );
    }
    let out = serde_json::json!({
        "audio_seconds": args.seconds,
        "rounds": args.rounds,
        "frame_ms": 20,
        "channels": 1,
        "libopus": opus::version(),
        "rates": rates,
    });
    println!("{out}");
}
