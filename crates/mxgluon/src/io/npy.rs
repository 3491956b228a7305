//! NumPy's `.npy` format: one array.
//!
//! A file is `\x93NUMPY`, a version (1.0, 2.0 or 3.0), the header length (`u16`, or `u32`
//! from 2.0), and a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a
//! newline to a multiple of 64 bytes; the raw data follows.
//!
//! Reading accepts versions 1–3, little- and big-endian data (`<`, `>`, `|`, `=`), and
//! Fortran order (converted to row-major). Writing produces the bytes of NumPy 1.23's
//! `np.save` (version 1.0 unless the header needs 2.0).
//!
//! dtype mapping (descr ↔ [`DType`]):
//!
//! | descr | dtype | | descr | dtype |
//! |---|---|---|---|---|
//! | `<f4` | float32 | | `<i4` | int32 |
//! | `<f8` | float64 | | `<u4` | uint32 |
//! | `<f2` | float16 | | `<i8` | int64 |
//! | `\|u1` | uint8 | | `<u8` | uint64 |
//! | `\|i1` | int8 | | `<i2` | int16 |
//! | `\|b1` | bool | | `<u2` | uint16 |
//! | `<V2` | bfloat16 | | | |
//!
//! NumPy has no bfloat16: it is written as a 2-byte opaque type (`<V2`, which is how NumPy
//! stores `ml_dtypes.bfloat16` arrays, and how NumPy loads them back without `ml_dtypes`), and
//! any 2-byte void descr (`<V2`, `|V2`) reads as bfloat16. Structured, object, string,
//! complex and datetime descrs are refused with [`Error::UnsupportedByFormat`].
//!
//! ```
//! use mxgluon::{io::npy, nd::NDArray, Context};
//! let a = NDArray::from_vec(vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], &[2, 3], Context::cpu(0))?;
//! let bytes = npy::save_to_bytes(&a)?;
//! assert!(bytes.starts_with(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
//! assert_eq!(bytes.len(), 128 + 24);
//! let b = npy::load_from_bytes(&bytes)?;
//! assert_eq!(b.to_vec::<f32>()?, a.to_vec::<f32>()?);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::{atomic, byte_size, io_error, le_to_native, write_le};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::NDArray;

/// The first six bytes of an `.npy` file.
pub const MAGIC: &[u8] = b"\x93NUMPY";

const ALIGN: usize = 64;
/// The longest header read (1 MiB). NumPy's headers for the dtypes supported here are a few
/// hundred bytes; a longer one would describe over 100,000 dimensions.
const MAX_HEADER: u64 = 1 << 20;

/// What an `.npy` header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: DType,
    /// Shape (row-major after loading, whatever the file's order).
    pub shape: Vec<usize>,
    /// Whether the data is stored column-major.
    pub fortran_order: bool,
    /// Whether multi-byte elements are stored big-endian.
    pub big_endian: bool,
    /// Offset of the data from the start of the `.npy` bytes.
    pub data_offset: u64,
    /// Bytes of data.
    pub data_bytes: u64,
}

impl NpyHeader {
    /// Whether the data bytes are already row-major little-endian (readable as they are).
    pub fn is_plain(&self) -> bool {
        // Fortran order only matters when more than one axis is longer than 1.
        let reorder = self.fortran_order && self.shape.iter().filter(|&&d| d > 1).count() > 1;
        let swap = self.big_endian && self.dtype.size() > 1;
        !(reorder || swap)
    }
}

/// Where an `.npy` stream comes from, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) file: String,
    pub(crate) format: &'static str,
    /// Offset of the `.npy` bytes inside the file (for npz members stored uncompressed).
    pub(crate) base: u64,
}

impl Origin {
    pub(crate) fn bytes() -> Self {
        Origin {
            file: "<bytes>".into(),
            format: "npy",
            base: 0,
        }
    }

