//! Matrix products with a CSR left-hand side: `dot(csr, dense)`, `dot(csr.T, dense)` (a
//! row-sparse result, the gradient of a dense weight multiplied by sparse features) and
//! `dot(csr, row_sparse)`.
//!
//! Costs, for a CSR matrix with `nnz` stored values and a right-hand side of `n` columns:
//! `dot_csr_dense` and `dot_csr_rsp` O(nnz · n) plus the output (`dot_csr_rsp` adds a binary
//! search of the right-hand side's rows per stored value); `dot_csr_t_dense` O(nnz log nnz +
//! nnz · n) and its output holds only the distinct columns of the CSR matrix. Output rows are
//! computed independently, on the rayon pool when `nnz · n` is large. float32 and float64.

use rayon::prelude::*;

use super::{CSRNDArray, RowSparseNDArray};
use crate::dtype::{DType, Scalar};
use crate::error::{Error, Result};
use crate::nd::par::{worth_parallel, CHUNK};
use crate::nd::NDArray;

fn check_float(op: &'static str, dtype: DType) -> Result<()> {
    match dtype {
        DType::Float32 | DType::Float64 => Ok(()),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other,
            hint: "sparse dot supports float32 and float64".into(),
        }),
    }
}

fn check_operands(
    op: &'static str,
    lhs: &CSRNDArray,
    rhs_shape: &[usize],
    rhs_dtype: DType,
    rhs_rows: usize,
) -> Result<()> {
    if rhs_shape.len() != 2 || rhs_shape[0] != rhs_rows {
        return Err(Error::ShapeMismatch {
            op,
            lhs: lhs.shape().to_vec(),
            rhs: rhs_shape.to_vec(),
            detail: format!("the right-hand side must be 2-d with {rhs_rows} rows"),
        });
    }
    if rhs_dtype != lhs.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            expected: lhs.dtype(),
            got: rhs_dtype,
        });
    }
    check_float(op, lhs.dtype())
}

/// Runs `f(r, out_row)` for every row of an `(rows, n)` output, in parallel when `work`
/// (multiply-adds) is large.
fn per_output_row<T: Send>(
    out: &mut [T],
    n: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if n == 0 {
        return;
    }
    if worth_parallel(work) {
        out.par_chunks_mut(n)
            .enumerate()
            .with_min_len((CHUNK / n).max(1))
            .for_each(|(r, o)| f(r, o));
    } else {
        out.chunks_mut(n).enumerate().for_each(|(r, o)| f(r, o));
    }
}

/// `o += a · x` elementwise.
#[inline]
fn axpy<T: Scalar>(o: &mut [T], a: T, x: &[T]) {
    for (o, &x) in o.iter_mut().zip(x) {
        *o = Scalar::add(*o, Scalar::mul(a, x));
    }
}

/// `lhs · rhs` for a CSR matrix `(m, k)` and a dense matrix `(k, n)`: a dense `(m, n)`
/// matrix on `lhs`'s context.
///
/// ```
/// use mxgluon::nd::{sparse, CSRNDArray, NDArray};
/// use mxgluon::Context;
/// let ctx = Context::cpu(0);
/// let a = CSRNDArray::from_dense(&NDArray::from_vec(vec![0.0f32, 2.0, 1.0, 0.0], &[2, 2], ctx)?)?;
/// let b = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], ctx)?;
/// assert_eq!(sparse::dot_csr_dense(&a, &b)?.to_vec::<f32>()?, vec![6.0, 8.0, 1.0, 2.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn dot_csr_dense(lhs: &CSRNDArray, rhs: &NDArray) -> Result<NDArray> {
    let op = "dot(csr, dense)";
    let [m, k] = [lhs.shape()[0], lhs.shape()[1]];
    check_operands(op, lhs, rhs.shape(), rhs.dtype(), k)?;
    let n = rhs.shape()[1];
    let out = NDArray::zeros(&[m, n], lhs.dtype(), lhs.context())?;
    let ptr = lhs.indptr_vec();
    let cols = lhs.indices_vec();
    let work = lhs.nnz().saturating_mul(n);
    crate::dispatch_dtype!(lhs.dtype(), T => NDArray::with_slices::<T, _>(op, &[lhs.data(), rhs], &[&out], |r, w| {
        let (data, b) = (r[0], r[1]);
        per_output_row(&mut *w[0], n, work, |row, o| {
            // `CSRNDArray::new` proved 0 <= indptr <= nnz and 0 <= column < k.
            for j in ptr[row] as usize..ptr[row + 1] as usize {
                let c = cols[j] as usize;
                axpy(o, data[j], &b[c * n..(c + 1) * n]);
            }
        });
    }))?;
    Ok(out)
}

