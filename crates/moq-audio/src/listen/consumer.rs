//! [`AudioConsumer`]: subscribe to a moq-audio (or plain hang Opus) broadcast and decode it.
//!
//! Groups are read concurrently (a group of the new generation must not wait behind a stalled
//! group of the old one), frames are decoded in arrival order, and a frame of a generation older
//! than one already seen is dropped: the consumer never goes back in generation. The generation
//! comes from each frame ([`crate::wire::loc`]), so a flush is learnt from whichever frame of the
//! new generation arrives first — its marker or its first audio.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::codec::opus::{codec_rate, Decoder, OPUS_RATES};
use crate::codec::resample::Resampler;
use crate::wire::catalog::{self, AudioDescription, Container, CATALOG_TRACK};
use crate::wire::loc::{self, Event};
use crate::{Error, Result};

/// Decoded audio with its generation and media timestamp.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Interleaved `f32` PCM in [-1, 1]; `pcm.len() / channels` sample frames. Empty for the
    /// marker of a new generation (a flush at the publisher) that arrived before its audio.
    pub pcm: Vec<f32>,
    /// Channels in `pcm`.
    pub channels: u32,
    /// Sample rate of `pcm` in Hz.
    pub sample_rate: u32,
    /// Generation the frame belongs to (0 for a publisher without generations).
    pub generation: u64,
    /// Media timestamp of the first sample, µs on the publisher's clock.
    pub timestamp_us: u64,
}

/// An Opus packet as read off the track ([`AudioConsumer::next_packet`]), before decoding.
#[derive(Clone, Debug)]
pub struct AudioPacket {
    /// Generation the packet belongs to (0 for a publisher without generations).
    pub generation: u64,
    /// Media timestamp of its first sample, µs on the publisher's clock.
    pub timestamp_us: u64,
    /// Set on marker packets only (a flush or a cancel at the publisher): no audio.
    pub event: Option<Event>,
    /// The Opus packet (never decode a marker's).
    pub payload: bytes::Bytes,
}

impl AudioPacket {
    /// Whether this is a marker of a newer generation rather than audio.
    pub fn is_marker(&self) -> bool {
        self.event.is_some() || self.payload.is_empty()
    }
}

impl AudioFrame {
    /// Duration of the frame in µs.
    pub fn duration_us(&self) -> u64 {
        crate::codec::pcm::samples_to_us(self.pcm.len(), self.sample_rate, self.channels)
    }
}

/// Settings for [`AudioConsumer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Output rate in Hz; `None` keeps the Opus rate from the catalog.
    pub sample_rate: Option<u32>,
    /// How long to wait for the broadcast and its catalog, default 10 s.
    pub timeout: Duration,
    /// How far behind the live edge a group may fall before it is skipped (the MoQ subscription's
    /// max age). Default 2 s: generous, because stale generations are dropped by generation, not
    /// by age, and audio of the current generation should not be skipped for reordering.
    pub max_age: Duration,
    /// When the track drops (the session reconnects, a relay restarts, the publisher goes away
    /// and comes back), wait for the broadcast and continue on it instead of ending (default
    /// `true`). Turn it off to learn that a publisher left (e.g. a page reloaded: a new client).
    pub resubscribe: bool,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            sample_rate: None,
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(2),
            resubscribe: true,
        }
    }
}

/// Where a consumer finds its broadcast again when the session drops and reconnects.
#[derive(Clone)]
pub struct Resubscribe {
    /// The session's view of announced broadcasts.
    pub origin: moq_net::origin::Consumer,
    /// The broadcast's path in it.
    pub path: String,
    /// How long to wait for the broadcast to be announced again before giving up.
    pub wait: Duration,
}

/// How a consumed track ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher finished the track cleanly.
    Finished,
    /// The publisher cancelled the track (its in-band cancel marker, or a reset with our code).
    Cancelled,
    /// The track or session failed with this message.
    Failed(String),
}

