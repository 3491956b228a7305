//! [`ParameterDict`]: an ordered, shareable collection of [`Parameter`]s keyed by full name
//! (spec §3), and [`ParamSpec`], the attributes asked for by [`ParameterDict::get`].

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use indexmap::IndexMap;

use super::constant::Constant;
use super::parameter::{InitOptions, Parameter};
use crate::context::{Context, ContextList};
use crate::dtype::{DType, GradReq, Scalar, StorageType};
use crate::error::{fmt_opt_shape, fmt_shape, Error, Result};
use crate::init::InitSpec;
use crate::nd::NDArray;

/// The attributes [`ParameterDict::get`] asks for; every field is optional.
///
/// For a parameter that does not exist yet, every attribute that is set is applied to the new
/// parameter (MXNet's `Parameter(name, **kwargs)`). For an existing one the rules of
/// [`ParameterDict::get`] apply.
///
/// ```
/// use mxgluon::gluon::ParamSpec;
/// use mxgluon::{init, DType, GradReq};
/// let spec = ParamSpec::new()
///     .shape([0, 3])
///     .dtype(DType::Float64)
///     .init(init::Zero)
///     .grad_req(GradReq::Add)
///     .lr_mult(0.5)
///     .allow_deferred_init(true);
/// # let _ = spec;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ParamSpec {
    shape: Option<Vec<usize>>,
    dtype: Option<DType>,
    init: Option<InitSpec>,
    grad_req: Option<GradReq>,
    lr_mult: Option<f64>,
    wd_mult: Option<f64>,
    allow_deferred_init: Option<bool>,
    differentiable: Option<bool>,
    stype: Option<StorageType>,
    grad_stype: Option<StorageType>,
}

impl ParamSpec {
    /// Asks for nothing: `get` returns the existing parameter unchanged, or creates one with
    /// [`Parameter::new`]'s defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shape; `0` marks an unknown dimension.
    pub fn shape(mut self, shape: impl AsRef<[usize]>) -> Self {
        self.shape = Some(shape.as_ref().to_vec());
        self
    }

    /// The element type.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// The parameter's own initializer (an object, a registry name or a JSON string).
    pub fn init(mut self, init: impl Into<InitSpec>) -> Self {
        self.init = Some(init.into());
        self
    }

    /// What backward does with the gradient.
    pub fn grad_req(mut self, req: GradReq) -> Self {
        self.grad_req = Some(req);
        self
    }

    /// The learning-rate multiplier.
    pub fn lr_mult(mut self, lr_mult: f64) -> Self {
        self.lr_mult = Some(lr_mult);
        self
    }

    /// The weight-decay multiplier.
    pub fn wd_mult(mut self, wd_mult: f64) -> Self {
        self.wd_mult = Some(wd_mult);
        self
    }

    /// Whether initialization may be deferred until the shape is known (new parameters only).
    pub fn allow_deferred_init(mut self, allow: bool) -> Self {
        self.allow_deferred_init = Some(allow);
        self
    }

    /// Whether the parameter takes gradients (new parameters only; `false` forces `grad_req`
    /// to `null`).
    pub fn differentiable(mut self, differentiable: bool) -> Self {
        self.differentiable = Some(differentiable);
        self
    }

    /// The storage type of the data (new parameters only).
    pub fn stype(mut self, stype: StorageType) -> Self {
        self.stype = Some(stype);
        self
    }

    /// The storage type of the gradient (new parameters only).
    pub fn grad_stype(mut self, stype: StorageType) -> Self {
        self.grad_stype = Some(stype);
        self
    }

