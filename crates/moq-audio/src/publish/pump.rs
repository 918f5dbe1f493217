//! The producer's task: encodes a little ahead, hands each frame to the track at its due time,
//! finishes the track.
//!
//! It encodes outside the lock and re-checks the generation before queueing what it encoded, and
//! it decides under the lock what goes on the track but writes it after (see
//! [`Shared::write_track`]), so `flush()` only ever waits for the queue lock, never for libopus,
//! the network or a writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encode::EncodePipeline;
use super::groups::TrackWrite;
use super::queue::{Shared, State, Status};

/// Frames the pump keeps encoded ahead of the pacer. Small, so a flush drops mostly unencoded
/// PCM and little CPU is spent on audio nobody hears.
const ENCODE_AHEAD: usize = 3;

/// How long a partial frame waits for more input before anything was sent in a generation.
const IDLE_PARTIAL: Duration = Duration::from_millis(200);

enum Job {
    Encode {
        samples: Vec<f32>,
        generation: u64,
    },
    /// Flush the resampler and pad the partial frame: at finish, or when the listener would
    /// otherwise starve with written audio stuck in a partial frame.
    Drain {
        generation: u64,
        finishing: bool,
    },
    Wait(Option<Instant>),
    Exit,
    /// The track ends with this batch of writes: then say `done`.
    Finished,
}

/// Run until the producer is finished or cancelled.
pub(crate) async fn run(shared: Arc<Shared>, mut pipeline: EncodePipeline) {
    let mut epoch = 0;
    let options = &shared.options;
    let in_frame = options.frame_duration.samples(options.sample_rate) * options.channels as usize;
    loop {
        let notified = shared.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut writes = Vec::new();
        let trash; // what a flush dropped, freed here with the lock let go
        let (job, st) = {
            let mut st = shared.lock();
            if st.generation != epoch {
                // A flush starts a new stream for the codec; a reconnect carries the stream on.
                let carried = st.carried_from == Some(epoch);
                epoch = st.generation;
                if !carried {
                    st.drained = false;
                    if let Err(e) = pipeline.reset() {
                        shared.fail(&mut st, e);
                    }
                }
            }
            // A flush or reconnect left its marker to us: before any frame of the new generation.
            st.take_cut(&mut writes);
            trash = std::mem::take(&mut st.trash);
            let job = next_job(&shared, &mut st, in_frame, &mut writes);
            (job, st)
        };
        let written = shared.write_track(st, writes);
        drop(trash);
        if let Err(e) = written {
            let mut st = shared.lock();
            if !st.is_closed() {
                shared.fail(&mut st, e);
            }
            drop(st);
            shared.space.notify_waiters();
            return;
        }
        let result = match job {
            Job::Exit => return,
            Job::Finished => {
                shared.done.send_replace(true);
                return;
            }
            Job::Wait(deadline) => {
                match deadline {
                    Some(at) => {
                        tokio::select! {
                            _ = notified => {}
                            _ = tokio::time::sleep_until(at.into()) => {}
                        }
                    }
                    None => notified.await,
                }
                continue;
            }
            Job::Encode {
                samples,
                generation,
            } => pipeline.push(&samples).map(|p| (p, generation, false)),
            Job::Drain {
                generation,
                finishing,
            } => pipeline.drain().map(|p| (p, generation, finishing)),
        };
        let mut st = shared.lock();
        st.in_encoder = 0;
        match result {
            Ok((packets, generation, drained)) if st.same_stream(generation) => {
                st.frames.extend(packets);
                st.codec_pending = pipeline.pending_samples();
                st.pipeline_pending = pipeline.has_pending();
                st.drained |= drained;
            }
            Ok(_) => {} // flushed while encoding: the generation check drops it
            Err(e) => {
                shared.fail(&mut st, e);
                drop(st);
                shared.space.notify_waiters();
                return;
            }
        }
        drop(st);
        shared.space.notify_waiters();
    }
}

/// Under the lock: hand out due frames (into `writes`), then decide what the pump does next.
fn next_job(shared: &Shared, st: &mut State, in_frame: usize, writes: &mut Vec<TrackWrite>) -> Job {
    if st.is_closed() {
        return Job::Exit;
    }
    // Pace: hand out every frame that is due (none while the session is down: they would go
    // nowhere; they wait here and go out in a new generation after the reconnect).
    let now = Instant::now();
    while !st.frames.is_empty() && st.may_send(now) {
        let Some(ts) = st.pacer.take(now) else { break };
        let packet = st.frames.pop_front().expect("non-empty");
        let generation = st.generation;
        writes.push(TrackWrite::Frame {
            timestamp_us: ts,
            generation,
            payload: packet,
        });
        let index = st.sent_frames;
        st.marks.sent(generation, index, ts, shared.frame_us());
        st.sent_frames += 1;
    }
    // Encode ahead.
    if st.frames.len() < ENCODE_AHEAD {
        if !st.pcm.is_empty() {
            let n = in_frame.min(st.pcm.len());
            let samples = st.pcm.take(n);
            st.in_encoder = n;
            return Job::Encode {
                samples,
                generation: st.generation,
            };
        }
        if st.status == Status::Finishing && !st.drained {
            return Job::Drain {
                generation: st.generation,
                finishing: true,
            };
        }
        // The writer paused (TTS idle, end of a sentence) with part of a frame written: once
        // that frame is due, send it padded with silence rather than hold the audio back (a
        // mark on it could never resolve, and the listener would starve anyway).
        if st.frames.is_empty()
            && st.pipeline_pending
            && !st.disconnected
            && now >= partial_deadline(shared, st)
        {
            st.pipeline_pending = false;
            return Job::Drain {
                generation: st.generation,
                finishing: false,
            };
        }
    }
    if st.status == Status::Finishing && st.drained && st.frames.is_empty() {
        // Say so in band: a relay that goes away also ends the track cleanly for its subscribers.
        st.take_finish(writes);
        st.status = Status::Finished;
        return Job::Finished;
    }
    Job::Wait(if st.disconnected {
        None // woken by the reconnect
    } else if let Some(t) = st.hold_until.filter(|t| now < *t) {
        Some(t) // or woken when someone subscribes
    } else if !st.frames.is_empty() {
        st.pacer.due()
    } else if st.pipeline_pending {
        Some(partial_deadline(shared, st))
    } else {
        None
    })
}

/// When a partial frame left by a pausing writer must go out padded: when the listener reaches
/// it (its due time plus the lead, so a writer that keeps pace with chunks of any size is never
/// padded), or, before anything was sent, after [`IDLE_PARTIAL`] without a write.
fn partial_deadline(shared: &Shared, st: &State) -> Instant {
    match st.pacer.due() {
        Some(due) => due + shared.options.lead,
        None => st.last_write + IDLE_PARTIAL,
    }
}
