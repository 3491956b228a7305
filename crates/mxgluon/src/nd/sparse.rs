//! Sparse arrays: [`RowSparseNDArray`] (MXNet's `row_sparse`) and [`CSRNDArray`] (`csr`), and
//! [`Array`], the enum of every storage type that file readers and writers exchange.
//!
//! This is a minimal, validated representation: constructors check every invariant and
//! return [`Error::InvalidSparse`] when one is broken, so a value of these types is always
//! well-formed. Index arrays are `int64`, as MXNet creates them.
//!
//! Operations (each costs time in proportion to the stored rows or values, never to the full
//! logical size, except conversions to dense): row-sparse sums, scatter-add into and gathering
//! from dense tables, `retain`, casts (in `rsp`), and products with a CSR left-hand side
//! ([`dot_csr_dense`], [`dot_csr_t_dense`], [`dot_csr_rsp`]). `Display` prints MXNet's repr,
//! which MXNet also uses for `str` of sparse arrays: `<RowSparseNDArray 4x2 @cpu(0)>`.
//!
//! ```
//! use mxgluon::nd::{self, Array, CSRNDArray, NDArray, RowSparseNDArray};
//! use mxgluon::{Context, StorageType};
//! let ctx = Context::cpu(0);
//! // rows 1 and 3 of a 4x2 matrix
//! let values = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], ctx)?;
//! let indices = NDArray::from_vec(vec![1i64, 3], &[2], ctx)?;
//! let rsp = RowSparseNDArray::new(values, indices, &[4, 2])?;
//! assert_eq!(rsp.to_dense()?.to_vec::<f32>()?, vec![0., 0., 1., 2., 0., 0., 3., 4.]);
//!
//! let dense = NDArray::from_vec(vec![5.0f32, 0.0, 6.0, 0.0, 7.0, 0.0], &[2, 3], ctx)?;
//! let csr = CSRNDArray::from_dense(&dense)?;
//! assert_eq!(csr.indptr_vec(), vec![0, 2, 3]);
//! assert_eq!(csr.indices_vec(), vec![0, 2, 1]);
//! let any: Array = csr.into();
//! assert_eq!(any.stype(), StorageType::Csr);
//! assert_eq!(any.tostype(StorageType::RowSparse)?.to_dense()?.to_vec::<f32>()?,
//!            dense.to_vec::<f32>()?);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::fmt;

use super::{shape_size, NDArray, Shape};
use crate::context::Context;
use crate::dtype::{DType, Scalar, StorageType};
use crate::error::{Error, Result};

mod dot;
mod rsp;

pub use dot::{dot_csr_dense, dot_csr_rsp, dot_csr_t_dense};

pub(crate) use rsp::{row_len, rows_mut};

fn invalid(stype: StorageType, part: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidSparse {
        stype,
        part,
        reason: reason.into(),
    }
}

/// Shape text as MXNet prints it in a sparse repr: `4x2`.
fn shape_text(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    parts.join("x")
}

/// Checks that `a` is a 1-d int64 array of `len` elements.
fn check_index_array(
    stype: StorageType,
    part: &'static str,
    a: &NDArray,
    len: Option<usize>,
) -> Result<()> {
    if a.dtype() != DType::Int64 {
        return Err(invalid(
            stype,
            part,
            format!("must have dtype int64, not {}", a.dtype()),
        ));
    }
    if a.ndim() != 1 {
        return Err(invalid(
            stype,
            part,
            format!(
                "must be 1-d, not of shape {}",
                crate::error::fmt_shape(a.shape())
            ),
        ));
    }
    if let Some(len) = len {
        if a.size() != len {
            return Err(invalid(
                stype,
                part,
                format!("must hold {len} elements, not {}", a.size()),
            ));
        }
    }
    Ok(())
}

fn check_same_context(op: &'static str, a: &NDArray, b: &NDArray) -> Result<()> {
    if a.context() != b.context() {
        return Err(Error::ContextMismatch {
            op,
            lhs: a.context(),
            rhs: b.context(),
        });
    }
    Ok(())
}

