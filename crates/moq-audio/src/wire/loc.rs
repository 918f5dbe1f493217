//! Audio frames on the wire: the Low Overhead Container (LOC) with the generation in every frame.
//!
//! A frame is `varint(properties_length) ++ properties ++ opus_packet`, as defined by
//! [draft-ietf-moq-loc-04](https://www.ietf.org/archive/id/draft-ietf-moq-loc-04.html) and decoded
//! by upstream's `moq-loc` crate and `@moq/loc`. Properties are key-value pairs in ascending type
//! order with delta-encoded type ids (QUIC varints); an even type carries one varint value, an odd
//! type a length-prefixed byte string; decoders skip types they do not know. We write:
//!
//! | type | name | value |
//! |---|---|---|
//! | `0x10` | timestamp | µs on the publisher's media clock, never decreasing over the track |
//! | [`PROP_GENERATION`] | generation | the flush counter the frame belongs to |
//! | [`PROP_EVENT`] | event | only on marker frames: [`Event::Flush`] (1), [`Event::Cancel`] (2) or [`Event::Finish`] (3) |
//!
//! Why the generation rides in each frame and not in the group sequence (wire v1): stock hang
//! players follow a group only at sequence + 1, so a jump in the sequence stalled them and made
//! them drop the start of the new reply; and a marker alone can be overtaken or skipped.
//! With the generation in every frame, group sequences stay contiguous and a listener learns of
//! a flush from whichever frame of the new generation reaches it first. The README's "Wire
//! format" section has the whole picture.
//!
//! `moq-loc` (upstream) decodes our frames' timestamp and payload but drops unknown properties
//! and cannot write them, which is why the property block is built here; the tests check that
//! `moq-loc` reads what we write.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use moq_net::VarInt;

use crate::{Error, Result};

/// LOC property: the frame's timestamp (draft-ietf-moq-loc-04), in µs here.
pub const PROP_TIMESTAMP: u64 = 0x10;

/// LOC property (ours, even: a varint): the generation of the frame. `0x4D41` is "MA"; the id is
/// far above the draft's registered ones so it cannot collide with them.
pub const PROP_GENERATION: u64 = 0x4D_4100;

/// LOC property (ours, even: a varint): what a marker frame announces ([`Event`]).
pub const PROP_EVENT: u64 = 0x4D_4102;

/// What a marker frame announces. Marker frames carry no audio for our listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The publisher flushed: this generation starts here; drop older audio now.
    Flush,
    /// The publisher cancelled: drop everything; the track ends after this frame.
    Cancel,
    /// The publisher finished: play out what you have; the track ends after this frame. A
    /// track of a v2 publisher that ends *without* it did not end at the publisher (a relay
    /// went away, the publisher's session died).
    Finish,
}

impl Event {
    fn code(self) -> u64 {
        match self {
            Event::Flush => 1,
            Event::Cancel => 2,
            Event::Finish => 3,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(Event::Flush),
            2 => Some(Event::Cancel),
            3 => Some(Event::Finish),
            _ => None,
        }
    }
}

/// One audio frame: an Opus packet with its timestamp and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Media timestamp of the first sample, µs.
    pub timestamp_us: u64,
    /// Generation the frame belongs to (0 when the publisher did not say).
    pub generation: u64,
    /// Set on marker frames only.
    pub event: Option<Event>,
    /// The Opus packet. On a marker frame it is [`marker_payload`], which listeners that know
    /// our properties never decode.
    pub payload: Bytes,
}

impl Frame {
    /// A marker frame announcing `event` for `generation` at `timestamp_us`.
    pub fn marker(timestamp_us: u64, generation: u64, event: Event, channels: u32) -> Self {
        Self {
            timestamp_us,
            generation,
            event: Some(event),
            payload: marker_payload(channels),
        }
    }

    /// The property block with its length prefix.
    ///
    /// # Errors
    /// [`Error::Wire`] if a value does not fit a QUIC varint (2^62).
    pub fn header(&self) -> Result<Bytes> {
        let mut props = BytesMut::with_capacity(24);
        let mut previous = 0;
        let mut put = |kind: u64, value: u64| -> Result<()> {
            varint(kind - previous)?
                .encode_quic(&mut props)
                .map_err(wire)?;
            varint(value)?.encode_quic(&mut props).map_err(wire)?;
            previous = kind;
            Ok(())
        };
        put(PROP_TIMESTAMP, self.timestamp_us)?;
        put(PROP_GENERATION, self.generation)?;
        if let Some(event) = self.event {
            put(PROP_EVENT, event.code())?;
        }
        let mut out = BytesMut::with_capacity(props.len() + 2);
        varint(props.len() as u64)?
            .encode_quic(&mut out)
            .map_err(wire)?;
        out.put_slice(&props);
        Ok(out.freeze())
    }

