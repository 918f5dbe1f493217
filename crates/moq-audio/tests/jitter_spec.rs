//! The jitter buffer's shared specification: every scenario in `spec/jitter/*.json` (see
//! `spec/jitter/README.md` for the format) against the Rust `JitterBuffer`. The browser's
//! `web-demo/src/jitter.ts` runs the same files (`web-demo/tests/spec.test.mjs`).
//!
//! Packets are stand-ins for Opus: (value, frames) decoding to `frames` samples of `value`;
//! concealment continues the last value, so it can be told from silence but is not compared.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use moq_audio::listen::{JitterBuffer, JitterOptions, PacketDecoder, Rendered};
use serde_json::{Map, Value};

struct ConstCodec {
    channels: usize,
    last: f32,
}

fn packet(value: f32, frames: usize) -> Bytes {
    let mut b = value.to_le_bytes().to_vec();
    b.extend_from_slice(&(frames as u32).to_le_bytes());
    Bytes::from(b)
}

impl PacketDecoder for ConstCodec {
    fn frames(&self, packet: &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(packet.get(4..8)?.try_into().ok()?) as usize)
    }
    fn decode(&mut self, packet: &[u8]) -> moq_audio::Result<Vec<f32>> {
        self.last = f32::from_le_bytes(packet[..4].try_into().unwrap());
        Ok(vec![
            self.last;
            self.frames(packet).unwrap() * self.channels
        ])
    }
    fn conceal(&mut self, frames: usize) -> moq_audio::Result<Vec<f32>> {
        Ok(vec![self.last; frames * self.channels])
    }
    fn reset(&mut self) {
        self.last = 0.0;
    }
}

/// One rendered stretch in the spec's terms.
#[derive(Clone, Debug)]
struct Span {
    generation: Option<u64>,
    ts: u64,
    frames: usize,
    kind: &'static str,
    /// Sample range in the rendered output.
    at: usize,
}

fn kind(r: &Rendered) -> &'static str {
    match (r.generation, r.fade, r.concealed) {
        (None, _, _) => "silence",
        (_, true, _) => "fade",
        (_, _, true) => "conceal",
        _ => "audio",
    }
}

/// Adjacent stretches of the same generation and kind, merged (the first one's timestamp).
fn merge(spans: &[Rendered], ch: usize) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut at = 0;
    for r in spans {
        let k = kind(r);
        match out.last_mut() {
            Some(last) if last.generation == r.generation && last.kind == k => {
                last.frames += r.frames
            }
            _ => out.push(Span {
                generation: r.generation,
                ts: r.ts_us,
                frames: r.frames,
                kind: k,
                at,
            }),
        }
        at += r.frames * ch;
    }
    out
}

struct Runner {
    name: String,
    buf: JitterBuffer<ConstCodec>,
    rate: u64,
    ch: usize,
    rendered: u64,
}

impl Runner {
    fn clock_us(&self) -> u64 {
        self.rendered * 1_000_000 / self.rate
    }

    fn frame_us(&self, frames: u64) -> u64 {
        frames * 1_000_000 / self.rate
    }

    fn push(&mut self, p: &Value) {
        let g = p["gen"].as_u64().expect("gen");
        let ts = p["ts"].as_u64().expect("ts");
        if p.get("marker").and_then(Value::as_bool).unwrap_or(false) {
            self.buf.push(g, ts, Bytes::new());
        } else {
            let frames = p["frames"].as_u64().expect("frames") as usize;
            let value = p["value"].as_f64().expect("value") as f32;
            self.buf.push(g, ts, packet(value, frames));
        }
    }

    fn render(&mut self, frames: usize) -> (Vec<f32>, Vec<Span>) {
        let mut out = vec![9.0; frames * self.ch];
        let spans = self.buf.render(&mut out);
        self.rendered += frames as u64;
        let merged = merge(&spans, self.ch);
        (out, merged)
    }

