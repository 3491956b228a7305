//! `autograd`: recording operations and computing gradients, MXNet style.
//!
//! Inside a recording scope ([`record`]) every operator applied to an array that takes part in
//! differentiation (a *variable* — an array marked with [`NDArray::attach_grad`] or a
//! [`Parameter`](crate::Parameter)'s data — or the result of a recorded operation) remembers how
//! to compute its inputs' gradients. [`NDArray::backward`] walks that graph from a head back to
//! the variables and stores each variable's gradient in its **preallocated** gradient buffer
//! according to its [`GradReq`]:
//!
//! * `write`: the buffer is overwritten with this backward pass's gradient;
//! * `add`: the gradient is added to the buffer (accumulating across passes until it is
//!   zeroed, e.g. by [`Parameter::zero_grad`](crate::Parameter::zero_grad));
//! * `null`: the array is not a variable at all; nothing is recorded for it.
//!
//! Recording state (whether recording, and train vs predict mode) is **per thread**, and so is
//! the graph a thread builds: each context of a data-parallel model can run forward and backward
//! on its own thread. The graph itself is reference counted and owned by the arrays it
//! produced; dropping the results drops the graph.
//!
//! ```
//! use mxgluon::{autograd, nd, Context, GradReq};
//! let ctx = Context::cpu(0);
//! let mut x = nd::array(&[1.0f32, 2.0, 3.0], &[3], ctx)?;
//! x.attach_grad(GradReq::Write)?;
//! let y = {
//!     let _rec = autograd::record();
//!     x.mul(&x)?.sum()?          // y = Σ x²
//! };
//! y.backward()?;
//! assert_eq!(x.grad().unwrap().to_vec::<f32>()?, vec![2.0, 4.0, 6.0]);   // dy/dx = 2x
//! # Ok::<(), mxgluon::Error>(())
//! ```

mod engine;

use std::cell::Cell;
use std::marker::PhantomData;

pub use engine::{backward, grad, mark_variables};
pub(crate) use engine::{
    mark_row_sparse_view, mark_variables_buf, record_op, tracked, Grad, GradBuf, GradDest, Node,
    SparseGrad,
};

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static TRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Whether operations on this thread are being recorded for differentiation.
#[inline]
pub fn is_recording() -> bool {
    RECORDING.with(Cell::get)
}

/// Whether this thread is in training mode (Dropout drops, BatchNorm uses batch statistics).
#[inline]
pub fn is_training() -> bool {
    TRAINING.with(Cell::get)
}

/// Sets this thread's recording flag; returns the previous value. Prefer the scoped guards
/// ([`record`], [`pause`]).
pub fn set_recording(on: bool) -> bool {
    RECORDING.with(|c| c.replace(on))
}

/// Sets this thread's training flag; returns the previous value. Prefer the scoped guards
/// ([`train_mode`], [`predict_mode`]).
pub fn set_training(on: bool) -> bool {
    TRAINING.with(|c| c.replace(on))
}

/// Restores this thread's recording and training flags when dropped. Returned by [`record`],
/// [`pause`], [`train_mode`] and [`predict_mode`]; keep it in a named binding
/// (`let _rec = autograd::record();`) — `let _ = ...` drops it at once.
#[must_use = "the scope ends when the guard is dropped; bind it with `let _guard = ...`"]
pub struct ScopeGuard {
    prev_recording: Option<bool>,
    prev_training: Option<bool>,
    /// The flags are thread-local: the guard must be dropped on the thread that made it.
    _not_send: PhantomData<*const ()>,
}

impl ScopeGuard {
    fn new(recording: Option<bool>, training: Option<bool>) -> ScopeGuard {
        ScopeGuard {
            prev_recording: recording.map(set_recording),
            prev_training: training.map(set_training),
            _not_send: PhantomData,
        }
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        if let Some(r) = self.prev_recording {
            set_recording(r);
        }
        if let Some(t) = self.prev_training {
            set_training(t);
        }
    }
}

/// Starts recording in training mode until the guard is dropped (MXNet's
/// `with autograd.record():`).
pub fn record() -> ScopeGuard {
    record_with(true)
}

/// Starts recording until the guard is dropped, in training mode when `train_mode`
/// (MXNet's `autograd.record(train_mode=...)`).
pub fn record_with(train_mode: bool) -> ScopeGuard {
    ScopeGuard::new(Some(true), Some(train_mode))
}

/// Stops recording, in predict mode, until the guard is dropped (MXNet's
/// `with autograd.pause():`).
pub fn pause() -> ScopeGuard {
    pause_with(false)
}

/// Stops recording until the guard is dropped, in training mode when `train_mode`.
pub fn pause_with(train_mode: bool) -> ScopeGuard {
    ScopeGuard::new(Some(false), Some(train_mode))
}

