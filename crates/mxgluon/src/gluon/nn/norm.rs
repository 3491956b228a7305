//! Normalization layers: `BatchNorm` and `LayerNorm`.

use super::basic::training;
use super::block_display;
use crate::dtype::GradReq;
use crate::error::{Error, Result};
use crate::gluon::block::{Block, BlockBase};
use crate::gluon::parameter_dict::ParamSpec;
use crate::gluon::symbol_block::sym_op;
use crate::gluon::Parameter;
use crate::init::InitSpec;
use crate::nd::ops::nn::norm_axis;
use crate::nd::{self, BatchNormOptions, NDArray};
use crate::symbol::{py_bool, py_float, Symbol};

fn channel_spec(c: usize, init: InitSpec, trainable: bool) -> ParamSpec {
    ParamSpec::new()
        .shape([c])
        .init(init)
        .allow_deferred_init(true)
        .grad_req(if trainable {
            GradReq::Write
        } else {
            GradReq::Null
        })
        .differentiable(trainable)
}

/// Batch normalization (Gluon's `nn.BatchNorm`): normalizes each channel (the axis `axis`,
/// default 1) with the batch's mean and variance in training mode (updating the running statistics as
/// `running = momentum · running + (1 − momentum) · batch`), and with the running statistics
/// in predict mode; then scales by `gamma` and shifts by `beta`.
///
/// The running statistics are updated by the training-mode forward pass itself (MXNet 1.9.1
/// updates them during the backward pass; after a forward + backward step the values are the
/// same).
///
/// `running_mean` / `running_var` are parameters with `grad_req` null that are not
/// differentiable; they are saved with the model. Without `in_channels` the channel count is
/// inferred on the first forward pass.
///
/// ```
/// use mxgluon::gluon::{nn::BatchNorm, Block};
/// use mxgluon::{autograd, nd, Context, GradReq};
/// let bn = BatchNorm::builder().build()?;
/// bn.initialize(None, Context::cpu(0))?;
/// let x = nd::array(&[1.0f32, 2.0, 3.0, 5.0], &[2, 2], None)?;
/// let y = { let _r = autograd::record(); bn.forward(&x)? };   // training mode: batch statistics
/// assert_eq!(y.shape(), &[2, 2]);
/// assert_eq!(bn.running_mean().grad_req(), GradReq::Null);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct BatchNorm {
    base: BlockBase,
    opts: BatchNormOptions,
    in_channels: usize,
    gamma: Parameter,
    beta: Parameter,
    running_mean: Parameter,
    running_var: Parameter,
}

/// Options of [`BatchNorm`].
pub struct BatchNormBuilder {
    axis: usize,
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
    use_global_stats: bool,
    gamma_initializer: InitSpec,
    beta_initializer: InitSpec,
    running_mean_initializer: InitSpec,
    running_variance_initializer: InitSpec,
    in_channels: usize,
}

impl BatchNormBuilder {
    /// The channel axis (default 1).
    pub fn axis(mut self, axis: usize) -> Self {
        self.axis = axis;
        self
    }
    /// Weight of the old running statistics in their update (default 0.9).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    /// Added to the variance before the square root (default 1e-5).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Whether to learn the shift `beta` (default true; false keeps it at its initial value).
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }
    /// Whether to learn the scale `gamma` (default true; false fixes it at 1).
    pub fn scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }
    /// Use the running statistics in training mode too (default false).
    pub fn use_global_stats(mut self, on: bool) -> Self {
        self.use_global_stats = on;
        self
    }
    /// Initializer of `gamma` (default `"ones"`).
    pub fn gamma_initializer(mut self, i: impl Into<InitSpec>) -> Self {
        self.gamma_initializer = i.into();
        self
    }
    /// Initializer of `beta` (default `"zeros"`).
    pub fn beta_initializer(mut self, i: impl Into<InitSpec>) -> Self {
        self.beta_initializer = i.into();
        self
    }
    /// Initializer of `running_mean` (default `"zeros"`).
    pub fn running_mean_initializer(mut self, i: impl Into<InitSpec>) -> Self {
        self.running_mean_initializer = i.into();
        self
    }
    /// Initializer of `running_var` (default `"ones"`).
    pub fn running_variance_initializer(mut self, i: impl Into<InitSpec>) -> Self {
        self.running_variance_initializer = i.into();
        self
    }
    /// The number of channels; 0 (default) infers it on the first forward pass.
    pub fn in_channels(mut self, c: usize) -> Self {
        self.in_channels = c;
        self
    }

    /// Creates the layer and its four parameters.
    pub fn build(self) -> Result<BatchNorm> {
        if !(0.0..=1.0).contains(&self.momentum) || self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return Err(Error::invalid_arg(
                "BatchNorm",
                format!(
                    "momentum must be in [0, 1] and epsilon positive, got momentum {} epsilon {}",
                    self.momentum, self.epsilon
                ),
            ));
        }
        let base = BlockBase::new("BatchNorm", None, None);
        let c = self.in_channels;
        let gamma = base.get_param("gamma", channel_spec(c, self.gamma_initializer, self.scale))?;
        let beta = base.get_param("beta", channel_spec(c, self.beta_initializer, self.center))?;
        let running_mean = base.get_param(
            "running_mean",
            channel_spec(c, self.running_mean_initializer, false),
        )?;
        let running_var = base.get_param(
            "running_var",
            channel_spec(c, self.running_variance_initializer, false),
        )?;
        Ok(BatchNorm {
            base,
            opts: BatchNormOptions {
                axis: self.axis,
                eps: self.epsilon,
                momentum: self.momentum,
                fix_gamma: !self.scale,
                use_global_stats: self.use_global_stats,
            },
            in_channels: c,
            gamma,
            beta,
            running_mean,
            running_var,
        })
    }
}

