//! `io`: array files. MXNet's `.params` format ([`params`], every record version, dense and
//! sparse), safetensors ([`safetensors`]), NumPy `.npy` ([`npy`]) and `.npz` ([`npz`]), and
//! lazy, memory-mapped inspection of any of them ([`FileView`]). MNIST's IDX files, plain or
//! gzipped, have their own reader and writer ([`idx`]: one array per file, not an `ArrayList`).
//!
//! Every reader takes a path or a byte slice and checks each count and length it reads
//! against the bytes that remain **before** allocating anything: a truncated, corrupted or
//! hostile input gives [`Error::InvalidFile`] with the byte offset
//! and what was expected there, never a panic or an allocation larger than the input (npz
//! members compressed with deflate are the one exception: they may inflate up to deflate's
//! maximum ratio, 1032:1, and never beyond the size their header declares).
//!
//! Every writer is atomic: it writes a temporary file next to the target (named
//! `.<name>.<pid>.<n>.tmp`), flushes it to disk (`fsync`), renames it over the target and
//! syncs the folder, so a crash leaves either the old file or the new one, never a torn one.
//! A process killed mid-save may leave its temporary file behind; it is never read.
//!
//! Data is exchanged as an [`ArrayList`]: MXNet's list or name → array dict of [`Array`]s
//! (dense, row-sparse or CSR). `mxgluon::nd::{save, load}` are the `.params` entry points with
//! MXNet's names; [`save`] and [`load`] here pick the format from the file extension.
//!
//! ```
//! use mxgluon::{io, nd, Context};
//! let dir = std::env::temp_dir().join(format!("mxgluon-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let w = nd::NDArray::from_vec(vec![1.0f32, 2.0, 3.0], &[3], Context::cpu(0))?;
//! let data = io::ArrayList::from(vec![("w".to_string(), w)]);
//! for name in ["a.params", "a.safetensors", "a.npz"] {
//!     io::save(dir.join(name), &data)?;
//!     let back = io::load(dir.join(name))?;
//!     assert_eq!(back.get("w").unwrap().to_dense()?.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
//! }
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mxgluon::Error>(())
//! ```

mod atomic;
pub(crate) use atomic::write_atomic;
pub mod idx;
pub mod npy;
pub mod npz;
pub mod params;
pub mod safetensors;
mod view;

use std::path::Path;

use crate::error::{Error, Result};
use crate::nd::{Array, NDArray};

pub use view::{EntryView, FileView, Stats};

/// Arrays as MXNet saves them: a list (no names) or a dict (names in order).
///
/// Converts from vectors of arrays or of `(name, array)` pairs, dense or any [`Array`].
/// Names in a dict are kept in the order given; a `.params` dict may even repeat a name
/// (MXNet's loader then keeps the last value, and so does [`params::load`]).
#[derive(Clone, Debug)]
pub enum ArrayList {
    /// Arrays without names (MXNet's `nd.save(f, [a, b])`).
    List(Vec<Array>),
    /// Named arrays, in order (MXNet's `nd.save(f, {'a': a})`).
    Dict(Vec<(String, Array)>),
}

impl ArrayList {
    /// Number of arrays.
    pub fn len(&self) -> usize {
        match self {
            ArrayList::List(v) => v.len(),
            ArrayList::Dict(v) => v.len(),
        }
    }

    /// Whether there are no arrays.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the arrays have names.
    pub fn is_dict(&self) -> bool {
        matches!(self, ArrayList::Dict(_))
    }

    /// The array named `name` (the last one if the name repeats); `None` for lists.
    pub fn get(&self, name: &str) -> Option<&Array> {
        match self {
            ArrayList::List(_) => None,
            ArrayList::Dict(v) => v.iter().rev().find(|(n, _)| n == name).map(|(_, a)| a),
        }
    }

