//! Operators on dense arrays: elementwise arithmetic with numpy broadcasting
//! ([`add`], [`mul`], ...), reductions ([`NDArray::sum`], [`NDArray::sum_axis`], ...),
//! [`dot`], [`fully_connected`], [`convolution`] (and the fused inference
//! [`convolution_fused`]) and [`pooling`].
//!
//! Every operator checks that its operands share one dtype ([`Error::DTypeMismatch`]; no
//! silent promotion) and one context ([`Error::ContextMismatch`]), and writes its result to
//! new memory on that context.

mod conv;
mod elementwise;
pub(crate) mod grad;
mod linalg;
pub(crate) mod nn;
pub(crate) mod nn_ops;
mod pool;
mod reduce;
pub(crate) mod shape_ops;
mod sparse_ops;
mod transpose;

pub use conv::{convolution, convolution_fused, ConvEpilogue, ConvOptions};
pub use elementwise::{add, div, maximum, minimum, mul, sub};
pub(crate) use elementwise::{add_untracked, div_untracked, mul_untracked, sub_untracked};
pub(crate) use linalg::dot_t_untracked;
pub use linalg::{
    dot, dot_t, fully_connected, fully_connected_with, set_transpose_cache_budget,
    transpose_cache_budget,
};
pub use nn::{ActType, LeakyAct};
pub use nn_ops::{
    activation, batch_norm, broadcast_to, concat, dropout, dropout_axes, embedding, embedding_ex,
    flatten, layer_norm, leaky_relu, log_softmax, pick, slice_axis, softmax,
    softmax_with_temperature, take, transpose, BatchNormOptions,
};
pub use pool::{pooling, PoolOptions, PoolType, PoolingConvention};
pub use sparse_ops::{sparse_dot, sparse_dot_rsp};

use crate::error::{Error, Result};
use crate::nd::NDArray;

/// Checks that `a` and `b` have the same dtype and live on the same context.
pub(crate) fn check_pair(op: &'static str, a: &NDArray, b: &NDArray) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            expected: a.dtype(),
            got: b.dtype(),
        });
    }
    if a.context() != b.context() {
        return Err(Error::ContextMismatch {
            op,
            lhs: a.context(),
            rhs: b.context(),
        });
    }
    Ok(())
}

/// Runs `f` on the elements of `a` and `b` (typed as `T`) under read locks. When both views
/// share one storage a single lock is taken (taking a second read lock on the same `RwLock`
/// from one thread can deadlock if a writer queues in between).
pub(crate) fn read2<T: bytemuck::Pod, R>(
    a: &NDArray,
    b: &NDArray,
    f: impl FnOnce(&[T], &[T]) -> R,
) -> R {
    debug_assert!(a.range().end <= a.storage.len() && b.range().end <= b.storage.len());
    if a.shares_memory_with(b) {
        let (ra, rb) = (a.range(), b.range());
        a.read_with(|buf| {
            let s = buf.typed::<T>();
            f(&s[ra], &s[rb])
        })
    } else {
        a.read_slice::<T, _>(|sa| b.read_slice::<T, _>(|sb| f(sa, sb)))
    }
}
