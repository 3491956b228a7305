//! MXNet's NDArray file format (`mx.nd.save` / `mx.nd.load`, `.params` files of
//! `save_parameters`, `ParameterDict.save` and `export`).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! u64 0x112 | u64 0 | u64 n_arrays | n_arrays records | u64 n_names | n_names × (u64 len, bytes)
//! ```
//!
//! A record is one of four versions, all read here:
//!
//! | version | first word | layout |
//! |---|---|---|
//! | V3 | `0xF993FACA` | as V2, written in MXNet's np-shape mode: a 0-d shape is a scalar; dense only |
//! | V2 | `0xF993FAC9` | `i32 stype`, [sparse: storage shape], shape, `i32 dev_type, dev_id`, `i32 dtype flag`, [sparse: aux flags + shapes], data, [aux data] |
//! | V1 | `0xF993FAC8` | shape, context, dtype flag, dense data |
//! | V0 | anything else | that word is `ndim`, then `ndim × u32` dims, context, dtype flag, dense data |
//!
//! Shapes are `i32 ndim` + `ndim × i64` (V0: `u32`). Row-sparse records carry one aux array
//! (row indices), CSR records two (`indptr`, then column indices). A dict save lists one name
//! per array; a list save has no names (`n_names == 0`), and loading gives back a list.
//!
//! Writing produces MXNet 1.9.1's bytes exactly: V2 records (V3 with
//! [`SaveOptions::np_shape`]), each array's own context (`cpu(3)` is written as device type 1,
//! id 3). Loading puts every array on `cpu(0)`, as MXNet does for CPU records (and for GPU
//! records on a machine without a GPU); the saved context stays available in
//! [`RecordInfo`].
//!
//! ```
//! use mxgluon::{nd, Context, DType};
//! let w = nd::NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], Context::cpu(0))?;
//! let bytes = nd::save_to_bytes(&vec![("w", w)].into())?;
//! assert_eq!(bytes.len(), 0x69); // the hexdump of spec §8.6
//! let loaded = nd::load_from_bytes(&bytes)?;
//! assert!(loaded.is_dict());
//! let back = loaded.get("w").unwrap().to_dense()?;
//! assert_eq!((back.shape(), back.dtype()), (&[2usize, 3][..], DType::Float32));
//! assert_eq!(loaded.records()[0].saved_context(), Some(Context::cpu(0)));
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::{atomic, byte_size, io_error, le_to_native, write_le, ArrayList};
use crate::context::{Context, DeviceType};
use crate::dtype::{DType, StorageType};
use crate::error::{Error, Result};
use crate::nd::{Array, CSRNDArray, NDArray, RowSparseNDArray};

/// First word of a file (`kMXAPINDArrayListMagic`).
pub const LIST_MAGIC: u64 = 0x112;
/// Record magic of version 1.
pub const V1_MAGIC: u32 = 0xF993_FAC8;
/// Record magic of version 2 (legacy shape semantics; what MXNet writes by default).
pub const V2_MAGIC: u32 = 0xF993_FAC9;
/// Record magic of version 3 (np-shape semantics).
pub const V3_MAGIC: u32 = 0xF993_FACA;

const FORMAT: &str = "MXNet .params";
/// The smallest record that holds an array: V0 with one dimension of size 0
/// (`ndim`, one dim, two context words, a dtype flag).
const MIN_RECORD: u64 = 20;

/// The version of one array record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordVersion {
    /// No magic: the oldest layout, `u32` dims.
    V0,
    /// `0xF993FAC8`: `i64` dims, dense only.
    V1,
    /// `0xF993FAC9`: storage types; MXNet's default.
    V2,
    /// `0xF993FACA`: np-shape semantics (0-d scalars, dense only).
    V3,
}

impl RecordVersion {
    /// `"V0"` ... `"V3"`.
    pub fn name(self) -> &'static str {
        match self {
            RecordVersion::V0 => "V0",
            RecordVersion::V1 => "V1",
            RecordVersion::V2 => "V2",
            RecordVersion::V3 => "V3",
        }
    }
}

/// What a file says about one record besides the array itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Record version.
    pub version: RecordVersion,
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// Byte offset of the record's data (values, then index arrays).
    pub data_offset: u64,
    /// Bytes of data (values and index arrays).
    pub data_bytes: u64,
    /// Device type code written in the record (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared).
    pub saved_device_type: i32,
    /// Device id written in the record.
    pub saved_device_id: i32,
}

impl RecordInfo {
    /// The context the array was saved from, if the record names a valid one.
    pub fn saved_context(&self) -> Option<Context> {
        let t = DeviceType::from_code(self.saved_device_type).ok()?;
        let id = u32::try_from(self.saved_device_id).ok()?;
        Some(Context::new(t, id))
    }
}

/// What [`load`] returns: the arrays (a list or a dict, as saved) and one [`RecordInfo`] per
/// array, in the same order. Dereferences to the [`ArrayList`].
///
/// A dict file that repeats a name loads like MXNet's Python `nd.load`: one entry per name,
/// at the position of its first occurrence, holding the last value.
#[derive(Clone, Debug)]
pub struct Loaded {
    arrays: ArrayList,
    records: Vec<RecordInfo>,
}

impl Loaded {
    /// The arrays.
    pub fn arrays(&self) -> &ArrayList {
        &self.arrays
    }

    /// The arrays, consuming `self`.
    pub fn into_arrays(self) -> ArrayList {
        self.arrays
    }

    /// One record description per array, in the arrays' order.
    pub fn records(&self) -> &[RecordInfo] {
        &self.records
    }
}

