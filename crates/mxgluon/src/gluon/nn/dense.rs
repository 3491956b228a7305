//! `Dense`: the fully-connected layer.

use super::block_display;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::gluon::block::{Block, BlockBase};
use crate::gluon::parameter_dict::{ParamSpec, ParameterDict};
use crate::gluon::symbol_block::{act_sym, sym_op};
use crate::gluon::Parameter;
use crate::init::InitSpec;
use crate::nd::{self, ActType, NDArray};
use crate::symbol::{py_bool, Symbol};

/// A fully-connected layer: `out = activation(x · weightᵀ + bias)` (Gluon's `nn.Dense`).
///
/// `weight` has shape `(units, in_units)` and `bias` `(units,)`. Without `in_units` the weight's
/// second dimension is inferred on the first forward pass. With `flatten` (the default) an
/// input `(N, d1, d2, …)` is treated as `(N, d1·d2·…)`; without, the layer applies to the last
/// axis.
///
/// ```
/// use mxgluon::gluon::{nn::Dense, Block};
/// use mxgluon::{init, nd, Context};
/// let d = Dense::builder(3).in_units(2).weight_initializer(init::One).build()?;
/// d.initialize(None, Context::cpu(0))?;
/// let y = d.forward(&nd::ones(&[1, 2], None)?)?;
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 2.0, 2.0]);
/// assert_eq!(d.to_string(), "Dense(2 -> 3, linear)");
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct Dense {
    base: BlockBase,
    units: usize,
    flatten: bool,
    act: Option<ActType>,
    weight: Parameter,
    bias: Option<Parameter>,
}

/// Options of [`Dense`] (Gluon's constructor arguments); finish with [`DenseBuilder::build`].
pub struct DenseBuilder {
    units: usize,
    activation: Option<ActType>,
    use_bias: bool,
    flatten: bool,
    dtype: DType,
    weight_initializer: Option<InitSpec>,
    bias_initializer: InitSpec,
    in_units: usize,
    prefix: Option<String>,
    params: Option<ParameterDict>,
}

impl DenseBuilder {
    /// An activation applied to the output (default: none, "linear").
    pub fn activation(mut self, act: ActType) -> Self {
        self.activation = Some(act);
        self
    }

    /// Whether the layer has a bias (default true).
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }

    /// Whether to flatten all but the first input axis (default true).
    pub fn flatten(mut self, flatten: bool) -> Self {
        self.flatten = flatten;
        self
    }

    /// The parameters' dtype (default float32).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The weight's initializer (default: the one given to `initialize`).
    pub fn weight_initializer(mut self, init: impl Into<InitSpec>) -> Self {
        self.weight_initializer = Some(init.into());
        self
    }

    /// The bias's initializer (default `"zeros"`).
    pub fn bias_initializer(mut self, init: impl Into<InitSpec>) -> Self {
        self.bias_initializer = init.into();
        self
    }

    /// The input size; 0 (the default) defers it to the first forward pass.
    pub fn in_units(mut self, in_units: usize) -> Self {
        self.in_units = in_units;
        self
    }

    /// An explicit prefix instead of the automatic `dense<n>_`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Shares the parameters of another block's dictionary (same `Parameter` objects).
    pub fn params(mut self, params: &ParameterDict) -> Self {
        self.params = Some(params.clone());
        self
    }

    /// Creates the layer and its parameters.
    pub fn build(self) -> Result<Dense> {
        if self.units == 0 {
            return Err(Error::invalid_arg("Dense", "units must be positive"));
        }
        let base = BlockBase::new("Dense", self.prefix.as_deref(), self.params.as_ref());
        let mut wspec = ParamSpec::new()
            .shape([self.units, self.in_units])
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
                        .shape([self.units])
                        .dtype(self.dtype)
                        .init(self.bias_initializer)
                        .allow_deferred_init(true),
                )?,
            )
        } else {
            None
        };
        Ok(Dense {
            base,
            units: self.units,
            flatten: self.flatten,
            act: self.activation,
            weight,
            bias,
        })
    }
}

impl Dense {
    /// Options for a layer with `units` outputs.
    pub fn builder(units: usize) -> DenseBuilder {
        DenseBuilder {
            units,
            activation: None,
            use_bias: true,
            flatten: true,
            dtype: DType::Float32,
            weight_initializer: None,
            bias_initializer: InitSpec::Str("zeros".into()),
            in_units: 0,
            prefix: None,
            params: None,
        }
    }

    /// A layer with `units` outputs and every other option at its default.
    pub fn new(units: usize) -> Result<Dense> {
        Dense::builder(units).build()
    }

    /// The weight parameter `(units, in_units)`.
    pub fn weight(&self) -> &Parameter {
        &self.weight
    }

    /// The bias parameter, when the layer has one.
    pub fn bias(&self) -> Option<&Parameter> {
        self.bias.as_ref()
    }

    /// Number of outputs.
    pub fn units(&self) -> usize {
        self.units
    }

    fn infer(&self, x: &NDArray) -> Result<()> {
        let xs = x.shape();
        if xs.is_empty() {
            return Err(Error::InvalidShape {
                op: "Dense",
                shape: vec![],
                reason: "the input needs at least one axis".into(),
            });
        }
        let in_units = if self.flatten {
            xs[1..].iter().product()
        } else {
            xs[xs.len() - 1]
        };
        self.weight.set_shape(&[self.units, in_units])
    }
}

impl Block for Dense {
    fn base(&self) -> &BlockBase {
        &self.base
    }

    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let ctx = x.context();
        let w = self.base.param_data(&self.weight, ctx, || self.infer(x))?;
        let b = match &self.bias {
            Some(b) => Some(self.base.param_data(b, ctx, || self.infer(x))?),
            None => None,
        };
        let y = nd::fully_connected_with(x, &w, b.as_ref(), self.units, self.flatten)?;
        match self.act {
            Some(a) => nd::activation(&y, a),
            None => Ok(y),
        }
    }

    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let w = self.weight.var();
        let b = self.bias.as_ref().map(Parameter::var);
        let mut ins = vec![x, &w];
        ins.extend(b.as_ref());
        let y = sym_op(
            "FullyConnected",
            &ins,
            &[
                ("flatten", py_bool(self.flatten).into()),
                ("no_bias", py_bool(b.is_none()).into()),
                ("num_hidden", self.units.to_string()),
            ],
            &format!("{}fwd", self.prefix()),
        )?;
        act_sym(y, self.act, self.prefix())
    }

    fn describe(&self) -> String {
        let in_units = match self.weight.shape() {
            Some(s) if s.len() == 2 && s[1] > 0 => s[1].to_string(),
            _ => "None".into(),
        };
        let act = match self.act {
            Some(a) => format!("Activation({a})"),
            None => "linear".into(),
        };
        format!("Dense({in_units} -> {}, {act})", self.units)
    }

    fn as_dyn(&self) -> &dyn Block {
        self
    }
}

block_display!(Dense);