    /// A new parameter named `name` with every attribute that is set. `differentiable` goes
    /// first so that `false` turns the requested `grad_req` into `null`, as MXNet's
    /// constructor does.
    fn build(self, name: String) -> Parameter {
        let mut p = Parameter::new(name);
        if let Some(d) = self.differentiable {
            p = p.with_differentiable(d);
        }
        if let Some(s) = self.shape {
            p = p.with_shape(s);
        }
        if let Some(d) = self.dtype {
            p = p.with_dtype(d);
        }
        if let Some(r) = self.grad_req {
            p = p.with_grad_req(r);
        }
        if let Some(m) = self.lr_mult {
            p = p.with_lr_mult(m);
        }
        if let Some(m) = self.wd_mult {
            p = p.with_wd_mult(m);
        }
        if let Some(i) = self.init {
            p = p.with_init(i);
        }
        if let Some(a) = self.allow_deferred_init {
            p = p.with_allow_deferred_init(a);
        }
        if let Some(s) = self.stype {
            p = p.with_stype(s);
        }
        if let Some(s) = self.grad_stype {
            p = p.with_grad_stype(s);
        }
        p
    }

    /// Checks the requested attributes against the existing `p` and, only when all of them
    /// agree, fills in what `p` lacks (the merged shape, an initializer where it had none).
    fn merge_into(self, p: &Parameter) -> Result<()> {
        let mismatch = |attribute: &'static str, desired: String, stored: String| {
            Error::ParameterAttributeMismatch {
                name: p.name().to_string(),
                attribute,
                desired,
                stored,
            }
        };
        let mut new_shape = None;
        if let Some(want) = &self.shape {
            match p.shape() {
                None => new_shape = Some(want.clone()),
                Some(have) => match merge_shapes(want, &have) {
                    Some(merged) if merged == have => {}
                    Some(merged) => new_shape = Some(merged),
                    None => return Err(mismatch("shape", fmt_shape(want), fmt_shape(&have))),
                },
            }
        }
        if let Some(want) = self.dtype {
            let have = p.dtype();
            if want != have {
                return Err(mismatch("dtype", want.to_string(), have.to_string()));
            }
        }
        let mut new_init = None;
        if let Some(want) = self.init {
            match p.init() {
                None => new_init = Some(want),
                Some(have) if have == want => {}
                Some(have) => {
                    return Err(mismatch("init", describe_init(&want), describe_init(&have)))
                }
            }
        }
        if let Some(want) = self.grad_req {
            let have = p.grad_req();
            if want != have {
                return Err(mismatch("grad_req", want.to_string(), have.to_string()));
            }
        }
        for (attribute, want, have) in [
            ("lr_mult", self.lr_mult, p.lr_mult()),
            ("wd_mult", self.wd_mult, p.wd_mult()),
        ] {
            if let Some(want) = want {
                // Exact comparison, as MXNet's `==` (NaN never matches).
                if want != have {
                    return Err(mismatch(
                        attribute,
                        format!("{want:?}"),
                        format!("{have:?}"),
                    ));
                }
            }
        }
        // allow_deferred_init, differentiable, stype and grad_stype are private in MXNet's
        // Parameter, so `get` does not look at them for an existing parameter.
        if let Some(s) = new_shape {
            // The merge only fills dimensions that are unknown in the stored shape, which is
            // exactly what `set_shape` accepts.
            p.set_shape(&s)?;
        }
        if let Some(i) = new_init {
            p.set_init(Some(i));
        }
        Ok(())
    }
}

/// MXNet's dim-wise shape merge in `ParameterDict.get` (desired `want`, stored `have`):
/// equal dims stay, an unknown (`0`) dim takes the other side's, two different known dims
/// are a mismatch (`None`), as is a different rank.
fn merge_shapes(want: &[usize], have: &[usize]) -> Option<Vec<usize>> {
    if want.len() != have.len() {
        return None;
    }
    want.iter()
        .zip(have)
        .map(|(&w, &h)| match (w, h) {
            _ if w == h => Some(w),
            (0, _) => Some(h),
            (_, 0) => Some(w),
            _ => None,
        })
        .collect()
}

/// An initializer as text for errors: its `dumps()` for objects, the string itself otherwise.
fn describe_init(spec: &InitSpec) -> String {
    match spec {
        InitSpec::Object(o) => o.dumps(),
        InitSpec::Str(s) => s.clone(),
    }
}

