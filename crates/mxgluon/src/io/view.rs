//! [`FileView`]: lazy, memory-mapped access to an array file of any format.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use super::npy::{self, NpyHeader, Origin};
use super::params::{self, Reader, RecordInfo, SliceSource};
use super::{array_from_le, io_error, Format};
use crate::context::Context;
use crate::dtype::{DType, StorageType};
use crate::error::{Error, Result};
use crate::nd::{Array, CSRNDArray, NDArray, RowSparseNDArray};

/// Memory-maps a whole file read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let f = File::open(path).map_err(|e| io_error(path, e))?;
    // SAFETY: the map is only ever read. Like every reader of a file, we assume that no other
    // process truncates or rewrites it while it is open (mxgluon's own writers replace files
    // by renaming a new one over them, which leaves this mapping intact).
    let map = unsafe { Mmap::map(&f) }.map_err(|e| io_error(path, e))?;
    Ok(map)
}

/// Where the bytes of one part of an entry are.
#[derive(Clone, Debug)]
enum Part {
    /// Little-endian row-major bytes in the file: `start..start + len`.
    Plain { start: usize, len: usize },
    /// `.npy` data that must be reordered or byte-swapped.
    NpyRaw {
        start: usize,
        len: usize,
        header: NpyHeader,
    },
    /// An npz member that must be decompressed (by index in the archive).
    NpzMember { index: usize },
}

/// One entry of a file, as listed by [`FileView`].
#[derive(Clone, Debug)]
pub struct EntryView {
    /// Its name (`None` for the entries of a `.params` list and for an `.npy` file).
    pub name: Option<String>,
    /// Storage type.
    pub stype: StorageType,
    /// Element type of the values.
    pub dtype: DType,
    /// Logical shape.
    pub shape: Vec<usize>,
    /// Shape of the stored values (the logical shape for dense entries).
    pub stored_shape: Vec<usize>,
    /// Byte offset of the entry's data in the file.
    pub offset: u64,
    /// Bytes the entry occupies in the file (values and index arrays; for a compressed npz
    /// member, its compressed size).
    pub file_bytes: u64,
    /// The `.params` record description (version, saved context), for `.params` files.
    pub record: Option<RecordInfo>,
    values: Part,
    aux: Vec<(DType, Vec<usize>, Part)>,
}

enum Backing {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }

    /// Hands the pages of `start..start + len` back to the kernel (file-backed pages are read
    /// again on the next access).
    fn release(&self, start: usize, len: usize) {
        #[cfg(unix)]
        if let Backing::Map(m) = self {
            // SAFETY: the map is a read-only shared mapping of a file; dropping its pages only
            // makes the next access fault them in again from the file, with the same contents.
            let _ =
                unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
        }
        #[cfg(not(unix))]
        let _ = (start, len);
    }
}

/// Summary statistics of an entry's logical values (implicit zeros of sparse storage
/// included). `min`, `max`, `mean` and `std` (population standard deviation) ignore NaNs;
/// they are NaN when no value is left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Number of logical elements.
    pub count: u64,
    /// Number of NaN elements.
    pub nan_count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

/// Streaming mean / variance (Chan et al.'s pairwise merge of per-block moments).
#[derive(Default)]
struct Acc {
    n: u64,
    nan: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn new() -> Self {
        Acc {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Default::default()
        }
    }

    fn merge(&mut self, n: u64, mean: f64, m2: f64) {
        if n == 0 {
            return;
        }
        let total = self.n + n;
        let delta = mean - self.mean;
        self.mean += delta * n as f64 / total as f64;
        self.m2 += m2 + delta * delta * self.n as f64 * n as f64 / total as f64;
        self.n = total;
    }

