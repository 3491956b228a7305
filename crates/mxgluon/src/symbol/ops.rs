//! The operators symbols know: their names and aliases, parsed parameters, input / output
//! names, output counts and which inputs they mutate (auxiliary states), as MXNet 1.9.1
//! registers them. Shape and type rules are in `shape.rs`.
//!
//! Output counts follow the MXNet 1.9.1 wheel from PyPI, which is built with oneDNN (MKLDNN):
//! a max `Pooling` over 1–3 spatial dimensions in a channel-first layout has a second, hidden
//! `workspace` output, which shows in `node_row_ptr` of the graph JSON.

use std::collections::BTreeMap;
use std::fmt;

use super::attr::{parse_bool, parse_float, parse_int, parse_tuple, AttrReader};
use crate::dtype::DType;
use crate::nd::ActType;

/// Canonical operator names with their aliases (MXNet resolves an alias on load and writes the
/// canonical name back).
const OPS: &[(&str, &[&str])] = &[
    ("FullyConnected", &["_npx_fully_connected"]),
    ("Convolution", &["_npx_convolution"]),
    ("BatchNorm", &["_npx_batch_norm"]),
    ("Pooling", &["_npx_pooling"]),
    ("Activation", &["_npx_activation"]),
    ("LeakyReLU", &["_npx_leaky_relu"]),
    ("Flatten", &["flatten", "_npx_batch_flatten"]),
    (
        "elemwise_add",
        &["_add", "_plus", "_Plus", "_sparse_elemwise_add"],
    ),
    (
        "elemwise_sub",
        &["_sub", "_minus", "_Minus", "_sparse_elemwise_sub"],
    ),
    ("elemwise_mul", &["_mul", "_Mul", "_sparse_elemwise_mul"]),
    ("elemwise_div", &["_div", "_Div", "_sparse_elemwise_div"]),
    (
        "broadcast_add",
        &[
            "broadcast_plus",
            "_sparse_broadcast_add",
            "_sparse_broadcast_plus",
        ],
    ),
    (
        "broadcast_sub",
        &[
            "broadcast_minus",
            "_sparse_broadcast_sub",
            "_sparse_broadcast_minus",
        ],
    ),
    ("broadcast_mul", &["_sparse_broadcast_mul"]),
    ("broadcast_div", &["_sparse_broadcast_div"]),
    ("Concat", &["concat", "_sparse_concat"]),
    ("Dropout", &["_npx_dropout"]),
    ("softmax", &["_npx_softmax"]),
    ("SoftmaxOutput", &["Softmax"]),
    ("Reshape", &["reshape"]),
    ("clip", &["_npi_clip", "_sparse_clip"]),
];

/// The canonical name of a known operator or alias (`"_Plus"` → `"elemwise_add"`).
pub(crate) fn canonical_op(name: &str) -> Option<&'static str> {
    OPS.iter()
        .find(|(c, aliases)| *c == name || aliases.contains(&name))
        .map(|(c, _)| *c)
}

/// Every operator symbols can compose and infer shapes for (canonical names).
pub fn known_ops() -> Vec<&'static str> {
    OPS.iter().map(|(c, _)| *c).collect()
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every value, in MXNet's order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            #[allow(dead_code)]
            const NAMES: &'static [&'static str] = &[$($s),+];
            /// MXNet's spelling.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum!(
    /// Memory layout of convolution / pooling data (`N` batch, `C` channels, `D H W` spatial).
    Layout {
        /// 1-D, channels first.
        Ncw = "NCW",
        /// 2-D, channels first (the default for 2-D).
        Nchw = "NCHW",
        /// 3-D, channels first.
        Ncdhw = "NCDHW",
        /// 1-D, channels last (pooling only).
        Nwc = "NWC",
        /// 2-D, channels last.
        Nhwc = "NHWC",
        /// 3-D, channels last.
        Ndhwc = "NDHWC",
    }
);

impl Layout {
    /// Number of spatial dimensions.
    pub fn spatial_dims(self) -> usize {
        match self {
            Layout::Ncw | Layout::Nwc => 1,
            Layout::Nchw | Layout::Nhwc => 2,
            Layout::Ncdhw | Layout::Ndhwc => 3,
        }
    }

    /// Whether channels come last.
    pub fn channels_last(self) -> bool {
        matches!(self, Layout::Nwc | Layout::Nhwc | Layout::Ndhwc)
    }

