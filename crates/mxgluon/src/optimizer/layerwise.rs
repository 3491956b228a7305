//! Layer-wise adaptive methods: LAMB and LARS. Their kernels use whole-array norms, so
//! [`Optimizer::elementwise`] is false and they always see whole arrays.

use serde_json::{Map, Value};

use super::kernel::{check_len, clip, impl_steps, op_clip, shared_builders, slots, sum_sq, Real};
use super::sgd::{multi_sgd, obj};
use super::{Optimizer, OptimizerParams, StepArgs};

// ---------------------------------------------------------------------------------- LAMB

/// LAMB (MXNet's `lamb`, operator `_multi_lamb_update`, which its updater always uses).
///
/// ```text
/// g  = clip(rescale_grad·grad, ±clip_gradient)
/// m  = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g²
/// u  = m̂ / (√v̂ + ε) + wd·w        (m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t); m, v without
///                                   bias_correction)
/// r1 = ‖w‖ bounded to [lower_bound, upper_bound];   r2 = ‖u‖
/// w  = w − lr·(r1/r2)·u           (ratio 1 when r1 or r2 is 0)
/// ```
///
/// As in MXNet, a bound is applied only when it is positive (0 or `None` means no bound).
/// Defaults: `learning_rate` 0.001, `beta1` 0.9, `beta2` 0.999, `epsilon` 1e-6, no bounds,
/// `bias_correction` true. States `mean`, `var`. The kernel makes two passes (the second
/// recomputes `u` from the updated moments) so it needs no scratch memory.
///
/// ```
/// use mxgluon::optimizer::{Lamb, Optimizer};
/// let opt = Lamb::new(0.01).lower_bound(1e-3).upper_bound(10.0);
/// assert!(!opt.elementwise());
/// assert_eq!(opt.hyper_json()["upper_bound"], 10.0);
/// ```
#[derive(Debug, Clone)]
pub struct Lamb {
    params: OptimizerParams,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    lower_bound: Option<f64>,
    upper_bound: Option<f64>,
    bias_correction: bool,
}

impl Default for Lamb {
    fn default() -> Self {
        Lamb {
            params: OptimizerParams {
                learning_rate: 0.001,
                ..OptimizerParams::default()
            },
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            lower_bound: None,
            upper_bound: None,
            bias_correction: true,
        }
    }
}

impl Lamb {
    /// LAMB with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Lamb::default().learning_rate(learning_rate)
    }
    /// Sets `beta1` (default 0.9).
    pub fn beta1(mut self, beta1: f64) -> Self {
        self.beta1 = beta1;
        self
    }
    /// Sets `beta2` (default 0.999).
    pub fn beta2(mut self, beta2: f64) -> Self {
        self.beta2 = beta2;
        self
    }
    /// Sets `epsilon` (default 1e-6).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Sets (or removes) the lower bound of the weight norm (default none).
    pub fn lower_bound(mut self, bound: impl Into<Option<f64>>) -> Self {
        self.lower_bound = bound.into();
        self
    }
    /// Sets (or removes) the upper bound of the weight norm (default none).
    pub fn upper_bound(mut self, bound: impl Into<Option<f64>>) -> Self {
        self.upper_bound = bound.into();
        self
    }
    /// Whether the moments are bias-corrected (default true).
    pub fn bias_correction(mut self, on: bool) -> Self {
        self.bias_correction = on;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("lamb", w.len(), g.len());
        let [mean, var] = slots::<T, 2>("lamb", states, w.len());
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let t = T::of(a.t as f64);
        let (d1, d2) = if self.bias_correction {
            (T::ONE - b1.powf(t), T::ONE - b2.powf(t))
        } else {
            (T::ONE, T::ONE)
        };
        let (rg, wd, eps) = (T::of(a.rescale_grad), T::of(a.wd), T::of(self.epsilon));
        let c = op_clip(a.clip_gradient).map(T::of);
        let (ob1, ob2) = (T::ONE - b1, T::ONE - b2);
        let direction = |m: T, v: T, w: T| -> T {
            if self.bias_correction {
                (m / d1) / ((v / d2).sqrt() + eps) + wd * w
            } else {
                m / (v.sqrt() + eps) + wd * w
            }
        };

        let w_sq = sum_sq(w);
        let mut u_sq = 0.0f64;
        for (((w, &g), m), v) in w.iter().zip(g).zip(mean.iter_mut()).zip(var.iter_mut()) {
            let mut sg = g * rg;
            if let Some(c) = c {
                sg = clip(sg, c);
            }
            *m = b1 * *m + ob1 * sg;
            *v = b2 * *v + ob2 * sg * sg;
            let u = direction(*m, *v, *w).to_f64();
            u_sq += u * u;
        }

        let mut r1 = T::of(w_sq.sqrt());
        let r2 = T::of(u_sq.sqrt());
        if let Some(lb) = self.lower_bound.filter(|b| *b > 0.0).map(T::of) {
            if lb > r1 {
                r1 = lb;
            }
        }
        if let Some(ub) = self.upper_bound.filter(|b| *b > 0.0).map(T::of) {
            if ub < r1 {
                r1 = ub;
            }
        }
        let r = if r1 == T::ZERO || r2 == T::ZERO {
            T::ONE
        } else {
            r1 / r2
        };
        let lr_adj = T::of(a.lr) * r;
        for ((w, m), v) in w.iter_mut().zip(mean.iter()).zip(var.iter()) {
            *w = *w - lr_adj * direction(*m, *v, *w);
        }
    }
}