impl std::fmt::Display for EndReason {
    /// `finished`, `cancelled` or `failed: <why>` (what the Python binding reports).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Finished => f.write_str("finished"),
            EndReason::Cancelled => f.write_str("cancelled"),
            EndReason::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// How a consumer's track ended, readable from anywhere while another task iterates the
/// consumer ([`AudioConsumer::end_watch`]).
#[derive(Clone)]
pub struct EndWatch {
    end: watch::Receiver<Option<EndReason>>,
}

/// After a resubscription, the broadcast may come from a *new* publisher (the page reloaded, the
/// agent restarted) whose generations start again at 0. The first frame after the resubscription
/// tells: an older generation than already seen cannot come from the same publisher (it never
/// goes back), so from then on its generations are shifted above everything seen, and listeners
/// cut over to it like to any newer generation.
///
/// Publishers that declare an instance in their catalog are told apart exactly: the same
/// instance coming back continues where it was, so groups already seen (which a relay may
/// serve again from the publisher's cache) are skipped instead of looking like a new publisher.
#[derive(Default)]
struct Rebase {
    offset: std::sync::atomic::AtomicU64,
}

impl Rebase {
    /// The generation of a frame as listeners see it; `newest` is the highest seen so far;
    /// `check`: this is the first frame of the first group after a resubscription.
    fn generation(&self, sent: u64, newest: u64, check: bool) -> u64 {
        if check {
            let seen = sent + self.offset.load(Ordering::SeqCst);
            if seen < newest {
                tracing::info!(sent, newest, "a new publisher took over the broadcast: its generations continue above the old ones");
                self.offset.store(newest + 1 - sent, Ordering::SeqCst);
            }
        }
        sent + self.offset.load(Ordering::SeqCst)
    }
}

/// How a v2 publisher said its track ends, in band: the cancel or finish marker seen last.
#[derive(Default)]
struct InBandEnd {
    cancelled: AtomicBool,
    finished: AtomicBool,
}

impl EndWatch {
    /// How the track ended, once it has. For a moq-audio (v2) publisher this follows its
    /// in-band end markers: cancelled or finished as the publisher said, and a failure when the
    /// track ended without either (a relay that went away also ends it cleanly).
    pub fn get(&self) -> Option<EndReason> {
        self.end.borrow().clone()
    }

    /// Wait until the track ended.
    pub async fn ended(&mut self) -> EndReason {
        let _ = self.end.wait_for(Option::is_some).await;
        self.get()
            .unwrap_or_else(|| EndReason::Failed("the consumer was dropped".into()))
    }
}

/// A frame as read off the track, before decoding.
struct Packet {
    frame: loc::Frame,
}

/// Decoded audio frames of one broadcast, in arrival order, never going back in generation.
pub struct AudioConsumer {
    packets: mpsc::Receiver<Packet>,
    end: EndWatch,
    task: JoinHandle<()>,
    description: AudioDescription,
    decoder: Decoder,
    resampler: Option<Resampler>,
    output_rate: u32,
    generation: Option<u64>,
}

impl Drop for AudioConsumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AudioConsumer {
    /// Read the broadcast's catalog and subscribe to its Opus track.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no catalog arrives within `options.timeout`; [`Error::Wire`] if the
    /// catalog has no Opus rendition (or speaks an older moq-audio wire version);
    /// [`Error::InvalidInput`] for an output rate outside 8 000..=48 000 Hz.
    pub async fn new(
        broadcast: moq_net::broadcast::Consumer,
        options: ConsumerOptions,
    ) -> Result<Self> {
        Self::with_resubscribe(broadcast, options, None).await
    }

    /// [`AudioConsumer::new`] that, when the track fails because the session dropped, waits
    /// for the broadcast to be announced again on `resubscribe` and continues on it (at its live
    /// edge), instead of ending. [`crate::Session::subscribe_audio`] uses this.
    ///
    /// # Errors
    /// As [`AudioConsumer::new`].
    pub async fn with_resubscribe(
        broadcast: moq_net::broadcast::Consumer,
        options: ConsumerOptions,
        resubscribe: Option<Resubscribe>,
    ) -> Result<Self> {
        let description = tokio::time::timeout(options.timeout, read_catalog(&broadcast))
            .await
            .map_err(|_| Error::Timeout(format!("the catalog of {:?}", broadcast.info().path)))??;
        let output_rate = options.sample_rate.unwrap_or(description.sample_rate);
        crate::codec::pcm::check_format(output_rate, description.channels)?;
        // Decode at the output rate when libopus can, else at the catalog's rate and resample.
        let decode_rate = if OPUS_RATES.contains(&output_rate) {
            output_rate
        } else {
            codec_rate(description.sample_rate)
        };
        let decoder = Decoder::new(decode_rate, description.channels)?;
        let resampler = (decode_rate != output_rate)
            .then(|| Resampler::new(decode_rate, output_rate, description.channels))
            .transpose()?;

        let subscriber = subscribe_track(&broadcast, &description.track, options.max_age).await?;
        let (tx, packets) = mpsc::channel(256);
        let (end_tx, end) = watch::channel(None);
        let source = Source {
            track: description.track.clone(),
            max_age: options.max_age,
            resubscribe,
            in_band_end: description.version.is_some_and(|v| v >= 2),
            instance: description.instance,
        };
        let task = tokio::spawn(read_groups(
            subscriber,
            description.container,
            source,
            tx,
            end_tx,
        ));
        Ok(Self {
            packets,
            end: EndWatch { end },
            task,
            description,
            decoder,
            resampler,
            output_rate,
            generation: None,
        })
    }

