//! safetensors: `u64` header length, a JSON header (`{"name": {"dtype": "F32", "shape": [2,
//! 3], "data_offsets": [0, 24]}, ...}`, optionally `"__metadata__"`), then the data.
//!
//! Reading goes through the `safetensors` crate (which validates the header and every
//! offset) on a memory map of the file, so a large file is never read twice. Arrays come back
//! as a dict in data order, on `cpu(0)`.
//!
//! Writing streams each array's bytes straight from its memory into the (atomic) file; the
//! bytes are the ones `safetensors::serialize` produces for the same arrays (tensors sorted
//! by decreasing dtype alignment, then by name; the header padded with spaces to 8 bytes). A
//! list is written with the names `arr_0`, `arr_1`, ...; sparse arrays are refused.
//!
//! dtype mapping: `BOOL` bool, `U8` uint8, `I8` int8, `I16` int16, `U16` uint16, `F16`
//! float16, `BF16` bfloat16, `I32` int32, `U32` uint32, `F32` float32, `F64` float64, `I64`
//! int64, `U64` uint64; other safetensors dtypes (float8, complex, ...) are refused on reading.
//!
//! ```
//! use mxgluon::{io::{safetensors, ArrayList}, nd::NDArray, Context, DType};
//! let a = NDArray::ones(&[2, 2], DType::BFloat16, Context::cpu(0))?;
//! let bytes = safetensors::save_to_bytes(&ArrayList::from(vec![("a", a)]))?;
//! let back = safetensors::load_from_bytes(&bytes)?;
//! assert_eq!(back.get("a").unwrap().dtype(), DType::BFloat16);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensorError, SafeTensors};

use super::{array_from_le, atomic, write_le, ArrayList};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::{Array, NDArray};

const FORMAT: &str = "safetensors";

/// The safetensors dtype of a [`DType`].
pub fn to_st_dtype(d: DType) -> Dtype {
    match d {
        DType::Float32 => Dtype::F32,
        DType::Float64 => Dtype::F64,
        DType::Float16 => Dtype::F16,
        DType::BFloat16 => Dtype::BF16,
        DType::UInt8 => Dtype::U8,
        DType::Int8 => Dtype::I8,
        DType::Int16 => Dtype::I16,
        DType::UInt16 => Dtype::U16,
        DType::Int32 => Dtype::I32,
        DType::UInt32 => Dtype::U32,
        DType::Int64 => Dtype::I64,
        DType::UInt64 => Dtype::U64,
        DType::Bool => Dtype::BOOL,
    }
}

/// The [`DType`] of a safetensors dtype, if there is one.
pub fn from_st_dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::Float32,
        Dtype::F64 => DType::Float64,
        Dtype::F16 => DType::Float16,
        Dtype::BF16 => DType::BFloat16,
        Dtype::U8 => DType::UInt8,
        Dtype::I8 => DType::Int8,
        Dtype::I16 => DType::Int16,
        Dtype::U16 => DType::UInt16,
        Dtype::I32 => DType::Int32,
        Dtype::U32 => DType::UInt32,
        Dtype::I64 => DType::Int64,
        Dtype::U64 => DType::UInt64,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

fn invalid(
    file: &str,
    offset: u64,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Error {
    Error::InvalidFile {
        file: file.to_string(),
        format: FORMAT,
        offset,
        expected: expected.into(),
        found: found.into(),
    }
}

/// Maps the crate's error to ours; header problems point at byte 8 (the header's start),
/// size problems at byte 0.
fn st_error(file: &str, e: SafeTensorError) -> Error {
    let offset = match e {
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::HeaderTooLarge
        | SafeTensorError::InvalidHeaderLength => 0,
        _ => 8,
    };
    invalid(
        file,
        offset,
        "a valid safetensors header and data layout",
        e.to_string(),
    )
}

/// One tensor of a parsed file: name, dtype, shape, its bytes, and their offset in the file.
pub(crate) struct RawTensor<'a> {
    pub(crate) name: String,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: &'a [u8],
    pub(crate) offset: u64,
}

/// Parses and validates `bytes`; tensors in data order.
pub(crate) fn parse<'a>(bytes: &'a [u8], file: &str) -> Result<Vec<RawTensor<'a>>> {
    let (n, meta) = SafeTensors::read_metadata(bytes).map_err(|e| st_error(file, e))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| st_error(file, e))?;
    let base = 8 + n as u64;
    let mut infos: Vec<(String, usize, Dtype)> = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.data_offsets.0, info.dtype))
        .collect();
    infos.sort_by_key(|(_, off, _)| *off);
    let mut out = Vec::with_capacity(infos.len());
    for (name, off, dt) in infos {
        let dtype = from_st_dtype(dt).ok_or_else(|| Error::UnsupportedByFormat {
            format: FORMAT,
            what: format!("tensor '{name}' of dtype {dt:?}"),
            hint: "mxgluon arrays are float16/32/64, bfloat16, (u)int8/16/32/64 or bool".into(),
        })?;
        let view = st.tensor(&name).map_err(|e| st_error(file, e))?;
        let shape = view.shape().to_vec();
        if crate::nd::shape_size(&shape).is_none() {
            return Err(invalid(
                file,
                8,
                format!("tensor '{name}': a shape with an addressable size"),
                format!("{shape:?}"),
            ));
        }
        out.push(RawTensor {
            name,
            dtype,
            shape,
            data: view.data(),
            offset: base + off as u64,
        });
    }
    Ok(out)
}

fn load_impl(bytes: &[u8], file: &str) -> Result<ArrayList> {
    let tensors = parse(bytes, file)?;
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let a = array_from_le(t.data, &t.shape, t.dtype, Context::cpu(0))?;
        out.push((t.name, Array::Dense(a)));
    }
    Ok(ArrayList::Dict(out))
}