    /// The channel-first layout for `spatial` dimensions.
    pub(crate) fn default_for(spatial: usize) -> Layout {
        match spatial {
            1 => Layout::Ncw,
            3 => Layout::Ncdhw,
            _ => Layout::Nchw,
        }
    }
}

named_enum!(
    /// `cudnn_tune` of Convolution (recorded, no effect on CPU).
    CudnnTune {
        /// No tuning.
        Off = "off",
        /// Tune within the workspace limit.
        LimitedWorkspace = "limited_workspace",
        /// Fastest algorithm.
        Fastest = "fastest",
    }
);

named_enum!(
    /// `pool_type` of Pooling.
    PoolType {
        /// Maximum (the default).
        Max = "max",
        /// Average.
        Avg = "avg",
        /// Sum.
        Sum = "sum",
        /// Lp norm (`p_value`).
        Lp = "lp",
    }
);

named_enum!(
    /// `pooling_convention` of Pooling: how the output size is rounded.
    PoolingConvention {
        /// Floor: windows must fit (the default).
        Valid = "valid",
        /// Ceil: a partial last window counts.
        Full = "full",
        /// `ceil(in / stride)` (1-D only).
        Same = "same",
    }
);

named_enum!(
    /// `act_type` of LeakyReLU (MXNet's list, including `rrelu`).
    LeakyActType {
        /// Randomized leaky ReLU (two outputs: output and mask).
        Rrelu = "rrelu",
        /// Leaky ReLU with a fixed slope (the default).
        Leaky = "leaky",
        /// Parametric ReLU with a learned `gamma` input.
        Prelu = "prelu",
        /// Exponential linear unit.
        Elu = "elu",
        /// Scaled ELU.
        Selu = "selu",
        /// Gaussian error linear unit.
        Gelu = "gelu",
    }
);

named_enum!(
    /// `mode` of Dropout.
    DropoutMode {
        /// Drop only while training (the default).
        Training = "training",
        /// Drop in inference too.
        Always = "always",
    }
);

named_enum!(
    /// `normalization` of SoftmaxOutput's gradient.
    SoftmaxNormalization {
        /// No normalization (the default).
        Null = "null",
        /// Divide by the batch size.
        Batch = "batch",
        /// Divide by the number of valid labels.
        Valid = "valid",
    }
);

named_enum!(
    /// The arithmetic of the element-wise and broadcasting binary operators.
    BinaryOp {
        /// `lhs + rhs`.
        Add = "add",
        /// `lhs - rhs`.
        Sub = "sub",
        /// `lhs * rhs`.
        Mul = "mul",
        /// `lhs / rhs`.
        Div = "div",
    }
);

/// Parameters of `FullyConnected`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FullyConnectedParam {
    /// Output features (`num_hidden`, ≥ 1).
    pub num_hidden: usize,
    /// No bias input (default false).
    pub no_bias: bool,
    /// Collapse all axes but the first of the data (default true).
    pub flatten: bool,
}

/// Parameters of `Convolution`, with MXNet's defaults filled in (stride and dilate 1, pad 0,
/// layout channel-first for the kernel's rank).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConvolutionParam {
    /// Kernel size, 1 to 3 spatial dimensions.
    pub kernel: Vec<usize>,
    /// Stride per spatial dimension.
    pub stride: Vec<usize>,
    /// Dilation per spatial dimension.
    pub dilate: Vec<usize>,
    /// Zero padding per spatial dimension (both sides).
    pub pad: Vec<usize>,
    /// Output channels.
    pub num_filter: usize,
    /// Channel groups (default 1).
    pub num_group: usize,
    /// Workspace limit in MB (recorded only).
    pub workspace: u64,
    /// No bias input.
    pub no_bias: bool,
    /// cuDNN algorithm choice (recorded only).
    pub cudnn_tune: Option<CudnnTune>,
    /// cuDNN off (recorded only).
    pub cudnn_off: bool,
    /// Data layout.
    pub layout: Layout,
}

impl ConvolutionParam {
    /// `1 + (kernel - 1) · dilate` for spatial dimension `i`.
    pub fn dilated_kernel(&self, i: usize) -> usize {
        1 + (self.kernel[i] - 1) * self.dilate[i]
    }
}

