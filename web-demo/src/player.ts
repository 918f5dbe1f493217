// The bot's voice: MoQ groups → legacy frames → WebCodecs AudioDecoder (Opus) → the
// "moq-player" AudioWorklet (worklet.ts), which holds the generation-aware jitter buffer.
//
// Generations never go back: a group or frame of a generation older than the newest one seen
// is dropped before decoding. The first frame of a newer generation resets the decoder and is
// announced to the worklet at once (before it is decoded), so the old audio is faded out while
// the new audio is still in the decoder.

import type { Broadcast, Group, Track } from "@moq/net";
import type { AudioDescription } from "./catalog";
import { decodeLegacy, generationOf } from "./container";
import type { PlayerIn, PlayerOut } from "./worklet";
import workletUrl from "./worklet.ts?worker&url";

/**
 * Default MoQ subscription latencyMax for the audio track, ms: 0 = only the newest group, so a
 * listener that joins mid-utterance starts at the live edge instead of replaying the publisher's
 * retained groups (which the jitter buffer would then play late, all of them).
 */
export const DEFAULT_MAX_LATENCY_MS = 0;

export interface PlayerCounters {
  framesReceived: number;
  framesDecoded: number;
  /** Frames of an older generation dropped before decoding. */
  staleFramesDropped: number;
  /** Whole groups of an older generation skipped unread. */
  staleGroupsSkipped: number;
  /** Groups that ended in an error (e.g. reset by a flush at the publisher). */
  groupErrors: number;
  decodeErrors: number;
  malformedFrames: number;
}

export interface PlayerHandlers {
  status?: (s: Extract<PlayerOut, { type: "status" }>) => void;
  started?: (e: Extract<PlayerOut, { type: "started" }>) => void;
  flush?: (e: Extract<PlayerOut, { type: "flush" }>) => void;
  /** First frame of a newer generation arrived from the network, at `performance.now()` = `at`. */
  generation?: (generation: number, at: number) => void;
  /** Sample rate of the decoder's output (Chrome may decode Opus at 48 kHz whatever the config). */
  decodedRate?: (rate: number) => void;
}

/** Streaming linear-interpolation resampler for when the decoder's rate is not the context's. */
class LinearResampler {
  private prev: Float32Array | null = null;
  private t = 0;
  constructor(
    readonly inRate: number,
    readonly outRate: number,
    readonly channels: number,
  ) {}

  process(input: Float32Array): Float32Array<ArrayBuffer> {
    const ch = this.channels;
    const frames = input.length / ch;
    const step = this.inRate / this.outRate;
    const out: number[] = [];
    while (this.t < frames - 1) {
      const i0 = Math.floor(this.t);
      const frac = this.t - i0;
      for (let c = 0; c < ch; c++) {
        const s0 = i0 < 0 ? (this.prev?.[c] ?? 0) : input[i0 * ch + c];
        const s1 = input[(i0 + 1) * ch + c];
        out.push(s0 + (s1 - s0) * frac);
      }
      this.t += step;
    }
    this.t -= frames;
    this.prev = input.slice((frames - 1) * ch, frames * ch);
    return Float32Array.from(out);
  }
}

export class Player {
  readonly node: AudioWorkletNode;
  readonly analyser: AnalyserNode;
  readonly counters: PlayerCounters = {
    framesReceived: 0,
    framesDecoded: 0,
    staleFramesDropped: 0,
    staleGroupsSkipped: 0,
    groupErrors: 0,
    decodeErrors: 0,
    malformedFrames: 0,
  };
  /** Newest generation seen on the network (-1: none yet). */
  generation = -1;

  private decoder: AudioDecoder | null = null;
  private decoderGeneration = -1;
  private resampler: LinearResampler | null = null;
  private reportedRate = 0;
  private desc: AudioDescription | null = null;
  private openGroups = new Map<Group.Consumer, number>();
  private track: Track.Subscriber | null = null;
  private handlers: PlayerHandlers = {};

