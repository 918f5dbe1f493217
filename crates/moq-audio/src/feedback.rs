//! Playout feedback: what a listener reports about what it rendered.
//!
//! Each listener publishes a broadcast of its own (by default `<audio broadcast>/listeners/<id>`)
//! with a track [`FEEDBACK_TRACK`]. Each report is one JSON frame in its own group (newest
//! wins; a late report is worthless):
//! `{"generation": 3, "ts": 5120000, "playing": true, "renderTime": 1763700000123.5}` where
//! `ts` is the media timestamp (µs) of the last sample rendered and `renderTime` the listener's
//! wall clock (ms since the Unix epoch) when it rendered it. The producer subscribes to every
//! broadcast under its `listeners/` prefix and feeds reports to its [`crate::marks::MarkTracker`].

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::producer::ProducerSink;
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
    /// Media timestamp of the last rendered sample, µs.
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
        let mut report: Self =
            serde_json::from_slice(payload).map_err(|e| Error::Wire(format!("playout report: {e}")))?;
        report.listener = listener.to_string();
        Ok(report)
    }
}

/// How often pending marks are checked against the mark timeout.
const EXPIRE_CHECK: Duration = Duration::from_millis(250);

/// Collect the playout reports of every listener under `<path>/listeners/` for `sink` until the
/// producer closes. Listeners may come and go; each is read on its own task.
pub(crate) async fn collect(remote: moq_net::origin::Consumer, path: String, sink: ProducerSink) {
    let mut patterns = moq_net::Patterns::new();
    patterns.insert(moq_net::Pattern::all());
    let scoped = match remote.scope(format!("{path}/{LISTENERS_PREFIX}"), &patterns) {
        Ok(scoped) => scoped,
        Err(e) => {
            tracing::warn!(%e, "cannot watch for listeners; marks will resolve as unknown");
            return;
        }
    };
    let mut announced = scoped.announced();
    let mut seen = HashSet::new();
    let mut readers = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(EXPIRE_CHECK);
    let timeout = sink.mark_timeout();
    loop {
        tokio::select! {
            update = announced.next() => {
                let Some(update) = update else { break };
                let id = update.prefix.to_string();
                if update.kind.is_active() && seen.insert(id.clone()) {
                    readers.spawn(read_listener(scoped.clone(), id, sink.clone()));
                }
            }
            Some(done) = readers.join_next() => {
                if let Ok(id) = done {
                    seen.remove(&id); // it may come back
                }
            }
            _ = tick.tick() => {
                sink.expire_marks(timeout);
                // After finish/cancel, keep listening until the last marks resolved.
                if sink.is_closed() && !sink.has_pending_marks() {
                    break;
                }
            }
        }
    }
}

/// Read one listener's reports until its broadcast ends; returns its id.
///
/// A subscription that fails while the listener is still there (a report group reset or
/// skipped in transit) is renewed: losing a listener's feedback would make its marks time out.
async fn read_listener(scoped: moq_net::origin::Consumer, id: String, sink: ProducerSink) -> String {
    let broadcast = match scoped.routed_broadcast(id.as_str()).await {
        Ok(broadcast) => broadcast,
        Err(e) => {
            tracing::debug!(%e, listener = %id, "listener broadcast gone");
            return id;
        }
    };
    while !broadcast.is_closed() && !sink.is_done() {
        if let Err(e) = read_reports(&broadcast, &id, &sink).await {
            tracing::debug!(%e, listener = %id, "listener feedback interrupted; resubscribing");
        }
        tokio::time::sleep(RESUBSCRIBE).await;
    }
    id
}

/// Pause before renewing a listener's feedback subscription.
const RESUBSCRIBE: Duration = Duration::from_millis(50);

async fn read_reports(broadcast: &moq_net::broadcast::Consumer, id: &str, sink: &ProducerSink) -> Result<()> {
    // Reports are tiny and each is its own group; tolerate reordering so a report still in
    // flight is not abandoned when the next one starts.
    let subscription = moq_net::track::Subscription::default().with_max_age(Duration::from_secs(1));
    let mut track = broadcast.track(FEEDBACK_TRACK)?.subscribe(subscription).await?;
    while let Some(mut group) = track.recv_group().await? {
        while let Some(frame) = group.read_frame().await? {
            match PlayoutReport::decode(id, &frame.payload) {
                Ok(report) => sink.report_playout(report),
                Err(e) => tracing::debug!(%e, listener = %id, "ignoring a bad playout report"),
            }
        }
    }
    Ok(())
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
        assert_eq!(json, r#"{"generation":3,"ts":5120000,"playing":true,"renderTime":12.5}"#);
        let back = PlayoutReport::decode("web-1", json.as_bytes()).unwrap();
        assert_eq!(back.listener, "web-1");
        assert_eq!(back.ts_us, 5_120_000);
        assert!(PlayoutReport::decode("x", b"{}").is_err());
    }
}
