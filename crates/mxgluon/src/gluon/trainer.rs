//! `Trainer`: applies an optimizer to a set of parameters (spec §7).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::autograd::GradBuf;
use crate::context::Context;
use crate::dtype::{DType, GradReq};
use crate::error::{Error, Result};
use crate::gluon::{Parameter, ParameterDict};
use crate::io::ArrayList;
use crate::kvstore::{self, KVStoreKind};
use crate::nd::{NDArray, RowSparseNDArray};
use crate::optimizer::{self, update_row_sparse, OptState, Optimizer, OptimizerOptions};

/// Largest parameter size (elements) for which a `Local` store fuses the update into the
/// reduction by default (MXNet's 16·1024·1024 rule).
const LOCAL_FUSE_MAX: usize = 16 * 1024 * 1024;

/// How a [`Trainer`] reduces gradients across contexts.
#[derive(Clone, Debug, Default)]
pub struct TrainerOptions {
    /// The reduction (default [`KVStoreKind::Device`]). With one context there is nothing to
    /// reduce and the value does not matter.
    pub kvstore: KVStoreKind,
    /// Whether the optimizer runs once on the reduced gradient and the result is copied to
    /// every context (`true`, MXNet's update on kvstore), or gradients are summed in place and
    /// each context applies the update to its own copy (`false`). `None`: `true`, except for
    /// a `Local` store whose largest parameter has more than 16 Mi elements. Both keep copies
    /// identical; only `false` allows [`Trainer::allreduce_grads`] / [`Trainer::update`].
    pub update_on_kvstore: Option<bool>,
}

impl TrainerOptions {
    /// The defaults: device reduction, update fused into it.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the reduction.
    pub fn kvstore(mut self, kind: KVStoreKind) -> Self {
        self.kvstore = kind;
        self
    }
    /// Sets `update_on_kvstore`.
    pub fn update_on_kvstore(mut self, value: bool) -> Self {
        self.update_on_kvstore = Some(value);
        self
    }
}

/// Anything a [`Trainer`] can take its optimizer from: a boxed optimizer, any concrete
/// optimizer, a registry name (default options) or a name with options.
pub trait IntoOptimizer {
    /// Builds the optimizer.
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>>;
}

impl IntoOptimizer for Box<dyn Optimizer> {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        Ok(self)
    }
}

impl<O: Optimizer + 'static> IntoOptimizer for O {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        Ok(Box::new(self))
    }
}

impl IntoOptimizer for &str {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        optimizer::create(self, &OptimizerOptions::new())
    }
}

impl IntoOptimizer for (&str, OptimizerOptions) {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        optimizer::create(self.0, &self.1)
    }
}

impl IntoOptimizer for (&str, &OptimizerOptions) {
    fn into_optimizer(self) -> Result<Box<dyn Optimizer>> {
        optimizer::create(self.0, self.1)
    }
}

/// The parameters a [`Trainer`] updates: a [`ParameterDict`] (taken in sorted-name order, as
/// Gluon does) or a list of parameters (taken in the given order).
pub trait IntoTrainerParams {
    /// The parameters in trainer-index order.
    fn into_trainer_params(self) -> Vec<Parameter>;
}

impl IntoTrainerParams for &ParameterDict {
    fn into_trainer_params(self) -> Vec<Parameter> {
        let mut items = self.items();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.into_iter().map(|(_, p)| p).collect()
    }
}

impl IntoTrainerParams for ParameterDict {
    fn into_trainer_params(self) -> Vec<Parameter> {
        (&self).into_trainer_params()
    }
}

impl IntoTrainerParams for Vec<Parameter> {
    fn into_trainer_params(self) -> Vec<Parameter> {
        self
    }
}

impl IntoTrainerParams for &[Parameter] {
    fn into_trainer_params(self) -> Vec<Parameter> {
        self.to_vec()
    }
}

