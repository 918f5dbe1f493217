// Unit tests of what the browser's jitter buffer adds to the shared specification (which
// tests/spec.test.mjs runs from spec/jitter/*.json): the worklet's events (`silentAt` when a cut's
// fade ends, `started` at a generation's first sample), the early notice of a generation before its
// audio is decoded (`announce`), `reset`, and the PCM concealment of conceal.ts (WebCodecs has no
// PLC). Run: npm test (node --test tests/).

import assert from "node:assert/strict";
import { test } from "node:test";
import { importSrc } from "./bundle.mjs";

const { JitterBuffer } = await importSrc("jitter.ts");
const { PcmCodec } = await importSrc("conceal.ts");

const RATE = 48_000;
const FRAME = 960; // 20 ms
const buf = (opts = {}) => new JitterBuffer({ sampleRate: RATE, channels: 1, ...opts }, new PcmCodec(RATE, 1));
const frame = (v) => new Float32Array(FRAME).fill(v);
const tone = (hz, from, n) => Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * (from + i)) / RATE));
function render(b, frames) {
  const out = new Float32Array(frames).fill(9);
  const result = b.render(out);
  return { out, result };
}
const rms = (a) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);

test("an early notice of a new generation cuts at once: the silence point is reported after the fade", () => {
  const b = buf();
  for (let k = 0; k < 10; k++) b.push(0, k * 20_000, frame(0.5));
  let r = render(b, 960);
  assert.deepEqual(r.result.started, { generation: 0, frame: 0 });
  b.announce(1); // its first frame arrived; not decoded yet
  r = render(b, 960);
  assert.equal(r.result.silentAt.frame, 240);
  assert.deepEqual({ from: r.result.silentAt.cut.from, to: r.result.silentAt.cut.to }, { from: 0, to: 1 });
  assert.equal(r.result.silentAt.cut.fadeFrames, 240);
  assert.equal(r.result.silentAt.cut.droppedFrames, 9 * 960 - 240);
  assert.ok(r.out.subarray(240).every((s) => s === 0));
  // The new generation starts like a stream, once its target (40 ms) is buffered.
  b.push(1, 500_000, frame(-0.25));
  r = render(b, 480);
  assert.equal(r.result.started, undefined);
  b.push(1, 520_000, frame(-0.25));
  r = render(b, 480);
  assert.deepEqual(r.result.started, { generation: 1, frame: 0 });
  assert.ok(r.out.every((s) => s === -0.25));
});

test("a cut by the new generation's audio itself: fade, then the new audio in the same quantum", () => {
  const b = buf();
  for (let k = 0; k < 10; k++) b.push(0, k * 20_000, frame(0.5));
  render(b, 960);
  b.push(1, 500_000, frame(-0.25));
  b.push(1, 520_000, frame(-0.25));
  const { out, result } = render(b, 960);
  assert.ok(Math.abs(out[239]) < 0.01);
  assert.ok(out.subarray(240).every((s) => s === -0.25), "new generation right after the fade");
  assert.equal(result.silentAt.frame, 240);
  assert.deepEqual(result.started, { generation: 1, frame: 240 });
});

test("a cut while nothing is audible is silent at once, and the fade never exceeds 10 ms", () => {
  const b = buf();
  b.push(0, 0, frame(0.5)); // below the target: not playing
  b.announce(1);
  assert.equal(render(b, 128).result.silentAt.frame, 0);
  const c = buf({ fadeUs: 50_000 });
  for (let k = 0; k < 10; k++) c.push(0, k * 20_000, frame(0.5));
  render(c, 960);
  c.announce(1);
  assert.equal(render(c, 1024).result.silentAt.frame, 480);
});

test("PCM concealment continues a voiced signal from its last pitch period, then fades to silence", () => {
  const codec = new PcmCodec(RATE, 1);
  codec.decode(tone(200, 0, 1440)); // 30 ms of a 200 Hz tone (a 5 ms period)
  const hidden = codec.conceal(960);
  const truth = tone(200, 1440, 960);
  let err = 0;
  for (let i = 0; i < 480; i++) err += (hidden[i] - truth[i]) ** 2;
  // The first 10 ms follow the true continuation closely (the fade has taken < 1/6 of the level).
  assert.ok(Math.sqrt(err / 480) < 0.1, `rms error ${Math.sqrt(err / 480)}`);
  assert.ok(rms(hidden) > 0.2, "not silence");
  const rest = codec.conceal(2880); // 60 ms more: faded out by 60 ms of concealment
  assert.ok(rest.subarray(1920).every((s) => s === 0));
  codec.decode(tone(200, 0, 960));
  assert.ok(rms(codec.conceal(480)) > 0.2, "a decoded packet restarts the concealment at full level");
});

test("a missing frame in the browser buffer is concealed, not silent", () => {
  const b = buf();
  b.push(0, 0, tone(200, 0, 960));
  b.push(0, 20_000, tone(200, 960, 960));
  b.push(0, 60_000, tone(200, 2880, 960));
  render(b, 1920);
  const { out, result } = render(b, 960);
  assert.ok(result.spans.some((s) => s.concealed && s.tsUs === 40_000));
  assert.ok(rms(out) > 0.2, `concealed, rms ${rms(out)}`);
  assert.equal(b.stats.concealedFrames, 960);
});

test("reset forgets everything", () => {
  const b = buf();
  b.push(0, 0, frame(0.5));
  b.push(0, 20_000, frame(0.5));
  render(b, 480);
  b.reset();
  assert.equal(b.generation, null);
  assert.equal(b.bufferedUs(), 0);
  assert.ok(render(b, 480).out.every((s) => s === 0));
  b.push(3, 0, frame(0.1)); // any generation starts afresh
  assert.equal(b.generation, 3);
});