impl std::ops::Deref for Loaded {
    type Target = ArrayList;
    fn deref(&self) -> &ArrayList {
        &self.arrays
    }
}

/// How [`save_with`] writes.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    np_shape: bool,
    durable: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            np_shape: false,
            durable: true,
        }
    }
}

impl SaveOptions {
    /// The defaults: V2 records, `fsync` before the rename.
    pub fn new() -> Self {
        SaveOptions::default()
    }

    /// Write V3 records, as MXNet does in np-shape mode (`mx.util.np_shape(True)`): 0-d arrays
    /// become scalars instead of being refused, and sparse arrays are refused (MXNet cannot
    /// save them in that mode). Such files load in MXNet only in np-shape mode.
    pub fn np_shape(mut self, on: bool) -> Self {
        self.np_shape = on;
        self
    }

    /// Whether to `fsync` the file and its folder (default `true`). Without it the replacement
    /// is still atomic for other processes, but a power loss may lose the new contents.
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }
}

/// How [`load_with`] reads.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    keep_context: bool,
}

impl LoadOptions {
    /// The defaults: every array on `cpu(0)`, as MXNet.
    pub fn new() -> Self {
        LoadOptions::default()
    }

    /// Put each array on the host context it was saved from (`cpu(3)` stays `cpu(3)`;
    /// `cpu_pinned` and `cpu_shared` are kept too) instead of `cpu(0)`. GPU records still
    /// load on `cpu(0)`. Saving such arrays again reproduces the file byte for byte.
    pub fn keep_context(mut self, on: bool) -> Self {
        self.keep_context = on;
        self
    }
}

// ================================================================================ reading

/// A byte source with a known length.
pub(crate) trait Source {
    fn pos(&self) -> u64;
    fn len(&self) -> u64;
    /// Fills `buf`; the caller has checked that enough bytes remain.
    fn read_into(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
    fn skip(&mut self, n: u64) -> std::io::Result<()>;
}

pub(crate) struct SliceSource<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl Source for SliceSource<'_> {
    fn pos(&self) -> u64 {
        self.pos as u64
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_into(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let end = self.pos + buf.len();
        buf.copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(())
    }
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.pos += n as usize;
        Ok(())
    }
}

struct FileSource {
    r: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Source for FileSource {
    fn pos(&self) -> u64 {
        self.pos
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read_into(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.r.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.r.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }
}

/// Reads integers and byte runs from a [`Source`], checking that each fits in what remains.
pub(crate) struct Reader<S> {
    pub(crate) src: S,
    file: String,
}

impl<S: Source> Reader<S> {
    pub(crate) fn new(src: S, file: String) -> Self {
        Reader { src, file }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.src.pos()
    }

    fn remaining(&self) -> u64 {
        self.src.len().saturating_sub(self.src.pos())
    }

    pub(crate) fn invalid(
        &self,
        offset: u64,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Error {
        Error::InvalidFile {
            file: self.file.clone(),
            format: FORMAT,
            offset,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Fails unless `n` more bytes remain.
    fn need(&self, n: u64, what: &str) -> Result<()> {
        let rem = self.remaining();
        if n > rem {
            return Err(self.invalid(
                self.pos(),
                format!("{what} ({n} bytes)"),
                if rem == 0 {
                    "the end of the data".to_string()
                } else {
                    format!("only {rem} bytes before the end of the data")
                },
            ));
        }
        Ok(())
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.file.clone(),
            source: e,
        }
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        self.need(N as u64, what)?;
        let mut b = [0u8; N];
        self.src.read_into(&mut b).map_err(|e| self.io(e))?;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.bytes(what)?))
    }

    /// Fills `buf` (checked against what remains first).
    fn read_into(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.need(buf.len() as u64, what)?;
        self.src.read_into(buf).map_err(|e| self.io(e))
    }

    pub(crate) fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        self.need(n, what)?;
        self.src.skip(n).map_err(|e| self.io(e))
    }
}

/// A shape as read: known dims, or "unknown" (MXNet's none array).
enum ShapeRead {
    Known(Vec<usize>),
    Unknown,
}

/// Everything in a record before its data.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub(crate) info: RecordInfo,
    pub(crate) stype: StorageType,
    /// Shape of the stored values (the logical shape for dense records).
    pub(crate) values_shape: Vec<usize>,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    /// Index arrays: row_sparse `[indices]`, csr `[indptr, indices]`.
    pub(crate) aux: Vec<(DType, Vec<usize>)>,
    pub(crate) values_bytes: u64,
    pub(crate) aux_bytes: Vec<u64>,
}

fn read_tshape<S: Source>(
    r: &mut Reader<S>,
    version: RecordVersion,
    what: &str,
) -> Result<ShapeRead> {
    let at = r.pos();
    let ndim = r.i32(&format!("{what}: ndim"))?;
    if ndim < 0 {
        if ndim == -1 && version == RecordVersion::V3 {
            return Ok(ShapeRead::Unknown);
        }
        return Err(r.invalid(
            at,
            format!("{what}: a non-negative ndim"),
            format!("ndim {ndim}"),
        ));
    }
    let ndim = ndim as u64;
    r.need(ndim * 8, &format!("{what}: {ndim} dimensions"))?;
    let mut dims = Vec::with_capacity(ndim as usize);
    let mut unknown = false;
    for i in 0..ndim {
        let at = r.pos();
        let d = r.i64(what)?;
        if d < 0 {
            if d == -1 && version == RecordVersion::V3 {
                unknown = true;
                continue;
            }
            return Err(r.invalid(
                at,
                format!("{what}: a non-negative size for dimension {i}"),
                d.to_string(),
            ));
        }
        dims.push(usize::try_from(d).map_err(|_| {
            r.invalid(
                at,
                format!("{what}: a dimension this machine can address"),
                d.to_string(),
            )
        })?);
    }
    Ok(if unknown {
        ShapeRead::Unknown
    } else {
        ShapeRead::Known(dims)
    })
}

