//! Operations on [`RowSparseNDArray`]: sums (two-way and n-way), building from unsorted row
//! ids, scatter-add into a dense table, gathering and retaining rows, casts.
//!
//! Every operation costs time proportional to the stored rows it reads and writes (times the
//! row length), plus a sort or merge of row ids; none touches the rows a row-sparse array does
//! not store, so a 10,000,000-row table with 1,000 stored rows costs as much as a 1,000-row one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::RowSparseNDArray;
use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};
use crate::nd::par::worth_parallel;
use crate::nd::NDArray;

/// Elements per row of an array of shape `shape` (product of all but the first dimension).
pub(crate) fn row_len(shape: &[usize]) -> usize {
    shape[1..].iter().product()
}

/// Disjoint mutable views of the rows `rows` (strictly increasing, each below
/// `data.len() / row_len`) of a row-major table whose rows hold `row_len` elements.
///
/// Costs O(`rows.len()`): the table's other rows are skipped, not visited.
pub(crate) fn rows_mut<'a, T>(
    mut data: &'a mut [T],
    rows: &[i64],
    row_len: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(rows.len());
    let mut base = 0usize;
    for &r in rows {
        let r = r as usize;
        let rest = std::mem::take(&mut data);
        let (_, rest) = rest.split_at_mut((r - base) * row_len);
        let (row, rest) = rest.split_at_mut(row_len);
        out.push(row);
        data = rest;
        base = r + 1;
    }
    out
}

/// Runs `f(i, row_i)` for every row, on the rayon pool when `rows.len() * row_len` is large.
pub(crate) fn for_each_row<T: Send>(
    rows: Vec<&mut [T]>,
    row_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if worth_parallel(rows.len().saturating_mul(row_len)) {
        rows.into_par_iter()
            .enumerate()
            .with_min_len((crate::nd::par::CHUNK / row_len.max(1)).max(1))
            .for_each(|(i, r)| f(i, r));
    } else {
        for (i, r) in rows.into_iter().enumerate() {
            f(i, r);
        }
    }
}

/// Row ids held by a 1-d array of any integer or float dtype: every value must be a whole
/// number in `0..nrows`. Returned sorted and without duplicates.
pub(crate) fn parse_row_ids(op: &'static str, rows: &NDArray, nrows: usize) -> Result<Vec<i64>> {
    if rows.ndim() != 1 {
        return Err(Error::InvalidShape {
            op,
            shape: rows.shape().to_vec(),
            reason: "row ids must be a 1-d array".into(),
        });
    }
    let mut ids = Vec::with_capacity(rows.size());
    for (i, v) in rows.to_f64_vec().into_iter().enumerate() {
        if !(v.fract() == 0.0 && v >= 0.0 && v < nrows as f64) {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("row id {v} at position {i} is not a whole number in 0..{nrows}"),
            });
        }
        ids.push(v as i64);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The plan of a summation: output row `j` is the sum, in order, of the source rows
/// `srcs[starts[j]..starts[j + 1]]`, each a (part, row within that part's values) pair.
struct SumPlan {
    rows: Vec<i64>,
    starts: Vec<usize>,
    srcs: Vec<(usize, usize)>,
}

impl SumPlan {
    fn new() -> SumPlan {
        SumPlan {
            rows: Vec::new(),
            starts: vec![0],
            srcs: Vec::new(),
        }
    }

    /// Appends a source for row `r`; sources must arrive in non-decreasing row order.
    fn push(&mut self, r: i64, src: (usize, usize)) {
        if self.rows.last() != Some(&r) {
            if !self.rows.is_empty() {
                self.starts.push(self.srcs.len());
            }
            self.rows.push(r);
        }
        self.srcs.push(src);
    }

    fn finish(mut self) -> SumPlan {
        if !self.rows.is_empty() {
            self.starts.push(self.srcs.len());
        }
        self
    }

