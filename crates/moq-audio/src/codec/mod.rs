//! Sample-level building blocks both sides use: PCM validation, Opus, resampling.
//!
//! - [`pcm`]: what callers may hand in (dtype, channels, finite values) and conversions.
//! - [`opus`]: libopus encoder and decoder (with its packet loss concealment).
//! - [`resample`]: rubato sample-rate conversion.

pub mod opus;
pub mod pcm;
pub mod resample;
