// hang's "legacy" frame container: a QUIC varint (media timestamp in µs) followed by the raw
// codec payload (here one Opus packet). Also the generation arithmetic of moq-audio's wire
// format: generation = group sequence >> generationShift.

/** Largest value a QUIC varint holds (2^62 - 1); JS numbers are exact only up to 2^53. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Encode `value` (a non-negative integer ≤ 2^53) as a QUIC variable-length integer. */
export function encodeVarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`);
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >> 8), value & 0xff);
  if (value < 0x4000_0000) {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value);
    out[0] |= 0x80;
    return out;
  }
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(value / 2 ** 32));
  view.setUint32(4, value >>> 0);
  out[0] |= 0xc0;
  return out;
}

/** Decode a QUIC varint at the start of `buf`: the value and how many bytes it took. */
export function decodeVarint(buf: Uint8Array): { value: number; size: number } {
  if (buf.length === 0) throw new RangeError("empty varint");
  const size = 1 << (buf[0] >> 6);
  if (buf.length < size) throw new RangeError(`truncated varint: need ${size} bytes, have ${buf.length}`);
  const view = new DataView(buf.buffer, buf.byteOffset, size);
  let value: number;
  switch (size) {
    case 1:
      value = buf[0] & 0x3f;
      break;
    case 2:
      value = view.getUint16(0) & 0x3fff;
      break;
    case 4:
      value = view.getUint32(0) & 0x3fff_ffff;
      break;
    default: {
      const high = view.getUint32(0) & 0x3fff_ffff;
      value = high * 2 ** 32 + view.getUint32(4);
      if (value > MAX_SAFE) throw new RangeError("varint beyond 2^53");
    }
  }
  return { value, size };
}

/** One frame of the legacy container. */
export interface LegacyFrame {
  /** Media timestamp, µs. */
  timestampUs: number;
  /** The codec payload (a view into the input, not a copy). */
  payload: Uint8Array;
}

/** Split a legacy-container frame into its timestamp and payload. */
export function decodeLegacy(frame: Uint8Array): LegacyFrame {
  const { value, size } = decodeVarint(frame);
  return { timestampUs: value, payload: frame.subarray(size) };
}

/** Build a legacy-container frame: varint(timestamp µs) ‖ payload. */
export function encodeLegacy(timestampUs: number, payload: Uint8Array): Uint8Array {
  const header = encodeVarint(Math.max(0, Math.round(timestampUs)));
  const out = new Uint8Array(header.length + payload.length);
  out.set(header, 0);
  out.set(payload, header.length);
  return out;
}

/** The generation a group belongs to: sequence >> shift (division: sequences exceed 2^32). */
export function generationOf(sequence: number, shift: number | undefined): number {
  if (shift === undefined) return 0; // a plain hang publisher: everything is generation 0
  return Math.floor(sequence / 2 ** shift);
}