    /// The names of a dict, in order; `None` for a list.
    pub fn names(&self) -> Option<Vec<&str>> {
        match self {
            ArrayList::List(_) => None,
            ArrayList::Dict(v) => Some(v.iter().map(|(n, _)| n.as_str()).collect()),
        }
    }

    /// The arrays in order, with their names (`None` in a list).
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, &Array)> {
        let (list, dict) = match self {
            ArrayList::List(v) => (Some(v.iter()), None),
            ArrayList::Dict(v) => (None, Some(v.iter())),
        };
        list.into_iter().flatten().map(|a| (None, a)).chain(
            dict.into_iter()
                .flatten()
                .map(|(n, a)| (Some(n.as_str()), a)),
        )
    }

    /// Named arrays: a dict as it is, a list with the names NumPy's `savez` gives positional
    /// arrays (`arr_0`, `arr_1`, ...). Used by formats that need names.
    pub fn into_named(self) -> Vec<(String, Array)> {
        match self {
            ArrayList::List(v) => v
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("arr_{i}"), a))
                .collect(),
            ArrayList::Dict(v) => v,
        }
    }

    /// The same arrays with sparse ones converted to dense storage; `on_sparse` is called with
    /// the name (or index) of each converted array, e.g. to warn.
    pub fn densified(&self, mut on_sparse: impl FnMut(&str)) -> Result<ArrayList> {
        let mut conv = |label: String, a: &Array| -> Result<Array> {
            if a.stype() == crate::StorageType::Default {
                return Ok(a.clone());
            }
            on_sparse(&label);
            Ok(Array::Dense(a.to_dense()?))
        };
        Ok(match self {
            ArrayList::List(v) => ArrayList::List(
                v.iter()
                    .enumerate()
                    .map(|(i, a)| conv(i.to_string(), a))
                    .collect::<Result<_>>()?,
            ),
            ArrayList::Dict(v) => ArrayList::Dict(
                v.iter()
                    .map(|(n, a)| Ok((n.clone(), conv(n.clone(), a)?)))
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

impl From<Vec<Array>> for ArrayList {
    fn from(v: Vec<Array>) -> Self {
        ArrayList::List(v)
    }
}

impl From<Vec<NDArray>> for ArrayList {
    fn from(v: Vec<NDArray>) -> Self {
        ArrayList::List(v.into_iter().map(Array::Dense).collect())
    }
}

impl From<NDArray> for ArrayList {
    /// One array is saved as a one-element list, as MXNet's `nd.save(f, a)` does.
    fn from(a: NDArray) -> Self {
        ArrayList::List(vec![Array::Dense(a)])
    }
}

impl From<Vec<(String, Array)>> for ArrayList {
    fn from(v: Vec<(String, Array)>) -> Self {
        ArrayList::Dict(v)
    }
}

impl From<Vec<(String, NDArray)>> for ArrayList {
    fn from(v: Vec<(String, NDArray)>) -> Self {
        ArrayList::Dict(v.into_iter().map(|(n, a)| (n, Array::Dense(a))).collect())
    }
}

impl<'a> From<Vec<(&'a str, NDArray)>> for ArrayList {
    fn from(v: Vec<(&'a str, NDArray)>) -> Self {
        ArrayList::Dict(
            v.into_iter()
                .map(|(n, a)| (n.to_string(), Array::Dense(a)))
                .collect(),
        )
    }
}

impl<'a> From<Vec<(&'a str, Array)>> for ArrayList {
    fn from(v: Vec<(&'a str, Array)>) -> Self {
        ArrayList::Dict(v.into_iter().map(|(n, a)| (n.to_string(), a)).collect())
    }
}

/// The file formats of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// MXNet's NDArray list format (`.params`, also `.nd`).
    Params,
    /// safetensors (`.safetensors`).
    Safetensors,
    /// One NumPy array (`.npy`).
    Npy,
    /// A zip of NumPy arrays (`.npz`).
    Npz,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [
        Format::Params,
        Format::Safetensors,
        Format::Npy,
        Format::Npz,
    ];

    /// The extensions recognised for each format.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Params => &["params", "nd"],
            Format::Safetensors => &["safetensors"],
            Format::Npy => &["npy"],
            Format::Npz => &["npz"],
        }
    }

    /// A short name: `"params"`, `"safetensors"`, `"npy"`, `"npz"`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Params => "params",
            Format::Safetensors => "safetensors",
            Format::Npy => "npy",
            Format::Npz => "npz",
        }
    }

    /// The format named by a path's extension (case-insensitive).
    ///
    /// ```
    /// use mxgluon::io::Format;
    /// assert_eq!(Format::from_path("net-0000.params")?, Format::Params);
    /// assert_eq!(Format::from_path("model.SafeTensors")?, Format::Safetensors);
    /// assert!(Format::from_path("weights.bin").is_err());
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Format> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        Format::ALL
            .into_iter()
            .find(|f| ext.as_deref().is_some_and(|e| f.extensions().contains(&e)))
            .ok_or_else(|| Error::UnknownFileFormat {
                path: path.display().to_string(),
                known: Format::ALL
                    .iter()
                    .flat_map(|f| f.extensions().iter().copied())
                    .map(|e| match e {
                        "params" => ".params",
                        "nd" => ".nd",
                        "safetensors" => ".safetensors",
                        "npy" => ".npy",
                        _ => ".npz",
                    })
                    .collect(),
            })
    }

    /// The format of some bytes, from their first bytes (magic numbers), if recognisable.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.len() >= 8 && bytes[..8] == params::LIST_MAGIC.to_le_bytes() {
            Some(Format::Params)
        } else if bytes.starts_with(npy::MAGIC) {
            Some(Format::Npy)
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Some(Format::Npz)
        } else if bytes.len() >= 9 && bytes[8] == b'{' {
            Some(Format::Safetensors)
        } else {
            None
        }
    }
}