    /// The whole frame as bytes.
    ///
    /// # Errors
    /// As [`Frame::header`].
    pub fn encode(&self) -> Result<Bytes> {
        let header = self.header()?;
        let mut out = BytesMut::with_capacity(header.len() + self.payload.len());
        out.put_slice(&header);
        out.put_slice(&self.payload);
        Ok(out.freeze())
    }

    /// Append the frame to `group` as one MoQ frame, header and payload written as separate
    /// chunks (no copy of the payload), with the MoQ frame timestamp set like hang does.
    ///
    /// # Errors
    /// [`Error::Wire`] for an unencodable value, [`Error::Moq`] if the group is closed.
    pub fn write_to(&self, group: &mut moq_net::group::Producer) -> Result<()> {
        let header = self.header()?;
        let info = moq_net::frame::Info {
            size: (header.len() + self.payload.len()) as u64,
            timestamp: moq_net::Timestamp::from_micros(self.timestamp_us)
                .map_err(|e| Error::Wire(e.to_string()))?,
        };
        let mut frame = group.create_frame(info)?;
        frame.write(header)?;
        frame.write(self.payload.clone())?;
        frame.finish()?;
        Ok(())
    }

    /// Parse a LOC frame. Unknown properties are skipped; a frame without our generation
    /// property (a plain LOC publisher) is generation 0.
    ///
    /// # Errors
    /// [`Error::Wire`] for a truncated or malformed property block, a missing timestamp, or an
    /// event code this version does not know.
    pub fn decode(mut buf: Bytes) -> Result<Self> {
        let length = read_varint(&mut buf)? as usize;
        if length > buf.remaining() {
            return Err(Error::Wire("LOC properties run past the frame".into()));
        }
        let mut props = buf.split_to(length);
        let (mut timestamp, mut generation, mut event) = (None, 0, None);
        let mut kind = 0u64;
        let mut first = true;
        while props.has_remaining() {
            let delta = read_varint(&mut props)?;
            kind = if first {
                delta
            } else {
                kind.checked_add(delta).ok_or_else(malformed)?
            };
            first = false;
            if kind.is_multiple_of(2) {
                let value = read_varint(&mut props)?;
                match kind {
                    PROP_TIMESTAMP => timestamp = Some(value),
                    PROP_GENERATION => generation = value,
                    PROP_EVENT => {
                        event = Some(Event::from_code(value).ok_or_else(|| {
                            Error::Wire(format!("unknown moq-audio event code {value}"))
                        })?)
                    }
                    _ => {}
                }
            } else {
                let len = read_varint(&mut props)? as usize;
                if len > props.remaining() {
                    return Err(malformed());
                }
                props.advance(len);
            }
        }
        Ok(Self {
            timestamp_us: timestamp
                .ok_or_else(|| Error::Wire("LOC frame without a timestamp".into()))?,
            generation,
            event,
            payload: buf,
        })
    }
}

/// The payload of a marker frame: a 1-byte Opus packet (RFC 6716 §3.1) whose TOC says "CELT,
/// narrowband, 2.5 ms, one frame" (config 16) and whose frame has zero bytes, which a decoder
/// treats as a lost frame (RFC 6716 §3.2.1). A stock player that ignores our properties decodes it
/// as 2.5 ms of concealment instead of choking on an empty payload.
pub fn marker_payload(channels: u32) -> Bytes {
    let stereo = if channels >= 2 { 0x04 } else { 0x00 };
    Bytes::from(vec![(16 << 3) | stereo])
}

fn varint(value: u64) -> Result<VarInt> {
    VarInt::from_u64(value)
        .ok_or_else(|| Error::Wire(format!("{value} does not fit a QUIC varint")))
}

fn read_varint(buf: &mut Bytes) -> Result<u64> {
    Ok(VarInt::decode_quic(buf)
        .map_err(|_| malformed())?
        .into_inner())
}

