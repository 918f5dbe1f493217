//! Python bindings for moq-audio: the `moq_audio._native` module.
//!
//! Thin by design: conversion of Python values, releasing the GIL, mapping errors. Every
//! behaviour lives in the `moq-audio` crate. The Python package (`python/moq_audio`) wraps these
//! classes in async context managers and documents them in `_native.pyi`.

mod consumer;
mod data;
mod errors;
mod pcm;
mod player;
mod producer;
mod runtime;
mod session;

use pyo3::prelude::*;

/// The `moq_audio._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    runtime::configure();
    errors::register(m)?;
    m.add_class::<producer::AudioProducer>()?;
    m.add_class::<producer::FlushReport>()?;
    m.add_class::<producer::MarkEvent>()?;
    m.add_class::<producer::MarkEvents>()?;
    m.add_class::<consumer::AudioConsumer>()?;
    m.add_class::<consumer::AudioFrame>()?;
    m.add_class::<player::Player>()?;
    m.add_class::<player::PlayerReport>()?;
    m.add_class::<player::Segment>()?;
    m.add_class::<player::Arrival>()?;
    m.add_class::<player::JitterStats>()?;
    m.add_class::<producer::PendingWriteHandle>()?;
    m.add_class::<producer::ListenerPlayout>()?;
    m.add_class::<data::DataWriter>()?;
    m.add_class::<data::DataReader>()?;
    m.add_class::<data::DataBroadcast>()?;
    m.add_class::<session::NativeServer>()?;
    m.add_class::<session::NativeSession>()?;
    m.add_class::<session::ConnectionEvent>()?;
    m.add_class::<session::ConnectionEvents>()?;
    m.add_function(wrap_pyfunction!(session::serve, m)?)?;
    m.add_function(wrap_pyfunction!(session::connect, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_shutdown, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("WIRE_VERSION", moq_audio::wire::catalog::WIRE_VERSION)?;
    // So benchmarks can say what they measured: a debug build is several times slower.
    m.add(
        "BUILD_PROFILE",
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        },
    )?;
    Ok(())
}
