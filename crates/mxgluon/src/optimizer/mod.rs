//! Optimizers and learning-rate schedulers with MXNet 1.9.1's update formulas and defaults.
//!
//! An [`Optimizer`] holds the hyper-parameters ([`OptimizerParams`] plus its own, such as
//! `momentum` or `beta1`) and a pure update kernel over plain slices: the
//! [`Trainer`](crate::gluon::Trainer) owns the state arrays, counts the updates, applies each
//! parameter's live `lr_mult` / `wd_mult`, and hands the kernel one weight, its (reduced)
//! gradient and its state slots at a time. [`update_array`] is that glue for one array of any
//! floating-point dtype, with `multi_precision` master weights for float16 / bfloat16.
//!
//! | name | type | states | MXNet 1.9.1 source of the formula |
//! |---|---|---|---|
//! | `sgd` | [`Sgd`] | `momentum` (if momentum ≠ 0) | `multi_sgd(_mom)_update` |
//! | `nag` | [`Nag`] | `momentum` (if momentum ≠ 0) | `nag_mom_update` / `sgd_update` |
//! | `signum` | [`Signum`] | `momentum` (if momentum ≠ 0) | `signum_update` / `signsgd_update` |
//! | `adam` | [`Adam`] | `mean`, `var` | `adam_update` |
//! | `adamw` | [`AdamW`] | `mean`, `var` | `_contrib_adamw_update` (no 1.9.1 optimizer) |
//! | `adamax` | [`Adamax`] | `mean`, `u` | Python NDArray code |
//! | `nadam` | [`Nadam`] | `mean`, `var` | Python NDArray code (per-parameter schedule) |
//! | `adagrad` | [`AdaGrad`] | `history` | Python NDArray code (dense) |
//! | `rmsprop` | [`RmsProp`] | `n` (+ `g`, `delta` centered) | `rmsprop(alex)_update` |
//! | `adadelta` | [`AdaDelta`] | `acc_g`, `acc_delta` | Python NDArray code |
//! | `ftrl` | [`Ftrl`] | `z`, `n` | `ftrl_update` |
//! | `lamb` | [`Lamb`] | `mean`, `var` | `_multi_lamb_update` (whole arrays) |
//! | `lars` | [`Lars`] | `momentum` (if momentum ≠ 0) | `multi_lars` + `preloaded_multi_sgd(_mom)_update` (whole arrays) |
//!
//! Each has MXNet's defaults (`Default`) and a builder (`Sgd::new(0.1).momentum(0.9).wd(1e-4)`);
//! [`create`] builds one by name from MXNet's keyword options ([`OptimizerOptions`]) and
//! [`create_from_json`] from a saved configuration ([`config_json`]). The kernels are written
//! once, generic over `f32` / `f64`, and compute float32 weights in single precision as MXNet
//! does; against MXNet 1.9.1 (`tests/mxnet_optimizer_live.rs`) the elementwise ones agree to
//! the bit on float32, LAMB and LARS (whose norms we sum in float64) to about 1e-6.
//! Learning-rate schedules are in [`lr_scheduler`].
//!
//! ```
//! use mxgluon::optimizer::{self, OptimizerOptions};
//! let opt = optimizer::create("sgd", &OptimizerOptions::new().set("learning_rate", 0.1).set("momentum", 0.9))?;
//! assert_eq!(opt.name(), "sgd");
//! assert_eq!(opt.params().learning_rate, 0.1);
//! assert_eq!(opt.state_names(), vec!["momentum"]);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nd::NDArray;

mod adam;
mod adaptive;
mod kernel;
mod layerwise;
pub mod lr_scheduler;
mod registry;
mod sgd;
mod sparse;

pub use adam::{Adam, AdamW, Adamax, Nadam};
pub use adaptive::{AdaDelta, AdaGrad, Ftrl, RmsProp};
pub use layerwise::{Lamb, Lars};
pub use lr_scheduler::{
    CosineScheduler, FactorScheduler, LrScheduler, MultiFactorScheduler, PolyScheduler, Warmup,
    WarmupMode,
};
pub use registry::{
    config_json, create, create_from_json, registered, OptimizerOptions, OptionValue,
};
pub use sgd::{Nag, Sgd, Signum};
pub use sparse::update_row_sparse;