fn read_dtype<S: Source>(r: &mut Reader<S>, what: &str) -> Result<DType> {
    let at = r.pos();
    let flag = r.i32(what)?;
    DType::from_flag(flag)
        .map_err(|_| r.invalid(at, format!("{what}: a type flag 0..=12"), flag.to_string()))
}

/// Reads a record header and checks that its data fits in what remains.
pub(crate) fn read_header<S: Source>(r: &mut Reader<S>) -> Result<Header> {
    let offset = r.pos();
    let magic = r.u32("a record magic (or a legacy ndim)")?;
    let none_record = |r: &Reader<S>| {
        r.invalid(
            offset,
            "an array with a known shape",
            "an undefined ('none') array record, which mxgluon does not represent",
        )
    };
    let version = match magic {
        V3_MAGIC => RecordVersion::V3,
        V2_MAGIC => RecordVersion::V2,
        V1_MAGIC => RecordVersion::V1,
        _ => RecordVersion::V0,
    };
    let mut stype = StorageType::Default;
    let mut storage_shape = None;
    let shape = match version {
        RecordVersion::V2 | RecordVersion::V3 => {
            let at = r.pos();
            let id = r.i32("storage type")?;
            stype = StorageType::from_id(id).map_err(|_| {
                r.invalid(
                    at,
                    "storage type 0 (default), 1 (row_sparse) or 2 (csr)",
                    id.to_string(),
                )
            })?;
            if version == RecordVersion::V3 && stype != StorageType::Default {
                return Err(r.invalid(
                    at,
                    "default storage (V3 records hold only dense arrays)",
                    stype.name(),
                ));
            }
            if stype != StorageType::Default {
                match read_tshape(r, version, "storage shape")? {
                    ShapeRead::Known(s) => storage_shape = Some(s),
                    ShapeRead::Unknown => return Err(none_record(r)),
                }
            }
            match read_tshape(r, version, "shape")? {
                ShapeRead::Known(s) if version == RecordVersion::V2 && s.is_empty() => {
                    return Err(none_record(r))
                }
                ShapeRead::Known(s) => s,
                ShapeRead::Unknown => return Err(none_record(r)),
            }
        }
        RecordVersion::V1 => match read_tshape(r, version, "shape")? {
            ShapeRead::Known(s) if !s.is_empty() => s,
            _ => return Err(none_record(r)),
        },
        RecordVersion::V0 => {
            let ndim = magic as u64;
            if ndim == 0 {
                return Err(none_record(r));
            }
            r.need(ndim * 4, &format!("shape: {ndim} legacy 32-bit dimensions"))?;
            let mut dims = Vec::with_capacity(ndim as usize);
            for _ in 0..ndim {
                dims.push(r.u32("shape")? as usize);
            }
            dims
        }
    };
    let saved_device_type = r.i32("device type")?;
    let saved_device_id = r.i32("device id")?;
    let dtype = read_dtype(r, "dtype")?;
    let n_aux = match stype {
        StorageType::Default => 0,
        StorageType::RowSparse => 1,
        StorageType::Csr => 2,
    };
    let mut aux = Vec::with_capacity(n_aux);
    for k in 0..n_aux {
        let what = if stype == StorageType::RowSparse || k == 1 {
            "indices"
        } else {
            "indptr"
        };
        let at = r.pos();
        let t = read_dtype(r, &format!("{what} dtype"))?;
        if t.is_float() || t == DType::Bool {
            return Err(r.invalid(at, format!("{what} dtype: an integer type"), t.name()));
        }
        match read_tshape(r, version, &format!("{what} shape"))? {
            ShapeRead::Known(s) => aux.push((t, s)),
            ShapeRead::Unknown => return Err(none_record(r)),
        }
    }
    let values_shape = storage_shape.clone().unwrap_or_else(|| shape.clone());
    check_sparse_shapes(r, offset, stype, &shape, &values_shape, &aux)?;
    let too_big = |r: &Reader<S>| {
        r.invalid(
            offset,
            "an array size that fits in 64 bits",
            "an overflowing size",
        )
    };
    let values_bytes = byte_size(&values_shape, dtype.size()).ok_or_else(|| too_big(r))?;
    let mut aux_bytes = Vec::with_capacity(aux.len());
    let mut total = values_bytes;
    for (t, s) in &aux {
        let b = byte_size(s, t.size()).ok_or_else(|| too_big(r))?;
        aux_bytes.push(b);
        total = total.checked_add(b).ok_or_else(|| too_big(r))?;
    }
    // The logical shape must be addressable too (for to_dense / NDArray views).
    if crate::nd::shape_size(&shape).is_none() {
        return Err(too_big(r));
    }
    let data_offset = r.pos();
    r.need(total, "the array data")?;
    Ok(Header {
        info: RecordInfo {
            version,
            offset,
            data_offset,
            data_bytes: total,
            saved_device_type,
            saved_device_id,
        },
        stype,
        values_shape,
        shape,
        dtype,
        aux,
        values_bytes,
        aux_bytes,
    })
}