/// Whether two arrays hold the same values (MXNet: `shape ==` and numpy `(a == b).all()`):
/// integer (and bool) arrays compare exactly, anything involving a float compares as `f64`
/// (numpy's promotion; NaN never equals NaN).
fn same_values(a: &NDArray, b: &NDArray) -> bool {
    if a.shape() != b.shape() {
        return false;
    }
    if !a.dtype().is_float() && !b.dtype().is_float() {
        let ints = |x: &NDArray| -> Vec<i128> {
            crate::dispatch_dtype!(x.dtype(), T => x.read_slice::<T, _>(|s| s.iter().map(|v| Scalar::to_i128(*v)).collect()))
        };
        ints(a) == ints(b)
    } else {
        a.to_f64_vec() == b.to_f64_vec()
    }
}

struct Inner {
    prefix: String,
    shared: Option<ParameterDict>,
    params: RwLock<IndexMap<String, Parameter>>,
}

/// An ordered collection of [`Parameter`]s keyed by full name (MXNet's
/// `gluon.ParameterDict`, spec §3): what a Block holds and what `collect_params` returns.
///
/// * **A handle.** Clones are the same dict (shared state); it is `Send + Sync`.
/// * **Ordered** by first insertion, like Python's dict (re-inserting a key keeps its place).
/// * **Prefix.** [`ParameterDict::get`] and [`ParameterDict::get_constant`] take a short name
///   and prepend the dict's prefix; everything else uses full names.
/// * **Sharing.** A dict created with a *shared* dict looks names up there when it does not
///   hold them itself, and then keeps the found parameter ([`ParameterDict::get_param`]);
///   that is how Blocks share weights.
/// * Operations over all parameters ([`initialize`](ParameterDict::initialize),
///   [`zero_grad`](ParameterDict::zero_grad), [`set_grad_req`](ParameterDict::set_grad_req),
///   ...) visit them in order and stop at the first error.
///
/// ```
/// use mxgluon::gluon::{ParamSpec, ParameterDict};
/// use mxgluon::{init, Context, GradReq};
///
/// let params = ParameterDict::new("dense0_");
/// let w = params.get("weight", ParamSpec::new().shape([2, 3]).init(init::One))?;
/// let b = params.get("bias", ParamSpec::new().shape([2]).init(init::Zero))?;
/// assert_eq!(params.keys(), ["dense0_weight", "dense0_bias"]);
///
/// // Asking again gives the same parameter.
/// assert!(params.get("weight", ParamSpec::new())?.ptr_eq(&w));
///
/// // A dict sharing `params` finds its parameters.
/// let other = ParameterDict::with_shared("dense1_", Some(params.clone()));
/// assert!(other.get_param("dense0_bias").is_some_and(|p| p.ptr_eq(&b)));
///
/// // The dict's initializer is only a default: each parameter's own init wins.
/// params.initialize(init::Uniform::default(), Context::cpu(0), false)?;
/// assert_eq!(w.data(None)?.to_vec::<f32>()?, vec![1.0; 6]);
///
/// // Freeze the weights (`collect_params('.*weight').setattr('grad_req', 'null')`).
/// params.select(".*weight")?.set_grad_req(GradReq::Null)?;
/// assert_eq!((w.grad_req(), b.grad_req()), (GradReq::Null, GradReq::Write));
///
/// assert_eq!(
///     params.to_string(),
///     "dense0_ (\n  Parameter dense0_weight (shape=(2, 3), dtype=float32)\n  \
///      Parameter dense0_bias (shape=(2,), dtype=float32)\n)"
/// );
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone)]
pub struct ParameterDict {
    inner: Arc<Inner>,
}

impl Default for ParameterDict {
    /// An empty dict with no prefix and no shared dict.
    fn default() -> Self {
        ParameterDict::new("")
    }
}

impl ParameterDict {
    /// An empty dict whose [`get`](ParameterDict::get) names start with `prefix`.
    pub fn new(prefix: impl Into<String>) -> ParameterDict {
        ParameterDict::with_shared(prefix, None)
    }

    /// An empty dict that, for names it does not hold, looks in `shared` (only in `shared`'s
    /// own entries, not further down its chain, as MXNet does).
    pub fn with_shared(prefix: impl Into<String>, shared: Option<ParameterDict>) -> ParameterDict {
        ParameterDict {
            inner: Arc::new(Inner {
                prefix: prefix.into(),
                shared,
                params: RwLock::new(IndexMap::new()),
            }),
        }
    }

