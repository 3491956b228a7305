//! [`Parameter`]: one weight with a copy per context, its gradients and its initialization
//! state (spec §1, dense storage).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use rayon::prelude::*;

use crate::autograd::{GradBuf, SparseGrad};
use crate::context::{Context, ContextList};
use crate::dtype::{DType, GradReq, Scalar, StorageType};
use crate::error::{fmt_shape, Error, Result};
use crate::init::{self, InitSpec};
use crate::nd::{Array, NDArray, RowSparseNDArray};
use crate::symbol::{Symbol, VarOptions};

/// The initialization state of a [`Parameter`] (spec §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamState {
    /// Never initialized, or its initialization failed.
    Uninitialized,
    /// `initialize` was called while the shape was unknown; the initialization completes in
    /// [`Parameter::finish_deferred_init`] once the shape is known.
    Deferred,
    /// Has one data array per context (and gradients unless `grad_req` is `null`).
    Initialized,
}

/// Which dtype wins when [`Parameter::load_init`] is asked to cast (`cast_dtype = true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DTypeSource {
    /// The loaded data is converted to the parameter's dtype.
    #[default]
    Current,
    /// The parameter is cast to the dtype of the loaded data.
    Saved,
}

/// Options of [`Parameter::initialize_with`] (MXNet's `initialize` keyword arguments).
///
/// Initializer precedence: [`InitOptions::init`] > the parameter's own `init` >
/// [`InitOptions::default_init`] (which defaults to [`init::default_initializer`], looked up
/// only when it is actually used).
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    init: Option<InitSpec>,
    ctx: ContextList,
    default_init: Option<InitSpec>,
    force_reinit: bool,
}

impl InitOptions {
    /// No explicit initializer, the current context, the global default initializer, no
    /// forced re-initialization.
    pub fn new() -> Self {
        Self::default()
    }

    /// An initializer that overrides the parameter's own `init`.
    pub fn init(mut self, init: impl Into<InitSpec>) -> Self {
        self.init = Some(init.into());
        self
    }

    /// The contexts to create copies on (`None` / unset: the current context).
    pub fn ctx(mut self, ctx: impl Into<ContextList>) -> Self {
        self.ctx = ctx.into();
        self
    }

    /// The initializer used when neither an explicit one nor the parameter's own is given.
    pub fn default_init(mut self, init: impl Into<InitSpec>) -> Self {
        self.default_init = Some(init.into());
        self
    }

    /// Re-initialize even if the parameter is already initialized.
    pub fn force_reinit(mut self, force: bool) -> Self {
        self.force_reinit = force;
        self
    }
}

/// What a deferred initialization needs to complete.
#[derive(Clone, Debug)]
struct Deferred {
    /// The winning initializer; `None` means the global default, looked up when used.
    init: Option<InitSpec>,
    ctx: Vec<Context>,
    /// A value given to `set_data` while deferred; used instead of the initializer.
    data: Option<NDArray>,
}

#[derive(Debug)]
struct State {
    shape: Option<Vec<usize>>,
    dtype: DType,
    grad_req: GradReq,
    lr_mult: f64,
    wd_mult: f64,
    init: Option<InitSpec>,
    allow_deferred_init: bool,
    differentiable: bool,
    stype: StorageType,
    grad_stype: StorageType,
    /// One array per entry of `ctx_list` when initialized.
    data: Option<Vec<NDArray>>,
    /// Parallel to `data`; `None` when grad_req is null or not initialized. Dense buffers
    /// for `grad_stype` default, row-sparse cells for `row_sparse`.
    grad: Option<Vec<GradBuf>>,
    ctx_list: Vec<Context>,
    /// `Context::map_key()` → index into `ctx_list` (later duplicates win).
    ctx_map: HashMap<(bool, u32), usize>,
    deferred: Option<Deferred>,
    /// The Trainer this parameter belongs to (spec §1.21): its id and a liveness token.
    trainer: Option<(u64, Weak<()>)>,
    /// Row-sparse storage: per context, the rows last pulled by `row_sparse_data`.
    pulled: Vec<Option<RowSparseNDArray>>,
}

impl State {
    /// Makes the autograd marking of the data arrays match the gradients: with gradients, each
    /// data array is a variable whose gradient goes to its buffer with `grad_req`; without,
    /// the data arrays are plain arrays (spec §1.10, §1.4).
    fn sync_marks(&mut self) -> Result<()> {
        let Some(data) = &mut self.data else {
            return Ok(());
        };
        match &self.grad {
            Some(g) if self.grad_req != GradReq::Null => {
                crate::autograd::mark_variables_buf(data, g, self.grad_req)
            }
            _ => crate::autograd::mark_variables(data, &[], GradReq::Null),
        }
    }
}

struct Inner {
    name: String,
    /// Set for the parameter inside a [`Constant`](super::Constant): grad_req stays null.
    constant: bool,
    /// The value of a [`Constant`](super::Constant) (as given at construction), so that
    /// `ParameterDict::get_constant` can compare it; `None` for ordinary parameters.
    constant_value: Option<NDArray>,
    state: RwLock<State>,
    /// The symbol `var()` returned first (created once, spec §1.20).
    var: OnceLock<Symbol>,
}

/// One weight of a model: a copy per context, gradient buffers per [`GradReq`], learning-rate
/// and weight-decay multipliers, and (deferred) initialization.
///
/// `Parameter` is a cheap handle: clones are the **same** parameter (shared state), and it is
/// `Send + Sync`, so clones can be used from several threads.
///
/// ```
/// use mxgluon::init::Initializer;
/// use mxgluon::{Context, NDArray, Parameter};
///
/// #[derive(Debug)]
/// struct Fill(f64);
/// impl Initializer for Fill {
///     fn kind(&self) -> String { "fill".into() }
///     fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> { Default::default() }
///     fn init_weight(&self, _name: &str, arr: &NDArray) -> mxgluon::Result<()> { arr.fill(self.0) }
/// }
///
/// let w = Parameter::new("fc_weight").with_shape([2, 3]).with_init(Fill(0.5));
/// w.initialize([Context::cpu(0), Context::cpu(1)])?;
/// assert_eq!(w.data(Context::cpu(1))?.to_vec::<f32>()?, vec![0.5; 6]);
/// assert_eq!(w.grad(Context::cpu(0))?.to_vec::<f32>()?, vec![0.0; 6]);
/// assert_eq!(w.to_string(), "Parameter fc_weight (shape=(2, 3), dtype=float32)");
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone)]
pub struct Parameter {
    inner: Arc<Inner>,
}

/// Whether every dimension of `shape` is known (legacy shape mode: `0` is unknown and the
/// empty shape `()` counts as unknown).
fn shape_is_known(shape: &Option<Vec<usize>>) -> bool {
    match shape {
        None => false,
        Some(s) => !s.is_empty() && s.iter().all(|&d| d != 0),
    }
}

fn build_ctx_map(ctx_list: &[Context]) -> HashMap<(bool, u32), usize> {
    ctx_list
        .iter()
        .enumerate()
        .map(|(i, c)| (c.map_key(), i))
        .collect()
}

/// Elements per block of the cross-context mean.
const MEAN_BLOCK: usize = 4096;