    /// What the catalog said about the track.
    pub fn description(&self) -> &AudioDescription {
        &self.description
    }

    /// Output sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.output_rate
    }

    /// Channels of the output.
    pub fn channels(&self) -> u32 {
        self.description.channels
    }

    /// The next decoded frame, or `None` when the track ended (see [`Self::end_reason`]).
    ///
    /// A frame with no samples marks the start of a newer generation (a flush at the
    /// publisher) before any of its audio has arrived: drop what you buffered of older ones.
    ///
    /// # Errors
    /// [`Error::Opus`] for a packet libopus cannot decode (the consumer stays usable).
    pub async fn next(&mut self) -> Result<Option<AudioFrame>> {
        loop {
            let before = self.generation;
            let Some(frame) = self.next_packet().await else {
                return Ok(None);
            };
            if before != Some(frame.generation) {
                // A new generation: a new stream for the codec and resampler.
                self.decoder.reset()?;
                if let Some(r) = &mut self.resampler {
                    r.reset();
                }
            }
            if frame.event.is_some() || frame.payload.is_empty() {
                // A marker: the start of a newer generation (a flush or a cancel) or the finish,
                // no audio.
                // (An empty legacy payload is upstream's own marker; nothing to decode either.)
                return Ok(Some(AudioFrame {
                    pcm: Vec::new(),
                    channels: self.description.channels,
                    sample_rate: self.output_rate,
                    generation: frame.generation,
                    timestamp_us: frame.timestamp_us,
                }));
            }
            let mut pcm = self.decoder.decode(&frame.payload)?;
            if let Some(r) = &mut self.resampler {
                pcm = r.process(&pcm)?;
                if pcm.is_empty() {
                    continue;
                }
            }
            return Ok(Some(AudioFrame {
                pcm,
                channels: self.description.channels,
                sample_rate: self.output_rate,
                generation: frame.generation,
                timestamp_us: frame.timestamp_us,
            }));
        }
    }

    /// The next packet as it came off the track, not decoded, or `None` when the track ended.
    ///
    /// The same stream as [`Self::next`] (use one or the other): never going back in
    /// generation; a packet with `event` set (or an empty payload) is the marker of a newer
    /// generation and carries no audio. For players that decode at playout time, so a missing
    /// packet can be concealed by the codec ([`crate::listen::jitter`]).
    pub async fn next_packet(&mut self) -> Option<AudioPacket> {
        loop {
            let Packet { frame } = self.packets.recv().await?;
            match self.generation {
                Some(g) if frame.generation < g => continue, // stale: never go back
                Some(g) if frame.generation == g => {}
                _ => self.generation = Some(frame.generation),
            }
            // End markers (cancel, finish) were already noted by the reader ([`EndWatch`]).
            return Some(AudioPacket {
                generation: frame.generation,
                timestamp_us: frame.timestamp_us,
                event: frame.event,
                payload: frame.payload,
            });
        }
    }

    /// How the track ended, once it has (see [`EndWatch::get`]).
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end.get()
    }

    /// A handle to [`end_reason`](Self::end_reason) that does not borrow the consumer.
    pub fn end_watch(&self) -> EndWatch {
        self.end.clone()
    }

    /// The highest generation yielded so far.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }
}

