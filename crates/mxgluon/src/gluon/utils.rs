//! Helpers for data-parallel training (Gluon's `gluon.utils`).

use crate::context::Context;
use crate::error::{Error, Result};
use crate::nd::NDArray;

/// Splits `data` along `batch_axis` into `num_slice` parts (MXNet's `split_data`).
///
/// With `even_split`, the size along the axis must be a multiple of `num_slice`. Without it,
/// every part but the last has `size / num_slice` elements and the last takes the rest; when
/// the size is smaller than `num_slice`, there is one part per element.
///
/// The parts are copies (the batch axis may be any axis).
///
/// ```
/// use mxgluon::{gluon::utils::split_data, nd};
/// let x = nd::arange(0.0, 10.0, 1.0, None)?;
/// let parts = split_data(&x, 3, 0, false)?;
/// let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[0]).collect();
/// assert_eq!(sizes, vec![3, 3, 4]);
/// assert!(split_data(&x, 3, 0, true).is_err());
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn split_data(
    data: &NDArray,
    num_slice: usize,
    batch_axis: usize,
    even_split: bool,
) -> Result<Vec<NDArray>> {
    let op = "split_data";
    if num_slice == 0 {
        return Err(Error::InvalidArgument {
            op,
            reason: "num_slice must be at least 1".into(),
        });
    }
    if batch_axis >= data.ndim() {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "batch_axis {batch_axis} is out of range for an array with {} dimensions",
                data.ndim()
            ),
        });
    }
    let size = data.shape()[batch_axis];
    if even_split && !size.is_multiple_of(num_slice) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "data with shape {} cannot be evenly split into {num_slice} slices along axis \
                 {batch_axis}; use a batch size that is a multiple of {num_slice} or \
                 even_split = false",
                crate::error::fmt_shape(data.shape())
            ),
        });
    }
    let (num_slice, step) = if !even_split && size < num_slice {
        (size, 1)
    } else {
        (num_slice, size / num_slice)
    };
    if num_slice == 1 {
        return Ok(vec![data.clone()]);
    }
    let _pause = crate::autograd::pause();
    (0..num_slice)
        .map(|i| {
            let begin = i * step;
            let end = if i + 1 == num_slice {
                size
            } else {
                begin + step
            };
            if batch_axis == 0 {
                data.slice_axis0(begin, end)?.copy_to(data.context())
            } else {
                crate::nd::slice_axis(data, batch_axis, begin, end)
            }
        })
        .collect()
}

/// Splits `data` along axis 0 into one part per context and copies each part to its context
/// (MXNet's `split_and_load` with `batch_axis = 0`). With one context, the whole batch is
/// moved there.
///
/// ```
/// use mxgluon::{gluon::utils::split_and_load, nd, Context};
/// let x = nd::zeros(&[8, 3], None)?;
/// let parts = split_and_load(&x, &[Context::cpu(0), Context::cpu(1)], true)?;
/// assert_eq!(parts[1].shape(), &[4, 3]);
/// assert_eq!(parts[1].context(), Context::cpu(1));
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn split_and_load(
    data: &NDArray,
    ctx_list: &[Context],
    even_split: bool,
) -> Result<Vec<NDArray>> {
    split_and_load_axis(data, ctx_list, 0, even_split)
}

/// [`split_and_load`] along any batch axis.
pub fn split_and_load_axis(
    data: &NDArray,
    ctx_list: &[Context],
    batch_axis: usize,
    even_split: bool,
) -> Result<Vec<NDArray>> {
    match ctx_list {
        [] => Err(Error::InvalidArgument {
            op: "split_and_load",
            reason: "the context list is empty".into(),
        }),
        [one] => Ok(vec![data.as_in_context(*one)?]),
        _ => split_data(data, ctx_list.len(), batch_axis, even_split)?
            .into_iter()
            .zip(ctx_list)
            .map(|(part, ctx)| part.as_in_context(*ctx))
            .collect(),
    }
}

/// Rescales `arrays` in place so that their joint L2 norm is at most `max_norm` and returns
/// the norm before rescaling (Gluon's `clip_global_norm`). A non-finite norm is returned as
/// is, with the arrays left unchanged.
///
/// ```
/// use mxgluon::{gluon::utils::clip_global_norm, nd};
/// let a = nd::array(&[3.0f32, 4.0], &[2], None)?;
/// let norm = clip_global_norm(&[a.clone()], 1.0)?;
/// assert!((norm - 5.0).abs() < 1e-6);
/// let v = a.to_vec::<f32>()?;
/// assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn clip_global_norm(arrays: &[NDArray], max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(Error::InvalidArgument {
            op: "clip_global_norm",
            reason: format!("max_norm must be positive, got {max_norm}"),
        });
    }
    let total: f64 = arrays
        .iter()
        .map(|a| a.to_f64_vec().iter().map(|v| v * v).sum::<f64>())
        .sum();
    let norm = total.sqrt();
    if !norm.is_finite() {
        return Ok(norm);
    }
    let scale = max_norm / (norm + 1e-8);
    if scale < 1.0 {
        let _pause = crate::autograd::pause();
        for a in arrays {
            let scaled = a.mul_scalar(scale)?;
            a.assign(&scaled)?;
        }
    }
    Ok(norm)
}

/// Runs `f` on every item (typically one `(data, label)` part per context) in parallel on the
/// crate's thread pool and returns the results in item order; the first error wins. One item
/// runs on the calling thread. Each task records its own autograd graph, so forward and
/// backward of every context can run inside `f`:
///
/// ```
/// use mxgluon::gluon::utils::{parallel_map, split_and_load};
/// use mxgluon::{autograd, nd, Context, GradReq};
/// let ctxs = [Context::cpu(0), Context::cpu(1)];
/// let parts = split_and_load(&nd::ones(&[4, 2], None)?, &ctxs, true)?;
/// let sums = parallel_map(&parts, |x| {
///     let mut x = x.clone();
///     x.attach_grad(GradReq::Write)?;
///     let y = {
///         let _rec = autograd::record();
///         x.mul_scalar(3.0)?
///     };
///     y.backward()?;
///     let g = x.grad().expect("x is marked");
///     Ok(g.to_vec::<f32>()?.iter().sum::<f32>())
/// })?;
/// assert_eq!(sums, vec![12.0, 12.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use rayon::prelude::*;
    match items {
        [one] => Ok(vec![f(one)?]),
        _ => items.par_iter().map(&f).collect(),
    }
}
