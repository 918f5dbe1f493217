//! What goes on the wire, as pure data: no tasks, no sockets.
//!
//! - [`catalog`]: the hang catalog (`catalog.json`) with our `moqAudio` section.
//! - [`loc`]: audio frames — LOC with the generation (and flush/cancel markers) in every frame.
//! - [`playout`]: the listener's playout report (`playout.json`).

pub mod catalog;
pub mod loc;
pub mod playout;
