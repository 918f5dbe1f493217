// The two frame containers a moq-audio `audio` track can use, and the generation arithmetic of
// wire format v1.
//
// - "legacy" (hang's default; wire format v1 and plain hang publishers): varint(timestamp µs) ‖
//   one Opus packet. No room for a generation: v1 puts it in the group sequence
//   (generation = sequence >> generationShift); a plain hang publisher is generation 0.
// - "loc" (wire format v2): see loc.ts; every frame carries its generation, markers an event.
//
// Why not `@moq/hang` (upstream's container/catalog code): @moq/hang 0.3.5, its newest release,
// depends on `@moq/net` ^0.2.8, while this page is pinned to @moq/net 0.3.4 (the line that
// negotiates moq-lite-05 with our Rust moq-net 0.3.18). Bundling it would pull a second,
// incompatible @moq/net whose Track/Group types are not ours, so its container consumer cannot
// read our subscription; and its LOC path (via @moq/loc) drops the generation and event
// properties we need. What we take from upstream instead: @moq/net's Varint here, and @moq/loc
// as the reference decoder our LOC tests cross-check against.

import { Varint } from "@moq/net";
import { type LocProperties, DEFAULT_PROPERTIES, decodeLoc } from "./loc";

export type ContainerKind = "legacy" | "loc";

/** One decoded frame of either container. */
export interface MediaFrame {
  /** Media timestamp, µs. */
  timestampUs: number;
  /** Generation carried by the frame itself (LOC with our property), else `undefined`. */
  generation: number | undefined;
  /** LOC event property (1 flush, 2 cancel) on marker frames, else `undefined`. */
  event: number | undefined;
  /** The Opus packet: a view into the input, not a copy. */
  payload: Uint8Array;
}

/** Split a legacy-container frame into its timestamp and payload. Throws on a truncated varint. */
export function decodeLegacy(frame: Uint8Array): MediaFrame {
  if (frame.byteLength === 0 || frame.byteLength < 1 << (frame[0] >> 6)) throw new RangeError("legacy: truncated timestamp");
  const [timestampUs, payload] = Varint.decode(frame);
  if (!Number.isSafeInteger(timestampUs)) throw new RangeError("legacy: timestamp beyond 2^53");
  return { timestampUs, generation: undefined, event: undefined, payload };
}

/** Build a legacy-container frame: varint(timestamp µs) ‖ payload. */
export function encodeLegacy(timestampUs: number, payload: Uint8Array): Uint8Array {
  const header = Varint.encode(Math.max(0, Math.round(timestampUs)));
  const out = new Uint8Array(header.byteLength + payload.byteLength);
  out.set(header, 0);
  out.set(payload, header.byteLength);
  return out;
}

/** Decode one frame of `kind`. Throws (RangeError / LocError) on a malformed frame. */
export function decodeFrame(kind: ContainerKind, frame: Uint8Array, ids: LocProperties = DEFAULT_PROPERTIES): MediaFrame {
  return kind === "loc" ? decodeLoc(frame, ids) : decodeLegacy(frame);
}

/** Wire format v1: the generation a group belongs to, sequence >> shift (division: sequences exceed 2^32). */
export function generationOf(sequence: number, shift: number | undefined): number {
  if (shift === undefined) return 0; // a plain hang publisher: everything is generation 0
  return Math.floor(sequence / 2 ** shift);
}