/// The options every optimizer shares (MXNet's `Optimizer.__init__`).
#[derive(Debug, Clone)]
pub struct OptimizerParams {
    /// The base learning rate (default 0.01). With a scheduler, the scheduler's `base_lr`.
    pub learning_rate: f64,
    /// Weight decay (default 0).
    pub wd: f64,
    /// Gradients are multiplied by this before clipping (default 1; the Trainer sets it to
    /// `1 / batch_size` times the value given at creation).
    pub rescale_grad: f64,
    /// Clip the rescaled gradient to `[-c, c]` (default: no clipping).
    pub clip_gradient: Option<f64>,
    /// Keep float32 master weights for float16 / bfloat16 parameters (default false).
    pub multi_precision: bool,
    /// Optional learning-rate schedule, called with the update count.
    pub lr_scheduler: Option<Box<dyn LrScheduler>>,
    /// The update count to start from (default 0).
    pub begin_num_update: u64,
    /// Highest update count seen over all indices (MXNet's `num_update`).
    pub num_update: u64,
    /// Update count per `(parameter index, device slot)` (MXNet's `_index_update_count`, kept
    /// per device like its `Updater`s do).
    pub index_update_count: HashMap<(usize, usize), u64>,
    /// The base learning rates of the latest two update counts, recorded by
    /// [`OptimizerParams::begin_step`] (LARS' `momentum_correction` reads them).
    pub lr_history: LrHistory,
}

impl Default for OptimizerParams {
    fn default() -> Self {
        OptimizerParams {
            learning_rate: 0.01,
            wd: 0.0,
            rescale_grad: 1.0,
            clip_gradient: None,
            multi_precision: false,
            lr_scheduler: None,
            begin_num_update: 0,
            num_update: 0,
            index_update_count: HashMap::new(),
            lr_history: LrHistory::default(),
        }
    }
}

/// The base learning rate (before `lr_mult`) at the latest update count and at the one
/// before it, as [`OptimizerParams::begin_step`] saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LrHistory {
    step: Option<u64>,
    current: f64,
    previous: Option<f64>,
}

impl LrHistory {
    /// Records `base_lr` for update count `num_update`: a new count moves the current rate
    /// to [`LrHistory::previous`]; the same count overwrites the current rate.
    pub fn record(&mut self, num_update: u64, base_lr: f64) {
        match self.step {
            Some(s) if s == num_update => {}
            Some(_) => self.previous = Some(self.current),
            None => self.previous = None,
        }
        self.step = Some(num_update);
        self.current = base_lr;
    }
    /// The base learning rate of the latest update count (`None` before the first step).
    pub fn current(&self) -> Option<f64> {
        self.step.map(|_| self.current)
    }
    /// The base learning rate of the update count before the latest one.
    pub fn previous(&self) -> Option<f64> {
        self.previous
    }
}

impl OptimizerParams {
    /// The current base learning rate: the scheduler's value at `num_update` when there is a
    /// scheduler, else `learning_rate`.
    pub fn current_lr(&mut self) -> f64 {
        match self.lr_scheduler.as_mut() {
            Some(s) => s.lr(self.num_update),
            None => self.learning_rate,
        }
    }

