//! [`PcmQueue`]: the written PCM not yet taken by the pump, kept as the writers' own buffers.
//!
//! A write moves its buffer in (a pointer, under the producer's lock) instead of copying its
//! samples into one ring: a ring that grows copies everything queued while the writer holds
//! the lock (megabytes for a TTS reply written at once), and `flush()` waited for that. The pump
//! copies out one Opus frame's worth at a time.

use std::collections::VecDeque;

/// Interleaved `f32` samples in write order, as a queue of chunks.
#[derive(Debug, Default)]
pub(crate) struct PcmQueue {
    chunks: VecDeque<Vec<f32>>,
    /// Samples of the front chunk already taken.
    front_taken: usize,
    /// Samples queued (all channels).
    len: usize,
}

impl PcmQueue {
    /// Samples queued (all channels).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queue `samples` without copying them.
    pub(crate) fn push(&mut self, samples: Vec<f32>) {
        if !samples.is_empty() {
            self.len += samples.len();
            self.chunks.push_back(samples);
        }
    }

    /// Take the first `n` samples (fewer if fewer are queued), copied into one buffer.
    pub(crate) fn take(&mut self, n: usize) -> Vec<f32> {
        let n = n.min(self.len);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let front = self.chunks.front().expect("len counts the chunks' samples");
            let from = self.front_taken;
            let count = (front.len() - from).min(n - out.len());
            out.extend_from_slice(&front[from..from + count]);
            self.front_taken += count;
            if self.front_taken == front.len() {
                self.chunks.pop_front();
                self.front_taken = 0;
            }
        }
        self.len -= n;
        out
    }

    /// Empty the queue and hand back what it held, so the caller can free it after it lets go
    /// of the producer's lock.
    pub(crate) fn take_all(&mut self) -> PcmQueue {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_across_chunks_in_write_order() {
        let mut q = PcmQueue::default();
        q.push(vec![1.0, 2.0, 3.0]);
        q.push(Vec::new());
        q.push(vec![4.0, 5.0]);
        assert_eq!(q.len(), 5);
        assert_eq!(q.take(2), vec![1.0, 2.0]);
        assert_eq!(q.take(2), vec![3.0, 4.0]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(10), vec![5.0]);
        assert!(q.is_empty());
        assert_eq!(q.take(1), Vec::<f32>::new());
    }

    #[test]
    fn take_all_leaves_it_empty_and_usable() {
        let mut q = PcmQueue::default();
        q.push(vec![1.0, 2.0]);
        q.take(1);
        let old = q.take_all();
        assert_eq!(old.len(), 1);
        assert!(q.is_empty());
        q.push(vec![7.0]);
        assert_eq!(q.take(5), vec![7.0]);
    }
}
