// The jitter buffer's shared specification: every scenario in spec/jitter/*.json (format:
// spec/jitter/README.md) against the browser's JitterBuffer (src/jitter.ts). The Rust JitterBuffer
// runs the same files (crates/moq-audio/tests/jitter_spec.rs); this runner mirrors that one.
// Packets are stand-ins for Opus: {value, frames} decoding to `frames` samples of `value`;
// concealment continues the last value (so it can be told from silence) and is not compared.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { importSrc } from "./bundle.mjs";

const { JitterBuffer } = await importSrc("jitter.ts");
const dir = join(dirname(fileURLToPath(import.meta.url)), "../../spec/jitter");

class ConstCodec {
  constructor(channels) {
    this.channels = channels;
    this.last = 0;
  }
  frames(p) {
    return p.frames;
  }
  decode(p) {
    this.last = Math.fround(p.value);
    return new Float32Array(p.frames * this.channels).fill(this.last);
  }
  conceal(frames) {
    return new Float32Array(frames * this.channels).fill(this.last);
  }
  reset() {
    this.last = 0;
  }
}

const kind = (r) => (r.generation === null ? "silence" : r.fade ? "fade" : r.concealed ? "conceal" : "audio");

/** Adjacent stretches of the same generation and kind, merged (the first one's timestamp). */
function merge(spans, ch) {
  const out = [];
  let at = 0;
  for (const r of spans) {
    const k = kind(r);
    const last = out[out.length - 1];
    if (last && last.generation === r.generation && last.kind === k) last.frames += r.frames;
    else out.push({ generation: r.generation, ts: r.tsUs, frames: r.frames, kind: k, at });
    at += r.frames * ch;
  }
  return out;
}

/** `want` is a value (equal) or {min, max} (either optional). */
function checkValue(ctx, got, want) {
  if (want !== null && typeof want === "object" && !Array.isArray(want) && ("min" in want || "max" in want)) {
    assert.equal(typeof got, "number", `${ctx}: ${got} is not a number`);
    if ("min" in want) assert.ok(got >= want.min, `${ctx}: ${got} < min ${want.min}`);
    if ("max" in want) assert.ok(got <= want.max, `${ctx}: ${got} > max ${want.max}`);
  } else {
    assert.deepEqual(got, want, ctx);
  }
}

class Totals {
  audio = 0;
  conceal = 0;
  fade = 0;
  silence = 0;
  silenceInside = 0;
  pending = 0;
  started = false;
  add(spans) {
    for (const s of spans) {
      if (s.kind === "silence") {
        this.silence += s.frames;
        if (this.started) this.pending += s.frames;
      } else {
        this[s.kind] += s.frames;
        if (s.kind !== "fade") {
          this.started = true;
          this.silenceInside += this.pending;
          this.pending = 0;
        }
      }
    }
  }
}