fn check_sparse_shapes<S: Source>(
    r: &Reader<S>,
    offset: u64,
    stype: StorageType,
    shape: &[usize],
    values: &[usize],
    aux: &[(DType, Vec<usize>)],
) -> Result<()> {
    let fail = |what: String| r.invalid(offset, format!("consistent {stype} shapes"), what);
    match stype {
        StorageType::Default => Ok(()),
        StorageType::RowSparse => {
            if shape.is_empty() || values.len() != shape.len() || values[1..] != shape[1..] {
                return Err(fail(format!(
                    "storage shape {values:?} for logical shape {shape:?}"
                )));
            }
            if aux[0].1 != [values[0]] {
                return Err(fail(format!(
                    "{} row indices of shape {:?} for {} stored rows",
                    aux[0].0, aux[0].1, values[0]
                )));
            }
            Ok(())
        }
        StorageType::Csr => {
            if shape.len() != 2 || values.len() != 1 {
                return Err(fail(format!(
                    "storage shape {values:?} for logical shape {shape:?} (need 1-d and 2-d)"
                )));
            }
            if aux[0].1 != [shape[0].saturating_add(1)] || aux[1].1 != [values[0]] {
                return Err(fail(format!(
                    "indptr of shape {:?} and indices of shape {:?} for a {}x{} matrix with {} values",
                    aux[0].1, aux[1].1, shape[0], shape[1], values[0]
                )));
            }
            Ok(())
        }
    }
}

/// Reads one array record into memory on `ctx`.
fn read_array<S: Source>(r: &mut Reader<S>, h: &Header, ctx: Context) -> Result<Array> {
    let read = |r: &mut Reader<S>, shape: &[usize], dtype: DType, what: &str| -> Result<NDArray> {
        let a = NDArray::for_overwrite(shape, dtype, ctx)?;
        a.write_bytes(|b| -> Result<()> {
            r.read_into(b, what)?;
            le_to_native(dtype, b);
            Ok(())
        })?;
        Ok(a)
    };
    let values = read(r, &h.values_shape, h.dtype, "the array data")?;
    let mut aux = Vec::with_capacity(h.aux.len());
    for (t, s) in &h.aux {
        let a = read(r, s, *t, "the index data")?;
        aux.push(if *t == DType::Int64 {
            a
        } else {
            a.astype(DType::Int64)?
        });
    }
    let sparse_err = |e: Error| match e {
        Error::InvalidSparse { .. } => r.invalid(
            h.info.data_offset,
            format!("a valid {} array", h.stype),
            e.to_string(),
        ),
        other => other,
    };
    Ok(match h.stype {
        StorageType::Default => Array::Dense(values),
        StorageType::RowSparse => {
            let idx = aux
                .pop()
                .ok_or_else(|| Error::invalid_arg("load", "missing aux"))?;
            Array::RowSparse(RowSparseNDArray::new(values, idx, &h.shape).map_err(sparse_err)?)
        }
        StorageType::Csr => {
            let mut it = aux.into_iter();
            let (Some(indptr), Some(indices)) = (it.next(), it.next()) else {
                return Err(Error::invalid_arg("load", "missing aux"));
            };
            Array::Csr(CSRNDArray::new(values, indices, indptr, &h.shape).map_err(sparse_err)?)
        }
    })
}

/// The file-level parse: header, each record through `on_record`, then the names.
pub(crate) fn parse<S: Source, T>(
    r: &mut Reader<S>,
    mut on_record: impl FnMut(&mut Reader<S>, Header) -> Result<T>,
) -> Result<(Vec<T>, Option<Vec<String>>)> {
    let magic = r.u64("the file magic 0x112")?;
    if magic != LIST_MAGIC {
        return Err(r.invalid(0, "the file magic 0x112", format!("{magic:#x}")));
    }
    r.u64("the reserved word")?;
    let at = r.pos();
    let n = r.u64("the array count")?;
    let fits = r.remaining() / MIN_RECORD;
    if n > fits {
        return Err(r.invalid(
            at,
            format!(
                "an array count that fits in the {} remaining bytes (at most {fits})",
                r.remaining()
            ),
            n.to_string(),
        ));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let h = read_header(r)?;
        out.push(on_record(r, h)?);
    }
    let at = r.pos();
    let n_names = r.u64("the name count")?;
    if n_names != 0 && n_names != n {
        return Err(r.invalid(
            at,
            format!("0 or {n} names (one per array)"),
            format!("{n_names} names"),
        ));
    }
    if n_names == 0 {
        return Ok((out, None));
    }
    let mut names = Vec::with_capacity(n as usize);
    for i in 0..n_names {
        let at = r.pos();
        let len = r.u64("a name length")?;
        r.need(len, &format!("name {i}"))?;
        let mut b = vec![0u8; len as usize];
        r.read_into(&mut b, "a name")?;
        let s = String::from_utf8(b)
            .map_err(|_| r.invalid(at + 8, format!("name {i} in UTF-8"), "invalid UTF-8"))?;
        names.push(s);
    }
    Ok((out, Some(names)))
}

fn load_from<S: Source>(mut r: Reader<S>, opts: &LoadOptions) -> Result<Loaded> {
    let (records, names) = parse(&mut r, |r, h| {
        let ctx = match h.info.saved_context() {
            Some(c) if opts.keep_context && c.device_type().is_host() => c,
            _ => Context::cpu(0),
        };
        let a = read_array(r, &h, ctx)?;
        Ok((a, h.info))
    })?;
    Ok(assemble(records, names))
}