    fn block(&mut self, vals: &[f64]) {
        let mut n = 0u64;
        let mut sum = 0.0;
        for &v in vals {
            if v.is_nan() {
                self.nan += 1;
            } else {
                n += 1;
                sum += v;
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
        if n == 0 {
            return;
        }
        let mean = sum / n as f64;
        let m2: f64 = vals
            .iter()
            .filter(|v| !v.is_nan())
            .map(|v| (v - mean) * (v - mean))
            .sum();
        self.merge(n, mean, m2);
    }

    fn zeros(&mut self, k: u64) {
        if k > 0 {
            self.min = self.min.min(0.0);
            self.max = self.max.max(0.0);
            self.merge(k, 0.0, 0.0);
        }
    }

    fn finish(self, count: u64) -> Stats {
        let none = self.n == 0;
        let nan_if = |v: f64| if none { f64::NAN } else { v };
        Stats {
            count,
            nan_count: self.nan,
            min: nan_if(self.min),
            max: nan_if(self.max),
            mean: nan_if(self.mean),
            std: nan_if((self.m2 / self.n.max(1) as f64).max(0.0).sqrt()),
        }
    }
}

/// Appends the values of little-endian `bytes` of `dtype` to `out` as `f64`.
fn to_f64s(dtype: DType, bytes: &[u8], out: &mut Vec<f64>) {
    out.clear();
    let es = dtype.size();
    crate::dispatch_dtype!(dtype, T => {
        out.extend(bytes.chunks_exact(es).map(|c| {
            let v: T = if cfg!(target_endian = "big") {
                let mut b = [0u8; 8];
                b[..es].copy_from_slice(c);
                b[..es].reverse();
                bytemuck::pod_read_unaligned(&b[..es])
            } else {
                bytemuck::pod_read_unaligned(c)
            };
            crate::dtype::Scalar::to_f64(v)
        }))
    });
}

/// Bytes processed per block when streaming statistics (then released).
const BLOCK: usize = 8 << 20;

/// An array file of any format opened for lazy reading: list the entries without reading
/// their data, then compute statistics or load entries one at a time.
///
/// Statistics stream over the mapped bytes in blocks and hand each block's pages back to the
/// kernel when done (`madvise(MADV_DONTNEED)`), so inspecting a file much larger than memory
/// keeps the resident set small. Entries that must be decoded first (deflated npz members,
/// Fortran-order or big-endian `.npy` data) are decoded one at a time.
///
/// ```
/// use mxgluon::{io::{self, FileView}, nd::NDArray, Context};
/// let dir = std::env::temp_dir().join(format!("mxgluon-view-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("w.params");
/// let w = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], Context::cpu(0))?;
/// io::save(&path, &vec![("w", w)].into())?;
/// let view = FileView::open(&path)?;
/// assert_eq!(view.entries()[0].name.as_deref(), Some("w"));
/// let s = view.stats(0)?;
/// assert_eq!((s.min, s.max, s.mean), (1.0, 4.0, 2.5));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct FileView {
    backing: Backing,
    file: String,
    format: Format,
    is_dict: bool,
    entries: Vec<EntryView>,
}

impl FileView {
    /// Maps `path` and lists its entries. The format comes from the file's first bytes (magic
    /// numbers), or from its extension when they say nothing.
    pub fn open(path: impl AsRef<Path>) -> Result<FileView> {
        let path = path.as_ref();
        let map = map_file(path)?;
        let format = match Format::sniff(&map) {
            Some(f) => f,
            None => Format::from_path(path)?,
        };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        FileView::build(Backing::Map(map), path.display().to_string(), format)
    }

    /// Lists the entries of in-memory bytes of a known format.
    pub fn from_bytes(bytes: Vec<u8>, format: Format) -> Result<FileView> {
        FileView::build(Backing::Owned(bytes), "<bytes>".into(), format)
    }

