//! The hang catalog (`catalog.json`) describing a moq-audio broadcast.
//!
//! A standard hang catalog with one Opus audio rendition in the LOC container (see
//! [`crate::wire::loc`]), plus a `moqAudio` section that standard players ignore and moq-audio
//! listeners read. Listeners also accept plain hang publishers: an Opus rendition in the legacy or
//! LOC container without the section (everything is generation 0 then).

use serde::{Deserialize, Serialize};

use crate::wire::loc::{PROP_EVENT, PROP_GENERATION};
use crate::{Error, Result};

/// Name of the catalog track (hang's default).
pub const CATALOG_TRACK: &str = "catalog.json";

/// Name of the Opus track in a moq-audio broadcast.
pub const AUDIO_TRACK: &str = "audio";

/// Version of the `moqAudio` catalog section this build writes. Version 1 carried the
/// generation in the group sequence (`generationShift`); version 2 carries it in a LOC property
/// of every frame, with contiguous group sequences.
pub const WIRE_VERSION: u32 = 2;

/// The `moqAudio` section of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MoqAudioSection {
    /// Wire version ([`WIRE_VERSION`]).
    pub version: u32,
    /// LOC property id carrying the generation ([`PROP_GENERATION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_property: Option<u64>,
    /// LOC property id marking flush and cancel marker frames ([`PROP_EVENT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_property: Option<u64>,
    /// Opus frame duration in ms (0 when a publisher did not say).
    #[serde(default)]
    pub frame_ms: u32,
    /// The publisher's pacing lead in ms: how far ahead of playout it sends, so listeners can
    /// size their jitter buffer (a listener holds about lead + its target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_ms: Option<u32>,
    /// A random number per published broadcast: a listener that resubscribes after a drop tells
    /// the same publisher coming back (generations and group sequences continue) from a new one
    /// that took over the path (they start again). Absent from older publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u64>,
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

/// How the frames of an audio track are packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// hang's legacy container: varint µs timestamp + packet (plain hang publishers).
    Legacy,
    /// LOC ([`crate::wire::loc`]): what moq-audio publishes.
    Loc,
}

/// What a listener needs to decode a moq-audio (or plain hang Opus) broadcast.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioDescription {
    /// Track carrying the Opus frames.
    pub track: String,
    /// How its frames are packed.
    pub container: Container,
    /// Opus sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// The `moqAudio` wire version; `None` for a plain hang publisher (generation 0 throughout).
    pub version: Option<u32>,
    /// The publisher's pacing lead in ms, if it declared one.
    pub lead_ms: Option<u32>,
    /// The publisher's instance ([`MoqAudioSection::instance`]), if it declared one.
    pub instance: Option<u64>,
}

/// Build the catalog for one Opus rendition.
pub fn build(
    sample_rate: u32,
    channels: u32,
    bitrate: Option<u32>,
    frame_ms: u32,
    lead_ms: u32,
) -> Catalog {
    let mut catalog = Catalog::default();
    let mut config =
        hang::catalog::AudioConfig::new(hang::catalog::AudioCodec::Opus, sample_rate, channels);
    config.bitrate = bitrate.map(u64::from);
    config.container = hang::catalog::Container::Loc;
    catalog
        .audio
        .insert(AUDIO_TRACK, config)
        .expect("a fresh catalog has no renditions");
    catalog.ext.moq_audio = Some(MoqAudioSection {
        version: WIRE_VERSION,
        generation_property: Some(PROP_GENERATION),
        event_property: Some(PROP_EVENT),
        frame_ms,
        lead_ms: Some(lead_ms),
        instance: Some(new_instance()),
    });
    catalog
}

