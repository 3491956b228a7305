//! NumPy's `.npz` format: a zip archive of `.npy` members, one per named array
//! (`np.savez` / `np.savez_compressed`).
//!
//! Member `name.npy` holds the array `name` (a member without the `.npy` suffix keeps its
//! whole name). Reading accepts stored and deflated members; writing stores them uncompressed
//! like `np.savez` (ZIP64 records, so members may exceed 4 GiB), or deflated with
//! [`save_compressed`]. A list is written with NumPy's positional names `arr_0`, `arr_1`, ...
//! The dtype mapping is [`npy`]'s; sparse arrays are refused.
//!
//! Every member's declared size is checked against the size its `.npy` header implies before
//! anything is allocated; a deflated member can inflate to at most 1032 times its compressed
//! size (deflate's limit), so a member claiming more is rejected as corrupt.
//!
//! ```
//! use mxgluon::{io::{npz, ArrayList}, nd::NDArray, Context};
//! let a = NDArray::from_vec(vec![1u8, 2, 3], &[3], Context::cpu(0))?;
//! let bytes = npz::save_to_bytes(&ArrayList::from(vec![("a", a)]))?;
//! let back = npz::load_from_bytes(&bytes)?;
//! assert_eq!(back.get("a").unwrap().to_dense()?.to_vec::<u8>()?, vec![1, 2, 3]);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::npy::{self, Origin};
use super::{atomic, io_error, ArrayList};
use crate::error::{Error, Result};
use crate::nd::Array;

const FORMAT: &str = "npz";
/// Deflate cannot inflate more than this many bytes per compressed byte.
const DEFLATE_MAX_RATIO: u64 = 1032;

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

fn zip_error(file: &str, e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(source) => Error::Io {
            path: file.to_string(),
            source,
        },
        other => invalid(file, 0, "a valid zip archive", other.to_string()),
    }
}

/// The array name of a member: its name without a trailing `.npy`.
pub(crate) fn array_name(member: &str) -> &str {
    member.strip_suffix(".npy").unwrap_or(member)
}

/// Checks a member's declared sizes; returns the member's `.npy` length.
pub(crate) fn check_member(
    file: &str,
    name: &str,
    method: CompressionMethod,
    size: u64,
    compressed: u64,
    offset: u64,
) -> Result<u64> {
    match method {
        CompressionMethod::Stored => {
            if size != compressed {
                return Err(invalid(
                    file,
                    offset,
                    format!("member {name}: equal stored and compressed sizes"),
                    format!("{size} and {compressed}"),
                ));
            }
        }
        CompressionMethod::Deflated => {
            if size
                > compressed
                    .saturating_mul(DEFLATE_MAX_RATIO)
                    .saturating_add(64)
            {
                return Err(invalid(
                    file,
                    offset,
                    format!("member {name}: at most {DEFLATE_MAX_RATIO}x its compressed size of {compressed} bytes"),
                    format!("a declared size of {size} bytes"),
                ));
            }
        }
        other => {
            return Err(Error::UnsupportedByFormat {
                format: FORMAT,
                what: format!("member {name} compressed with {other}"),
                hint:
                    "only stored and deflated members are supported (np.savez, np.savez_compressed)"
                        .into(),
            })
        }
    }
    Ok(size)
}

fn read_archive<R: Read + Seek>(reader: R, file: &str) -> Result<ArrayList> {
    let mut zip = ZipArchive::new(reader).map_err(|e| zip_error(file, e))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut m = zip.by_index(i).map_err(|e| zip_error(file, e))?;
        if m.is_dir() {
            continue;
        }
        let name = m.name().map_err(|e| zip_error(file, e))?.to_string();
        let at = m.data_start().unwrap_or(0);
        let len = check_member(
            file,
            &name,
            m.compression(),
            m.size(),
            m.compressed_size(),
            at,
        )?;
        let origin = Origin {
            file: format!("{file}:{name}"),
            format: FORMAT,
            base: if m.compression() == CompressionMethod::Stored {
                at
            } else {
                0
            },
        };
        let a = npy::read_npy(&mut m, len, &origin)?;
        out.push((array_name(&name).to_string(), Array::Dense(a)));
    }
    Ok(ArrayList::Dict(out))
}

/// Loads an `.npz` file: a dict in member order, every array on `cpu(0)`.
pub fn load(path: impl AsRef<Path>) -> Result<ArrayList> {
    let path = path.as_ref();
    let f = File::open(path).map_err(|e| io_error(path, e))?;
    read_archive(
        std::io::BufReader::with_capacity(1 << 16, f),
        &path.display().to_string(),
    )
}

/// Parses `.npz` bytes.
pub fn load_from_bytes(bytes: &[u8]) -> Result<ArrayList> {
    read_archive(std::io::Cursor::new(bytes), "<bytes>")
}

