//! The neural-network operators with their gradients: activations, softmax, dropout,
//! embedding, normalization, and the shape operators (concat, slice, take, transpose,
//! broadcast, pick). Each computes its result with a kernel from `nn.rs` / `shape_ops.rs` and
//! records its backward closure when [`tracked`] holds.

use smallvec::smallvec;

use super::nn::{self, ActType, LeakyAct};
use super::shape_ops;
use crate::autograd::{is_training, record_op, tracked, Grad};
use crate::dtype::Scalar;
use crate::error::{Error, Result};
use crate::nd::{NDArray, RowSparseNDArray};

/// Applies an activation function elementwise (MXNet's `Activation`).
///
/// ```
/// use mxgluon::nd::{self, ActType};
/// let x = nd::array(&[-1.0f32, 0.0, 2.0], &[3], None)?;
/// assert_eq!(nd::activation(&x, ActType::Relu)?.to_vec::<f32>()?, vec![0.0, 0.0, 2.0]);
/// let s = nd::activation(&x, ActType::Sigmoid)?.to_vec::<f32>()?;
/// assert!((s[1] - 0.5).abs() < 1e-7);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn activation(x: &NDArray, act: ActType) -> Result<NDArray> {
    let y = nn::activation_fwd(x, act)?;
    if !tracked(&[x]) {
        return Ok(y);
    }
    let (xd, yd) = (x.detach(), y.detach());
    Ok(record_op("Activation", &[x], y, move |dy, _| {
        Ok(smallvec![Grad::Value(nn::activation_bwd(
            act, &xd, &yd, dy
        )?)])
    }))
}

/// MXNet's `LeakyReLU` operator: `leaky` (`x > 0 ? x : slope·x`), `elu`
/// (`x > 0 ? x : slope·(eˣ−1)`), `prelu` (a learnable slope `gamma` per channel of axis 1),
/// `selu` and `gelu`.
pub fn leaky_relu(
    x: &NDArray,
    act: LeakyAct,
    slope: f64,
    gamma: Option<&NDArray>,
) -> Result<NDArray> {
    if matches!(act, LeakyAct::Prelu) && gamma.is_none() {
        return Err(Error::invalid_arg(
            "LeakyReLU",
            "act_type prelu needs the learnable slope gamma",
        ));
    }
    let y = nn::leaky_relu_fwd(x, act, slope, gamma)?;
    let inputs: Vec<&NDArray> = std::iter::once(x).chain(gamma).collect();
    if !tracked(&inputs) {
        return Ok(y);
    }
    let (xd, yd) = (x.detach(), y.detach());
    let gd = gamma.map(NDArray::detach);
    let with_gamma = gamma.is_some();
    Ok(record_op("LeakyReLU", &inputs, y, move |dy, _| {
        let (dx, dg) = nn::leaky_relu_bwd(act, slope, &xd, &yd, gd.as_ref(), dy)?;
        let mut g = smallvec![Grad::Value(dx)];
        if with_gamma {
            g.push(dg.map_or(Grad::None, Grad::Value));
        }
        Ok(g)
    }))
}

/// Softmax along `axis` (negative counts from the end), numerically stable.
///
/// ```
/// use mxgluon::nd;
/// let x = nd::array(&[1.0f64, 1.0, 1.0, 1.0], &[2, 2], None)?;
/// assert_eq!(nd::softmax(&x, -1)?.to_vec::<f64>()?, vec![0.5; 4]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn softmax(x: &NDArray, axis: isize) -> Result<NDArray> {
    softmax_impl(x, axis, None, false)
}

/// Softmax of `x / temperature` along `axis`.
pub fn softmax_with_temperature(x: &NDArray, axis: isize, temperature: f64) -> Result<NDArray> {
    softmax_impl(x, axis, Some(temperature), false)
}

/// `log(softmax(x))` along `axis`, computed stably.
pub fn log_softmax(x: &NDArray, axis: isize) -> Result<NDArray> {
    softmax_impl(x, axis, None, true)
}

fn softmax_impl(x: &NDArray, axis: isize, t: Option<f64>, log: bool) -> Result<NDArray> {
    let y = nn::softmax_fwd(x, axis, t, log)?;
    if !tracked(&[x]) {
        return Ok(y);
    }
    let yd = y.detach();
    let name = if log { "log_softmax" } else { "softmax" };
    Ok(record_op(name, &[x], y, move |dy, _| {
        Ok(smallvec![Grad::Value(nn::softmax_bwd(
            &yd, dy, axis, t, log
        )?)])
    }))
}