    pub(crate) fn invalid(
        &self,
        offset: u64,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Error {
        Error::InvalidFile {
            file: self.file.clone(),
            format: self.format,
            offset: self.base + offset,
            expected: expected.into(),
            found: found.into(),
        }
    }
}

fn descr_of(dtype: DType) -> &'static str {
    match dtype {
        DType::Float32 => "<f4",
        DType::Float64 => "<f8",
        DType::Float16 => "<f2",
        DType::UInt8 => "|u1",
        DType::Int32 => "<i4",
        DType::Int8 => "|i1",
        DType::Int64 => "<i8",
        DType::Bool => "|b1",
        DType::Int16 => "<i2",
        DType::UInt16 => "<u2",
        DType::UInt32 => "<u4",
        DType::UInt64 => "<u8",
        DType::BFloat16 => "<V2",
    }
}

/// Parses a descr such as `<f4`: (dtype, big-endian).
fn parse_descr(descr: &str) -> Option<(DType, bool)> {
    let (order, rest) = match descr.as_bytes().first()? {
        b'<' | b'=' | b'|' => (false, &descr[1..]),
        b'>' => (true, &descr[1..]),
        _ => (false, descr),
    };
    let d = match rest {
        "f4" => DType::Float32,
        "f8" => DType::Float64,
        "f2" | "e" => DType::Float16,
        "u1" | "B" => DType::UInt8,
        "i1" | "b" => DType::Int8,
        "b1" | "?" => DType::Bool,
        "i2" => DType::Int16,
        "u2" => DType::UInt16,
        "i4" => DType::Int32,
        "u4" => DType::UInt32,
        "i8" => DType::Int64,
        "u8" => DType::UInt64,
        "V2" => DType::BFloat16,
        _ => return None,
    };
    Some((d, order))
}

/// A value of the header dict.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    Other,
}

/// A tiny parser for the Python literal NumPy writes (a flat dict of strings, booleans and
/// integer tuples). Anything else becomes `Value::Other` or an error.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> Option<String> {
        self.ws();
        let q = *self.s.get(self.i)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = start + self.s.get(start..)?.iter().position(|&c| c == q)?;
        self.i = end + 1;
        std::str::from_utf8(&self.s[start..end])
            .ok()
            .map(str::to_string)
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match self.s.get(self.i)? {
            b'\'' | b'"' => self.string().map(Value::Str),
            b'T' if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Some(Value::Bool(true))
            }
            b'F' if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Some(Value::Bool(false))
            }
            b'(' => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    if self.eat(b')') {
                        return Some(Value::Tuple(v));
                    }
                    self.ws();
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    // Python 2 era files may write `3L`.
                    let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                    v.push(digits.parse::<u64>().ok()?);
                    self.eat(b'L');
                    if !self.eat(b',') {
                        return if self.eat(b')') {
                            Some(Value::Tuple(v))
                        } else {
                            None
                        };
                    }
                }
            }
            _ => {
                // A list (structured dtype) or anything else: skip to the matching bracket or
                // the next top-level comma.
                let mut depth = 0i32;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'[' | b'(' | b'{' => depth += 1,
                        b']' | b')' | b'}' if depth > 0 => depth -= 1,
                        b',' | b'}' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                Some(Value::Other)
            }
        }
    }
}

