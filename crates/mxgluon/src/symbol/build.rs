//! Typed constructors for the operators of the model zoo's image classifiers and MLPs.
//!
//! Each builder records only the attributes set on it (plus the required ones), spelled as
//! Python's `str()` spells them (`"True"`, `"(3, 3)"`, `"1e-05"`), so a symbol built here
//! serializes exactly like the same `mx.sym.<Op>(...)` call in MXNet. Inputs not given
//! (weights, biases, BatchNorm's statistics) become variables `<name>_<input>`.

use super::attr::{py_bool, py_float, py_tuple};
use super::compose::apply;
use super::ops::{
    BinaryOp, Layout, LeakyActType, PoolType, PoolingConvention, SoftmaxNormalization,
};
use super::Symbol;
use crate::dtype::DType;
use crate::error::Result;
use crate::nd::ActType;

/// What every builder carries: the node name, extra attributes and given inputs.
#[derive(Clone, Debug, Default)]
struct Common {
    name: Option<String>,
    attrs: Vec<(String, String)>,
    inputs: Vec<(&'static str, Symbol)>,
}

impl Common {
    fn set(&mut self, key: &str, value: String) {
        self.attrs.retain(|(k, _)| k != key);
        self.attrs.push((key.to_string(), value));
    }

    fn input(&mut self, key: &'static str, s: &Symbol) {
        self.inputs.retain(|(k, _)| *k != key);
        self.inputs.push((key, s.clone()));
    }