/// Pairs arrays with names; a repeated name keeps its first position and its last value.
pub(crate) fn assemble(records: Vec<(Array, RecordInfo)>, names: Option<Vec<String>>) -> Loaded {
    match names {
        None => {
            let (arrays, infos): (Vec<_>, Vec<_>) = records.into_iter().unzip();
            Loaded {
                arrays: ArrayList::List(arrays),
                records: infos,
            }
        }
        Some(names) => {
            let mut pos: HashMap<String, usize> = HashMap::with_capacity(names.len());
            let mut dict: Vec<(String, Array)> = Vec::with_capacity(names.len());
            let mut infos = Vec::with_capacity(names.len());
            for (name, (a, info)) in names.into_iter().zip(records) {
                if let Some(&i) = pos.get(&name) {
                    dict[i].1 = a;
                    infos[i] = info;
                } else {
                    pos.insert(name.clone(), dict.len());
                    dict.push((name, a));
                    infos.push(info);
                }
            }
            Loaded {
                arrays: ArrayList::Dict(dict),
                records: infos,
            }
        }
    }
}

/// Loads a `.params` file (MXNet's `nd.load`): every array on `cpu(0)`.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded> {
    load_with(path, &LoadOptions::default())
}

/// Loads a `.params` file with options.
pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Loaded> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let br = BufReader::with_capacity(1 << 16, file);
    let src = FileSource { r: br, pos: 0, len };
    load_from(Reader::new(src, path.display().to_string()), opts)
}

/// Parses `.params` bytes (MXNet's `nd.load_frombuffer`).
pub fn load_from_bytes(bytes: &[u8]) -> Result<Loaded> {
    load_from_bytes_with(bytes, &LoadOptions::default())
}

/// Parses `.params` bytes with options.
pub fn load_from_bytes_with(bytes: &[u8], opts: &LoadOptions) -> Result<Loaded> {
    let src = SliceSource {
        data: bytes,
        pos: 0,
    };
    load_from(Reader::new(src, "<bytes>".into()), opts)
}

// ================================================================================ writing

fn unsupported(what: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::UnsupportedByFormat {
        format: FORMAT,
        what: what.into(),
        hint: hint.into(),
    }
}

/// Checks that every array can be written with `opts`, before any byte is.
fn validate(data: &ArrayList, opts: &SaveOptions) -> Result<()> {
    for (i, (name, a)) in data.iter().enumerate() {
        let label = name.map_or_else(|| format!("array {i}"), |n| format!("array '{n}'"));
        if opts.np_shape && a.stype() != StorageType::Default {
            return Err(unsupported(
                format!(
                    "{label} of storage type {} in np-shape (V3) records",
                    a.stype()
                ),
                "MXNet saves only dense arrays in np-shape mode; save without np_shape",
            ));
        }
        if !opts.np_shape && a.shape().is_empty() {
            return Err(unsupported(
                format!("{label}, a 0-d array, in a legacy (V2) record (MXNet reads it as an undefined array)"),
                "reshape it to (1,) or save with SaveOptions::new().np_shape(true) (V3 records)",
            ));
        }
        if a.shape().iter().any(|&d| i64::try_from(d).is_err()) {
            return Err(unsupported(format!("{label}: a dimension beyond i64"), ""));
        }
        if i32::try_from(a.context().device_id()).is_err() {
            return Err(unsupported(
                format!(
                    "{label} on {}: the device id does not fit in 32 bits",
                    a.context()
                ),
                "",
            ));
        }
    }
    Ok(())
}

fn tshape_len(s: &[usize]) -> u64 {
    4 + 8 * s.len() as u64
}

fn record_len(a: &Array) -> u64 {
    let fixed = 4 + 4 + tshape_len(a.shape()) + 12;
    fixed
        + match a {
            Array::Dense(_) => 0,
            Array::RowSparse(r) => tshape_len(r.values().shape()) + 4 + tshape_len(&[0]),
            Array::Csr(_) => tshape_len(&[0]) + 2 * (4 + tshape_len(&[0])),
        }
        + a.stored_nbytes() as u64
}

/// Exact size of the file [`save_to_bytes`] produces.
fn encoded_len(data: &ArrayList) -> u64 {
    let names: u64 = match data {
        ArrayList::List(_) => 0,
        ArrayList::Dict(v) => v.iter().map(|(n, _)| 8 + n.len() as u64).sum(),
    };
    24 + data.iter().map(|(_, a)| record_len(a)).sum::<u64>() + 8 + names
}

fn put_tshape(w: &mut impl Write, s: &[usize]) -> std::io::Result<()> {
    w.write_all(&(s.len() as i32).to_le_bytes())?;
    for &d in s {
        // `validate` proved every dimension fits in i64.
        w.write_all(&(d as i64).to_le_bytes())?;
    }
    Ok(())
}