/// Dropout: in training mode ([`crate::autograd::is_training`]) zeroes each element with
/// probability `p` and scales the others by `1/(1−p)`; in predict mode returns `x` unchanged.
pub fn dropout(x: &NDArray, p: f64) -> Result<NDArray> {
    dropout_axes(x, p, &[])
}

/// [`dropout`] with one mask value shared along `axes`.
pub fn dropout_axes(x: &NDArray, p: f64, axes: &[usize]) -> Result<NDArray> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid_arg(
            "Dropout",
            format!("p must be in [0, 1), got {p}"),
        ));
    }
    if let Some(&a) = axes.iter().find(|&&a| a >= x.ndim()) {
        return Err(Error::invalid_arg(
            "Dropout",
            format!(
                "axis {a} is out of range for an input with {} axes",
                x.ndim()
            ),
        ));
    }
    if !is_training() || p == 0.0 {
        return Ok(x.clone());
    }
    let mut mshape = x.shape().to_vec();
    for &a in axes {
        mshape[a] = 1;
    }
    let mask = nn::dropout_mask(&mshape, p, x.dtype(), x.context())?;
    super::mul(x, &mask)
}

/// Looks up rows of `weight` `(input_dim, output_dim)` for every index in `data` (MXNet's
/// `Embedding`); the result has shape `data.shape + (output_dim,)`. Indices are clipped into
/// `[0, input_dim − 1]`. The gradient goes to `weight` only (dense, duplicates summed).
pub fn embedding(data: &NDArray, weight: &NDArray) -> Result<NDArray> {
    embedding_ex(data, weight, false)
}

/// [`embedding`] with MXNet's `sparse_grad` option: when `sparse_grad`, the gradient of
/// `weight` is row-sparse and holds only the rows `data` touches (clipped indices, duplicates
/// summed), so a backward pass costs O(batch × output_dim) whatever the table's size. A
/// row-sparse gradient reaching a variable with a dense buffer is added into it (same values
/// as the dense gradient).
///
/// ```
/// use mxgluon::{autograd, nd, Context, GradReq, StorageType};
/// let mut w = nd::zeros(&[1000, 4], Context::cpu(0))?;
/// w.attach_grad_with(GradReq::Write, StorageType::RowSparse)?;
/// let ids = nd::array(&[7.0f32, 2.0, 7.0], &[3], None)?;
/// let y = { let _r = autograd::record(); nd::embedding_ex(&ids, &w, true)? };
/// y.backward()?;
/// let Some(nd::Array::RowSparse(g)) = w.grad_array() else { panic!("row_sparse") };
/// assert_eq!(g.indices_vec(), vec![2, 7]);                 // 2 of 1000 rows stored
/// assert_eq!(g.values().to_vec::<f32>()?, vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn embedding_ex(data: &NDArray, weight: &NDArray, sparse_grad: bool) -> Result<NDArray> {
    let y = nn::embedding_fwd(data, weight)?;
    if !tracked(&[weight]) {
        return Ok(y);
    }
    let dd = data.detach();
    let input_dim = weight.shape()[0];
    if sparse_grad {
        let wshape = weight.shape().to_vec();
        return Ok(record_op("Embedding", &[data, weight], y, move |dy, _| {
            let ids = nn::embedding_row_ids(&dd, input_dim)?;
            let od = wshape[1];
            let values = dy.reshape(&[ids.len(), od])?;
            Ok(smallvec![
                Grad::None,
                Grad::RowSparse(RowSparseNDArray::from_row_ids(&ids, &values, &wshape)?)
            ])
        }));
    }
    Ok(record_op("Embedding", &[data, weight], y, move |dy, _| {
        Ok(smallvec![
            Grad::None,
            Grad::Value(nn::embedding_bwd(&dd, dy, input_dim)?)
        ])
    }))
}

/// Options of [`batch_norm`]. `Default` gives Gluon's `nn.BatchNorm` defaults (axis 1,
/// eps 1e-5, momentum 0.9, gamma learned, batch statistics in training).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormOptions {
    /// The channel axis.
    pub axis: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of the old running statistics in their update.
    pub momentum: f64,
    /// Treat gamma as 1 (and give it a zero gradient).
    pub fix_gamma: bool,
    /// Use the running statistics in training mode too.
    pub use_global_stats: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            axis: 1,
            eps: 1e-5,
            momentum: 0.9,
            fix_gamma: false,
            use_global_stats: false,
        }
    }
}