    fn build(&self, op: &str, data: &[(&'static str, &Symbol)]) -> Result<Symbol> {
        let attrs: Vec<(&str, &str)> = self
            .attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut named: Vec<(&str, &Symbol)> = data.to_vec();
        named.extend(self.inputs.iter().map(|(k, s)| (*k, s)));
        apply(op, &[], &named, &attrs, self.name.as_deref())
    }
}

macro_rules! common_methods {
    () => {
        /// The node name (default: the thread's [`NameManager`](super::NameManager)).
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.c.name = Some(name.into());
            self
        }

        /// Any other attribute, e.g. a hidden `__lr_mult__` or `__ctx_group__`.
        pub fn attr(mut self, key: &str, value: impl Into<String>) -> Self {
            self.c.set(key, value.into());
            self
        }
    };
}

macro_rules! setter {
    ($(#[$m:meta])* $fn:ident, bool, $key:literal) => {
        $(#[$m])*
        pub fn $fn(mut self, v: bool) -> Self {
            self.c.set($key, py_bool(v).to_string());
            self
        }
    };
    ($(#[$m:meta])* $fn:ident, f64, $key:literal) => {
        $(#[$m])*
        pub fn $fn(mut self, v: f64) -> Self {
            self.c.set($key, py_float(v));
            self
        }
    };
    ($(#[$m:meta])* $fn:ident, int, $t:ty, $key:literal) => {
        $(#[$m])*
        pub fn $fn(mut self, v: $t) -> Self {
            self.c.set($key, v.to_string());
            self
        }
    };
    ($(#[$m:meta])* $fn:ident, tuple, $key:literal) => {
        $(#[$m])*
        pub fn $fn(mut self, v: impl AsRef<[usize]>) -> Self {
            self.c.set($key, py_tuple(v.as_ref()));
            self
        }
    };
    ($(#[$m:meta])* $fn:ident, input, $key:literal) => {
        $(#[$m])*
        pub fn $fn(mut self, v: &Symbol) -> Self {
            self.c.input($key, v);
            self
        }
    };
}

/// `FullyConnected`: `data · weightᵀ + bias`, weight `(num_hidden, in)`.
///
/// ```
/// use mxgluon::symbol::{FullyConnected, Symbol};
/// let fc = FullyConnected::new(10).no_bias(true).name("fc").build(&Symbol::var("x"))?;
/// assert_eq!(fc.list_arguments(), ["x", "fc_weight"]);
/// assert_eq!(fc.list_attr()["no_bias"], "True");
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FullyConnected {
    c: Common,
}

impl FullyConnected {
    /// `num_hidden` output features.
    pub fn new(num_hidden: usize) -> Self {
        let mut c = Common::default();
        c.set("num_hidden", num_hidden.to_string());
        FullyConnected { c }
    }
    common_methods!();
    setter!(
        /// No bias input.
        no_bias, bool, "no_bias");
    setter!(
        /// Whether to collapse all but the first axis (MXNet's default true).
        flatten, bool, "flatten");
    setter!(
        /// The weight variable (default: a new `<name>_weight`).
        weight, input, "weight");
    setter!(
        /// The bias variable (default: a new `<name>_bias`).
        bias, input, "bias");

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("FullyConnected", &[("data", data)])
    }
}

/// `Convolution` over 1 to 3 spatial dimensions.
///
/// ```
/// use mxgluon::symbol::{Convolution, Symbol};
/// let c = Convolution::new([3, 3], 16).stride([2, 2]).pad([1, 1]).no_bias(true).name("conv")
///     .build(&Symbol::var("x"))?;
/// assert_eq!(c.list_attr()["kernel"], "(3, 3)");
/// assert_eq!(c.list_arguments(), ["x", "conv_weight"]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Convolution {
    c: Common,
}

impl Convolution {
    /// A `kernel`-sized convolution with `num_filter` output channels.
    pub fn new(kernel: impl AsRef<[usize]>, num_filter: usize) -> Self {
        let mut c = Common::default();
        c.set("kernel", py_tuple(kernel.as_ref()));
        c.set("num_filter", num_filter.to_string());
        Convolution { c }
    }
    common_methods!();
    setter!(
        /// Stride per spatial dimension (default 1).
        stride, tuple, "stride");
    setter!(
        /// Dilation per spatial dimension (default 1).
        dilate, tuple, "dilate");
    setter!(
        /// Zero padding per spatial dimension (default 0).
        pad, tuple, "pad");
    setter!(
        /// Channel groups (default 1; depthwise when equal to the channels).
        num_group, int, usize, "num_group");
    setter!(
        /// Workspace limit in MB.
        workspace, int, u64, "workspace");
    setter!(
        /// No bias input.
        no_bias, bool, "no_bias");
    setter!(
        /// The weight variable.
        weight, input, "weight");
    setter!(
        /// The bias variable.
        bias, input, "bias");

    /// The data layout (default channel-first).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.c.set("layout", layout.name().to_string());
        self
    }

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("Convolution", &[("data", data)])
    }
}

/// `BatchNorm`; `moving_mean` / `moving_var` are auxiliary states (new variables get
/// MXNet's `__init__` `["zero", {}]` / `["one", {}]`).
///
/// ```
/// use mxgluon::symbol::{BatchNorm, Symbol};
/// let bn = BatchNorm::new().fix_gamma(false).name("bn").build(&Symbol::var("x"))?;
/// assert_eq!(bn.list_arguments(), ["x", "bn_gamma", "bn_beta"]);
/// assert_eq!(bn.list_auxiliary_states(), ["bn_moving_mean", "bn_moving_var"]);
/// assert_eq!(bn.list_outputs(), ["bn_output"]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct BatchNorm {
    c: Common,
}

impl BatchNorm {
    /// MXNet's defaults (eps 1e-3, momentum 0.9, fix_gamma true, axis 1).
    pub fn new() -> Self {
        Self::default()
    }
    common_methods!();
    setter!(
        /// Added to the variance.
        eps, f64, "eps");
    setter!(
        /// Moving-average momentum.
        momentum, f64, "momentum");
    setter!(
        /// Treat gamma as 1.
        fix_gamma, bool, "fix_gamma");
    setter!(
        /// Use the moving statistics in training too.
        use_global_stats, bool, "use_global_stats");
    setter!(
        /// Also expose the batch mean and variance as outputs.
        output_mean_var, bool, "output_mean_var");
    setter!(
        /// The channel axis.
        axis, int, i64, "axis");
    setter!(
        /// The gamma variable.
        gamma, input, "gamma");
    setter!(
        /// The beta variable.
        beta, input, "beta");
    setter!(
        /// The moving-mean variable (an auxiliary state).
        moving_mean, input, "moving_mean");
    setter!(
        /// The moving-variance variable (an auxiliary state).
        moving_var, input, "moving_var");

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("BatchNorm", &[("data", data)])
    }
}

/// `Pooling` (max by default).
///
/// ```
/// use mxgluon::symbol::{ops::PoolType, Pooling, Symbol};
/// let x = Symbol::var("x");
/// let p = Pooling::new([2, 2]).stride([2, 2]).build(&x)?;
/// let g = Pooling::global(PoolType::Avg).build(&x)?;
/// let s = g.infer_shape([("x", [1, 8, 7, 7])])?;
/// assert_eq!(s.out_shapes[0], Some(vec![1, 8, 1, 1]));
/// assert_eq!(p.infer_shape([("x", [1, 8, 7, 7])])?.out_shapes[0], Some(vec![1, 8, 3, 3]));
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pooling {
    c: Common,
}

impl Pooling {
    /// Pooling windows of size `kernel`.
    pub fn new(kernel: impl AsRef<[usize]>) -> Self {
        let mut c = Common::default();
        c.set("kernel", py_tuple(kernel.as_ref()));
        Pooling { c }
    }

    /// Global pooling (over all spatial positions).
    pub fn global(pool_type: PoolType) -> Self {
        let mut c = Common::default();
        c.set("global_pool", "True".into());
        c.set("pool_type", pool_type.name().into());
        Pooling { c }
    }
    common_methods!();
    setter!(
        /// Stride (default 1).
        stride, tuple, "stride");
    setter!(
        /// Padding (default 0).
        pad, tuple, "pad");
    setter!(
        /// Pool over all spatial positions.
        global_pool, bool, "global_pool");
    setter!(
        /// Whether average pooling counts the padding.
        count_include_pad, bool, "count_include_pad");
    setter!(
        /// The `p` of Lp pooling.
        p_value, int, i64, "p_value");

    /// The reduction.
    pub fn pool_type(mut self, t: PoolType) -> Self {
        self.c.set("pool_type", t.name().into());
        self
    }

    /// Output size rounding.
    pub fn pooling_convention(mut self, t: PoolingConvention) -> Self {
        self.c.set("pooling_convention", t.name().into());
        self
    }

    /// The data layout.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.c.set("layout", layout.name().into());
        self
    }

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("Pooling", &[("data", data)])
    }
}

/// `Activation` (relu, sigmoid, tanh, softrelu, softsign).
#[derive(Clone, Debug)]
pub struct Activation {
    c: Common,
}

impl Activation {
    /// The activation function.
    pub fn new(act_type: ActType) -> Self {
        let mut c = Common::default();
        c.set("act_type", act_type.name().into());
        Activation { c }
    }
    common_methods!();

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("Activation", &[("data", data)])
    }
}

/// `LeakyReLU` (leaky, prelu, elu, selu, gelu, rrelu).
#[derive(Clone, Debug)]
pub struct LeakyReLU {
    c: Common,
}

impl LeakyReLU {
    /// The activation function.
    pub fn new(act_type: LeakyActType) -> Self {
        let mut c = Common::default();
        c.set("act_type", act_type.name().into());
        LeakyReLU { c }
    }
    common_methods!();
    setter!(
        /// Negative slope.
        slope, f64, "slope");
    setter!(
        /// Lower bound of the random slope (rrelu).
        lower_bound, f64, "lower_bound");
    setter!(
        /// Upper bound of the random slope (rrelu).
        upper_bound, f64, "upper_bound");
    setter!(
        /// The learned slopes (prelu).
        gamma, input, "gamma");

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("LeakyReLU", &[("data", data)])
    }
}

/// `Flatten`: `(N, ...)` to `(N, prod(...))`.
#[derive(Clone, Debug, Default)]
pub struct Flatten {
    c: Common,
}

impl Flatten {
    /// The operator.
    pub fn new() -> Self {
        Self::default()
    }
    common_methods!();

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("Flatten", &[("data", data)])
    }
}

/// `elemwise_add` / `_sub` / `_mul` / `_div`: both inputs of the same shape.
///
/// ```
/// use mxgluon::symbol::{ops::BinaryOp, Elemwise, Symbol};
/// let s = Elemwise::new(BinaryOp::Add).name("sum").build(&Symbol::var("a"), &Symbol::var("b"))?;
/// assert_eq!(s.infer_shape([("a", [2, 3])])?.arg_shapes[1], Some(vec![2, 3]));
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Elemwise {
    op: BinaryOp,
    c: Common,
}

impl Elemwise {
    /// The arithmetic.
    pub fn new(op: BinaryOp) -> Self {
        Elemwise {
            op,
            c: Common::default(),
        }
    }
    common_methods!();