/// The reduction as resolved at the first step (MXNet's lazy `_init_kvstore`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    /// No reduction (one context, or `KVStoreKind::None`).
    None,
    /// Sum, update once, copy to every context.
    Fused,
    /// Sum in place into every gradient; each context updates its copy.
    AllReduce,
}

/// Applies an [`Optimizer`] to a set of [`Parameter`]s, reducing gradients across contexts
/// (spec §7).
///
/// * Parameters are indexed in sorted-name order for a [`ParameterDict`], list order otherwise.
/// * All parameters must live on the same contexts, in the same order.
/// * Each parameter's **current** `lr_mult`, `wd_mult` and `grad_req` are read at every step;
///   `grad_req` null parameters are skipped.
/// * [`Trainer::step`] rescales gradients by `rescale_grad / batch_size`, checks that every
///   gradient was written by a backward pass since the last step (unless told to ignore stale
///   gradients), reduces across contexts and updates. With several contexts the copies stay
///   identical; with [`KVStoreKind::None`] each copy follows its own gradient.
///
/// ```
/// use mxgluon::gluon::{nn, Block, Trainer, TrainerOptions};
/// use mxgluon::optimizer::OptimizerOptions;
/// use mxgluon::{autograd, nd, Context};
///
/// let net = nn::Dense::builder(1).in_units(2).prefix("fc_").build()?;
/// net.initialize(Some(mxgluon::init::One.into()), Context::cpu(0))?;
/// let mut trainer = Trainer::new(
///     &net.collect_params()?,
///     ("sgd", OptimizerOptions::new().set("learning_rate", 0.1)),
///     TrainerOptions::default(),
/// )?;
/// let x = nd::array(&[1.0f32, 2.0], &[1, 2], None)?;
/// {
///     let _rec = autograd::record();
///     let y = net.forward(&x)?;
///     y.backward()?;
/// }
/// trainer.step(1)?;
/// // dy/dw = x, so w = 1 - 0.1 * x
/// assert_eq!(net.weight().data(None)?.to_vec::<f32>()?, vec![0.9, 0.8]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct Trainer {
    params: Vec<Parameter>,
    param2idx: HashMap<String, usize>,
    optimizer: Box<dyn Optimizer>,
    /// `rescale_grad` of the optimizer at creation (MXNet's `_scale`).
    scale: f64,
    options: TrainerOptions,
    /// Resolved at the first step.
    reduction: Option<Reduction>,
    /// Parameters whose copies still need the first-step broadcast (deferred at that time).
    pending_broadcast: Vec<bool>,
    /// Optimizer state per (parameter index, context slot).
    states: HashMap<(usize, usize), OptState>,
    /// This trainer's identity for its parameters (spec §1.21) and the token whose lifetime
    /// tells them it is alive.
    id: u64,
    _alive: Arc<()>,
}

/// Source of [`Trainer`] ids.
static NEXT_TRAINER_ID: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field(
                "params",
                &self.params.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("optimizer", &self.optimizer.name())
            .field("kvstore", &self.options.kvstore)
            .field("reduction", &self.reduction)
            .finish()
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        // A parameter outlives its Trainer: it may join another one (MXNet holds a weak
        // reference too).
        for p in &self.params {
            p.unset_trainer(self.id);
        }
    }
}

/// The autograd variable behind a parameter copy (present once the copy is marked).
fn fresh_flag(arr: &NDArray) -> bool {
    arr.autograd_node()
        .and_then(|n| n.as_var())
        .is_some_and(|v| v.is_fresh())
}

fn clear_fresh(arr: &NDArray) {
    if let Some(v) = arr.autograd_node().and_then(|n| n.as_var()) {
        v.take_fresh();
    }
}