/// Per element "is not zero" of a dense array (NaN counts as non-zero, `-0.0` as zero, as in
/// MXNet's `cast_storage`).
fn nonzero_mask(a: &NDArray) -> Vec<bool> {
    crate::dispatch_dtype!(a.dtype(), T => a.read_slice::<T, _>(|s| s.iter().map(|v| Scalar::to_f64(*v) != 0.0).collect()))
}

// ------------------------------------------------------------------------------ row_sparse

/// A row-sparse array: the rows listed in `indices` hold `values`, every other row is zero.
///
/// `values` has shape `(nnz_rows, shape[1], ...)`; `indices` is a sorted, duplicate-free
/// `int64` vector of row numbers below `shape[0]`. Cloning shares the parts' memory.
#[derive(Clone)]
pub struct RowSparseNDArray {
    values: NDArray,
    indices: NDArray,
    shape: Shape,
}

impl RowSparseNDArray {
    /// Builds a row-sparse array from its parts, checking every invariant: `shape` has at least
    /// one dimension, `values` has shape `(indices.len(), shape[1..])`, `indices` is 1-d
    /// `int64`, strictly increasing and in `0..shape[0]`, and both parts live on one context.
    pub fn new(values: NDArray, indices: NDArray, shape: &[usize]) -> Result<Self> {
        let st = StorageType::RowSparse;
        if shape.is_empty() {
            return Err(invalid(st, "shape", "must have at least one dimension"));
        }
        if shape_size(shape).is_none() {
            return Err(invalid(
                st,
                "shape",
                format!("{} has too many elements", crate::error::fmt_shape(shape)),
            ));
        }
        check_index_array(st, "indices", &indices, None)?;
        check_same_context("row_sparse", &values, &indices)?;
        let nnz = indices.size();
        if values.ndim() != shape.len() || values.shape()[1..] != shape[1..] {
            return Err(invalid(
                st,
                "values",
                format!(
                    "must have shape (nnz_rows, {:?}...) for a row_sparse array of shape {}, not {}",
                    &shape[1..],
                    crate::error::fmt_shape(shape),
                    crate::error::fmt_shape(values.shape())
                ),
            ));
        }
        if values.shape()[0] != nnz {
            return Err(invalid(
                st,
                "values",
                format!(
                    "hold {} rows but there are {nnz} row indices",
                    values.shape()[0]
                ),
            ));
        }
        let rows = shape[0];
        indices.read_slice::<i64, _>(|idx| -> Result<()> {
            let mut prev: Option<i64> = None;
            for (i, &r) in idx.iter().enumerate() {
                if r < 0 || (r as u64) >= rows as u64 {
                    return Err(invalid(
                        st,
                        "indices",
                        format!("hold row {r} at position {i}, outside 0..{rows}"),
                    ));
                }
                if prev.is_some_and(|p| p >= r) {
                    return Err(invalid(
                        st,
                        "indices",
                        format!(
                            "must be strictly increasing, but {r} at position {i} follows {}",
                            prev.unwrap_or(0)
                        ),
                    ));
                }
                prev = Some(r);
            }
            Ok(())
        })?;
        Ok(RowSparseNDArray {
            values,
            indices,
            shape: Shape::from_slice(shape),
        })
    }

    /// An all-zero row-sparse array (no stored rows).
    pub fn zeros(shape: &[usize], dtype: DType, ctx: Context) -> Result<Self> {
        let mut vshape = shape.to_vec();
        if let Some(first) = vshape.first_mut() {
            *first = 0;
        }
        let values = NDArray::zeros(&vshape, dtype, ctx)?;
        let indices = NDArray::zeros(&[0], DType::Int64, ctx)?;
        RowSparseNDArray::new(values, indices, shape)
    }