    /// Applies the operator.
    pub fn build(&self, lhs: &Symbol, rhs: &Symbol) -> Result<Symbol> {
        let op = format!("elemwise_{}", self.op.name());
        self.c.build(&op, &[("lhs", lhs), ("rhs", rhs)])
    }
}

/// `broadcast_add` / `_sub` / `_mul` / `_div`: NumPy broadcasting.
#[derive(Clone, Debug)]
pub struct Broadcast {
    op: BinaryOp,
    c: Common,
}

impl Broadcast {
    /// The arithmetic.
    pub fn new(op: BinaryOp) -> Self {
        Broadcast {
            op,
            c: Common::default(),
        }
    }
    common_methods!();

    /// Applies the operator.
    pub fn build(&self, lhs: &Symbol, rhs: &Symbol) -> Result<Symbol> {
        let op = format!("broadcast_{}", self.op.name());
        self.c.build(&op, &[("lhs", lhs), ("rhs", rhs)])
    }
}

/// `Concat` along `dim` (default 1).
#[derive(Clone, Debug, Default)]
pub struct Concat {
    c: Common,
}

impl Concat {
    /// The operator.
    pub fn new() -> Self {
        Self::default()
    }
    common_methods!();
    setter!(
        /// The axis joined.
        dim, int, i64, "dim");