  private constructor(readonly ctx: AudioContext) {
    this.node = new AudioWorkletNode(ctx, "moq-player", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
    this.analyser = new AnalyserNode(ctx, { fftSize: 1024 });
    this.node.connect(this.analyser).connect(ctx.destination);
    this.node.port.onmessage = (event: MessageEvent<PlayerOut>) => {
      const msg = event.data;
      if (msg.type === "status") this.handlers.status?.(msg);
      else if (msg.type === "started") this.handlers.started?.(msg);
      else if (msg.type === "flush") this.handlers.flush?.(msg);
    };
  }

  /** Load the worklet module (shared with the mic's capture processor) and create the node. */
  static async create(ctx: AudioContext): Promise<Player> {
    await ctx.audioWorklet.addModule(workletUrl);
    return new Player(ctx);
  }

  on(handlers: PlayerHandlers): void {
    this.handlers = handlers;
  }

  private post(msg: PlayerIn, transfer: Transferable[] = []): void {
    this.node.port.postMessage(msg, transfer);
  }

  /**
   * Play the Opus track of `broadcast` described by `desc` until the track ends (resolves) or
   * fails (rejects). Call `stop()` to end it early.
   */
  async play(broadcast: Broadcast.Consumer, desc: AudioDescription, maxLatencyMs = DEFAULT_MAX_LATENCY_MS): Promise<void> {
    this.desc = desc;
    this.generation = -1;
    this.post({ type: "reset" });
    // Skip back only when well past what the publisher's lead keeps buffered (as the Rust player).
    const maxUs = Math.max(300_000, ((desc.leadMs ?? 0) + 40 + 100) * 1000);
    this.post({ type: "config", channels: desc.channels, maxUs });
    const support = await AudioDecoder.isConfigSupported(this.decoderConfig());
    if (!support.supported) throw new Error(`this browser cannot decode Opus at ${desc.sampleRate} Hz`);

    // Newest-first delivery; groups further than `maxLatencyMs` behind the live edge are skipped.
    const track = broadcast.subscribe(desc.track, { latencyMax: maxLatencyMs });
    this.track = track;
    try {
      for (;;) {
        const group = await track.recvGroup();
        if (!group) return;
        const generation = generationOf(group.sequence, desc.generationShift);
        if (generation < this.generation) {
          this.counters.staleGroupsSkipped += 1;
          group.close();
          continue;
        }
        // The first group of a newer generation is the flush signal, even before (or without)
        // any frame: the publisher opens an empty marker group at every flush.
        if (generation > this.generation) this.newGeneration(generation);
        void this.readGroup(group, generation);
      }
    } finally {
      track.close();
      this.stop();
    }
  }

  private async readGroup(group: Group.Consumer, generation: number): Promise<void> {
    this.openGroups.set(group, generation);
    try {
      for (;;) {
        const frame = await group.readFrame();
        if (!frame) return;
        if (generation < this.generation) {
          // Flushed while we were reading: the rest of this group is stale.
          this.counters.staleFramesDropped += 1;
          return;
        }
        this.onFrame(generation, frame.payload);
      }
    } catch {
      // A flush at the publisher resets the old generation's unsent groups: expected.
      this.counters.groupErrors += 1;
    } finally {
      this.openGroups.delete(group);
      group.close();
    }
  }

  private onFrame(generation: number, payload: Uint8Array): void {
    this.counters.framesReceived += 1;
    if (generation < this.generation) {
      this.counters.staleFramesDropped += 1;
      return;
    }
    if (generation > this.generation) this.newGeneration(generation);
    let frame;
    try {
      frame = decodeLegacy(payload);
    } catch {
      this.counters.malformedFrames += 1;
      return;
    }
    const decoder = this.ensureDecoder();
    decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: frame.timestampUs, data: frame.payload }));
  }

  /** First frame of a newer generation: cut the worklet over now, restart the decoder. */
  private newGeneration(generation: number): void {
    const at = performance.now();
    this.generation = generation;
    this.post({ type: "generation", generation });
    // Readers of older generations stop at once (their groups are being reset anyway).
    for (const [group, g] of this.openGroups) if (g < generation) group.close();
    // Anything of the old generation still in the decoder is discarded, not played.
    if (this.decoder && this.decoder.state === "configured") {
      this.decoder.reset();
      this.decoder.configure(this.decoderConfig());
    }
    this.decoderGeneration = generation;
    this.resampler = null;
    this.handlers.generation?.(generation, at);
  }

  private decoderConfig(): AudioDecoderConfig {
    const desc = this.desc!;
    return { codec: "opus", sampleRate: desc.sampleRate, numberOfChannels: desc.channels };
  }

  private ensureDecoder(): AudioDecoder {
    if (this.decoder && this.decoder.state === "configured") return this.decoder;
    this.decoder = new AudioDecoder({
      output: (data) => this.onDecoded(data),
      error: () => {
        this.counters.decodeErrors += 1;
      },
    });
    this.decoder.configure(this.decoderConfig());
    return this.decoder;
  }

  private onDecoded(data: AudioData): void {
    const generation = this.decoderGeneration;
    try {
      if (generation < this.generation) return;
      this.counters.framesDecoded += 1;
      const ch = this.desc!.channels;
      const frames = data.numberOfFrames;
      const interleaved = new Float32Array(frames * ch);
      const plane = new Float32Array(frames);
      for (let c = 0; c < ch; c++) {
        data.copyTo(plane, { planeIndex: Math.min(c, data.numberOfChannels - 1), format: "f32-planar" });
        for (let f = 0; f < frames; f++) interleaved[f * ch + c] = plane[f];
      }
      if (data.sampleRate !== this.reportedRate) {
        this.reportedRate = data.sampleRate;
        this.handlers.decodedRate?.(data.sampleRate);
      }
      let samples = interleaved;
      if (data.sampleRate !== this.ctx.sampleRate) {
        if (!this.resampler || this.resampler.inRate !== data.sampleRate) {
          this.resampler = new LinearResampler(data.sampleRate, this.ctx.sampleRate, ch);
        }
        samples = this.resampler.process(interleaved);
      }
      this.post({ type: "pcm", generation, tsUs: data.timestamp, samples }, [samples.buffer]);
    } finally {
      data.close();
    }
  }

  /** Stop reading and decoding; the worklet fades nothing and goes silent. */
  stop(): void {
    this.track?.close(); // ends play()'s loop
    this.track = null;
    for (const group of this.openGroups.keys()) group.close();
    this.openGroups.clear();
    if (this.decoder && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
    this.post({ type: "reset" });
  }
}