    /// The row-sparse form of a dense array (at least 1-d): every row holding a non-zero
    /// element is stored (MXNet's `tostype('row_sparse')`).
    pub fn from_dense(dense: &NDArray) -> Result<Self> {
        let st = StorageType::RowSparse;
        if dense.ndim() == 0 {
            return Err(invalid(st, "shape", "a 0-d array has no rows"));
        }
        let shape = dense.shape().to_vec();
        let row: usize = shape[1..].iter().product();
        let mask = nonzero_mask(dense);
        let rows: Vec<i64> = (0..shape[0])
            .filter(|&r| mask[r * row..(r + 1) * row].iter().any(|&b| b))
            .map(|r| r as i64)
            .collect();
        let mut vshape = shape.clone();
        vshape[0] = rows.len();
        let values = NDArray::for_overwrite(&vshape, dense.dtype(), dense.context())?;
        let es = dense.dtype().size();
        dense.read_bytes(|src| {
            values.write_bytes(|dst| {
                for (i, &r) in rows.iter().enumerate() {
                    let r = r as usize;
                    dst[i * row * es..(i + 1) * row * es]
                        .copy_from_slice(&src[r * row * es..(r + 1) * row * es]);
                }
            })
        });
        let indices = NDArray::from_vec(rows, &[vshape[0]], dense.context())?;
        RowSparseNDArray::new(values, indices, &shape)
    }

    /// The dense array with the same values (zeros in the rows not stored).
    pub fn to_dense(&self) -> Result<NDArray> {
        let out = NDArray::zeros(&self.shape, self.dtype(), self.context())?;
        let row_bytes = self.shape[1..].iter().product::<usize>() * self.dtype().size();
        let idx = self.indices_vec();
        self.values.read_bytes(|src| {
            out.write_bytes(|dst| {
                for (i, &r) in idx.iter().enumerate() {
                    // `new` proved 0 <= r < shape[0].
                    let r = r as usize;
                    dst[r * row_bytes..(r + 1) * row_bytes]
                        .copy_from_slice(&src[i * row_bytes..(i + 1) * row_bytes]);
                }
            })
        });
        Ok(out)
    }

    /// The stored rows, shape `(nnz_rows, shape[1..])`.
    pub fn values(&self) -> &NDArray {
        &self.values
    }

    /// The row numbers of the stored rows (`int64`, strictly increasing).
    pub fn indices(&self) -> &NDArray {
        &self.indices
    }

    /// The row numbers as a vector.
    pub fn indices_vec(&self) -> Vec<i64> {
        self.indices.read_slice::<i64, _>(|s| s.to_vec())
    }

    /// Number of stored rows.
    pub fn nnz_rows(&self) -> usize {
        self.indices.size()
    }

    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type of the values.
    pub fn dtype(&self) -> DType {
        self.values.dtype()
    }

    /// The context the parts live on.
    pub fn context(&self) -> Context {
        self.values.context()
    }

    /// A copy on `ctx` (new memory).
    pub fn copy_to(&self, ctx: Context) -> Result<Self> {
        Ok(RowSparseNDArray {
            values: self.values.copy_to(ctx)?,
            indices: self.indices.copy_to(ctx)?,
            shape: self.shape.clone(),
        })
    }
}

impl fmt::Display for RowSparseNDArray {
    /// MXNet's repr of a sparse array (without its leading newline):
    /// `<RowSparseNDArray 4x2 @cpu(0)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<RowSparseNDArray {} @{}>",
            shape_text(&self.shape),
            self.context()
        )
    }
}

impl fmt::Debug for RowSparseNDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ------------------------------------------------------------------------------ csr

/// A compressed-sparse-row matrix: row `r` holds the values `data[indptr[r]..indptr[r+1]]`
/// in the columns `indices[indptr[r]..indptr[r+1]]`.
///
/// `data` and `indices` have `nnz` elements; `indptr` (`int64`) has `rows + 1`, starts at 0,
/// never decreases and ends at `nnz`; column indices (`int64`) are below `cols` and strictly
/// increasing within a row. Cloning shares the parts' memory.
#[derive(Clone)]
pub struct CSRNDArray {
    data: NDArray,
    indices: NDArray,
    indptr: NDArray,
    shape: [usize; 2],
}

