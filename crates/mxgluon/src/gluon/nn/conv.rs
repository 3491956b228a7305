//! Convolution and pooling layers: `Conv1D`–`Conv3D`, `MaxPool1D`–`MaxPool3D`,
//! `AvgPool1D`–`AvgPool3D` and the global poolings (Gluon's `conv_layers.py`, NCW / NCHW /
//! NCDHW layouts).
//!
//! As in Gluon, convolution layers are named `conv<n>_` and pooling layers `pool<n>_`; their
//! printout is Gluon's.

use super::super::block::{fmt_block, Block, BlockBase};
use crate::dtype::DType;
use crate::error::{fmt_shape, Error, Result};
use crate::gluon::parameter_dict::{ParamSpec, ParameterDict};
use crate::gluon::symbol_block::{act_sym, sym_op};
use crate::gluon::Parameter;
use crate::init::InitSpec;
use crate::nd::{self, ActType, ConvOptions, NDArray, PoolOptions, PoolType, PoolingConvention};
use crate::symbol::{py_tuple, Symbol};

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// What every convolution layer holds.
struct ConvCore {
    base: BlockBase,
    class: &'static str,
    layout: &'static str,
    opts: ConvOptions,
    act: Option<ActType>,
    weight: Parameter,
    bias: Option<Parameter>,
}

/// The options shared by the convolution builders.
struct ConvArgs {
    channels: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    groups: usize,
    use_bias: bool,
    activation: Option<ActType>,
    in_channels: usize,
    dtype: DType,
    weight_initializer: Option<InitSpec>,
    bias_initializer: InitSpec,
    prefix: Option<String>,
    params: Option<ParameterDict>,
}

impl ConvArgs {
    fn new(channels: usize, kernel: &[usize]) -> ConvArgs {
        let nd = kernel.len();
        ConvArgs {
            channels,
            kernel: kernel.to_vec(),
            strides: vec![1; nd],
            padding: vec![0; nd],
            dilation: vec![1; nd],
            groups: 1,
            use_bias: true,
            activation: None,
            in_channels: 0,
            dtype: DType::Float32,
            weight_initializer: None,
            bias_initializer: InitSpec::Str("zeros".into()),
            prefix: None,
            params: None,
        }
    }

    fn build(self, class: &'static str, layout: &'static str) -> Result<ConvCore> {
        let bad = |reason: String| Err(Error::invalid_arg(class, reason));
        if self.channels == 0 || self.groups == 0 {
            return bad(format!(
                "channels and groups must be positive, got {} and {}",
                self.channels, self.groups
            ));
        }
        if self.kernel.contains(&0) || self.strides.contains(&0) || self.dilation.contains(&0) {
            return bad("kernel_size, strides and dilation must be positive".into());
        }
        if !self.channels.is_multiple_of(self.groups)
            || !self.in_channels.is_multiple_of(self.groups)
        {
            return bad(format!(
                "channels ({}) and in_channels ({}) must be divisible by groups ({})",
                self.channels, self.in_channels, self.groups
            ));
        }
        let base = BlockBase::new("Conv", self.prefix.as_deref(), self.params.as_ref());
        let mut wshape = vec![self.channels, self.in_channels / self.groups];
        wshape.extend_from_slice(&self.kernel);
        let mut wspec = ParamSpec::new()
            .shape(wshape)
            .dtype(self.dtype)
            .allow_deferred_init(true);
        if let Some(i) = self.weight_initializer {
            wspec = wspec.init(i);
        }
        let weight = base.get_param("weight", wspec)?;
        let bias = if self.use_bias {
            Some(
                base.get_param(
                    "bias",
                    ParamSpec::new()
                        .shape([self.channels])
                        .dtype(self.dtype)
                        .init(self.bias_initializer)
                        .allow_deferred_init(true),
                )?,
            )
        } else {
            None
        };
        let opts = ConvOptions::new(&self.kernel, self.channels)
            .stride(&self.strides)
            .pad(&self.padding)
            .dilate(&self.dilation)
            .num_group(self.groups)
            .no_bias(!self.use_bias);
        Ok(ConvCore {
            base,
            class,
            layout,
            opts,
            act: self.activation,
            weight,
            bias,
        })
    }
}

