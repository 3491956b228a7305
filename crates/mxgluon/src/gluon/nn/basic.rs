//! Parameter-free layers (Activation, LeakyReLU, ELU, Dropout, Flatten) and the ones with a
//! single parameter (PReLU, Embedding).

use super::block_display;
use crate::autograd;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gluon::block::{Block, BlockBase};
use crate::gluon::parameter_dict::{ParamSpec, ParameterDict};
use crate::gluon::symbol_block::sym_op;
use crate::gluon::Parameter;
use crate::init::{self, InitSpec};
use crate::nd::{self, ActType, LeakyAct, NDArray};
use crate::symbol::{py_bool, py_float, py_tuple, Symbol};

/// Applies an activation function elementwise (Gluon's `nn.Activation`). As in Gluon, the
/// block is named after its activation (`relu0_`, `tanh0_`), not after its class.
///
/// ```
/// use mxgluon::gluon::{nn::Activation, Block};
/// use mxgluon::nd::{self, ActType};
/// let a = Activation::new(ActType::Relu);
/// assert!(a.prefix().starts_with("relu"));
/// let y = a.forward(&nd::array(&[-1.0f32, 2.0], &[2], None)?)?;
/// assert_eq!(y.to_vec::<f32>()?, vec![0.0, 2.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct Activation {
    base: BlockBase,
    act: ActType,
}

impl Activation {
    /// The layer for `act`.
    pub fn new(act: ActType) -> Activation {
        Activation {
            base: BlockBase::with_alias("Activation", act.name(), None, None),
            act,
        }
    }
}

