//! [`AudioConsumer`]: subscribe to a moq-audio (or plain hang Opus) broadcast and decode it.
//!
//! Groups are read concurrently (a group of the new generation must not wait behind a stalled
//! group of the old one), frames are decoded in arrival order, and a frame of a generation older
//! than one already yielded is dropped: the consumer never goes back in generation.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::catalog::{self, AudioDescription, CATALOG_TRACK};
use crate::generation::generation_of;
use crate::opus::{codec_rate, Decoder, OPUS_RATES};
use crate::resample::Resampler;
use crate::{Error, Result};

/// Decoded audio with its generation and media timestamp.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Interleaved `f32` PCM in [-1, 1]; `pcm.len() / channels` sample frames.
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

impl AudioFrame {
    /// Duration of the frame in µs.
    pub fn duration_us(&self) -> u64 {
        crate::pcm::samples_to_us(self.pcm.len(), self.sample_rate, self.channels)
    }
}

/// Settings for [`AudioConsumer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Output rate in Hz; `None` keeps the Opus rate from the catalog.
    pub sample_rate: Option<u32>,
    /// How long to wait for the catalog, default 10 s.
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
    /// The publisher cancelled (aborted) the track.
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

struct Packet {
    generation: u64,
    timestamp_us: u64,
    payload: bytes::Bytes,
}

/// Decoded audio frames of one broadcast, in arrival order, never going back in generation.
pub struct AudioConsumer {
    packets: mpsc::Receiver<Packet>,
    end: watch::Receiver<Option<EndReason>>,
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
    /// catalog has no Opus rendition; [`Error::InvalidInput`] for an output rate outside
    /// 8 000..=48 000 Hz.
    pub async fn new(broadcast: moq_net::broadcast::Consumer, options: ConsumerOptions) -> Result<Self> {
        let description = tokio::time::timeout(options.timeout, read_catalog(&broadcast))
            .await
            .map_err(|_| Error::Timeout(format!("the catalog of {:?}", broadcast.info().path)))??;
        let output_rate = options.sample_rate.unwrap_or(description.sample_rate);
        crate::pcm::check_format(output_rate, description.channels)?;
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
        let subscriber = track
            .subscribe(
                moq_net::track::Subscription::default()
                    .with_priority(hang::catalog::PRIORITY.audio)
                    .with_max_age(options.max_age),
            )
            .await?;
        // Start at the live edge: a listener joining mid-utterance must not replay the cached
        // groups behind it (they would play late, as stale audio). `max_age` still lets groups
        // after the edge arrive out of order.
        let mut subscriber = subscriber;
        if let Some(live) = track.latest() {
            subscriber.set_groups(live..);
        }
        let (tx, packets) = mpsc::channel(256);
        let (end_tx, end) = watch::channel(None);
        let shift = description.generation_shift;
        let task = tokio::spawn(read_groups(subscriber, shift, tx, end_tx));
        Ok(Self {
            packets,
            end,
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
    /// [`Error::Opus`] for a packet libopus cannot decode (the consumer stays usable);
    /// [`Error::Wire`] for a frame that is not in hang's legacy container.
    pub async fn next(&mut self) -> Result<Option<AudioFrame>> {
        loop {
            let Some(packet) = self.packets.recv().await else {
                return Ok(None);
            };
            match self.generation {
                Some(g) if packet.generation < g => continue, // stale: never go back
                Some(g) if packet.generation == g => {}
                _ => {
                    // A new generation: a new stream for the codec and resampler.
                    self.decoder.reset()?;
                    if let Some(r) = &mut self.resampler {
                        r.reset();
                    }
                    self.generation = Some(packet.generation);
                }
            }
            if packet.payload.is_empty() {
                // The start of a newer generation (a flush), before any of its audio.
                return Ok(Some(AudioFrame {
                    pcm: Vec::new(),
                    channels: self.description.channels,
                    sample_rate: self.output_rate,
                    generation: packet.generation,
                    timestamp_us: 0,
                }));
            }
            let mut pcm = self.decoder.decode(&packet.payload)?;
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
                generation: packet.generation,
                timestamp_us: packet.timestamp_us,
            }));
        }
    }

    /// How the track ended, once it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end.borrow().clone()
    }

    /// The highest generation yielded so far.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }
}

/// Wait for the first catalog of `broadcast` and describe its Opus rendition.
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

async fn read_groups(
    mut subscriber: moq_net::track::Subscriber,
    shift: Option<u32>,
    tx: mpsc::Sender<Packet>,
    end: watch::Sender<Option<EndReason>>,
) {
    let (newest_tx, newest) = watch::channel(0u64);
    let mut readers = Vec::new();
    let reason = loop {
        match subscriber.recv_group().await {
            Ok(Some(group)) => {
                let generation = shift.map_or(0, |s| generation_of(group.sequence, s));
                if generation < *newest_tx.borrow() {
                    continue; // a late group of a flushed generation
                }
                let newer = newest_tx.send_if_modified(|g| {
                    let newer = generation > *g;
                    *g = (*g).max(generation);
                    newer
                });
                if newer {
                    // Announce the generation before its audio: the group may be an empty flush
                    // marker, and listeners must cut over now, not with the next audio.
                    let marker = Packet {
                        generation,
                        timestamp_us: 0,
                        payload: bytes::Bytes::new(),
                    };
                    if tx.send(marker).await.is_err() {
                        break EndReason::Finished;
                    }
                }
                readers.retain(|h: &JoinHandle<()>| !h.is_finished());
                readers.push(tokio::spawn(read_group(group, generation, tx.clone(), newest.clone())));
            }
            Ok(None) => break EndReason::Finished,
            Err(moq_net::Error::Cancel) => break EndReason::Cancelled,
            Err(moq_net::Error::App(code)) if code == crate::generation::CANCEL_CODE => break EndReason::Cancelled,
            Err(e) => break EndReason::Failed(e.to_string()),
        }
    };
    // Let the groups in flight deliver their frames before the stream reports its end.
    for reader in readers {
        let _ = reader.await;
    }
    end.send_replace(Some(reason));
}

async fn read_group(
    mut group: moq_net::group::Consumer,
    generation: u64,
    tx: mpsc::Sender<Packet>,
    mut newest: watch::Receiver<u64>,
) {
    loop {
        let frame = tokio::select! {
            frame = group.read_frame() => frame,
            // A newer generation started: stop reading this one at once.
            _ = newest.wait_for(|g| *g > generation) => return,
        };
        let Ok(Some(frame)) = frame else { return };
        let Ok(decoded) = hang::container::Frame::decode(frame.payload) else { continue };
        let packet = Packet {
            generation,
            timestamp_us: decoded.timestamp.as_micros() as u64,
            payload: decoded.payload,
        };
        if tx.send(packet).await.is_err() {
            return;
        }
    }
}
