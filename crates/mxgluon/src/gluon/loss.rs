//! `gluon::loss`: loss functions (Gluon's `mxnet.gluon.loss`).
//!
//! Every loss returns one value per sample: the elementwise loss, optionally multiplied by a
//! per-sample `sample_weight` (broadcast) and by the scalar `weight`, is averaged over every
//! axis except `batch_axis`. Gradients flow to `pred` (labels are data).
//!
//! ```
//! use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
//! use mxgluon::{autograd, nd, GradReq};
//! let mut logits = nd::array(&[2.0f32, 0.0, 0.0, 0.0, 3.0, 0.0], &[2, 3], None)?;
//! logits.attach_grad(GradReq::Write)?;
//! let labels = nd::array(&[0.0f32, 1.0], &[2], None)?;
//! let l = {
//!     let _r = autograd::record();
//!     SoftmaxCrossEntropyLoss::new().loss(&logits, &labels, None)?
//! };
//! assert_eq!(l.shape(), &[2]);
//! l.backward()?;   // d/dlogits = softmax − one_hot
//! # Ok::<(), mxgluon::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::nd::{self, ActType, NDArray};

/// A loss function: `(pred, label, sample_weight) → per-sample loss`.
pub trait Loss: Send + Sync {
    /// The per-sample loss, shape `(batch,)` for the usual `batch_axis = 0`.
    fn loss(
        &self,
        pred: &NDArray,
        label: &NDArray,
        sample_weight: Option<&NDArray>,
    ) -> Result<NDArray>;
}

/// `weight` and `batch_axis`, shared by every loss.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Common {
    weight: Option<f64>,
    batch_axis: usize,
}

impl Common {
    fn apply(&self, loss: NDArray, sample_weight: Option<&NDArray>) -> Result<NDArray> {
        let mut loss = loss;
        if let Some(sw) = sample_weight {
            loss = nd::mul(&loss, sw)?;
        }
        if let Some(w) = self.weight {
            loss = loss.mul_scalar(w)?;
        }
        // Mean over every axis but the batch axis.
        if self.batch_axis >= loss.ndim() {
            return Err(Error::invalid_arg(
                "loss",
                format!(
                    "batch_axis {} is out of range for a loss of shape {:?}",
                    self.batch_axis,
                    loss.shape()
                ),
            ));
        }
        let axes: Vec<usize> = (0..loss.ndim()).filter(|&a| a != self.batch_axis).collect();
        if axes.is_empty() {
            return Ok(loss);
        }
        loss.mean_axis(&axes, false)
    }
}

fn reshape_like(label: &NDArray, pred: &NDArray) -> Result<NDArray> {
    if label.shape() == pred.shape() {
        return Ok(label.clone());
    }
    if label.size() != pred.size() {
        return Err(Error::ShapeMismatch {
            op: "loss",
            lhs: pred.shape().to_vec(),
            rhs: label.shape().to_vec(),
            detail: "the label must have as many elements as the prediction".into(),
        });
    }
    label.reshape(pred.shape())
}

macro_rules! common_options {
    ($t:ty) => {
        impl $t {
            /// Multiplies the loss by a scalar.
            pub fn weight(mut self, weight: f64) -> Self {
                self.common.weight = Some(weight);
                self
            }
            /// The axis that indexes samples (default 0); the loss is averaged over the others.
            pub fn batch_axis(mut self, axis: usize) -> Self {
                self.common.batch_axis = axis;
                self
            }
        }
    };
}

/// Softmax cross-entropy `−Σ label·log_softmax(pred)` (Gluon's `SoftmaxCrossEntropyLoss`).
///
/// With `sparse_label` (default) the label holds class indices (shape of `pred` without
/// `axis`); otherwise a distribution of `pred`'s shape. With `from_logits` `pred` is already
/// a log-probability.
#[derive(Debug, Clone)]
pub struct SoftmaxCrossEntropyLoss {
    axis: isize,
    sparse_label: bool,
    from_logits: bool,
    common: Common,
}

impl SoftmaxCrossEntropyLoss {
    /// Gluon's defaults: axis −1, sparse labels, logits in, no weight, batch axis 0.
    pub fn new() -> Self {
        SoftmaxCrossEntropyLoss {
            axis: -1,
            sparse_label: true,
            from_logits: false,
            common: Common {
                weight: None,
                batch_axis: 0,
            },
        }
    }
    /// The class axis.
    pub fn axis(mut self, axis: isize) -> Self {
        self.axis = axis;
        self
    }
    /// Whether labels are class indices (true) or distributions (false).
    pub fn sparse_label(mut self, sparse: bool) -> Self {
        self.sparse_label = sparse;
        self
    }
    /// Whether `pred` is already log-probabilities.
    pub fn from_logits(mut self, from_logits: bool) -> Self {
        self.from_logits = from_logits;
        self
    }
}

