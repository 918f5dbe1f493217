//! Audio on a [`Session`]: publish an [`AudioProducer`], subscribe an [`AudioConsumer`], play it.
//!
//! A published audio broadcast at `path` holds two tracks: [`CATALOG_TRACK`] (hang catalog) and
//! [`AUDIO_TRACK`] (Opus, legacy container, generation in the group sequence).

use std::time::Duration;

use crate::catalog::{self, AUDIO_TRACK, CATALOG_TRACK};
use crate::consumer::{AudioConsumer, ConsumerOptions};
use crate::feedback::{FEEDBACK_TRACK, LISTENERS_PREFIX};
use crate::player::{Player, PlayerOptions};
use crate::producer::{AudioProducer, ProducerOptions};
use crate::session::Session;
use crate::Result;

impl Session {
    /// Publish an audio broadcast at `path` and return its producer.
    ///
    /// The catalog is written before this returns, so a subscriber that finds the broadcast
    /// can read it at once.
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for bad options, [`crate::Error::Moq`] if the path is taken.
    pub fn publish_audio(&self, path: &str, options: ProducerOptions) -> Result<AudioProducer> {
        options.validate()?;
        // Tracks first, announce last: a subscriber that sees the broadcast finds its catalog.
        let broadcast = self.create_broadcast(path)?;
        let catalog = catalog::build(
            crate::opus::codec_rate(options.sample_rate),
            options.channels,
            options.bitrate,
            options.frame_duration.as_ms(),
            options.lead.as_millis() as u32,
        );
        let catalog_track = broadcast.create_track(CATALOG_TRACK, hang::Catalog::default_track_info())?;
        let mut writer = catalog_track.clone();
        writer.write_frame(moq_net::Timestamp::now(), catalog.to_json()?.into_bytes())?;
        let track = broadcast.create_track(
            AUDIO_TRACK,
            hang::container::track_info(hang::catalog::PRIORITY.audio),
        )?;
        let producer = AudioProducer::new(track, options)?;
        broadcast.announce(Default::default())?;
        producer.set_broadcast(broadcast);
        producer.attach(Box::new(catalog_track));
        tokio::spawn(crate::feedback::collect(self.remote(), path.to_string(), producer.sink()));
        Ok(producer)
    }

    /// Wait (up to `options.timeout`) for the audio broadcast at `path`, read its catalog and
    /// subscribe to its Opus track.
    ///
    /// # Errors
    /// [`crate::Error::Timeout`] if the broadcast or its catalog does not appear in time.
    pub async fn subscribe_audio(&self, path: &str, options: ConsumerOptions) -> Result<AudioConsumer> {
        let started = tokio::time::Instant::now();
        let broadcast = self.consume_broadcast(path, options.timeout).await?;
        let mut options = options;
        options.timeout = options.timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        AudioConsumer::new(broadcast, options).await
    }

    /// Subscribe to the audio broadcast at `path` and play it with a [`Player`] that reports
    /// its playout on a feedback broadcast `<path>/listeners/<listener>` (see
    /// [`crate::feedback`]), so the producer's marks and flush reports use real playout.
    ///
    /// `listener`: the listener id; `None` picks a unique one. Returns the player and the id.
    ///
    /// # Errors
    /// As [`Session::subscribe_audio`] and [`Player::start`].
    pub async fn play_audio(
        &self,
        path: &str,
        consumer: ConsumerOptions,
        player: PlayerOptions,
        listener: Option<String>,
    ) -> Result<(Player, String)> {
        let audio = self.subscribe_audio(path, consumer).await?;
        let id = listener.unwrap_or_else(unique_listener_id);
        let broadcast = self.create_broadcast(&format!("{path}/{LISTENERS_PREFIX}/{id}"))?;
        let track = broadcast.create_track(FEEDBACK_TRACK, None)?;
        broadcast.announce(Default::default())?;
        let mut player = Player::start(audio, player, Some(track))?;
        player.attach(Box::new(broadcast));
        Ok((player, id))
    }
}

/// `py-<pid>-<n>`: unique within the process, readable in logs.
fn unique_listener_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("listener-{}-{n}", std::process::id())
}