    fn build(backing: Backing, file: String, format: Format) -> Result<FileView> {
        let bytes = backing.bytes();
        let (entries, is_dict) = match format {
            Format::Params => index_params(bytes, &file)?,
            Format::Safetensors => (index_safetensors(bytes, &file)?, true),
            Format::Npy => (vec![index_npy(bytes, &file)?], false),
            Format::Npz => (index_npz(bytes, &file)?, true),
        };
        Ok(FileView {
            backing,
            file,
            format,
            is_dict,
            entries,
        })
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether entries are named (a `.params` dict, safetensors, npz).
    pub fn is_dict(&self) -> bool {
        self.is_dict
    }

    /// The file size in bytes.
    pub fn file_len(&self) -> u64 {
        self.backing.bytes().len() as u64
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[EntryView] {
        &self.entries
    }

    fn entry(&self, i: usize) -> Result<&EntryView> {
        self.entries.get(i).ok_or_else(|| {
            Error::invalid_arg(
                "FileView",
                format!(
                    "entry {i} does not exist; the file has {}",
                    self.entries.len()
                ),
            )
        })
    }

    /// Decodes a part into an array on `cpu(0)`.
    fn part_array(&self, part: &Part, dtype: DType, shape: &[usize]) -> Result<NDArray> {
        let bytes = self.backing.bytes();
        match part {
            Part::Plain { start, len } => {
                array_from_le(&bytes[*start..start + len], shape, dtype, Context::cpu(0))
            }
            Part::NpyRaw { start, len, header } => {
                npy::array_from_raw(header, &bytes[*start..start + len], Context::cpu(0))
            }
            Part::NpzMember { index } => {
                let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                    .map_err(|e| Error::invalid_arg("npz", e.to_string()))?;
                let mut m = zip
                    .by_index(*index)
                    .map_err(|e| Error::invalid_arg("npz", e.to_string()))?;
                let name = m.name().map(|n| n.to_string()).unwrap_or_default();
                let origin = Origin {
                    file: format!("{}:{name}", self.file),
                    format: "npz",
                    base: 0,
                };
                let len = m.size();
                npy::read_npy(&mut m, len, &origin)
            }
        }
    }

    /// Loads entry `i` into memory on `cpu(0)` (sparse entries are validated here).
    pub fn to_array(&self, i: usize) -> Result<Array> {
        let e = self.entry(i)?;
        let values = self.part_array(&e.values, e.dtype, &e.stored_shape)?;
        let mut aux = Vec::with_capacity(e.aux.len());
        for (t, s, p) in &e.aux {
            let a = self.part_array(p, *t, s)?;
            aux.push(if *t == DType::Int64 {
                a
            } else {
                a.astype(DType::Int64)?
            });
        }
        let sparse_err = |err: Error| match err {
            Error::InvalidSparse { .. } => Error::InvalidFile {
                file: self.file.clone(),
                format: "MXNet .params",
                offset: e.offset,
                expected: format!("a valid {} array", e.stype),
                found: err.to_string(),
            },
            other => other,
        };
        let mut aux = aux.into_iter();
        Ok(match (e.stype, aux.next(), aux.next()) {
            (StorageType::Default, _, _) => Array::Dense(values),
            (StorageType::RowSparse, Some(idx), _) => {
                Array::RowSparse(RowSparseNDArray::new(values, idx, &e.shape).map_err(sparse_err)?)
            }
            (StorageType::Csr, Some(indptr), Some(indices)) => {
                Array::Csr(CSRNDArray::new(values, indices, indptr, &e.shape).map_err(sparse_err)?)
            }
            _ => {
                return Err(Error::invalid_arg(
                    "FileView",
                    "a sparse entry without its index arrays",
                ))
            }
        })
    }

    /// Statistics of entry `i`'s logical values, streamed from the file.
    pub fn stats(&self, i: usize) -> Result<Stats> {
        let e = self.entry(i)?;
        let count: u64 = e.shape.iter().map(|&d| d as u64).product();
        let stored: u64 = e.stored_shape.iter().map(|&d| d as u64).product();
        let mut acc = Acc::new();
        let mut buf = Vec::new();
        match &e.values {
            Part::Plain { start, len } => {
                let es = e.dtype.size();
                let block = BLOCK / es * es;
                let bytes = self.backing.bytes();
                let mut at = *start;
                let end = start + len;
                while at < end {
                    let n = block.min(end - at);
                    to_f64s(e.dtype, &bytes[at..at + n], &mut buf);
                    acc.block(&buf);
                    self.backing.release(at, n);
                    at += n;
                }
            }
            other => {
                let a = self.part_array(other, e.dtype, &e.stored_shape)?;
                a.read_bytes(|b| {
                    for c in b.chunks(BLOCK / 8 * 8) {
                        to_f64s(e.dtype, c, &mut buf);
                        acc.block(&buf);
                    }
                });
            }
        }
        acc.zeros(count.saturating_sub(stored));
        Ok(acc.finish(count))
    }
}

/// The dense values of an entry: borrowed from the file when stored plainly, else decoded.
enum DenseBytes<'a> {
    Mapped {
        start: usize,
        len: usize,
        bytes: &'a [u8],
    },
    Owned(Vec<u8>),
}

impl DenseBytes<'_> {
    fn slice(&self) -> &[u8] {
        match self {
            DenseBytes::Mapped { start, len, bytes } => &bytes[*start..start + len],
            DenseBytes::Owned(v) => v,
        }
    }
}

/// `|a - b|` with NaN == NaN and equal infinities counting as no difference.
#[inline]
fn abs_diff(a: f64, b: f64) -> f64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        0.0
    } else if a.is_nan() || b.is_nan() {
        f64::INFINITY
    } else {
        (a - b).abs()
    }
}