impl Trainer {
    /// A trainer over `params` with `optimizer` (spec §7.1).
    ///
    /// Errors: [`Error::ParameterNotInitialized`] for a parameter that is neither initialized
    /// nor deferred; [`Error::TrainerContextMismatch`] when the parameters live on different
    /// contexts; [`Error::DuplicateParameter`] when one name appears twice; optimizer creation
    /// errors.
    pub fn new(
        params: impl IntoTrainerParams,
        optimizer: impl IntoOptimizer,
        options: TrainerOptions,
    ) -> Result<Trainer> {
        let params = params.into_trainer_params();
        let mut param2idx = HashMap::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            if param2idx.insert(p.name().to_string(), i).is_some() {
                return Err(Error::DuplicateParameter {
                    name: p.name().to_string(),
                });
            }
        }
        let mut expected: Option<Vec<Context>> = None;
        for p in &params {
            let ctx = p.list_ctx()?;
            match &expected {
                None => expected = Some(ctx),
                Some(e) if *e != ctx => {
                    return Err(Error::TrainerContextMismatch {
                        name: p.name().to_string(),
                        found: ctx,
                        expected: e.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        let optimizer = optimizer.into_optimizer()?;
        let scale = optimizer.params().rescale_grad;
        let n = params.len();
        let id = NEXT_TRAINER_ID.fetch_add(1, Ordering::Relaxed);
        let alive = Arc::new(());
        // All or nothing: check every parameter before attaching any.
        for p in &params {
            p.set_trainer(id, &alive, true)?;
        }
        for p in &params {
            p.set_trainer(id, &alive, false)?;
        }
        Ok(Trainer {
            id,
            _alive: alive,
            params,
            param2idx,
            optimizer,
            scale,
            options,
            reduction: None,
            pending_broadcast: vec![true; n],
            states: HashMap::new(),
        })
    }

    /// The parameters, in trainer-index order.
    pub fn params(&self) -> &[Parameter] {
        &self.params
    }

    /// The trainer index of the parameter with this name.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.param2idx.get(name).copied()
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// The optimizer, mutable (to change hyper-parameters between steps).
    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }

    /// The current base learning rate (the scheduler's value at the current update count when
    /// there is one).
    pub fn learning_rate(&mut self) -> f64 {
        self.optimizer.params_mut().current_lr()
    }

    /// Sets the base learning rate.
    ///
    /// Errors: [`Error::InvalidOptimizerOption`] when the optimizer has a learning-rate
    /// scheduler (which owns the rate).
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        let p = self.optimizer.params_mut();
        if p.lr_scheduler.is_some() {
            return Err(Error::InvalidOptimizerOption {
                optimizer: self.optimizer.name().to_string(),
                option: "learning_rate".into(),
                reason: "the optimizer has a learning-rate scheduler, which sets the rate; \
                         change the scheduler instead"
                    .into(),
            });
        }
        p.learning_rate = lr;
        Ok(())
    }

    /// The contexts of the parameters (empty without parameters).
    fn contexts(&self) -> Result<Vec<Context>> {
        match self.params.first() {
            Some(p) => p.list_ctx(),
            None => Ok(Vec::new()),
        }
    }

    /// Resolves the reduction (MXNet's lazy kvstore creation) and broadcasts the first
    /// context's value of every initialized parameter to its other copies (once per
    /// parameter).
    fn init_kvstore(&mut self) -> Result<Reduction> {
        let reduction = match self.reduction {
            Some(r) => r,
            None => {
                let nctx = self.contexts()?.len();
                let sparse_weight = self
                    .params
                    .iter()
                    .any(|p| p.stype() != crate::dtype::StorageType::Default);
                if sparse_weight {
                    // Spec §7.2: the value of a sparse weight lives in the kvstore.
                    if self.options.kvstore == KVStoreKind::None {
                        return Err(Error::invalid_arg(
                            "Trainer",
                            "kvstore None cannot be used with row_sparse parameters: their value \
                             lives in the kvstore; use KVStoreKind::Device or Local",
                        ));
                    }
                    if self.options.update_on_kvstore == Some(false) {
                        return Err(Error::invalid_arg(
                            "Trainer",
                            "update_on_kvstore(false) cannot be used when row_sparse parameters \
                             are present",
                        ));
                    }
                }
                let r = if sparse_weight {
                    Reduction::Fused
                } else if nctx < 2 || self.options.kvstore == KVStoreKind::None {
                    Reduction::None
                } else {
                    let fuse = self.options.update_on_kvstore.unwrap_or_else(|| {
                        self.options.kvstore != KVStoreKind::Local
                            || self
                                .params
                                .iter()
                                .filter_map(|p| p.shape())
                                .map(|s| s.iter().product::<usize>())
                                .max()
                                .unwrap_or(0)
                                <= LOCAL_FUSE_MAX
                    });
                    if fuse {
                        Reduction::Fused
                    } else {
                        Reduction::AllReduce
                    }
                };
                self.reduction = Some(r);
                r
            }
        };
        if reduction != Reduction::None {
            for (i, p) in self.params.iter().enumerate() {
                if !self.pending_broadcast[i] || p.stype() != crate::dtype::StorageType::Default {
                    continue;
                }
                let Ok(data) = p.list_data() else {
                    continue; // still deferred: broadcast once it is initialized
                };
                let _pause = crate::autograd::pause();
                kvstore::broadcast_first(&data)?;
                self.pending_broadcast[i] = false;
            }
        }
        Ok(reduction)
    }

    fn set_rescale(&mut self, batch_size: usize) -> Result<()> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument {
                op: "Trainer::step",
                reason: "batch_size must be positive (gradients are divided by it)".into(),
            });
        }
        self.optimizer.params_mut().rescale_grad = self.scale / batch_size as f64;
        Ok(())
    }

    /// One optimization step: rescales gradients by `rescale_grad / batch_size`, reduces them
    /// across contexts and updates every parameter whose `grad_req` is not null (spec §7.4).
    ///
    /// Errors: [`Error::StaleGradient`] naming every parameter copy whose gradient was not
    /// written by a backward pass since the last step (nothing is updated then); see
    /// [`Trainer::step_with`] to skip those instead. [`Error::DeferredInitialization`] for a
    /// parameter that is still deferred.
    pub fn step(&mut self, batch_size: usize) -> Result<()> {
        self.step_with(batch_size, false)
    }

    /// [`Trainer::step`] with `ignore_stale_grad`: stale copies are skipped instead of being
    /// an error (with a fused reduction a parameter is updated when any copy is fresh).
    pub fn step_with(&mut self, batch_size: usize, ignore_stale_grad: bool) -> Result<()> {
        self.set_rescale(batch_size)?;
        let reduction = self.init_kvstore()?;
        let _pause = crate::autograd::pause();
        let work = self.collect_work(ignore_stale_grad)?;
        if reduction == Reduction::AllReduce {
            for w in &work {
                kvstore::allreduce_in_place(&w.grads)?;
            }
        }
        self.apply(work, reduction, ignore_stale_grad)
    }

    /// Sums every parameter's gradients across contexts, in place (each context's gradient
    /// becomes the sum). Combine with [`Trainer::update`] to modify gradients in between.
    ///
    /// Errors: [`Error::InvalidArgument`] when the update is fused into the reduction
    /// (`update_on_kvstore`); create the trainer with `update_on_kvstore(false)`.
    pub fn allreduce_grads(&mut self) -> Result<()> {
        let reduction = self.init_kvstore()?;
        self.check_not_fused(reduction, "allreduce_grads")?;
        let _pause = crate::autograd::pause();
        for p in &self.params {
            if p.grad_req() == GradReq::Null {
                continue;
            }
            if reduction == Reduction::AllReduce {
                let (dense, sparse) = split_grads(p.list_grad_bufs()?);
                if !dense.is_empty() {
                    kvstore::allreduce_in_place(&dense)?;
                }
                if !sparse.is_empty() {
                    // Every context's row-sparse gradient becomes the sum (rows merged).
                    let values: Vec<RowSparseNDArray> = sparse.iter().map(|c| c.get()).collect();
                    let sum = kvstore::reduce_row_sparse(&values)?;
                    for (c, v) in sparse.iter().zip(&values) {
                        c.set(if v.context() == sum.context() {
                            sum.clone()
                        } else {
                            sum.copy_to(v.context())?
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The update half of [`Trainer::step`], without reduction: each context's copy is updated
    /// with its own (already reduced, see [`Trainer::allreduce_grads`]) gradient.
    ///
    /// Errors: as [`Trainer::allreduce_grads`], and those of [`Trainer::step`].
    pub fn update(&mut self, batch_size: usize, ignore_stale_grad: bool) -> Result<()> {
        let reduction = self.init_kvstore()?;
        self.check_not_fused(reduction, "update")?;
        self.set_rescale(batch_size)?;
        let _pause = crate::autograd::pause();
        let work = self.collect_work(ignore_stale_grad)?;
        self.apply(work, Reduction::None, ignore_stale_grad)
    }

    fn check_not_fused(&self, reduction: Reduction, what: &str) -> Result<()> {
        if reduction == Reduction::Fused {
            return Err(Error::InvalidArgument {
                op: "Trainer",
                reason: format!(
                    "{what}() is not available when the update is fused into the gradient \
                     reduction; create the Trainer with TrainerOptions::new().update_on_kvstore(false)"
                ),
            });
        }
        Ok(())
    }

    /// The parameters to update with their arrays and freshness; the stale check.
    fn collect_work(&self, ignore_stale_grad: bool) -> Result<Vec<Work>> {
        let mut work = Vec::with_capacity(self.params.len());
        let mut stale = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if p.grad_req() == GradReq::Null {
                continue;
            }
            let data = p.update_targets()?;
            let handles = p.fresh_handles()?;
            let (grads, sparse) = split_grads(p.list_grad_bufs()?);
            let sparse: Vec<RowSparseNDArray> = sparse.iter().map(|c| c.get()).collect();
            let fresh: Vec<bool> = handles.iter().map(fresh_flag).collect();
            if !ignore_stale_grad {
                for (a, f) in handles.iter().zip(&fresh) {
                    if !f {
                        stale.push((p.name().to_string(), a.context()));
                    }
                }
            }
            work.push(Work {
                index: i,
                lr_mult: p.lr_mult(),
                wd_mult: p.wd_mult(),
                data,
                grads,
                sparse,
                fresh,
                handles,
            });
        }
        if !stale.is_empty() {
            return Err(Error::StaleGradient { stale });
        }
        Ok(work)
    }

    fn apply(&mut self, work: Vec<Work>, reduction: Reduction, ignore_stale: bool) -> Result<()> {
        for w in work {
            if !w.sparse.is_empty() {
                self.apply_row_sparse(w, reduction, ignore_stale)?;
                continue;
            }
            match reduction {
                Reduction::Fused => {
                    if ignore_stale && !w.fresh.iter().any(|&f| f) {
                        continue;
                    }
                    let args = self
                        .optimizer
                        .params_mut()
                        .begin_step(w.index, 0, w.lr_mult, w.wd_mult);
                    let state = state_for(
                        &mut self.states,
                        self.optimizer.as_ref(),
                        w.index,
                        0,
                        &w.data[0],
                    )?;
                    kvstore::reduce_update_broadcast(
                        self.optimizer.as_ref(),
                        &args,
                        &w.data,
                        &w.grads,
                        state,
                    )?;
                    w.handles.iter().for_each(clear_fresh);
                }
                Reduction::None | Reduction::AllReduce => {
                    for (k, (d, g)) in w.data.iter().zip(&w.grads).enumerate() {
                        if ignore_stale && !w.fresh[k] {
                            continue;
                        }
                        let args = self
                            .optimizer
                            .params_mut()
                            .begin_step(w.index, k, w.lr_mult, w.wd_mult);
                        let state =
                            state_for(&mut self.states, self.optimizer.as_ref(), w.index, k, d)?;
                        kvstore::reduce_update_broadcast(
                            self.optimizer.as_ref(),
                            &args,
                            std::slice::from_ref(d),
                            std::slice::from_ref(g),
                            state,
                        )?;
                        clear_fresh(d);
                    }
                }
            }
        }
        Ok(())
    }

    /// One parameter with row-sparse gradients: with a reduction, the gradients are summed
    /// (row sets merged), the first copy is updated and the changed rows are copied to the
    /// others; without, each copy follows its own gradient. Lazy optimizers touch only the
    /// gradient's rows, so the step costs O(rows touched).
    fn apply_row_sparse(
        &mut self,
        w: Work,
        reduction: Reduction,
        ignore_stale: bool,
    ) -> Result<()> {
        match reduction {
            Reduction::Fused | Reduction::AllReduce => {
                if ignore_stale && !w.fresh.iter().any(|&f| f) {
                    return Ok(());
                }
                let args = self
                    .optimizer
                    .params_mut()
                    .begin_step(w.index, 0, w.lr_mult, w.wd_mult);
                let state = state_for(
                    &mut self.states,
                    self.optimizer.as_ref(),
                    w.index,
                    0,
                    &w.data[0],
                )?;
                kvstore::reduce_update_broadcast_row_sparse(
                    self.optimizer.as_ref(),
                    &args,
                    &w.data,
                    &w.sparse,
                    state,
                )?;
                w.handles.iter().for_each(clear_fresh);
            }
            Reduction::None => {
                for (k, (d, g)) in w.data.iter().zip(&w.sparse).enumerate() {
                    if ignore_stale && !w.fresh[k] {
                        continue;
                    }
                    let args = self
                        .optimizer
                        .params_mut()
                        .begin_step(w.index, k, w.lr_mult, w.wd_mult);
                    let state =
                        state_for(&mut self.states, self.optimizer.as_ref(), w.index, k, d)?;
                    let g = if g.context() != d.context() {
                        g.copy_to(d.context())?
                    } else {
                        g.clone()
                    };
                    update_row_sparse(self.optimizer.as_ref(), &args, d, &g, state)?;
                    clear_fresh(d);
                }
            }
        }
        Ok(())
    }

    /// Saves the optimizer and its states to `path` (see the module docs of
    /// [`Trainer::load_states`] for the format). Only the first context's states are saved,
    /// as MXNet does; loading gives every context a copy.
    pub fn save_states(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let list = self.states_to_list()?;
        crate::io::params::save(path, &list)
    }

    /// Loads what [`Trainer::save_states`] wrote: the saved optimizer (kind, options,
    /// learning-rate schedule and update counts) replaces the current one, as in MXNet, and
    /// the states are given to every context. The gradient scale captured at creation is kept.
    ///
    /// The file is an MXNet NDArray file (readable by `mxgluon inspect` and by MXNet's
    /// `mx.nd.load`) holding a dict:
    /// * `"__optimizer__"`: a uint8 array with UTF-8 JSON `{"format": "mxgluon-trainer-states",
    ///   "version": 1, "optimizer": name, "config": {...}, "num_update": n,
    ///   "index_update_count": [[index, context slot, count], ...], "params": [names in index
    ///   order]}`, where `config` is [`optimizer::config_json`] (every option by
    ///   [`optimizer::create`]'s names, with the schedule);
    /// * `"<index>:<state name>"`: each state array of parameter `index` (e.g. `"0:momentum"`),
    ///   and `"<index>:weight32"` for a multi-precision master weight.
    pub fn load_states(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let list = crate::io::params::load(path)?.into_arrays();
        self.states_from_list(list, &path.display().to_string())
    }

    fn states_to_list(&mut self) -> Result<ArrayList> {
        let p = self.optimizer.params();
        let mut counts: Vec<(usize, usize, u64)> = p
            .index_update_count
            .iter()
            .map(|(&(i, d), &c)| (i, d, c))
            .collect();
        counts.sort_unstable();
        let header = serde_json::json!({
            "format": STATES_FORMAT,
            "version": 1,
            "optimizer": self.optimizer.name(),
            "config": optimizer::config_json(self.optimizer.as_ref()),
            "num_update": p.num_update,
            "index_update_count": counts,
            "params": self.params.iter().map(|p| p.name()).collect::<Vec<_>>(),
        });
        let bytes = header.to_string().into_bytes();
        let n = bytes.len();
        let mut entries: Vec<(String, NDArray)> = vec![(
            "__optimizer__".to_string(),
            NDArray::from_vec(bytes, &[n], Context::cpu(0))?,
        )];
        let names = self.optimizer.state_names();
        let mut keys: Vec<&(usize, usize)> = self.states.keys().filter(|k| k.1 == 0).collect();
        keys.sort_unstable();
        for key in keys {
            let st = &self.states[key];
            for (name, arr) in names.iter().zip(&st.slots) {
                entries.push((format!("{}:{name}", key.0), arr.copy_to(Context::cpu(0))?));
            }
            if let Some(m) = &st.master {
                entries.push((format!("{}:weight32", key.0), m.copy_to(Context::cpu(0))?));
            }
        }
        Ok(ArrayList::Dict(
            entries.into_iter().map(|(k, v)| (k, v.into())).collect(),
        ))
    }

    fn states_from_list(&mut self, list: ArrayList, file: &str) -> Result<()> {
        let bad = |reason: String| Error::InvalidArgument {
            op: "Trainer::load_states",
            reason: format!("{file}: {reason}"),
        };
        let ArrayList::Dict(entries) = list else {
            return Err(bad("not a trainer states file (no names)".into()));
        };
        let mut map: HashMap<String, NDArray> = HashMap::new();
        for (k, v) in entries {
            let dense = v.to_dense().map_err(|e| bad(e.to_string()))?;
            map.insert(k, dense);
        }
        let header = map
            .remove("__optimizer__")
            .ok_or_else(|| bad("no \"__optimizer__\" entry".into()))?;
        if header.dtype() != DType::UInt8 {
            return Err(bad("\"__optimizer__\" must be a uint8 array".into()));
        }
        let text = String::from_utf8(header.to_vec::<u8>()?)
            .map_err(|_| bad("\"__optimizer__\" is not UTF-8".into()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("bad header JSON: {e}")))?;
        if json.get("format").and_then(|v| v.as_str()) != Some(STATES_FORMAT) {
            return Err(bad(format!("not a {STATES_FORMAT} file")));
        }
        let name = json
            .get("optimizer")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("header lacks the optimizer name".into()))?;
        let config = json
            .get("config")
            .ok_or_else(|| bad("header lacks the optimizer configuration".into()))?;
        let mut opt = optimizer::create_from_json(name, config)?;
        // Update counts.
        {
            let p = opt.params_mut();
            p.index_update_count.clear();
            if let Some(rows) = json.get("index_update_count").and_then(|v| v.as_array()) {
                for row in rows {
                    let r: Option<(u64, u64, u64)> = row.as_array().and_then(|a| {
                        Some((
                            a.first()?.as_u64()?,
                            a.get(1)?.as_u64()?,
                            a.get(2)?.as_u64()?,
                        ))
                    });
                    let (i, d, c) = r.ok_or_else(|| bad("bad index_update_count row".into()))?;
                    p.index_update_count.insert((i as usize, d as usize), c);
                }
            }
            p.num_update = json
                .get("num_update")
                .and_then(|v| v.as_u64())
                .unwrap_or(p.num_update);
        }
        // States: one set per parameter, copied to every context slot.
        let names = opt.state_names();
        let nctx = self.contexts()?.len().max(1);
        let mut states = HashMap::new();
        for (i, p) in self.params.iter().enumerate() {
            let mut slots = Vec::with_capacity(names.len());
            for n in &names {
                match map.remove(&format!("{i}:{n}")) {
                    Some(a) => slots.push(a),
                    None => {
                        slots.clear();
                        break;
                    }
                }
            }
            if slots.len() != names.len() {
                continue; // never updated: its state is created at its first step
            }
            let master = map.remove(&format!("{i}:weight32"));
            let ctxs = match p.list_ctx() {
                Ok(c) => c,
                Err(_) => vec![Context::cpu(0); nctx],
            };
            for (k, ctx) in ctxs.iter().enumerate() {
                let st = OptState {
                    slots: slots
                        .iter()
                        .map(|a| a.copy_to(*ctx))
                        .collect::<Result<Vec<_>>>()?,
                    master: master.as_ref().map(|m| m.copy_to(*ctx)).transpose()?,
                };
                states.insert((i, k), st);
            }
            if let Some(counts) = opt.params().index_update_count.get(&(i, 0)).copied() {
                let p = opt.params_mut();
                for k in 1..ctxs.len() {
                    p.index_update_count.entry((i, k)).or_insert(counts);
                }
            }
        }
        self.optimizer = opt;
        self.states = states;
        Ok(())
    }
}

const STATES_FORMAT: &str = "mxgluon-trainer-states";

/// The state of (parameter, context slot), created on first use (and re-created when the
/// weight's shape, dtype or context changed since, e.g. after `cast` or `reset_ctx`).
fn state_for<'a>(
    states: &'a mut HashMap<(usize, usize), OptState>,
    opt: &dyn Optimizer,
    index: usize,
    slot: usize,
    weight: &NDArray,
) -> Result<&'a mut OptState> {
    use std::collections::hash_map::Entry;
    match states.entry((index, slot)) {
        Entry::Occupied(mut e) => {
            if !state_fits(e.get(), weight) {
                e.insert(OptState::new(opt, weight)?);
            }
            Ok(e.into_mut())
        }
        Entry::Vacant(e) => Ok(e.insert(OptState::new(opt, weight)?)),
    }
}

fn state_fits(s: &OptState, weight: &NDArray) -> bool {
    s.slots
        .iter()
        .chain(s.master.iter())
        .all(|a| a.shape() == weight.shape() && a.context() == weight.context())
        && match &s.master {
            Some(_) => matches!(weight.dtype(), DType::Float16 | DType::BFloat16),
            None => true,
        }
        && s.slots.iter().all(|a| match weight.dtype() {
            DType::Float64 => a.dtype() == DType::Float64,
            _ => a.dtype() == DType::Float32,
        })
}

/// One parameter's share of a step.
struct Work {
    index: usize,
    lr_mult: f64,
    wd_mult: f64,
    data: Vec<NDArray>,
    /// Dense gradients (empty when the gradients are row-sparse).
    grads: Vec<NDArray>,
    /// Row-sparse gradients' current values (empty when dense).
    sparse: Vec<RowSparseNDArray>,
    fresh: Vec<bool>,
    /// The arrays carrying the freshness flags, one per context.
    handles: Vec<NDArray>,
}

/// Splits gradient buffers into the dense ones and the row-sparse cells.
fn split_grads(bufs: Vec<GradBuf>) -> (Vec<NDArray>, Vec<crate::autograd::SparseGrad>) {
    let mut dense = Vec::new();
    let mut sparse = Vec::new();
    for b in bufs {
        match b {
            GradBuf::Dense(a) => dense.push(a),
            GradBuf::RowSparse(c) => sparse.push(c),
        }
    }
    (dense, sparse)
}