/// Parameters of `BatchNorm`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchNormParam {
    /// Added to the variance (default 1e-3).
    pub eps: f64,
    /// Moving-average momentum (default 0.9).
    pub momentum: f64,
    /// Treat gamma as 1 (default true).
    pub fix_gamma: bool,
    /// Normalize with the moving statistics even in training (default false).
    pub use_global_stats: bool,
    /// Also output the batch mean and variance (default false).
    pub output_mean_var: bool,
    /// The channel axis (default 1; negative counts from the end).
    pub axis: i64,
    /// cuDNN off (recorded only).
    pub cudnn_off: bool,
    /// Quantization calibration (recorded only).
    pub min_calib_range: Option<f64>,
    /// Quantization calibration (recorded only).
    pub max_calib_range: Option<f64>,
}

/// Parameters of `Pooling`, with MXNet's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PoolingParam {
    /// Window size (may be empty with `global_pool`).
    pub kernel: Vec<usize>,
    /// Stride per spatial dimension.
    pub stride: Vec<usize>,
    /// Padding per spatial dimension.
    pub pad: Vec<usize>,
    /// Reduction.
    pub pool_type: PoolType,
    /// Output size rounding.
    pub pooling_convention: PoolingConvention,
    /// Pool over all spatial positions (the kernel is ignored).
    pub global_pool: bool,
    /// cuDNN off (recorded only).
    pub cudnn_off: bool,
    /// The `p` of Lp pooling.
    pub p_value: Option<i64>,
    /// Whether average pooling counts padding (unset means true).
    pub count_include_pad: Option<bool>,
    /// Data layout; `None` means channel-first for the data's rank.
    pub layout: Option<Layout>,
}

impl PoolingParam {
    /// Whether MXNet's oneDNN build gives this pooling a hidden `workspace` output.
    pub fn has_workspace(&self) -> bool {
        (1..=3).contains(&self.kernel.len())
            && self.pool_type == PoolType::Max
            && self.layout.is_none_or(|l| !l.channels_last())
    }
}

/// Parameters of `Activation`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ActivationParam {
    /// The function.
    pub act_type: ActType,
}

/// Parameters of `LeakyReLU`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LeakyReLUParam {
    /// The function (default `leaky`).
    pub act_type: LeakyActType,
    /// Negative slope of `leaky` / `elu` (default 0.25).
    pub slope: f64,
    /// Lower bound of the `rrelu` slope (default 0.125).
    pub lower_bound: f64,
    /// Upper bound of the `rrelu` slope (default 0.334).
    pub upper_bound: f64,
}

/// Parameters of `Concat`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConcatParam {
    /// Number of inputs.
    pub num_args: usize,
    /// The axis joined (default 1; negative counts from the end).
    pub dim: i64,
}

/// Parameters of `Dropout`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DropoutParam {
    /// Drop probability (default 0.5).
    pub p: f64,
    /// When to drop.
    pub mode: DropoutMode,
    /// Axes along which one mask value is shared.
    pub axes: Vec<usize>,
    /// cuDNN off (recorded only; default false).
    pub cudnn_off: Option<bool>,
}

/// Parameters of `softmax`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SoftmaxParam {
    /// The axis normalized (default -1).
    pub axis: i64,
    /// Divides the input first.
    pub temperature: Option<f64>,
    /// Output dtype (float16, float32 or float64); default: the input's.
    pub dtype: Option<DType>,
    /// A second input gives the valid length along `axis`.
    pub use_length: bool,
}

/// Parameters of `SoftmaxOutput`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SoftmaxOutputParam {
    /// Gradient scale (default 1).
    pub grad_scale: f64,
    /// Label ignored when `use_ignore` (default -1).
    pub ignore_label: f64,
    /// Softmax over axis 1 for every other position (default false).
    pub multi_output: bool,
    /// Whether `ignore_label` applies.
    pub use_ignore: bool,
    /// Softmax over the last axis keeping the shape.
    pub preserve_shape: bool,
    /// Gradient normalization.
    pub normalization: SoftmaxNormalization,
    /// Multiply the gradient by the output gradient.
    pub out_grad: bool,
    /// Label smoothing.
    pub smooth_alpha: f64,
}

/// Parameters of `Reshape`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReshapeParam {
    /// Target shape with MXNet's special codes 0, -1, -2, -3, -4.
    pub shape: Vec<i64>,
    /// Match the special codes from the right.
    pub reverse: bool,
    /// Deprecated form of `shape` (`0` = inferred).
    pub target_shape: Option<Vec<i64>>,
    /// With `target_shape`: keep the first dimension.
    pub keep_highest: bool,
}

/// Parameters of `clip`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClipParam {
    /// Lower bound.
    pub a_min: f64,
    /// Upper bound.
    pub a_max: f64,
}

