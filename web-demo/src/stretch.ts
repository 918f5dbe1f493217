// Time-scaling of quiet audio: how the jitter buffer moves its delay without an audible jump. The
// same functions as moq-audio's Rust `listen/stretch.rs` (NetEQ's Accelerate / Preemptive Expand,
// their low-energy branch only): a decoded chunk below -40 dBFS RMS loses or gains up to half its
// length, joined with a 2.5 ms linear crossfade. Loud audio is never touched.

/** Below this RMS (-40 dBFS) a chunk is quiet: a pause or a breath, not a voice. */
export const QUIET_RMS = 0.01;
/** Length of the crossfade at a splice, µs. */
export const CROSSFADE_US = 2_500;

/** Whether `pcm` is quiet enough to stretch or shrink unheard. */
export function isQuiet(pcm: Float32Array): boolean {
  if (pcm.length === 0) return false;
  let energy = 0;
  for (let i = 0; i < pcm.length; i++) energy += pcm[i] * pcm[i];
  return Math.sqrt(energy / pcm.length) < QUIET_RMS;
}

/** out[at..] = a·(1 − w) + b·w with w rising over the frames (1/(n+1) .. n/(n+1)). */
function crossfade(out: Float32Array, at: number, a: Float32Array, b: Float32Array, ch: number): void {
  const n = a.length / ch;
  for (let i = 0; i < n; i++) {
    const w = Math.fround((i + 1) / (n + 1));
    for (let c = 0; c < ch; c++) out[at + i * ch + c] = a[i * ch + c] * (1 - w) + b[i * ch + c] * w;
  }
}

/** `pcm` with `remove` frames taken out of its middle (crossfade over `xf`); null if too short. */
export function shrink(pcm: Float32Array, ch: number, remove: number, xf: number): Float32Array | null {
  const n = pcm.length / ch;
  if (remove === 0 || remove + xf > n) return null;
  const m = Math.floor((n - remove - xf) / 2);
  const out = new Float32Array((n - remove) * ch);
  out.set(pcm.subarray(0, m * ch), 0);
  crossfade(out, m * ch, pcm.subarray(m * ch, (m + xf) * ch), pcm.subarray((m + remove) * ch, (m + remove + xf) * ch), ch);
  out.set(pcm.subarray((m + remove + xf) * ch), (m + xf) * ch);
  return out;
}

/** `pcm` with `insert` frames added in its middle (a stretch played twice); null if too short. */
export function grow(pcm: Float32Array, ch: number, insert: number, xf: number): Float32Array | null {
  const n = pcm.length / ch;
  if (insert === 0 || insert + xf > n) return null;
  const m = Math.floor((n - insert - xf) / 2);
  const out = new Float32Array((n + insert) * ch);
  out.set(pcm.subarray(0, (m + insert) * ch), 0);
  crossfade(out, (m + insert) * ch, pcm.subarray((m + insert) * ch, (m + insert + xf) * ch), pcm.subarray(m * ch, (m + xf) * ch), ch);
  out.set(pcm.subarray((m + xf) * ch), (m + insert + xf) * ch);
  return out;
}
