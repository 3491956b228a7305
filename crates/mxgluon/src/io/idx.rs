//! The IDX format of the MNIST files (`train-images-idx3-ubyte` and friends), plain or gzipped.
//!
//! A file is two zero bytes, a type code, the number of dimensions `ndim`, then `ndim`
//! big-endian `u32` dimensions, then the elements, row-major and big-endian. Type codes
//! and the dtype each one maps to:
//!
//! | code | element | dtype |
//! |---|---|---|
//! | `0x08` | unsigned byte | uint8 |
//! | `0x09` | signed byte | int8 |
//! | `0x0B` | `i16` | int16 |
//! | `0x0C` | `i32` | int32 |
//! | `0x0D` | `f32` | float32 |
//! | `0x0E` | `f64` | float64 |
//!
//! Other dtypes cannot be written ([`Error::UnsupportedByFormat`]). `ndim = 0` is read and
//! written as a 0-d array of one element.
//!
//! Readers detect gzip by its magic bytes (`1f 8b`), whatever the file name. Every count is
//! checked against the bytes that remain before anything is allocated: a plain file must hold
//! exactly the bytes its header implies; a gzip stream may only promise what deflate can give
//! (at most 1032 bytes per compressed byte), is never inflated beyond the size its header
//! implies plus one byte (to tell a clean end from trailing data), and its CRC is checked.
//! Errors are [`Error::InvalidFile`] with format `"IDX"` (or `"IDX (gzip)"`, whose offsets count
//! decompressed bytes). [`save`] is atomic and gzips when the name ends in `.gz`; the gzip
//! header carries no file name and time stamp 0, so equal arrays give equal files.
//!
//! ```
//! use mxgluon::{io::idx, nd::NDArray, Context};
//! let a = NDArray::from_vec(vec![0u8, 128, 255, 7, 8, 9], &[2, 3], Context::cpu(0))?;
//! let bytes = idx::save_to_bytes(&a, false)?;
//! assert_eq!(&bytes[..12], &[0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]);
//! let back = idx::load_from_bytes(&idx::save_to_bytes(&a, true)?, "a.gz")?;
//! assert_eq!(back.shape(), &[2, 3]);
//! assert_eq!(back.to_vec::<u8>()?, vec![0, 128, 255, 7, 8, 9]);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};

use super::{atomic, byte_size, io_error};
use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::NDArray;

const FORMAT: &str = "IDX";
const GZIP_FORMAT: &str = "IDX (gzip)";
/// The first two bytes of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Deflate cannot inflate more than this many bytes per compressed byte.
const DEFLATE_MAX_RATIO: u64 = 1032;
/// Bytes converted to big-endian at a time when writing.
const CHUNK: usize = 1 << 16;

/// The dtype of an IDX type code.
pub fn dtype_of_code(code: u8) -> Option<DType> {
    Some(match code {
        0x08 => DType::UInt8,
        0x09 => DType::Int8,
        0x0B => DType::Int16,
        0x0C => DType::Int32,
        0x0D => DType::Float32,
        0x0E => DType::Float64,
        _ => return None,
    })
}

/// The IDX type code of a dtype, if IDX can store it.
pub fn code_of_dtype(dtype: DType) -> Option<u8> {
    Some(match dtype {
        DType::UInt8 => 0x08,
        DType::Int8 => 0x09,
        DType::Int16 => 0x0B,
        DType::Int32 => 0x0C,
        DType::Float32 => 0x0D,
        DType::Float64 => 0x0E,
        _ => return None,
    })
}

/// Where the bytes come from, for error messages.
struct Src {
    file: String,
    gzip: bool,
}

impl Src {
    fn invalid(&self, offset: u64, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::InvalidFile {
            file: self.file.clone(),
            format: if self.gzip { GZIP_FORMAT } else { FORMAT },
            offset,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// An error of the underlying reader at decompressed offset `at`: truncation and corrupt
    /// gzip data are invalid files, anything else an I/O error.
    fn read_error(&self, at: u64, what: &str, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                self.invalid(at, what.to_string(), "the end of the data")
            }
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData if self.gzip => {
                self.invalid(at, "a valid gzip stream", e.to_string())
            }
            _ => Error::Io {
                path: self.file.clone(),
                source: e,
            },
        }
    }
}

