//! The listen side on a [`Session`]: subscribe to an audio broadcast, or play it with playout
//! feedback under `<path>/listeners/<id>`.

use std::time::Duration;

use crate::listen::{
    AudioConsumer, ConsumerOptions, Player, PlayerOptions, PlayoutFeedback, Resubscribe,
};
use crate::net::Session;
use crate::wire::playout::{FEEDBACK_TRACK, LISTENERS_PREFIX};
use crate::Result;

impl Session {
    /// Wait (up to `options.timeout`) for the audio broadcast at `path`, read its catalog and
    /// subscribe to its Opus track.
    ///
    /// When the session drops and reconnects, the consumer waits (up to the session's reconnect
    /// timeout) for the broadcast to be announced again and continues on it; the publisher's
    /// next generation tells the listener to drop what it held from before the outage.
    ///
    /// # Errors
    /// [`crate::Error::Timeout`] if the broadcast or its catalog does not appear in time;
    /// [`crate::Error::Wire`] if it carries no Opus audio we can read.
    pub async fn subscribe_audio(
        &self,
        path: &str,
        options: ConsumerOptions,
    ) -> Result<AudioConsumer> {
        let started = tokio::time::Instant::now();
        let broadcast = self.consume_broadcast(path, options.timeout).await?;
        let mut options = options;
        options.timeout = options
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        // Follow the broadcast across reconnects of this session.
        let wait = self.reconnect_timeout().filter(|_| options.resubscribe);
        let resubscribe = wait.map(|wait| Resubscribe {
            origin: self.remote(),
            path: path.to_string(),
            wait,
        });
        AudioConsumer::with_resubscribe(broadcast, options, resubscribe).await
    }

    /// Subscribe to the audio broadcast at `path` and play it with a [`Player`] that reports
    /// its playout on a feedback broadcast `<path>/listeners/<listener>` (see
    /// [`crate::wire::playout`]), so the producer's marks and flush reports use real playout.
    ///
    /// `listener`: the listener id; `None` picks a unique one. Returns the player and the id.
    /// With a token that does not grant publishing the feedback broadcast, the player plays
    /// without reporting (a warning is logged; the publisher's marks resolve unknown).
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
        let feedback = match self.create_broadcast(&format!("{path}/{LISTENERS_PREFIX}/{id}")) {
            Ok(broadcast) => {
                let track = broadcast.create_track(FEEDBACK_TRACK, None)?;
                broadcast.announce(Default::default())?;
                Some(PlayoutFeedback::new(broadcast, track))
            }
            // A subscribe-only token: play anyway; the publisher's marks then resolve unknown.
            Err(crate::Error::Forbidden(why)) => {
                tracing::warn!(%why, "playing without playout feedback");
                None
            }
            Err(e) => return Err(e),
        };
        let player = Player::start(audio, player, feedback)?;
        Ok((player, id))
    }
}

/// `listener-<pid>-<n>`: unique within the process, readable in logs.
fn unique_listener_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("listener-{}-{n}", std::process::id())
}