shared_builders!(Lamb, true);

impl Optimizer for Lamb {
    fn name(&self) -> &'static str {
        "lamb"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["mean", "var"]
    }
    fn elementwise(&self) -> bool {
        false
    }
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("epsilon", self.epsilon.into()),
            ("lower_bound", self.lower_bound.into()),
            ("upper_bound", self.upper_bound.into()),
            ("bias_correction", self.bias_correction.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// ---------------------------------------------------------------------------------- LARS

/// LARS, layer-wise adaptive rate scaling on top of SGD (MXNet's `lars`, operators
/// `multi_lars` + `preloaded_multi_sgd(_mom)_update`, which its updater uses for dense
/// arrays).
///
/// ```text
/// lr_l = lr·η·‖w‖ / (‖grad‖·rescale_grad + wd·‖w‖ + eps)   if ‖w‖ > 0 and ‖grad‖ > 0, else lr
/// then SGD (see [`Sgd`](super::Sgd)) with learning rate lr_l
/// ```
///
/// (`‖grad‖` is the norm of the raw gradient, before rescaling and clipping.) With
/// `momentum_correction` the momentum is multiplied by `base_lr(this step) /
/// base_lr(previous step)` when the learning rate changed (a schedule, or a new
/// `learning_rate`); the base rates come from [`OptimizerParams::lr_history`], which
/// [`OptimizerParams::begin_step`] records once per update count. MXNet tracks them per
/// call of its `_get_lrs`, so it corrects only the first group of (up to four) parameters
/// updated after a change; here every parameter of that step is corrected.
///
/// MXNet exempts parameters whose *name* ends in `gamma`, `beta` or `bias` — but only names
/// from `param_idx2name`, which Gluon's Trainer never passes, so under Gluon every parameter
/// is scaled; so it is here.
///
/// Defaults: `learning_rate` 0.01, `momentum` 0, `lazy_update` true, `eta` 0.001, `eps` 0,
/// `momentum_correction` true. State `momentum` when `momentum != 0`.
///
/// ```
/// use mxgluon::optimizer::{Lars, Optimizer};
/// let opt = Lars::new(0.1).momentum(0.9).eta(0.01);
/// assert!(!opt.elementwise());
/// assert_eq!(opt.state_names(), vec!["momentum"]);
/// ```
#[derive(Debug, Clone)]
pub struct Lars {
    params: OptimizerParams,
    momentum: f64,
    lazy_update: bool,
    eta: f64,
    eps: f64,
    momentum_correction: bool,
}

impl Default for Lars {
    fn default() -> Self {
        Lars {
            params: OptimizerParams::default(),
            momentum: 0.0,
            lazy_update: true,
            eta: 0.001,
            eps: 0.0,
            momentum_correction: true,
        }
    }
}

impl Lars {
    /// LARS with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Lars::default().learning_rate(learning_rate)
    }
    /// Sets the momentum (default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    /// Sets `lazy_update` (default true; only row-sparse gradients are affected).
    pub fn lazy_update(mut self, on: bool) -> Self {
        self.lazy_update = on;
        self
    }
    /// Sets the LARS coefficient `eta` (default 0.001).
    pub fn eta(mut self, eta: f64) -> Self {
        self.eta = eta;
        self
    }
    /// Sets `eps`, added to the denominator of the ratio (default 0).
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Whether the momentum follows learning-rate changes (default true).
    pub fn momentum_correction(mut self, on: bool) -> Self {
        self.momentum_correction = on;
        self
    }

    /// The momentum used this step (corrected for a learning-rate change).
    fn effective_momentum(&self) -> f64 {
        let h = &self.params.lr_history;
        match (self.momentum_correction, h.current(), h.previous()) {
            (true, Some(cur), Some(prev)) if prev != 0.0 => self.momentum * (cur / prev),
            _ => self.momentum,
        }
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("lars", w.len(), g.len());
        let (lr, wd, rg) = (T::of(a.lr), T::of(a.wd), T::of(a.rescale_grad));
        let w_norm = T::of(sum_sq(w).sqrt());
        let g_sq = sum_sq(g);
        let lr_l = if w_norm > T::ZERO && g_sq > 0.0 {
            lr * T::of(self.eta) * w_norm
                / (T::of(g_sq.sqrt()) * rg + wd * w_norm + T::of(self.eps))
        } else {
            lr
        };
        let c = op_clip(a.clip_gradient).map(T::of);
        if self.momentum != 0.0 {
            let [mom] = slots::<T, 1>("lars", states, w.len());
            if self.momentum > 0.0 {
                let mu = T::of(self.effective_momentum());
                multi_sgd(w, g, Some(&mut **mom), mu, lr_l, wd, rg, c);
            } else {
                multi_sgd(w, g, None, T::ZERO, lr_l, wd, rg, c);
            }
        } else {
            slots::<T, 0>("lars", states, w.len());
            multi_sgd(w, g, None, T::ZERO, lr_l, wd, rg, c);
        }
    }
}