impl FileView {
    fn dense_bytes(&self, i: usize) -> Result<DenseBytes<'_>> {
        let e = self.entry(i)?;
        if let (StorageType::Default, Part::Plain { start, len }) = (e.stype, &e.values) {
            return Ok(DenseBytes::Mapped {
                start: *start,
                len: *len,
                bytes: self.backing.bytes(),
            });
        }
        let dense = self.to_array(i)?.to_dense()?;
        Ok(DenseBytes::Owned(dense.read_bytes(|b| b.to_vec())))
    }

    /// The largest `|a - b|` between the logical values of entry `i` here and entry `j` of
    /// `other` (any dtypes and storage types; compared as `f64`). Two NaNs, or two equal
    /// infinities, count as equal; a NaN against a number is an infinite difference. Both
    /// entries must hold the same number of elements. Streams plainly stored data from both
    /// files block by block.
    pub fn max_abs_diff(&self, i: usize, other: &FileView, j: usize) -> Result<f64> {
        let (ea, eb) = (self.entry(i)?, other.entry(j)?);
        let count = |e: &EntryView| e.shape.iter().map(|&d| d as u64).product::<u64>();
        if count(ea) != count(eb) {
            return Err(Error::ShapeMismatch {
                op: "max_abs_diff",
                lhs: ea.shape.clone(),
                rhs: eb.shape.clone(),
                detail: "the entries hold different numbers of elements".into(),
            });
        }
        let (da, db) = (self.dense_bytes(i)?, other.dense_bytes(j)?);
        let (sa, sb) = (da.slice(), db.slice());
        let (ka, kb) = (ea.dtype.size(), eb.dtype.size());
        let n = count(ea) as usize;
        let step = BLOCK / 8;
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        let mut worst = 0.0f64;
        let mut at = 0usize;
        while at < n {
            let m = step.min(n - at);
            to_f64s(ea.dtype, &sa[at * ka..(at + m) * ka], &mut fa);
            to_f64s(eb.dtype, &sb[at * kb..(at + m) * kb], &mut fb);
            for (x, y) in fa.iter().zip(&fb) {
                worst = worst.max(abs_diff(*x, *y));
            }
            if let DenseBytes::Mapped { start, .. } = da {
                self.backing.release(start + at * ka, m * ka);
            }
            if let DenseBytes::Mapped { start, .. } = db {
                other.backing.release(start + at * kb, m * kb);
            }
            at += m;
        }
        Ok(worst)
    }
}

fn index_params(bytes: &[u8], file: &str) -> Result<(Vec<EntryView>, bool)> {
    let mut r = Reader::new(
        SliceSource {
            data: bytes,
            pos: 0,
        },
        file.to_string(),
    );
    let (records, names) = params::parse(&mut r, |r, h| {
        let skip = h.info.data_bytes;
        let start = r.pos();
        r.skip(skip, "the array data")?;
        let mut at = start as usize;
        let values = Part::Plain {
            start: at,
            len: h.values_bytes as usize,
        };
        at += h.values_bytes as usize;
        let mut aux = Vec::with_capacity(h.aux.len());
        for ((t, s), b) in h.aux.iter().zip(&h.aux_bytes) {
            aux.push((
                *t,
                s.clone(),
                Part::Plain {
                    start: at,
                    len: *b as usize,
                },
            ));
            at += *b as usize;
        }
        Ok(EntryView {
            name: None,
            stype: h.stype,
            dtype: h.dtype,
            shape: h.shape,
            stored_shape: h.values_shape,
            offset: start,
            file_bytes: skip,
            record: Some(h.info),
            values,
            aux,
        })
    })?;
    let is_dict = names.is_some();
    let mut entries = records;
    if let Some(names) = names {
        for (e, n) in entries.iter_mut().zip(names) {
            e.name = Some(n);
        }
    }
    Ok((entries, is_dict))
}