    /// Executes the plan into a new row-sparse array of `shape` on `ctx`'s context.
    fn run(
        self,
        op: &'static str,
        parts: &[&NDArray],
        shape: &[usize],
        dtype: DType,
        ctx: crate::Context,
    ) -> Result<RowSparseNDArray> {
        let rl = row_len(shape);
        let mut vshape = shape.to_vec();
        vshape[0] = self.rows.len();
        let values = NDArray::for_overwrite(&vshape, dtype, ctx)?;
        if rl > 0 && !self.rows.is_empty() {
            crate::dispatch_dtype!(dtype, T => NDArray::with_slices::<T, _>(op, parts, &[&values], |src, dst| {
                let out: Vec<&mut [T]> = dst[0].chunks_mut(rl).collect();
                for_each_row(out, rl, |j, o| {
                    let group = &self.srcs[self.starts[j]..self.starts[j + 1]];
                    let (p, k) = group[0];
                    o.copy_from_slice(&src[p][k * rl..(k + 1) * rl]);
                    for &(p, k) in &group[1..] {
                        for (o, s) in o.iter_mut().zip(&src[p][k * rl..(k + 1) * rl]) {
                            *o = Scalar::add(*o, *s);
                        }
                    }
                });
            }))?;
        }
        let n = self.rows.len();
        let indices = NDArray::from_vec(self.rows, &[n], ctx)?;
        RowSparseNDArray::new(values, indices, shape)
    }
}

/// Copies the rows `src_rows` of a row-major byte table into consecutive rows of `dst`.
fn copy_rows(src: &[u8], src_rows: &[usize], dst: &mut [u8], row_bytes: usize) {
    if row_bytes == 0 {
        return;
    }
    let out: Vec<&mut [u8]> = dst.chunks_mut(row_bytes).collect();
    for_each_row(out, row_bytes / 4, |i, o| {
        let r = src_rows[i];
        o.copy_from_slice(&src[r * row_bytes..(r + 1) * row_bytes]);
    });
}

/// A row-sparse array of `shape` holding rows `rows` (sorted unique) of the row-major table
/// `table` at the table rows `src_rows`.
fn take_rows(
    table: &NDArray,
    src_rows: &[usize],
    rows: Vec<i64>,
    shape: &[usize],
) -> Result<RowSparseNDArray> {
    let mut vshape = shape.to_vec();
    vshape[0] = rows.len();
    let values = NDArray::for_overwrite(&vshape, table.dtype(), table.context())?;
    let row_bytes = row_len(shape) * table.dtype().size();
    table.read_bytes(|s| values.write_bytes(|d| copy_rows(s, src_rows, d, row_bytes)));
    let n = rows.len();
    let indices = NDArray::from_vec(rows, &[n], table.context())?;
    RowSparseNDArray::new(values, indices, shape)
}