/// Wait for the first catalog of `broadcast` and describe its Opus rendition.
///
/// # Errors
/// [`Error::Wire`] for a catalog without a usable Opus rendition; [`Error::Moq`] if the
/// catalog track fails.
pub async fn read_catalog(broadcast: &moq_net::broadcast::Consumer) -> Result<AudioDescription> {
    let track = broadcast
        .track(CATALOG_TRACK)?
        .subscribe(hang::Catalog::default_subscription())
        .await?;
    let mut consumer = hang::catalog::Consumer::<catalog::Ext>::new(track);
    let catalog = consumer
        .next()
        .await?
        .ok_or_else(|| Error::Wire("the catalog track ended before any catalog".into()))?;
    catalog::describe(&catalog)
}

/// Subscribe to `track` of `broadcast` at its live edge: a listener joining mid-utterance must
/// not replay the cached groups behind it (they would play late, as stale audio). `max_age`
/// still lets groups after the edge arrive out of order.
async fn subscribe_track(
    broadcast: &moq_net::broadcast::Consumer,
    track: &str,
    max_age: Duration,
) -> Result<moq_net::track::Subscriber> {
    let track = broadcast.track(track)?;
    let mut subscriber = track
        .subscribe(
            moq_net::track::Subscription::default()
                .with_priority(hang::catalog::PRIORITY.audio)
                .with_max_age(max_age),
        )
        .await?;
    if let Some(live) = track.latest() {
        subscriber.set_groups(live..);
    }
    Ok(subscriber)
}

/// What the reader needs to find the track again.
struct Source {
    track: String,
    max_age: Duration,
    resubscribe: Option<Resubscribe>,
    /// The publisher ends its track with an in-band marker (moq-audio wire v2).
    in_band_end: bool,
    /// The publisher's instance from its catalog, if it declared one.
    instance: Option<u64>,
}

impl Source {
    /// After the track failed with `err`: wait for the broadcast to come back and subscribe
    /// again, or say why not.
    async fn resubscribe(
        &self,
        err: &moq_net::Error,
    ) -> std::result::Result<(moq_net::track::Subscriber, bool), String> {
        let Some(again) = &self.resubscribe else {
            return Err(format!("the connection to the publisher dropped ({err})"));
        };
        tracing::info!(path = %again.path, %err, "the audio track dropped; waiting for the broadcast to come back");
        let found = tokio::time::timeout(again.wait, async {
            loop {
                let broadcast = match again.origin.routed_broadcast(again.path.as_str()).await {
                    Ok(broadcast) => broadcast,
                    Err(e) => return Err(format!("the broadcast is gone ({e})")),
                };
                // The same publisher instance as before, or a new one at the same path?
                let same = match self.instance {
                    Some(before) => {
                        let catalog =
                            tokio::time::timeout(again.wait, read_catalog(&broadcast)).await;
                        matches!(catalog, Ok(Ok(d)) if d.instance == Some(before))
                    }
                    None => false,
                };
                match subscribe_track(&broadcast, &self.track, self.max_age).await {
                    Ok(subscriber) => return Ok((subscriber, same)),
                    // Announced, but not serving yet (or already gone again): look again.
                    Err(e) => {
                        tracing::debug!(%e, "resubscribing failed; waiting for the broadcast again")
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), broadcast.closed()).await;
            }
        })
        .await;
        match found {
            Ok(Ok((subscriber, same))) => {
                tracing::info!(path = %again.path, same, "resubscribed to the audio track");
                Ok((subscriber, same))
            }
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!(
                "the broadcast did not come back within {:?} after the connection dropped ({err})",
                again.wait
            )),
        }
    }
}

/// Decode one frame of the track's container.
fn decode(container: Container, payload: bytes::Bytes) -> Result<loc::Frame> {
    match container {
        Container::Loc => loc::Frame::decode(payload),
        Container::Legacy => {
            let f = hang::container::Frame::decode(payload)?;
            Ok(loc::Frame {
                timestamp_us: f.timestamp.as_micros() as u64,
                generation: 0,
                event: None,
                payload: f.payload,
            })
        }
    }
}

