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
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            sample_rate: None,
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(2),
        }
    }
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
    cancelled: Arc<AtomicBool>,
}

impl EndWatch {
    /// How the track ended, once it has: [`EndReason::Cancelled`] after the publisher's cancel
    /// marker even when the track then ended cleanly (a relay passes a finish, not our code).
    pub fn get(&self) -> Option<EndReason> {
        let end = self.end.borrow().clone()?;
        Some(match end {
            EndReason::Finished if self.cancelled.load(Ordering::SeqCst) => EndReason::Cancelled,
            end => end,
        })
    }

    /// Wait until the track ended.
    pub async fn ended(&mut self) -> EndReason {
        let _ = self.end.wait_for(Option::is_some).await;
        self.get().unwrap_or_else(|| EndReason::Failed("the consumer was dropped".into()))
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
    pub async fn new(broadcast: moq_net::broadcast::Consumer, options: ConsumerOptions) -> Result<Self> {
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

        let track = broadcast.track(&description.track)?;
        let mut subscriber = track
            .subscribe(
                moq_net::track::Subscription::default()
                    .with_priority(hang::catalog::PRIORITY.audio)
                    .with_max_age(options.max_age),
            )
            .await?;
        // Start at the live edge: a listener joining mid-utterance must not replay the cached
        // groups behind it (they would play late, as stale audio). `max_age` still lets groups
        // after the edge arrive out of order.
        if let Some(live) = track.latest() {
            subscriber.set_groups(live..);
        }
        let (tx, packets) = mpsc::channel(256);
        let (end_tx, end) = watch::channel(None);
        let task = tokio::spawn(read_groups(subscriber, description.container, tx, end_tx));
        Ok(Self {
            packets,
            end: EndWatch {
                end,
                cancelled: Arc::new(AtomicBool::new(false)),
            },
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
            let Some(Packet { frame }) = self.packets.recv().await else {
                return Ok(None);
            };
            match self.generation {
                Some(g) if frame.generation < g => continue, // stale: never go back
                Some(g) if frame.generation == g => {}
                _ => {
                    // A new generation: a new stream for the codec and resampler.
                    self.decoder.reset()?;
                    if let Some(r) = &mut self.resampler {
                        r.reset();
                    }
                    self.generation = Some(frame.generation);
                }
            }
            if frame.event.is_some() || frame.payload.is_empty() {
                if frame.event == Some(Event::Cancel) {
                    self.end.cancelled.store(true, Ordering::SeqCst);
                }
                // A marker: the start of a newer generation (a flush or a cancel), no audio.
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
            if frame.event == Some(Event::Cancel) {
                self.end.cancelled.store(true, Ordering::SeqCst);
            }
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
    tx: mpsc::Sender<Packet>,
    end: watch::Sender<Option<EndReason>>,
) {
    let newest = watch::channel(0u64).0;
    let mut readers = Vec::new();
    let reason = loop {
        match subscriber.recv_group().await {
            Ok(Some(group)) => {
                readers.retain(|h: &JoinHandle<()>| !h.is_finished());
                readers.push(tokio::spawn(read_group(group, container, tx.clone(), newest.clone())));
            }
            Ok(None) => break EndReason::Finished,
            Err(moq_net::Error::Cancel) => break EndReason::Cancelled,
            Err(e) => break EndReason::Failed(e.to_string()),
        }
    };
    // Let the groups in flight deliver their frames before the stream reports its end.
    for reader in readers {
        let _ = reader.await;
    }
    end.send_replace(Some(reason));
}

/// Read one group's frames. A group holds one generation: once its first frame says which, the
/// reader drops the group if a newer one was seen, and stops as soon as a newer one shows up.
async fn read_group(
    mut group: moq_net::group::Consumer,
    container: Container,
    tx: mpsc::Sender<Packet>,
    newest: watch::Sender<u64>,
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
        let frame = match decode(container, frame.payload) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(%e, "skipping a frame that does not parse");
                continue;
            }
        };
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