/// Training mode (recording unchanged) until the guard is dropped.
pub fn train_mode() -> ScopeGuard {
    ScopeGuard::new(None, Some(true))
}

/// Predict mode (recording unchanged) until the guard is dropped.
pub fn predict_mode() -> ScopeGuard {
    ScopeGuard::new(None, Some(false))
}

use crate::dtype::{GradReq, StorageType};
use crate::error::{Error, Result};
use crate::nd::{Array, NDArray, RowSparseNDArray};

impl NDArray {
    /// Makes this array a variable with a zero gradient buffer (MXNet's `attach_grad`):
    /// operations on it inside [`record`] are recorded, and [`NDArray::backward`] stores its
    /// gradient according to `req`. `GradReq::Null` detaches it instead. Only this handle (and
    /// clones made afterwards) is marked.
    pub fn attach_grad(&mut self, req: GradReq) -> Result<()> {
        let g = self.zeros_like()?;
        mark_variables(std::slice::from_mut(self), &[g], req)
    }

    /// [`NDArray::attach_grad`] with a gradient of storage type `stype`: `RowSparse` gives a
    /// row-sparse buffer that starts with no rows and holds, after a backward pass, only the
    /// rows the gradient touches (MXNet's `attach_grad(stype='row_sparse')`).
    ///
    /// Errors: [`Error::InvalidArgument`] for `Csr` or a 0-d array with `RowSparse`.
    ///
    /// ```
    /// use mxgluon::{autograd, nd, Context, GradReq, StorageType};
    /// let mut w = nd::ones(&[5, 2], Context::cpu(0))?;
    /// w.attach_grad_with(GradReq::Write, StorageType::RowSparse)?;
    /// let ids = nd::array(&[3.0f32, 1.0, 3.0], &[3], None)?;
    /// let y = { let _r = autograd::record(); nd::embedding_ex(&ids, &w, true)? };
    /// y.backward()?;
    /// let Some(nd::Array::RowSparse(g)) = w.grad_array() else { panic!("row_sparse") };
    /// assert_eq!(g.indices_vec(), vec![1, 3]);
    /// assert_eq!(g.values().to_vec::<f32>()?, vec![1.0, 1.0, 2.0, 2.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn attach_grad_with(&mut self, req: GradReq, stype: StorageType) -> Result<()> {
        let buf = match stype {
            StorageType::Default => GradBuf::Dense(self.zeros_like()?),
            StorageType::RowSparse => {
                if self.ndim() == 0 {
                    return Err(Error::invalid_arg(
                        "attach_grad",
                        "a 0-d array cannot have a row_sparse gradient",
                    ));
                }
                GradBuf::RowSparse(SparseGrad::new(RowSparseNDArray::zeros(
                    self.shape(),
                    self.dtype(),
                    self.context(),
                )?))
            }
            StorageType::Csr => {
                return Err(Error::invalid_arg(
                    "attach_grad",
                    "csr gradient buffers are not supported; use default or row_sparse",
                ))
            }
        };
        mark_variables_buf(std::slice::from_mut(self), &[buf], req)
    }

    /// The gradient buffer of this variable (`None` when it is not a variable or has
    /// `grad_req = null`, or when its gradient is row-sparse: see [`NDArray::grad_array`]).
    /// The returned handle shares the buffer's memory.
    pub fn grad(&self) -> Option<NDArray> {
        self.autograd_node()?.as_var()?.grad()
    }

    /// The current gradient of this variable in its own storage type: a dense handle to the
    /// buffer, or the row-sparse gradient's current value (`None` when it is not a variable).
    pub fn grad_array(&self) -> Option<Array> {
        match self.autograd_node()?.as_var()?.grad_buf()? {
            GradBuf::Dense(a) => Some(Array::Dense(a)),
            GradBuf::RowSparse(g) => Some(Array::RowSparse(g.get())),
        }
    }

    /// Back-propagates from this array with a head gradient of ones (MXNet's
    /// `y.backward()`), releasing the graph. See [`backward`].
    pub fn backward(&self) -> Result<()> {
        backward(&[self], None, false)
    }

    /// Back-propagates with an explicit head gradient and/or keeping the graph for another
    /// backward pass (`retain_graph`). See [`backward`].
    pub fn backward_with(&self, head_grad: Option<&NDArray>, retain_graph: bool) -> Result<()> {
        match head_grad {
            Some(g) => backward(&[self], Some(std::slice::from_ref(g)), retain_graph),
            None => backward(&[self], None, retain_graph),
        }
    }

    /// Whether this array takes part in differentiation (a variable, or recorded from one).
    pub fn is_tracked(&self) -> bool {
        self.autograd_node().is_some_and(|n| n.is_active())
    }
}