/// How many bytes the (decompressed) IDX stream may hold.
#[derive(Clone, Copy)]
enum Bound {
    /// A plain stream of exactly this many bytes.
    Exact(u64),
    /// A gzip stream of this many compressed bytes.
    Gzip(u64),
}

/// Reads exactly `buf.len()` bytes at offset `at`, or fails naming `what`.
fn read_exact_at(r: &mut impl Read, buf: &mut [u8], at: u64, what: &str, src: &Src) -> Result<()> {
    r.read_exact(buf).map_err(|e| src.read_error(at, what, e))
}

/// Reads one IDX stream (already decompressed if it was gzipped).
fn read_idx(r: &mut impl Read, bound: Bound, src: &Src) -> Result<NDArray> {
    if let Bound::Exact(len) = bound {
        if len < 4 {
            return Err(src.invalid(
                0,
                "the 4-byte IDX magic (0, 0, type, ndim)",
                format!("a file of {len} bytes"),
            ));
        }
    }
    let mut magic = [0u8; 4];
    read_exact_at(
        r,
        &mut magic,
        0,
        "the 4-byte IDX magic (0, 0, type, ndim)",
        src,
    )?;
    if magic[..2] != [0, 0] {
        return Err(src.invalid(
            0,
            "the IDX magic: two zero bytes",
            format!("{:#04x} {:#04x}", magic[0], magic[1]),
        ));
    }
    let dtype = dtype_of_code(magic[2]).ok_or_else(|| {
        src.invalid(
            2,
            "a type code 0x08 (u8), 0x09 (i8), 0x0B (i16), 0x0C (i32), 0x0D (f32) or 0x0E (f64)",
            format!("{:#04x}", magic[2]),
        )
    })?;
    let ndim = magic[3] as usize;
    let header = 4 + 4 * ndim as u64;
    if let Bound::Exact(len) = bound {
        if len < header {
            return Err(src.invalid(
                4,
                format!("{ndim} big-endian u32 dimensions ({} bytes)", 4 * ndim),
                format!("only {} bytes", len - 4),
            ));
        }
    }
    let mut dims = vec![0u8; 4 * ndim];
    read_exact_at(
        r,
        &mut dims,
        4,
        &format!("{ndim} big-endian u32 dimensions"),
        src,
    )?;
    let shape: Vec<usize> = dims
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data_bytes = byte_size(&shape, dtype.size())
        .filter(|_| crate::nd::shape_size(&shape).is_some())
        .ok_or_else(|| {
            src.invalid(
                4,
                "dimensions whose size fits in 64 bits",
                format!("{shape:?}"),
            )
        })?;
    match bound {
        Bound::Exact(len) => {
            let left = len - header;
            if data_bytes != left {
                return Err(src.invalid(
                    header,
                    format!("{data_bytes} bytes of {dtype} data for shape {shape:?}"),
                    if data_bytes > left {
                        format!("only {left} bytes")
                    } else {
                        format!("{left} bytes (trailing data)")
                    },
                ));
            }
        }
        Bound::Gzip(compressed) => {
            let max = compressed.saturating_mul(DEFLATE_MAX_RATIO);
            if header.saturating_add(data_bytes) > max {
                return Err(src.invalid(
                    header,
                    format!(
                        "at most {max} decompressed bytes ({DEFLATE_MAX_RATIO}x the {compressed} compressed bytes)"
                    ),
                    format!(
                        "a header promising {data_bytes} bytes of {dtype} data for shape {shape:?}"
                    ),
                ));
            }
        }
    }
    let a = NDArray::for_overwrite(&shape, dtype, Context::cpu(0))?;
    a.write_bytes(|dst| -> Result<()> {
        read_exact_at(
            r,
            dst,
            header,
            &format!("{data_bytes} bytes of {dtype} data for shape {shape:?}"),
            src,
        )?;
        be_to_native(dtype, dst);
        Ok(())
    })?;
    if let Bound::Gzip(_) = bound {
        // One more read: 0 bytes means a clean end (and makes the decoder check the CRC);
        // anything else is data the header does not account for.
        let mut extra = [0u8; 1];
        let at = header + data_bytes;
        let n = loop {
            match r.read(&mut extra) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(src.read_error(at, "the end of the gzip stream", e)),
            }
        };
        if n != 0 {
            return Err(src.invalid(
                at,
                "the end of the data",
                "trailing bytes after the elements",
            ));
        }
    }
    Ok(a)
}

