// Unit tests of the worklet's jitter buffer (src/jitter.ts), the same cases as the Rust
// `jitter.rs` tests. Run: node --test web-demo/tests/   (or `npm test` in web-demo/).
// src/jitter.ts is bundled in memory with esbuild (a Vite dependency); no browser needed.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const src = join(dirname(fileURLToPath(import.meta.url)), "../src/jitter.ts");
const bundled = await build({ entryPoints: [src], bundle: true, format: "esm", write: false, target: "es2022" });
const { JitterBuffer } = await import(`data:text/javascript;base64,${Buffer.from(bundled.outputFiles[0].text).toString("base64")}`);

const RATE = 48_000;
const FRAME = 960; // 20 ms
const buf = () => new JitterBuffer({ sampleRate: RATE, channels: 1 });
const frame = (v) => new Float32Array(FRAME).fill(v);
function render(b, frames) {
  const out = new Float32Array(frames).fill(9);
  const result = b.render(out);
  return { out, result };
}
const approx = (a, b) => Math.abs(a - b) < 1e-6;

test("waits for the 40 ms target, then plays in order", () => {
  const b = buf();
  b.push(0, 0, frame(0.1));
  let { out } = render(b, 480);
  assert.ok(out.every((s) => s === 0), "silent below the target");
  b.push(0, 20_000, frame(0.2));
  const r = render(b, 1920);
  assert.ok(r.out.subarray(0, 960).every((s) => approx(s, 0.1)));
  assert.ok(r.out.subarray(960).every((s) => approx(s, 0.2)));
  assert.deepEqual(r.result.started, { generation: 0, frame: 0 });
  assert.deepEqual(b.last, { generation: 0, tsUs: 40_000 });
});

test("a newer generation fades the old one within 5 ms and plays at once", () => {
  const b = buf();
  for (let k = 0; k < 10; k++) b.push(0, k * 20_000, frame(0.5));
  render(b, 960);
  // Early notice (first frame seen on the network, not decoded yet): the cut happens now.
  b.announce(1);
  const fade = 240; // 5 ms at 48 kHz
  let r = render(b, 960);
  assert.ok(r.out.subarray(0, fade).every((s, i, a) => i === 0 || Math.abs(s) <= Math.abs(a[i - 1])), "monotonic fade");
  assert.ok(Math.abs(r.out[fade - 1]) < 0.01, "faded to silence");
  assert.ok(r.out.subarray(fade).every((s) => s === 0), "silence until the new audio is decoded");
  assert.equal(r.result.silentAt.frame, fade);
  assert.equal(r.result.silentAt.cut.from, 0);
  assert.equal(r.result.silentAt.cut.to, 1);
  assert.equal(b.stats.flushedFrames, 9 * 960 - 240);
  // The new generation's first (single) frame plays at once: no waiting for the target.
  b.push(1, 500_000, frame(-0.25));
  r = render(b, 480);
  assert.ok(r.out.every((s) => s === -0.25));
  assert.deepEqual(r.result.started, { generation: 1, frame: 0 });
  // Old audio arriving late is dropped.
  b.push(0, 200_000, frame(0.5));
  assert.equal(b.stats.staleFrames, 1);
  r = render(b, 240);
  assert.ok(r.out.every((s) => s === -0.25));
});

test("a cut by the new generation's decoded frame itself: fade, then the new audio in the same quantum", () => {
  const b = buf();
  for (let k = 0; k < 10; k++) b.push(0, k * 20_000, frame(0.5));
  render(b, 960);
  b.push(1, 500_000, frame(-0.25));
  const { out, result } = render(b, 960);
  assert.ok(Math.abs(out[239]) < 0.01);
  assert.ok(out.subarray(240).every((s) => s === -0.25), "new generation right after the fade");
  assert.equal(result.silentAt.frame, 240);
  assert.equal(result.started.frame, 240);
});

test("a cut while nothing is audible is silent at once", () => {
  const b = buf();
  b.push(0, 0, frame(0.5)); // below the target: not playing
  b.announce(1);
  const { result } = render(b, 128);
  assert.equal(result.silentAt.frame, 0);
  assert.equal(result.silentAt.cut.fadeFrames, 0);
});

test("frames arriving out of order play in timestamp order", () => {
  // Two groups read concurrently: group 1's frames come in before group 0's last ones.
  const b = buf();
  for (const [k, v] of [[5, 0.6], [6, 0.7], [0, 0.1], [1, 0.2], [2, 0.3], [3, 0.4], [4, 0.5]]) {
    b.push(0, k * 20_000, frame(v));
  }
  const r = render(b, 7 * 960);
  [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7].forEach((v, k) => {
    assert.ok(r.out.subarray(k * 960, (k + 1) * 960).every((s) => approx(s, v)), `frame ${k}`);
  });
  assert.equal(b.stats.lateFrames, 0);
  assert.equal(b.last.tsUs, 140_000);
});

test("a missing frame is silence and fills in if it comes in time; big jumps are closed", () => {
  const b = buf();
  b.push(0, 0, frame(0.1));
  b.push(0, 40_000, frame(0.3)); // 20 000 has not come (yet)
  let r = render(b, 960);
  assert.ok(r.out.every((s) => approx(s, 0.1)));
  b.push(0, 20_000, frame(0.2)); // arrives before its turn
  r = render(b, 1920);
  assert.ok(r.out.subarray(0, 960).every((s) => approx(s, 0.2)) && r.out.subarray(960).every((s) => approx(s, 0.3)));
  b.push(0, 80_000, frame(0.5)); // 60 000 never comes: silence in its place
  r = render(b, 1920);
  assert.ok(r.out.subarray(0, 960).every((s) => s === 0) && r.out.subarray(960).every((s) => approx(s, 0.5)));
  b.push(0, 5_000_000, frame(0.3)); // the publisher ran dry and restarted its timeline
  b.push(0, 5_020_000, frame(0.3));
  r = render(b, 960);
  assert.ok(r.out.every((s) => approx(s, 0.3)));
});

test("underrun renders silence and restarts at the target", () => {
  const b = buf();
  b.push(0, 0, frame(0.1));
  b.push(0, 20_000, frame(0.1));
  let r = render(b, 2400);
  assert.ok(r.out.subarray(1920).every((s) => s === 0));
  assert.equal(b.stats.underruns, 1);
  b.push(0, 1_000_000, frame(0.4));
  r = render(b, 480);
  assert.ok(r.out.every((s) => s === 0), "one frame is below the target");
  b.push(0, 1_020_000, frame(0.4));
  r = render(b, 960);
  assert.ok(r.out.every((s) => approx(s, 0.4)));
});

test("an overfull buffer skips back to the target", () => {
  const b = buf();
  b.push(0, 0, frame(0.1));
  b.push(0, 20_000, frame(0.1));
  render(b, 480); // playing
  for (let k = 2; k < 20; k++) b.push(0, k * 20_000, frame(0.2));
  assert.equal(b.bufferedUs(), 40_000 + 4 * 20_000);
  assert.equal(b.stats.skippedFrames, 270 * 48);
});

test("the fade never exceeds 10 ms", () => {
  const b = new JitterBuffer({ sampleRate: RATE, channels: 1, fadeUs: 50_000 });
  for (let k = 0; k < 10; k++) b.push(0, k * 20_000, frame(0.5));
  render(b, 960);
  b.announce(1);
  const { result } = render(b, 1024);
  assert.equal(result.silentAt.frame, 480);
});