fn put_record(w: &mut impl Write, a: &Array, np_shape: bool) -> std::io::Result<()> {
    let magic = if np_shape { V3_MAGIC } else { V2_MAGIC };
    w.write_all(&magic.to_le_bytes())?;
    w.write_all(&a.stype().id().to_le_bytes())?;
    match a {
        Array::Dense(_) => {}
        Array::RowSparse(r) => put_tshape(w, r.values().shape())?,
        Array::Csr(c) => put_tshape(w, &[c.nnz()])?,
    }
    put_tshape(w, a.shape())?;
    let ctx = a.context();
    w.write_all(&ctx.device_type().code().to_le_bytes())?;
    // `validate` proved the id fits in i32.
    w.write_all(&(ctx.device_id() as i32).to_le_bytes())?;
    w.write_all(&a.dtype().flag().to_le_bytes())?;
    match a {
        Array::Dense(d) => write_le(w, d),
        Array::RowSparse(r) => {
            w.write_all(&DType::Int64.flag().to_le_bytes())?;
            put_tshape(w, &[r.nnz_rows()])?;
            write_le(w, r.values())?;
            write_le(w, r.indices())
        }
        Array::Csr(c) => {
            w.write_all(&DType::Int64.flag().to_le_bytes())?;
            put_tshape(w, &[c.shape()[0] + 1])?;
            w.write_all(&DType::Int64.flag().to_le_bytes())?;
            put_tshape(w, &[c.nnz()])?;
            write_le(w, c.data())?;
            write_le(w, c.indptr())?;
            write_le(w, c.indices())
        }
    }
}

fn write_all_records(
    w: &mut impl Write,
    data: &ArrayList,
    opts: &SaveOptions,
) -> std::io::Result<()> {
    w.write_all(&LIST_MAGIC.to_le_bytes())?;
    w.write_all(&0u64.to_le_bytes())?;
    w.write_all(&(data.len() as u64).to_le_bytes())?;
    for (_, a) in data.iter() {
        put_record(w, a, opts.np_shape)?;
    }
    match data {
        ArrayList::List(_) => w.write_all(&0u64.to_le_bytes()),
        ArrayList::Dict(v) => {
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            for (n, _) in v {
                w.write_all(&(n.len() as u64).to_le_bytes())?;
                w.write_all(n.as_bytes())?;
            }
            Ok(())
        }
    }
}

/// Saves arrays in MXNet's format (MXNet's `nd.save`), atomically: V2 records, each array's
/// own context recorded. A 0-d array is refused (see [`SaveOptions::np_shape`]).
pub fn save(path: impl AsRef<Path>, data: &ArrayList) -> Result<()> {
    save_with(path, data, &SaveOptions::default())
}

/// Saves with options.
pub fn save_with(path: impl AsRef<Path>, data: &ArrayList, opts: &SaveOptions) -> Result<()> {
    validate(data, opts)?;
    atomic::write_atomic(path.as_ref(), opts.durable, |w| {
        write_all_records(w, data, opts)
    })
}

/// The bytes [`save`] would write.
pub fn save_to_bytes(data: &ArrayList) -> Result<Vec<u8>> {
    save_to_bytes_with(data, &SaveOptions::default())
}