impl CSRNDArray {
    /// Builds a CSR matrix of shape `(rows, cols)` from its parts, checking every invariant
    /// listed on the type.
    pub fn new(data: NDArray, indices: NDArray, indptr: NDArray, shape: &[usize]) -> Result<Self> {
        let st = StorageType::Csr;
        let &[rows, cols] = shape else {
            return Err(invalid(
                st,
                "shape",
                format!("must be 2-d, not {}", crate::error::fmt_shape(shape)),
            ));
        };
        if shape_size(shape).is_none() {
            return Err(invalid(
                st,
                "shape",
                format!("{} has too many elements", crate::error::fmt_shape(shape)),
            ));
        }
        if data.ndim() != 1 {
            return Err(invalid(
                st,
                "data",
                format!(
                    "must be 1-d, not of shape {}",
                    crate::error::fmt_shape(data.shape())
                ),
            ));
        }
        let nnz = data.size();
        check_index_array(st, "indices", &indices, Some(nnz))?;
        let Some(ptr_len) = rows.checked_add(1) else {
            return Err(invalid(st, "shape", "has too many rows"));
        };
        check_index_array(st, "indptr", &indptr, Some(ptr_len))?;
        check_same_context("csr", &data, &indices)?;
        check_same_context("csr", &data, &indptr)?;
        let ptr = indptr.read_slice::<i64, _>(|s| s.to_vec());
        if ptr[0] != 0 {
            return Err(invalid(
                st,
                "indptr",
                format!("must start at 0, not {}", ptr[0]),
            ));
        }
        for (r, w) in ptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(invalid(
                    st,
                    "indptr",
                    format!(
                        "must not decrease, but goes from {} to {} at row {r}",
                        w[0], w[1]
                    ),
                ));
            }
        }
        if ptr[rows] as u64 != nnz as u64 {
            return Err(invalid(
                st,
                "indptr",
                format!("must end at nnz = {nnz}, not {}", ptr[rows]),
            ));
        }
        indices.read_slice::<i64, _>(|idx| -> Result<()> {
            for (r, w) in ptr.windows(2).enumerate() {
                // 0 <= w[0] <= w[1] <= nnz was checked above.
                let row = &idx[w[0] as usize..w[1] as usize];
                for (k, &c) in row.iter().enumerate() {
                    if c < 0 || c as u64 >= cols as u64 {
                        return Err(invalid(
                            st,
                            "indices",
                            format!("hold column {c} in row {r}, outside 0..{cols}"),
                        ));
                    }
                    if k > 0 && row[k - 1] >= c {
                        return Err(invalid(
                            st,
                            "indices",
                            format!(
                                "must be strictly increasing within a row, but row {r} has {} before {c}",
                                row[k - 1]
                            ),
                        ));
                    }
                }
            }
            Ok(())
        })?;
        Ok(CSRNDArray {
            data,
            indices,
            indptr,
            shape: [rows, cols],
        })
    }

    /// An all-zero CSR matrix (no stored values).
    pub fn zeros(shape: &[usize], dtype: DType, ctx: Context) -> Result<Self> {
        let rows = shape.first().copied().unwrap_or(0);
        let data = NDArray::zeros(&[0], dtype, ctx)?;
        let indices = NDArray::zeros(&[0], DType::Int64, ctx)?;
        let indptr = NDArray::zeros(&[rows.saturating_add(1)], DType::Int64, ctx)?;
        CSRNDArray::new(data, indices, indptr, shape)
    }

    /// The CSR form of a 2-d dense array (MXNet's `tostype('csr')`): every non-zero element is
    /// stored.
    pub fn from_dense(dense: &NDArray) -> Result<Self> {
        let st = StorageType::Csr;
        let &[rows, cols] = dense.shape() else {
            return Err(invalid(
                st,
                "shape",
                format!(
                    "must be 2-d, not {}",
                    crate::error::fmt_shape(dense.shape())
                ),
            ));
        };
        let mask = nonzero_mask(dense);
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut cols_kept = Vec::new();
        let mut flat = Vec::new();
        indptr.push(0i64);
        for r in 0..rows {
            for c in 0..cols {
                if mask[r * cols + c] {
                    cols_kept.push(c as i64);
                    flat.push(r * cols + c);
                }
            }
            indptr.push(cols_kept.len() as i64);
        }
        let nnz = flat.len();
        let data = NDArray::for_overwrite(&[nnz], dense.dtype(), dense.context())?;
        let es = dense.dtype().size();
        dense.read_bytes(|src| {
            data.write_bytes(|dst| {
                for (i, &k) in flat.iter().enumerate() {
                    dst[i * es..(i + 1) * es].copy_from_slice(&src[k * es..(k + 1) * es]);
                }
            })
        });
        let ctx = dense.context();
        let indices = NDArray::from_vec(cols_kept, &[nnz], ctx)?;
        let indptr = NDArray::from_vec(indptr, &[rows + 1], ctx)?;
        CSRNDArray::new(data, indices, indptr, &[rows, cols])
    }

    /// The dense matrix with the same values.
    pub fn to_dense(&self) -> Result<NDArray> {
        let out = NDArray::zeros(&self.shape, self.dtype(), self.context())?;
        let es = self.dtype().size();
        let cols = self.shape[1];
        let ptr = self.indptr_vec();
        let idx = self.indices_vec();
        self.data.read_bytes(|src| {
            out.write_bytes(|dst| {
                for (r, w) in ptr.windows(2).enumerate() {
                    // `new` proved 0 <= w[0] <= w[1] <= nnz and 0 <= column < cols.
                    for k in w[0] as usize..w[1] as usize {
                        let at = r * cols + idx[k] as usize;
                        dst[at * es..(at + 1) * es].copy_from_slice(&src[k * es..(k + 1) * es]);
                    }
                }
            })
        });
        Ok(out)
    }

    /// The stored values, shape `(nnz,)`.
    pub fn data(&self) -> &NDArray {
        &self.data
    }

    /// The column of each stored value (`int64`, shape `(nnz,)`).
    pub fn indices(&self) -> &NDArray {
        &self.indices
    }

    /// Row pointers (`int64`, shape `(rows + 1,)`).
    pub fn indptr(&self) -> &NDArray {
        &self.indptr
    }

    /// The column indices as a vector.
    pub fn indices_vec(&self) -> Vec<i64> {
        self.indices.read_slice::<i64, _>(|s| s.to_vec())
    }

    /// The row pointers as a vector.
    pub fn indptr_vec(&self) -> Vec<i64> {
        self.indptr.read_slice::<i64, _>(|s| s.to_vec())
    }

    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        self.data.size()
    }

    /// The logical shape `(rows, cols)`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type of the values.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The context the parts live on.
    pub fn context(&self) -> Context {
        self.data.context()
    }

    /// A copy with values converted to `dtype` (same structure; new memory).
    pub fn astype(&self, dtype: DType) -> Result<Self> {
        Ok(CSRNDArray {
            data: self.data.astype_untracked(dtype)?,
            indices: self.indices.copy_to_untracked(self.context())?,
            indptr: self.indptr.copy_to_untracked(self.context())?,
            shape: self.shape,
        })
    }

    /// A copy on `ctx` (new memory).
    pub fn copy_to(&self, ctx: Context) -> Result<Self> {
        Ok(CSRNDArray {
            data: self.data.copy_to(ctx)?,
            indices: self.indices.copy_to(ctx)?,
            indptr: self.indptr.copy_to(ctx)?,
            shape: self.shape,
        })
    }
}

