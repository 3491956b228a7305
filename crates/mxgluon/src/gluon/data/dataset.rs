//! [`ArrayDataset`]: samples and their labels, stored as two arrays.

use crate::error::{Error, Result};
use crate::nd::NDArray;

/// Samples and labels held in two arrays whose first axis indexes the samples: `data` of shape
/// `(N, ...)` and `label` of shape `(N,)` (or `(N, ...)`). Like Gluon's
/// `ArrayDataset(data, label)` restricted to two arrays. Cloning shares the arrays.
///
/// ```
/// use mxgluon::{gluon::data::ArrayDataset, nd, Context};
/// let x = nd::arange(0.0, 6.0, 1.0, Context::cpu(0))?.reshape(&[3, 2])?;
/// let y = nd::array(&[0.0f32, 1.0, 0.0], &[3], Context::cpu(0))?;
/// let ds = ArrayDataset::new(x, y)?;
/// assert_eq!(ds.len(), 3);
/// let (xi, yi) = ds.get(1)?;
/// assert_eq!(xi.to_vec::<f32>()?, vec![2.0, 3.0]);
/// assert_eq!(yi.to_vec::<f32>()?, vec![1.0]);
/// let (xb, yb) = ds.take(&[2, 0])?;
/// assert_eq!(xb.to_vec::<f32>()?, vec![4.0, 5.0, 0.0, 1.0]);
/// assert_eq!(yb.shape(), &[2]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ArrayDataset {
    data: NDArray,
    label: NDArray,
}

impl ArrayDataset {
    /// Pairs `data` (N, ...) with `label` (N, ...). Both need at least one axis and the same
    /// first dimension ([`Error::ShapeMismatch`] otherwise).
    pub fn new(data: NDArray, label: NDArray) -> Result<ArrayDataset> {
        for (a, what) in [(&data, "data"), (&label, "label")] {
            if a.ndim() == 0 {
                return Err(Error::InvalidShape {
                    op: "ArrayDataset",
                    shape: vec![],
                    reason: format!("the {what} array needs a first axis indexing the samples"),
                });
            }
        }
        if data.shape()[0] != label.shape()[0] {
            return Err(Error::ShapeMismatch {
                op: "ArrayDataset",
                lhs: data.shape().to_vec(),
                rhs: label.shape().to_vec(),
                detail: format!(
                    "data has {} samples but label has {}; both need the same first dimension",
                    data.shape()[0],
                    label.shape()[0]
                ),
            });
        }
        Ok(ArrayDataset {
            data: data.detach(),
            label: label.detach(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.data.shape()[0]
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples, shape `(N, ...)` (a handle to the stored array).
    pub fn data(&self) -> &NDArray {
        &self.data
    }

    /// The labels, shape `(N, ...)` (a handle to the stored array).
    pub fn label(&self) -> &NDArray {
        &self.label
    }

    /// Sample `i` and its label, with the sample axis removed (copies).
    pub fn get(&self, i: usize) -> Result<(NDArray, NDArray)> {
        let (x, y) = self.take(&[i])?;
        let x = x.reshape(&self.data.shape()[1..])?;
        let y = y.reshape(&self.label.shape()[1..])?;
        Ok((x, y))
    }

    /// The samples at `indices`, in that order, stacked into new arrays of shape
    /// `(indices.len(), ...)` (Gluon's default batchify), and their labels likewise.
    pub fn take(&self, indices: &[usize]) -> Result<(NDArray, NDArray)> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::IndexOutOfBounds {
                index: vec![bad],
                shape: vec![self.len()],
            });
        }
        Ok((gather(&self.data, indices)?, gather(&self.label, indices)?))
    }
}

/// Rows `indices` (all in range) of `a` stacked into a new array on `a`'s context.
fn gather(a: &NDArray, indices: &[usize]) -> Result<NDArray> {
    let mut shape = a.shape().to_vec();
    shape[0] = indices.len();
    let out = NDArray::for_overwrite(&shape, a.dtype(), a.context())?;
    // One row's bytes: no overflow, since `a` (holding at least one row when `indices` is
    // non-empty) exists.
    let row: usize = a.shape()[1..].iter().product::<usize>() * a.dtype().size();
    if row == 0 || indices.is_empty() {
        return Ok(out);
    }
    // Different storages: the read lock on `a` and the write lock on the fresh `out` cannot
    // conflict.
    a.read_bytes(|src| {
        out.write_bytes(|dst| {
            for (d, &i) in dst.chunks_exact_mut(row).zip(indices) {
                d.copy_from_slice(&src[i * row..(i + 1) * row]);
            }
        })
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, DType};

    fn cpu() -> Context {
        Context::cpu(0)
    }

    #[test]
    fn lengths_must_agree() {
        let x = NDArray::zeros(&[4, 2], DType::Float32, cpu()).unwrap();
        let y = NDArray::zeros(&[3], DType::Float32, cpu()).unwrap();
        let e = ArrayDataset::new(x.clone(), y).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        assert!(e.to_string().contains("4 samples"), "{e}");
        let s = NDArray::scalar(1.0f32, cpu()).unwrap();
        assert!(matches!(
            ArrayDataset::new(x, s),
            Err(Error::InvalidShape { .. })
        ));
    }

    #[test]
    fn take_copies_rows_in_order_for_any_dtype() {
        let x = NDArray::arange(0.0, 12.0, 1.0, DType::Int64, cpu())
            .unwrap()
            .reshape(&[4, 3])
            .unwrap();
        let y = NDArray::from_vec(vec![10u8, 11, 12, 13], &[4], cpu()).unwrap();
        let ds = ArrayDataset::new(x.clone(), y).unwrap();
        let (xb, yb) = ds.take(&[3, 1, 3]).unwrap();
        assert_eq!(xb.shape(), &[3, 3]);
        assert_eq!(
            xb.to_vec::<i64>().unwrap(),
            vec![9, 10, 11, 3, 4, 5, 9, 10, 11]
        );
        assert_eq!(yb.to_vec::<u8>().unwrap(), vec![13, 11, 13]);
        assert!(!xb.shares_memory_with(&x));
        let e = ds.take(&[0, 4]).unwrap_err();
        assert!(matches!(e, Error::IndexOutOfBounds { .. }), "{e}");
        let (xe, ye) = ds.take(&[]).unwrap();
        assert_eq!((xe.shape(), ye.shape()), (&[0, 3][..], &[0][..]));
    }

    #[test]
    fn views_gather_from_their_own_rows() {
        let x = NDArray::arange(0.0, 8.0, 1.0, DType::Float32, cpu())
            .unwrap()
            .reshape(&[4, 2])
            .unwrap()
            .slice_axis0(2, 4)
            .unwrap();
        let y = NDArray::zeros(&[2], DType::Float32, cpu()).unwrap();
        let ds = ArrayDataset::new(x, y).unwrap();
        let (xi, _) = ds.get(1).unwrap();
        assert_eq!(xi.to_vec::<f32>().unwrap(), vec![6.0, 7.0]);
    }
}
