//! The hang catalog (`catalog.json`) describing a moq-audio broadcast.
//!
//! A standard hang catalog with one Opus audio rendition in the legacy container, plus a
//! `moqAudio` section that standard players ignore and moq-audio listeners read.

use serde::{Deserialize, Serialize};

use crate::generation::GENERATION_SHIFT;
use crate::{Error, Result};

/// Name of the catalog track (hang's default).
pub const CATALOG_TRACK: &str = "catalog.json";

/// Name of the Opus track in a moq-audio broadcast.
pub const AUDIO_TRACK: &str = "audio";

/// Version of the `moqAudio` catalog section this build writes.
pub const WIRE_VERSION: u32 = 1;

/// The `moqAudio` section of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MoqAudioSection {
    /// Wire version ([`WIRE_VERSION`]).
    pub version: u32,
    /// Group sequence = generation << `generation_shift` | index (see [`crate::generation`]).
    pub generation_shift: u32,
    /// Opus frame duration in ms.
    pub frame_ms: u32,
    /// The publisher's pacing lead in ms: how far ahead of playout it sends, so listeners can
    /// size their jitter buffer (a listener holds about lead + its target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_ms: Option<u32>,
}

/// Root extension carrying [`MoqAudioSection`], flattened into hang's catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ext {
    /// Absent in catalogs written by other hang publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moq_audio: Option<MoqAudioSection>,
}

/// Our catalog type.
pub type Catalog = hang::Catalog<Ext>;

/// What a listener needs to decode a moq-audio (or plain hang Opus) broadcast.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioDescription {
    /// Track carrying the Opus frames.
    pub track: String,
    /// Opus sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// Generation shift; `None` for a plain hang publisher (everything is generation 0).
    pub generation_shift: Option<u32>,
    /// The publisher's pacing lead in ms, if it declared one.
    pub lead_ms: Option<u32>,
}

/// Build the catalog for one Opus rendition.
pub fn build(sample_rate: u32, channels: u32, bitrate: Option<u32>, frame_ms: u32, lead_ms: u32) -> Catalog {
    let mut catalog = Catalog::default();
    let mut config = hang::catalog::AudioConfig::new(hang::catalog::AudioCodec::Opus, sample_rate, channels);
    config.bitrate = bitrate.map(u64::from);
    config.container = hang::catalog::Container::Legacy;
    catalog
        .audio
        .insert(AUDIO_TRACK, config)
        .expect("a fresh catalog has no renditions");
    catalog.ext.moq_audio = Some(MoqAudioSection {
        version: WIRE_VERSION,
        generation_shift: GENERATION_SHIFT,
        frame_ms,
        lead_ms: Some(lead_ms),
    });
    catalog
}

/// Pick the Opus rendition out of a catalog.
///
/// # Errors
/// [`Error::Wire`] when the catalog has no Opus audio rendition in the legacy container.
pub fn describe(catalog: &Catalog) -> Result<AudioDescription> {
    let (name, config) = catalog
        .audio
        .renditions
        .iter()
        .find(|(_, c)| {
            matches!(c.codec, hang::catalog::AudioCodec::Opus)
                && matches!(c.container, hang::catalog::Container::Legacy)
        })
        .ok_or_else(|| Error::Wire("the catalog has no Opus rendition in the legacy container".into()))?;
    Ok(AudioDescription {
        track: name.clone(),
        sample_rate: config.sample_rate,
        channels: config.channel_count,
        generation_shift: catalog.ext.moq_audio.as_ref().map(|m| m.generation_shift),
        lead_ms: catalog.ext.moq_audio.as_ref().and_then(|m| m.lead_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trips_through_json() {
        let catalog = build(24_000, 1, Some(32_000), 20, 60);
        let json = catalog.to_json().unwrap();
        assert!(json.contains("\"moqAudio\""), "{json}");
        assert!(json.contains("\"codec\":\"opus\""), "{json}");
        let parsed = Catalog::from_str(&json).unwrap();
        let desc = describe(&parsed).unwrap();
        assert_eq!(desc.track, AUDIO_TRACK);
        assert_eq!(desc.sample_rate, 24_000);
        assert_eq!(desc.generation_shift, Some(GENERATION_SHIFT));
        assert_eq!(desc.lead_ms, Some(60));
    }

    #[test]
    fn a_plain_hang_catalog_has_no_generation_shift() {
        let json = r#"{"audio":{"renditions":{"a":{"codec":"opus","sampleRate":48000,"numberOfChannels":2}}}}"#;
        let desc = describe(&Catalog::from_str(json).unwrap()).unwrap();
        assert_eq!(desc.generation_shift, None);
        assert_eq!(desc.channels, 2);
    }

    #[test]
    fn a_catalog_without_opus_is_a_wire_error() {
        let err = describe(&Catalog::default()).unwrap_err();
        assert!(err.to_string().contains("no Opus rendition"), "{err}");
    }
}