/// Batch normalization (MXNet's `BatchNorm`). With `training` (and not `use_global_stats`) the
/// batch's statistics normalize and the running statistics are updated in place; otherwise
/// the running statistics normalize. Gradients flow to `x`, `gamma` and `beta`.
pub fn batch_norm(
    x: &NDArray,
    gamma: &NDArray,
    beta: &NDArray,
    running_mean: &NDArray,
    running_var: &NDArray,
    opts: &BatchNormOptions,
    training: bool,
) -> Result<NDArray> {
    let o = *opts;
    let saved = nn::batch_norm_fwd(
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        o.eps,
        o.momentum,
        o.axis,
        o.fix_gamma,
        o.use_global_stats,
        training,
    )?;
    let y = saved.y.clone();
    if !tracked(&[x, gamma, beta]) {
        return Ok(y);
    }
    let use_batch = training && !o.use_global_stats;
    let (xd, gd) = (x.detach(), gamma.detach());
    let saved = nn::BatchNormOut {
        y: saved.y.detach(),
        mean: saved.mean,
        invstd: saved.invstd,
    };
    Ok(record_op(
        "BatchNorm",
        &[x, gamma, beta],
        y,
        move |dy, _| {
            let (dx, dg, db) =
                nn::batch_norm_bwd(&xd, &gd, &saved, dy, o.axis, o.fix_gamma, use_batch)?;
            Ok(smallvec![Grad::Value(dx), Grad::Value(dg), Grad::Value(db)])
        },
    ))
}

/// Layer normalization over `axis` (MXNet's `LayerNorm`): each slice along `axis` is
/// normalized to zero mean and unit variance, then scaled by `gamma` and shifted by `beta`.
pub fn layer_norm(
    x: &NDArray,
    gamma: &NDArray,
    beta: &NDArray,
    axis: isize,
    eps: f64,
) -> Result<NDArray> {
    let (y, mean, invstd) = nn::layer_norm_fwd(x, gamma, beta, axis, eps)?;
    if !tracked(&[x, gamma, beta]) {
        return Ok(y);
    }
    let (xd, gd) = (x.detach(), gamma.detach());
    Ok(record_op(
        "LayerNorm",
        &[x, gamma, beta],
        y,
        move |dy, _| {
            let (dx, dg, db) = nn::layer_norm_bwd(&xd, &gd, &mean, &invstd, dy, axis)?;
            Ok(smallvec![Grad::Value(dx), Grad::Value(dg), Grad::Value(db)])
        },
    ))
}

/// `(N, d1, d2, …)` → `(N, d1·d2·…)` (a view; 1-D input becomes `(N, 1)`).
pub fn flatten(x: &NDArray) -> Result<NDArray> {
    let s = x.shape();
    if s.is_empty() {
        return Err(Error::InvalidShape {
            op: "Flatten",
            shape: vec![],
            reason: "the input needs at least one axis".into(),
        });
    }
    x.reshape(&[s[0], s[1..].iter().product()])
}

/// Joins arrays along `dim` (all other dimensions equal).
pub fn concat(xs: &[&NDArray], dim: usize) -> Result<NDArray> {
    let y = shape_ops::concat(xs, dim)?;
    if !tracked(xs) {
        return Ok(y);
    }
    let sizes: Vec<usize> = xs.iter().map(|a| a.shape()[dim]).collect();
    Ok(record_op("concat", xs, y, move |dy, _| {
        let mut begin = 0;
        let mut out = smallvec![];
        for &n in &sizes {
            out.push(Grad::Value(shape_ops::slice_axis(
                dy,
                dim,
                begin,
                begin + n,
            )?));
            begin += n;
        }
        Ok(out)
    }))
}

/// Elements `begin..end` along `axis` (a copy).
pub fn slice_axis(x: &NDArray, axis: usize, begin: usize, end: usize) -> Result<NDArray> {
    let y = shape_ops::slice_axis(x, axis, begin, end)?;
    if !tracked(&[x]) {
        return Ok(y);
    }
    let shape = x.shape().to_vec();
    Ok(record_op("slice_axis", &[x], y, move |dy, _| {
        Ok(smallvec![Grad::Value(shape_ops::slice_axis_bwd(
            dy, &shape, axis, begin
        )?)])
    }))
}