    fn check_spans(&self, step: usize, out: &[f32], got: &[Span], want: &[Value]) {
        let ctx = format!("{} step {step}: got {got:?}", self.name);
        assert_eq!(got.len(), want.len(), "{ctx}: span count");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.kind, w["kind"].as_str().expect("kind"), "{ctx}: kind");
            assert_eq!(
                g.frames as u64,
                w["frames"].as_u64().expect("frames"),
                "{ctx}: frames"
            );
            if let Some(gen) = w.get("gen") {
                assert_eq!(g.generation, gen.as_u64(), "{ctx}: generation");
            }
            if let Some(ts) = w.get("ts") {
                assert_eq!(g.ts, ts.as_u64().expect("ts"), "{ctx}: ts");
            }
            if let Some(v) = w.get("value") {
                let v = v.as_f64().expect("value") as f32;
                let samples = &out[g.at..g.at + g.frames * self.ch];
                assert!(
                    samples.iter().all(|s| (s - v).abs() < 1e-5),
                    "{ctx}: value {v}"
                );
            }
            if w.get("monotonic").and_then(Value::as_bool) == Some(true) {
                let samples = &out[g.at..g.at + g.frames * self.ch];
                assert!(
                    samples.windows(2).all(|p| p[1].abs() <= p[0].abs() + 1e-6),
                    "{ctx}: a fade goes monotonically to zero"
                );
                assert!(
                    samples.last().is_some_and(|s| s.abs() < 0.01),
                    "{ctx}: faded to silence"
                );
            }
        }
    }

    fn stat(&self, name: &str) -> Value {
        let s = self.buf.stats();
        let v = match name {
            "staleFrames" => s.stale_frames,
            "lateFrames" => s.late_frames,
            "flushedFrames" => s.flushed_frames,
            "underruns" => s.underruns,
            "skippedFrames" => s.skipped_frames,
            "concealedFrames" => s.concealed_frames,
            "insertedFrames" => s.inserted_frames,
            "removedFrames" => s.removed_frames,
            "targetUs" => s.target_us,
            "jitterUs" => s.jitter_us,
            "peakUs" => s.peak_us,
            "delayUs" => s.delay_us,
            "bufferedUs" => self.buf.buffered_us(),
            "playing" => return Value::Bool(self.buf.is_playing()),
            "generation" => return self.buf.generation().map_or(Value::Null, Value::from),
            "last" => {
                return self
                    .buf
                    .last_rendered()
                    .map_or(Value::Null, |(g, ts)| Value::from(vec![g, ts]))
            }
            other => panic!("{}: unknown stat {other}", self.name),
        };
        Value::from(v)
    }

    fn check_stats(&self, step: usize, want: &Map<String, Value>) {
        for (name, w) in want {
            let got = self.stat(name);
            check_value(&format!("{} step {step}: {name}", self.name), &got, w);
        }
    }

    /// A paced publisher: packet k sent at `(k - leadPackets)` frame durations after the step
    /// starts (the first `leadPackets` at once), arriving after its extra delay; the buffer
    /// renders in `quantum`s and takes each arrival before the quantum that follows it.
    fn stream(&mut self, step: usize, s: &Value) {
        let g = s["gen"].as_u64().expect("gen");
        let ts0 = s["ts"].as_u64().expect("ts");
        let count = s["count"].as_u64().expect("count");
        let frames = s["frames"].as_u64().expect("frames");
        let quantum = s["quantum"].as_u64().unwrap_or(480) as usize;
        let lead = s.get("leadPackets").and_then(Value::as_u64).unwrap_or(0);
        let tail = s.get("tailUs").and_then(Value::as_u64).unwrap_or(200_000);
        let fifo = s.get("fifo").and_then(Value::as_bool).unwrap_or(false);
        let values: Vec<f32> = match &s["value"] {
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_f64().expect("value") as f32)
                .collect(),
            v => vec![v.as_f64().expect("value") as f32],
        };
        let missing: Vec<u64> = s
            .get("missing")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().expect("missing")).collect())
            .unwrap_or_default();
        let (jitter_max, mut seed) = match s.get("jitter") {
            Some(j) => (
                j["maxUs"].as_u64().expect("maxUs"),
                j["seed"].as_u64().expect("seed") as u32,
            ),
            None => (0, 0),
        };
        let frame_us = self.frame_us(frames);
        let start = self.clock_us();
        let mut arrivals: Vec<(u64, u64)> = Vec::new(); // (arrival µs, k)
        let mut prev = 0;
        for k in 0..count {
            let mut at = start + k.saturating_sub(lead) * frame_us;
            if jitter_max > 0 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                at += ((seed >> 8) as u64 * (jitter_max + 1)) >> 24;
            }
            if let Some(d) = s.get("delays").and_then(|d| d.get(k.to_string())) {
                at += d.as_u64().expect("delay");
            }
            if fifo {
                at = at.max(prev);
            }
            prev = at;
            if !missing.contains(&k) {
                arrivals.push((at, k));
            }
        }
        arrivals.sort();
        let last = arrivals.last().map_or(start, |a| a.0);
        let mut next = 0;
        let mut totals = Totals::default();
        let after_us = start
            + s.get("afterUs")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX - start);
        let mut after = Totals::default();
        while next < arrivals.len() || self.clock_us() < last + tail {
            while next < arrivals.len() && arrivals[next].0 <= self.clock_us() {
                let k = arrivals[next].1;
                let value = values[(k as usize) % values.len()];
                self.buf
                    .push(g, ts0 + k * frame_us, packet(value, frames as usize));
                next += 1;
            }
            let counted = self.clock_us() >= after_us;
            let (_, spans) = self.render(quantum);
            totals.add(&spans);
            if counted {
                after.add(&spans);
            }
        }
        for (key, t) in [("expectTotals", &totals), ("expectTotalsAfter", &after)] {
            if let Some(want) = s.get(key).and_then(Value::as_object) {
                for (name, w) in want {
                    check_value(
                        &format!("{} step {step}: {key}.{name} ({t:?})", self.name),
                        &t.get(name),
                        w,
                    );
                }
            }
        }
    }
}