/// The parsed parameters of an operator node: what an executor needs besides the inputs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OpParams {
    /// `FullyConnected`.
    FullyConnected(FullyConnectedParam),
    /// `Convolution`.
    Convolution(ConvolutionParam),
    /// `BatchNorm`.
    BatchNorm(BatchNormParam),
    /// `Pooling`.
    Pooling(PoolingParam),
    /// `Activation`.
    Activation(ActivationParam),
    /// `LeakyReLU`.
    LeakyReLU(LeakyReLUParam),
    /// `Flatten`.
    Flatten,
    /// `elemwise_add` / `_sub` / `_mul` / `_div` (same shapes).
    Elemwise(BinaryOp),
    /// `broadcast_add` / `_sub` / `_mul` / `_div` (NumPy broadcasting).
    Broadcast(BinaryOp),
    /// `Concat`.
    Concat(ConcatParam),
    /// `Dropout`.
    Dropout(DropoutParam),
    /// `softmax`.
    Softmax(SoftmaxParam),
    /// `SoftmaxOutput`.
    SoftmaxOutput(SoftmaxOutputParam),
    /// `Reshape`.
    Reshape(ReshapeParam),
    /// `clip`.
    Clip(ClipParam),
    /// An operator mxgluon does not know (kept from a loaded file, written back unchanged;
    /// shape and type inference refuse it).
    Unknown {
        /// Outputs, from the file's `node_row_ptr` or the entries that use the node.
        num_outputs: usize,
    },
}

const BOOL: &str = "a boolean";
const INT: &str = "an integer";
const FLOAT: &str = "a number";
const TUPLE: &str = "a tuple of integers";

fn count(lo: i64, hi: i64) -> impl Fn(&str) -> Option<usize> {
    move |s| {
        parse_int(s)
            .filter(|v| (lo..=hi).contains(v))
            .map(|v| v as usize)
    }
}

fn dims(lo: i64) -> impl Fn(&str) -> Option<Vec<usize>> {
    move |s| {
        parse_tuple(s)?
            .into_iter()
            .map(|v| (lo..=i32::MAX as i64).contains(&v).then_some(v as usize))
            .collect()
    }
}

const I32: i64 = i32::MAX as i64;
const U32: i64 = u32::MAX as i64;

fn layouts(r: &mut AttrReader<'_>) -> Result<Option<Layout>, String> {
    Ok(r.optional_choice("layout", Layout::NAMES)?
        .map(|i| Layout::ALL[i]))
}

fn parse_fc(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    Ok(OpParams::FullyConnected(FullyConnectedParam {
        num_hidden: r.required(
            "num_hidden",
            count(1, I32),
            "an integer from 1 to 2147483647",
        )?,
        no_bias: r.or("no_bias", false, parse_bool, BOOL)?,
        flatten: r.or("flatten", true, parse_bool, BOOL)?,
    }))
}

fn parse_conv(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    let kernel = r.required("kernel", dims(1), "a tuple of positive integers")?;
    let stride = r.or("stride", vec![], dims(1), "a tuple of positive integers")?;
    let dilate = r.or("dilate", vec![], dims(1), "a tuple of positive integers")?;
    let pad = r.or("pad", vec![], dims(0), "a tuple of non-negative integers")?;
    let num_filter = r.required("num_filter", count(1, U32), "a positive integer")?;
    let num_group = r.or("num_group", 1, count(1, U32), "a positive integer")?;
    let workspace = r.or(
        "workspace",
        1024,
        |s| parse_int(s).and_then(|v| u64::try_from(v).ok()),
        INT,
    )?;
    let no_bias = r.or("no_bias", false, parse_bool, BOOL)?;
    let cudnn_tune = r
        .optional_choice("cudnn_tune", CudnnTune::NAMES)?
        .map(|i| CudnnTune::ALL[i]);
    let cudnn_off = r.or("cudnn_off", false, parse_bool, BOOL)?;
    let layout = layouts(r)?;
    let k = kernel.len();
    if !(1..=3).contains(&k) {
        return Err(format!(
            "{k}-D convolution is not supported (kernel must have 1 to 3 dimensions)"
        ));
    }
    let fill = |v: Vec<usize>, d: usize| if v.is_empty() { vec![d; k] } else { v };
    let (stride, dilate, pad) = (fill(stride, 1), fill(dilate, 1), fill(pad, 0));
    for (what, v) in [("stride", &stride), ("dilate", &dilate), ("pad", &pad)] {
        if v.len() != k {
            return Err(format!(
                "{what} must have as many dimensions as kernel {:?}, got {:?}",
                kernel, v
            ));
        }
    }
    let layout = layout.unwrap_or(Layout::default_for(k));
    if layout.spatial_dims() != k || layout == Layout::Nwc {
        return Err(format!("layout {layout} does not fit a {k}-D convolution"));
    }
    if !num_filter.is_multiple_of(num_group) {
        return Err(format!(
            "num_filter {num_filter} is not divisible by num_group {num_group}"
        ));
    }
    Ok(OpParams::Convolution(ConvolutionParam {
        kernel,
        stride,
        dilate,
        pad,
        num_filter,
        num_group,
        workspace,
        no_bias,
        cudnn_tune,
        cudnn_off,
        layout,
    }))
}

