// The bot's voice: MoQ groups → frames (LOC or legacy container) → WebCodecs AudioDecoder (Opus)
// → the "moq-player" AudioWorklet (worklet.ts), which holds the generation-aware jitter buffer.
//
// Where the generation comes from depends on the catalog (catalog.ts):
// - wire format v2 (`moqAudio.version >= 2`): the LOC generation property of every frame. A frame
//   with the event property is a marker: 1 = flush (cut over to its generation now), 2 = cancel
//   (cut, and the track ended "cancelled"); a marker's payload is never decoded.
// - v1: the group sequence >> generationShift; the first group of a newer generation (possibly
//   an empty marker group) is the flush signal.
// Either way generations never go back: a frame of an older generation than the newest one seen
// is dropped before decoding. The first frame of a newer generation resets the decoder and is
// announced to the worklet at once (before it is decoded), so the old audio is faded out while
// the new audio is still in the decoder.
//
// Sample rates: the worklet runs at its AudioContext's rate and is fed the decoder's output
// unchanged. When the decoder's rate is not the context's (Chromium decodes Opus at 48 kHz
// whatever the catalog says; other browsers may not), the player moves to its own AudioContext
// created with `sampleRate` = the decoder's rate, and Web Audio converts to the output device.

import type { Broadcast, Group, Track } from "@moq/net";
import type { AudioDescription } from "./catalog";
import { type MediaFrame, decodeFrame, generationOf } from "./container";
import { LocEvent } from "./loc";
import type { PlayerIn, PlayerOut } from "./worklet";
import workletUrl from "./worklet.ts?worker&url";

const loaded = new WeakMap<BaseAudioContext, Promise<void>>();

/** Load worklet.ts (the "moq-player" and "moq-capture" processors) into `ctx`, once per context. */
export function loadWorklet(ctx: BaseAudioContext): Promise<void> {
  let done = loaded.get(ctx);
  if (!done) {
    done = ctx.audioWorklet.addModule(workletUrl);
    loaded.set(ctx, done);
  }
  return done;
}

/**
 * Default MoQ subscription latencyMax for the audio track, ms: 0 = only the newest group, so a
 * listener that joins mid-utterance starts at the live edge instead of replaying the publisher's
 * retained groups (which the jitter buffer would then play late, all of them).
 */
export const DEFAULT_MAX_LATENCY_MS = 0;

/** Why `play()` returned: the track ended, the publisher cancelled it (v2 marker), or `stop()`. */
export type EndReason = "finished" | "cancelled" | "stopped";

export interface PlayerCounters {
  framesReceived: number;
  framesDecoded: number;
  /** Frames of an older generation dropped before decoding. */
  staleFramesDropped: number;
  /** Whole groups of an older generation skipped unread (v1: known from the sequence). */
  staleGroupsSkipped: number;
  /** v2 marker frames (flush or cancel) received; never decoded. */
  markers: number;
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
  /** Sample rate of the decoder's output (Chromium decodes Opus at 48 kHz whatever the config). */
  decodedRate?: (rate: number) => void;
  /** The player moved to a new AudioContext (running at the decoder's rate). */
  context?: (ctx: AudioContext) => void;
}

export class Player {
  /** The AudioContext the worklet renders in (status times are in its clock). */
  ctx: AudioContext;
  node: AudioWorkletNode;
  analyser: AnalyserNode;
  readonly counters: PlayerCounters = {
    framesReceived: 0,
    framesDecoded: 0,
    staleFramesDropped: 0,
    staleGroupsSkipped: 0,
    markers: 0,
    groupErrors: 0,
    decodeErrors: 0,
    malformedFrames: 0,
  };
  /** Newest generation seen on the network (-1: none yet). */
  generation = -1;

  private decoder: AudioDecoder | null = null;
  private decoderGeneration = -1;
  private reportedRate = 0;
  private desc: AudioDescription | null = null;
  /** Open groups and the generation of the last frame read from each (-1: none yet). */
  private openGroups = new Map<Group.Consumer, number>();
  private track: Track.Subscriber | null = null;
  private handlers: PlayerHandlers = {};
  private ended: EndReason | null = null;
  /** The config message of the current playback, replayed to a new worklet node. */
  private config: Extract<PlayerIn, { type: "config" }> | null = null;
  /** Messages held while the player moves to a context at another rate. */
  private held: Array<[PlayerIn, Transferable[]]> | null = null;
  /** The context the player created itself (closed when replaced); null while on the page's. */
  private ownContext: AudioContext | null = null;
  /** Set when moving to the decoder's rate failed: do not retry on every frame. */
  private moveFailed = false;