/// The bytes [`save_with`] would write.
pub fn save_to_bytes_with(data: &ArrayList, opts: &SaveOptions) -> Result<Vec<u8>> {
    validate(data, opts)?;
    let len = usize::try_from(encoded_len(data))
        .map_err(|_| Error::invalid_arg("save_to_bytes", "the file would not fit in memory"))?;
    let mut out = Vec::with_capacity(len);
    write_all_records(&mut out, data, opts).map_err(|e| Error::Io {
        path: "<bytes>".into(),
        source: e,
    })?;
    debug_assert_eq!(out.len(), len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn writes_the_spec_hexdumps() {
        // spec §8.6: dict {'w': float32 [[1,2,3],[4,5,6]]}
        let w = NDArray::from_vec(vec![1f32, 2., 3., 4., 5., 6.], &[2, 3], cpu()).unwrap();
        let b = save_to_bytes(&vec![("w", w)].into()).unwrap();
        assert_eq!(
            b,
            hex(
                "1201 0000 0000 0000 0000 0000 0000 0000 0100 0000 0000 0000 c9fa 93f9 0000 0000
                 0200 0000 0200 0000 0000 0000 0300 0000 0000 0000 0100 0000 0000 0000 0000 0000
                 0000 803f 0000 0040 0000 4040 0000 8040 0000 a040 0000 c040 0100 0000 0000 0000
                 0100 0000 0000 0000 77"
            )
        );
        // list [float64 [1.5]]
        let a = NDArray::from_vec(vec![1.5f64], &[1], cpu()).unwrap();
        let b = save_to_bytes(&a.into()).unwrap();
        assert_eq!(
            b,
            hex(
                "1201 0000 0000 0000 0000 0000 0000 0000 0100 0000 0000 0000 c9fa 93f9 0000 0000
                 0100 0000 0100 0000 0000 0000 0100 0000 0000 0000 0100 0000 0000 0000 0000 f83f
                 0000 0000 0000 0000"
            )
        );
        // empty dict: 32 bytes (magic, reserved, no arrays, no names)
        let b = save_to_bytes(&ArrayList::Dict(vec![])).unwrap();
        assert_eq!(
            b,
            hex("1201000000000000 0000000000000000 0000000000000000 0000000000000000")
        );
        assert!(load_from_bytes(&b).unwrap().arrays().is_empty());
        assert!(
            !load_from_bytes(&b).unwrap().is_dict(),
            "an empty dict loads as a list, like MXNet"
        );
    }

    #[test]
    fn sparse_records_match_the_spec() {
        let vals = NDArray::from_vec(vec![1f32, 2., 3., 4.], &[2, 2], cpu()).unwrap();
        let idx = NDArray::from_vec(vec![1i64, 3], &[2], cpu()).unwrap();
        let rsp = RowSparseNDArray::new(vals, idx, &[4, 2]).unwrap();
        let b = save_to_bytes(&vec![Array::from(rsp)].into()).unwrap();
        assert_eq!(
            &b[16..],
            &hex(
                "0100 0000 0000 0000 c9fa 93f9 0100 0000 0200 0000 0200 0000 0000 0000 0200 0000
                  0000 0000 0200 0000 0400 0000 0000 0000 0200 0000 0000 0000 0100 0000 0000 0000
                  0000 0000 0600 0000 0100 0000 0200 0000 0000 0000 0000 803f 0000 0040 0000 4040
                  0000 8040 0100 0000 0000 0000 0300 0000 0000 0000 0000 0000 0000 0000"
            )[..]
        );
        let l = load_from_bytes(&b).unwrap();
        let Array::RowSparse(r) = &l.iter().next().unwrap().1 else {
            panic!()
        };
        assert_eq!(r.indices_vec(), vec![1, 3]);

        let d = NDArray::from_vec(vec![5f32, 0., 6., 0., 7., 0.], &[2, 3], cpu()).unwrap();
        let c = CSRNDArray::from_dense(&d).unwrap();
        let b = save_to_bytes(&vec![Array::from(c)].into()).unwrap();
        assert_eq!(
            &b[16..],
            &hex(
                "0100 0000 0000 0000 c9fa 93f9 0200 0000 0100 0000 0300 0000 0000 0000 0200 0000
                  0200 0000 0000 0000 0300 0000 0000 0000 0100 0000 0000 0000 0000 0000 0600 0000
                  0100 0000 0300 0000 0000 0000 0600 0000 0100 0000 0300 0000 0000 0000 0000 a040
                  0000 c040 0000 e040 0000 0000 0000 0000 0200 0000 0000 0000 0300 0000 0000 0000
                  0000 0000 0000 0000 0200 0000 0000 0000 0100 0000 0000 0000 0000 0000 0000 0000"
            )[..]
        );
        let back = load_from_bytes(&b).unwrap();
        assert_eq!(
            back.iter()
                .next()
                .unwrap()
                .1
                .to_dense()
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            d.to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn contexts_are_recorded_and_loaded_on_cpu0() {
        let a = NDArray::from_vec(vec![1f32, 2.], &[2], Context::cpu(3)).unwrap();
        let a = a.astype(DType::Float16).unwrap();
        let b = save_to_bytes(&vec![("ab", a)].into()).unwrap();
        assert_eq!(&b[0x2c..0x38], &hex("0100 0000 0300 0000 0200 0000")[..]);
        let l = load_from_bytes(&b).unwrap();
        assert_eq!(l.get("ab").unwrap().context(), cpu());
        assert_eq!(l.records()[0].saved_context(), Some(Context::cpu(3)));
        let kept = load_from_bytes_with(&b, &LoadOptions::new().keep_context(true)).unwrap();
        assert_eq!(kept.get("ab").unwrap().context(), Context::cpu(3));
        assert_eq!(save_to_bytes(kept.arrays()).unwrap(), b);
    }

    #[test]
    fn zero_d_needs_np_shape_and_np_shape_refuses_sparse() {
        let s = NDArray::scalar(3.0f32, cpu()).unwrap();
        let list: ArrayList = vec![("s", s)].into();
        assert!(matches!(
            save_to_bytes(&list),
            Err(Error::UnsupportedByFormat { .. })
        ));
        let b = save_to_bytes_with(&list, &SaveOptions::new().np_shape(true)).unwrap();
        assert_eq!(
            &b[16..],
            &hex(
                "0100 0000 0000 0000 cafa 93f9 0000 0000 0000 0000 0100 0000 0000 0000 0000 0000
                  0000 4040 0100 0000 0000 0000 0100 0000 0000 0000 73"
            )[..]
        );
        let back = load_from_bytes(&b).unwrap();
        assert_eq!(back.records()[0].version, RecordVersion::V3);
        assert_eq!(back.get("s").unwrap().shape(), &[] as &[usize]);
        let rsp = RowSparseNDArray::zeros(&[2, 2], DType::Float32, cpu()).unwrap();
        let sp: ArrayList = vec![Array::from(rsp)].into();
        assert!(save_to_bytes_with(&sp, &SaveOptions::new().np_shape(true)).is_err());
    }

    #[test]
    fn every_dtype_flag_round_trips() {
        let arrays: Vec<NDArray> = DType::ALL
            .iter()
            .map(|&d| {
                NDArray::arange(0.0, 6.0, 1.0, d, cpu())
                    .unwrap()
                    .reshape(&[2, 3])
                    .unwrap()
            })
            .collect();
        let b = save_to_bytes(&arrays.clone().into()).unwrap();
        let l = load_from_bytes(&b).unwrap();
        for ((_, got), want) in l.iter().zip(&arrays) {
            let got = got.to_dense().unwrap();
            assert_eq!((got.dtype(), got.shape()), (want.dtype(), want.shape()));
            assert_eq!(got.to_f64_vec(), want.to_f64_vec(), "{}", want.dtype());
        }
        assert_eq!(save_to_bytes(l.arrays()).unwrap(), b);
    }

    #[test]
    fn gpu_records_load_on_cpu() {
        // spec §8.6: a V2 float32 (1,) record saved from gpu(0), value 0
        let mut b = vec![];
        b.extend(LIST_MAGIC.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(hex(
            "c9fa93f9 00000000 01000000 0100000000000000 02000000 00000000 00000000 00000000",
        ));
        b.extend(0u64.to_le_bytes());
        for opts in [LoadOptions::new(), LoadOptions::new().keep_context(true)] {
            let l = load_from_bytes_with(&b, &opts).unwrap();
            let a = l.iter().next().unwrap().1;
            assert_eq!((a.context(), a.shape()), (cpu(), &[1usize][..]));
            assert_eq!(l.records()[0].saved_context(), Some(Context::gpu(0)));
        }
    }

    #[test]
    fn reads_v0_and_v1_records() {
        // V0: ndim 1, dim 3 (u32), cpu(0), float32, data
        let mut b = vec![];
        b.extend(LIST_MAGIC.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(hex("01000000 03000000 01000000 00000000 00000000"));
        b.extend([1f32, 2., 3.].iter().flat_map(|v| v.to_le_bytes()));
        // V1: magic, ndim 2 (i64 dims 1, 2), cpu(0), int32
        b.extend(V1_MAGIC.to_le_bytes());
        b.extend(hex(
            "02000000 0100000000000000 0200000000000000 01000000 00000000 04000000",
        ));
        b.extend([7i32, 8].iter().flat_map(|v| v.to_le_bytes()));
        b.extend(0u64.to_le_bytes());
        let l = load_from_bytes(&b).unwrap();
        assert!(!l.is_dict());
        let v: Vec<&Array> = l.iter().map(|(_, a)| a).collect();
        assert_eq!(
            v[0].to_dense().unwrap().to_vec::<f32>().unwrap(),
            vec![1., 2., 3.]
        );
        assert_eq!(v[1].shape(), &[1, 2]);
        assert_eq!(
            v[1].to_dense().unwrap().to_vec::<i32>().unwrap(),
            vec![7, 8]
        );
        assert_eq!(l.records()[0].version, RecordVersion::V0);
        assert_eq!(l.records()[1].version, RecordVersion::V1);
        // re-saving writes V2
        assert_eq!(
            load_from_bytes(&save_to_bytes(l.arrays()).unwrap())
                .unwrap()
                .records()[1]
                .version,
            RecordVersion::V2
        );
    }

    #[test]
    fn duplicate_names_keep_first_position_and_last_value() {
        let a = |v: f32| NDArray::from_vec(vec![v], &[1], cpu()).unwrap();
        let b = save_to_bytes(&vec![("x", a(1.)), ("y", a(2.)), ("x", a(3.))].into()).unwrap();
        let l = load_from_bytes(&b).unwrap();
        assert_eq!(l.names().unwrap(), vec!["x", "y"]);
        assert_eq!(
            l.get("x")
                .unwrap()
                .to_dense()
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![3.]
        );
        assert_eq!(l.records().len(), 2);
    }

    fn err_at(b: &[u8]) -> (u64, String) {
        match load_from_bytes(b) {
            Err(Error::InvalidFile {
                offset, expected, ..
            }) => (offset, expected),
            other => panic!("expected InvalidFile, got {other:?}"),
        }
    }

    #[test]
    fn hostile_inputs_name_the_offset() {
        let w = NDArray::from_vec(vec![1f32, 2., 3., 4., 5., 6.], &[2, 3], cpu()).unwrap();
        let good = save_to_bytes(&vec![("w", w)].into()).unwrap();
        // every truncation fails cleanly
        for n in 0..good.len() {
            assert!(
                matches!(load_from_bytes(&good[..n]), Err(Error::InvalidFile { .. })),
                "len {n}"
            );
        }
        // wrong magic
        let mut b = good.clone();
        b[0] = 0x13;
        assert_eq!(err_at(&b).0, 0);
        // 2^60 arrays
        let mut b = good.clone();
        b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(err_at(&b).0, 16);
        // negative ndim
        let mut b = good.clone();
        b[0x20..0x24].copy_from_slice(&(-5i32).to_le_bytes());
        assert_eq!(err_at(&b).0, 0x20);
        // a dimension claiming 2^60 elements
        let mut b = good.clone();
        b[0x24..0x2c].copy_from_slice(&(1i64 << 60).to_le_bytes());
        let (off, exp) = err_at(&b);
        assert!(exp.contains("data") || exp.contains("size"), "{exp}");
        assert!(off >= 0x24, "{off}");
        // huge ndim
        let mut b = good.clone();
        b[0x20..0x24].copy_from_slice(&i32::MAX.to_le_bytes());
        assert_eq!(err_at(&b).0, 0x24);
        // n_names != n_arrays
        let mut b = good.clone();
        b[0x58..0x60].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(err_at(&b).0, 0x58);
        // name length beyond the end
        let mut b = good.clone();
        b[0x60..0x68].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(err_at(&b).0, 0x68);
        // bad dtype flag / storage type
        let mut b = good.clone();
        b[0x3c..0x40].copy_from_slice(&13i32.to_le_bytes());
        assert_eq!(err_at(&b).0, 0x3c);
        let mut b = good.clone();
        b[0x1c..0x20].copy_from_slice(&7i32.to_le_bytes());
        assert_eq!(err_at(&b).0, 0x1c);
        // invalid UTF-8 name
        let mut b = good;
        b[0x68] = 0xff;
        assert_eq!(err_at(&b).0, 0x68);
    }

    #[test]
    fn corrupt_sparse_indices_are_rejected() {
        let vals = NDArray::from_vec(vec![1f32, 2., 3., 4.], &[2, 2], cpu()).unwrap();
        let idx = NDArray::from_vec(vec![1i64, 3], &[2], cpu()).unwrap();
        let rsp = RowSparseNDArray::new(vals, idx, &[4, 2]).unwrap();
        let mut b = save_to_bytes(&vec![Array::from(rsp)].into()).unwrap();
        // second row index 3 -> 9 (out of range)
        b[0x7c] = 9;
        let e = load_from_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("row_sparse") && e.contains("outside"), "{e}");
    }
}