/// Converts big-endian file bytes of `dtype` elements to this machine's order in place.
fn be_to_native(dtype: DType, bytes: &mut [u8]) {
    let es = dtype.size();
    if cfg!(target_endian = "little") && es > 1 {
        for c in bytes.chunks_exact_mut(es) {
            c.reverse();
        }
    }
}

/// Reads plain or gzipped IDX from `r`, whose first bytes are `head`, of `len` bytes in all.
fn read_any(head: &[u8], r: impl Read, len: u64, file: String) -> Result<NDArray> {
    let mut chained = head.chain(r);
    if head.starts_with(&GZIP_MAGIC) {
        let src = Src { file, gzip: true };
        read_idx(&mut GzDecoder::new(chained), Bound::Gzip(len), &src)
    } else {
        let src = Src { file, gzip: false };
        read_idx(&mut chained, Bound::Exact(len), &src)
    }
}

/// Loads an IDX file (plain or gzipped, detected from its first bytes) onto `cpu(0)`.
pub fn load(path: impl AsRef<Path>) -> Result<NDArray> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| io_error(path, e))?;
    let len = f.metadata().map_err(|e| io_error(path, e))?.len();
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    read_any(&head[..n], r, len, path.display().to_string())
}

/// Parses IDX bytes (plain or gzipped) into an array on `cpu(0)`; `name` labels errors
/// (a file name, or e.g. `"<bytes>"`).
pub fn load_from_bytes(bytes: &[u8], name: &str) -> Result<NDArray> {
    let n = bytes.len().min(2);
    read_any(
        &bytes[..n],
        &bytes[n..],
        bytes.len() as u64,
        name.to_string(),
    )
}

/// The header of `a` in IDX, or why IDX cannot store it.
fn header_of(a: &NDArray) -> Result<Vec<u8>> {
    let code = code_of_dtype(a.dtype()).ok_or_else(|| Error::UnsupportedByFormat {
        format: FORMAT,
        what: format!("a {} array", a.dtype()),
        hint: "IDX stores uint8, int8, int16, int32, float32 and float64; convert with astype"
            .into(),
    })?;
    let ndim = u8::try_from(a.ndim()).map_err(|_| Error::UnsupportedByFormat {
        format: FORMAT,
        what: format!("an array of {} dimensions", a.ndim()),
        hint: "IDX allows at most 255".into(),
    })?;
    let mut h = vec![0, 0, code, ndim];
    for &d in a.shape() {
        let d = u32::try_from(d).map_err(|_| Error::UnsupportedByFormat {
            format: FORMAT,
            what: format!("a dimension of {d}"),
            hint: "IDX dimensions are 32-bit".into(),
        })?;
        h.extend_from_slice(&d.to_be_bytes());
    }
    Ok(h)
}

/// Writes the elements of `a` big-endian.
fn write_be(w: &mut impl Write, a: &NDArray) -> std::io::Result<()> {
    let es = a.dtype().size();
    a.read_bytes(|b| {
        if es == 1 || cfg!(target_endian = "big") {
            return w.write_all(b);
        }
        // CHUNK is a multiple of every element size, so no element straddles two chunks.
        let mut buf = vec![0u8; CHUNK.min(b.len())];
        for c in b.chunks(CHUNK) {
            let out = &mut buf[..c.len()];
            out.copy_from_slice(c);
            for e in out.chunks_exact_mut(es) {
                e.reverse();
            }
            w.write_all(out)?;
        }
        Ok(())
    })
}

