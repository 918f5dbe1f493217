// Loss concealment for the browser's jitter buffer. WebCodecs' AudioDecoder has no packet loss
// concealment API (no way to ask Opus for its PLC: a missing chunk is simply not decoded), so the
// worklet conceals on decoded PCM itself, the classic way (ITU-T G.711 Appendix I; NetEQ's Expand
// does a refined version): repeat the last pitch period of what was played, found by
// autocorrelation over 2.5..15 ms (or the last 10 ms when the audio is not periodic), with a gain
// fading to zero over 60 ms of continuous concealment, so a long gap decays to silence instead of
// buzzing. The Rust player uses libopus' own PLC instead (crates/moq-audio/src/listen/conceal.rs).

/** What the jitter buffer needs from a codec (the Rust `PacketDecoder`). */
export interface Codec<P> {
  /** Sample frames (per channel) the packet decodes to; null if it does not parse. */
  frames(packet: P): number | null;
  /** Decode the next packet into interleaved PCM. */
  decode(packet: P): Float32Array;
  /** About `frames` sample frames continuing the stream where a packet is missing. */
  conceal(frames: number): Float32Array;
  /** Start a new stream. */
  reset(): void;
}

/** History kept for concealment, µs. */
const HISTORY_US = 30_000;
const MIN_PERIOD_US = 2_500;
const MAX_PERIOD_US = 15_000;
/** Repeated when the audio is not periodic (normalised correlation below `VOICED`), µs. */
const UNVOICED_PERIOD_US = 10_000;
const VOICED = 0.5;
/** Continuous concealment fades to silence over this, µs. */
const FADE_US = 60_000;

/** Interleaved PCM in (already decoded by WebCodecs), with pitch-repetition concealment. */
export class PcmCodec implements Codec<Float32Array> {
  private readonly rate: number;
  private readonly ch: number;
  private history: Float32Array;
  private filled = 0;
  private template: Float32Array | null = null;
  private phase = 0;
  /** Frames concealed since the last decoded packet. */
  private run = 0;

  constructor(sampleRate: number, channels: number) {
    this.rate = sampleRate;
    this.ch = channels;
    this.history = new Float32Array(Math.ceil((HISTORY_US * sampleRate) / 1e6) * channels);
  }

  frames(pcm: Float32Array): number | null {
    return pcm.length / this.ch;
  }

  decode(pcm: Float32Array): Float32Array {
    this.remember(pcm);
    this.run = 0;
    this.template = null;
    return pcm;
  }

  conceal(frames: number): Float32Array {
    const ch = this.ch;
    const out = new Float32Array(frames * ch);
    if (this.run === 0 || !this.template) {
      this.template = this.lastPeriod();
      this.phase = 0;
    }
    const t = this.template;
    const period = t ? t.length / ch : 0;
    const fade = (FADE_US * this.rate) / 1e6;
    if (period > 0) {
      for (let f = 0; f < frames; f++) {
        const gain = Math.max(0, 1 - (this.run + f + 1) / fade);
        const src = ((this.phase + f) % period) * ch;
        for (let c = 0; c < ch; c++) out[f * ch + c] = t![src + c] * gain;
      }
    }
    this.phase += frames;
    this.run += frames;
    return out;
  }

  reset(): void {
    this.filled = 0;
    this.template = null;
    this.run = 0;
  }

  private remember(pcm: Float32Array): void {
    const h = this.history;
    if (pcm.length >= h.length) {
      h.set(pcm.subarray(pcm.length - h.length));
      this.filled = h.length;
      return;
    }
    const keep = Math.min(this.filled, h.length - pcm.length);
    h.copyWithin(0, this.filled - keep, this.filled);
    h.set(pcm, keep);
    this.filled = keep + pcm.length;
  }

  /** The last pitch period of the history (by autocorrelation of the channel mix), or null. */
  private lastPeriod(): Float32Array | null {
    const ch = this.ch;
    const n = this.filled / ch;
    const minLag = Math.round((MIN_PERIOD_US * this.rate) / 1e6);
    const maxLag = Math.min(Math.round((MAX_PERIOD_US * this.rate) / 1e6), n >> 1);
    if (n === 0) return null;
    const x = new Float32Array(n);
    for (let f = 0; f < n; f++) {
      let s = 0;
      for (let c = 0; c < ch; c++) s += this.history[f * ch + c];
      x[f] = s / ch;
    }
    let best = 0;
    let bestCorr = VOICED;
    const win = Math.min(maxLag, n - maxLag);
    for (let lag = minLag; lag <= maxLag && win > 0; lag++) {
      let xy = 0;
      let xx = 0;
      let yy = 0;
      for (let i = n - win; i < n; i++) {
        xy += x[i] * x[i - lag];
        xx += x[i] * x[i];
        yy += x[i - lag] * x[i - lag];
      }
      const corr = xx > 0 && yy > 0 ? xy / Math.sqrt(xx * yy) : 0;
      if (corr > bestCorr) {
        bestCorr = corr;
        best = lag;
      }
    }
    const period = best || Math.min(Math.round((UNVOICED_PERIOD_US * this.rate) / 1e6), n);
    return this.history.slice((n - period) * ch, n * ch);
  }
}