fn parse_bn(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    Ok(OpParams::BatchNorm(BatchNormParam {
        eps: r.or("eps", 1e-3, parse_float, FLOAT)?,
        momentum: r.or("momentum", 0.9, parse_float, FLOAT)?,
        fix_gamma: r.or("fix_gamma", true, parse_bool, BOOL)?,
        use_global_stats: r.or("use_global_stats", false, parse_bool, BOOL)?,
        output_mean_var: r.or("output_mean_var", false, parse_bool, BOOL)?,
        axis: r.or("axis", 1, |s| parse_int(s).filter(|v| v.abs() <= I32), INT)?,
        cudnn_off: r.or("cudnn_off", false, parse_bool, BOOL)?,
        min_calib_range: r.optional("min_calib_range", parse_float, FLOAT)?,
        max_calib_range: r.optional("max_calib_range", parse_float, FLOAT)?,
    }))
}

fn parse_pool(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    let kernel = r.or("kernel", vec![], dims(1), "a tuple of positive integers")?;
    let pool_type = PoolType::ALL[r.choice("pool_type", Some(0), PoolType::NAMES)?];
    let global_pool = r.or("global_pool", false, parse_bool, BOOL)?;
    let cudnn_off = r.or("cudnn_off", false, parse_bool, BOOL)?;
    let pooling_convention = PoolingConvention::ALL
        [r.choice("pooling_convention", Some(0), PoolingConvention::NAMES)?];
    let stride = r.or("stride", vec![], dims(1), "a tuple of positive integers")?;
    let pad = r.or("pad", vec![], dims(0), "a tuple of non-negative integers")?;
    let p_value = r.optional("p_value", parse_int, INT)?;
    let count_include_pad = r.optional("count_include_pad", parse_bool, BOOL)?;
    let mut layout = layouts(r)?;
    let k = kernel.len();
    // MXNet's PoolingParamParser: the layout defaults from the kernel's rank; stride and pad
    // default to 1 and 0 (three of each when the kernel is absent).
    if k > 0 {
        layout = Some(layout.unwrap_or(Layout::default_for(k)));
    }
    if k > 3 || (k == 0 && !global_pool) {
        return Err(format!(
            "{k}-D pooling is not supported (give a kernel of 1 to 3 dimensions, or global_pool)"
        ));
    }
    let n = if k == 0 { 3 } else { k };
    let stride = if stride.is_empty() {
        vec![1; n]
    } else {
        stride
    };
    let pad = if pad.is_empty() { vec![0; n] } else { pad };
    if k > 0 && (stride.len() != k || pad.len() != k) {
        return Err(format!(
            "stride {stride:?} and pad {pad:?} must have as many dimensions as kernel {kernel:?}"
        ));
    }
    if let Some(l) = layout {
        if k > 0 && l.spatial_dims() != k {
            return Err(format!("layout {l} does not fit a {k}-D pooling"));
        }
    }
    if pool_type == PoolType::Lp && p_value.is_none() {
        return Err("lp pooling requires p_value".into());
    }
    Ok(OpParams::Pooling(PoolingParam {
        kernel,
        stride,
        pad,
        pool_type,
        pooling_convention,
        global_pool,
        cudnn_off,
        p_value,
        count_include_pad,
        layout,
    }))
}

fn parse_act(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    let names: Vec<&str> = ActType::ALL.iter().map(|a| a.name()).collect();
    let i = r.choice("act_type", None, &names)?;
    Ok(OpParams::Activation(ActivationParam {
        act_type: ActType::ALL[i],
    }))
}