fn write_idx(w: &mut impl Write, header: &[u8], a: &NDArray, gzip: bool) -> std::io::Result<()> {
    if gzip {
        let mut enc = GzBuilder::new().mtime(0).write(w, Compression::default());
        enc.write_all(header)?;
        write_be(&mut enc, a)?;
        enc.finish()?;
        Ok(())
    } else {
        w.write_all(header)?;
        write_be(w, a)
    }
}

/// Saves `a` as IDX (atomically), gzipped when the file name ends in `.gz` (any case).
///
/// ```
/// use mxgluon::{io::idx, nd::NDArray, Context};
/// let dir = std::env::temp_dir().join(format!("mxgluon-idx-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let labels = NDArray::from_vec(vec![3u8, 1, 4, 1, 5], &[5], Context::cpu(0))?;
/// idx::save(dir.join("labels-idx1-ubyte.gz"), &labels)?;
/// let back = idx::load(dir.join("labels-idx1-ubyte.gz"))?;
/// assert_eq!(back.to_vec::<u8>()?, vec![3, 1, 4, 1, 5]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn save(path: impl AsRef<Path>, a: &NDArray) -> Result<()> {
    let path = path.as_ref();
    let header = header_of(a)?;
    let gzip = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    atomic::write_atomic(path, true, |w| write_idx(w, &header, a, gzip))
}