fn index_safetensors(bytes: &[u8], file: &str) -> Result<Vec<EntryView>> {
    let tensors = super::safetensors::parse(bytes, file)?;
    Ok(tensors
        .into_iter()
        .map(|t| EntryView {
            name: Some(t.name),
            stype: StorageType::Default,
            dtype: t.dtype,
            stored_shape: t.shape.clone(),
            shape: t.shape,
            offset: t.offset,
            file_bytes: t.data.len() as u64,
            record: None,
            values: Part::Plain {
                start: t.offset as usize,
                len: t.data.len(),
            },
            aux: vec![],
        })
        .collect())
}

fn npy_entry(
    name: Option<String>,
    h: NpyHeader,
    start: usize,
    file_bytes: u64,
    part: Option<Part>,
) -> EntryView {
    let len = h.data_bytes as usize;
    let values = part.unwrap_or_else(|| {
        if h.is_plain() {
            Part::Plain { start, len }
        } else {
            Part::NpyRaw {
                start,
                len,
                header: h.clone(),
            }
        }
    });
    EntryView {
        name,
        stype: StorageType::Default,
        dtype: h.dtype,
        stored_shape: h.shape.clone(),
        shape: h.shape,
        offset: start as u64,
        file_bytes,
        record: None,
        values,
        aux: vec![],
    }
}

fn index_npy(bytes: &[u8], file: &str) -> Result<EntryView> {
    let origin = Origin {
        file: file.to_string(),
        format: "npy",
        base: 0,
    };
    let h = npy::read_header(&mut &bytes[..], bytes.len() as u64, &origin)?;
    let start = h.data_offset as usize;
    let n = h.data_bytes;
    Ok(npy_entry(None, h, start, n, None))
}