    // Lock order: a dict's own lock may be held while taking its *shared* dict's read lock
    // (in `lookup_locked`), never the other way round. The shared dict is fixed at
    // construction and must already exist then, so the sharing graph has no cycles and this
    // order cannot deadlock. No other method holds two dicts' locks at once, and no
    // parameter method is given a way back into a dict.

    fn read(&self) -> RwLockReadGuard<'_, IndexMap<String, Parameter>> {
        // No user code runs under the lock, and every mutation is a single map operation, so
        // a poisoned lock still guards a consistent map.
        self.inner.params.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, IndexMap<String, Parameter>> {
        self.inner.params.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The prefix prepended by [`get`](ParameterDict::get) and
    /// [`get_constant`](ParameterDict::get_constant).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The dict this one falls back to for lookups, if any.
    pub fn shared(&self) -> Option<&ParameterDict> {
        self.inner.shared.as_ref()
    }

    /// Whether two handles are the same dict.
    pub fn ptr_eq(&self, other: &ParameterDict) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The number of parameters held (not counting the shared dict's). A Rust convenience:
    /// MXNet's `ParameterDict` has no `len()`.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the dict holds no parameters (the shared dict is not consulted).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Whether the dict itself holds `full_name` (like Python's `in`: the shared dict is not
    /// consulted; [`get_param`](ParameterDict::get_param) does consult it).
    pub fn contains(&self, full_name: &str) -> bool {
        self.read().contains_key(full_name)
    }

    /// The full names, in order (a snapshot).
    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The parameters, in order (a snapshot of handles).
    pub fn values(&self) -> Vec<Parameter> {
        self.read().values().cloned().collect()
    }

    /// `(full name, parameter)` pairs, in order (a snapshot).
    pub fn items(&self) -> Vec<(String, Parameter)> {
        self.read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Iterates over a snapshot of [`items`](ParameterDict::items): changes to the dict made
    /// while iterating are not seen.
    pub fn iter(&self) -> std::vec::IntoIter<(String, Parameter)> {
        self.items().into_iter()
    }

    /// Own entry for `name`, else the shared dict's entry, which is then stored in `map` too
    /// (MXNet's `_get_impl`).
    fn lookup_locked(
        &self,
        map: &mut IndexMap<String, Parameter>,
        name: &str,
    ) -> Option<Parameter> {
        if let Some(p) = map.get(name) {
            return Some(p.clone());
        }
        let found = self.inner.shared.as_ref()?.read().get(name).cloned()?;
        map.insert(name.to_string(), found.clone());
        Some(found)
    }

    /// The parameter with this **full** name: the dict's own, else the shared dict's — which
    /// is then added to this dict, so later iteration includes it (MXNet's `_get_impl`).
    pub fn get_param(&self, full_name: &str) -> Option<Parameter> {
        if let Some(p) = self.read().get(full_name) {
            return Some(p.clone());
        }
        self.inner.shared.as_ref()?;
        self.lookup_locked(&mut self.write(), full_name)
    }

    /// Gets or creates the parameter `prefix + name` (MXNet's `ParameterDict.get`).
    ///
    /// * Not found (here or in the shared dict): a new parameter with every attribute set in
    ///   `spec` is added and returned.
    /// * Found: each attribute set in `spec` is compared with the stored one:
    ///   * `shape`: merged dim-wise, `0` being unknown on either side (stored `(0, 3)` asked
    ///     as `(4, 0)` becomes `(4, 3)`); a different rank or two different known dims is a
    ///     mismatch. A parameter without a shape takes the requested one.
    ///   * `init`: a parameter without one takes the requested one; otherwise they must be
    ///     equal (`InitSpec`'s `==`: objects of the same kind with equal kwargs, strings by
    ///     value, never an object and a string).
    ///   * `dtype`, `grad_req`, `lr_mult`, `wd_mult` must equal the stored value (a constant
    ///     or non-differentiable parameter's `grad_req` is `null`).
    ///   * `allow_deferred_init`, `differentiable`, `stype` and `grad_stype` are **ignored**
    ///     for an existing parameter, as in MXNet (where they are private attributes).
    ///
    ///   Every attribute is checked before anything is changed, so a mismatch leaves the
    ///   parameter as it was (MXNet applies the attributes one by one in keyword order). A
    ///   parameter found in the shared dict is added to this dict even if a mismatch follows,
    ///   as in MXNet.
    ///
    /// Errors: [`Error::ParameterAttributeMismatch`] naming the parameter, the attribute and
    /// both values.
    ///
    /// ```
    /// use mxgluon::gluon::{ParamSpec, ParameterDict};
    /// use mxgluon::{init, DType, Error};
    ///
    /// let d = ParameterDict::new("net_");
    /// let w = d.get("w", ParamSpec::new().shape([0, 3]).init(init::One))?;
    /// assert_eq!(w.name(), "net_w");
    ///
    /// // Unknown dims are filled in from either side.
    /// d.get("w", ParamSpec::new().shape([4, 0]))?;
    /// assert_eq!(w.shape(), Some(vec![4, 3]));
    ///
    /// // Equal initializers (same kind, same kwargs) are accepted; different ones are not.
    /// d.get("w", ParamSpec::new().init(init::One))?;
    /// let err = d.get("w", ParamSpec::new().init(init::Zero)).unwrap_err();
    /// assert!(matches!(err, Error::ParameterAttributeMismatch { attribute: "init", .. }));
    ///
    /// let err = d.get("w", ParamSpec::new().dtype(DType::Float64)).unwrap_err();
    /// assert!(matches!(err, Error::ParameterAttributeMismatch { attribute: "dtype", .. }));
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn get(&self, name: &str, spec: ParamSpec) -> Result<Parameter> {
        let full = format!("{}{}", self.prefix(), name);
        let existing = {
            let mut map = self.write();
            match self.lookup_locked(&mut map, &full) {
                Some(p) => p,
                None => {
                    let p = spec.build(full.clone());
                    map.insert(full, p.clone());
                    return Ok(p);
                }
            }
        };
        spec.merge_into(&existing)?;
        Ok(existing)
    }

    /// Gets or creates the constant `prefix + name` (MXNet's `ParameterDict.get_constant`).
    ///
    /// * Not found: with a `value`, a new [`Constant`] holding a copy of it is added and its
    ///   parameter returned; without, [`Error::ConstantNotFound`].
    /// * Found, no `value`: returned as is (even if it is not a constant, as in MXNet).
    /// * Found with a `value`: it must be a constant ([`Error::NotAConstant`]) whose value has
    ///   the same shape and equal elements ([`Error::ConstantValueMismatch`]); elements
    ///   compare by value across dtypes, like numpy's `==`.
    ///
    /// ```
    /// use mxgluon::gluon::ParameterDict;
    /// use mxgluon::{Context, NDArray};
    /// let d = ParameterDict::new("net_");
    /// let v = NDArray::from_vec(vec![1.0f32, 2.0], &[2], Context::cpu(0))?;
    /// let c = d.get_constant("c", Some(&v))?;
    /// assert!(c.is_constant() && c.name() == "net_c");
    /// assert!(d.get_constant("c", None)?.ptr_eq(&c));
    /// assert!(d.get_constant("missing", None).is_err());
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn get_constant(&self, name: &str, value: Option<&NDArray>) -> Result<Parameter> {
        let full = format!("{}{}", self.prefix(), name);
        let existing = {
            let mut map = self.write();
            match self.lookup_locked(&mut map, &full) {
                Some(p) => p,
                None => {
                    let Some(value) = value else {
                        return Err(Error::ConstantNotFound { name: full });
                    };
                    let p = Constant::new(full.clone(), value)?.into_parameter();
                    map.insert(full, p.clone());
                    return Ok(p);
                }
            }
        };
        if let Some(value) = value {
            let Some(stored) = existing.constant_value() else {
                return Err(Error::NotAConstant { name: full });
            };
            let shape_ok = existing.shape().as_deref() == Some(value.shape());
            if !shape_ok || !same_values(stored, value) {
                return Err(Error::ConstantValueMismatch {
                    name: full,
                    stored_shape: existing.shape().unwrap_or_else(|| stored.shape().to_vec()),
                    given_shape: value.shape().to_vec(),
                });
            }
        }
        Ok(existing)
    }

    /// Adds a parameter created elsewhere under its own (full) name. Adding the same
    /// parameter again is a no-op (it keeps its place).
    ///
    /// Errors: [`Error::DuplicateParameter`] when a *different* parameter already has that
    /// name (nothing is changed).
    pub fn insert(&self, param: Parameter) -> Result<()> {
        let mut map = self.write();
        if let Some(q) = map.get(param.name()) {
            if q.ptr_eq(&param) {
                return Ok(());
            }
            return Err(Error::DuplicateParameter {
                name: param.name().to_string(),
            });
        }
        map.insert(param.name().to_string(), param);
        Ok(())
    }

    /// Adds every entry of `other`, in `other`'s order (MXNet's `update`). Entries that are
    /// already here with the same parameter keep their place.
    ///
    /// Errors: [`Error::DuplicateParameter`] when `other` holds a different parameter under a
    /// name this dict already has; everything is checked first, so nothing is added then.
    pub fn update(&self, other: &ParameterDict) -> Result<()> {
        if self.ptr_eq(other) {
            return Ok(());
        }
        // Snapshot first: never hold two dicts' locks here.
        let theirs = other.items();
        let mut map = self.write();
        if let Some((k, _)) = theirs
            .iter()
            .find(|(k, p)| map.get(k).is_some_and(|q| !q.ptr_eq(p)))
        {
            return Err(Error::DuplicateParameter { name: k.clone() });
        }
        map.extend(theirs);
        Ok(())
    }

    /// Initializes every parameter on `ctx` with `init` as the **default** initializer: a
    /// parameter's own `init` wins (MXNet passes the dict's `init` as each parameter's
    /// `default_init`). Already initialized parameters are left alone with a warning unless
    /// `force_reinit`. MXNet's default here is `init::Uniform::default()` (U(-0.07, 0.07)),
    /// which [`initialize_with`](ParameterDict::initialize_with) uses when no default is
    /// given.
    ///
    /// Stops at the first parameter that fails (earlier ones stay initialized).
    pub fn initialize(
        &self,
        init: impl Into<InitSpec>,
        ctx: impl Into<ContextList>,
        force_reinit: bool,
    ) -> Result<()> {
        self.initialize_with(
            InitOptions::new()
                .default_init(init)
                .ctx(ctx)
                .force_reinit(force_reinit),
        )
    }

    /// Runs [`Parameter::initialize_with`] with `opts` on every parameter, in order; stops at
    /// the first error. `InitOptions::new().ctx(ctx)` is MXNet's `initialize(ctx=ctx)` (default
    /// `Uniform(0.07)`); `default_init` is the dict-level initializer. Setting `init` overrides
    /// every parameter's own initializer, which MXNet's `ParameterDict` cannot do.
    ///
    /// ```
    /// use mxgluon::gluon::{InitOptions, ParamSpec, ParameterDict};
    /// use mxgluon::gluon::ParamState;
    /// use mxgluon::Context;
    /// let d = ParameterDict::new("");
    /// let w = d.get("w", ParamSpec::new().shape([0, 3]).allow_deferred_init(true))?;
    /// d.initialize_with(InitOptions::new().ctx(Context::cpu(0)))?;
    /// assert_eq!(w.state(), ParamState::Deferred);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn initialize_with(&self, opts: InitOptions) -> Result<()> {
        for p in self.values() {
            p.initialize_with(opts.clone())?;
        }
        Ok(())
    }

    /// Sets every gradient of every parameter to zero in place; parameters without gradients
    /// are skipped.
    pub fn zero_grad(&self) -> Result<()> {
        for p in self.values() {
            p.zero_grad()?;
        }
        Ok(())
    }

    /// [`Parameter::reset_ctx`] on every parameter.
    pub fn reset_ctx(&self, ctx: impl Into<ContextList>) -> Result<()> {
        let ctx = ctx.into();
        for p in self.values() {
            p.reset_ctx(ctx.clone())?;
        }
        Ok(())
    }

    /// Every context any parameter lives on (pending contexts for deferred ones), each once,
    /// in order of first appearance (MXNet returns a set, in no particular order).
    ///
    /// Errors: those of [`Parameter::list_ctx`] ([`Error::ParameterNotInitialized`] for a
    /// parameter that was never initialized).
    pub fn list_ctx(&self) -> Result<Vec<Context>> {
        let mut out: Vec<Context> = Vec::new();
        for p in self.values() {
            for c in p.list_ctx()? {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// [`Parameter::cast`] on every parameter.
    pub fn cast(&self, dtype: DType) -> Result<()> {
        for p in self.values() {
            p.cast(dtype)?;
        }
        Ok(())
    }

    /// Sets `grad_req` on every parameter (MXNet's `setattr('grad_req', ...)`; see
    /// [`Parameter::set_grad_req`]: `null` frees the gradients, constants and
    /// non-differentiable parameters stay `null`).
    pub fn set_grad_req(&self, req: GradReq) -> Result<()> {
        for p in self.values() {
            p.set_grad_req(req)?;
        }
        Ok(())
    }

    /// Sets the learning-rate multiplier of every parameter.
    pub fn set_lr_mult(&self, lr_mult: f64) {
        for p in self.values() {
            p.set_lr_mult(lr_mult);
        }
    }

    /// Sets the weight-decay multiplier of every parameter.
    pub fn set_wd_mult(&self, wd_mult: f64) {
        for p in self.values() {
            p.set_wd_mult(wd_mult);
        }
    }

    /// A new dict with the same prefix (and no shared dict) holding, in order, the parameters
    /// whose **full name** matches `pattern` at its **start** (Python's `re.match`, as in
    /// `Block.collect_params(select)`): `"weight"` selects nothing from `net_dense0_weight`,
    /// `".*weight"` selects every name containing `weight`, `"a_w|b_b"` selects names
    /// starting with either. The syntax is the `regex` crate's (Python's without look-around
    /// and backreferences).
    ///
    /// Errors: [`Error::InvalidRegex`].
    ///
    /// ```
    /// use mxgluon::gluon::{ParamSpec, ParameterDict};
    /// let d = ParameterDict::new("net_");
    /// for n in ["dense0_weight", "dense0_bias", "dense1_weight"] {
    ///     d.get(n, ParamSpec::new())?;
    /// }
    /// assert_eq!(d.select(".*weight")?.keys(), ["net_dense0_weight", "net_dense1_weight"]);
    /// assert!(d.select("weight")?.is_empty());
    /// assert_eq!(d.select("net_dense1|.*bias")?.len(), 2);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn select(&self, pattern: &str) -> Result<ParameterDict> {
        let invalid = |e: regex::Error| Error::InvalidRegex {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        };
        // Compile the pattern alone first: wrapping an unbalanced pattern such as `a)|(b`
        // could otherwise yield a valid but different regex.
        regex::Regex::new(pattern).map_err(invalid)?;
        // `^(?:…)` anchors every alternative; a bare `^` would anchor only the first.
        let re = regex::Regex::new(&format!("^(?:{pattern})")).map_err(invalid)?;
        let out = ParameterDict::new(self.prefix());
        {
            let mut map = out.write();
            map.extend(self.items().into_iter().filter(|(k, _)| re.is_match(k)));
        }
        Ok(out)
    }
}

impl IntoIterator for &ParameterDict {
    type Item = (String, Parameter);
    type IntoIter = std::vec::IntoIter<(String, Parameter)>;

    /// Iterates over a snapshot of the items.
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for ParameterDict {
    /// MXNet's `__repr__`: `"{prefix} (\n  {param}\n  {param}\n)"`; without a prefix the
    /// first line is just `(`; an empty dict prints an empty line between the parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = self.values();
        if !self.prefix().is_empty() {
            write!(f, "{} ", self.prefix())?;
        }
        f.write_str("(\n")?;
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {p}")?;
        }
        f.write_str("\n)")
    }
}

impl fmt::Debug for ParameterDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ParameterDict");
        s.field("prefix", &self.prefix());
        s.field("shared", &self.shared().map(|d| d.prefix().to_string()));
        s.field(
            "params",
            &self
                .values()
                .iter()
                .map(|p| format!("{} {}", p.name(), fmt_opt_shape(&p.shape())))
                .collect::<Vec<_>>(),
        );
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init;

    #[test]
    fn shapes_merge_dim_wise() {
        assert_eq!(merge_shapes(&[4, 0], &[0, 3]), Some(vec![4, 3]));
        assert_eq!(merge_shapes(&[0, 0], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(merge_shapes(&[2, 3], &[0, 0]), Some(vec![2, 3]));
        assert_eq!(merge_shapes(&[0, 3], &[0, 3]), Some(vec![0, 3]));
        assert_eq!(merge_shapes(&[], &[]), Some(vec![]));
        assert_eq!(merge_shapes(&[5, 3], &[4, 3]), None);
        assert_eq!(merge_shapes(&[4, 3, 1], &[4, 3]), None);
        assert_eq!(merge_shapes(&[4], &[]), None);
    }

    #[test]
    fn init_descriptions_for_errors() {
        assert_eq!(describe_init(&InitSpec::from(init::One)), r#"["one", {}]"#);
        assert_eq!(describe_init(&InitSpec::from("xavier")), "xavier");
    }

    #[test]
    fn values_compare_across_dtypes() {
        let c = Context::cpu(0);
        let a = NDArray::from_vec(vec![1.0f32, 2.0], &[2], c).unwrap();
        let b = NDArray::from_vec(vec![1.0f64, 2.0], &[2], c).unwrap();
        let i = NDArray::from_vec(vec![1i32, 2], &[2], c).unwrap();
        let j = NDArray::from_vec(vec![1i64, 2], &[2], c).unwrap();
        let big = NDArray::from_vec(vec![1i64 << 60, 2], &[2], c).unwrap();
        let big1 = NDArray::from_vec(vec![(1i64 << 60) + 1, 2], &[2], c).unwrap();
        let nan = NDArray::from_vec(vec![f32::NAN, 2.0], &[2], c).unwrap();
        assert!(same_values(&a, &b));
        assert!(same_values(&a, &i));
        assert!(same_values(&i, &j));
        assert!(!same_values(&big, &big1), "integers compare exactly");
        assert!(!same_values(&nan, &nan), "NaN never equals NaN");
        let col = NDArray::from_vec(vec![1.0f32, 2.0], &[2, 1], c).unwrap();
        assert!(!same_values(&a, &col), "shapes must match");
    }

    #[test]
    fn lookup_copies_from_shared_only_one_level() {
        let a = ParameterDict::new("a_");
        let w = a.get("w", ParamSpec::new()).unwrap();
        let b = ParameterDict::with_shared("b_", Some(a.clone()));
        let c = ParameterDict::with_shared("c_", Some(b.clone()));
        assert!(
            c.get_param("a_w").is_none(),
            "not looked up two levels down"
        );
        assert!(!b.contains("a_w"));
        assert!(b.get_param("a_w").unwrap().ptr_eq(&w));
        assert!(b.contains("a_w"));
        assert!(c.get_param("a_w").unwrap().ptr_eq(&w));
    }

    #[test]
    fn dict_is_send_sync_and_clones_share() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ParameterDict>();
        let d = ParameterDict::new("x_");
        let e = d.clone();
        e.get("w", ParamSpec::new()).unwrap();
        assert_eq!(d.keys(), ["x_w"]);
        assert!(d.ptr_eq(&e));
        assert!(!d.ptr_eq(&ParameterDict::new("x_")));
    }

    #[test]
    fn unbalanced_pattern_is_rejected() {
        let d = ParameterDict::new("");
        d.get("a", ParamSpec::new()).unwrap();
        for bad in ["a)|(b", "(", "[a"] {
            assert!(
                matches!(d.select(bad), Err(Error::InvalidRegex { .. })),
                "{bad}"
            );
        }
    }
}