/// The bytes of `a` as IDX, gzipped if `gzip` (what [`save`] writes).
pub fn save_to_bytes(a: &NDArray, gzip: bool) -> Result<Vec<u8>> {
    let header = header_of(a)?;
    let mut out = Vec::with_capacity(if gzip { 64 } else { header.len() + a.nbytes() });
    write_idx(&mut out, &header, a, gzip).map_err(|e| Error::Io {
        path: "<bytes>".into(),
        source: e,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    fn invalid_at(e: &Error) -> Option<u64> {
        match e {
            Error::InvalidFile { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    #[test]
    fn type_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(dt) = dtype_of_code(code) {
                assert_eq!(code_of_dtype(dt), Some(code));
            }
        }
        let stored = DType::ALL
            .iter()
            .filter(|d| code_of_dtype(**d).is_some())
            .count();
        assert_eq!(stored, 6);
    }

    #[test]
    fn every_storable_dtype_round_trips_plain_and_gzipped() {
        for dt in DType::ALL {
            let a = NDArray::arange(-3.0, 3.0, 1.0, dt, cpu()).and_then(|a| a.reshape(&[2, 3]));
            let Ok(a) = a else { continue };
            for gz in [false, true] {
                match save_to_bytes(&a, gz) {
                    Ok(b) => {
                        let back = load_from_bytes(&b, "t").unwrap();
                        assert_eq!(back.dtype(), dt);
                        assert_eq!(back.shape(), &[2, 3]);
                        assert_eq!(back.to_f64_vec(), a.to_f64_vec(), "{dt} gz={gz}");
                    }
                    Err(e) => {
                        assert!(code_of_dtype(dt).is_none(), "{dt}: {e}");
                        assert!(matches!(e, Error::UnsupportedByFormat { .. }));
                    }
                }
            }
        }
    }

    #[test]
    fn elements_are_big_endian() {
        let a = NDArray::from_vec(vec![1i32, -2], &[2], cpu()).unwrap();
        let b = save_to_bytes(&a, false).unwrap();
        assert_eq!(
            b,
            [0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]
        );
        let f = NDArray::from_vec(vec![1.5f64], &[1], cpu()).unwrap();
        let b = save_to_bytes(&f, false).unwrap();
        assert_eq!(&b[8..], &1.5f64.to_be_bytes());
        // 0-d arrays: ndim 0, one element
        let s = NDArray::scalar(7i16, cpu()).unwrap();
        let b = save_to_bytes(&s, false).unwrap();
        assert_eq!(b, [0, 0, 0x0B, 0, 0, 7]);
        let back = load_from_bytes(&b, "s").unwrap();
        assert_eq!(back.shape(), &[] as &[usize]);
        assert_eq!(back.to_vec::<i16>().unwrap(), vec![7]);
    }

    #[test]
    fn gzip_output_is_reproducible_and_has_no_time_stamp() {
        let a = NDArray::arange(0.0, 100.0, 1.0, DType::UInt8, cpu()).unwrap();
        let b1 = save_to_bytes(&a, true).unwrap();
        let b2 = save_to_bytes(&a, true).unwrap();
        assert_eq!(b1, b2);
        assert_eq!(&b1[..2], &GZIP_MAGIC);
        assert_eq!(&b1[4..8], &[0, 0, 0, 0], "mtime");
    }

    #[test]
    fn bad_headers_name_the_offset() {
        let ok = save_to_bytes(
            &NDArray::zeros(&[2, 2], DType::Float32, cpu()).unwrap(),
            false,
        )
        .unwrap();
        for n in 0..ok.len() {
            let e = load_from_bytes(&ok[..n], "t").unwrap_err();
            assert!(invalid_at(&e).is_some(), "truncated to {n}: {e}");
        }
        let mut bad = ok.clone();
        bad[1] = 1;
        assert_eq!(
            invalid_at(&load_from_bytes(&bad, "t").unwrap_err()),
            Some(0)
        );
        let mut bad = ok.clone();
        bad[2] = 0x0A;
        let e = load_from_bytes(&bad, "t").unwrap_err();
        assert_eq!(invalid_at(&e), Some(2));
        assert!(e.to_string().contains("0x0a"), "{e}");
        let mut trailing = ok.clone();
        trailing.push(0);
        let e = load_from_bytes(&trailing, "file.idx").unwrap_err();
        assert_eq!(invalid_at(&e), Some(12));
        assert!(e.to_string().starts_with("file.idx: "), "{e}");
        // huge dimensions: refused before allocating
        let huge = [
            0, 0, 0x0E, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9,
        ];
        assert!(invalid_at(&load_from_bytes(&huge, "t").unwrap_err()).is_some());
    }

    #[test]
    fn gzip_cannot_promise_more_than_deflate_gives() {
        // A valid gzip stream of a header claiming 1 GiB of bytes: refused from the header.
        let mut enc = GzBuilder::new().write(Vec::new(), Compression::default());
        enc.write_all(&[0, 0, 0x08, 1, 0x40, 0, 0, 0]).unwrap();
        let gz = enc.finish().unwrap();
        let e = load_from_bytes(&gz, "bomb.gz").unwrap_err();
        assert_eq!(invalid_at(&e), Some(8), "{e}");
        assert!(e.to_string().contains("IDX (gzip)"), "{e}");
        // A real bomb: 1 MiB of zeros behind a header claiming 16 bytes.
        let mut enc = GzBuilder::new().write(Vec::new(), Compression::best());
        enc.write_all(&[0, 0, 0x08, 1, 0, 0, 0, 16]).unwrap();
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        let e = load_from_bytes(&gz, "bomb.gz").unwrap_err();
        assert_eq!(invalid_at(&e), Some(24), "{e}");
    }

    #[test]
    fn corrupt_gzip_is_invalid_not_io() {
        let a = NDArray::arange(0.0, 50.0, 1.0, DType::Int32, cpu()).unwrap();
        let gz = save_to_bytes(&a, true).unwrap();
        // flip a bit of the CRC (4 bytes before the end)
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        let e = load_from_bytes(&bad, "t.gz").unwrap_err();
        assert!(invalid_at(&e).is_some(), "{e}");
        for n in 0..gz.len() {
            let e = load_from_bytes(&gz[..n], "t.gz").unwrap_err();
            assert!(invalid_at(&e).is_some(), "truncated to {n}: {e}");
        }
    }
}
