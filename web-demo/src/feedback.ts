// Playout feedback: the listener's own broadcast `<bot broadcast>/listeners/<id>` with a track
// `playout.json`. Every ~50 ms while rendering (and once when rendering stops) one group with one
// JSON frame: {"generation":3,"ts":5120000,"playing":true,"renderTime":1763700000123.5}, where
// `ts` is the media timestamp (µs) just past the last sample the AudioWorklet rendered and
// `renderTime` the wall clock (ms since the Unix epoch) at which it was rendered.

import { Broadcast, Path } from "@moq/net";
import { FEEDBACK_TRACK } from "./catalog";
import type { Established } from "./connection";

export interface PlayoutReport {
  generation: number;
  ts: number;
  playing: boolean;
  renderTime: number;
}

/** A random listener id like `web-3f9k2a`. */
export function randomListenerId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `web-${Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("")}`;
}

export class Feedback {
  readonly path: string;
  sent = 0;
  last: PlayoutReport | null = null;
  private broadcast = new Broadcast.Producer();
  private track;
  private lastSentAt = -Infinity;
  private wasPlaying = false;

  constructor(
    connection: Established,
    botBroadcast: string,
    readonly listenerId: string,
    readonly intervalMs = 50,
  ) {
    this.path = `${botBroadcast}/listeners/${listenerId}`;
    this.track = this.broadcast.createTrack(FEEDBACK_TRACK);
    connection.publish(Path.from(this.path), this.broadcast);
  }

  /**
   * Offer the worklet's latest status; a report goes out at most every `intervalMs` while
   * playing, and once on each change of `playing`.
   */
  offer(report: PlayoutReport, now = performance.now()): boolean {
    const changed = report.playing !== this.wasPlaying;
    if (!changed && (!report.playing || now - this.lastSentAt < this.intervalMs)) return false;
    this.wasPlaying = report.playing;
    this.lastSentAt = now;
    this.track.writeJson(report);
    this.sent += 1;
    this.last = report;
    return true;
  }

  close(): void {
    this.broadcast.close();
  }
}