  private constructor(ctx: AudioContext) {
    this.ctx = ctx;
    [this.node, this.analyser] = this.createNode(ctx);
  }

  /** Load the worklet module (shared with the mic's capture processor) and create the node. */
  static async create(ctx: AudioContext): Promise<Player> {
    await loadWorklet(ctx);
    return new Player(ctx);
  }

  private createNode(ctx: AudioContext): [AudioWorkletNode, AnalyserNode] {
    const node = new AudioWorkletNode(ctx, "moq-player", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
    // No smoothing: the scope reads time-domain data, and peakHz() must not blend in an old spectrum.
    const analyser = new AnalyserNode(ctx, { fftSize: 1024, smoothingTimeConstant: 0 });
    node.connect(analyser).connect(ctx.destination);
    node.port.onmessage = (event: MessageEvent<PlayerOut>) => {
      if (node !== this.node) return; // a node being replaced
      const msg = event.data;
      if (msg.type === "status") this.handlers.status?.(msg);
      else if (msg.type === "started") this.handlers.started?.(msg);
      else if (msg.type === "flush") this.handlers.flush?.(msg);
    };
    return [node, analyser];
  }

  on(handlers: PlayerHandlers): void {
    this.handlers = handlers;
  }

  private post(msg: PlayerIn, transfer: Transferable[] = []): void {
    if (this.held) this.held.push([msg, transfer]);
    else this.node.port.postMessage(msg, transfer);
  }

  /**
   * Play the Opus track of `broadcast` described by `desc` until the track ends ("finished"), a
   * v2 cancel marker arrives ("cancelled") or `stop()` is called ("stopped"); rejects when the
   * subscription fails. What the worklet holds keeps playing after "finished" (a cancel has
   * already cut it to silence); `stop()` silences it at once.
   */
  async play(broadcast: Broadcast.Consumer, desc: AudioDescription, maxLatencyMs = DEFAULT_MAX_LATENCY_MS): Promise<EndReason> {
    this.desc = desc;
    this.generation = -1;
    this.ended = null;
    this.post({ type: "reset" });
    // The adaptive buffer keeps the publisher's lead (audio sent ahead) and adapts its target to
    // the network within its defaults (20..400 ms), as the Rust player does.
    this.config = { type: "config", channels: desc.channels, leadUs: (desc.leadMs ?? 0) * 1000 };
    this.post(this.config);
    const support = await AudioDecoder.isConfigSupported(this.decoderConfig());
    if (!support.supported) throw new Error(`this browser cannot decode Opus at ${desc.sampleRate} Hz`);

    // Newest-first delivery; groups further than `maxLatencyMs` behind the live edge are skipped.
    const track = broadcast.subscribe(desc.track, { latencyMax: maxLatencyMs });
    this.track = track;
    try {
      for (;;) {
        const group = await track.recvGroup();
        if (!group || this.ended) break;
        if (desc.generation.kind === "sequence") {
          const generation = generationOf(group.sequence, desc.generation.shift);
          if (generation < this.generation) {
            this.counters.staleGroupsSkipped += 1;
            group.close();
            continue;
          }
          // The first group of a newer generation is the flush signal, even before (or without)
          // any frame: the v1 publisher opens an empty marker group at every flush.
          if (generation > this.generation) this.newGeneration(generation);
          void this.readGroup(group, generation);
        } else {
          void this.readGroup(group, undefined);
        }
      }
      this.ended ??= "finished";
      return this.ended;
    } finally {
      track.close();
      if (this.track === track) this.track = null;
      await this.release(this.ended === "finished");
    }
  }

  /** Read one group; `sequenceGeneration` is the v1 group's generation, undefined for v2. */
  private async readGroup(group: Group.Consumer, sequenceGeneration: number | undefined): Promise<void> {
    this.openGroups.set(group, sequenceGeneration ?? -1);
    try {
      for (;;) {
        const frame = await group.readFrame();
        if (!frame || this.ended) return;
        this.counters.framesReceived += 1;
        let media: MediaFrame;
        try {
          media = decodeFrame(this.desc!.container, frame.payload, this.desc!.generation.kind === "frame" ? this.desc!.generation.properties : undefined);
        } catch {
          this.counters.malformedFrames += 1;
          continue;
        }
        const generation = sequenceGeneration ?? media.generation ?? 0;
        if (generation < this.generation) {
          // Flushed: this group belongs to an older generation, and so does the rest of it.
          this.counters.staleFramesDropped += 1;
          return;
        }
        this.openGroups.set(group, generation);
        if (generation > this.generation) this.newGeneration(generation);
        if (sequenceGeneration === undefined && media.event !== undefined) {
          // A v2 marker: the cut above is all it does; its payload ("no data" Opus) is not decoded.
          this.counters.markers += 1;
          if (media.event === LocEvent.Cancel) this.cancel();
          continue;
        }
        this.ensureDecoder().decode(new EncodedAudioChunk({ type: "key", timestamp: media.timestampUs, data: media.payload }));
      }
    } catch {
      // A flush at the publisher resets the old generation's unsent groups: expected.
      this.counters.groupErrors += 1;
    } finally {
      this.openGroups.delete(group);
      group.close();
    }
  }

  /** First frame of a newer generation: cut the worklet over now, restart the decoder. */
  private newGeneration(generation: number): void {
    const at = performance.now();
    this.generation = generation;
    this.post({ type: "generation", generation });
    // Readers of groups known to hold older generations stop at once (they are being reset).
    for (const [group, g] of this.openGroups) if (g >= 0 && g < generation) group.close();
    // Anything of the old generation still in the decoder is discarded, not played.
    if (this.decoder && this.decoder.state === "configured") {
      this.decoder.reset();
      this.decoder.configure(this.decoderConfig());
    }
    this.decoderGeneration = generation;
    this.handlers.generation?.(generation, at);
  }

  /** A v2 cancel marker: the cut already happened; stop reading, the track is over. */
  private cancel(): void {
    this.ended = "cancelled";
    this.track?.close(); // wakes play()'s loop, which returns "cancelled"
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
      const samples = new Float32Array(frames * ch);
      if (ch === 1) {
        data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
      } else {
        const plane = new Float32Array(frames);
        for (let c = 0; c < ch; c++) {
          data.copyTo(plane, { planeIndex: Math.min(c, data.numberOfChannels - 1), format: "f32-planar" });
          for (let f = 0; f < frames; f++) samples[f * ch + c] = plane[f];
        }
      }
      if (data.sampleRate !== this.reportedRate) {
        this.reportedRate = data.sampleRate;
        this.handlers.decodedRate?.(data.sampleRate);
      }
      if (data.sampleRate !== this.ctx.sampleRate && !this.held && !this.moveFailed) void this.moveToRate(data.sampleRate);
      this.post({ type: "pcm", generation, tsUs: data.timestamp, samples }, [samples.buffer]);
    } finally {
      data.close();
    }
  }