    /// Joins `inputs` (sets `num_args`).
    pub fn build(&self, inputs: &[&Symbol]) -> Result<Symbol> {
        let attrs: Vec<(&str, &str)> = self
            .c
            .attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        apply("Concat", inputs, &[], &attrs, self.c.name.as_deref())
    }
}

/// `Dropout`.
#[derive(Clone, Debug, Default)]
pub struct Dropout {
    c: Common,
}

impl Dropout {
    /// Drop probability `p`.
    pub fn new(p: f64) -> Self {
        let mut c = Common::default();
        c.set("p", py_float(p));
        Dropout { c }
    }
    common_methods!();
    setter!(
        /// Axes sharing one mask value.
        axes, tuple, "axes");

    /// Drop also in inference (`"always"`) instead of only in training.
    pub fn always(mut self, always: bool) -> Self {
        self.c
            .set("mode", if always { "always" } else { "training" }.into());
        self
    }

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("Dropout", &[("data", data)])
    }
}

/// `softmax` along an axis (default -1).
#[derive(Clone, Debug, Default)]
pub struct Softmax {
    c: Common,
}

impl Softmax {
    /// The operator.
    pub fn new() -> Self {
        Self::default()
    }
    common_methods!();
    setter!(
        /// The axis normalized.
        axis, int, i64, "axis");
    setter!(
        /// Divide the input by this first.
        temperature, f64, "temperature");

    /// Output dtype (float16, float32 or float64).
    pub fn dtype(mut self, d: DType) -> Self {
        self.c.set("dtype", d.name().into());
        self
    }

    /// A second input with the valid length along the axis.
    pub fn length(mut self, length: &Symbol) -> Self {
        self.c.set("use_length", "True".into());
        self.c.input("length", length);
        self
    }

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("softmax", &[("data", data)])
    }
}

/// `SoftmaxOutput`: softmax forward, cross-entropy gradient (input `label`).
#[derive(Clone, Debug, Default)]
pub struct SoftmaxOutput {
    c: Common,
}

impl SoftmaxOutput {
    /// The operator.
    pub fn new() -> Self {
        Self::default()
    }
    common_methods!();
    setter!(
        /// Gradient scale.
        grad_scale, f64, "grad_scale");
    setter!(
        /// The label ignored when `use_ignore`.
        ignore_label, f64, "ignore_label");
    setter!(
        /// Softmax over axis 1 at every other position.
        multi_output, bool, "multi_output");
    setter!(
        /// Whether `ignore_label` applies.
        use_ignore, bool, "use_ignore");
    setter!(
        /// Softmax over the last axis keeping the shape.
        preserve_shape, bool, "preserve_shape");
    setter!(
        /// Multiply the gradient by the output gradient.
        out_grad, bool, "out_grad");
    setter!(
        /// Label smoothing.
        smooth_alpha, f64, "smooth_alpha");
    setter!(
        /// The label variable (default: a new `<name>_label`).
        label, input, "label");

    /// Gradient normalization.
    pub fn normalization(mut self, n: SoftmaxNormalization) -> Self {
        self.c.set("normalization", n.name().into());
        self
    }

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("SoftmaxOutput", &[("data", data)])
    }
}

/// `Reshape` with MXNet's special codes (0 copy, -1 infer, -2 copy the rest, -3 merge two,
/// -4 split one).
///
/// ```
/// use mxgluon::symbol::{Reshape, Symbol};
/// let r = Reshape::new([0, -1]).build(&Symbol::var("x"))?;
/// assert_eq!(r.infer_shape([("x", [2, 3, 4])])?.out_shapes[0], Some(vec![2, 12]));
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Reshape {
    c: Common,
}

impl Reshape {
    /// The target shape.
    pub fn new(shape: impl AsRef<[i64]>) -> Self {
        let mut c = Common::default();
        c.set("shape", py_tuple(shape.as_ref()));
        Reshape { c }
    }
    common_methods!();
    setter!(
        /// Match the special codes from the right.
        reverse, bool, "reverse");

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("Reshape", &[("data", data)])
    }
}

/// `clip` to `[a_min, a_max]`.
#[derive(Clone, Debug)]
pub struct Clip {
    c: Common,
}

impl Clip {
    /// The bounds.
    pub fn new(a_min: f64, a_max: f64) -> Self {
        let mut c = Common::default();
        c.set("a_min", py_float(a_min));
        c.set("a_max", py_float(a_max));
        Clip { c }
    }
    common_methods!();

    /// Applies the operator to `data`.
    pub fn build(&self, data: &Symbol) -> Result<Symbol> {
        self.c.build("clip", &[("data", data)])
    }
}
