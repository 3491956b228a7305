//! The `Block` trait and its state (`BlockBase`), naming scopes, and model printing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};

use super::parameter_dict::{ParamSpec, ParameterDict};
use super::{InitOptions, ParamState, Parameter};
use crate::context::ContextList;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::init::InitSpec;
use crate::nd::NDArray;

/// The state every block holds: its prefix, its [`ParameterDict`], the parameters and children
/// registered on it, and the counters that name children created in its scope.
pub struct BlockBase {
    class: &'static str,
    prefix: String,
    params: ParameterDict,
    children: RwLock<Vec<(String, Arc<dyn Block>)>>,
    reg_params: RwLock<Vec<(String, Parameter)>>,
    scope: Arc<ScopeState>,
    /// Serializes deferred-initialization completion when several threads (contexts) run the
    /// first forward pass at once.
    deferred_lock: Mutex<()>,
}

/// What a name scope needs of its block.
struct ScopeState {
    prefix: String,
    params: ParameterDict,
    counter: Mutex<HashMap<String, usize>>,
}

thread_local! {
    /// The name scopes entered on this thread, innermost last.
    static SCOPES: RefCell<Vec<Arc<ScopeState>>> = const { RefCell::new(Vec::new()) };
    /// Per-hint counters of blocks created outside any scope on this thread.
    static GLOBAL_COUNTER: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// Keeps a block's name scope open; children created meanwhile are named inside it. Dropping it
/// closes the scope. Must be dropped on the thread that created it.
#[must_use = "the scope closes when the guard is dropped; bind it with `let _scope = ...`"]
pub struct NameScope {
    _not_send: PhantomData<*const ()>,
}

impl Drop for NameScope {
    fn drop(&mut self) {
        SCOPES.with(|s| {
            s.borrow_mut().pop();
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

impl BlockBase {
    /// Creates the base of a block of class `class` (e.g. `"Dense"`; its lower-cased form is the
    /// naming hint), with an explicit `prefix` or an automatic one, and sharing the parameters of
    /// `params` when given (Gluon's `Block(prefix, params)`, spec §4.1).
    pub fn new(class: &'static str, prefix: Option<&str>, params: Option<&ParameterDict>) -> Self {
        BlockBase::with_alias(class, &class.to_lowercase(), prefix, params)
    }

    /// [`BlockBase::new`] with an explicit naming hint `alias` instead of the lower-cased class
    /// name (Gluon's `_alias()`: an `nn.Activation("relu")` is named `relu0_`, not
    /// `activation0_`).
    ///
    /// ```
    /// use mxgluon::gluon::BlockBase;
    /// let base = BlockBase::with_alias("Activation", "tanh", None, None);
    /// assert_eq!(base.prefix(), "tanh0_");
    /// assert_eq!(base.class(), "Activation");
    /// ```
    pub fn with_alias(
        class: &'static str,
        alias: &str,
        prefix: Option<&str>,
        params: Option<&ParameterDict>,
    ) -> Self {
        let hint = alias.to_string();
        let current = SCOPES.with(|s| s.borrow().last().cloned());
        let (prefix, dict) = match current {
            None => {
                let prefix = match prefix {
                    Some(p) => p.to_string(),
                    None => GLOBAL_COUNTER.with(|c| {
                        let mut c = c.borrow_mut();
                        let n = c.entry(hint.clone()).or_insert(0);
                        let p = format!("{hint}{n}_");
                        *n += 1;
                        p
                    }),
                };
                let dict = match params {
                    None => ParameterDict::new(prefix.clone()),
                    Some(shared) => ParameterDict::with_shared(
                        shared.prefix().to_string(),
                        Some(shared.clone()),
                    ),
                };
                (prefix, dict)
            }
            Some(parent) => {
                let local = match prefix {
                    Some(p) => p.to_string(),
                    None => {
                        let mut c = lock(&parent.counter);
                        let n = c.entry(hint.clone()).or_insert(0);
                        let p = format!("{hint}{n}_");
                        *n += 1;
                        p
                    }
                };
                let dict = match params {
                    None => ParameterDict::with_shared(
                        format!("{}{}", parent.params.prefix(), local),
                        parent.params.shared().cloned(),
                    ),
                    Some(shared) => ParameterDict::with_shared(
                        shared.prefix().to_string(),
                        Some(shared.clone()),
                    ),
                };
                (format!("{}{}", parent.prefix, local), dict)
            }
        };
        BlockBase {
            class,
            scope: Arc::new(ScopeState {
                prefix: prefix.clone(),
                params: dict.clone(),
                counter: Mutex::new(HashMap::new()),
            }),
            prefix,
            params: dict,
            children: RwLock::new(Vec::new()),
            reg_params: RwLock::new(Vec::new()),
            deferred_lock: Mutex::new(()),
        }
    }

    /// The block's prefix (`dense0_`), as [`Block::prefix`] returns it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The block's class name (`"Dense"`).
    pub fn class(&self) -> &'static str {
        self.class
    }

    /// Opens this block's name scope until the guard is dropped (Gluon's
    /// `with block.name_scope():`).
    pub fn name_scope(&self) -> NameScope {
        SCOPES.with(|s| s.borrow_mut().push(self.scope.clone()));
        NameScope {
            _not_send: PhantomData,
        }
    }

    /// Gets or creates the parameter `<dict prefix><name>` in this block's dictionary and
    /// registers it under the attribute name `name` (Gluon's `self.w = self.params.get(...)`).
    pub fn get_param(&self, name: &str, spec: ParamSpec) -> Result<Parameter> {
        let p = self.params.get(name, spec)?;
        self.register_param(name, p.clone())?;
        Ok(p)
    }

    /// Registers `param` under the attribute name `attr` (saved by structural-name saves). An
    /// attribute name can be registered once (spec §4.2).
    pub fn register_param(&self, attr: &str, param: Parameter) -> Result<()> {
        let mut reg = write(&self.reg_params);
        if reg.iter().any(|(a, _)| a == attr) {
            return Err(Error::invalid_arg(
                "register_param",
                format!(
                    "block '{}' already has a parameter attribute '{attr}'; share parameters by \
                     building the block with another block's ParameterDict instead",
                    self.prefix
                ),
            ));
        }
        reg.push((attr.to_string(), param));
        Ok(())
    }

    /// Registers a child block under `name` (or its index among the children when `None`,
    /// as `Sequential::add` does).
    pub fn register_child(&self, name: Option<&str>, block: Arc<dyn Block>) {
        let mut ch = write(&self.children);
        let name = match name {
            Some(n) => n.to_string(),
            None => ch.len().to_string(),
        };
        ch.push((name, block));
    }

    /// The registered children, in registration order.
    pub fn children(&self) -> Vec<(String, Arc<dyn Block>)> {
        read(&self.children).clone()
    }

    /// The registered parameters, keyed by attribute name, in registration order.
    pub fn reg_params(&self) -> Vec<(String, Parameter)> {
        read(&self.reg_params).clone()
    }

    /// The data of `param` on `ctx`, completing this block's deferred initialization first
    /// when needed (see [`BlockBase::finish_deferred`]; `infer` sets the unknown shapes).
    pub fn param_data(
        &self,
        param: &Parameter,
        ctx: crate::Context,
        infer: impl FnOnce() -> Result<()>,
    ) -> Result<NDArray> {
        match param.data(ctx) {
            Ok(d) => Ok(d),
            Err(Error::DeferredInitialization { .. }) => {
                self.finish_deferred(infer)?;
                param.data(ctx)
            }
            Err(Error::ParameterNotInitialized { .. }) => {
                // Another thread may be completing the deferred initialization right now:
                // wait for it, then look again.
                drop(lock(&self.deferred_lock));
                param.data(ctx)
            }
            Err(e) => Err(e),
        }
    }

    /// Completes the deferred initialization of this block's parameters on the first forward
    /// pass (spec §4.6). `infer` sets the unknown shapes from the input; on failure the
    /// parameters stay deferred and the error says which block could not infer its shapes.
    /// Concurrent first passes on several threads complete it once.
    pub fn finish_deferred(&self, infer: impl FnOnce() -> Result<()>) -> Result<()> {
        let _g = lock(&self.deferred_lock);
        let params = self.params.values();
        if !params.iter().any(|p| p.state() == ParamState::Deferred) {
            return Ok(());
        }
        infer().map_err(|e| Error::ShapeInferenceFailed {
            block: self.prefix.clone(),
            reason: e.to_string(),
        })?;
        for p in &params {
            p.finish_deferred_init()?;
        }
        Ok(())
    }
}

/// [`Block`]: the building unit of models — a name prefix, a [`ParameterDict`], registered
/// parameters and child blocks, and a `forward` computation (spec §4).
///
/// Naming follows Gluon. A block created outside any name scope gets the prefix
/// `<hint><n>_`, where `<hint>` is its lower-cased class name and `n` counts blocks of that
/// hint created **on this thread** (`dense0_`, `dense1_`, ...). A block created while a
/// parent's [`BlockBase::name_scope`] guard is alive gets `<parent prefix><hint><k>_` with a
/// counter private to that parent, and its parameters are named after that prefix
/// (`sequential0_dense0_weight`).
///
/// ```
/// use mxgluon::gluon::nn::{Dense, Sequential};
/// use mxgluon::gluon::Block;
/// let net = Sequential::new();
/// {
///     let _scope = net.name_scope();
///     net.add(Dense::builder(16).in_units(8).build()?);
///     net.add(Dense::builder(4).build()?);
/// }
/// let names: Vec<String> = net.collect_params()?.keys();
/// assert_eq!(names, ["sequential0_dense0_weight", "sequential0_dense0_bias",
///                    "sequential0_dense1_weight", "sequential0_dense1_bias"]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
///
/// Implementors hold a [`BlockBase`] (returned by [`Block::base`]) and compute
/// [`Block::forward`]; everything else — collecting, initializing, casting and moving
/// parameters — is provided.
pub trait Block: Send + Sync {
    /// The block's naming, parameters and children.
    fn base(&self) -> &BlockBase;

    /// The computation: one input array to one output array.
    fn forward(&self, x: &NDArray) -> Result<NDArray>;

    /// A one-line description used by `Display` (e.g. `Dense(784 -> 128, Activation(relu))`);
    /// defaults to the class name.
    fn describe(&self) -> String {
        self.base().class().to_string()
    }

    /// The block's prefix (`dense0_`).
    fn prefix(&self) -> &str {
        &self.base().prefix
    }

    /// The prefix without its trailing underscore (`dense0`).
    fn name(&self) -> &str {
        self.prefix().strip_suffix('_').unwrap_or(self.prefix())
    }

    /// The block's own parameter dictionary (not its children's: see
    /// [`Block::collect_params`]).
    fn params(&self) -> &ParameterDict {
        &self.base().params
    }

    /// Opens the block's name scope; see [`BlockBase::name_scope`].
    fn name_scope(&self) -> NameScope {
        self.base().name_scope()
    }

    /// Every parameter of this block and its descendants, in a dictionary with this block's
    /// dictionary prefix (spec §4.3).
    ///
    /// Two different parameters with the same name in the tree are an error (build blocks
    /// that share parameters from one `ParameterDict` instead).
    fn collect_params(&self) -> Result<ParameterDict> {
        let ret = ParameterDict::new(self.params().prefix().to_string());
        collect_into(self.base(), &ret, None)?;
        Ok(ret)
    }

    /// The parameters whose full name matches `select`, a regular expression anchored at the
    /// start of the name (Python's `re.match`: `".*weight"` selects every weight, `"weight"`
    /// selects nothing from `dense0_weight`). An invalid expression is an error.
    fn collect_params_select(&self, select: &str) -> Result<ParameterDict> {
        let ret = ParameterDict::new(self.params().prefix().to_string());
        collect_into(self.base(), &ret, Some(select))?;
        Ok(ret)
    }

    /// The registered parameters of this block and its descendants keyed by structural name
    /// (`dense0.weight`, `body.1.bias`), as used by `save_parameters` (spec §4.3).
    fn collect_params_with_prefix(&self, prefix: &str) -> Vec<(String, Parameter)> {
        let mut out = Vec::new();
        structural(self.base(), prefix, &mut out);
        out
    }

    /// Initializes every collected parameter (spec §4.6): `init` is the default initializer
    /// (each parameter's own initializer wins); `ctx` defaults to the current context.
    fn initialize(&self, init: Option<InitSpec>, ctx: impl Into<ContextList>) -> Result<()>
    where
        Self: Sized,
    {
        let mut opts = InitOptions::new().ctx(ctx);
        if let Some(i) = init {
            opts = opts.default_init(i);
        }
        self.initialize_with(opts)
    }

    /// [`Block::initialize`] with every option of [`InitOptions`] (its `init` is used as the
    /// default initializer; `force_reinit` re-initializes).
    fn initialize_with(&self, opts: InitOptions) -> Result<()> {
        self.collect_params()?.initialize_with(opts)
    }

    /// Sets every collected gradient to zero.
    fn zero_grad(&self) -> Result<()> {
        self.collect_params()?.zero_grad()
    }

    /// Converts every parameter to `dtype` (children first, spec §4.6).
    fn cast(&self, dtype: DType) -> Result<()> {
        for (_, c) in self.base().children() {
            c.cast(dtype)?;
        }
        for p in self.params().values() {
            p.cast(dtype)?;
        }
        Ok(())
    }

    /// Moves every collected parameter to `ctx` (spec §1.17).
    fn reset_ctx(&self, ctx: ContextList) -> Result<()> {
        self.collect_params()?.reset_ctx(ctx)
    }

    /// Saves every registered parameter under its structural name (`0.weight`,
    /// `body.1.bias`; MXNet's `save_parameters`, spec §4.4), averaging per-context copies.
    /// With `deduplicate`, a parameter shared under several names is saved once, under the last
    /// one. The file is written atomically in MXNet's `.params` format.
    fn save_parameters(&self, path: impl AsRef<std::path::Path>, deduplicate: bool) -> Result<()>
    where
        Self: Sized,
    {
        super::serialize::save_block(self.as_dyn(), path.as_ref(), deduplicate)
    }

    /// Loads a file saved by [`Block::save_parameters`] (or by MXNet; spec §4.5). A file whose
    /// names hold no `.` is a legacy full-name file and is matched against
    /// `prefix + name`. Uninitialized and deferred parameters are initialized from the file
    /// (unknown dimensions are taken from it). Any mismatch is an
    /// [`Error::ParameterLoadMismatch`] and nothing is loaded.
    fn load_parameters(
        &self,
        path: impl AsRef<std::path::Path>,
        opts: &super::LoadParams,
    ) -> Result<()>
    where
        Self: Sized,
    {
        super::serialize::load_block(self.as_dyn(), path.as_ref(), opts)
    }

    /// Calls `f` on every descendant (children first, post-order) and then on this block.
    fn apply(&self, f: &mut dyn FnMut(&dyn Block)) {
        for (_, c) in self.base().children() {
            c.apply(f);
        }
        f(self.as_dyn());
    }

    /// This block as a trait object.
    fn as_dyn(&self) -> &dyn Block;

    /// The block's computation as a symbolic graph applied to `x` (Gluon's
    /// `hybrid_forward` with `F = mx.sym`): operator nodes named like Gluon's
    /// (`<prefix>fwd`) reading the parameters' [`Parameter::var`] variables. What
    /// [`Block::export`] writes.
    ///
    /// The default is an error naming the block's class: a block that cannot be expressed as
    /// a graph (or that mxgluon cannot express yet) does not export.
    fn hybrid_symbol(&self, x: &crate::symbol::Symbol) -> Result<crate::symbol::Symbol> {
        let _ = x;
        Err(Error::UnsupportedOperator {
            op: format!(
                "{} (the block cannot be expressed as a symbolic graph)",
                self.base().class()
            ),
            node: self.prefix().to_string(),
        })
    }

    /// Writes the block as MXNet's `HybridBlock.export` does: the graph of
    /// [`Block::hybrid_symbol`] on a variable `data` to `<path>-symbol.json`, and every
    /// collected parameter's value (the mean over its contexts) to `<path>-<epoch as
    /// %04d>.params` under `arg:<full name>` or, for the auxiliary states (BatchNorm's
    /// running statistics), `aux:<full name>`. MXNet loads the pair with
    /// `SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params")`.
    ///
    /// ```
    /// use mxgluon::gluon::{nn::{Dense, Sequential}, Block, SymbolBlock};
    /// use mxgluon::{init, nd, Context};
    /// let net = Sequential::new();
    /// net.add(Dense::builder(3).in_units(2).build()?);
    /// net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))?;
    /// let dir = std::env::temp_dir().join(format!("mxgluon-export-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("net");
    /// net.export(&path, 0)?;
    /// let back = SymbolBlock::imports(dir.join("net-symbol.json"), &["data"],
    ///                                 Some(dir.join("net-0000.params")), Context::cpu(0))?;
    /// let x = nd::ones(&[1, 2], None)?;
    /// assert_eq!(back.forward(&x)?.to_vec::<f32>()?, net.forward(&x)?.to_vec::<f32>()?);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn export(&self, path: impl AsRef<std::path::Path>, epoch: u32) -> Result<()>
    where
        Self: Sized,
    {
        super::symbol_block::export_block(self.as_dyn(), path.as_ref(), epoch)
    }
}

fn collect_into(base: &BlockBase, ret: &ParameterDict, select: Option<&str>) -> Result<()> {
    match select {
        None => ret.update(&base.params)?,
        Some(s) => ret.update(&base.params.select(s)?)?,
    }
    for (_, c) in base.children() {
        collect_into(c.base(), ret, select)?;
    }
    Ok(())
}

fn structural(base: &BlockBase, prefix: &str, out: &mut Vec<(String, Parameter)>) {
    let dot = if prefix.is_empty() { "" } else { "." };
    for (attr, p) in base.reg_params() {
        out.push((format!("{prefix}{dot}{attr}"), p));
    }
    for (name, c) in base.children() {
        structural(c.base(), &format!("{prefix}{dot}{name}"), out);
    }
}

/// Writes a block the way Gluon prints models: the description, then each child indented.
pub fn fmt_block(block: &dyn Block, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fn go(block: &dyn Block, indent: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let children = block.base().children();
        if children.is_empty() {
            return write!(f, "{}", block.describe());
        }
        writeln!(f, "{}(", block.base().class())?;
        for (name, c) in &children {
            write!(f, "{:w$}({name}): ", "", w = indent + 2)?;
            go(c.as_dyn(), indent + 2, f)?;
            writeln!(f)?;
        }
        write!(f, "{:w$})", "", w = indent)
    }
    go(block, 0, f)
}