    /// The shared options as JSON, under the names [`create`] accepts: `learning_rate`, `wd`,
    /// `rescale_grad`, `clip_gradient` (null when unset), `multi_precision`,
    /// `begin_num_update`, and `lr_scheduler` (the schedule's [`LrScheduler::to_json`], which
    /// includes its progress) when there is a schedule that serializes. Update counts are not
    /// included. [`create_from_json`] reads this back (see [`config_json`]).
    pub fn options_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("learning_rate".into(), self.learning_rate.into());
        m.insert("wd".into(), self.wd.into());
        m.insert("rescale_grad".into(), self.rescale_grad.into());
        m.insert("clip_gradient".into(), self.clip_gradient.into());
        m.insert("multi_precision".into(), self.multi_precision.into());
        m.insert("begin_num_update".into(), self.begin_num_update.into());
        if let Some(j) = self.lr_scheduler.as_ref().and_then(|s| s.to_json()) {
            m.insert("lr_scheduler".into(), j);
        }
        m
    }

    /// Counts one more update of parameter `index` on device slot `device` and returns the
    /// scalars of that step (MXNet's `_update_count` followed by `_get_lr` / `_get_wd`):
    /// `t` is this index's count, `lr = current_lr() × lr_mult`, `wd = wd × wd_mult`. The
    /// base rate is also recorded in [`OptimizerParams::lr_history`].
    pub fn begin_step(
        &mut self,
        index: usize,
        device: usize,
        lr_mult: f64,
        wd_mult: f64,
    ) -> StepArgs {
        let begin = self.begin_num_update;
        let count = self
            .index_update_count
            .entry((index, device))
            .or_insert(begin);
        *count += 1;
        let t = *count;
        self.num_update = self.num_update.max(t);
        let base_lr = self.current_lr();
        self.lr_history.record(self.num_update, base_lr);
        let lr = base_lr * lr_mult;
        StepArgs {
            lr,
            wd: self.wd * wd_mult,
            rescale_grad: self.rescale_grad,
            clip_gradient: self.clip_gradient,
            t,
            num_update: self.num_update,
        }
    }
}

/// The scalars of one update of one array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepArgs {
    /// Learning rate for this parameter (`base lr × lr_mult`).
    pub lr: f64,
    /// Weight decay for this parameter (`wd × wd_mult`).
    pub wd: f64,
    /// Gradient multiplier, applied before clipping.
    pub rescale_grad: f64,
    /// Clipping bound for the rescaled gradient.
    pub clip_gradient: Option<f64>,
    /// This parameter's update count, starting at 1 (Adam's bias correction uses it).
    pub t: u64,
    /// The optimizer's overall update count.
    pub num_update: u64,
}

/// An optimizer: hyper-parameters plus an update kernel over slices.
///
/// Kernels are pure: `step_*` reads the gradient and updates the weight and the state slots
/// (each shaped like the weight, in [`Optimizer::state_names`] order, zero-initialized by the
/// caller) in place. When [`Optimizer::elementwise`] is true the kernel may be called on any
/// sub-range of the arrays (the Trainer splits large arrays across threads and fuses the
/// cross-context reduction into the update); otherwise it always sees whole arrays.
///
/// The kernels panic when given a different number of state slots than
/// [`Optimizer::state_names`] or slices of different lengths (a caller bug; [`update_array`]
/// checks both and returns an error instead).
pub trait Optimizer: Send + Sync + fmt::Debug {
    /// MXNet's registry name, lower case (`"sgd"`, `"adam"`, ...).
    fn name(&self) -> &'static str;
    /// The shared options.
    fn params(&self) -> &OptimizerParams;
    /// The shared options, mutable (the Trainer sets `rescale_grad` and counts updates).
    fn params_mut(&mut self) -> &mut OptimizerParams;
    /// The names of the state arrays the kernel needs per weight (empty for plain SGD).
    fn state_names(&self) -> Vec<&'static str>;
    /// Whether the kernel is independent per element (false for LAMB and LARS, which use
    /// whole-array norms).
    fn elementwise(&self) -> bool {
        true
    }
    /// Whether a row-sparse gradient updates only the rows it stores (MXNet's lazy update:
    /// weight decay, momentum and moments of the other rows stay as they are), applying this
    /// optimizer's elementwise kernel row by row; see
    /// [`update_row_sparse`]. False (the default) makes
    /// a row-sparse gradient update every row, as the dense gradient with zeros elsewhere.
    /// SGD and Adam return their `lazy_update` option, AdaGrad true (MXNet's sparse AdaGrad
    /// kernel is lazy). FTRL keeps false: MXNet 1.9.1's lazy `ftrl_update` needs a
    /// row_sparse weight and states, and with a dense weight it falls back to the dense update
    /// (checked live), which is what a dense table with a row-sparse gradient gets here.
    fn lazy_row_sparse(&self) -> bool {
        false
    }
    /// One float32 update step.
    ///
    /// # Panics
    /// When the slices do not fit (gradient or state lengths differ from the weight's, or the
    /// number of state slots differs from [`Optimizer::state_names`]): kernels are the raw
    /// layer. [`update_array`], [`crate::kvstore::reduce_update_broadcast`] and the Trainer
    /// check shapes first and return errors instead.
    fn step_f32(
        &self,
        args: &StepArgs,
        weight: &mut [f32],
        grad: &[f32],
        states: &mut [&mut [f32]],
    );
    /// One float64 update step.
    fn step_f64(
        &self,
        args: &StepArgs,
        weight: &mut [f64],
        grad: &[f64],
        states: &mut [&mut [f64]],
    );
    /// The optimizer's own hyper-parameters (not those of [`OptimizerParams`]) as JSON, in the
    /// option names [`create`] accepts; used by `Trainer::save_states`.
    fn hyper_json(&self) -> serde_json::Map<String, serde_json::Value>;
    /// A boxed copy (same hyper-parameters and counts).
    fn clone_box(&self) -> Box<dyn Optimizer>;
}