fn parse_leaky(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    Ok(OpParams::LeakyReLU(LeakyReLUParam {
        act_type: LeakyActType::ALL[r.choice("act_type", Some(1), LeakyActType::NAMES)?],
        slope: r.or("slope", 0.25, parse_float, FLOAT)?,
        lower_bound: r.or("lower_bound", 0.125, parse_float, FLOAT)?,
        upper_bound: r.or("upper_bound", 0.334, parse_float, FLOAT)?,
    }))
}

fn parse_concat(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    Ok(OpParams::Concat(ConcatParam {
        num_args: r.required("num_args", count(1, I32), "a positive integer")?,
        dim: r.or("dim", 1, |s| parse_int(s).filter(|v| v.abs() <= I32), INT)?,
    }))
}

fn parse_dropout(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    let p = r.or(
        "p",
        0.5,
        |s| parse_float(s).filter(|v| (0.0..=1.0).contains(v)),
        "a number from 0 to 1",
    )?;
    let mode = DropoutMode::ALL[r.choice("mode", Some(0), DropoutMode::NAMES)?];
    let axes = r.or("axes", vec![], dims(0), TUPLE)?;
    let cudnn_off = match r.optional("cudnn_off", parse_bool, BOOL)? {
        Some(b) => Some(b),
        None => Some(false),
    };
    Ok(OpParams::Dropout(DropoutParam {
        p,
        mode,
        axes,
        cudnn_off,
    }))
}

fn parse_softmax(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    const DTYPES: [&str; 3] = ["float16", "float32", "float64"];
    Ok(OpParams::Softmax(SoftmaxParam {
        axis: r.or("axis", -1, |s| parse_int(s).filter(|v| v.abs() <= I32), INT)?,
        temperature: r.optional("temperature", parse_float, FLOAT)?,
        dtype: r.optional_choice("dtype", &DTYPES)?.map(|i| match i {
            0 => DType::Float16,
            1 => DType::Float32,
            _ => DType::Float64,
        }),
        use_length: r.optional("use_length", parse_bool, BOOL)?.unwrap_or(false),
    }))
}

fn parse_softmax_output(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    Ok(OpParams::SoftmaxOutput(SoftmaxOutputParam {
        grad_scale: r.or("grad_scale", 1.0, parse_float, FLOAT)?,
        ignore_label: r.or("ignore_label", -1.0, parse_float, FLOAT)?,
        multi_output: r.or("multi_output", false, parse_bool, BOOL)?,
        use_ignore: r.or("use_ignore", false, parse_bool, BOOL)?,
        preserve_shape: r.or("preserve_shape", false, parse_bool, BOOL)?,
        normalization: SoftmaxNormalization::ALL
            [r.choice("normalization", Some(0), SoftmaxNormalization::NAMES)?],
        out_grad: r.or("out_grad", false, parse_bool, BOOL)?,
        smooth_alpha: r.or("smooth_alpha", 0.0, parse_float, FLOAT)?,
    }))
}

fn parse_reshape(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    let codes = |s: &str| -> Option<Vec<i64>> {
        let v = parse_tuple(s)?;
        v.iter().all(|d| (-4..=I32).contains(d)).then_some(v)
    };
    let shape = r.or("shape", vec![], codes, "a tuple of integers ≥ -4")?;
    let reverse = r.or("reverse", false, parse_bool, BOOL)?;
    let target_shape = r.optional("target_shape", codes, TUPLE)?;
    let keep_highest = r.or("keep_highest", false, parse_bool, BOOL)?;
    Ok(OpParams::Reshape(ReshapeParam {
        shape,
        reverse,
        target_shape,
        keep_highest,
    }))
}

fn parse_clip(r: &mut AttrReader<'_>) -> Result<OpParams, String> {
    Ok(OpParams::Clip(ClipParam {
        a_min: r.required("a_min", parse_float, FLOAT)?,
        a_max: r.required("a_max", parse_float, FLOAT)?,
    }))
}

