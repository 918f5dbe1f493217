// LOC frames (Low Overhead Container, draft-ietf-moq-loc-04) as moq-audio's wire format v2 uses
// them on the `audio` track:
//
//   varint(properties_length) ‖ properties ‖ payload (one Opus packet)
//
// Properties are key-value pairs in ascending type order; each type is a QUIC varint *delta* from
// the previous type (the first one from 0). Even types carry one varint value, odd types a
// varint length and that many bytes. Types we do not know are skipped. We read and write:
//
// | type     | name       | value                                                          |
// |----------|------------|----------------------------------------------------------------|
// | 0x08     | timescale  | units per second of the timestamp (absent: µs; read only)       |
// | 0x10     | timestamp  | media time, µs (0x06 of draft-03 accepted on read, as upstream) |
// | 0x4D4100 | generation | moq-audio generation (absent: 0)                               |
// | 0x4D4102 | event      | on marker frames only: 1 = flush, 2 = cancel, 3 = finish       |
//
// `@moq/loc` (upstream's decoder, used in tests/loc.test.mjs as a cross-check) reads the same
// frames but returns only the timestamp and payload: it skips our two properties, so the page
// needs its own decoder for them. Varints are @moq/net's.

import { Varint } from "@moq/net";

export const TIMESCALE_PROPERTY = 0x08;
export const TIMESTAMP_PROPERTY = 0x10;
/** Draft-03's timestamp id (its IANA table), accepted on decode like @moq/loc and moq-loc do. */
export const TIMESTAMP_PROPERTY_DRAFT03 = 0x06;
/** moq-audio's generation property (5062912), the catalog's `moqAudio.generationProperty`. */
export const GENERATION_PROPERTY = 0x4d4100;
/** moq-audio's event property (5062914), the catalog's `moqAudio.eventProperty`. */
export const EVENT_PROPERTY = 0x4d4102;

/** Values of the event property. */
export const LocEvent = {
  /** Generation g starts here: drop older audio now. The payload is never decoded. */
  Flush: 1,
  /** The publisher cancelled: drop everything, the track ends. */
  Cancel: 2,
  /** The publisher finished: play out what is buffered, the track ends. (A v2 track that ends
   * without it did not end at the publisher: a relay went away.) */
  Finish: 3,
} as const;

/** Which property ids carry the generation and the event (from the catalog, else the defaults). */
export interface LocProperties {
  generation: number;
  event: number;
}

export const DEFAULT_PROPERTIES: LocProperties = { generation: GENERATION_PROPERTY, event: EVENT_PROPERTY };

export interface LocFrame {
  /** Media timestamp, µs. */
  timestampUs: number;
  /** The generation property; `undefined` when the frame has none (a plain LOC publisher: 0). */
  generation: number | undefined;
  /** The event property (1 flush, 2 cancel; other values are kept as they came), or `undefined`. */
  event: number | undefined;
  /** The codec payload: a view into the input, not a copy. */
  payload: Uint8Array;
}

/** Thrown for a frame that is not valid LOC (the caller counts it and moves on). */
export class LocError extends Error {
  override name = "LocError";
}

function varint(buf: Uint8Array, what: string): [number, Uint8Array] {
  if (buf.byteLength === 0) throw new LocError(`loc: ${what} missing`);
  const size = 1 << (buf[0] >> 6);
  if (buf.byteLength < size) throw new LocError(`loc: ${what} truncated`);
  const [value, rest] = Varint.decode(buf);
  if (!Number.isSafeInteger(value)) throw new LocError(`loc: ${what} beyond 2^53`);
  return [value, rest];
}

/**
 * Split one LOC frame into its properties and payload.
 *
 * @throws LocError when the property block is longer than the frame, a varint is truncated, a
 *   timescale is 0, or there is no timestamp property.
 */
export function decodeLoc(frame: Uint8Array, ids: LocProperties = DEFAULT_PROPERTIES): LocFrame {
  const [length, afterLength] = varint(frame, "properties length");
  if (length > afterLength.byteLength) throw new LocError("loc: properties length exceeds the frame");
  let props = afterLength.subarray(0, length);
  const payload = afterLength.subarray(length);

  let timestamp: number | undefined;
  let timescale: number | undefined;
  let generation: number | undefined;
  let event: number | undefined;
  let type = 0;
  while (props.byteLength > 0) {
    let delta: number;
    [delta, props] = varint(props, "property type");
    type += delta;
    if (type % 2 === 0) {
      let value: number;
      [value, props] = varint(props, `value of property ${type}`);
      if (type === TIMESTAMP_PROPERTY || type === TIMESTAMP_PROPERTY_DRAFT03) timestamp = value;
      else if (type === TIMESCALE_PROPERTY) {
        if (value === 0) throw new LocError("loc: timescale 0");
        timescale = value;
      } else if (type === ids.generation) generation = value;
      else if (type === ids.event) event = value;
    } else {
      let len: number;
      [len, props] = varint(props, `length of property ${type}`);
      if (len > props.byteLength) throw new LocError(`loc: property ${type} exceeds the property block`);
      props = props.subarray(len);
    }
  }
  if (timestamp === undefined) throw new LocError("loc: no timestamp property");
  const timestampUs = timescale === undefined ? timestamp : Math.round((timestamp * 1_000_000) / timescale);
  return { timestampUs, generation, event, payload };
}

/**
 * Build one LOC frame: timestamp (µs), then the generation, then the event if given, then the
 * payload. The generation is always written (0 included), as the Rust producer does.
 */
export function encodeLoc(
  frame: { timestampUs: number; generation: number; event?: number },
  payload: Uint8Array,
  ids: LocProperties = DEFAULT_PROPERTIES,
): Uint8Array {
  const pairs: Array<[number, number]> = [
    [TIMESTAMP_PROPERTY, Math.max(0, Math.round(frame.timestampUs))],
    [ids.generation, frame.generation],
  ];
  if (frame.event !== undefined) pairs.push([ids.event, frame.event]);
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const [type, value] of pairs) {
    if (type < prev || type % 2 !== 0) throw new RangeError(`loc: property ${type} out of order or not a varint type`);
    parts.push(Varint.encode(type - prev), Varint.encode(value));
    prev = type;
  }
  const propsLength = parts.reduce((n, p) => n + p.byteLength, 0);
  const head = Varint.encode(propsLength);
  const out = new Uint8Array(head.byteLength + propsLength + payload.byteLength);
  let at = 0;
  for (const part of [head, ...parts, payload]) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