/// Parses the header dict text.
fn parse_dict(text: &[u8], origin: &Origin, at: u64) -> Result<NpyHeader> {
    let bad = |what: &str| {
        origin.invalid(
            at,
            "a header dict with 'descr', 'fortran_order' and 'shape'",
            what.to_string(),
        )
    };
    let mut p = Lit { s: text, i: 0 };
    if !p.eat(b'{') {
        return Err(bad("no opening '{'"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("a malformed key"))?;
        if !p.eat(b':') {
            return Err(bad("a key without ':'"));
        }
        let v = p.value().ok_or_else(|| bad("a malformed value"))?;
        match key.as_str() {
            "descr" => descr = Some(v),
            "fortran_order" => fortran = Some(v),
            "shape" => shape = Some(v),
            _ => {}
        }
        if !p.eat(b',') {
            if p.eat(b'}') {
                break;
            }
            return Err(bad("no ',' or '}' after a value"));
        }
    }
    let descr = match descr {
        Some(Value::Str(s)) => s,
        Some(_) => {
            return Err(Error::UnsupportedByFormat {
                format: "npy",
                what: "a structured dtype".into(),
                hint: "only plain numeric and bool arrays are supported".into(),
            })
        }
        None => return Err(bad("no 'descr'")),
    };
    let (dtype, big_endian) = parse_descr(&descr).ok_or_else(|| Error::UnsupportedByFormat {
        format: "npy",
        what: format!("dtype descr {descr:?}"),
        hint: "supported: float16/32/64, (u)int8/16/32/64, bool, and <V2 as bfloat16".into(),
    })?;
    let fortran_order = match fortran {
        Some(Value::Bool(b)) => b,
        _ => return Err(bad("no boolean 'fortran_order'")),
    };
    let shape: Vec<usize> = match shape {
        Some(Value::Tuple(v)) => v
            .into_iter()
            .map(usize::try_from)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("a dimension too large for this machine"))?,
        _ => return Err(bad("no tuple 'shape'")),
    };
    let data_bytes = byte_size(&shape, dtype.size())
        .filter(|_| crate::nd::shape_size(&shape).is_some())
        .ok_or_else(|| {
            origin.invalid(
                at,
                "a shape whose size fits in 64 bits",
                format!("{shape:?}"),
            )
        })?;
    Ok(NpyHeader {
        dtype,
        shape,
        fortran_order,
        big_endian,
        data_offset: 0,
        data_bytes,
    })
}

/// Reads and checks the header of an `.npy` stream whose total length is `len`.
pub(crate) fn read_header(r: &mut impl Read, len: u64, origin: &Origin) -> Result<NpyHeader> {
    let eof = |at: u64, what: &str| {
        origin.invalid(
            at,
            what.to_string(),
            format!("the end of the data after {len} bytes"),
        )
    };
    if len < 10 {
        return Err(eof(0, "the 10-byte .npy preamble"));
    }
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).map_err(|e| io_err(origin, e))?;
    if &pre[..6] != MAGIC {
        return Err(origin.invalid(
            0,
            "the magic \\x93NUMPY",
            format!("{:?}", String::from_utf8_lossy(&pre[..6])),
        ));
    }
    let (hlen, start) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|e| io_err(origin, e))?;
            (u16::from_le_bytes(b) as u64, 10u64)
        }
        2 | 3 => {
            if len < 12 {
                return Err(eof(8, "a 4-byte header length"));
            }
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| io_err(origin, e))?;
            (u32::from_le_bytes(b) as u64, 12u64)
        }
        v => {
            return Err(origin.invalid(
                6,
                "format version 1, 2 or 3",
                format!("version {v}.{}", pre[7]),
            ))
        }
    };
    if hlen > len - start {
        return Err(origin.invalid(
            start - 2,
            format!("a header of {hlen} bytes"),
            format!("only {} bytes after the preamble", len - start),
        ));
    }
    if hlen > MAX_HEADER {
        return Err(origin.invalid(
            start - 2,
            format!("a header of at most {MAX_HEADER} bytes"),
            format!("a header of {hlen} bytes"),
        ));
    }
    // Read incrementally: a compressed stream may end long before the length it claims.
    let mut text = Vec::new();
    r.take(hlen)
        .read_to_end(&mut text)
        .map_err(|e| io_err(origin, e))?;
    if text.len() as u64 != hlen {
        return Err(origin.invalid(
            start,
            format!("a header of {hlen} bytes"),
            format!("the end of the data after {} bytes", text.len()),
        ));
    }
    let mut h = parse_dict(&text, origin, start)?;
    h.data_offset = start + hlen;
    if h.data_bytes > len - h.data_offset {
        return Err(origin.invalid(
            h.data_offset,
            format!(
                "{} bytes of {} data for shape {:?}",
                h.data_bytes, h.dtype, h.shape
            ),
            format!("only {} bytes", len - h.data_offset),
        ));
    }
    Ok(h)
}

fn io_err(origin: &Origin, e: std::io::Error) -> Error {
    Error::Io {
        path: origin.file.clone(),
        source: e,
    }
}