impl Block for Activation {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        nd::activation(x, self.act)
    }
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        sym_op(
            "Activation",
            &[x],
            &[("act_type", self.act.name().to_string())],
            &format!("{}fwd", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        format!("Activation({})", self.act)
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(Activation);

/// Leaky rectifier `x > 0 ? x : alpha·x` (Gluon's `nn.LeakyReLU`).
pub struct LeakyReLU {
    base: BlockBase,
    alpha: f64,
}

impl LeakyReLU {
    /// The layer with slope `alpha` for negative inputs (must be ≥ 0).
    pub fn new(alpha: f64) -> Result<LeakyReLU> {
        if alpha.is_nan() || alpha < 0.0 {
            return Err(Error::invalid_arg(
                "LeakyReLU",
                format!("alpha must be >= 0, got {alpha}"),
            ));
        }
        Ok(LeakyReLU {
            base: BlockBase::new("LeakyReLU", None, None),
            alpha,
        })
    }
}

impl Block for LeakyReLU {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        nd::leaky_relu(x, LeakyAct::Leaky, self.alpha, None)
    }
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        sym_op(
            "LeakyReLU",
            &[x],
            &[
                ("act_type", "leaky".into()),
                ("slope", py_float(self.alpha)),
            ],
            &format!("{}fwd", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        format!("LeakyReLU({})", self.alpha)
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(LeakyReLU);

/// Exponential linear unit `x > 0 ? x : alpha·(eˣ − 1)` (Gluon's `nn.ELU`).
pub struct ELU {
    base: BlockBase,
    alpha: f64,
}

impl ELU {
    /// The layer with scale `alpha` (Gluon's default is 1.0).
    pub fn new(alpha: f64) -> ELU {
        ELU {
            base: BlockBase::new("ELU", None, None),
            alpha,
        }
    }
}

impl Block for ELU {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        nd::leaky_relu(x, LeakyAct::Elu, self.alpha, None)
    }
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        // Gluon's ELU calls the operator without a name: the block scope's first
        // automatic name.
        sym_op(
            "LeakyReLU",
            &[x],
            &[("act_type", "elu".into()), ("slope", py_float(self.alpha))],
            &format!("{}leakyrelu0", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        format!("ELU({})", self.alpha)
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(ELU);

/// Parametric rectifier `x > 0 ? x : alpha·x` with a learnable `alpha` per channel (axis 1)
/// (Gluon's `nn.PReLU`; `alpha` starts at 0.25 unless another initializer is given).
pub struct PReLU {
    base: BlockBase,
    alpha: Parameter,
}

impl PReLU {
    /// The layer with `in_channels` slopes (1 = one slope shared by every channel).
    pub fn new(in_channels: usize) -> Result<PReLU> {
        PReLU::with_initializer(in_channels, init::Constant::new(0.25))
    }

    /// The layer with a custom initializer for `alpha`.
    pub fn with_initializer(in_channels: usize, init: impl Into<InitSpec>) -> Result<PReLU> {
        if in_channels == 0 {
            return Err(Error::invalid_arg("PReLU", "in_channels must be positive"));
        }
        let base = BlockBase::new("PReLU", None, None);
        let alpha = base.get_param("alpha", ParamSpec::new().shape([in_channels]).init(init))?;
        Ok(PReLU { base, alpha })
    }

    /// The learnable slopes.
    pub fn alpha(&self) -> &Parameter {
        &self.alpha
    }
}

impl Block for PReLU {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let a = self.alpha.data(x.context())?;
        nd::leaky_relu(x, LeakyAct::Prelu, 0.0, Some(&a))
    }
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let a = self.alpha.var();
        sym_op(
            "LeakyReLU",
            &[x, &a],
            &[("act_type", "prelu".into())],
            &format!("{}fwd", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        "PReLU".into()
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(PReLU);

/// Randomly zeroes elements with probability `rate` in training mode and scales the others by
/// `1/(1−rate)`; the identity in predict mode (Gluon's `nn.Dropout`). With `axes`, one mask
/// value is shared along those axes (variational dropout).
pub struct Dropout {
    base: BlockBase,
    rate: f64,
    axes: Vec<usize>,
}

impl Dropout {
    /// Dropout with probability `rate` in `[0, 1)`.
    pub fn new(rate: f64) -> Result<Dropout> {
        Dropout::with_axes(rate, &[])
    }

    /// Dropout whose mask is shared along `axes`.
    pub fn with_axes(rate: f64, axes: &[usize]) -> Result<Dropout> {
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::invalid_arg(
                "Dropout",
                format!("rate must be in [0, 1), got {rate}"),
            ));
        }
        Ok(Dropout {
            base: BlockBase::new("Dropout", None, None),
            rate,
            axes: axes.to_vec(),
        })
    }
}

impl Block for Dropout {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        nd::dropout_axes(x, self.rate, &self.axes)
    }
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        if self.rate == 0.0 {
            // Gluon applies `F.identity` without a name: a `_copy` node named by the block
            // scope's first automatic name.
            return super::raw_op("_copy", &[x], &[], &format!("{}identity0", self.prefix()));
        }
        sym_op(
            "Dropout",
            &[x],
            &[
                ("axes", py_tuple(&self.axes)),
                ("cudnn_off", "False".into()),
                ("p", py_float(self.rate)),
            ],
            &format!("{}fwd", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        let axes: Vec<String> = self.axes.iter().map(|a| a.to_string()).collect();
        let axes = match axes.len() {
            1 => format!("({},)", axes[0]),
            _ => format!("({})", axes.join(", ")),
        };
        format!("Dropout(p = {}, axes={axes})", self.rate)
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(Dropout);

/// Flattens `(N, d1, d2, …)` to `(N, d1·d2·…)` (Gluon's `nn.Flatten`).
pub struct Flatten {
    base: BlockBase,
}

impl Flatten {
    /// The layer.
    pub fn new() -> Flatten {
        Flatten {
            base: BlockBase::new("Flatten", None, None),
        }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Block for Flatten {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        nd::flatten(x)
    }
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        sym_op("Flatten", &[x], &[], &format!("{}flatten0", self.prefix()))
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(Flatten);

/// Maps integer indices to rows of a `(input_dim, output_dim)` weight (Gluon's
/// `nn.Embedding`). Indices are given as an array of any dtype holding whole numbers; out of
/// range indices are clipped to `[0, input_dim − 1]` as in MXNet.
///
/// ```
/// use mxgluon::gluon::{nn::Embedding, Block};
/// use mxgluon::{init, nd, Context};
/// let e = Embedding::builder(10, 4).weight_initializer(init::One).build()?;
/// e.initialize(None, Context::cpu(0))?;
/// let y = e.forward(&nd::array(&[1.0f32, 7.0, 7.0], &[3], None)?)?;
/// assert_eq!(y.shape(), &[3, 4]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct Embedding {
    base: BlockBase,
    input_dim: usize,
    output_dim: usize,
    dtype: DType,
    sparse_grad: bool,
    weight: Parameter,
}

/// Options of [`Embedding`].
pub struct EmbeddingBuilder {
    input_dim: usize,
    output_dim: usize,
    dtype: DType,
    sparse_grad: bool,
    weight_initializer: Option<InitSpec>,
    prefix: Option<String>,
    params: Option<ParameterDict>,
}

impl EmbeddingBuilder {
    /// The weight's dtype (default float32).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }
    /// The weight's initializer (default: the one given to `initialize`).
    pub fn weight_initializer(mut self, init: impl Into<InitSpec>) -> Self {
        self.weight_initializer = Some(init.into());
        self
    }
    /// Gluon's `sparse_grad`: the weight's gradient is row-sparse (`grad_stype`
    /// `row_sparse`) and holds only the rows a batch touches, so backward and a lazy
    /// optimizer step cost O(batch) instead of O(table) (default false).
    pub fn sparse_grad(mut self, sparse_grad: bool) -> Self {
        self.sparse_grad = sparse_grad;
        self
    }
    /// An explicit prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
    /// Shares another block's parameters.
    pub fn params(mut self, params: &ParameterDict) -> Self {
        self.params = Some(params.clone());
        self
    }
    /// Creates the layer.
    pub fn build(self) -> Result<Embedding> {
        if self.input_dim == 0 || self.output_dim == 0 {
            return Err(Error::invalid_arg(
                "Embedding",
                "input_dim and output_dim must be positive",
            ));
        }
        let base = BlockBase::new("Embedding", self.prefix.as_deref(), self.params.as_ref());
        let mut spec = ParamSpec::new()
            .shape([self.input_dim, self.output_dim])
            .dtype(self.dtype)
            .allow_deferred_init(true);
        if let Some(i) = self.weight_initializer {
            spec = spec.init(i);
        }
        if self.sparse_grad {
            spec = spec.grad_stype(crate::dtype::StorageType::RowSparse);
        }
        let weight = base.get_param("weight", spec)?;
        Ok(Embedding {
            base,
            input_dim: self.input_dim,
            output_dim: self.output_dim,
            dtype: self.dtype,
            sparse_grad: self.sparse_grad,
            weight,
        })
    }
}

impl Embedding {
    /// Options for a table of `input_dim` rows of `output_dim` values.
    pub fn builder(input_dim: usize, output_dim: usize) -> EmbeddingBuilder {
        EmbeddingBuilder {
            input_dim,
            output_dim,
            dtype: DType::Float32,
            sparse_grad: false,
            weight_initializer: None,
            prefix: None,
            params: None,
        }
    }

    /// The weight `(input_dim, output_dim)`.
    pub fn weight(&self) -> &Parameter {
        &self.weight
    }
}

impl Block for Embedding {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let w = self.weight.data(x.context())?;
        nd::embedding_ex(x, &w, self.sparse_grad)
    }
    /// MXNet's `Embedding` operator on `x` and the weight's variable, named `<prefix>fwd`
    /// with Gluon's attributes (`dtype`, `input_dim`, `output_dim`, `sparse_grad`). The
    /// symbol module does not model this operator: MXNet runs the exported graph, mxgluon's
    /// own executor does not.
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let w = self.weight.var();
        super::raw_op(
            "Embedding",
            &[x, &w],
            &[
                ("dtype", self.dtype.name().to_string()),
                ("input_dim", self.input_dim.to_string()),
                ("output_dim", self.output_dim.to_string()),
                ("sparse_grad", py_bool(self.sparse_grad).to_string()),
            ],
            &format!("{}fwd", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        format!(
            "Embedding({} -> {}, {})",
            self.input_dim, self.output_dim, self.dtype
        )
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(Embedding);

/// Whether Dropout and BatchNorm behave as in training on this thread.
pub(crate) fn training() -> bool {
    autograd::is_training()
}
