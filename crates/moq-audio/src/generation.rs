//! How a generation travels in-band: in the group sequence number.
//!
//! Generation `g` publishes its groups at sequences `g · 2^20`, `g · 2^20 + 1`, ... so every group
//! of a newer generation has a higher sequence than any group of an older one. MoQ delivers
//! newer groups first and lets subscribers skip older ones, so the new generation overtakes
//! stale audio even through a congested relay, and a listener learns of a flush from the very
//! first group of the new generation, in order with the audio. At every flush the producer opens
//! that first group at once, empty (a marker), so listeners cut over even if no new audio follows
//! for a while (the agent waits for the user to finish). The shift is declared in the
//! catalog ([`crate::catalog::MoqAudioSection::generation_shift`]) so other listeners can decode it.

/// Bits of the group sequence that number groups within one generation.
///
/// 2^20 groups of 100 ms is 29 hours of continuous speech per generation; a generation that
/// outlives that rolls over to the next generation number (listeners see it as a flush).
pub const GENERATION_SHIFT: u32 = 20;

/// Application error code a cancelled track is aborted with, so listeners can tell
/// [`crate::AudioProducer::cancel`] from a failure (0x4d41 = "MA").
pub const CANCEL_CODE: u16 = 0x4d41;

/// Groups available to one generation.
pub const GROUPS_PER_GENERATION: u64 = 1 << GENERATION_SHIFT;

/// The group sequence number of group `index` of generation `generation`.
///
/// `index` must be below [`GROUPS_PER_GENERATION`].
pub fn group_sequence(generation: u64, index: u64) -> u64 {
    debug_assert!(index < GROUPS_PER_GENERATION);
    (generation << GENERATION_SHIFT) | index
}

/// The generation a group sequence number belongs to, for a publisher that declared `shift`.
pub fn generation_of(sequence: u64, shift: u32) -> u64 {
    sequence >> shift
}

/// The group's index within its generation.
pub fn index_of(sequence: u64, shift: u32) -> u64 {
    sequence & ((1u64 << shift) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_round_trip() {
        for (g, i) in [(0, 0), (0, 5), (1, 0), (7, 1234), (1 << 30, GROUPS_PER_GENERATION - 1)] {
            let s = group_sequence(g, i);
            assert_eq!(generation_of(s, GENERATION_SHIFT), g);
            assert_eq!(index_of(s, GENERATION_SHIFT), i);
        }
    }

    #[test]
    fn every_group_of_a_newer_generation_sorts_after_the_older_one() {
        let last_of_old = group_sequence(3, GROUPS_PER_GENERATION - 1);
        let first_of_new = group_sequence(4, 0);
        assert!(first_of_new > last_of_old);
    }
}