/// `lhsᵀ · rhs` for a CSR matrix `(m, k)` and a dense matrix `(m, n)`: a row-sparse `(k, n)`
/// array (on `lhs`'s context) whose stored rows are the distinct column ids of `lhs`, as
/// MXNet's `dot(csr, dense, transpose_a=True)` returns.
///
/// ```
/// use mxgluon::nd::{sparse, CSRNDArray, NDArray};
/// use mxgluon::Context;
/// let ctx = Context::cpu(0);
/// // rows: [0, 2, 0], [1, 0, 0]
/// let a = CSRNDArray::from_dense(&NDArray::from_vec(vec![0.0f64, 2.0, 0.0, 1.0, 0.0, 0.0], &[2, 3], ctx)?)?;
/// let b = NDArray::from_vec(vec![1.0f64, 10.0], &[2, 1], ctx)?;
/// let g = sparse::dot_csr_t_dense(&a, &b)?;
/// assert_eq!(g.shape(), &[3, 1]);
/// assert_eq!(g.indices_vec(), vec![0, 1]);
/// assert_eq!(g.values().to_vec::<f64>()?, vec![10.0, 2.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn dot_csr_t_dense(lhs: &CSRNDArray, rhs: &NDArray) -> Result<RowSparseNDArray> {
    let op = "dot(csr.T, dense)";
    let [m, k] = [lhs.shape()[0], lhs.shape()[1]];
    check_operands(op, lhs, rhs.shape(), rhs.dtype(), m)?;
    let n = rhs.shape()[1];
    let ptr = lhs.indptr_vec();
    let cols = lhs.indices_vec();
    // The row of each stored value, then the values grouped by column (stable: rows in order).
    let mut row_of = Vec::with_capacity(cols.len());
    for (r, w) in ptr.windows(2).enumerate() {
        row_of.extend(std::iter::repeat_n(r, (w[1] - w[0]) as usize));
    }
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|&j| cols[j]);
    let mut out_rows: Vec<i64> = Vec::new();
    let mut starts: Vec<usize> = Vec::new();
    for (p, &j) in order.iter().enumerate() {
        if out_rows.last() != Some(&cols[j]) {
            out_rows.push(cols[j]);
            starts.push(p);
        }
    }
    starts.push(order.len());
    let nr = out_rows.len();
    let values = NDArray::zeros(&[nr, n], lhs.dtype(), lhs.context())?;
    let work = lhs.nnz().saturating_mul(n);
    crate::dispatch_dtype!(lhs.dtype(), T => NDArray::with_slices::<T, _>(op, &[lhs.data(), rhs], &[&values], |r, w| {
        let (data, b) = (r[0], r[1]);
        per_output_row(&mut *w[0], n, work, |i, o| {
            for &j in &order[starts[i]..starts[i + 1]] {
                let src = row_of[j];
                axpy(o, data[j], &b[src * n..(src + 1) * n]);
            }
        });
    }))?;
    let indices = NDArray::from_vec(out_rows, &[nr], lhs.context())?;
    RowSparseNDArray::new(values, indices, &[k, n])
}

