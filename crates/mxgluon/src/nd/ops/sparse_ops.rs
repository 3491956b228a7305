//! Recorded sparse operators: `dot(csr, w)` for a dense or a row-sparse `w`, whose gradient
//! with respect to `w` is row-sparse (`dot(csr.T, dy)`: only the rows of `w` that `csr`
//! references). The kernels are the untracked ones of [`crate::nd::sparse`]; this module
//! only attaches the backward closures (see `nd/ops/grad.rs` for the pattern).

use smallvec::smallvec;

use crate::autograd::{record_op, tracked, Grad};
use crate::error::Result;
use crate::nd::sparse::{dot_csr_dense, dot_csr_rsp, dot_csr_t_dense};
use crate::nd::{CSRNDArray, NDArray, RowSparseNDArray};

/// `dot(lhs, rhs)` for a CSR `lhs` `(m, k)` and a dense `rhs` `(k, n)`: a dense `(m, n)`
/// result (MXNet's `sparse.dot(csr, dense)`). Inside
/// [`autograd::record`](crate::autograd::record) the gradient of `rhs` is row-sparse,
/// `dot(lhs.T, dy)`, holding only the rows whose column `lhs` uses; `lhs` takes no gradient.
///
/// ```
/// use mxgluon::{autograd, nd, Context, GradReq, StorageType};
/// use mxgluon::nd::CSRNDArray;
/// let ctx = Context::cpu(0);
/// // csr = [[0, 2, 0, 0], [0, 0, 0, 1]]
/// let csr = CSRNDArray::from_dense(&nd::array(&[0.0f32, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 4], ctx)?)?;
/// let mut w = nd::ones(&[4, 3], ctx)?;
/// w.attach_grad_with(GradReq::Write, StorageType::RowSparse)?;
/// let y = { let _r = autograd::record(); nd::sparse_dot(&csr, &w)? };
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 2.0, 2.0, 1.0, 1.0, 1.0]);
/// y.backward()?;
/// let Some(nd::Array::RowSparse(g)) = w.grad_array() else { panic!("row_sparse") };
/// assert_eq!(g.indices_vec(), vec![1, 3]);
/// assert_eq!(g.values().to_vec::<f32>()?, vec![2.0, 2.0, 2.0, 1.0, 1.0, 1.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn sparse_dot(lhs: &CSRNDArray, rhs: &NDArray) -> Result<NDArray> {
    let y = dot_csr_dense(lhs, rhs)?;
    if !tracked(&[rhs]) {
        return Ok(y);
    }
    let csr = lhs.clone();
    Ok(record_op("dot", &[rhs], y, move |dy, _| {
        Ok(smallvec![Grad::RowSparse(dot_csr_t_dense(&csr, dy)?)])
    }))
}

/// `dot(lhs, rhs)` for a CSR `lhs` `(m, k)` and a row-sparse `rhs` `(k, n)` (rows not stored
/// count as zero): a dense `(m, n)` result. When `rhs` came from
/// [`Parameter::row_sparse_data`](crate::Parameter::row_sparse_data) inside
/// [`autograd::record`](crate::autograd::record), the parameter's gradient receives
/// `dot(lhs.T, dy)` as a row-sparse array of the table's shape.
///
/// Errors: shape, dtype and context mismatches of the kernel.
pub fn sparse_dot_rsp(lhs: &CSRNDArray, rhs: &RowSparseNDArray) -> Result<NDArray> {
    let y = dot_csr_rsp(lhs, rhs)?;
    let values = rhs.values();
    if !tracked(&[values]) {
        return Ok(y);
    }
    let csr = lhs.clone();
    Ok(record_op("dot", &[values], y, move |dy, _| {
        Ok(smallvec![Grad::RowSparse(dot_csr_t_dense(&csr, dy)?)])
    }))
}
