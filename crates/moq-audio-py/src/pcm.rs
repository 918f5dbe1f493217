//! Python PCM (numpy int16/float32, bytes of s16le) → the core's `Pcm`.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

/// PCM copied out of a Python object, owned so the GIL can be released while it is processed.
pub enum OwnedPcm {
    I16(Vec<i16>),
    F32(Vec<f32>),
}

impl OwnedPcm {
    pub fn as_pcm(&self) -> moq_audio::Pcm<'_> {
        match self {
            OwnedPcm::I16(v) => moq_audio::Pcm::I16(v),
            OwnedPcm::F32(v) => moq_audio::Pcm::F32(v),
        }
    }
}

fn check_shape(shape: &[usize], channels: u32) -> PyResult<()> {
    match shape {
        [_] => Ok(()),
        [_, c] if *c == channels as usize => Ok(()),
        [_, c] => Err(PyValueError::new_err(format!(
            "PCM array has {c} channels (shape {shape:?}) but the producer has {channels}; \
             pass shape (n,) or (n, {channels})"
        ))),
        _ => Err(PyValueError::new_err(format!(
            "PCM array must be 1-D (n,) or 2-D (n, channels), got {}-D shape {shape:?}",
            shape.len()
        ))),
    }
}

/// Copy PCM out of `obj`: a numpy array of int16 or float32 with shape (n,) or (n, channels),
/// or `bytes`/`bytearray` of little-endian int16.
///
/// Raises ValueError for any other dtype, a 3-D array, a channel mismatch or an odd byte count.
pub fn extract(obj: &Bound<'_, PyAny>, channels: u32) -> PyResult<OwnedPcm> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return bytes(b.as_bytes());
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return bytes(&b.to_vec());
    }
    if let Ok(a) = obj.cast::<PyArrayDyn<i16>>() {
        check_shape(a.shape(), channels)?;
        return Ok(OwnedPcm::I16(copy(a)));
    }
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
        check_shape(a.shape(), channels)?;
        return Ok(OwnedPcm::F32(copy(a)));
    }
    if let Ok(a) = obj.cast::<numpy::PyUntypedArray>() {
        return Err(PyValueError::new_err(format!(
            "PCM dtype {} is not supported: pass int16 or float32 (e.g. pcm.astype(numpy.float32))",
            a.dtype()
        )));
    }
    Err(PyValueError::new_err(format!(
        "PCM must be a numpy int16/float32 array or bytes of s16le, not {}",
        obj.get_type().name()?
    )))
}

fn bytes(data: &[u8]) -> PyResult<OwnedPcm> {
    moq_audio::codec::pcm::s16le_to_i16(data)
        .map(OwnedPcm::I16)
        .map_err(crate::errors::to_py)
}

/// Copy in logical (C, interleaved) order, whatever the array's strides.
fn copy<T: numpy::Element + Copy>(a: &Bound<'_, PyArrayDyn<T>>) -> Vec<T> {
    let ro = a.readonly();
    match ro.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => ro.as_array().iter().copied().collect(),
    }
}
