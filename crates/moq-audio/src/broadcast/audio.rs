//! [`AudioBroadcast`]: one published moq-audio broadcast and everything it owns.
//!
//! A broadcast at `path` holds the hang catalog ([`CATALOG_TRACK`]), the Opus track
//! ([`AUDIO_TRACK`], driven by an [`AudioProducer`]), any data tracks (transcript, RTVI
//! messages), and a feedback collector reading the listeners under `<path>/listeners/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use super::feedback;
use crate::codec::opus::codec_rate;
use crate::net::data::DataWriter;
use crate::net::session::Follower;
use crate::net::Session;
use crate::publish::{AudioProducer, ProducerOptions};
use crate::wire::catalog::{self, AUDIO_TRACK, CATALOG_TRACK};
use crate::{Error, Result};

/// A published audio broadcast: its [`AudioProducer`] (reachable through `Deref`), catalog,
/// data tracks and feedback collector.
///
/// Cheap to clone; clones share it. Keep one alive while you publish: when the last clone drops,
/// the producer is cancelled (listeners see "cancelled"), the broadcast is unannounced and the
/// feedback collector stops.
#[derive(Clone)]
pub struct AudioBroadcast {
    inner: Arc<Inner>,
}

struct Inner {
    path: String,
    producer: AudioProducer,
    broadcast: moq_net::broadcast::Producer,
    _catalog: moq_net::track::Producer,
    data: Mutex<HashMap<String, DataWriter>>,
    feedback: JoinHandle<()>,
    /// Registered with the session (weakly) to follow its drops and reconnects.
    _follower: Arc<dyn Follower>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.producer.cancel();
        for writer in self.data.lock().unwrap_or_else(|e| e.into_inner()).values() {
            writer.finish();
        }
        // The collector stops by itself once the cancel resolved the pending marks; abort it so
        // nothing outlives the broadcast.
        self.feedback.abort();
    }
}

impl std::ops::Deref for AudioBroadcast {
    type Target = AudioProducer;

    fn deref(&self) -> &AudioProducer {
        &self.inner.producer
    }
}

impl AudioBroadcast {
    /// The broadcast path (relative to the session URL).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The audio producer (also reachable through `Deref`).
    pub fn producer(&self) -> &AudioProducer {
        &self.inner.producer
    }

    /// A message track `name` (e.g. `transcript.json`) of this broadcast, created on first use;
    /// later calls with the same name return the same writer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name the audio or catalog track uses; [`Error::Moq`] if
    /// the broadcast is closed.
    pub fn data_track(&self, name: &str) -> Result<DataWriter> {
        if name == AUDIO_TRACK || name == CATALOG_TRACK {
            return Err(Error::InvalidInput(format!(
                "track name {name:?} is taken by the audio broadcast"
            )));
        }
        let mut data = self.inner.data.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(writer) = data.get(name) {
            return Ok(writer.clone());
        }
        let writer = DataWriter::new(self.inner.broadcast.create_track(name, None)?);
        data.insert(name.to_string(), writer.clone());
        Ok(writer)
    }
}

impl Session {
    /// Publish an audio broadcast at `path` (hang catalog + Opus track in the LOC container,
    /// generation in every frame; see [`crate::wire`]) and return it.
    ///
    /// The catalog is written before the broadcast is announced, so a subscriber that finds the
    /// broadcast can read it at once.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad options, [`Error::Duplicate`] if the path is already
    /// published on this session, [`Error::Moq`] for an invalid path or a closed session.
    pub fn publish_audio(&self, path: &str, options: ProducerOptions) -> Result<AudioBroadcast> {
        options.validate()?;
        // Tracks first, announce last: a subscriber that sees the broadcast finds its catalog.
        let broadcast = self
            .create_broadcast(path)
            .map_err(|e| duplicate(e, path))?;
        let catalog = catalog::build(
            codec_rate(options.sample_rate),
            options.channels,
            options.bitrate,
            options.frame_duration.as_ms(),
            options.lead.as_millis() as u32,
        );
        let mut catalog_track =
            broadcast.create_track(CATALOG_TRACK, hang::Catalog::default_track_info())?;
        catalog_track.write_frame(moq_net::Timestamp::now(), catalog.to_json()?.into_bytes())?;
        let track = broadcast.create_track(
            AUDIO_TRACK,
            hang::container::track_info(hang::catalog::PRIORITY.audio),
        )?;
        let producer = AudioProducer::new(track, options)?;
        broadcast
            .announce(Default::default())
            .map_err(|e| duplicate(e.into(), path))?;
        let feedback = tokio::spawn(feedback::collect(
            self.remote(),
            path.to_string(),
            producer.playout_sink(),
        ));
        let follower: Arc<dyn Follower> = Arc::new(ProducerFollower(producer.clone()));
        self.follow(&follower);
        Ok(AudioBroadcast {
            inner: Arc::new(Inner {
                path: path.to_string(),
                producer,
                broadcast,
                _catalog: catalog_track,
                data: Mutex::new(HashMap::new()),
                feedback,
                _follower: follower,
            }),
        })
    }
}

/// Keeps a producer in step with its session: hold the audio while disconnected, continue in a
/// new generation after a reconnect, fail when the session ended for good. Owned by the
/// broadcast; the session holds it weakly.
struct ProducerFollower(AudioProducer);

impl Follower for ProducerFollower {
    fn disconnected(&self) {
        self.0.disconnected();
    }

    fn reconnected(&self, _epoch: u64) {
        self.0.reconnected();
    }

    fn closed(&self, reason: Option<&str>) {
        // Our own close (no reason) lets finish()/cancel() decide; a lost session fails it.
        if let Some(reason) = reason {
            self.0.fail(Error::Connection(reason.to_string()));
        }
    }
}

/// "Already published" in moq-net's words, as our [`Error::Duplicate`].
fn duplicate(err: Error, path: &str) -> Error {
    match err {
        Error::Moq(moq_net::Error::Duplicate) => Error::Duplicate(path.to_string()),
        err => err,
    }
}