impl Clone for Box<dyn Optimizer> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// The optimizer state of one weight copy: the slots of [`Optimizer::state_names`] and, for a
/// float16 / bfloat16 weight with `multi_precision`, its float32 master copy.
#[derive(Debug, Clone)]
pub struct OptState {
    /// One array per state name, shaped like the weight (float32 for half-precision weights).
    pub slots: Vec<NDArray>,
    /// The float32 master weight (multi-precision only).
    pub master: Option<NDArray>,
}

impl OptState {
    /// Zero state for `weight` (and the master copy when `opt` keeps one for its dtype).
    pub fn new(opt: &dyn Optimizer, weight: &NDArray) -> Result<OptState> {
        let half = matches!(weight.dtype(), DType::Float16 | DType::BFloat16);
        let state_dtype = match weight.dtype() {
            DType::Float32 | DType::Float16 | DType::BFloat16 => DType::Float32,
            DType::Float64 => DType::Float64,
            other => {
                return Err(Error::UnsupportedDType {
                    op: "optimizer update",
                    dtype: other,
                    hint: "optimizers update floating-point parameters only".into(),
                })
            }
        };
        let slots = opt
            .state_names()
            .iter()
            .map(|_| NDArray::zeros(weight.shape(), state_dtype, weight.context()))
            .collect::<Result<Vec<_>>>()?;
        let master = if half && opt.params().multi_precision {
            Some(weight.astype_untracked(DType::Float32)?)
        } else {
            None
        };
        Ok(OptState { slots, master })
    }
}

/// Applies one update to `weight` (any float dtype) with gradient `grad` (same shape; any
/// float dtype, converted) and `state`.
///
/// float32 / float64 weights are updated in place by the kernel. A float16 / bfloat16 weight
/// is updated through its float32 master copy when the state has one (multi-precision) and
/// otherwise computed in float32 and rounded back (MXNet computes in half precision; both lose
/// accuracy, which is why multi_precision exists).
pub fn update_array(
    opt: &dyn Optimizer,
    args: &StepArgs,
    weight: &NDArray,
    grad: &NDArray,
    state: &mut OptState,
) -> Result<()> {
    if weight.shape() != grad.shape() {
        return Err(Error::ShapeMismatch {
            op: "optimizer update",
            lhs: weight.shape().to_vec(),
            rhs: grad.shape().to_vec(),
            detail: "the gradient must have the weight's shape".into(),
        });
    }
    check_state(opt, weight, state)?;
    // The kernel reads the gradient under a read lock while it writes the weight: a gradient
    // sharing the weight's memory is copied first.
    let aliased = grad.shares_memory_with(weight)
        || state
            .slots
            .iter()
            .chain(state.master.iter())
            .any(|s| s.shares_memory_with(grad));
    let as_dtype = |dtype: DType| -> Result<NDArray> {
        if grad.dtype() == dtype && !aliased {
            Ok(grad.clone())
        } else {
            grad.astype_untracked(dtype)
        }
    };
    match weight.dtype() {
        DType::Float32 => {
            let g = as_dtype(DType::Float32)?;
            step_slices::<f32>(weight, &g, &state.slots, |w, g, s| {
                opt.step_f32(args, w, g, s)
            })?;
        }
        DType::Float64 => {
            let g = as_dtype(DType::Float64)?;
            step_slices::<f64>(weight, &g, &state.slots, |w, g, s| {
                opt.step_f64(args, w, g, s)
            })?;
        }
        DType::Float16 | DType::BFloat16 => {
            let g = grad.astype_untracked(DType::Float32)?;
            let w32 = match &state.master {
                Some(m) => m.clone(),
                None => weight.astype_untracked(DType::Float32)?,
            };
            step_slices::<f32>(&w32, &g, &state.slots, |w, g, s| {
                opt.step_f32(args, w, g, s)
            })?;
            weight.assign(&w32)?;
        }
        other => {
            return Err(Error::UnsupportedDType {
                op: "optimizer update",
                dtype: other,
                hint: "optimizers update floating-point parameters only".into(),
            })
        }
    }
    Ok(())
}