/// Frames of each kind rendered during a stream step.
#[derive(Debug, Default)]
struct Totals {
    audio: u64,
    conceal: u64,
    fade: u64,
    silence: u64,
    /// Silence after the first audio and before the last audio: gaps in the playout.
    silence_inside: u64,
    pending_silence: u64,
    started: bool,
}

impl Totals {
    fn add(&mut self, spans: &[Span]) {
        for s in spans {
            let n = s.frames as u64;
            match s.kind {
                "silence" => {
                    self.silence += n;
                    if self.started {
                        self.pending_silence += n;
                    }
                }
                k => {
                    match k {
                        "audio" => self.audio += n,
                        "conceal" => self.conceal += n,
                        _ => self.fade += n,
                    }
                    if k != "fade" {
                        self.started = true;
                        self.silence_inside += self.pending_silence;
                        self.pending_silence = 0;
                    }
                }
            }
        }
    }

    fn get(&self, name: &str) -> Value {
        Value::from(match name {
            "audio" => self.audio,
            "conceal" => self.conceal,
            "fade" => self.fade,
            "silence" => self.silence,
            "silenceInside" => self.silence_inside,
            other => panic!("unknown total {other}"),
        })
    }
}

/// `want` is a value (equal) or `{"min": a, "max": b}` (either bound optional).
fn check_value(ctx: &str, got: &Value, want: &Value) {
    match want {
        Value::Object(range) if range.contains_key("min") || range.contains_key("max") => {
            let g = got
                .as_f64()
                .unwrap_or_else(|| panic!("{ctx}: {got} is not a number"));
            if let Some(min) = range.get("min").and_then(Value::as_f64) {
                assert!(g >= min, "{ctx}: {g} < min {min}");
            }
            if let Some(max) = range.get("max").and_then(Value::as_f64) {
                assert!(g <= max, "{ctx}: {g} > max {max}");
            }
        }
        _ => assert_eq!(got, want, "{ctx}"),
    }
}

fn options(o: Option<&Value>) -> JitterOptions {
    let get = |k: &str| o.and_then(|o| o.get(k)).and_then(Value::as_u64);
    let mut opts = JitterOptions::new(
        get("sampleRate").unwrap_or(48_000) as u32,
        get("channels").unwrap_or(1) as u32,
    );
    if let Some(v) = get("targetUs") {
        opts.target_us = v;
    }
    if let Some(v) = get("minTargetUs") {
        opts.min_target_us = v;
    }
    if let Some(v) = get("maxTargetUs") {
        opts.max_target_us = v;
    }
    if let Some(v) = get("fadeUs") {
        opts.fade_us = v;
    }
    if let Some(v) = get("maxGapUs") {
        opts.max_gap_us = v;
    }
    if let Some(v) = get("leadUs") {
        opts.lead_us = v;
    }
    opts
}

fn run(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let opts = options(spec.get("options"));
    let ch = opts.channels as usize;
    let rate = opts.sample_rate as u64;
    let mut r = Runner {
        name,
        buf: JitterBuffer::new(
            opts,
            ConstCodec {
                channels: ch,
                last: 0.0,
            },
        ),
        rate,
        ch,
        rendered: 0,
    };
    for (i, step) in spec["steps"].as_array().expect("steps").iter().enumerate() {
        if let Some(p) = step.get("push") {
            r.push(p);
        } else if let Some(p) = step.get("pushMany") {
            let frames = p["frames"].as_u64().expect("frames");
            for k in 0..p["count"].as_u64().expect("count") {
                let mut one = p.clone();
                one["ts"] = Value::from(p["ts"].as_u64().expect("ts") + k * r.frame_us(frames));
                r.push(&one);
            }
        } else if let Some(frames) = step.get("render") {
            let frames = frames.as_u64().expect("render frames") as usize;
            for _ in 0..step.get("times").and_then(Value::as_u64).unwrap_or(1) {
                let (out, spans) = r.render(frames);
                if let Some(want) = step.get("expect").and_then(Value::as_array) {
                    r.check_spans(i, &out, &spans, want);
                }
            }
        } else if let Some(s) = step.get("stream") {
            r.stream(i, s);
        } else if step.get("note").is_none() && step.get("expectStats").is_none() {
            panic!("{}: unknown step {i}: {step}", r.name);
        }
        if let Some(want) = step.get("expectStats").and_then(Value::as_object) {
            r.check_stats(i, want);
        }
    }
}

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/jitter")
}

#[test]
fn every_scenario_of_the_shared_specification_holds() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(spec_dir())
        .expect("spec/jitter")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "the specification has its scenarios: {files:?}"
    );
    let only = std::env::var("JITTER_SPEC").ok();
    for f in files {
        if only
            .as_ref()
            .is_some_and(|o| !f.to_string_lossy().contains(o.as_str()))
        {
            continue;
        }
        run(&f);
    }
}