  /**
   * Render in a new AudioContext running at `rate` (the decoder's): Web Audio converts it to the
   * output device. Messages for the worklet are held until the new node exists, then the config
   * and the current generation are replayed to it ahead of them.
   */
  private async moveToRate(rate: number): Promise<void> {
    this.held = [];
    const old = { ctx: this.ctx, node: this.node, own: this.ownContext };
    const ctx = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
    try {
      await loadWorklet(ctx);
      if (old.ctx.state === "running") void ctx.resume(); // allowed: the page was clicked (Start)
      this.ctx = ctx;
      this.ownContext = ctx;
      [this.node, this.analyser] = this.createNode(ctx);
      const held = this.held;
      this.held = null;
      if (this.config) this.post(this.config);
      if (this.generation >= 0) this.post({ type: "generation", generation: this.generation });
      for (const [msg, transfer] of held) this.post(msg, transfer);
      old.node.disconnect();
      old.node.port.postMessage({ type: "reset" } satisfies PlayerIn);
      if (old.own) void old.own.close();
      this.handlers.context?.(ctx);
    } catch (e) {
      // Stay where we were; the audio held meanwhile is lost (counted as a decode error).
      console.error("moving the player to a new AudioContext failed:", e);
      this.held = null;
      this.moveFailed = true;
      this.counters.decodeErrors += 1;
      void ctx.close();
    }
  }

  /** Close the decoder (after it outputs what it holds when `drain`) and the open groups. */
  private async release(drain: boolean): Promise<void> {
    for (const group of this.openGroups.keys()) group.close();
    this.openGroups.clear();
    const decoder = this.decoder;
    this.decoder = null;
    if (!decoder || decoder.state === "closed") return;
    if (drain && decoder.state === "configured") await decoder.flush().catch(() => {});
    try {
      decoder.close(); // throws if it closed itself meanwhile (a decode error)
    } catch {
      // already closed
    }
  }

  /** Stop reading and decoding, and silence the worklet at once (no fade). */
  stop(): void {
    this.ended ??= "stopped";
    this.track?.close(); // ends play()'s loop
    this.track = null;
    void this.release(false);
    this.post({ type: "reset" });
  }
}