/// A random [`MoqAudioSection::instance`] (std's per-process random hash keys, no RNG crate).
fn new_instance() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Pick the Opus rendition out of a catalog (LOC preferred over legacy).
///
/// # Errors
/// [`Error::Wire`] when the catalog has no Opus rendition in the LOC or legacy container, or
/// declares a `moqAudio` version this build cannot read (version 1: the generation in the
/// group sequence; upgrade the publisher).
pub fn describe(catalog: &Catalog) -> Result<AudioDescription> {
    let opus = |container: &hang::catalog::Container| {
        catalog.audio.renditions.iter().find(|(_, c)| {
            matches!(c.codec, hang::catalog::AudioCodec::Opus) && &c.container == container
        })
    };
    let (container, (name, config)) = opus(&hang::catalog::Container::Loc)
        .map(|r| (Container::Loc, r))
        .or_else(|| opus(&hang::catalog::Container::Legacy).map(|r| (Container::Legacy, r)))
        .ok_or_else(|| {
            Error::Wire("the catalog has no Opus rendition in the LOC or legacy container".into())
        })?;
    let section = catalog.ext.moq_audio.as_ref();
    if let Some(s) = section {
        if s.version < WIRE_VERSION {
            return Err(Error::Wire(format!(
                "the publisher speaks moq-audio wire version {} (generation in the group sequence); \
                 this listener reads version {WIRE_VERSION}: upgrade the publisher",
                s.version
            )));
        }
    }
    Ok(AudioDescription {
        track: name.clone(),
        container,
        sample_rate: config.sample_rate,
        channels: config.channel_count,
        version: section.map(|s| s.version),
        lead_ms: section.and_then(|s| s.lead_ms),
        instance: section.and_then(|s| s.instance),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trips_through_json() {
        let catalog = build(24_000, 1, Some(32_000), 20, 60);
        let json = catalog.to_json().unwrap();
        assert!(json.contains(r#""container":{"kind":"loc"}"#), "{json}");
        assert!(
            json.contains(
                r#""moqAudio":{"version":2,"generationProperty":5062912,"eventProperty":5062914"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""codec":"opus""#), "{json}");
        let parsed = Catalog::from_str(&json).unwrap();
        let desc = describe(&parsed).unwrap();
        assert_eq!(desc.track, AUDIO_TRACK);
        assert_eq!(desc.container, Container::Loc);
        assert_eq!(desc.sample_rate, 24_000);
        assert_eq!(desc.version, Some(WIRE_VERSION));
        assert_eq!(desc.lead_ms, Some(60));
    }

    #[test]
    fn a_plain_hang_catalog_is_read_without_our_section() {
        let json = r#"{"audio":{"renditions":{"a":{"codec":"opus","sampleRate":48000,"numberOfChannels":2}}}}"#;
        let desc = describe(&Catalog::from_str(json).unwrap()).unwrap();
        assert_eq!(
            (desc.version, desc.container, desc.channels),
            (None, Container::Legacy, 2)
        );
    }

    #[test]
    fn the_web_pages_microphone_catalog_is_read() {
        // What web-demo/src/mic.ts publishes: LOC, our section without frameMs, lead 0.
        let json = r#"{"audio":{"renditions":{"audio":{"codec":"opus","sampleRate":48000,"numberOfChannels":1,"bitrate":32000,"container":{"kind":"loc"}}}},"moqAudio":{"version":2,"leadMs":0,"generationProperty":5062912,"eventProperty":5062914}}"#;
        let desc = describe(&Catalog::from_str(json).unwrap()).unwrap();
        assert_eq!(
            (desc.container, desc.version, desc.lead_ms),
            (Container::Loc, Some(2), Some(0))
        );
    }

    #[test]
    fn a_version_1_publisher_is_refused_with_a_reason() {
        let json = r#"{"audio":{"renditions":{"audio":{"codec":"opus","sampleRate":24000,"numberOfChannels":1,"container":{"kind":"legacy"}}}},"moqAudio":{"version":1,"generationShift":20,"frameMs":20}}"#;
        let err = describe(&Catalog::from_str(json).unwrap()).unwrap_err();
        assert!(err.to_string().contains("wire version 1"), "{err}");
    }

    #[test]
    fn a_catalog_without_opus_is_a_wire_error() {
        let err = describe(&Catalog::default()).unwrap_err();
        assert!(err.to_string().contains("no Opus rendition"), "{err}");
    }
}
