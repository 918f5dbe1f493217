//! The publish side: PCM in, paced Opus on a MoQ track out, with generation flush and marks.
//!
//! In the order the audio flows:
//! - [`options`]: [`ProducerOptions`] and the one place defaults live.
//! - [`encode`]: PCM → (resample) → Opus packets of one frame each.
//! - [`pacer`]: when each frame may go out, and its timestamp (only a lead ahead of playout).
//! - [`pcm_queue`](self): the written PCM not yet encoded, as the writers' own buffers.
//! - [`queue`](self): the state writers, `flush()` and the pump share under one lock.
//! - [`groups`](self): frames into MoQ groups under a lock of their own; what a flush resets;
//!   the marker that opens a generation's first group.
//! - [`pump`](self): the task that encodes ahead and hands frames out at their due time.
//! - [`producer`]: [`AudioProducer`], the public API (write, flush, mark, finish, cancel).
//! - [`marks`]: marks and heard-up-to, resolved from listener playout reports.

pub mod encode;
mod groups;
pub mod marks;
pub mod options;
pub mod pacer;
mod pcm_queue;
pub mod producer;
mod pump;
mod queue;

pub use marks::{Heard, ListenerPlayout, MarkEvent, MarkState};
pub use options::{OnDisconnect, ProducerOptions};
pub use producer::{AudioProducer, FlushReport, PendingWrite, PlayoutSink, WriteOutcome};