impl BatchNorm {
    /// Options with Gluon's defaults.
    pub fn builder() -> BatchNormBuilder {
        BatchNormBuilder {
            axis: 1,
            momentum: 0.9,
            epsilon: 1e-5,
            center: true,
            scale: true,
            use_global_stats: false,
            gamma_initializer: InitSpec::Str("ones".into()),
            beta_initializer: InitSpec::Str("zeros".into()),
            running_mean_initializer: InitSpec::Str("zeros".into()),
            running_variance_initializer: InitSpec::Str("ones".into()),
            in_channels: 0,
        }
    }

    /// The scale.
    pub fn gamma(&self) -> &Parameter {
        &self.gamma
    }
    /// The shift.
    pub fn beta(&self) -> &Parameter {
        &self.beta
    }
    /// The running mean (grad_req null).
    pub fn running_mean(&self) -> &Parameter {
        &self.running_mean
    }
    /// The running variance (grad_req null).
    pub fn running_var(&self) -> &Parameter {
        &self.running_var
    }

    fn infer(&self, x: &NDArray) -> Result<()> {
        let axis = norm_axis("BatchNorm", self.opts.axis as isize, x.shape())?;
        let c = x.shape()[axis];
        for p in [
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
        ] {
            p.set_shape(&[c])?;
        }
        Ok(())
    }
}

impl Block for BatchNorm {
    fn base(&self) -> &BlockBase {
        &self.base
    }

    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let ctx = x.context();
        let get = |p: &Parameter| self.base.param_data(p, ctx, || self.infer(x));
        let (g, b, m, v) = (
            get(&self.gamma)?,
            get(&self.beta)?,
            get(&self.running_mean)?,
            get(&self.running_var)?,
        );
        nd::batch_norm(x, &g, &b, &m, &v, &self.opts, training())
    }

    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let vars = [
            self.gamma.var(),
            self.beta.var(),
            self.running_mean.var(),
            self.running_var.var(),
        ];
        let o = &self.opts;
        sym_op(
            "BatchNorm",
            &[x, &vars[0], &vars[1], &vars[2], &vars[3]],
            &[
                ("axis", o.axis.to_string()),
                ("eps", py_float(o.eps)),
                ("fix_gamma", py_bool(o.fix_gamma).into()),
                ("momentum", py_float(o.momentum)),
                ("use_global_stats", py_bool(o.use_global_stats).into()),
            ],
            &format!("{}fwd", self.prefix()),
        )
    }

    fn describe(&self) -> String {
        let c = match self.gamma.shape() {
            Some(s) if s.first().is_some_and(|&c| c > 0) => s[0].to_string(),
            _ if self.in_channels > 0 => self.in_channels.to_string(),
            _ => "None".into(),
        };
        let py = |b: bool| if b { "True" } else { "False" };
        format!(
            "BatchNorm(axis={}, eps={:e}, momentum={}, fix_gamma={}, use_global_stats={}, in_channels={c})",
            self.opts.axis,
            self.opts.eps,
            self.opts.momentum,
            py(self.opts.fix_gamma),
            py(self.opts.use_global_stats)
        )
    }

    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(BatchNorm);

/// Layer normalization (Gluon's `nn.LayerNorm`): normalizes over axis `axis` (default the
/// last) of each sample, then scales by `gamma` and shifts by `beta` (both of that axis's
/// size, inferred on the first forward pass when `in_channels` is 0).
pub struct LayerNorm {
    base: BlockBase,
    axis: isize,
    epsilon: f64,
    center: bool,
    scale: bool,
    gamma: Parameter,
    beta: Parameter,
}

/// Options of [`LayerNorm`].
pub struct LayerNormBuilder {
    axis: isize,
    epsilon: f64,
    center: bool,
    scale: bool,
    gamma_initializer: InitSpec,
    beta_initializer: InitSpec,
    in_channels: usize,
}