impl fmt::Display for CSRNDArray {
    /// MXNet's repr of a sparse array (without its leading newline): `<CSRNDArray 2x3 @cpu(0)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<CSRNDArray {} @{}>",
            shape_text(&self.shape),
            self.context()
        )
    }
}

impl fmt::Debug for CSRNDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ------------------------------------------------------------------------------ Array

/// An array of any storage type: what file readers return and writers take.
#[derive(Clone, Debug)]
pub enum Array {
    /// Dense storage.
    Dense(NDArray),
    /// Row-sparse storage.
    RowSparse(RowSparseNDArray),
    /// Compressed-sparse-row storage.
    Csr(CSRNDArray),
}

impl Array {
    /// The storage type.
    pub fn stype(&self) -> StorageType {
        match self {
            Array::Dense(_) => StorageType::Default,
            Array::RowSparse(_) => StorageType::RowSparse,
            Array::Csr(_) => StorageType::Csr,
        }
    }

    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Array::Dense(a) => a.shape(),
            Array::RowSparse(a) => a.shape(),
            Array::Csr(a) => a.shape(),
        }
    }

    /// The element type of the values.
    pub fn dtype(&self) -> DType {
        match self {
            Array::Dense(a) => a.dtype(),
            Array::RowSparse(a) => a.dtype(),
            Array::Csr(a) => a.dtype(),
        }
    }

    /// The context.
    pub fn context(&self) -> Context {
        match self {
            Array::Dense(a) => a.context(),
            Array::RowSparse(a) => a.context(),
            Array::Csr(a) => a.context(),
        }
    }

    /// Bytes of the stored values and index arrays.
    pub fn stored_nbytes(&self) -> usize {
        match self {
            Array::Dense(a) => a.nbytes(),
            Array::RowSparse(a) => a.values.nbytes() + a.indices.nbytes(),
            Array::Csr(a) => a.data.nbytes() + a.indices.nbytes() + a.indptr.nbytes(),
        }
    }

    /// The dense array, if this is one.
    pub fn as_dense(&self) -> Option<&NDArray> {
        match self {
            Array::Dense(a) => Some(a),
            _ => None,
        }
    }

    /// The dense form: the array itself (a shared handle) for dense storage, a new array for
    /// sparse storage.
    pub fn to_dense(&self) -> Result<NDArray> {
        match self {
            Array::Dense(a) => Ok(a.clone()),
            Array::RowSparse(a) => a.to_dense(),
            Array::Csr(a) => a.to_dense(),
        }
    }

    /// This array in storage type `stype` (MXNet's `tostype`); the same handle when it already
    /// has that storage type.
    pub fn tostype(&self, stype: StorageType) -> Result<Array> {
        if stype == self.stype() {
            return Ok(self.clone());
        }
        let dense = self.to_dense()?;
        Ok(match stype {
            StorageType::Default => Array::Dense(dense),
            StorageType::RowSparse => Array::RowSparse(RowSparseNDArray::from_dense(&dense)?),
            StorageType::Csr => Array::Csr(CSRNDArray::from_dense(&dense)?),
        })
    }

    /// A copy on `ctx` (new memory).
    pub fn copy_to(&self, ctx: Context) -> Result<Array> {
        Ok(match self {
            Array::Dense(a) => Array::Dense(a.copy_to(ctx)?),
            Array::RowSparse(a) => Array::RowSparse(a.copy_to(ctx)?),
            Array::Csr(a) => Array::Csr(a.copy_to(ctx)?),
        })
    }
}