/// `lhs · rhs` for a CSR matrix `(m, k)` and a row-sparse `(k, n)` array (its missing rows are
/// zero): a dense `(m, n)` matrix on `lhs`'s context.
///
/// ```
/// use mxgluon::nd::{sparse, CSRNDArray, NDArray, RowSparseNDArray};
/// use mxgluon::Context;
/// let ctx = Context::cpu(0);
/// let a = CSRNDArray::from_dense(&NDArray::from_vec(vec![1.0f32, 1.0, 0.0, 3.0], &[2, 2], ctx)?)?;
/// let v = NDArray::from_vec(vec![5.0f32], &[1, 1], ctx)?;
/// let b = RowSparseNDArray::from_row_ids(&[1], &v, &[2, 1])?;
/// assert_eq!(sparse::dot_csr_rsp(&a, &b)?.to_vec::<f32>()?, vec![5.0, 15.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn dot_csr_rsp(lhs: &CSRNDArray, rhs: &RowSparseNDArray) -> Result<NDArray> {
    let op = "dot(csr, row_sparse)";
    let [m, k] = [lhs.shape()[0], lhs.shape()[1]];
    check_operands(op, lhs, rhs.shape(), rhs.dtype(), k)?;
    let n = rhs.shape()[1];
    let out = NDArray::zeros(&[m, n], lhs.dtype(), lhs.context())?;
    let ptr = lhs.indptr_vec();
    let cols = lhs.indices_vec();
    let have = rhs.indices_vec();
    let work = lhs.nnz().saturating_mul(n);
    crate::dispatch_dtype!(lhs.dtype(), T => NDArray::with_slices::<T, _>(op, &[lhs.data(), rhs.values()], &[&out], |r, w| {
        let (data, b) = (r[0], r[1]);
        per_output_row(&mut *w[0], n, work, |row, o| {
            for j in ptr[row] as usize..ptr[row + 1] as usize {
                if let Ok(p) = have.binary_search(&cols[j]) {
                    axpy(o, data[j], &b[p * n..(p + 1) * n]);
                }
            }
        });
    }))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    fn cpu() -> Context {
        Context::cpu(0)
    }

    fn mat(v: Vec<f64>, r: usize, c: usize) -> NDArray {
        NDArray::from_vec(v, &[r, c], cpu()).unwrap()
    }

    /// Dense f64 reference product of (m,k)·(k,n).
    fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut o = vec![0.0; m * n];
        for i in 0..m {
            for l in 0..k {
                for j in 0..n {
                    o[i * n + j] += a[i * k + l] * b[l * n + j];
                }
            }
        }
        o
    }

    fn transpose(a: &[f64], m: usize, k: usize) -> Vec<f64> {
        let mut t = vec![0.0; m * k];
        for i in 0..m {
            for j in 0..k {
                t[j * m + i] = a[i * k + j];
            }
        }
        t
    }

    #[test]
    fn products_match_dense_reference() {
        let (m, k, n) = (4, 5, 3);
        let a: Vec<f64> = (0..m * k)
            .map(|i| {
                if i % 3 == 0 {
                    i as f64 * 0.5 - 2.0
                } else {
                    0.0
                }
            })
            .collect();
        let csr = CSRNDArray::from_dense(&mat(a.clone(), m, k)).unwrap();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64).sin()).collect();
        let got = dot_csr_dense(&csr, &mat(b.clone(), k, n)).unwrap();
        assert_eq!(got.to_f64_vec(), matmul(&a, &b, m, k, n));

        let c: Vec<f64> = (0..m * n).map(|i| (i as f64).cos()).collect();
        let t = dot_csr_t_dense(&csr, &mat(c.clone(), m, n)).unwrap();
        let want = matmul(&transpose(&a, m, k), &c, k, m, n);
        assert_eq!(t.to_dense().unwrap().to_f64_vec(), want);
        let mut distinct = csr.indices_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(t.indices_vec(), distinct);

        let rsp = RowSparseNDArray::from_dense(&mat(b.clone(), k, n))
            .unwrap()
            .retain(&NDArray::from_vec(vec![0i64, 3], &[2], cpu()).unwrap())
            .unwrap();
        let dense_b = rsp.to_dense().unwrap().to_f64_vec();
        assert_eq!(
            dot_csr_rsp(&csr, &rsp).unwrap().to_f64_vec(),
            matmul(&a, &dense_b, m, k, n)
        );
    }

    #[test]
    fn operand_errors() {
        let csr = CSRNDArray::from_dense(&mat(vec![1.0, 0.0, 0.0, 2.0], 2, 2)).unwrap();
        assert!(matches!(
            dot_csr_dense(&csr, &mat(vec![1.0; 3], 3, 1)),
            Err(Error::ShapeMismatch { .. })
        ));
        let f32b = NDArray::ones(&[2, 1], DType::Float32, cpu()).unwrap();
        assert!(matches!(
            dot_csr_t_dense(&csr, &f32b),
            Err(Error::DTypeMismatch { .. })
        ));
        let ints = CSRNDArray::from_dense(
            &NDArray::from_vec(vec![1i32, 0, 0, 2], &[2, 2], cpu()).unwrap(),
        )
        .unwrap();
        let intb = NDArray::from_vec(vec![1i32, 2], &[2, 1], cpu()).unwrap();
        assert!(matches!(
            dot_csr_dense(&ints, &intb),
            Err(Error::UnsupportedDType { .. })
        ));
        let r = RowSparseNDArray::zeros(&[3, 1], DType::Float64, cpu()).unwrap();
        assert!(dot_csr_rsp(&csr, &r).is_err());
    }

    #[test]
    fn large_products_take_the_parallel_path() {
        let (m, k, n) = (300, 400, 64);
        let a: Vec<f64> = (0..m * k)
            .map(|i| if i % 7 == 0 { (i % 11) as f64 } else { 0.0 })
            .collect();
        let csr = CSRNDArray::from_dense(&mat(a.clone(), m, k)).unwrap();
        let b: Vec<f64> = (0..k * n).map(|i| (i % 5) as f64).collect();
        let got = dot_csr_dense(&csr, &mat(b.clone(), k, n)).unwrap();
        assert_eq!(got.to_f64_vec(), matmul(&a, &b, m, k, n));
        let c: Vec<f64> = (0..m * n).map(|i| (i % 3) as f64).collect();
        let t = dot_csr_t_dense(&csr, &mat(c.clone(), m, n)).unwrap();
        assert_eq!(
            t.to_dense().unwrap().to_f64_vec(),
            matmul(&transpose(&a, m, k), &c, k, m, n)
        );
    }
}