shared_builders!(Lars, true);

impl Optimizer for Lars {
    fn name(&self) -> &'static str {
        "lars"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum"]
        } else {
            vec![]
        }
    }
    fn elementwise(&self) -> bool {
        false
    }
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("momentum", self.momentum.into()),
            ("lazy_update", self.lazy_update.into()),
            ("eta", self.eta.into()),
            ("eps", self.eps.into()),
            ("momentum_correction", self.momentum_correction.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(lr: f64, wd: f64, t: u64) -> StepArgs {
        StepArgs {
            lr,
            wd,
            rescale_grad: 1.0,
            clip_gradient: None,
            t,
            num_update: t,
        }
    }

    #[test]
    fn lamb_trust_ratio_by_hand() {
        // w = [3, 4] (‖w‖ 5), g = [1, 1]: at t 1, m̂ = g, v̂ = g², u = g/(|g| + ε) ≈ [1, 1],
        // ‖u‖ ≈ √2 → w −= lr·5/√2·u.
        let opt = Lamb::new(0.1);
        let (mut w, mut m, mut v) = ([3.0f64, 4.0], [0.0; 2], [0.0; 2]);
        opt.step_f64(
            &args(0.1, 0.0, 1),
            &mut w,
            &[1.0, 1.0],
            &mut [&mut m, &mut v],
        );
        let u = 1.0 / (1.0 + 1e-6);
        let step = 0.1 * 5.0 / (2.0f64 * u * u).sqrt() * u;
        assert!((w[0] - (3.0 - step)).abs() < 1e-12, "{w:?}");
        assert!((w[1] - (4.0 - step)).abs() < 1e-12);
        // An upper bound of 1 on ‖w‖ shrinks the step fivefold.
        let opt = Lamb::new(0.1).upper_bound(1.0);
        let (mut w, mut m, mut v) = ([3.0f64, 4.0], [0.0; 2], [0.0; 2]);
        opt.step_f64(
            &args(0.1, 0.0, 1),
            &mut w,
            &[1.0, 1.0],
            &mut [&mut m, &mut v],
        );
        assert!((w[0] - (3.0 - step / 5.0)).abs() < 1e-12);
    }

    #[test]
    fn lamb_zero_weight_uses_ratio_one() {
        let opt = Lamb::new(0.1).bias_correction(false);
        let (mut w, mut m, mut v) = ([0.0f64], [0.0], [0.0]);
        opt.step_f64(&args(0.1, 0.0, 1), &mut w, &[2.0], &mut [&mut m, &mut v]);
        // m = 0.2, v = 0.004: u = 0.2/(√0.004 + 1e-6), w = −0.1·u.
        let u = 0.2 / (0.004f64.sqrt() + 1e-6);
        assert!((w[0] + 0.1 * u).abs() < 1e-12);
    }

    #[test]
    fn lars_scales_the_learning_rate() {
        // w = [3, 4], g = [0, 2]: lr_l = lr·η·5/(2 + 0) → step on w1 = lr_l·2.
        let opt = Lars::new(1.0).eta(0.1);
        let mut w = [3.0f64, 4.0];
        opt.step_f64(&args(1.0, 0.0, 1), &mut w, &[0.0, 2.0], &mut []);
        assert!((w[1] - (4.0 - 0.25 * 2.0)).abs() < 1e-15);
        assert_eq!(w[0], 3.0);
        // A zero gradient keeps lr (weight decay still applies).
        let mut w = [2.0f64];
        opt.step_f64(&args(1.0, 0.5, 1), &mut w, &[0.0], &mut []);
        assert_eq!(w[0], 1.0);
    }

    #[test]
    fn lars_momentum_correction_follows_base_lr() {
        let mut opt = Lars::new(1.0).momentum(0.5);
        opt.params_mut().lr_history.record(1, 1.0);
        assert_eq!(opt.effective_momentum(), 0.5);
        opt.params_mut().lr_history.record(2, 0.5);
        assert_eq!(opt.effective_momentum(), 0.25);
        let off = opt.clone().momentum_correction(false);
        assert_eq!(off.effective_momentum(), 0.5);
    }
}