impl From<NDArray> for Array {
    fn from(a: NDArray) -> Self {
        Array::Dense(a)
    }
}

impl From<RowSparseNDArray> for Array {
    fn from(a: RowSparseNDArray) -> Self {
        Array::RowSparse(a)
    }
}

impl From<CSRNDArray> for Array {
    fn from(a: CSRNDArray) -> Self {
        Array::Csr(a)
    }
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Array::Dense(a) => fmt::Display::fmt(a, f),
            Array::RowSparse(a) => fmt::Display::fmt(a, f),
            Array::Csr(a) => fmt::Display::fmt(a, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    fn i64s(v: Vec<i64>) -> NDArray {
        let n = v.len();
        NDArray::from_vec(v, &[n], cpu()).unwrap()
    }

    #[test]
    fn row_sparse_validates_its_parts() {
        let vals = |rows: usize| NDArray::zeros(&[rows, 2], DType::Float32, cpu()).unwrap();
        assert!(RowSparseNDArray::new(vals(2), i64s(vec![0, 3]), &[4, 2]).is_ok());
        let err = |r: Result<RowSparseNDArray>| match r {
            Err(Error::InvalidSparse { part, .. }) => part,
            other => panic!("expected InvalidSparse, got {other:?}"),
        };
        assert_eq!(
            err(RowSparseNDArray::new(vals(2), i64s(vec![3, 1]), &[4, 2])),
            "indices"
        );
        assert_eq!(
            err(RowSparseNDArray::new(vals(2), i64s(vec![1, 1]), &[4, 2])),
            "indices"
        );
        assert_eq!(
            err(RowSparseNDArray::new(vals(2), i64s(vec![1, 4]), &[4, 2])),
            "indices"
        );
        assert_eq!(
            err(RowSparseNDArray::new(vals(2), i64s(vec![-1, 2]), &[4, 2])),
            "indices"
        );
        assert_eq!(
            err(RowSparseNDArray::new(vals(3), i64s(vec![1, 2]), &[4, 2])),
            "values"
        );
        assert_eq!(
            err(RowSparseNDArray::new(vals(2), i64s(vec![1, 2]), &[4, 3])),
            "values"
        );
        assert_eq!(
            err(RowSparseNDArray::new(vals(0), i64s(vec![]), &[])),
            "shape"
        );
        let i32_idx = NDArray::from_vec(vec![0i32, 1], &[2], cpu()).unwrap();
        assert_eq!(
            err(RowSparseNDArray::new(vals(2), i32_idx, &[4, 2])),
            "indices"
        );
        let other_ctx = i64s(vec![0, 1]).copy_to(Context::cpu(1)).unwrap();
        assert!(matches!(
            RowSparseNDArray::new(vals(2), other_ctx, &[4, 2]),
            Err(Error::ContextMismatch { .. })
        ));
    }

    #[test]
    fn row_sparse_dense_round_trip() {
        let d = NDArray::from_vec(vec![0f32, 0., 1., 2., 0., 0., -0., 4.], &[4, 2], cpu()).unwrap();
        let r = RowSparseNDArray::from_dense(&d).unwrap();
        assert_eq!(r.indices_vec(), vec![1, 3]);
        assert_eq!(r.values().to_vec::<f32>().unwrap(), vec![1., 2., -0., 4.]);
        assert_eq!(
            r.to_dense().unwrap().to_vec::<f32>().unwrap(),
            d.to_vec::<f32>().unwrap()
        );
        assert_eq!(r.to_string(), "<RowSparseNDArray 4x2 @cpu(0)>");
        let z = RowSparseNDArray::zeros(&[5, 2], DType::Float64, cpu()).unwrap();
        assert_eq!(z.nnz_rows(), 0);
        assert_eq!(z.values().shape(), &[0, 2]);
        assert_eq!(z.to_dense().unwrap().to_f64_vec(), vec![0.0; 10]);
        // -0.0 alone is zero, NaN is not
        let d = NDArray::from_vec(vec![-0.0f32, f32::NAN], &[2], cpu()).unwrap();
        assert_eq!(
            RowSparseNDArray::from_dense(&d).unwrap().indices_vec(),
            vec![1]
        );
    }

    #[test]
    fn csr_validates_its_parts() {
        let data = |n: usize| NDArray::zeros(&[n], DType::Float32, cpu()).unwrap();
        assert!(
            CSRNDArray::new(data(3), i64s(vec![0, 2, 1]), i64s(vec![0, 2, 3]), &[2, 3]).is_ok()
        );
        let err = |r: Result<CSRNDArray>| match r {
            Err(Error::InvalidSparse { part, .. }) => part,
            other => panic!("expected InvalidSparse, got {other:?}"),
        };
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 2, 1]),
                i64s(vec![1, 2, 3]),
                &[2, 3]
            )),
            "indptr"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 2, 1]),
                i64s(vec![0, 3, 2]),
                &[2, 3]
            )),
            "indptr"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 2, 1]),
                i64s(vec![0, 2, 2]),
                &[2, 3]
            )),
            "indptr"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 2, 1]),
                i64s(vec![0, 2]),
                &[2, 3]
            )),
            "indptr"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 3, 1]),
                i64s(vec![0, 2, 3]),
                &[2, 3]
            )),
            "indices"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![2, 0, 1]),
                i64s(vec![0, 2, 3]),
                &[2, 3]
            )),
            "indices"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 2]),
                i64s(vec![0, 2, 3]),
                &[2, 3]
            )),
            "indices"
        );
        assert_eq!(
            err(CSRNDArray::new(
                data(3),
                i64s(vec![0, 2, 1]),
                i64s(vec![0, 2, 3]),
                &[6]
            )),
            "shape"
        );
        let two_d = NDArray::zeros(&[3, 1], DType::Float32, cpu()).unwrap();
        assert_eq!(
            err(CSRNDArray::new(
                two_d,
                i64s(vec![0, 2, 1]),
                i64s(vec![0, 2, 3]),
                &[2, 3]
            )),
            "data"
        );
    }

    #[test]
    fn csr_dense_round_trip() {
        let d = NDArray::from_vec(vec![5i32, 0, 6, 0, 7, 0], &[2, 3], cpu()).unwrap();
        let c = CSRNDArray::from_dense(&d).unwrap();
        assert_eq!(c.indptr_vec(), vec![0, 2, 3]);
        assert_eq!(c.indices_vec(), vec![0, 2, 1]);
        assert_eq!(c.data().to_vec::<i32>().unwrap(), vec![5, 6, 7]);
        assert_eq!(
            c.to_dense().unwrap().to_vec::<i32>().unwrap(),
            d.to_vec::<i32>().unwrap()
        );
        assert_eq!(c.to_string(), "<CSRNDArray 2x3 @cpu(0)>");
        let c64 = c.astype(DType::Float64).unwrap();
        assert_eq!(c64.dtype(), DType::Float64);
        assert_eq!(c64.indptr_vec(), c.indptr_vec());
        assert_eq!(c64.to_dense().unwrap().to_f64_vec(), d.to_f64_vec());
        let z = CSRNDArray::zeros(&[2, 3], DType::Float32, cpu()).unwrap();
        assert_eq!(z.indptr_vec(), vec![0, 0, 0]);
        assert_eq!(z.nnz(), 0);
        assert!(
            CSRNDArray::from_dense(&NDArray::zeros(&[3], DType::Float32, cpu()).unwrap()).is_err()
        );
    }

    #[test]
    fn array_tostype_converts_between_all_storage_types() {
        let d = NDArray::from_vec(vec![0f64, 1., 0., 0., 2., 3.], &[3, 2], cpu()).unwrap();
        let a = Array::from(d.clone());
        for st in StorageType::ALL {
            let b = a.tostype(st).unwrap();
            assert_eq!(b.stype(), st);
            assert_eq!(b.shape(), &[3, 2]);
            assert_eq!(b.dtype(), DType::Float64);
            for st2 in StorageType::ALL {
                let c = b.tostype(st2).unwrap();
                assert_eq!(c.to_dense().unwrap().to_f64_vec(), d.to_f64_vec());
            }
        }
        let moved = a
            .tostype(StorageType::Csr)
            .unwrap()
            .copy_to(Context::cpu(2))
            .unwrap();
        assert_eq!(moved.context(), Context::cpu(2));
        assert_eq!(moved.stored_nbytes(), 3 * 8 + 3 * 8 + 4 * 8);
    }
}