/// Parses the attributes of the known operator `op` (a canonical name).
pub(crate) fn parse_params(op: &str, attrs: &BTreeMap<String, String>) -> Result<OpParams, String> {
    let mut r = AttrReader::new(op, attrs);
    let params = match op {
        "FullyConnected" => parse_fc(&mut r)?,
        "Convolution" => parse_conv(&mut r)?,
        "BatchNorm" => parse_bn(&mut r)?,
        "Pooling" => parse_pool(&mut r)?,
        "Activation" => parse_act(&mut r)?,
        "LeakyReLU" => parse_leaky(&mut r)?,
        "Flatten" => OpParams::Flatten,
        "elemwise_add" => OpParams::Elemwise(BinaryOp::Add),
        "elemwise_sub" => OpParams::Elemwise(BinaryOp::Sub),
        "elemwise_mul" => OpParams::Elemwise(BinaryOp::Mul),
        "elemwise_div" => OpParams::Elemwise(BinaryOp::Div),
        "broadcast_add" => OpParams::Broadcast(BinaryOp::Add),
        "broadcast_sub" => OpParams::Broadcast(BinaryOp::Sub),
        "broadcast_mul" => OpParams::Broadcast(BinaryOp::Mul),
        "broadcast_div" => OpParams::Broadcast(BinaryOp::Div),
        "Concat" => parse_concat(&mut r)?,
        "Dropout" => parse_dropout(&mut r)?,
        "softmax" => parse_softmax(&mut r)?,
        "SoftmaxOutput" => parse_softmax_output(&mut r)?,
        "Reshape" => parse_reshape(&mut r)?,
        "clip" => parse_clip(&mut r)?,
        other => return Err(format!("unknown operator {other}")),
    };
    r.finish()?;
    Ok(params)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

impl OpParams {
    /// Names of the inputs, in order (`None` for an unknown operator).
    pub fn input_names(&self) -> Option<Vec<String>> {
        Some(match self {
            OpParams::FullyConnected(p) if p.no_bias => strings(&["data", "weight"]),
            OpParams::FullyConnected(_) => strings(&["data", "weight", "bias"]),
            OpParams::Convolution(p) if p.no_bias => strings(&["data", "weight"]),
            OpParams::Convolution(_) => strings(&["data", "weight", "bias"]),
            OpParams::BatchNorm(_) => {
                strings(&["data", "gamma", "beta", "moving_mean", "moving_var"])
            }
            OpParams::LeakyReLU(p) if p.act_type == LeakyActType::Prelu => {
                strings(&["data", "gamma"])
            }
            OpParams::Elemwise(_) | OpParams::Broadcast(_) => strings(&["lhs", "rhs"]),
            OpParams::Concat(p) => (0..p.num_args).map(|i| format!("arg{i}")).collect(),
            OpParams::Softmax(p) if p.use_length => strings(&["data", "length"]),
            OpParams::SoftmaxOutput(_) => strings(&["data", "label"]),
            OpParams::Unknown { .. } => return None,
            _ => strings(&["data"]),
        })
    }

    /// Number of inputs (`None` for an unknown operator).
    pub fn num_inputs(&self) -> Option<usize> {
        self.input_names().map(|n| n.len())
    }

    /// Number of outputs, hidden ones included (as counted in `node_row_ptr`).
    pub fn num_outputs(&self) -> usize {
        match self {
            OpParams::BatchNorm(_) => 3,
            OpParams::Pooling(p) if p.has_workspace() => 2,
            OpParams::LeakyReLU(p) if p.act_type == LeakyActType::Rrelu => 2,
            OpParams::Dropout(_) => 2,
            OpParams::Unknown { num_outputs } => *num_outputs,
            _ => 1,
        }
    }

    /// Number of outputs a symbol of this operator exposes.
    pub fn num_visible_outputs(&self) -> usize {
        match self {
            OpParams::BatchNorm(p) if p.output_mean_var => 3,
            OpParams::BatchNorm(_) | OpParams::Pooling(_) | OpParams::Dropout(_) => 1,
            _ => self.num_outputs(),
        }
    }

    /// Name of output `index` as used in `list_outputs` (`output`, `mean`, `mask`, ...).
    pub fn output_name(&self, index: usize) -> String {
        let named: &[&str] = match self {
            OpParams::BatchNorm(_) => &["output", "mean", "var"],
            OpParams::Pooling(p) if p.has_workspace() => &["output", "workspace"],
            OpParams::LeakyReLU(p) if p.act_type == LeakyActType::Rrelu => &["output", "mask"],
            OpParams::Dropout(_) => &["output", "mask"],
            OpParams::Unknown { num_outputs } if *num_outputs != 1 => {
                return format!("output{index}")
            }
            _ => &["output"],
        };
        named.get(index).copied().unwrap_or("output").to_string()
    }

    /// Indices of the inputs the operator updates in place: its auxiliary states.
    pub fn mutated_inputs(&self) -> &'static [usize] {
        match self {
            OpParams::BatchNorm(_) => &[3, 4],
            _ => &[],
        }
    }

    /// The attribute MXNet sets on a variable passed as input `index` when the variable has
    /// no `__init__` (`FSetInputVarAttrOnCompose`).
    pub(crate) fn default_var_init(&self, index: usize) -> Option<&'static str> {
        match (self, index) {
            (OpParams::BatchNorm(_), 3) => Some(r#"["zero", {}]"#),
            (OpParams::BatchNorm(_), 4) => Some(r#"["one", {}]"#),
            (OpParams::LeakyReLU(p), 1) if p.act_type == LeakyActType::Prelu => {
                Some(r#"["Constant", {"value": 0.25}]"#)
            }
            _ => None,
        }
    }
}

/// For operators taking any number of inputs: the attribute holding the count, which
/// composition fills in (`Concat`'s `num_args`).
pub(crate) fn var_num_args_key(op: &str) -> Option<&'static str> {
    (op == "Concat").then_some("num_args")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aliases_resolve_to_canonical_names() {
        assert_eq!(canonical_op("_Plus"), Some("elemwise_add"));
        assert_eq!(canonical_op("Softmax"), Some("SoftmaxOutput"));
        assert_eq!(canonical_op("flatten"), Some("Flatten"));
        assert_eq!(canonical_op("broadcast_minus"), Some("broadcast_sub"));
        assert_eq!(canonical_op("Convolution"), Some("Convolution"));
        assert_eq!(canonical_op("slice_axis"), None);
    }

    #[test]
    fn convolution_defaults_follow_the_kernel_rank() {
        let p = parse_params(
            "Convolution",
            &attrs(&[("kernel", "(3, 3)"), ("num_filter", "8")]),
        )
        .unwrap();
        let OpParams::Convolution(c) = p else {
            panic!()
        };
        assert_eq!(c.stride, vec![1, 1]);
        assert_eq!(c.dilate, vec![1, 1]);
        assert_eq!(c.pad, vec![0, 0]);
        assert_eq!(c.layout, Layout::Nchw);
        assert!(parse_params("Convolution", &attrs(&[("num_filter", "8")])).is_err());
        assert!(parse_params(
            "Convolution",
            &attrs(&[
                ("kernel", "(3, 3)"),
                ("num_filter", "8"),
                ("stride", "(2,)")
            ])
        )
        .is_err());
        assert!(parse_params(
            "Convolution",
            &attrs(&[("kernel", "(3, 3)"), ("num_filter", "0")])
        )
        .is_err());
    }

    #[test]
    fn pooling_outputs_follow_the_onednn_build() {
        let max = parse_params("Pooling", &attrs(&[("kernel", "(3, 3)")])).unwrap();
        assert_eq!(max.num_outputs(), 2);
        assert_eq!(max.num_visible_outputs(), 1);
        assert_eq!(max.output_name(1), "workspace");
        let avg = parse_params(
            "Pooling",
            &attrs(&[("kernel", "(3, 3)"), ("pool_type", "avg")]),
        )
        .unwrap();
        assert_eq!(avg.num_outputs(), 1);
        let global = parse_params("Pooling", &attrs(&[("global_pool", "True")])).unwrap();
        assert_eq!(global.num_outputs(), 1);
        assert!(parse_params("Pooling", &attrs(&[])).is_err());
    }

    #[test]
    fn input_and_output_names() {
        let bn = parse_params("BatchNorm", &attrs(&[])).unwrap();
        assert_eq!(bn.num_inputs(), Some(5));
        assert_eq!(bn.mutated_inputs(), &[3, 4]);
        assert_eq!(bn.num_outputs(), 3);
        let bn3 = parse_params("BatchNorm", &attrs(&[("output_mean_var", "true")])).unwrap();
        assert_eq!(bn3.num_visible_outputs(), 3);
        let fc = parse_params(
            "FullyConnected",
            &attrs(&[("num_hidden", "4"), ("no_bias", "True")]),
        )
        .unwrap();
        assert_eq!(fc.input_names().unwrap(), vec!["data", "weight"]);
        let cat = parse_params("Concat", &attrs(&[("num_args", "3")])).unwrap();
        assert_eq!(cat.input_names().unwrap(), vec!["arg0", "arg1", "arg2"]);
        let unknown = OpParams::Unknown { num_outputs: 2 };
        assert_eq!(unknown.output_name(1), "output1");
        assert!(unknown.input_names().is_none());
    }
}