async fn read_groups(
    mut subscriber: moq_net::track::Subscriber,
    container: Container,
    source: Source,
    tx: mpsc::Sender<Packet>,
    end: watch::Sender<Option<EndReason>>,
) {
    let newest = watch::channel(0u64).0;
    let said = Arc::new(InBandEnd::default());
    let rebase = Arc::new(Rebase::default());
    let mut check_next = false;
    let mut max_sequence: Option<u64> = None;
    let mut readers = Vec::new();
    let reason = loop {
        match subscriber.recv_group().await {
            Ok(Some(group)) => {
                readers.retain(|h: &JoinHandle<()>| !h.is_finished());
                let check = std::mem::take(&mut check_next);
                max_sequence = max_sequence.max(Some(group.sequence));
                let reader = read_group(
                    group,
                    container,
                    tx.clone(),
                    newest.clone(),
                    said.clone(),
                    (rebase.clone(), check),
                );
                readers.push(tokio::spawn(reader));
            }
            Ok(None) if !source.in_band_end => break EndReason::Finished,
            Ok(None) => {
                // The end marker is in the last group: let the readers get to it.
                for reader in readers.drain(..) {
                    let _ = reader.await;
                }
                if said.cancelled.load(Ordering::SeqCst) {
                    break EndReason::Cancelled;
                }
                if said.finished.load(Ordering::SeqCst) {
                    break EndReason::Finished;
                }
                // Ended without the publisher saying so: the relay ended our subscription
                // (restarting, or the publisher's session died).
                let why = moq_net::Error::Transport(
                    "the relay ended the track without the publisher finishing it".into(),
                );
                match source.resubscribe(&why).await {
                    Ok((again, same)) => {
                        subscriber = again;
                        check_next = after_resubscribe(&mut subscriber, same, max_sequence);
                    }
                    Err(why) => break EndReason::Failed(why),
                }
            }
            Err(moq_net::Error::Cancel) => break EndReason::Cancelled,
            // The session dropped (a relay restart, a network blip): the same publisher comes
            // back through the reconnected session, in a newer generation.
            Err(e) => match source.resubscribe(&e).await {
                Ok((again, same)) => {
                    subscriber = again;
                    check_next = after_resubscribe(&mut subscriber, same, max_sequence);
                }
                Err(why) => break EndReason::Failed(why),
            },
        }
    };
    // Let the groups in flight deliver their frames before the stream reports its end.
    for reader in readers {
        let _ = reader.await;
    }
    end.send_replace(Some(reason));
}

/// After a resubscription: for the same publisher instance, skip the groups already seen (a
/// relay may serve them again from the publisher's cache: old audio) and return `false` (no new
/// publisher to rebase); otherwise return `true` so the first frame decides ([`Rebase`]).
fn after_resubscribe(
    subscriber: &mut moq_net::track::Subscriber,
    same_publisher: bool,
    max_sequence: Option<u64>,
) -> bool {
    if !same_publisher {
        return true;
    }
    if let Some(max) = max_sequence {
        subscriber.set_groups((max + 1)..);
    }
    false
}

/// Read one group's frames. A group holds one generation: once its first frame says which, the
/// reader drops the group if a newer one was seen, and stops as soon as a newer one shows up.
async fn read_group(
    mut group: moq_net::group::Consumer,
    container: Container,
    tx: mpsc::Sender<Packet>,
    newest: watch::Sender<u64>,
    said: Arc<InBandEnd>,
    (rebase, mut check): (Arc<Rebase>, bool),
) {
    let mut newer = newest.subscribe();
    let mut generation = None;
    loop {
        let frame = match generation {
            None => group.read_frame().await,
            Some(g) => tokio::select! {
                frame = group.read_frame() => frame,
                // A newer generation started: stop reading this one at once.
                _ = newer.wait_for(|n| *n > g) => return,
            },
        };
        let Ok(Some(frame)) = frame else { return };
        let mut frame = match decode(container, frame.payload) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(%e, "skipping a frame that does not parse");
                continue;
            }
        };
        frame.generation = rebase.generation(
            frame.generation,
            *newest.borrow(),
            std::mem::take(&mut check),
        );
        match frame.event {
            Some(Event::Cancel) => said.cancelled.store(true, Ordering::SeqCst),
            Some(Event::Finish) => said.finished.store(true, Ordering::SeqCst),
            _ => {}
        }
        let g = frame.generation;
        if generation.is_none() {
            if g < *newest.borrow() {
                return; // a late group of a flushed generation
            }
            newest.send_if_modified(|n| {
                let bumped = g > *n;
                *n = (*n).max(g);
                bumped
            });
            generation = Some(g);
        }
        if tx.send(Packet { frame }).await.is_err() {
            return;
        }
    }
}