impl RowSparseNDArray {
    /// The element-wise sum `self + other` as a row-sparse array: the union of both row sets,
    /// values summed where both store a row. Shapes and dtypes must match
    /// ([`Error::ShapeMismatch`], [`Error::DTypeMismatch`]); the result lives on `self`'s
    /// context. Cost: O((nnz₁ + nnz₂) · row length).
    ///
    /// ```
    /// use mxgluon::nd::{NDArray, RowSparseNDArray};
    /// use mxgluon::Context;
    /// let ctx = Context::cpu(0);
    /// let v = NDArray::from_vec(vec![1.0f32, 2.0], &[2, 1], ctx)?;
    /// let a = RowSparseNDArray::from_row_ids(&[0, 3], &v, &[5, 1])?;
    /// let b = RowSparseNDArray::from_row_ids(&[3, 4], &v, &[5, 1])?;
    /// let c = a.add(&b)?;
    /// assert_eq!(c.indices_vec(), vec![0, 3, 4]);
    /// assert_eq!(c.values().to_vec::<f32>()?, vec![1.0, 3.0, 2.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn add(&self, other: &RowSparseNDArray) -> Result<RowSparseNDArray> {
        sum_impl("row_sparse add", &[self, other])
    }

    /// The sum of several row-sparse arrays (the union of their row sets), as used to reduce
    /// gradients across contexts. `parts` must be non-empty and agree in shape and dtype; the
    /// result lives on `parts[0]`'s context. Rows are merged with a k-way merge of the sorted
    /// row lists: O(N log k + N · row length) for N stored rows in all, independent of the
    /// number of table rows. Values of one row are added in the order of `parts`.
    ///
    /// ```
    /// use mxgluon::nd::{NDArray, RowSparseNDArray};
    /// use mxgluon::Context;
    /// let ctx = Context::cpu(0);
    /// let one = NDArray::from_vec(vec![1.0f64], &[1, 1], ctx)?;
    /// let parts: Vec<RowSparseNDArray> = [2i64, 0, 2]
    ///     .iter()
    ///     .map(|&r| RowSparseNDArray::from_row_ids(&[r], &one, &[1_000_000, 1]))
    ///     .collect::<Result<_, _>>()?;
    /// let s = RowSparseNDArray::sum(&parts)?;
    /// assert_eq!(s.indices_vec(), vec![0, 2]);
    /// assert_eq!(s.values().to_vec::<f64>()?, vec![1.0, 2.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn sum(parts: &[RowSparseNDArray]) -> Result<RowSparseNDArray> {
        let refs: Vec<&RowSparseNDArray> = parts.iter().collect();
        sum_impl("row_sparse sum", &refs)
    }

    /// Builds a row-sparse array of `shape` from rows given in any order: row `k` of `values`
    /// (shape `(row_ids.len(), shape[1..])`) belongs to table row `row_ids[k]`. Repeated ids
    /// are summed (in the order given), as the gradient of an embedding lookup needs. Ids
    /// outside `0..shape[0]` are an [`Error::InvalidArgument`]. The result lives on
    /// `values`' context. Cost: O(n log n + n · row length) for n ids.
    ///
    /// ```
    /// use mxgluon::nd::{NDArray, RowSparseNDArray};
    /// use mxgluon::Context;
    /// let v = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2], Context::cpu(0))?;
    /// let g = RowSparseNDArray::from_row_ids(&[7, 2, 7], &v, &[10, 2])?;
    /// assert_eq!(g.indices_vec(), vec![2, 7]);
    /// assert_eq!(g.values().to_vec::<f32>()?, vec![3.0, 4.0, 6.0, 8.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn from_row_ids(
        row_ids: &[i64],
        values: &NDArray,
        shape: &[usize],
    ) -> Result<RowSparseNDArray> {
        let op = "row_sparse from_row_ids";
        if shape.is_empty() {
            return Err(Error::InvalidShape {
                op,
                shape: vec![],
                reason: "a row-sparse array needs at least one dimension".into(),
            });
        }
        if values.ndim() != shape.len()
            || values.shape()[0] != row_ids.len()
            || values.shape()[1..] != shape[1..]
        {
            let mut want = shape.to_vec();
            want[0] = row_ids.len();
            return Err(Error::ShapeMismatch {
                op,
                lhs: want,
                rhs: values.shape().to_vec(),
                detail: "values must have shape (row_ids.len(), shape[1..])".into(),
            });
        }
        let nrows = shape[0];
        if let Some((i, &r)) = row_ids
            .iter()
            .enumerate()
            .find(|(_, &r)| r < 0 || r as u64 >= nrows as u64)
        {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("row id {r} at position {i} is outside 0..{nrows}"),
            });
        }
        let mut perm: Vec<usize> = (0..row_ids.len()).collect();
        // Stable: repeated ids are summed in the order they were given.
        perm.sort_by_key(|&k| row_ids[k]);
        let mut plan = SumPlan::new();
        for k in perm {
            plan.push(row_ids[k], (0, k));
        }
        plan.finish()
            .run(op, &[values], shape, values.dtype(), values.context())
    }

    /// Adds the stored rows into a dense array of the same shape and dtype, in place:
    /// `dense[rows] += values`. Cost: O(nnz · row length); other rows are not visited.
    ///
    /// ```
    /// use mxgluon::nd::{NDArray, RowSparseNDArray};
    /// use mxgluon::{Context, DType};
    /// let ctx = Context::cpu(0);
    /// let table = NDArray::ones(&[4, 1], DType::Float32, ctx)?;
    /// let v = NDArray::from_vec(vec![5.0f32], &[1, 1], ctx)?;
    /// RowSparseNDArray::from_row_ids(&[2], &v, &[4, 1])?.add_to_dense(&table)?;
    /// assert_eq!(table.to_vec::<f32>()?, vec![1.0, 1.0, 6.0, 1.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn add_to_dense(&self, dense: &NDArray) -> Result<()> {
        let op = "row_sparse add_to_dense";
        if dense.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: self.dtype(),
                got: dense.dtype(),
            });
        }
        if dense.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().to_vec(),
                rhs: dense.shape().to_vec(),
                detail: String::new(),
            });
        }
        let rl = row_len(self.shape());
        if rl == 0 || self.nnz_rows() == 0 {
            return Ok(());
        }
        let idx = self.indices_vec();
        crate::dispatch_dtype!(self.dtype(), T => NDArray::with_slices::<T, _>(op, &[&self.values], &[dense], |src, dst| {
            let rows = rows_mut(&mut *dst[0], &idx, rl);
            let src = src[0];
            for_each_row(rows, rl, |i, d| {
                for (d, s) in d.iter_mut().zip(&src[i * rl..(i + 1) * rl]) {
                    *d = Scalar::add(*d, *s);
                }
            });
        }))
    }

    /// Overwrites the stored rows of a dense array of the same shape and dtype:
    /// `dense[rows] = values` (other rows untouched). Cost: O(nnz · row length).
    pub(crate) fn assign_rows_to_dense(&self, dense: &NDArray) -> Result<()> {
        let op = "row_sparse assign_rows";
        if dense.dtype() != self.dtype() || dense.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().to_vec(),
                rhs: dense.shape().to_vec(),
                detail: format!("dtypes {} and {}", self.dtype(), dense.dtype()),
            });
        }
        let rl = row_len(self.shape());
        if rl == 0 || self.nnz_rows() == 0 {
            return Ok(());
        }
        let idx = self.indices_vec();
        crate::dispatch_dtype!(self.dtype(), T => NDArray::with_slices::<T, _>(op, &[&self.values], &[dense], |src, dst| {
            let rows = rows_mut(&mut *dst[0], &idx, rl);
            let src = src[0];
            for_each_row(rows, rl, |i, d| d.copy_from_slice(&src[i * rl..(i + 1) * rl]));
        }))
    }

    /// The rows `rows` of a dense table (at least 1-d) as a row-sparse array of the table's
    /// shape. `rows` is a 1-d array of any integer or float dtype holding whole numbers in
    /// `0..table rows`, in any order and possibly repeated; the result stores each once, sorted.
    /// Cost: O(n log n + n · row length).
    ///
    /// ```
    /// use mxgluon::nd::{NDArray, RowSparseNDArray};
    /// use mxgluon::Context;
    /// let ctx = Context::cpu(0);
    /// let table = NDArray::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[4, 1], ctx)?;
    /// let rows = NDArray::from_vec(vec![3.0f32, 1.0, 3.0], &[3], ctx)?;
    /// let g = RowSparseNDArray::gather(&table, &rows)?;
    /// assert_eq!(g.indices_vec(), vec![1, 3]);
    /// assert_eq!(g.values().to_vec::<f32>()?, vec![1.0, 3.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn gather(dense: &NDArray, rows: &NDArray) -> Result<RowSparseNDArray> {
        let op = "row_sparse gather";
        if dense.ndim() == 0 {
            return Err(Error::InvalidShape {
                op,
                shape: vec![],
                reason: "a 0-d array has no rows".into(),
            });
        }
        let ids = parse_row_ids(op, rows, dense.shape()[0])?;
        let src: Vec<usize> = ids.iter().map(|&r| r as usize).collect();
        take_rows(dense, &src, ids, dense.shape())
    }

    /// Keeps only the stored rows whose ids appear in `rows` (MXNet's `sparse.retain`); `rows`
    /// is read as in [`RowSparseNDArray::gather`]. Cost: O(n log n + nnz + kept · row length).
    ///
    /// The dense value equals MXNet's; MXNet also stores the requested rows that `self` lacks
    /// (as zero rows, in the order given), this result stores only rows that hold data.
    ///
    /// ```
    /// use mxgluon::nd::{NDArray, RowSparseNDArray};
    /// use mxgluon::Context;
    /// let ctx = Context::cpu(0);
    /// let v = NDArray::from_vec(vec![1.0f32, 2.0, 3.0], &[3, 1], ctx)?;
    /// let a = RowSparseNDArray::from_row_ids(&[0, 2, 4], &v, &[6, 1])?;
    /// let kept = a.retain(&NDArray::from_vec(vec![4i64, 1, 0], &[3], ctx)?)?;
    /// assert_eq!(kept.indices_vec(), vec![0, 4]);
    /// assert_eq!(kept.values().to_vec::<f32>()?, vec![1.0, 3.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn retain(&self, rows: &NDArray) -> Result<RowSparseNDArray> {
        let want = parse_row_ids("row_sparse retain", rows, self.shape()[0])?;
        let have = self.indices_vec();
        let (mut i, mut j) = (0, 0);
        let mut src = Vec::new();
        let mut kept = Vec::new();
        while i < have.len() && j < want.len() {
            match have[i].cmp(&want[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    src.push(i);
                    kept.push(have[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
        take_rows(&self.values, &src, kept, self.shape())
    }

    /// A copy with values converted to `dtype` (same rows; new memory).
    pub fn astype(&self, dtype: DType) -> Result<RowSparseNDArray> {
        RowSparseNDArray::new(
            self.values.astype_untracked(dtype)?,
            self.indices.copy_to_untracked(self.context())?,
            self.shape(),
        )
    }

    /// A row-sparse array of the same shape, dtype and context storing no rows (what MXNet's
    /// `zero_grad` leaves in a row-sparse gradient).
    pub fn zeros_like(&self) -> Result<RowSparseNDArray> {
        RowSparseNDArray::zeros(self.shape(), self.dtype(), self.context())
    }
}

fn sum_impl(op: &'static str, parts: &[&RowSparseNDArray]) -> Result<RowSparseNDArray> {
    let Some(first) = parts.first() else {
        return Err(Error::InvalidArgument {
            op,
            reason: "needs at least one array".into(),
        });
    };
    for p in &parts[1..] {
        if p.shape() != first.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: first.shape().to_vec(),
                rhs: p.shape().to_vec(),
                detail: String::new(),
            });
        }
        if p.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: first.dtype(),
                got: p.dtype(),
            });
        }
    }
    let idx: Vec<Vec<i64>> = parts.iter().map(|p| p.indices_vec()).collect();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = idx
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| Reverse((v[0], p)))
        .collect();
    let mut cursor = vec![0usize; parts.len()];
    let mut plan = SumPlan::new();
    while let Some(Reverse((r, p))) = heap.pop() {
        plan.push(r, (p, cursor[p]));
        cursor[p] += 1;
        if let Some(&next) = idx[p].get(cursor[p]) {
            heap.push(Reverse((next, p)));
        }
    }
    let values: Vec<&NDArray> = parts.iter().map(|p| &p.values).collect();
    plan.finish()
        .run(op, &values, first.shape(), first.dtype(), first.context())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    fn rsp(rows: &[i64], vals: &[f64], shape: &[usize]) -> RowSparseNDArray {
        let mut vs = shape.to_vec();
        vs[0] = rows.len();
        let v = NDArray::from_vec(vals.to_vec(), &vs, cpu()).unwrap();
        RowSparseNDArray::from_row_ids(rows, &v, shape).unwrap()
    }

    #[test]
    fn rows_mut_picks_disjoint_rows() {
        let mut data: Vec<i32> = (0..10).collect();
        let rows = rows_mut(&mut data, &[1, 4], 2);
        assert_eq!(rows.len(), 2);
        assert_eq!(&*rows[0], &[2, 3]);
        assert_eq!(&*rows[1], &[8, 9]);
    }

    #[test]
    fn add_merges_row_sets() {
        let a = rsp(&[0, 2], &[1., 2., 3., 4.], &[4, 2]);
        let b = rsp(&[2, 3], &[10., 20., 30., 40.], &[4, 2]);
        let c = a.add(&b).unwrap();
        assert_eq!(c.indices_vec(), vec![0, 2, 3]);
        assert_eq!(c.values().to_f64_vec(), vec![1., 2., 13., 24., 30., 40.]);
        let wrong = rsp(&[0], &[1., 2., 3.], &[4, 3]);
        assert!(matches!(a.add(&wrong), Err(Error::ShapeMismatch { .. })));
        let f32s = a.astype(DType::Float32).unwrap();
        assert!(matches!(a.add(&f32s), Err(Error::DTypeMismatch { .. })));
        // self-add reads one buffer twice
        assert_eq!(
            a.add(&a).unwrap().values().to_f64_vec(),
            vec![2., 4., 6., 8.]
        );
    }

    #[test]
    fn sum_of_many_and_of_none() {
        assert!(matches!(
            RowSparseNDArray::sum(&[]),
            Err(Error::InvalidArgument { .. })
        ));
        let parts = vec![
            rsp(&[5], &[1.], &[10, 1]),
            rsp(&[], &[], &[10, 1]),
            rsp(&[1, 5, 9], &[2., 3., 4.], &[10, 1]),
            rsp(&[0, 5], &[5., 6.], &[10, 1]),
        ];
        let s = RowSparseNDArray::sum(&parts).unwrap();
        assert_eq!(s.indices_vec(), vec![0, 1, 5, 9]);
        assert_eq!(s.values().to_f64_vec(), vec![5., 2., 10., 4.]);
        let single = RowSparseNDArray::sum(&parts[..1]).unwrap();
        assert_eq!(single.indices_vec(), vec![5]);
    }

    #[test]
    fn from_row_ids_checks_and_sums_repeats() {
        let v = NDArray::from_vec(vec![1f64, 2., 3.], &[3, 1], cpu()).unwrap();
        let g = RowSparseNDArray::from_row_ids(&[4, 0, 4], &v, &[5, 1]).unwrap();
        assert_eq!(g.indices_vec(), vec![0, 4]);
        assert_eq!(g.values().to_f64_vec(), vec![2., 4.]);
        assert!(matches!(
            RowSparseNDArray::from_row_ids(&[5, 0, 1], &v, &[5, 1]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            RowSparseNDArray::from_row_ids(&[-1, 0, 1], &v, &[5, 1]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            RowSparseNDArray::from_row_ids(&[0, 1], &v, &[5, 1]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            RowSparseNDArray::from_row_ids(&[0, 1, 2], &v, &[5, 2]),
            Err(Error::ShapeMismatch { .. })
        ));
        // zero-width rows
        let e = NDArray::zeros(&[2, 0], DType::Float32, cpu()).unwrap();
        let z = RowSparseNDArray::from_row_ids(&[1, 1], &e, &[3, 0]).unwrap();
        assert_eq!(z.indices_vec(), vec![1]);
    }

    #[test]
    fn add_to_dense_gather_retain() {
        let table = NDArray::zeros(&[5, 2], DType::Float64, cpu()).unwrap();
        let g = rsp(&[1, 3], &[1., 2., 3., 4.], &[5, 2]);
        g.add_to_dense(&table).unwrap();
        g.add_to_dense(&table).unwrap();
        assert_eq!(
            table.to_f64_vec(),
            vec![0., 0., 2., 4., 0., 0., 6., 8., 0., 0.]
        );
        let f32t = NDArray::zeros(&[5, 2], DType::Float32, cpu()).unwrap();
        assert!(matches!(
            g.add_to_dense(&f32t),
            Err(Error::DTypeMismatch { .. })
        ));
        let rows = NDArray::from_vec(vec![3i32, 0, 3], &[3], cpu()).unwrap();
        let got = RowSparseNDArray::gather(&table, &rows).unwrap();
        assert_eq!(got.indices_vec(), vec![0, 3]);
        assert_eq!(got.values().to_f64_vec(), vec![0., 0., 6., 8.]);
        let bad = NDArray::from_vec(vec![5i64], &[1], cpu()).unwrap();
        assert!(RowSparseNDArray::gather(&table, &bad).is_err());
        let frac = NDArray::from_vec(vec![0.5f32], &[1], cpu()).unwrap();
        assert!(RowSparseNDArray::gather(&table, &frac).is_err());
        let kept = g.retain(&rows).unwrap();
        assert_eq!(kept.indices_vec(), vec![3]);
        assert_eq!(kept.values().to_f64_vec(), vec![3., 4.]);
        assert!(g.retain(&bad).is_err());
        let z = g.zeros_like().unwrap();
        assert_eq!(
            (z.nnz_rows(), z.shape(), z.dtype()),
            (0, &[5, 2][..], DType::Float64)
        );
        let h = g.astype(DType::Float16).unwrap();
        assert_eq!(h.dtype(), DType::Float16);
        assert_eq!(h.values().to_f64_vec(), vec![1., 2., 3., 4.]);
    }

    #[test]
    fn large_sums_take_the_parallel_path() {
        let n = 3000usize;
        let rl = 64usize;
        let ids: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 5000).collect();
        let v = NDArray::from_vec(
            (0..n * rl).map(|i| (i % 13) as f32).collect::<Vec<_>>(),
            &[n, rl],
            cpu(),
        )
        .unwrap();
        let a = RowSparseNDArray::from_row_ids(&ids, &v, &[10_000_000, rl]).unwrap();
        let table = NDArray::zeros(&[5000, rl], DType::Float32, cpu()).unwrap();
        let small = RowSparseNDArray::from_row_ids(&ids, &v, &[5000, rl]).unwrap();
        small.add_to_dense(&table).unwrap();
        let back = RowSparseNDArray::from_dense(&table).unwrap();
        assert_eq!(back.indices_vec(), small.indices_vec());
        assert_eq!(a.indices_vec(), small.indices_vec());
        let twice = RowSparseNDArray::sum(&[small.clone(), small.clone()]).unwrap();
        let vals = small.values().to_f32_vec();
        assert_eq!(
            twice.values().to_f32_vec(),
            vals.iter().map(|x| x * 2.0).collect::<Vec<_>>()
        );
    }
}