fn dense_members(data: &ArrayList) -> Result<Vec<(String, &crate::nd::NDArray)>> {
    let mut seen = std::collections::HashSet::new();
    let named: Vec<(String, &Array)> = match data {
        ArrayList::List(v) => v
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("arr_{i}"), a))
            .collect(),
        ArrayList::Dict(v) => v.iter().map(|(n, a)| (n.clone(), a)).collect(),
    };
    named
        .into_iter()
        .map(|(n, a)| {
            if !seen.insert(n.clone()) {
                return Err(Error::invalid_arg(
                    "npz save",
                    format!("the name '{n}' appears twice; npz members need distinct names"),
                ));
            }
            match a {
                Array::Dense(d) => Ok((n, d)),
                other => Err(Error::UnsupportedByFormat {
                    format: FORMAT,
                    what: format!("'{n}', a {} array", other.stype()),
                    hint: "convert it to dense storage first (ArrayList::densified)".into(),
                }),
            }
        })
        .collect()
}

fn write_archive<W: Write + Seek>(
    w: W,
    members: &[(String, &crate::nd::NDArray)],
    method: CompressionMethod,
) -> std::io::Result<W> {
    let mut zip = ZipWriter::new(w);
    let opts = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(true)
        .unix_permissions(0o644);
    for (name, a) in members {
        zip.start_file(format!("{name}.npy"), opts)
            .map_err(std::io::Error::other)?;
        npy::write_npy(&mut zip, a)?;
    }
    zip.finish().map_err(std::io::Error::other)
}

fn save_impl(path: &Path, data: &ArrayList, method: CompressionMethod) -> Result<()> {
    let members = dense_members(data)?;
    atomic::write_atomic(path, true, |w| {
        write_archive(w, &members, method).map(|_| ())
    })
}

/// Saves dense arrays as an uncompressed `.npz` (like `np.savez`), atomically.
pub fn save(path: impl AsRef<Path>, data: &ArrayList) -> Result<()> {
    save_impl(path.as_ref(), data, CompressionMethod::Stored)
}

/// Saves dense arrays as a deflated `.npz` (like `np.savez_compressed`), atomically.
pub fn save_compressed(path: impl AsRef<Path>, data: &ArrayList) -> Result<()> {
    save_impl(path.as_ref(), data, CompressionMethod::Deflated)
}

/// The bytes [`save`] would write.
pub fn save_to_bytes(data: &ArrayList) -> Result<Vec<u8>> {
    let members = dense_members(data)?;
    let cur = write_archive(
        std::io::Cursor::new(Vec::new()),
        &members,
        CompressionMethod::Stored,
    )
    .map_err(|e| Error::Io {
        path: "<bytes>".into(),
        source: e,
    })?;
    Ok(cur.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nd::NDArray;
    use crate::{Context, DType};

    #[test]
    fn lists_get_numpy_positional_names_and_every_dtype_round_trips() {
        let arrays: Vec<NDArray> = DType::ALL
            .iter()
            .map(|&d| NDArray::arange(0.0, 4.0, 1.0, d, Context::cpu(0)).unwrap())
            .collect();
        let b = save_to_bytes(&ArrayList::from(arrays.clone())).unwrap();
        let back = load_from_bytes(&b).unwrap();
        assert_eq!(back.names().unwrap()[..2], ["arr_0", "arr_1"]);
        for (i, a) in arrays.iter().enumerate() {
            let got = back.get(&format!("arr_{i}")).unwrap().to_dense().unwrap();
            assert_eq!(got.dtype(), a.dtype());
            assert_eq!(got.to_f64_vec(), a.to_f64_vec());
        }
    }

    #[test]
    fn compressed_files_load() {
        let dir = std::env::temp_dir().join(format!("mxgluon-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.npz");
        let a = NDArray::zeros(&[1000], DType::Float64, Context::cpu(0)).unwrap();
        save_compressed(&p, &ArrayList::from(vec![("z", a)])).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() < 1000);
        assert_eq!(load(&p).unwrap().get("z").unwrap().shape(), &[1000]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sparse_and_duplicates_are_refused_and_garbage_is_an_error() {
        let d = NDArray::zeros(&[2, 2], DType::Float32, Context::cpu(0)).unwrap();
        let sp = Array::Dense(d.clone())
            .tostype(crate::StorageType::Csr)
            .unwrap();
        assert!(matches!(
            save_to_bytes(&ArrayList::from(vec![("s", sp)])),
            Err(Error::UnsupportedByFormat { .. })
        ));
        assert!(save_to_bytes(&ArrayList::from(vec![("a", d.clone()), ("a", d.clone())])).is_err());
        let good = save_to_bytes(&ArrayList::from(vec![("a", d)])).unwrap();
        for n in 0..good.len() {
            assert!(load_from_bytes(&good[..n]).is_err(), "truncated to {n}");
        }
        assert!(matches!(
            load_from_bytes(b"PK\x03\x04garbage"),
            Err(Error::InvalidFile { .. })
        ));
    }
}