impl Default for SoftmaxCrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}
common_options!(SoftmaxCrossEntropyLoss);

impl Loss for SoftmaxCrossEntropyLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sw: Option<&NDArray>) -> Result<NDArray> {
        let logp = if self.from_logits {
            pred.clone()
        } else {
            nd::log_softmax(pred, self.axis)?
        };
        let l = if self.sparse_label {
            nd::pick(&logp, label, self.axis, true)?.neg()?
        } else {
            let label = reshape_like(label, &logp)?;
            let ax =
                crate::nd::ops::nn::norm_axis("SoftmaxCrossEntropyLoss", self.axis, logp.shape())?;
            nd::mul(&logp, &label)?.sum_axis(&[ax], true)?.neg()?
        };
        self.common.apply(l, sw)
    }
}

/// Squared error `½·(label − pred)²` (Gluon's `L2Loss`; the `weight`, default 1, multiplies
/// the ½).
#[derive(Debug, Clone)]
pub struct L2Loss {
    common: Common,
}

impl L2Loss {
    /// Weight 1, batch axis 0.
    pub fn new() -> Self {
        L2Loss {
            common: Common {
                weight: Some(1.0),
                batch_axis: 0,
            },
        }
    }
}

impl Default for L2Loss {
    fn default() -> Self {
        Self::new()
    }
}
common_options!(L2Loss);

impl Loss for L2Loss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sw: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred)?;
        let l = nd::sub(&label, pred)?.square()?;
        let half = Common {
            weight: Some(self.common.weight.unwrap_or(1.0) / 2.0),
            ..self.common
        };
        half.apply(l, sw)
    }
}

/// Absolute error `|label − pred|` (Gluon's `L1Loss`).
#[derive(Debug, Clone)]
pub struct L1Loss {
    common: Common,
}

impl L1Loss {
    /// No weight, batch axis 0.
    pub fn new() -> Self {
        L1Loss {
            common: Common {
                weight: None,
                batch_axis: 0,
            },
        }
    }
}

impl Default for L1Loss {
    fn default() -> Self {
        Self::new()
    }
}
common_options!(L1Loss);

impl Loss for L1Loss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sw: Option<&NDArray>) -> Result<NDArray> {
        let label = reshape_like(label, pred)?;
        self.common.apply(nd::sub(&label, pred)?.abs()?, sw)
    }
}

/// Binary cross-entropy with a sigmoid (Gluon's `SigmoidBinaryCrossEntropyLoss`). From
/// logits (the default) it uses the stable form `max(x, 0) − x·z + log(1 + e^(−|x|))`; with
/// `from_sigmoid` `pred` holds probabilities and `−(z·log(p + ε) + (1 − z)·log(1 − p + ε))`
/// with ε = 1e-12 is used.
#[derive(Debug, Clone)]
pub struct SigmoidBinaryCrossEntropyLoss {
    from_sigmoid: bool,
    common: Common,
}

impl SigmoidBinaryCrossEntropyLoss {
    /// Logits in, no weight, batch axis 0.
    pub fn new() -> Self {
        SigmoidBinaryCrossEntropyLoss {
            from_sigmoid: false,
            common: Common {
                weight: None,
                batch_axis: 0,
            },
        }
    }
    /// Whether `pred` already holds probabilities.
    pub fn from_sigmoid(mut self, from_sigmoid: bool) -> Self {
        self.from_sigmoid = from_sigmoid;
        self
    }
}

impl Default for SigmoidBinaryCrossEntropyLoss {
    fn default() -> Self {
        Self::new()
    }
}
common_options!(SigmoidBinaryCrossEntropyLoss);

impl Loss for SigmoidBinaryCrossEntropyLoss {
    fn loss(&self, pred: &NDArray, label: &NDArray, sw: Option<&NDArray>) -> Result<NDArray> {
        let z = reshape_like(label, pred)?;
        let l = if !self.from_sigmoid {
            let soft = nd::activation(&pred.abs()?.neg()?, ActType::SoftRelu)?;
            nd::add(&nd::sub(&pred.relu()?, &nd::mul(pred, &z)?)?, &soft)?
        } else {
            const EPS: f64 = 1e-12;
            let a = nd::mul(&pred.add_scalar(EPS)?.log()?, &z)?;
            let b = nd::mul(&pred.rsub_scalar(1.0 + EPS)?.log()?, &z.rsub_scalar(1.0)?)?;
            nd::add(&a, &b)?.neg()?
        };
        self.common.apply(l, sw)
    }
}