/// Converts raw file-order data to a row-major native array.
pub(crate) fn array_from_raw(h: &NpyHeader, raw: &[u8], ctx: Context) -> Result<NDArray> {
    let es = h.dtype.size();
    let a = NDArray::for_overwrite(&h.shape, h.dtype, ctx)?;
    a.write_bytes(|dst| {
        let reorder = !h.is_plain() && h.fortran_order;
        if !reorder {
            dst.copy_from_slice(raw);
        } else {
            fortran_to_c(raw, dst, &h.shape, es);
        }
        if h.big_endian && es > 1 {
            for c in dst.chunks_exact_mut(es) {
                c.reverse();
            }
        }
        le_to_native(h.dtype, dst);
    });
    Ok(a)
}

/// Copies column-major `src` into row-major `dst` (elements of `es` bytes).
fn fortran_to_c(src: &[u8], dst: &mut [u8], shape: &[usize], es: usize) {
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    // C strides (in elements) of each axis.
    let mut cstride = vec![1usize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        cstride[k] = cstride[k + 1] * shape[k + 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut c = 0usize;
    for f in 0..n {
        dst[c * es..(c + 1) * es].copy_from_slice(&src[f * es..(f + 1) * es]);
        // advance the column-major multi-index: first axis fastest
        for ((i, &cs), &dim) in idx.iter_mut().zip(&cstride).zip(shape) {
            *i += 1;
            c += cs;
            if *i < dim {
                break;
            }
            c -= cs * dim;
            *i = 0;
        }
    }
}

/// Reads an `.npy` stream of `len` bytes into an array on `cpu(0)`.
pub(crate) fn read_npy(r: &mut impl Read, len: u64, origin: &Origin) -> Result<NDArray> {
    let h = read_header(r, len, origin)?;
    if h.is_plain() {
        let a = NDArray::for_overwrite(&h.shape, h.dtype, Context::cpu(0))?;
        a.write_bytes(|dst| -> Result<()> {
            r.read_exact(dst).map_err(|e| io_err(origin, e))?;
            le_to_native(h.dtype, dst);
            Ok(())
        })?;
        Ok(a)
    } else {
        // `read_header` proved data_bytes <= len.
        let mut raw = vec![0u8; h.data_bytes as usize];
        r.read_exact(&mut raw).map_err(|e| io_err(origin, e))?;
        array_from_raw(&h, &raw, Context::cpu(0))
    }
}

/// Loads an `.npy` file onto `cpu(0)`.
pub fn load(path: impl AsRef<Path>) -> Result<NDArray> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| io_error(path, e))?;
    let len = f.metadata().map_err(|e| io_error(path, e))?.len();
    let origin = Origin {
        file: path.display().to_string(),
        format: "npy",
        base: 0,
    };
    read_npy(&mut BufReader::with_capacity(1 << 16, f), len, &origin)
}

/// Parses `.npy` bytes into an array on `cpu(0)`.
pub fn load_from_bytes(bytes: &[u8]) -> Result<NDArray> {
    read_npy(&mut &bytes[..], bytes.len() as u64, &Origin::bytes())
}

fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The header NumPy 1.23's `np.save` writes for a C-order array (version 1.0, or 2.0 when
/// the header does not fit in 65535 bytes).
pub fn header_bytes(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        descr_of(dtype),
        shape_repr(shape)
    );
    let wrap = |prefix_len: usize| {
        let hlen = dict.len() + 1;
        let pad = ALIGN - (prefix_len + hlen) % ALIGN;
        (hlen + pad, pad)
    };
    let (total, pad) = wrap(10);
    let mut out = Vec::with_capacity(total + 12);
    out.extend_from_slice(MAGIC);
    if total <= u16::MAX as usize {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(total as u16).to_le_bytes());
    } else {
        let (total, _) = wrap(12);
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        let pad = total - dict.len() - 1;
        out.extend_from_slice(dict.as_bytes());
        out.extend(std::iter::repeat_n(b' ', pad));
        out.push(b'\n');
        return out;
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

pub(crate) fn write_npy(w: &mut impl Write, a: &NDArray) -> std::io::Result<()> {
    w.write_all(&header_bytes(a.dtype(), a.shape()))?;
    write_le(w, a)
}

/// Saves one array as `.npy` (atomically).
pub fn save(path: impl AsRef<Path>, a: &NDArray) -> Result<()> {
    atomic::write_atomic(path.as_ref(), true, |w| write_npy(w, a))
}

/// The bytes [`save`] would write.
pub fn save_to_bytes(a: &NDArray) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(a.nbytes() + 128);
    write_npy(&mut out, a).map_err(|e| io_err(&Origin::bytes(), e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    #[test]
    fn headers_match_numpy_1_23() {
        let h = header_bytes(DType::Float64, &[]);
        assert_eq!(&h[..10], b"\x93NUMPY\x01\x00v\x00");
        assert!(h.starts_with(
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), }"
        ));
        assert_eq!(h.len(), 128);
        assert_eq!(h[127], b'\n');
        let h = header_bytes(DType::Bool, &[2, 3]);
        assert!(String::from_utf8_lossy(&h).contains("'|b1'"));
        let h = header_bytes(DType::UInt16, &[3]);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (3,)"));
        // a header longer than 65535 bytes switches to version 2.0
        let long = vec![1usize; 30000];
        let h = header_bytes(DType::Float32, &long);
        assert_eq!(h[6], 2);
        assert_eq!(h.len() % 64, 0);
        let n = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
        assert_eq!(n + 12, h.len());
    }

    #[test]
    fn every_dtype_round_trips() {
        for dt in DType::ALL {
            let a = NDArray::arange(0.0, 6.0, 1.0, dt, cpu())
                .unwrap()
                .reshape(&[3, 2])
                .unwrap();
            let b = load_from_bytes(&save_to_bytes(&a).unwrap()).unwrap();
            assert_eq!(b.dtype(), dt);
            assert_eq!(b.shape(), &[3, 2]);
            assert_eq!(b.to_f64_vec(), a.to_f64_vec(), "{dt}");
        }
    }

    fn file(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend(((dict.len() + 1) as u16).to_le_bytes());
        v.extend(dict.as_bytes());
        v.push(b'\n');
        v.extend(data);
        v
    }

    #[test]
    fn fortran_order_and_big_endian_are_converted() {
        // column-major 2x3 [[0,1,2],[3,4,5]] stored as 0,3,1,4,2,5 (u16 big-endian)
        let data: Vec<u8> = [0u16, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let a = load_from_bytes(&file(">u2", true, "(2, 3)", &data)).unwrap();
        assert_eq!(a.to_vec::<u16>().unwrap(), vec![0, 1, 2, 3, 4, 5]);
        // 3-d Fortran
        let shape = [2usize, 3, 4];
        let mut f = [0i32; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    f[i + 2 * j + 6 * k] = (i * 12 + j * 4 + k) as i32;
                }
            }
        }
        let data: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = load_from_bytes(&file("<i4", true, "(2, 3, 4)", &data)).unwrap();
        assert_eq!(a.shape(), &shape);
        assert_eq!(a.to_vec::<i32>().unwrap(), (0..24).collect::<Vec<i32>>());
    }

    #[test]
    fn bad_headers_are_errors() {
        let ok = save_to_bytes(&NDArray::zeros(&[2, 2], DType::Float32, cpu()).unwrap()).unwrap();
        for n in 0..ok.len() {
            assert!(load_from_bytes(&ok[..n]).is_err(), "truncated to {n}");
        }
        let e = load_from_bytes(&file("<c8", false, "(2,)", &[0; 16])).unwrap_err();
        assert!(matches!(e, Error::UnsupportedByFormat { .. }), "{e}");
        let e = load_from_bytes(&file("<f4", false, "(99999999999, 99999999999)", &[0; 16]))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidFile { .. }), "{e}");
        let e = load_from_bytes(&file("<f4", false, "(2, -1)", &[0; 16])).unwrap_err();
        assert!(matches!(e, Error::InvalidFile { .. }), "{e}");
        let e =
            load_from_bytes(&file("<f4", false, "(184467440737095516160,)", &[0; 16])).unwrap_err();
        assert!(matches!(e, Error::InvalidFile { .. }), "{e}");
        let structured = b"\x93NUMPY\x01\x00\x40\x00{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n";
        let e = load_from_bytes(structured).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsupportedByFormat { .. } | Error::InvalidFile { .. }
            ),
            "{e}"
        );
    }
}