impl LayerNormBuilder {
    /// The normalized axis (default −1, the last).
    pub fn axis(mut self, axis: isize) -> Self {
        self.axis = axis;
        self
    }
    /// Added to the variance (default 1e-5).
    pub fn epsilon(mut self, e: f64) -> Self {
        self.epsilon = e;
        self
    }
    /// Whether `beta` is learned (default true).
    pub fn center(mut self, c: bool) -> Self {
        self.center = c;
        self
    }
    /// Whether `gamma` is learned (default true).
    pub fn scale(mut self, s: bool) -> Self {
        self.scale = s;
        self
    }
    /// Initializer of `gamma` (default `"ones"`).
    pub fn gamma_initializer(mut self, i: impl Into<InitSpec>) -> Self {
        self.gamma_initializer = i.into();
        self
    }
    /// Initializer of `beta` (default `"zeros"`).
    pub fn beta_initializer(mut self, i: impl Into<InitSpec>) -> Self {
        self.beta_initializer = i.into();
        self
    }
    /// Size of the normalized axis; 0 (default) infers it.
    pub fn in_channels(mut self, c: usize) -> Self {
        self.in_channels = c;
        self
    }
    /// Creates the layer.
    pub fn build(self) -> Result<LayerNorm> {
        if self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return Err(Error::invalid_arg("LayerNorm", "epsilon must be positive"));
        }
        let base = BlockBase::new("LayerNorm", None, None);
        let c = self.in_channels;
        // Gluon keeps gamma/beta differentiable and only sets grad_req to null when fixed.
        let spec = |init: InitSpec, learn: bool| {
            ParamSpec::new()
                .shape([c])
                .init(init)
                .allow_deferred_init(true)
                .grad_req(if learn { GradReq::Write } else { GradReq::Null })
        };
        let gamma = base.get_param("gamma", spec(self.gamma_initializer, self.scale))?;
        let beta = base.get_param("beta", spec(self.beta_initializer, self.center))?;
        Ok(LayerNorm {
            base,
            axis: self.axis,
            epsilon: self.epsilon,
            center: self.center,
            scale: self.scale,
            gamma,
            beta,
        })
    }
}

impl LayerNorm {
    /// Options with Gluon's defaults.
    pub fn builder() -> LayerNormBuilder {
        LayerNormBuilder {
            axis: -1,
            epsilon: 1e-5,
            center: true,
            scale: true,
            gamma_initializer: InitSpec::Str("ones".into()),
            beta_initializer: InitSpec::Str("zeros".into()),
            in_channels: 0,
        }
    }
    /// The scale.
    pub fn gamma(&self) -> &Parameter {
        &self.gamma
    }
    /// The shift.
    pub fn beta(&self) -> &Parameter {
        &self.beta
    }

    fn infer(&self, x: &NDArray) -> Result<()> {
        let axis = norm_axis("LayerNorm", self.axis, x.shape())?;
        let c = x.shape()[axis];
        self.gamma.set_shape(&[c])?;
        self.beta.set_shape(&[c])
    }
}

impl Block for LayerNorm {
    fn base(&self) -> &BlockBase {
        &self.base
    }
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let ctx = x.context();
        let g = self.base.param_data(&self.gamma, ctx, || self.infer(x))?;
        let b = self.base.param_data(&self.beta, ctx, || self.infer(x))?;
        nd::layer_norm(x, &g, &b, self.axis, self.epsilon)
    }
    /// MXNet's `LayerNorm` operator on `x`, `gamma` and `beta` with the attributes Gluon
    /// passes (`axis`, `eps`; `center` / `scale` only fix the parameters' `grad_req`), named
    /// by the block scope's first automatic name (`<prefix>layernorm0`) as Gluon names it.
    /// The symbol module does not model this operator: MXNet runs the exported graph,
    /// mxgluon's own executor does not.
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        let (g, b) = (self.gamma.var(), self.beta.var());
        super::raw_op(
            "LayerNorm",
            &[x, &g, &b],
            &[
                ("axis", self.axis.to_string()),
                ("eps", py_float(self.epsilon)),
            ],
            &format!("{}layernorm0", self.prefix()),
        )
    }
    fn describe(&self) -> String {
        let c = match self.gamma.shape() {
            Some(s) if s.first().is_some_and(|&c| c > 0) => s[0].to_string(),
            _ => "None".into(),
        };
        let py = |b: bool| if b { "True" } else { "False" };
        format!(
            "LayerNorm(eps={:e}, axis={}, center={}, scale={}, in_channels={c})",
            self.epsilon,
            self.axis,
            py(self.center),
            py(self.scale)
        )
    }
    fn as_dyn(&self) -> &dyn Block {
        self
    }
}
block_display!(LayerNorm);