fn wire(e: impl std::fmt::Display) -> Error {
    Error::Wire(e.to_string())
}

fn malformed() -> Error {
    Error::Wire("malformed LOC properties".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(generation: u64, event: Option<Event>) -> Frame {
        Frame {
            timestamp_us: 1_000_000,
            generation,
            event,
            payload: Bytes::from_static(&[0xAA, 0xBB]),
        }
    }

    #[test]
    fn a_frame_round_trips() {
        for f in [
            frame(0, None),
            frame(3, None),
            frame(1 << 40, Some(Event::Flush)),
            frame(7, Some(Event::Cancel)),
            frame(7, Some(Event::Finish)),
        ] {
            assert_eq!(Frame::decode(f.encode().unwrap()).unwrap(), f);
        }
    }

    #[test]
    fn the_bytes_are_the_ones_the_web_page_expects() {
        // properties: 0x10 -> 1 000 000 (4-byte varint), +0x4D40F0 -> 3 (4-byte type, 1-byte value)
        let bytes = frame(3, None).encode().unwrap();
        assert_eq!(
            bytes.as_ref(),
            &[0x0A, 0x10, 0x80, 0x0F, 0x42, 0x40, 0x80, 0x4D, 0x40, 0xF0, 0x03, 0xAA, 0xBB]
        );
        let marker = Frame::marker(1_000_000, 4, Event::Flush, 1)
            .encode()
            .unwrap();
        assert_eq!(
            marker.as_ref(),
            &[0x0C, 0x10, 0x80, 0x0F, 0x42, 0x40, 0x80, 0x4D, 0x40, 0xF0, 0x04, 0x02, 0x01, 0x80]
        );
    }

    #[test]
    fn upstream_moq_loc_reads_our_timestamp_and_payload() {
        let f = frame(9, None);
        let theirs = moq_loc::decode(f.encode().unwrap()).unwrap();
        assert_eq!(theirs.timestamp, 1_000_000);
        assert_eq!(theirs.payload, f.payload);
        let marker = Frame::marker(2_000, 10, Event::Flush, 2);
        let theirs = moq_loc::decode(marker.encode().unwrap()).unwrap();
        assert_eq!(theirs.payload.as_ref(), &[0x84]);
    }

    #[test]
    fn a_plain_loc_frame_is_generation_zero_and_unknown_properties_are_skipped() {
        // Upstream's encoder: timestamp only.
        let plain = moq_loc::encode(42, b"opus").unwrap();
        let f = Frame::decode(plain).unwrap();
        assert_eq!((f.timestamp_us, f.generation, f.event), (42, 0, None));
        // An odd (bytes) property we don't know, between ours.
        let mut props = BytesMut::new();
        // timestamp 5, then type 0x10 + 0x0D = 0x1D (odd: 2 bytes follow).
        for v in [0x10u64, 5, 0x0D, 2] {
            VarInt::from_u64(v)
                .unwrap()
                .encode_quic(&mut props)
                .unwrap();
        }
        props.put_slice(b"xy");
        let mut buf = BytesMut::new();
        VarInt::from_u64(props.len() as u64)
            .unwrap()
            .encode_quic(&mut buf)
            .unwrap();
        buf.put_slice(&props);
        buf.put_slice(b"p");
        let f = Frame::decode(buf.freeze()).unwrap();
        assert_eq!((f.timestamp_us, f.payload.as_ref()), (5, &b"p"[..]));
    }

    #[test]
    fn malformed_frames_are_wire_errors() {
        assert!(
            Frame::decode(Bytes::from_static(&[0x05, 0x10])).is_err(),
            "truncated properties"
        );
        assert!(
            Frame::decode(Bytes::from_static(&[0x00, 0xAA])).is_err(),
            "no timestamp"
        );
        let mut bad_event = frame(1, Some(Event::Flush)).encode().unwrap().to_vec();
        bad_event[12] = 0x09; // event code 9
        assert!(
            Frame::decode(Bytes::from(bad_event)).is_err(),
            "unknown event"
        );
    }

    #[test]
    fn the_marker_payload_is_a_valid_opus_packet_that_decodes_as_concealment() {
        let mut decoder = crate::codec::opus::Decoder::new(48_000, 1).unwrap();
        let pcm = decoder.decode(&marker_payload(1)).unwrap();
        assert_eq!(pcm.len(), 120, "2.5 ms at 48 kHz");
    }
}