/// `out[i] = mean over srcs of src[i]`, accumulated in `i128` for integer types and in `f64`
/// for floating-point types; integer means truncate toward zero.
fn mean_into<T: Scalar>(srcs: &[NDArray], out: &NDArray) {
    let n = srcs.len();
    out.write_slice::<T, _>(|o| {
        let run = |(bi, oc): (usize, &mut [T])| {
            let start = bi * MEAN_BLOCK;
            let end = start + oc.len();
            if T::IS_INT {
                let mut acc = [0i128; MEAN_BLOCK];
                for src in srcs {
                    src.read_slice::<T, _>(|s| {
                        for (a, v) in acc.iter_mut().zip(&s[start..end]) {
                            *a += v.to_i128();
                        }
                    });
                }
                for (d, a) in oc.iter_mut().zip(acc.iter()) {
                    // n >= 1 (checked by the caller) and fits in i128.
                    *d = T::from_i128(*a / n as i128);
                }
            } else {
                let mut acc = [0f64; MEAN_BLOCK];
                for src in srcs {
                    src.read_slice::<T, _>(|s| {
                        for (a, v) in acc.iter_mut().zip(&s[start..end]) {
                            *a += v.to_f64();
                        }
                    });
                }
                for (d, a) in oc.iter_mut().zip(acc.iter()) {
                    *d = T::from_f64(*a / n as f64);
                }
            }
        };
        if crate::nd::par::worth_parallel(o.len()) {
            o.par_chunks_mut(MEAN_BLOCK).enumerate().for_each(run);
        } else {
            o.chunks_mut(MEAN_BLOCK).enumerate().for_each(run);
        }
    });
}

impl Parameter {
    // ------------------------------------------------------------------ construction

    /// A new parameter: grad_req `write`, dtype float32, lr/wd multipliers 1.0, unknown shape,
    /// no initializer, no deferred initialization, differentiable, dense storage.
    pub fn new(name: impl Into<String>) -> Parameter {
        Parameter::build(name.into(), None, GradReq::Write)
    }