/// Gathers slices of `a` along `axis` at `indices` (MXNet's `take`, clip mode); the result
/// has shape `a.shape[..axis] + indices.shape + a.shape[axis+1..]`.
pub fn take(a: &NDArray, indices: &NDArray, axis: usize) -> Result<NDArray> {
    let y = shape_ops::take(a, indices, axis)?;
    if !tracked(&[a]) {
        return Ok(y);
    }
    let (id, shape) = (indices.detach(), a.shape().to_vec());
    Ok(record_op("take", &[a, indices], y, move |dy, _| {
        Ok(smallvec![
            Grad::Value(shape_ops::take_bwd(&id, dy, &shape, axis)?),
            Grad::None
        ])
    }))
}

/// Permutes the axes (`axes` empty reverses them).
pub fn transpose(x: &NDArray, axes: &[usize]) -> Result<NDArray> {
    let y = shape_ops::transpose(x, axes)?;
    if !tracked(&[x]) {
        return Ok(y);
    }
    let n = x.ndim();
    let perm: Vec<usize> = if axes.is_empty() {
        (0..n).rev().collect()
    } else {
        axes.to_vec()
    };
    let mut inv = vec![0; n];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Ok(record_op("transpose", &[x], y, move |dy, _| {
        Ok(smallvec![Grad::Value(shape_ops::transpose(dy, &inv)?)])
    }))
}

/// Broadcasts `x` to `shape` (numpy rules; a copy).
pub fn broadcast_to(x: &NDArray, shape: &[usize]) -> Result<NDArray> {
    let y = shape_ops::broadcast_to(x, shape)?;
    if !tracked(&[x]) {
        return Ok(y);
    }
    let s = x.shape().to_vec();
    Ok(record_op("broadcast_to", &[x], y, move |dy, _| {
        Ok(smallvec![Grad::Value(shape_ops::sum_to_shape(dy, &s)?)])
    }))
}

/// Picks one element along `axis` per position of `index` (MXNet's `pick`, clip mode):
/// `index` has `x`'s shape without `axis` and holds whole numbers; the result has that shape
/// too (with `axis` kept as size 1 when `keepdims`). The gradient goes to `x` only.
///
/// ```
/// use mxgluon::nd;
/// let x = nd::array(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], None)?;
/// let i = nd::array(&[2.0f32, 0.0], &[2], None)?;
/// assert_eq!(nd::pick(&x, &i, -1, false)?.to_vec::<f32>()?, vec![3.0, 4.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn pick(x: &NDArray, index: &NDArray, axis: isize, keepdims: bool) -> Result<NDArray> {
    const OP: &str = "pick";
    let ax = nn::norm_axis(OP, axis, x.shape())?;
    let mut rest: Vec<usize> = x.shape().to_vec();
    let n = rest.remove(ax);
    let idx_ok = index.shape() == rest.as_slice()
        || (index.shape().len() == x.ndim() && index.shape()[ax] == 1 && {
            let mut s = index.shape().to_vec();
            s.remove(ax);
            s == rest
        });
    if !idx_ok {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: x.shape().to_vec(),
            rhs: index.shape().to_vec(),
            detail: format!("the index must have the input's shape without axis {ax}"),
        });
    }
    if !x.dtype().is_float() {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype: x.dtype(),
            hint: "pick works on float arrays".into(),
        });
    }
    let (outer, _, inner) = nn::split3(x.shape(), ax);
    let idx: Vec<usize> = index
        .to_f64_vec()
        .into_iter()
        .map(|v| (v.max(0.0) as usize).min(n.saturating_sub(1)))
        .collect();
    let mut oshape = rest.clone();
    if keepdims {
        oshape.insert(ax, 1);
    }
    let y = NDArray::for_overwrite(&oshape, x.dtype(), x.context())?;
    crate::dispatch_float!(x.dtype(), T => x.read_slice::<T, _>(|s| y.write_slice::<T, _>(|o| {
        for a in 0..outer {
            for b in 0..inner {
                let k = a * inner + b;
                o[k] = s[(a * n + idx[k]) * inner + b];
            }
        }
    })), _ => {});
    if !tracked(&[x]) {
        return Ok(y);
    }
    let (dtype, ctx, xshape) = (x.dtype(), x.context(), x.shape().to_vec());
    Ok(record_op(OP, &[x, index], y, move |dy, _| {
        let dx = NDArray::zeros(&xshape, dtype, ctx)?;
        crate::dispatch_float!(dtype, T => dy.read_slice::<T, _>(|g| dx.write_slice::<T, _>(|d| {
            for a in 0..outer {
                for b in 0..inner {
                    let k = a * inner + b;
                    let p = (a * n + idx[k]) * inner + b;
                    d[p] = Scalar::add(d[p], g[k]);
                }
            }
        })), _ => {});
        Ok(smallvec![Grad::Value(dx), Grad::None])
    }))
}