fn index_npz(bytes: &[u8], file: &str) -> Result<Vec<EntryView>> {
    use zip::CompressionMethod;
    let bad = |e: zip::result::ZipError| Error::InvalidFile {
        file: file.to_string(),
        format: "npz",
        offset: 0,
        expected: "a valid zip archive".into(),
        found: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(bad)?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut m = zip.by_index(i).map_err(bad)?;
        if m.is_dir() {
            continue;
        }
        let name = m.name().map_err(bad)?.to_string();
        let at = m.data_start().unwrap_or(0);
        let len = super::npz::check_member(
            file,
            &name,
            m.compression(),
            m.size(),
            m.compressed_size(),
            at,
        )?;
        let stored = m.compression() == CompressionMethod::Stored;
        if stored
            && at
                .checked_add(len)
                .is_none_or(|end| end > bytes.len() as u64)
        {
            return Err(Error::InvalidFile {
                file: file.to_string(),
                format: "npz",
                offset: at,
                expected: format!("member {name}: {len} bytes inside the archive"),
                found: format!("an archive of {} bytes", bytes.len()),
            });
        }
        let origin = Origin {
            file: format!("{file}:{name}"),
            format: "npz",
            base: if stored { at } else { 0 },
        };
        let h = npy::read_header(&mut m, len, &origin)?;
        let array = super::npz::array_name(&name).to_string();
        let e = if stored {
            let start = at as usize + h.data_offset as usize;
            let n = h.data_bytes;
            npy_entry(Some(array), h, start, n, None)
        } else {
            let c = m.compressed_size();
            npy_entry(
                Some(array),
                h,
                at as usize,
                c,
                Some(Part::NpzMember { index: i }),
            )
        };
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ArrayList;

    #[test]
    fn stats_match_a_direct_computation() {
        let vals: Vec<f32> = (0..10_000)
            .map(|i| ((i * 37) % 101) as f32 - 50.0)
            .collect();
        let a = NDArray::from_vec(vals.clone(), &[100, 100], Context::cpu(0)).unwrap();
        let bytes = crate::io::params::save_to_bytes(&ArrayList::from(vec![("a", a)])).unwrap();
        let v = FileView::from_bytes(bytes, Format::Params).unwrap();
        let s = v.stats(0).unwrap();
        let n = vals.len() as f64;
        let mean = vals.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = vals.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert_eq!(s.count, 10_000);
        assert!((s.mean - mean).abs() < 1e-9 && (s.std - var.sqrt()).abs() < 1e-9);
        assert_eq!((s.min, s.max), (-50.0, 50.0));
    }

    #[test]
    fn sparse_stats_count_implicit_zeros_and_nans_are_separate() {
        let vals = NDArray::from_vec(vec![2f32, f32::NAN], &[1, 2], Context::cpu(0)).unwrap();
        let idx = NDArray::from_vec(vec![1i64], &[1], Context::cpu(0)).unwrap();
        let rsp = RowSparseNDArray::new(vals, idx, &[3, 2]).unwrap();
        let bytes =
            crate::io::params::save_to_bytes(&ArrayList::from(vec![("r", Array::from(rsp))]))
                .unwrap();
        let v = FileView::from_bytes(bytes, Format::Params).unwrap();
        let e = &v.entries()[0];
        assert_eq!(
            (e.stype, e.shape.clone(), e.stored_shape.clone()),
            (StorageType::RowSparse, vec![3, 2], vec![1, 2])
        );
        let s = v.stats(0).unwrap();
        assert_eq!((s.count, s.nan_count, s.min, s.max), (6, 1, 0.0, 2.0));
        assert!((s.mean - 0.4).abs() < 1e-12);
        assert!(
            v.to_array(0)
                .unwrap()
                .to_dense()
                .unwrap()
                .get_f64(&[1, 0])
                .unwrap()
                == 2.0
        );
        let empty = FileView::from_bytes(
            crate::io::params::save_to_bytes(&ArrayList::from(vec![NDArray::zeros(
                &[0, 3],
                DType::Int8,
                Context::cpu(0),
            )
            .unwrap()]))
            .unwrap(),
            Format::Params,
        )
        .unwrap();
        assert!(empty.stats(0).unwrap().mean.is_nan());
    }

    #[test]
    fn max_abs_diff_across_formats_and_storage_types() {
        let a = NDArray::from_vec(
            vec![0f32, 1., 0., f32::NAN, 0., 2.],
            &[3, 2],
            Context::cpu(0),
        )
        .unwrap();
        let b = NDArray::from_vec(
            vec![0f64, 1., 0., f64::NAN, 0., 2.5],
            &[3, 2],
            Context::cpu(0),
        )
        .unwrap();
        let pa = crate::io::params::save_to_bytes(&ArrayList::from(vec![(
            "x",
            Array::from(a.clone())
                .tostype(StorageType::RowSparse)
                .unwrap(),
        )]))
        .unwrap();
        let sb = crate::io::safetensors::save_to_bytes(&ArrayList::from(vec![("x", b)])).unwrap();
        let va = FileView::from_bytes(pa, Format::Params).unwrap();
        let vb = FileView::from_bytes(sb, Format::Safetensors).unwrap();
        assert_eq!(va.max_abs_diff(0, &vb, 0).unwrap(), 0.5);
        assert_eq!(va.max_abs_diff(0, &va, 0).unwrap(), 0.0);
        let c = NDArray::zeros(&[7], DType::Float32, Context::cpu(0)).unwrap();
        let vc = FileView::from_bytes(npy::save_to_bytes(&c).unwrap(), Format::Npy).unwrap();
        assert!(va.max_abs_diff(0, &vc, 0).is_err());
        assert_eq!(abs_diff(f64::NAN, 1.0), f64::INFINITY);
        assert_eq!(abs_diff(f64::INFINITY, f64::INFINITY), 0.0);
    }

    #[test]
    fn every_format_lists_the_same_entries() {
        let a = NDArray::arange(0.0, 6.0, 1.0, DType::Int16, Context::cpu(0))
            .unwrap()
            .reshape(&[2, 3])
            .unwrap();
        let list = ArrayList::from(vec![("a", a.clone())]);
        for (fmt, bytes) in [
            (
                Format::Params,
                crate::io::params::save_to_bytes(&list).unwrap(),
            ),
            (
                Format::Safetensors,
                crate::io::safetensors::save_to_bytes(&list).unwrap(),
            ),
            (Format::Npz, crate::io::npz::save_to_bytes(&list).unwrap()),
            (Format::Npy, npy::save_to_bytes(&a).unwrap()),
        ] {
            assert_eq!(Format::sniff(&bytes), Some(fmt));
            let v = FileView::from_bytes(bytes, fmt).unwrap();
            let e = &v.entries()[0];
            assert_eq!(
                (e.dtype, e.shape.clone()),
                (DType::Int16, vec![2, 3]),
                "{fmt:?}"
            );
            assert_eq!(v.stats(0).unwrap().max, 5.0);
            assert_eq!(
                v.to_array(0)
                    .unwrap()
                    .to_dense()
                    .unwrap()
                    .to_vec::<i16>()
                    .unwrap(),
                vec![0, 1, 2, 3, 4, 5]
            );
        }
    }
}