class Runner {
  constructor(name, opts) {
    this.name = name;
    this.rate = opts.sampleRate ?? 48_000;
    this.ch = opts.channels ?? 1;
    this.buf = new JitterBuffer({ ...opts, sampleRate: this.rate, channels: this.ch }, new ConstCodec(this.ch));
    this.rendered = 0;
  }
  clockUs() {
    return Math.floor((this.rendered * 1_000_000) / this.rate);
  }
  frameUs(frames) {
    return Math.floor((frames * 1_000_000) / this.rate);
  }
  push(p) {
    if (p.marker) this.buf.announce(p.gen);
    else this.buf.push(p.gen, p.ts, { value: p.value, frames: p.frames });
  }
  render(frames) {
    const out = new Float32Array(frames * this.ch).fill(9);
    const { spans } = this.buf.render(out);
    this.rendered += frames;
    return { out, spans: merge(spans, this.ch) };
  }
  checkSpans(step, out, got, want) {
    const ctx = `${this.name} step ${step}: got ${JSON.stringify(got)}`;
    assert.equal(got.length, want.length, `${ctx}: span count`);
    got.forEach((g, k) => {
      const w = want[k];
      assert.equal(g.kind, w.kind, `${ctx}: kind`);
      assert.equal(g.frames, w.frames, `${ctx}: frames`);
      if ("gen" in w) assert.equal(g.generation, w.gen, `${ctx}: generation`);
      if ("ts" in w) assert.equal(g.ts, w.ts, `${ctx}: ts`);
      const samples = out.subarray(g.at, g.at + g.frames * this.ch);
      if ("value" in w) {
        const v = Math.fround(w.value);
        assert.ok(samples.every((s) => Math.abs(s - v) < 1e-5), `${ctx}: value ${v}`);
      }
      if (w.monotonic === true) {
        for (let j = 1; j < samples.length; j++) {
          assert.ok(Math.abs(samples[j]) <= Math.abs(samples[j - 1]) + 1e-6, `${ctx}: a fade goes monotonically to zero`);
        }
        assert.ok(Math.abs(samples[samples.length - 1]) < 0.01, `${ctx}: faded to silence`);
      }
    });
  }
  stat(name) {
    const b = this.buf;
    switch (name) {
      case "bufferedUs":
        return b.bufferedUs();
      case "playing":
        return b.playing;
      case "generation":
        return b.generation;
      case "last":
        return b.last ? [b.last.generation, b.last.tsUs] : null;
      default:
        assert.ok(name in b.stats, `${this.name}: unknown stat ${name}`);
        return b.stats[name];
    }
  }
  checkStats(step, want) {
    for (const [name, w] of Object.entries(want)) checkValue(`${this.name} step ${step}: ${name}`, this.stat(name), w);
  }
  /** A paced publisher; see the Rust runner (`Runner::stream`) for the timing. */
  stream(step, s) {
    const frameUs = this.frameUs(s.frames);
    const quantum = s.quantum ?? 480;
    const lead = s.leadPackets ?? 0;
    const tail = s.tailUs ?? 200_000;
    const values = Array.isArray(s.value) ? s.value : [s.value];
    const missing = s.missing ?? [];
    const jitterMax = s.jitter?.maxUs ?? 0;
    let seed = (s.jitter?.seed ?? 0) >>> 0;
    const start = this.clockUs();
    const arrivals = [];
    let prev = 0;
    for (let k = 0; k < s.count; k++) {
      let at = start + Math.max(k - lead, 0) * frameUs;
      if (jitterMax > 0) {
        seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0;
        at += Math.floor(((seed >>> 8) * (jitterMax + 1)) / 2 ** 24);
      }
      if (s.delays && String(k) in s.delays) at += s.delays[String(k)];
      if (s.fifo) at = Math.max(at, prev);
      prev = at;
      if (!missing.includes(k)) arrivals.push([at, k]);
    }
    arrivals.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const last = arrivals.length ? arrivals[arrivals.length - 1][0] : start;
    const afterUs = "afterUs" in s ? start + s.afterUs : Infinity;
    const totals = new Totals();
    const after = new Totals();
    let next = 0;
    while (next < arrivals.length || this.clockUs() < last + tail) {
      while (next < arrivals.length && arrivals[next][0] <= this.clockUs()) {
        const k = arrivals[next][1];
        this.buf.push(s.gen, s.ts + k * frameUs, { value: values[k % values.length], frames: s.frames });
        next++;
      }
      const counted = this.clockUs() >= afterUs;
      const { spans } = this.render(quantum);
      totals.add(spans);
      if (counted) after.add(spans);
    }
    for (const [key, t] of [["expectTotals", totals], ["expectTotalsAfter", after]]) {
      for (const [name, w] of Object.entries(s[key] ?? {})) {
        checkValue(`${this.name} step ${step}: ${key}.${name} (${JSON.stringify(t)})`, t[name], w);
      }
    }
  }
}

const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

test("the specification has its scenarios", () => {
  assert.ok(files.length >= 10, files.join(", "));
});

for (const file of files) {
  const spec = JSON.parse(readFileSync(join(dir, file), "utf8"));
  test(`${file}: ${spec.description}`, () => {
    const r = new Runner(file, spec.options ?? {});
    spec.steps.forEach((step, i) => {
      if (step.push) r.push(step.push);
      else if (step.pushMany) {
        const p = step.pushMany;
        for (let k = 0; k < p.count; k++) r.push({ ...p, ts: p.ts + k * r.frameUs(p.frames) });
      } else if ("render" in step) {
        for (let t = 0; t < (step.times ?? 1); t++) {
          const { out, spans } = r.render(step.render);
          if (step.expect) r.checkSpans(i, out, spans, step.expect);
        }
      } else if (step.stream) r.stream(i, step.stream);
      else assert.ok("note" in step || "expectStats" in step, `${file}: unknown step ${i}`);
      if (step.expectStats) r.checkStats(i, step.expectStats);
    });
  });
}