impl ConvCore {
    fn infer(&self, x: &NDArray) -> Result<()> {
        let nd = self.opts.kernel.len();
        let xs = x.shape();
        if xs.len() != nd + 2 {
            return Err(Error::InvalidShape {
                op: self.class,
                shape: xs.to_vec(),
                reason: format!("the input must be {}-D in {} layout", nd + 2, self.layout),
            });
        }
        let g = self.opts.num_group;
        if !xs[1].is_multiple_of(g) {
            return Err(Error::invalid_arg(
                self.class,
                format!(
                    "the {} input channels cannot be split into {g} groups",
                    xs[1]
                ),
            ));
        }
        let mut shape = vec![self.opts.num_filter, xs[1] / g];
        shape.extend_from_slice(&self.opts.kernel);
        self.weight.set_shape(&shape)
    }

    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let ctx = x.context();
        let w = self.base.param_data(&self.weight, ctx, || self.infer(x))?;
        let b = match &self.bias {
            Some(b) => Some(self.base.param_data(b, ctx, || self.infer(x))?),
            None => None,
        };
        let y = nd::convolution(x, &w, b.as_ref(), &self.opts)?;
        match self.act {
            Some(a) => nd::activation(&y, a),
            None => Ok(y),
        }
    }

    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let o = &self.opts;
        let n = o.kernel.len();
        let or = |v: &[usize], d: usize| if v.is_empty() { vec![d; n] } else { v.to_vec() };
        let w = self.weight.var();
        let b = self.bias.as_ref().map(Parameter::var);
        let mut ins = vec![x, &w];
        ins.extend(b.as_ref());
        let y = sym_op(
            "Convolution",
            &ins,
            &[
                ("dilate", py_tuple(&or(&o.dilate, 1))),
                ("kernel", py_tuple(&o.kernel)),
                ("layout", self.layout.into()),
                ("no_bias", py_bool(b.is_none()).into()),
                ("num_filter", o.num_filter.to_string()),
                ("num_group", o.num_group.to_string()),
                ("pad", py_tuple(&or(&o.pad, 0))),
                ("stride", py_tuple(&or(&o.stride, 1))),
            ],
            &format!("{}fwd", self.base.prefix()),
        )?;
        act_sym(y, self.act, self.base.prefix())
    }

    /// Gluon's repr: `Conv2D(3 -> 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))`.
    /// Like Gluon it shows the weight's second dimension (input channels per group).
    fn describe(&self) -> String {
        let o = &self.opts;
        let nd = o.kernel.len();
        let cin = match self.weight.shape() {
            Some(s) if s.len() > 1 && s[1] > 0 => s[1].to_string(),
            _ => "None".into(),
        };
        let mut s = format!(
            "{}({cin} -> {}, kernel_size={}, stride={}",
            self.class,
            o.num_filter,
            fmt_shape(&o.kernel),
            fmt_shape(&o.stride)
        );
        if o.pad != vec![0; nd] {
            s += &format!(", padding={}", fmt_shape(&o.pad));
        }
        if o.dilate != vec![1; nd] {
            s += &format!(", dilation={}", fmt_shape(&o.dilate));
        }
        if o.num_group != 1 {
            s += &format!(", groups={}", o.num_group);
        }
        if self.bias.is_none() {
            s += ", bias=False";
        }
        if let Some(a) = self.act {
            s += &format!(", Activation({a})");
        }
        s + ")"
    }
}

