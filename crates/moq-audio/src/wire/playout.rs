//! Playout feedback on the wire: what a listener reports about what it rendered.
//!
//! Each listener publishes a broadcast of its own, `<audio broadcast>/`[`LISTENERS_PREFIX`]`/<id>`,
//! with a track [`FEEDBACK_TRACK`]. Each report is one JSON frame in its own group (newest wins; a
//! late report is worthless):
//! `{"generation": 3, "ts": 5120000, "playing": true, "renderTime": 1763700000123.5}` where `ts` is
//! the media timestamp (µs) just past the last sample rendered and `renderTime` the listener's wall
//! clock (ms since the Unix epoch) when it rendered it. The Python `Player` and the web page both
//! write it; the publisher's feedback collector ([`crate::broadcast`]) reads it.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Name of the feedback track in a listener's broadcast.
pub const FEEDBACK_TRACK: &str = "playout.json";

/// Path segment under the audio broadcast where listeners publish their feedback.
pub const LISTENERS_PREFIX: &str = "listeners";

/// One playout report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayoutReport {
    /// Listener id (the last segment of its broadcast path); filled in by the receiver.
    #[serde(default, skip_serializing)]
    pub listener: String,
    /// Generation being rendered.
    pub generation: u64,
    /// Media timestamp just past the last rendered sample, µs.
    #[serde(rename = "ts")]
    pub ts_us: u64,
    /// Whether the listener is rendering this generation right now (false after it ran dry).
    pub playing: bool,
    /// Listener's wall clock at that sample, ms since the Unix epoch.
    #[serde(rename = "renderTime", default)]
    pub render_time_ms: f64,
}

impl PlayoutReport {
    /// Encode as a JSON frame payload.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a report always serializes")
    }

    /// Decode a JSON frame payload from `listener`.
    ///
    /// # Errors
    /// [`Error::Wire`] if it is not a playout report.
    pub fn decode(listener: &str, payload: &[u8]) -> Result<Self> {
        let mut report: Self = serde_json::from_slice(payload)
            .map_err(|e| Error::Wire(format!("playout report: {e}")))?;
        report.listener = listener.to_string();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_name_the_listener() {
        let r = PlayoutReport {
            listener: String::new(),
            generation: 3,
            ts_us: 5_120_000,
            playing: true,
            render_time_ms: 12.5,
        };
        let json = String::from_utf8(r.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"generation":3,"ts":5120000,"playing":true,"renderTime":12.5}"#
        );
        let back = PlayoutReport::decode("web-1", json.as_bytes()).unwrap();
        assert_eq!(back.listener, "web-1");
        assert_eq!(back.ts_us, 5_120_000);
        assert!(PlayoutReport::decode("x", b"{}").is_err());
    }
}
