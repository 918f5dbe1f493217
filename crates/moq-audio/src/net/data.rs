//! Small JSON/bytes message tracks beside the audio: the bot's transcript, a page's control
//! messages. One message per group (newest first, like every MoQ track), one frame per message.

use std::time::Duration;

use super::session::Session;
use crate::{Error, Result};

/// Writes messages to a track.
#[derive(Clone)]
pub struct DataWriter {
    track: moq_net::track::Producer,
}

impl DataWriter {
    /// Wrap a track producer.
    pub fn new(track: moq_net::track::Producer) -> Self {
        Self { track }
    }

    /// Write one message (its own group).
    ///
    /// # Errors
    /// [`Error::Moq`] when the track is closed.
    pub fn write(&self, payload: Vec<u8>) -> Result<()> {
        let mut track = self.track.clone();
        track.write_frame(moq_net::Timestamp::now(), payload)?;
        Ok(())
    }

    /// End the track cleanly.
    pub fn finish(&self) {
        let _ = self.track.finish();
    }
}

/// Reads the messages of a track, in arrival order.
pub struct DataReader {
    track: moq_net::track::Subscriber,
}

impl DataReader {
    /// The next message, or `None` when the track ended.
    ///
    /// # Errors
    /// [`Error::Moq`] when the track failed.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            let Some(mut group) = self.track.recv_group().await? else {
                return Ok(None);
            };
            if let Some(frame) = group.read_frame().await? {
                return Ok(Some(frame.payload.to_vec()));
            }
        }
    }
}

impl Session {
    /// Subscribe to track `name` of the broadcast at `path`, waiting up to `timeout` for the
    /// broadcast to be announced. Messages from the subscription on are delivered (with up to
    /// 10 s of reordering tolerated), not the track's history.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the broadcast does not appear in time.
    pub async fn subscribe_data(
        &self,
        path: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<DataReader> {
        let broadcast = self.consume_broadcast(path, timeout).await?;
        let track = broadcast
            .track(name)?
            .subscribe(
                moq_net::track::Subscription::default().with_max_age(Duration::from_secs(10)),
            )
            .await
            .map_err(|e| Error::Connection(format!("subscribing to {path}/{name}: {e}")))?;
        Ok(DataReader { track })
    }

    /// Publish a broadcast at `path` with data tracks `names`; returns their writers (same order)
    /// and the broadcast, which must be kept alive.
    ///
    /// # Errors
    /// [`Error::Moq`] if the path is taken.
    pub fn publish_data(
        &self,
        path: &str,
        names: &[&str],
    ) -> Result<(Vec<DataWriter>, moq_net::broadcast::Producer)> {
        let broadcast = self.create_broadcast(path)?;
        let writers = names
            .iter()
            .map(|n| broadcast.create_track(*n, None).map(DataWriter::new))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        broadcast.announce(Default::default())?;
        Ok((writers, broadcast))
    }
}