macro_rules! conv_layer {
    ($name:ident, $builder:ident, $nd:literal, $layout:literal, $example_shape:literal, $example_kernel:literal) => {
        #[doc = concat!("A ", stringify!($nd), "-D convolution layer (Gluon's `nn.", stringify!($name), "`), input layout ", $layout, ".")]
        ///
        /// `out = activation(convolution(x, weight) + bias)` with `weight` of shape
        /// `(channels, in_channels / groups, *kernel_size)` and `bias` `(channels,)`. Without
        /// `in_channels` the weight's second dimension is inferred on the first forward pass.
        /// See [`nd::convolution`] for the output size.
        ///
        /// ```
        #[doc = concat!("use mxgluon::gluon::{nn::", stringify!($name), ", Block};")]
        /// use mxgluon::{nd, Context};
        #[doc = concat!("let conv = ", stringify!($name), "::builder(8, ", $example_kernel, ").padding([1; ", stringify!($nd), "]).build()?;")]
        /// conv.initialize(None, Context::cpu(0))?;
        #[doc = concat!("let y = conv.forward(&nd::ones(&", $example_shape, ", None)?)?;")]
        /// assert_eq!(y.shape()[..2], [2, 8]);
        /// assert_eq!(conv.weight().shape().unwrap()[..2], [8, 3]);
        /// # Ok::<(), mxgluon::Error>(())
        /// ```
        pub struct $name {
            core: ConvCore,
        }

        #[doc = concat!("Options of [`", stringify!($name), "`] (Gluon's constructor arguments); finish with [`", stringify!($builder), "::build`].")]
        pub struct $builder {
            args: ConvArgs,
        }

        impl $builder {
            /// The stride (default 1).
            pub fn strides(mut self, strides: [usize; $nd]) -> Self {
                self.args.strides = strides.to_vec();
                self
            }
            /// Zero padding on both sides (default 0).
            pub fn padding(mut self, padding: [usize; $nd]) -> Self {
                self.args.padding = padding.to_vec();
                self
            }
            /// The dilation (default 1).
            pub fn dilation(mut self, dilation: [usize; $nd]) -> Self {
                self.args.dilation = dilation.to_vec();
                self
            }
            /// Number of groups (default 1; `groups = in_channels = channels` is depthwise).
            pub fn groups(mut self, groups: usize) -> Self {
                self.args.groups = groups;
                self
            }
            /// Whether the layer has a bias (default true).
            pub fn use_bias(mut self, use_bias: bool) -> Self {
                self.args.use_bias = use_bias;
                self
            }
            /// An activation applied to the output (default: none).
            pub fn activation(mut self, act: ActType) -> Self {
                self.args.activation = Some(act);
                self
            }
            /// The number of input channels; 0 (the default) infers it on the first forward.
            pub fn in_channels(mut self, c: usize) -> Self {
                self.args.in_channels = c;
                self
            }
            /// The parameters' dtype (default float32).
            pub fn dtype(mut self, dtype: DType) -> Self {
                self.args.dtype = dtype;
                self
            }
            /// The weight's initializer (default: the one given to `initialize`).
            pub fn weight_initializer(mut self, init: impl Into<InitSpec>) -> Self {
                self.args.weight_initializer = Some(init.into());
                self
            }
            /// The bias's initializer (default `"zeros"`).
            pub fn bias_initializer(mut self, init: impl Into<InitSpec>) -> Self {
                self.args.bias_initializer = init.into();
                self
            }
            /// An explicit prefix instead of the automatic `conv<n>_`.
            pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
                self.args.prefix = Some(prefix.into());
                self
            }
            /// Shares the parameters of another block's dictionary.
            pub fn params(mut self, params: &ParameterDict) -> Self {
                self.args.params = Some(params.clone());
                self
            }
            /// Creates the layer and its parameters.
            pub fn build(self) -> Result<$name> {
                Ok($name {
                    core: self.args.build(stringify!($name), $layout)?,
                })
            }
        }

        impl $name {
            /// Options for a layer with `channels` output channels and a `kernel_size` window.
            pub fn builder(channels: usize, kernel_size: [usize; $nd]) -> $builder {
                $builder {
                    args: ConvArgs::new(channels, &kernel_size),
                }
            }
            /// The weight `(channels, in_channels / groups, *kernel_size)`.
            pub fn weight(&self) -> &Parameter {
                &self.core.weight
            }
            /// The bias `(channels,)`, when the layer has one.
            pub fn bias(&self) -> Option<&Parameter> {
                self.core.bias.as_ref()
            }
            /// The options passed to [`nd::convolution`].
            pub fn options(&self) -> &ConvOptions {
                &self.core.opts
            }
        }

        impl Block for $name {
            fn base(&self) -> &BlockBase {
                &self.core.base
            }
            fn forward(&self, x: &NDArray) -> Result<NDArray> {
                self.core.forward(x)
            }
            fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
                self.core.hybrid_symbol(x)
            }
            fn describe(&self) -> String {
                self.core.describe()
            }
            fn as_dyn(&self) -> &dyn Block {
                self
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                fmt_block(self, f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                fmt_block(self, f)
            }
        }
    };
}

conv_layer!(Conv1D, Conv1DBuilder, 1, "NCW", "[2, 3, 10]", "[3]");
conv_layer!(Conv2D, Conv2DBuilder, 2, "NCHW", "[2, 3, 10, 10]", "[3, 3]");
conv_layer!(
    Conv3D,
    Conv3DBuilder,
    3,
    "NCDHW",
    "[2, 3, 4, 5, 5]",
    "[3, 3, 3]"
);

/// What every pooling layer holds.
struct PoolCore {
    base: BlockBase,
    class: &'static str,
    layout: &'static str,
    opts: PoolOptions,
}