/// Loads any supported file, choosing the format by extension. `.params` files keep MXNet's
/// list/dict distinction; safetensors and npz files give dicts; an `.npy` file gives a
/// one-element list.
pub fn load(path: impl AsRef<Path>) -> Result<ArrayList> {
    let path = path.as_ref();
    match Format::from_path(path)? {
        Format::Params => Ok(params::load(path)?.into_arrays()),
        Format::Safetensors => safetensors::load(path),
        Format::Npy => Ok(ArrayList::List(vec![Array::Dense(npy::load(path)?)])),
        Format::Npz => npz::load(path),
    }
}

/// Saves in the format named by the extension (atomically). safetensors, npy and npz have no
/// sparse storage: sparse arrays are refused there (convert them with
/// [`ArrayList::densified`] first). Lists are named `arr_0`, `arr_1`, ... in safetensors and
/// npz; an `.npy` file holds exactly one array.
pub fn save(path: impl AsRef<Path>, data: &ArrayList) -> Result<()> {
    let path = path.as_ref();
    match Format::from_path(path)? {
        Format::Params => params::save(path, data),
        Format::Safetensors => safetensors::save(path, data),
        Format::Npy => {
            let arrays: Vec<&Array> = data.iter().map(|(_, a)| a).collect();
            match arrays.as_slice() {
                [Array::Dense(a)] => npy::save(path, a),
                [other] => Err(Error::UnsupportedByFormat {
                    format: "npy",
                    what: format!("a {} array", other.stype()),
                    hint: "convert it to dense storage first".into(),
                }),
                _ => Err(Error::UnsupportedByFormat {
                    format: "npy",
                    what: format!("{} arrays in one file", arrays.len()),
                    hint: "an .npy file holds exactly one array; use .npz for several".into(),
                }),
            }
        }
        Format::Npz => npz::save(path, data),
    }
}