/// Loads a safetensors file (memory-mapped) into a dict on `cpu(0)`.
pub fn load(path: impl AsRef<Path>) -> Result<ArrayList> {
    let path = path.as_ref();
    let map = super::view::map_file(path)?;
    load_impl(&map, &path.display().to_string())
}

/// Parses safetensors bytes into a dict on `cpu(0)`.
pub fn load_from_bytes(bytes: &[u8]) -> Result<ArrayList> {
    load_impl(bytes, "<bytes>")
}

/// Dense arrays with distinct names, in the order the crate's writer uses.
fn ordered(data: &ArrayList) -> Result<Vec<(String, NDArray)>> {
    let mut seen = HashSet::new();
    let mut v = Vec::with_capacity(data.len());
    for (name, a) in data.clone().into_named() {
        if !seen.insert(name.clone()) {
            return Err(Error::invalid_arg(
                "safetensors save",
                format!("the name '{name}' appears twice; tensors need distinct names"),
            ));
        }
        match a {
            Array::Dense(d) => v.push((name, d)),
            other => {
                return Err(Error::UnsupportedByFormat {
                    format: FORMAT,
                    what: format!("'{name}', a {} array", other.stype()),
                    hint: "safetensors has no sparse storage; convert it to dense first (ArrayList::densified)".into(),
                })
            }
        }
    }
    v.sort_by(|(ln, la), (rn, ra)| {
        to_st_dtype(ra.dtype())
            .cmp(&to_st_dtype(la.dtype()))
            .then(ln.cmp(rn))
    });
    Ok(v)
}

/// The header (length word included) for tensors in this order.
fn header(tensors: &[(String, NDArray)]) -> Result<Vec<u8>> {
    let mut json = String::from("{");
    let mut offset = 0usize;
    for (i, (name, a)) in tensors.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let n = a.nbytes();
        let key = serde_json::to_string(name)
            .map_err(|e| Error::invalid_arg("safetensors save", e.to_string()))?;
        let dims: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
        json.push_str(&format!(
            "{key}:{{\"dtype\":\"{:?}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            to_st_dtype(a.dtype()),
            dims.join(","),
            offset,
            offset + n
        ));
        offset += n;
    }
    json.push('}');
    let mut h = json.into_bytes();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + h.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    Ok(out)
}

fn write_all(
    w: &mut impl Write,
    head: &[u8],
    tensors: &[(String, NDArray)],
) -> std::io::Result<()> {
    w.write_all(head)?;
    for (_, a) in tensors {
        write_le(w, a)?;
    }
    Ok(())
}

/// Saves dense arrays as safetensors, atomically.
pub fn save(path: impl AsRef<Path>, data: &ArrayList) -> Result<()> {
    let tensors = ordered(data)?;
    let head = header(&tensors)?;
    atomic::write_atomic(path.as_ref(), true, |w| write_all(w, &head, &tensors))
}

/// The bytes [`save`] would write.
pub fn save_to_bytes(data: &ArrayList) -> Result<Vec<u8>> {
    let tensors = ordered(data)?;
    let head = header(&tensors)?;
    let mut out =
        Vec::with_capacity(head.len() + tensors.iter().map(|(_, a)| a.nbytes()).sum::<usize>());
    write_all(&mut out, &head, &tensors).map_err(|e| Error::Io {
        path: "<bytes>".into(),
        source: e,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    struct V(NDArray);
    impl ::safetensors::View for &V {
        fn dtype(&self) -> Dtype {
            to_st_dtype(self.0.dtype())
        }
        fn shape(&self) -> &[usize] {
            self.0.shape()
        }
        fn data(&self) -> Cow<'_, [u8]> {
            Cow::Owned(self.0.read_bytes(|b| b.to_vec()))
        }
        fn data_len(&self) -> usize {
            self.0.nbytes()
        }
    }

    #[test]
    fn bytes_equal_the_crates_serializer() {
        let ctx = Context::cpu(0);
        let arrays: Vec<(String, NDArray)> = DType::ALL
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                (
                    format!("t{}\"{}", 12 - i, d),
                    NDArray::arange(0.0, (i + 1) as f64, 1.0, d, ctx).unwrap(),
                )
            })
            .collect();
        let ours = save_to_bytes(&ArrayList::from(arrays.clone())).unwrap();
        let views: Vec<(String, V)> = arrays
            .iter()
            .map(|(n, a)| (n.clone(), V(a.clone())))
            .collect();
        let theirs =
            ::safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), None).unwrap();
        assert_eq!(ours, theirs);
        let back = load_from_bytes(&ours).unwrap();
        for (n, a) in &arrays {
            let b = back.get(n).unwrap().to_dense().unwrap();
            assert_eq!((b.dtype(), b.to_f64_vec()), (a.dtype(), a.to_f64_vec()));
        }
    }

    #[test]
    fn refuses_sparse_and_garbage() {
        let d = NDArray::zeros(&[2, 2], DType::Float32, Context::cpu(0)).unwrap();
        let sp = Array::Dense(d.clone())
            .tostype(crate::StorageType::RowSparse)
            .unwrap();
        assert!(matches!(
            save_to_bytes(&ArrayList::from(vec![("s", sp)])),
            Err(Error::UnsupportedByFormat { .. })
        ));
        let good = save_to_bytes(&ArrayList::from(vec![("a", d)])).unwrap();
        for n in 0..good.len() {
            assert!(
                matches!(load_from_bytes(&good[..n]), Err(Error::InvalidFile { .. })),
                "truncated to {n}"
            );
        }
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            load_from_bytes(&huge),
            Err(Error::InvalidFile { offset: 0, .. })
        ));
    }
}