    /// `constant_value` is `Some` exactly for the parameter of a [`Constant`](super::Constant).
    pub(crate) fn build(
        name: String,
        constant_value: Option<NDArray>,
        grad_req: GradReq,
    ) -> Parameter {
        Parameter {
            inner: Arc::new(Inner {
                name,
                constant: constant_value.is_some(),
                constant_value,
                state: RwLock::new(State {
                    shape: None,
                    dtype: DType::Float32,
                    grad_req,
                    lr_mult: 1.0,
                    wd_mult: 1.0,
                    init: None,
                    allow_deferred_init: false,
                    differentiable: true,
                    stype: StorageType::Default,
                    grad_stype: StorageType::Default,
                    data: None,
                    grad: None,
                    ctx_list: Vec::new(),
                    ctx_map: HashMap::new(),
                    deferred: None,
                    trainer: None,
                    pulled: Vec::new(),
                }),
                var: OnceLock::new(),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // No user code runs while the lock is held, so a poisoned lock only means a panic in
        // this module; the state is still consistent field by field, so keep going.
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the shape; `0` marks an unknown dimension (legacy shape mode). Stored as given
    /// when the parameter is not initialized; on an initialized parameter the rules of
    /// [`Parameter::set_shape`] apply and a violation is logged and ignored.
    pub fn with_shape(self, shape: impl AsRef<[usize]>) -> Self {
        let shape = shape.as_ref().to_vec();
        let initialized = self.read().data.is_some();
        if initialized {
            if let Err(e) = self.set_shape(&shape) {
                log::warn!("{e}");
            }
        } else {
            self.write().shape = Some(shape);
        }
        self
    }

    /// Sets the dtype (on an initialized parameter this is [`Parameter::cast`]).
    pub fn with_dtype(self, dtype: DType) -> Self {
        if let Err(e) = self.cast(dtype) {
            log::warn!("{e}");
        }
        self
    }

    /// Sets `grad_req` (see [`Parameter::set_grad_req`]).
    pub fn with_grad_req(self, req: GradReq) -> Self {
        if let Err(e) = self.set_grad_req(req) {
            log::warn!("{e}");
        }
        self
    }

    /// Sets the learning-rate multiplier.
    pub fn with_lr_mult(self, lr_mult: f64) -> Self {
        self.set_lr_mult(lr_mult);
        self
    }

    /// Sets the weight-decay multiplier.
    pub fn with_wd_mult(self, wd_mult: f64) -> Self {
        self.set_wd_mult(wd_mult);
        self
    }

    /// Sets the parameter's own initializer (an object, a registry name or a JSON string).
    pub fn with_init(self, init: impl Into<InitSpec>) -> Self {
        self.set_init(Some(init.into()));
        self
    }

    /// Whether `initialize` may defer until the shape is known.
    pub fn with_allow_deferred_init(self, allow: bool) -> Self {
        self.write().allow_deferred_init = allow;
        self
    }

    /// Whether the parameter takes gradients. `false` forces `grad_req` to `null` (now and for
    /// every later `set_grad_req`).
    pub fn with_differentiable(self, differentiable: bool) -> Self {
        self.write().differentiable = differentiable;
        if !differentiable {
            if let Err(e) = self.set_grad_req(GradReq::Null) {
                log::warn!("{e}");
            }
        }
        self
    }

    /// Sets the storage type of the data (only `default` supports `data()`).
    pub fn with_stype(self, stype: StorageType) -> Self {
        self.write().stype = stype;
        self
    }

    /// Sets the storage type of the gradient.
    pub fn with_grad_stype(self, stype: StorageType) -> Self {
        self.write().grad_stype = stype;
        self
    }

    // ------------------------------------------------------------------ properties

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether two handles are the same parameter.
    pub fn ptr_eq(&self, other: &Parameter) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether this is the parameter of a [`Constant`](super::Constant).
    pub fn is_constant(&self) -> bool {
        self.inner.constant
    }

    /// The value a [`Constant`](super::Constant) was created with; `None` for ordinary
    /// parameters.
    pub(crate) fn constant_value(&self) -> Option<&NDArray> {
        self.inner.constant_value.as_ref()
    }

    /// The shape (`None` when unknown; `0` marks an unknown dimension).
    pub fn shape(&self) -> Option<Vec<usize>> {
        self.read().shape.clone()
    }

    /// Sets the shape (spec §1.6): an unknown shape takes any value; otherwise the rank must
    /// match and every stored dimension must be unknown (`0`) or equal to the new one.
    ///
    /// Errors: [`Error::IncompatibleShape`].
    pub fn set_shape(&self, shape: &[usize]) -> Result<()> {
        let mut st = self.write();
        self.set_shape_locked(&mut st, shape)
    }

    fn set_shape_locked(&self, st: &mut State, new: &[usize]) -> Result<()> {
        if let Some(cur) = &st.shape {
            let ok = cur.len() == new.len() && cur.iter().zip(new).all(|(&c, &n)| c == 0 || c == n);
            if !ok {
                return Err(Error::IncompatibleShape {
                    name: self.inner.name.clone(),
                    new: new.to_vec(),
                    current: cur.clone(),
                });
            }
        }
        st.shape = Some(new.to_vec());
        Ok(())
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.read().dtype
    }

    /// What backward does with the gradient (`null` for non-differentiable parameters and
    /// constants).
    ///
    /// ```
    /// use mxgluon::{Context, GradReq, NDArray, Parameter};
    /// let p = Parameter::new("w").with_shape([2]);
    /// assert_eq!(p.grad_req(), GradReq::Write);
    /// p.set_grad_req(GradReq::Null)?;
    /// assert_eq!(p.grad_req(), GradReq::Null);
    /// let q = Parameter::new("q").with_differentiable(false).with_grad_req(GradReq::Add);
    /// assert_eq!(q.grad_req(), GradReq::Null);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn grad_req(&self) -> GradReq {
        self.read().grad_req
    }

    /// Sets `grad_req` (spec §1.4). A non-differentiable parameter stays `null`. Switching to
    /// `null` releases the gradient buffers; switching `null`→`write`/`add` or between `write`
    /// and `add` on an initialized parameter allocates fresh zero gradients (accumulated
    /// values are lost). On a [`Constant`](super::Constant) any value but `null` is ignored with
    /// a warning.
    pub fn set_grad_req(&self, req: GradReq) -> Result<()> {
        if self.inner.constant {
            if req != GradReq::Null {
                log::warn!(
                    "Constant parameter \"{}\" does not support grad_req other than \"null\", and new value \"{}\" is ignored",
                    self.inner.name,
                    req
                );
            }
            return Ok(());
        }
        let data = {
            let mut st = self.write();
            let req = if st.differentiable {
                req
            } else {
                GradReq::Null
            };
            if req == st.grad_req {
                return Ok(());
            }
            st.grad_req = req;
            if req == GradReq::Null {
                st.grad = None;
                // MXNet replaces each data array by a detached handle to the same memory; the
                // old variables are unmarked too, so their gradient buffers are released.
                return st.sync_marks();
            }
            let st = &mut *st;
            match &st.data {
                Some(d) => {
                    // Drop the old gradients now so their memory is released before the new
                    // ones are allocated.
                    st.grad = None;
                    d.clone()
                }
                None => return Ok(()),
            }
        };
        let grads = self.new_grads(&data)?;
        let mut st = self.write();
        if st.grad_req != GradReq::Null && st.data.as_ref().is_some_and(|d| same_handles(d, &data))
        {
            st.grad = Some(grads);
            st.sync_marks()?;
        }
        Ok(())
    }

    /// The learning-rate multiplier (read live by trainers).
    pub fn lr_mult(&self) -> f64 {
        self.read().lr_mult
    }

    /// Sets the learning-rate multiplier.
    pub fn set_lr_mult(&self, lr_mult: f64) {
        self.write().lr_mult = lr_mult;
    }

    /// The weight-decay multiplier (read live by trainers).
    pub fn wd_mult(&self) -> f64 {
        self.read().wd_mult
    }

    /// Sets the weight-decay multiplier.
    pub fn set_wd_mult(&self, wd_mult: f64) {
        self.write().wd_mult = wd_mult;
    }

    /// The parameter's own initializer.
    pub fn init(&self) -> Option<InitSpec> {
        self.read().init.clone()
    }

    /// Sets (or clears) the parameter's own initializer.
    pub fn set_init(&self, init: Option<InitSpec>) {
        self.write().init = init;
    }

    /// The storage type of the data.
    pub fn stype(&self) -> StorageType {
        self.read().stype
    }

    /// The storage type of the gradient.
    pub fn grad_stype(&self) -> StorageType {
        self.read().grad_stype
    }

    /// Whether the parameter takes gradients.
    pub fn differentiable(&self) -> bool {
        self.read().differentiable
    }

    /// Whether `initialize` may defer until the shape is known.
    pub fn allow_deferred_init(&self) -> bool {
        self.read().allow_deferred_init
    }

    /// The parameter as a symbolic variable (spec §1.20): created on the first call and
    /// cached, so every call returns the same graph node and later changes of shape,
    /// multipliers or initializer are not reflected. Its attributes: `__shape__` (when the
    /// shape is set; `0` = unknown dimension), `__dtype__`, `__lr_mult__`, `__wd_mult__`,
    /// `__init__` (when an initializer is set: a name verbatim, an object as its `dumps()`),
    /// `__storage_type__`.
    ///
    /// ```
    /// use mxgluon::Parameter;
    /// let p = Parameter::new("fc_bias").with_shape([0, 3]).with_init("zeros").with_lr_mult(2.0);
    /// let v = p.var();
    /// assert_eq!(v.attr("__shape__").as_deref(), Some("(0, 3)"));
    /// assert_eq!(v.attr("__init__").as_deref(), Some("zeros"));
    /// assert_eq!(v.attr("lr_mult").as_deref(), Some("2.0"));
    /// p.set_shape(&[2, 3])?;
    /// assert!(p.var().ptr_eq(&v));
    /// assert_eq!(p.var().attr("__shape__").as_deref(), Some("(0, 3)"));
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn var(&self) -> Symbol {
        self.inner
            .var
            .get_or_init(|| {
                let (mut opts, init) = {
                    let st = self.read();
                    let mut opts = VarOptions::new()
                        .lr_mult(st.lr_mult)
                        .wd_mult(st.wd_mult)
                        .dtype(st.dtype)
                        .stype(st.stype);
                    if let Some(s) = &st.shape {
                        opts = opts.shape(s);
                    }
                    (opts, st.init.clone())
                };
                // `dumps()` runs the initializer's code: not under the state lock.
                if let Some(i) = &init {
                    opts = opts.init(match i {
                        InitSpec::Str(s) => s.clone(),
                        InitSpec::Object(o) => o.dumps(),
                    });
                }
                Symbol::var_with(self.inner.name.clone(), &opts)
            })
            .clone()
    }

    /// The initialization state.
    pub fn state(&self) -> ParamState {
        let st = self.read();
        if st.data.is_some() {
            ParamState::Initialized
        } else if st.deferred.is_some() {
            ParamState::Deferred
        } else {
            ParamState::Uninitialized
        }
    }

    // ------------------------------------------------------------------ initialization

    /// Initializes on `ctx` (a context, a list, or `None` for the current context) with the
    /// parameter's own initializer, else the global default. Same as
    /// `initialize_with(InitOptions::new().ctx(ctx))`.
    ///
    /// ```
    /// use mxgluon::{Context, NDArray, Parameter};
    /// let p = Parameter::new("b").with_shape([3]);
    /// // No initializer is needed when the value is given with set_data after a deferral:
    /// let d = Parameter::new("d").with_allow_deferred_init(true);
    /// d.initialize(Context::cpu(0))?;                 // shape unknown: deferred
    /// d.set_data(&NDArray::full(&[2], 7.0, mxgluon::DType::Float32, Context::cpu(0))?)?;
    /// d.finish_deferred_init()?;
    /// assert_eq!(d.data(None)?.to_vec::<f32>()?, vec![7.0, 7.0]);
    /// assert!(p.data(None).is_err());                  // never initialized
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn initialize(&self, ctx: impl Into<ContextList>) -> Result<()> {
        self.initialize_with(InitOptions::new().ctx(ctx))
    }

    /// Initializes the parameter (spec §1.8).
    ///
    /// * Already initialized and not `force_reinit`: logs a warning and returns `Ok` unchanged.
    /// * Otherwise the data is dropped first (a failing re-initialization leaves the parameter
    ///   uninitialized), the initializer is chosen (explicit > own `init` > `default_init`),
    ///   and, when the shape is not fully known, the initialization is deferred if allowed
    ///   ([`Error::UnknownParameterShape`] if not); else it completes right away: the
    ///   initializer fills one cpu(0) array which is copied to every context.
    ///
    /// ```
    /// use mxgluon::gluon::InitOptions;
    /// use mxgluon::init::Initializer;
    /// use mxgluon::{Context, NDArray, Parameter};
    ///
    /// #[derive(Debug)]
    /// struct Fill(f64);
    /// impl Initializer for Fill {
    ///     fn kind(&self) -> String { "fill".into() }
    ///     fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> { Default::default() }
    ///     fn init_weight(&self, _: &str, arr: &NDArray) -> mxgluon::Result<()> { arr.fill(self.0) }
    /// }
    ///
    /// let p = Parameter::new("w").with_shape([2]).with_init(Fill(1.0));
    /// p.initialize_with(InitOptions::new().init(Fill(5.0)).default_init(Fill(0.0)))?;
    /// assert_eq!(p.data(None)?.to_vec::<f32>()?, vec![5.0, 5.0]); // explicit init wins
    /// p.initialize_with(InitOptions::new().init(Fill(2.0)).default_init(Fill(0.0)))?; // warns, no-op
    /// assert_eq!(p.data(None)?.to_vec::<f32>()?, vec![5.0, 5.0]);
    /// p.initialize_with(InitOptions::new().default_init(Fill(0.0)).force_reinit(true))?;
    /// assert_eq!(p.data(None)?.to_vec::<f32>()?, vec![1.0, 1.0]); // own init beats default
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn initialize_with(&self, opts: InitOptions) -> Result<()> {
        let _pause = crate::autograd::pause();
        {
            let mut st = self.write();
            if st.data.is_some() && !opts.force_reinit {
                log::warn!(
                    "Parameter '{}' is already initialized, ignoring. Set force_reinit(true) to re-initialize.",
                    self.inner.name
                );
                return Ok(());
            }
            st.data = None;
            st.grad = None;
            st.deferred = None;
            let ctx = opts.ctx.resolve();
            self.check_ctx_nonempty(&ctx)?;
            let init = opts.init.or_else(|| st.init.clone()).or(opts.default_init);
            let record = Deferred {
                init,
                ctx,
                data: None,
            };
            if !shape_is_known(&st.shape) {
                if st.allow_deferred_init {
                    st.deferred = Some(record);
                    return Ok(());
                }
                return Err(Error::UnknownParameterShape {
                    name: self.inner.name.clone(),
                    shape: st.shape.clone(),
                    deferred: false,
                });
            }
            st.deferred = Some(record);
        }
        self.finish_deferred_init()
    }

    fn check_ctx_nonempty(&self, ctx: &[Context]) -> Result<()> {
        if ctx.is_empty() {
            return Err(Error::InvalidParameterValue {
                name: self.inner.name.clone(),
                reason: "the list of contexts is empty; give at least one context".into(),
            });
        }
        Ok(())
    }

    /// Completes a deferred initialization (spec §1.9); a no-op when none is pending. Layers
    /// call it once they have set the shape.
    ///
    /// The deferred record is cleared first, so a failure (shape still unknown, initializer
    /// error, unavailable device) leaves the parameter uninitialized. A value given to
    /// [`Parameter::set_data`] during the deferral is used instead of the initializer.
    pub fn finish_deferred_init(&self) -> Result<()> {
        let _pause = crate::autograd::pause();
        let (record, shape, dtype) = {
            let mut st = self.write();
            let Some(record) = st.deferred.take() else {
                return Ok(());
            };
            if !shape_is_known(&st.shape) {
                return Err(Error::UnknownParameterShape {
                    name: self.inner.name.clone(),
                    shape: st.shape.clone(),
                    deferred: true,
                });
            }
            // Known shapes are always Some (checked just above).
            (record, st.shape.clone().unwrap_or_default(), st.dtype)
        };
        let (source, owned) = match record.data {
            Some(d) => (d, false),
            None => {
                let init = match &record.init {
                    Some(spec) => spec.resolve()?,
                    None => init::default_initializer(),
                };
                // The initializer runs once, on the first context's memory when that context
                // is a host one (the result is then that context's copy; others get copies).
                let home = match record.ctx.first() {
                    Some(c) if c.device_type().is_host() => *c,
                    _ => Context::cpu(0),
                };
                let arr = if init.writes_every_element() {
                    NDArray::for_overwrite(&shape, dtype, home)?
                } else {
                    NDArray::zeros(&shape, dtype, home)?
                };
                init.init_weight(&self.inner.name, &arr)?;
                (arr, true)
            }
        };
        self.init_impl(&source, owned, record.ctx, dtype)
    }

    /// Stores a copy of `source` (converted to `dtype`) on every context and creates the
    /// gradients (spec §1.10). When `owned` (nobody else holds `source`), `source` itself
    /// becomes the copy of the first context it already lives on.
    fn init_impl(
        &self,
        source: &NDArray,
        owned: bool,
        ctx: Vec<Context>,
        dtype: DType,
    ) -> Result<()> {
        let mut data = Vec::with_capacity(ctx.len());
        let mut source_used = !owned || source.dtype() != dtype;
        for &c in &ctx {
            let arr = if !source_used && c == source.context() {
                source_used = true;
                source.clone()
            } else if source.dtype() == dtype {
                source.copy_to(c)?
            } else {
                let a = NDArray::for_overwrite(source.shape(), dtype, c)?;
                a.assign(source)?;
                a
            };
            data.push(arr);
        }
        let need_grad = self.read().grad_req != GradReq::Null;
        let grad = if need_grad {
            Some(self.new_grads(&data)?)
        } else {
            None
        };
        let mut st = self.write();
        st.ctx_map = build_ctx_map(&ctx);
        st.ctx_list = ctx;
        // grad_req may have changed meanwhile; honour the current value.
        st.grad = match (st.grad_req, grad) {
            (GradReq::Null, _) => None,
            (_, Some(g)) => Some(g),
            (_, None) => Some(new_grads_of(&data, st.grad_stype)?),
        };
        st.pulled = vec![None; data.len()];
        st.data = Some(data);
        st.deferred = None;
        st.sync_marks()
    }

    // ------------------------------------------------------------------ access

    /// `_check_and_get` (spec §1.7) for one context.
    fn check_and_get(
        &self,
        st: &State,
        arrs: Option<&Vec<NDArray>>,
        ctx: Option<Context>,
    ) -> Result<NDArray> {
        let Some(arrs) = arrs else {
            return Err(self.not_initialized_error(st));
        };
        let ctx = match ctx {
            None if arrs.len() == 1 => return Ok(arrs[0].clone()),
            None => Context::current(),
            Some(c) => c,
        };
        match st.ctx_map.get(&ctx.map_key()).and_then(|&i| arrs.get(i)) {
            Some(a) => Ok(a.clone()),
            None => Err(Error::ParameterNotOnContext {
                name: self.inner.name.clone(),
                ctx,
                available: st.ctx_list.clone(),
            }),
        }
    }

    fn not_initialized_error(&self, st: &State) -> Error {
        if st.deferred.is_some() {
            Error::DeferredInitialization {
                name: self.inner.name.clone(),
            }
        } else {
            Error::ParameterNotInitialized {
                name: self.inner.name.clone(),
            }
        }
    }

    fn check_dense(&self, st: &State, called: &'static str) -> Result<()> {
        if st.stype != StorageType::Default {
            return Err(Error::WrongParameterStorage {
                name: self.inner.name.clone(),
                stype: st.stype,
                called,
                use_instead: "row_sparse_data",
            });
        }
        Ok(())
    }

    /// The copy on `ctx` (`None`: the only copy, or the current context's when there are
    /// several). This is a handle to the stored array: writes through it change the parameter.
    ///
    /// Errors: [`Error::ParameterNotInitialized`], [`Error::DeferredInitialization`],
    /// [`Error::ParameterNotOnContext`], [`Error::WrongParameterStorage`] for sparse storage.
    pub fn data(&self, ctx: impl Into<Option<Context>>) -> Result<NDArray> {
        let st = self.read();
        self.check_dense(&st, "data")?;
        self.check_and_get(&st, st.data.as_ref(), ctx.into())
    }

    /// Handles to the copies on every context, in context-list order.
    pub fn list_data(&self) -> Result<Vec<NDArray>> {
        let st = self.read();
        self.check_dense(&st, "list_data")?;
        st.data
            .clone()
            .ok_or_else(|| self.not_initialized_error(&st))
    }

    /// The gradient on `ctx` (lookup as for [`Parameter::data`]).
    ///
    /// Errors: [`Error::GradReqNull`] when initialized with grad_req `null`,
    /// [`Error::WrongParameterStorage`] when the gradient is row-sparse (use
    /// [`Parameter::grad_array`]), else those of `data`.
    pub fn grad(&self, ctx: impl Into<Option<Context>>) -> Result<NDArray> {
        let st = self.read();
        let g = self.grad_buf_locked(&st, ctx.into())?;
        match g {
            GradBuf::Dense(a) => Ok(a),
            GradBuf::RowSparse(_) => Err(self.sparse_grad_error("grad")),
        }
    }

    /// The gradients on every context.
    ///
    /// Errors: as [`Parameter::grad`].
    pub fn list_grad(&self) -> Result<Vec<NDArray>> {
        self.list_grad_bufs()?
            .into_iter()
            .map(|g| match g {
                GradBuf::Dense(a) => Ok(a),
                GradBuf::RowSparse(_) => Err(self.sparse_grad_error("list_grad")),
            })
            .collect()
    }

    /// The gradient on `ctx` in the parameter's `grad_stype`: for a dense gradient a handle
    /// to the buffer ([`Array::Dense`]), for a row-sparse one its current value
    /// ([`Array::RowSparse`]: the rows the last backward passes touched; none after
    /// [`Parameter::zero_grad`]).
    ///
    /// ```
    /// use mxgluon::gluon::{nn::Embedding, Block};
    /// use mxgluon::{autograd, init, nd, nd::Array, Context};
    /// let e = Embedding::builder(20, 2).sparse_grad(true).weight_initializer(init::One).build()?;
    /// e.initialize(None, Context::cpu(0))?;
    /// let x = nd::array(&[4.0f32, 9.0, 4.0], &[3], None)?;
    /// { let _r = autograd::record(); e.forward(&x)?.backward()?; }
    /// assert!(e.weight().grad(None).is_err());          // row_sparse: not a dense array
    /// let Array::RowSparse(g) = e.weight().grad_array(None)? else { panic!("row_sparse") };
    /// assert_eq!(g.indices_vec(), vec![4, 9]);
    /// assert_eq!(g.values().to_vec::<f32>()?, vec![2.0, 2.0, 1.0, 1.0]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    ///
    /// Errors: those of [`Parameter::grad`] except the storage one.
    pub fn grad_array(&self, ctx: impl Into<Option<Context>>) -> Result<Array> {
        let st = self.read();
        Ok(match self.grad_buf_locked(&st, ctx.into())? {
            GradBuf::Dense(a) => Array::Dense(a),
            GradBuf::RowSparse(g) => Array::RowSparse(g.get()),
        })
    }

    /// [`Parameter::grad_array`] on every context, in context-list order.
    pub fn list_grad_array(&self) -> Result<Vec<Array>> {
        Ok(self
            .list_grad_bufs()?
            .into_iter()
            .map(|g| match g {
                GradBuf::Dense(a) => Array::Dense(a),
                GradBuf::RowSparse(g) => Array::RowSparse(g.get()),
            })
            .collect())
    }

    /// The row-sparse gradient on `ctx` (MXNet's `grad()` of a `grad_stype='row_sparse'`
    /// parameter).
    ///
    /// Errors: [`Error::WrongParameterStorage`] when the gradient is dense, else those of
    /// [`Parameter::grad_array`].
    pub fn row_sparse_grad(&self, ctx: impl Into<Option<Context>>) -> Result<RowSparseNDArray> {
        match self.grad_array(ctx)? {
            Array::RowSparse(g) => Ok(g),
            _ => Err(Error::WrongParameterStorage {
                name: self.inner.name.clone(),
                stype: StorageType::Default,
                called: "row_sparse_grad",
                use_instead: "grad",
            }),
        }
    }

    fn sparse_grad_error(&self, called: &'static str) -> Error {
        Error::WrongParameterStorage {
            name: self.inner.name.clone(),
            stype: StorageType::RowSparse,
            called,
            use_instead: "grad_array",
        }
    }

    fn grad_buf_locked(&self, st: &State, ctx: Option<Context>) -> Result<GradBuf> {
        if st.data.is_some() && st.grad.is_none() {
            return Err(Error::GradReqNull {
                name: self.inner.name.clone(),
            });
        }
        let Some(grads) = &st.grad else {
            return Err(self.not_initialized_error(st));
        };
        let ctx = match ctx {
            None if grads.len() == 1 => return Ok(grads[0].clone()),
            None => Context::current(),
            Some(c) => c,
        };
        match st.ctx_map.get(&ctx.map_key()).and_then(|&i| grads.get(i)) {
            Some(g) => Ok(g.clone()),
            None => Err(Error::ParameterNotOnContext {
                name: self.inner.name.clone(),
                ctx,
                available: st.ctx_list.clone(),
            }),
        }
    }

    /// Every context's gradient buffer (dense or row-sparse), in context-list order.
    pub(crate) fn list_grad_bufs(&self) -> Result<Vec<GradBuf>> {
        let st = self.read();
        if st.data.is_some() && st.grad.is_none() {
            return Err(Error::GradReqNull {
                name: self.inner.name.clone(),
            });
        }
        st.grad
            .clone()
            .ok_or_else(|| self.not_initialized_error(&st))
    }

    /// New zero gradient buffers for `data`, in the parameter's `grad_stype` (a row-sparse
    /// buffer starts with no rows: no memory of the table's size).
    fn new_grads(&self, data: &[NDArray]) -> Result<Vec<GradBuf>> {
        let stype = self.read().grad_stype;
        new_grads_of(data, stype)
    }
}

/// New zero gradient buffers for `data` with gradient storage `stype` (see
/// `Parameter::new_grads`; this form needs no lock).
fn new_grads_of(data: &[NDArray], stype: StorageType) -> Result<Vec<GradBuf>> {
    let sparse = stype == StorageType::RowSparse;
    {
        data.iter()
            .map(|a| {
                Ok(if sparse && a.ndim() > 0 {
                    GradBuf::RowSparse(SparseGrad::new(RowSparseNDArray::zeros(
                        a.shape(),
                        a.dtype(),
                        a.context(),
                    )?))
                } else {
                    GradBuf::Dense(a.zeros_like()?)
                })
            })
            .collect()
    }
}

impl Parameter {
    /// The contexts the parameter lives on (the pending ones when deferred).
    pub fn list_ctx(&self) -> Result<Vec<Context>> {
        let st = self.read();
        if st.data.is_some() {
            Ok(st.ctx_list.clone())
        } else if let Some(d) = &st.deferred {
            Ok(d.ctx.clone())
        } else {
            Err(Error::ParameterNotInitialized {
                name: self.inner.name.clone(),
            })
        }
    }

    /// Sets every gradient to zero in place (same buffers); a no-op without gradients. A
    /// row-sparse gradient keeps no rows (spec §1.15).
    pub fn zero_grad(&self) -> Result<()> {
        let grads = self.read().grad.clone();
        for g in grads.iter().flatten() {
            match g {
                GradBuf::Dense(a) => a.fill(0.0)?,
                GradBuf::RowSparse(c) => c.clear()?,
            }
        }
        Ok(())
    }

    /// Sets the value on every context (spec §1.16).
    ///
    /// The shape is set first ([`Parameter::set_shape`] rules). A deferred parameter keeps the
    /// value (a handle, not a copy) and uses it when the initialization completes; an
    /// initialized one copies it into every context's existing buffer, converting the dtype.
    ///
    /// ```
    /// use mxgluon::{nd, Context, DType, NDArray, Parameter};
    /// let p = Parameter::new("w").with_shape([0, 2]).with_allow_deferred_init(true);
    /// p.initialize([Context::cpu(0), Context::cpu(1)])?;        // deferred: shape (0, 2)
    /// p.set_data(&NDArray::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2], Context::cpu(0))?)?;
    /// p.finish_deferred_init()?;
    /// assert_eq!(p.shape(), Some(vec![2, 2]));
    /// assert_eq!(p.data(Context::cpu(1))?.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
    /// p.set_data(&nd::zeros(&[2, 2], None)?)?;
    /// assert_eq!(p.data(Context::cpu(0))?.to_vec::<f32>()?, vec![0.0; 4]);
    /// assert!(p.set_data(&nd::zeros(&[3, 2], None)?).is_err());  // incompatible shape
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn set_data(&self, data: &NDArray) -> Result<()> {
        let _pause = crate::autograd::pause();
        let targets = {
            let mut guard = self.write();
            let st = &mut *guard;
            self.set_shape_locked(st, data.shape())?;
            match (&st.data, &mut st.deferred) {
                (Some(d), _) => d.clone(),
                (None, Some(rec)) => {
                    rec.data = Some(data.clone());
                    return Ok(());
                }
                (None, None) => {
                    return Err(Error::ParameterNotInitialized {
                        name: self.inner.name.clone(),
                    })
                }
            }
        };
        for t in &targets {
            t.assign(data).map_err(|e| self.value_error(e))?;
        }
        Ok(())
    }

    fn value_error(&self, e: Error) -> Error {
        Error::InvalidParameterValue {
            name: self.inner.name.clone(),
            reason: e.to_string(),
        }
    }

    /// Moves the parameter to other contexts (spec §1.17): the value becomes the mean over the
    /// current copies and the gradients are re-created as zeros. A deferred parameter only
    /// changes its pending contexts.
    ///
    /// Errors: [`Error::NotInitializedFor`] when uninitialized.
    pub fn reset_ctx(&self, ctx: impl Into<ContextList>) -> Result<()> {
        let _pause = crate::autograd::pause();
        let ctx = ctx.into().resolve();
        self.check_ctx_nonempty(&ctx)?;
        {
            let mut st = self.write();
            if st.data.is_none() {
                return match &mut st.deferred {
                    Some(rec) => {
                        rec.ctx = ctx;
                        Ok(())
                    }
                    None => Err(Error::NotInitializedFor {
                        name: self.inner.name.clone(),
                        action: "reset the context of",
                    }),
                };
            }
        }
        let value = self.reduce()?;
        let dtype = value.dtype();
        self.init_impl(&value, false, ctx, dtype)
    }

    /// One array on `cpu(0)` holding the mean of the copies on every context (a copy when
    /// there is one context) (spec §1.18). For a row-sparse parameter: a dense copy of its
    /// authoritative value, which needs its Trainer ([`Error::NoTrainer`] otherwise, as
    /// MXNet fails without one).
    pub fn reduce(&self) -> Result<NDArray> {
        let _pause = crate::autograd::pause();
        let data = {
            let st = self.read();
            if st.stype != StorageType::Default {
                // The authoritative value lives with the Trainer (spec §1.18, quirk 19).
                self.check_trainer(&st, "reduce (save, reset_ctx)")?;
                let data = st
                    .data
                    .as_ref()
                    .ok_or_else(|| self.not_initialized_error(&st))?;
                return data[0].copy_to(Context::cpu(0));
            }
            st.data
                .clone()
                .ok_or_else(|| self.not_initialized_error(&st))?
        };
        match data.as_slice() {
            [] => Err(Error::ParameterNotInitialized {
                name: self.inner.name.clone(),
            }),
            [one] => one.copy_to(Context::cpu(0)),
            many => {
                let first = &many[0];
                if let Some(bad) = many
                    .iter()
                    .find(|a| a.shape() != first.shape() || a.dtype() != first.dtype())
                {
                    return Err(Error::InvalidParameterValue {
                        name: self.inner.name.clone(),
                        reason: format!(
                            "copies differ: {} {} on {} vs {} {} on {}",
                            fmt_shape(first.shape()),
                            first.dtype(),
                            first.context(),
                            fmt_shape(bad.shape()),
                            bad.dtype(),
                            bad.context()
                        ),
                    });
                }
                let out = NDArray::for_overwrite(first.shape(), first.dtype(), Context::cpu(0))?;
                crate::dispatch_dtype!(first.dtype(), T => mean_into::<T>(many, &out));
                Ok(out)
            }
        }
    }

    /// Converts the data and gradients to `dtype`, keeping their values; on an uninitialized
    /// parameter only the dtype changes (spec §1.19).
    pub fn cast(&self, dtype: DType) -> Result<()> {
        let _pause = crate::autograd::pause();
        let (data, grad) = {
            let mut st = self.write();
            st.dtype = dtype;
            match &st.data {
                None => return Ok(()),
                Some(d) => (d.clone(), st.grad.clone()),
            }
        };
        let new_data = data
            .iter()
            .map(|a| a.astype_untracked(dtype))
            .collect::<Result<Vec<_>>>()?;
        let new_grad = match &grad {
            Some(g) => Some(
                g.iter()
                    .map(|b| {
                        Ok(match b {
                            GradBuf::Dense(a) => GradBuf::Dense(a.astype_untracked(dtype)?),
                            GradBuf::RowSparse(c) => {
                                GradBuf::RowSparse(SparseGrad::new(c.get().astype(dtype)?))
                            }
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let mut st = self.write();
        if st.data.as_ref().is_some_and(|d| same_handles(d, &data)) {
            st.data = Some(new_data);
            if st.grad.is_some() {
                st.grad = new_grad;
            }
            st.sync_marks()?;
        }
        Ok(())
    }

    /// Loads a value read from a file (spec §1.22, dense part).
    ///
    /// Unknown dimensions are filled from `data` (known ones must match; as in MXNet only the
    /// common leading dimensions are compared, and a shape of `None` or `()` is not checked).
    /// Dtypes must match unless `cast_dtype`, in which case `dtype_source` picks the winner.
    /// An uninitialized parameter is initialized on `ctx` (default `cpu(0)`; a deferred one on
    /// its pending contexts, which `ctx` must equal as a set) without running any initializer;
    /// an initialized one gets [`Parameter::set_data`] (its contexts must equal `ctx` as a set).
    pub fn load_init(
        &self,
        data: &NDArray,
        ctx: impl Into<ContextList>,
        cast_dtype: bool,
        dtype_source: DTypeSource,
    ) -> Result<()> {
        let _pause = crate::autograd::pause();
        let ctx = ctx.into().0;
        let name = &self.inner.name;
        // 2. shape
        let shape = self.shape();
        if let Some(ps) = shape.filter(|s| !s.is_empty()) {
            let mismatch = ps.iter().zip(data.shape()).any(|(&p, &d)| p != 0 && p != d);
            if mismatch {
                return Err(Error::IncompatibleShape {
                    name: name.clone(),
                    new: data.shape().to_vec(),
                    current: ps,
                });
            }
            let merged: Vec<usize> = ps
                .iter()
                .zip(data.shape())
                .map(|(&p, &d)| if p == 0 { d } else { p })
                .collect();
            self.set_shape(&merged)?;
        }
        // 3. dtype
        let mut data = data.clone();
        let pdt = self.dtype();
        if pdt != data.dtype() {
            if !cast_dtype {
                return Err(Error::ParameterDTypeMismatch {
                    name: name.clone(),
                    expected: pdt,
                    got: data.dtype(),
                });
            }
            match dtype_source {
                DTypeSource::Current => data = data.astype(pdt)?,
                DTypeSource::Saved => self.cast(data.dtype())?,
            }
        }
        // 4. storage (a row_sparse parameter keeps its full value dense: nothing to convert)
        if self.stype() == StorageType::Csr {
            return Err(Error::WrongParameterStorage {
                name: name.clone(),
                stype: self.stype(),
                called: "load_init",
                use_instead: "a Trainer-backed sparse loader",
            });
        }
        if let Some(c) = &ctx {
            self.check_ctx_nonempty(c)?;
        }
        let same_set = |a: &[Context], b: &[Context]| {
            a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
        };
        let ctx_error = |given: &[Context], had: &[Context]| Error::ParameterContextMismatch {
            name: name.clone(),
            requested: given.to_vec(),
            initialized: had.to_vec(),
        };
        let state = self.state();
        if state == ParamState::Initialized {
            let had = self.list_ctx()?;
            if let Some(c) = &ctx {
                if !same_set(c, &had) {
                    return Err(ctx_error(c, &had));
                }
            }
            self.set_data(&data)?;
            self.write().deferred = None;
            return Ok(());
        }
        let target = match (state, ctx) {
            (ParamState::Deferred, c) => {
                let had = self.list_ctx()?;
                if let Some(c) = &c {
                    if !same_set(c, &had) {
                        return Err(ctx_error(c, &had));
                    }
                }
                had
            }
            (_, Some(c)) => c,
            (_, None) => vec![Context::cpu(0)],
        };
        let dtype = self.dtype();
        self.init_impl(&data, false, target, dtype)
    }
}

// ---------------------------------------------------------------------- sparse storage
//
// A `row_sparse` parameter (spec §1.12, §1.18, §1.21) keeps its full value in dense arrays
// (one per context, as a dense parameter; the first is the authoritative value, which the
// owning Trainer updates in place, lazily for row-sparse gradients — MXNet keeps it in the
// Trainer's kvstore). Those arrays are private: `data()` refuses, and the model reads rows
// through `row_sparse_data(row_id)`, which gathers them from the authoritative value into a
// `RowSparseNDArray` on `row_id`'s context, remembers it as that context's copy and marks
// its values as an autograd variable whose gradient (full shape, row-sparse) goes to the
// parameter's gradient buffer of that context.

impl Parameter {
    /// Attaches the parameter to a Trainer (`id`, kept alive by `alive`) — MXNet's
    /// `_set_trainer`. `check_only` validates without attaching.
    ///
    /// Errors: [`Error::TrainerAlreadySet`] when the parameter has sparse storage and
    /// another live Trainer owns it.
    pub(crate) fn set_trainer(&self, id: u64, alive: &Arc<()>, check_only: bool) -> Result<()> {
        let mut st = self.write();
        if st.stype != StorageType::Default {
            if let Some((old, token)) = &st.trainer {
                if *old != id && token.strong_count() > 0 {
                    return Err(Error::TrainerAlreadySet {
                        name: self.inner.name.clone(),
                        stype: st.stype,
                    });
                }
            }
        }
        if !check_only {
            st.trainer = Some((id, Arc::downgrade(alive)));
        }
        Ok(())
    }

    /// Detaches the parameter from Trainer `id` (when that Trainer is dropped).
    pub(crate) fn unset_trainer(&self, id: u64) {
        let mut st = self.write();
        if st.trainer.as_ref().is_some_and(|(t, _)| *t == id) {
            st.trainer = None;
        }
    }

    fn check_trainer(&self, st: &State, action: &'static str) -> Result<()> {
        match &st.trainer {
            Some((_, token)) if token.strong_count() > 0 => Ok(()),
            _ => Err(Error::NoTrainer {
                name: self.inner.name.clone(),
                action,
            }),
        }
    }

    fn check_row_sparse(&self, st: &State, called: &'static str) -> Result<()> {
        if st.stype != StorageType::RowSparse {
            return Err(Error::WrongParameterStorage {
                name: self.inner.name.clone(),
                stype: st.stype,
                called,
                use_instead: "data",
            });
        }
        Ok(())
    }

    /// The rows `row_id` of the parameter's current value, as a row-sparse array on
    /// `row_id`'s context (MXNet's `row_sparse_data`, spec §1.12): indices are the sorted,
    /// distinct ids; the array becomes the parameter's copy on that context, and inside
    /// [`autograd::record`](crate::autograd::record) operators on it (e.g.
    /// [`nd::sparse_dot_rsp`](crate::nd::sparse_dot_rsp)) send their row-sparse gradient to
    /// the parameter's gradient on that context.
    ///
    /// ```
    /// use mxgluon::gluon::{Trainer, TrainerOptions};
    /// use mxgluon::{init, nd, Context, Parameter, StorageType};
    /// let w = Parameter::new("w").with_shape([5, 2]).with_init(init::One)
    ///     .with_stype(StorageType::RowSparse).with_grad_stype(StorageType::RowSparse);
    /// w.initialize(Context::cpu(0))?;
    /// assert!(w.data(None).is_err());                           // use row_sparse_data
    /// let ids = nd::array(&[3.0f32, 1.0, 3.0], &[3], None)?;
    /// assert!(w.row_sparse_data(&ids).is_err());                // no Trainer yet
    /// let _trainer = Trainer::new(vec![w.clone()], "sgd", TrainerOptions::default())?;
    /// let rows = w.row_sparse_data(&ids)?;
    /// assert_eq!(rows.indices_vec(), vec![1, 3]);
    /// assert_eq!(rows.values().to_vec::<f32>()?, vec![1.0; 4]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    ///
    /// Errors: [`Error::WrongParameterStorage`] for a parameter whose storage is not
    /// row-sparse, [`Error::NoTrainer`] without a Trainer, the errors of
    /// [`Parameter::data`] (not initialized, not on `row_id`'s context), and an
    /// [`Error::InvalidArgument`] for ids outside the table.
    pub fn row_sparse_data(&self, row_id: &NDArray) -> Result<RowSparseNDArray> {
        let ctx = row_id.context();
        let slot = {
            let st = self.read();
            self.check_row_sparse(&st, "row_sparse_data")?;
            self.check_trainer(&st, "get row_sparse data of")?;
            self.check_and_get(&st, st.data.as_ref(), Some(ctx))?;
            st.ctx_map.get(&ctx.map_key()).copied().unwrap_or(0)
        };
        self.pull_rows(slot, row_id)
    }

    /// [`Parameter::row_sparse_data`] for every context: the same rows, one array per
    /// context in context-list order, each becoming that context's copy.
    ///
    /// Errors: as [`Parameter::row_sparse_data`].
    pub fn list_row_sparse_data(&self, row_id: &NDArray) -> Result<Vec<RowSparseNDArray>> {
        let n = {
            let st = self.read();
            if st.stype != StorageType::RowSparse {
                return Err(Error::WrongParameterStorage {
                    name: self.inner.name.clone(),
                    stype: st.stype,
                    called: "list_row_sparse_data",
                    use_instead: "list_data",
                });
            }
            self.check_trainer(&st, "get row_sparse data of")?;
            st.data
                .as_ref()
                .ok_or_else(|| self.not_initialized_error(&st))?
                .len()
        };
        (0..n).map(|slot| self.pull_rows(slot, row_id)).collect()
    }

    /// Gathers rows `row_id` of the authoritative value onto context slot `slot`, stores the
    /// result as that slot's copy and marks it for autograd.
    fn pull_rows(&self, slot: usize, row_id: &NDArray) -> Result<RowSparseNDArray> {
        let _pause = crate::autograd::pause();
        let (master, ctx, grad, req) = {
            let st = self.read();
            let data = st
                .data
                .as_ref()
                .ok_or_else(|| self.not_initialized_error(&st))?;
            let ctx = st.ctx_list.get(slot).copied().unwrap_or(Context::cpu(0));
            let grad = st.grad.as_ref().and_then(|g| g.get(slot).cloned());
            (data[0].clone(), ctx, grad, st.grad_req)
        };
        let rows = if row_id.context() == master.context() {
            row_id.clone()
        } else {
            row_id.copy_to(master.context())?
        };
        let pulled = RowSparseNDArray::gather(&master, &rows.detach())?;
        let pulled = if pulled.context() != ctx {
            pulled.copy_to(ctx)?
        } else {
            pulled
        };
        let pulled = match grad {
            Some(buf) if req != GradReq::Null => {
                let mut values = pulled.values().detach();
                crate::autograd::mark_row_sparse_view(&mut values, buf, req);
                RowSparseNDArray::new(values, pulled.indices().clone(), pulled.shape())?
            }
            _ => pulled,
        };
        let mut st = self.write();
        if let Some(p) = st.pulled.get_mut(slot) {
            *p = Some(pulled.clone());
        }
        Ok(pulled)
    }

    /// The authoritative full value of a row-sparse parameter, or the data arrays of a
    /// dense one: what the Trainer updates.
    pub(crate) fn update_targets(&self) -> Result<Vec<NDArray>> {
        let st = self.read();
        let data = st
            .data
            .as_ref()
            .ok_or_else(|| self.not_initialized_error(&st))?;
        Ok(match st.stype {
            StorageType::Default => data.clone(),
            _ => data.iter().take(1).cloned().collect(),
        })
    }

    /// The arrays whose autograd variables carry the parameter's freshness flags: the data
    /// arrays, or for a row-sparse parameter each context's last pulled values (the data
    /// array where nothing was pulled yet).
    pub(crate) fn fresh_handles(&self) -> Result<Vec<NDArray>> {
        let st = self.read();
        let data = st
            .data
            .as_ref()
            .ok_or_else(|| self.not_initialized_error(&st))?;
        if st.stype == StorageType::Default {
            return Ok(data.clone());
        }
        Ok(data
            .iter()
            .enumerate()
            .map(|(i, d)| match st.pulled.get(i) {
                Some(Some(p)) => p.values().clone(),
                _ => d.clone(),
            })
            .collect())
    }

    /// The full value for saving (spec §1.18, §4.4): the cross-context mean of a dense
    /// parameter; for a row-sparse one its authoritative value as a row-sparse array holding
    /// every row (what MXNet writes), which needs the Trainer (quirk 19).
    ///
    /// Errors: [`Error::NoTrainer`] for a row-sparse parameter without a Trainer; those of
    /// [`Parameter::reduce`].
    pub fn reduce_array(&self) -> Result<Array> {
        if self.stype() == StorageType::Default {
            return Ok(Array::Dense(self.reduce()?));
        }
        let full = self.reduce()?;
        let n = full.shape().first().copied().unwrap_or(0);
        let ids: Vec<i64> = (0..n as i64).collect();
        let indices = NDArray::from_vec(ids, &[n], full.context())?;
        Ok(Array::RowSparse(RowSparseNDArray::new(
            full.clone(),
            indices,
            full.shape(),
        )?))
    }
}

fn same_handles(a: &[NDArray], b: &[NDArray]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.shares_memory_with(y))
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.read();
        write!(
            f,
            "{} {} (shape={}, dtype={})",
            if self.inner.constant {
                "Constant"
            } else {
                "Parameter"
            },
            self.inner.name,
            crate::error::fmt_opt_shape(&st.shape),
            st.dtype
        )
    }
}

impl fmt::Debug for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