impl PoolCore {
    /// A pooling layer; `strides` `None` means the pool size (Gluon's default).
    fn new(
        class: &'static str,
        layout: &'static str,
        opts: PoolOptions,
        strides: Option<Vec<usize>>,
    ) -> Result<PoolCore> {
        let mut opts = opts;
        opts.stride = strides.unwrap_or_else(|| opts.kernel.clone());
        if opts.kernel.contains(&0) || opts.stride.contains(&0) {
            return Err(Error::invalid_arg(
                class,
                "pool_size and strides must be positive",
            ));
        }
        Ok(PoolCore {
            base: BlockBase::new("Pool", None, None),
            class,
            layout,
            opts,
        })
    }

    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let o = &self.opts;
        let n = o.kernel.len();
        let or = |v: &[usize], d: usize| if v.is_empty() { vec![d; n] } else { v.to_vec() };
        let mut attrs = vec![
            ("global_pool", py_bool(o.global_pool).to_string()),
            ("kernel", py_tuple(&o.kernel)),
            ("layout", self.layout.to_string()),
            ("pad", py_tuple(&or(&o.pad, 0))),
            ("pool_type", o.pool_type.name().to_string()),
            (
                "pooling_convention",
                o.pooling_convention.name().to_string(),
            ),
            ("stride", py_tuple(&or(&o.stride, 1))),
        ];
        // Gluon passes count_include_pad for the (non-global) average pools only.
        if o.pool_type == PoolType::Avg && !o.global_pool {
            attrs.push((
                "count_include_pad",
                py_bool(o.count_include_pad).to_string(),
            ));
        }
        sym_op(
            "Pooling",
            &[x],
            &attrs,
            &format!("{}fwd", self.base.prefix()),
        )
    }

    /// Gluon's repr: `MaxPool2D(size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False,
    /// global_pool=False, pool_type=max, layout=NCHW)`.
    fn describe(&self) -> String {
        let o = &self.opts;
        format!(
            "{}(size={}, stride={}, padding={}, ceil_mode={}, global_pool={}, pool_type={}, layout={})",
            self.class,
            fmt_shape(&o.kernel),
            fmt_shape(&o.stride),
            fmt_shape(&o.pad),
            py_bool(o.pooling_convention == PoolingConvention::Full),
            py_bool(o.global_pool),
            o.pool_type,
            self.layout
        )
    }
}

macro_rules! pool_impls {
    ($name:ident) => {
        impl $name {
            /// The options passed to [`nd::pooling`].
            pub fn options(&self) -> &PoolOptions {
                &self.core.opts
            }
        }

        impl Block for $name {
            fn base(&self) -> &BlockBase {
                &self.core.base
            }
            fn forward(&self, x: &NDArray) -> Result<NDArray> {
                nd::pooling(x, &self.core.opts)
            }
            fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
                self.core.hybrid_symbol(x)
            }
            fn describe(&self) -> String {
                self.core.describe()
            }
            fn as_dyn(&self) -> &dyn Block {
                self
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                fmt_block(self, f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                fmt_block(self, f)
            }
        }
    };
}