/// Checks that `state` fits `weight` and `opt`: one slot per state name, each shaped like
/// the weight in the state dtype (float64 for float64 weights, else float32), and a float32
/// master copy of the weight's shape if any.
fn check_state(opt: &dyn Optimizer, weight: &NDArray, state: &OptState) -> Result<()> {
    let names = opt.state_names();
    if state.slots.len() != names.len() {
        return Err(Error::invalid_arg(
            "optimizer update",
            format!(
                "{} needs {} state arrays ({}) but {} were given; create the state with \
                 OptState::new for this optimizer",
                opt.name(),
                names.len(),
                names.join(", "),
                state.slots.len()
            ),
        ));
    }
    let want = if weight.dtype() == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    };
    let arrays = names
        .iter()
        .zip(&state.slots)
        .map(|(n, a)| (*n, a, want))
        .chain(
            state
                .master
                .iter()
                .map(|m| ("master weight", m, DType::Float32)),
        );
    for (name, a, dtype) in arrays {
        if a.shape() != weight.shape() || a.dtype() != dtype {
            return Err(Error::invalid_arg(
                "optimizer update",
                format!(
                    "{} state '{name}' is {:?} {:?} but the weight {:?} {:?} needs {:?} {:?}",
                    opt.name(),
                    a.dtype(),
                    a.shape(),
                    weight.dtype(),
                    weight.shape(),
                    dtype,
                    weight.shape()
                ),
            ));
        }
        if a.shares_memory_with(weight) {
            return Err(Error::invalid_arg(
                "optimizer update",
                format!("{} state '{name}' shares the weight's memory", opt.name()),
            ));
        }
    }
    let all: Vec<&NDArray> = state.slots.iter().chain(state.master.iter()).collect();
    for (i, a) in all.iter().enumerate() {
        if all[..i].iter().any(|b| b.shares_memory_with(a)) {
            return Err(Error::invalid_arg(
                "optimizer update",
                format!("two {} state arrays share memory", opt.name()),
            ));
        }
    }
    Ok(())
}

/// Runs a kernel on the elements of `weight` (written), `grad` (read) and the state `slots`
/// (written), all locked at once through [`NDArray::with_slices`].
fn step_slices<T: bytemuck::Pod>(
    weight: &NDArray,
    grad: &NDArray,
    slots: &[NDArray],
    kernel: impl FnOnce(&mut [T], &[T], &mut [&mut [T]]),
) -> Result<()> {
    let mut writes: Vec<&NDArray> = Vec::with_capacity(1 + slots.len());
    writes.push(weight);
    writes.extend(slots.iter());
    NDArray::with_slices::<T, _>("optimizer update", &[grad], &writes, |g, w| {
        let (first, states) = w.split_at_mut(1);
        kernel(first[0], g[0], states)
    })
}