/// Converts little-endian file bytes of `dtype` elements to this machine's order in place
/// (nothing to do on little-endian machines).
#[inline]
pub(crate) fn le_to_native(dtype: crate::DType, bytes: &mut [u8]) {
    if cfg!(target_endian = "big") {
        let es = dtype.size();
        if es > 1 {
            for c in bytes.chunks_exact_mut(es) {
                c.reverse();
            }
        }
    }
}

/// Writes an array's bytes little-endian.
pub(crate) fn write_le(w: &mut impl std::io::Write, a: &NDArray) -> std::io::Result<()> {
    if cfg!(target_endian = "big") && a.dtype().size() > 1 {
        let mut copy = a.read_bytes(|b| b.to_vec());
        le_to_native(a.dtype(), &mut copy);
        w.write_all(&copy)
    } else {
        a.read_bytes(|b| w.write_all(b))
    }
}

/// A new array holding a copy of little-endian `bytes` (length already checked by the caller).
pub(crate) fn array_from_le(
    bytes: &[u8],
    shape: &[usize],
    dtype: crate::DType,
    ctx: crate::Context,
) -> Result<NDArray> {
    let a = NDArray::for_overwrite(shape, dtype, ctx)?;
    a.write_bytes(|dst| {
        dst.copy_from_slice(bytes);
        le_to_native(dtype, dst);
    });
    Ok(a)
}

/// `Error::Io` for `path`.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The element count of `shape` times `elem` bytes, `None` on overflow.
pub(crate) fn byte_size(shape: &[usize], elem: usize) -> Option<u64> {
    shape
        .iter()
        .try_fold(elem as u64, |acc, &d| acc.checked_mul(d as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, StorageType};

    #[test]
    fn array_list_accessors() {
        let a = NDArray::from_vec(vec![1i32, 2], &[2], Context::cpu(0)).unwrap();
        let d = ArrayList::from(vec![("x", a.clone()), ("y", a.clone()), ("x", a.clone())]);
        assert!(d.is_dict());
        assert_eq!(d.len(), 3);
        assert_eq!(d.names().unwrap(), vec!["x", "y", "x"]);
        assert!(d.get("y").is_some() && d.get("z").is_none());
        let l = ArrayList::from(vec![a.clone(), a]);
        assert!(l.get("x").is_none() && l.names().is_none());
        assert_eq!(
            l.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            vec![None, None]
        );
        let named = l.into_named();
        assert_eq!(named[1].0, "arr_1");
    }

    #[test]
    fn densified_reports_sparse_entries() {
        let d = NDArray::from_vec(vec![0f32, 1., 0., 0.], &[2, 2], Context::cpu(0)).unwrap();
        let list = ArrayList::from(vec![
            ("d", Array::Dense(d.clone())),
            ("s", Array::Dense(d).tostype(StorageType::Csr).unwrap()),
        ]);
        let mut seen = vec![];
        let dense = list.densified(|n| seen.push(n.to_string())).unwrap();
        assert_eq!(seen, vec!["s"]);
        assert!(dense.iter().all(|(_, a)| a.stype() == StorageType::Default));
    }

    #[test]
    fn formats_by_extension_and_magic() {
        assert_eq!(Format::from_path("a/b.npz").unwrap(), Format::Npz);
        assert_eq!(Format::from_path("x.nd").unwrap(), Format::Params);
        let e = Format::from_path("x").unwrap_err().to_string();
        assert!(e.contains(".safetensors"), "{e}");
        assert_eq!(Format::sniff(b"\x93NUMPY\x01\x00"), Some(Format::Npy));
        assert_eq!(Format::sniff(&0x112u64.to_le_bytes()), Some(Format::Params));
        assert_eq!(Format::sniff(b"PK\x03\x04...."), Some(Format::Npz));
        assert_eq!(
            Format::sniff(b"\x02\x00\x00\x00\x00\x00\x00\x00{}"),
            Some(Format::Safetensors)
        );
        assert_eq!(Format::sniff(b"hello"), None);
    }
}