macro_rules! pool_layer {
    ($name:ident, $builder:ident, $nd:literal, $layout:literal, $ptype:ident, $what:literal, $avg:tt) => {
        #[doc = concat!("", $what, " pooling over ", stringify!($nd), "-D windows (Gluon's `nn.", stringify!($name), "`), input layout ", $layout, ".")]
        ///
        /// Defaults: `pool_size` 2, `strides` equal to `pool_size`, no padding,
        /// `ceil_mode` false (MXNet's `valid` convention; true selects `full`).
        ///
        /// ```
        #[doc = concat!("use mxgluon::gluon::{nn::", stringify!($name), ", Block};")]
        /// use mxgluon::nd;
        #[doc = concat!("let p = ", stringify!($name), "::builder().ceil_mode(true).build()?;")]
        #[doc = concat!("let mut shape = vec![1, 2]; shape.extend([5; ", stringify!($nd), "]);")]
        /// let y = p.forward(&nd::ones(&shape, None)?)?;
        /// // ⌈(5 − 2) / 2⌉ + 1 = 3 windows per axis (2 with ceil_mode false).
        /// assert!(y.shape()[2..].iter().all(|&d| d == 3));
        /// # Ok::<(), mxgluon::Error>(())
        /// ```
        pub struct $name {
            core: PoolCore,
        }

        #[doc = concat!("Options of [`", stringify!($name), "`]; finish with [`", stringify!($builder), "::build`].")]
        pub struct $builder {
            opts: PoolOptions,
            strides: Option<Vec<usize>>,
        }

        impl $builder {
            /// The window size (default 2).
            pub fn pool_size(mut self, size: [usize; $nd]) -> Self {
                self.opts.kernel = size.to_vec();
                self
            }
            /// The stride (default: the window size).
            pub fn strides(mut self, strides: [usize; $nd]) -> Self {
                self.strides = Some(strides.to_vec());
                self
            }
            /// Padding on both sides (default 0).
            pub fn padding(mut self, padding: [usize; $nd]) -> Self {
                self.opts.pad = padding.to_vec();
                self
            }
            /// Round the output size up (MXNet's `full` convention) instead of down.
            pub fn ceil_mode(mut self, on: bool) -> Self {
                self.opts.pooling_convention = if on {
                    PoolingConvention::Full
                } else {
                    PoolingConvention::Valid
                };
                self
            }
            pool_layer!(@avg $avg);
            /// Creates the layer.
            pub fn build(self) -> Result<$name> {
                Ok($name {
                    core: PoolCore::new(stringify!($name), $layout, self.opts, self.strides)?,
                })
            }
        }

        impl $name {
            /// Options with Gluon's defaults.
            pub fn builder() -> $builder {
                $builder {
                    opts: PoolOptions::new(&[2; $nd], PoolType::$ptype).pad(&[0; $nd]),
                    strides: None,
                }
            }
            /// A layer with Gluon's defaults.
            pub fn new() -> $name {
                // The defaults are valid (positive sizes), so building cannot fail.
                $name {
                    core: PoolCore {
                        base: BlockBase::new("Pool", None, None),
                        class: stringify!($name),
                        layout: $layout,
                        opts: PoolOptions::new(&[2; $nd], PoolType::$ptype)
                            .stride(&[2; $nd])
                            .pad(&[0; $nd]),
                    },
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        pool_impls!($name);
    };
    (@avg true) => {
        /// Whether the average counts the padding (default true).
        pub fn count_include_pad(mut self, on: bool) -> Self {
            self.opts.count_include_pad = on;
            self
        }
    };
    (@avg false) => {};
}

pool_layer!(MaxPool1D, MaxPool1DBuilder, 1, "NCW", Max, "Max", false);
pool_layer!(MaxPool2D, MaxPool2DBuilder, 2, "NCHW", Max, "Max", false);
pool_layer!(MaxPool3D, MaxPool3DBuilder, 3, "NCDHW", Max, "Max", false);
pool_layer!(AvgPool1D, AvgPool1DBuilder, 1, "NCW", Avg, "Average", true);
pool_layer!(AvgPool2D, AvgPool2DBuilder, 2, "NCHW", Avg, "Average", true);
pool_layer!(
    AvgPool3D,
    AvgPool3DBuilder,
    3,
    "NCDHW",
    Avg,
    "Average",
    true
);

macro_rules! global_pool_layer {
    ($name:ident, $nd:literal, $layout:literal, $ptype:ident, $what:literal) => {
        #[doc = concat!("Global ", $what, " pooling (Gluon's `nn.", stringify!($name), "`): reduces all spatial positions of ", $layout, " input to size 1.")]
        ///
        /// ```
        #[doc = concat!("use mxgluon::gluon::{nn::", stringify!($name), ", Block};")]
        /// use mxgluon::nd;
        #[doc = concat!("let p = ", stringify!($name), "::new();")]
        #[doc = concat!("let mut shape = vec![2, 3]; shape.extend([4; ", stringify!($nd), "]);")]
        /// let y = p.forward(&nd::ones(&shape, None)?)?;
        /// assert_eq!(y.shape()[..2], [2, 3]);
        /// assert!(y.shape()[2..].iter().all(|&d| d == 1));
        /// # Ok::<(), mxgluon::Error>(())
        /// ```
        pub struct $name {
            core: PoolCore,
        }

        impl $name {
            /// The layer.
            pub fn new() -> $name {
                let opts = PoolOptions {
                    global_pool: true,
                    pooling_convention: PoolingConvention::Full,
                    ..PoolOptions::new(&[1; $nd], PoolType::$ptype)
                        .stride(&[1; $nd])
                        .pad(&[0; $nd])
                };
                $name {
                    core: PoolCore {
                        base: BlockBase::new("Pool", None, None),
                        class: stringify!($name),
                        layout: $layout,
                        opts,
                    },
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        pool_impls!($name);
    };
}

global_pool_layer!(GlobalMaxPool1D, 1, "NCW", Max, "max");
global_pool_layer!(GlobalMaxPool2D, 2, "NCHW", Max, "max");
global_pool_layer!(GlobalMaxPool3D, 3, "NCDHW", Max, "max");
global_pool_layer!(GlobalAvgPool1D, 1, "NCW", Avg, "average");
global_pool_layer!(GlobalAvgPool2D, 2, "NCHW", Avg, "average");
global_pool_layer!(GlobalAvgPool3D, 3, "NCDHW", Avg, "average");
