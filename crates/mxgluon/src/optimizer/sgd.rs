//! SGD, Nesterov momentum (NAG) and Signum: MXNet 1.9.1's `sgd_update` family of operators.

use serde_json::{Map, Value};

use super::kernel::{check_len, clip, impl_steps, op_clip, shared_builders, sign, slots, Real};
use super::{Optimizer, OptimizerParams, StepArgs};

/// `{key: value}` objects for `hyper_json`.
pub(crate) fn obj(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// MXNet's `multi_sgd_update` / `multi_sgd_mom_update` (the operators its `SGD` runs on dense
/// weights, through the aggregated updater) for one array:
///
/// ```text
/// mom = momentum·mom − (lr·wd)·w − lr·clip(rescale·g)      (momentum > 0; else mom = 0)
/// w   = w + mom
/// ```
///
/// Without clipping the gradient term is `(lr·rescale)·g`, as in the operator.
#[allow(clippy::too_many_arguments)]
pub(crate) fn multi_sgd<T: Real>(
    w: &mut [T],
    g: &[T],
    mom: Option<&mut [T]>,
    momentum: T,
    lr: T,
    wd: T,
    rescale: T,
    clip_bound: Option<T>,
) {
    let lrwd = lr * wd;
    let lrrg = lr * rescale;
    match (mom, clip_bound) {
        (Some(m), Some(c)) => {
            for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                let v = momentum * *m - lrwd * *w - lr * clip(rescale * g, c);
                *m = v;
                *w = *w + v;
            }
        }
        (Some(m), None) => {
            for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                let v = momentum * *m - lrwd * *w - lrrg * g;
                *m = v;
                *w = *w + v;
            }
        }
        (None, Some(c)) => {
            for (w, &g) in w.iter_mut().zip(g) {
                let v = -(lrwd * *w) - lr * clip(rescale * g, c);
                *w = *w + v;
            }
        }
        (None, None) => {
            for (w, &g) in w.iter_mut().zip(g) {
                let v = -(lrwd * *w) - lrrg * g;
                *w = *w + v;
            }
        }
    }
}

/// MXNet's single-array `sgd_update`: `w = (1 − lr·wd)·w − lr·clip(rescale·g)`.
fn sgd_update<T: Real>(w: &mut [T], g: &[T], lr: T, wd: T, rescale: T, clip_bound: Option<T>) {
    let decay = T::ONE - lr * wd;
    match clip_bound {
        Some(c) => {
            for (w, &g) in w.iter_mut().zip(g) {
                *w = decay * *w - lr * clip(rescale * g, c);
            }
        }
        None => {
            let lrrg = lr * rescale;
            for (w, &g) in w.iter_mut().zip(g) {
                *w = decay * *w - lrrg * g;
            }
        }
    }
}

// ----------------------------------------------------------------------------------- SGD

/// Stochastic gradient descent with optional momentum (MXNet's `sgd`).
///
/// With `g' = clip(rescale_grad · grad, ±clip_gradient)` (clipping after rescaling, only for a
/// positive bound):
///
/// ```text
/// momentum > 0:  mom = momentum·mom − lr·wd·w − lr·g';  w = w + mom
/// otherwise:     w = w − lr·wd·w − lr·g'
/// ```
///
/// Defaults (MXNet 1.9.1): `learning_rate` 0.01, `momentum` 0, `lazy_update` true. The state
/// slot `momentum` exists when `momentum != 0` (a negative momentum creates it but, as in
/// MXNet, updates without it). `lazy_update` only matters for row-sparse gradients: when set,
/// [`update_row_sparse`](super::update_row_sparse) updates only the gradient's rows (their
/// weight decay and momentum included); when not, every row gets the standard update.
///
/// ```
/// use mxgluon::optimizer::{Optimizer, Sgd, StepArgs};
/// let opt = Sgd::new(0.1).momentum(0.9).wd(0.01);
/// assert_eq!(opt.state_names(), vec!["momentum"]);
/// let args = StepArgs { lr: 0.1, wd: 0.0, rescale_grad: 1.0, clip_gradient: None, t: 1, num_update: 1 };
/// let (mut w, mut mom) = ([1.0f32], [0.0f32]);
/// opt.step_f32(&args, &mut w, &[2.0], &mut [&mut mom]);
/// assert!((w[0] - 0.8).abs() < 1e-7 && (mom[0] + 0.2).abs() < 1e-7);
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    params: OptimizerParams,
    momentum: f64,
    lazy_update: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            params: OptimizerParams::default(),
            momentum: 0.0,
            lazy_update: true,
        }
    }
}

impl Sgd {
    /// SGD with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Sgd::default().learning_rate(learning_rate)
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

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("sgd", w.len(), g.len());
        let (lr, wd, rg) = (T::of(a.lr), T::of(a.wd), T::of(a.rescale_grad));
        let c = op_clip(a.clip_gradient).map(T::of);
        if self.momentum != 0.0 {
            let [mom] = slots::<T, 1>("sgd", states, w.len());
            let mom = if self.momentum > 0.0 {
                Some(&mut **mom)
            } else {
                None
            };
            multi_sgd(w, g, mom, T::of(self.momentum), lr, wd, rg, c);
        } else {
            slots::<T, 0>("sgd", states, w.len());
            multi_sgd(w, g, None, T::ZERO, lr, wd, rg, c);
        }
    }
}

shared_builders!(Sgd, true);

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
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
    impl_steps!();
    fn lazy_row_sparse(&self) -> bool {
        self.lazy_update
    }
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("momentum", self.momentum.into()),
            ("lazy_update", self.lazy_update.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// ----------------------------------------------------------------------------------- NAG

/// Nesterov accelerated gradient (MXNet's `nag`, operator `nag_mom_update`).
///
/// With `g' = clip(rescale_grad·grad)`:
///
/// ```text
/// momentum > 0:  mom' = momentum·mom
///                w_new = w − mom' + (momentum + 1)·(mom' − lr·(g' + wd·w))
///                mom = mom' − lr·(g' + wd·w_new)
/// otherwise:     w = (1 − lr·wd)·w − lr·g'                              (sgd_update)
/// ```
///
/// The momentum takes its weight-decay term from the **new** weight: MXNet's operator runs
/// in place (`out` is the weight) and reads the weight again after writing it (its
/// multi-precision kernel does the same explicitly).
///
/// Defaults: `learning_rate` 0.01, `momentum` 0; state `momentum` when `momentum != 0`.
///
/// ```
/// use mxgluon::optimizer::{Nag, Optimizer};
/// let opt = Nag::new(0.1).momentum(0.9);
/// assert_eq!(opt.name(), "nag");
/// assert_eq!(opt.state_names(), vec!["momentum"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Nag {
    params: OptimizerParams,
    momentum: f64,
}

impl Nag {
    /// NAG with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Nag::default().learning_rate(learning_rate)
    }
    /// Sets the momentum (default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("nag", w.len(), g.len());
        let (lr, wd, rg) = (T::of(a.lr), T::of(a.wd), T::of(a.rescale_grad));
        let c = op_clip(a.clip_gradient).map(T::of);
        if self.momentum == 0.0 {
            slots::<T, 0>("nag", states, w.len());
            sgd_update(w, g, lr, wd, rg, c);
            return;
        }
        let [mom] = slots::<T, 1>("nag", states, w.len());
        // A negative momentum is not passed to the operator, whose default is 0.
        let mu = T::of(self.momentum.max(0.0));
        let mu1 = mu + T::ONE;
        match c {
            Some(c) => {
                for ((w, &g), m) in w.iter_mut().zip(g).zip(mom.iter_mut()) {
                    let m1 = mu * *m;
                    let gc = clip(rg * g, c);
                    *w = *w - m1 + mu1 * (m1 - lr * (gc + wd * *w));
                    *m = m1 - lr * (gc + wd * *w);
                }
            }
            None => {
                for ((w, &g), m) in w.iter_mut().zip(g).zip(mom.iter_mut()) {
                    let m1 = mu * *m;
                    let gr = rg * g;
                    *w = *w - m1 + mu1 * (m1 - lr * (gr + wd * *w));
                    *m = m1 - lr * (gr + wd * *w);
                }
            }
        }
    }
}

shared_builders!(Nag, true);

impl Optimizer for Nag {
    fn name(&self) -> &'static str {
        "nag"
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
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![("momentum", self.momentum.into())])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// -------------------------------------------------------------------------------- Signum

/// Signum / signSGD (MXNet's `signum`, operators `signum_update` / `signsgd_update`).
///
/// ```text
/// momentum != 0:  mom = momentum·mom − (1 − momentum)·(wd·w + clip(rescale_grad·grad))
///                 w = (1 − lr·wd_lh)·w + lr·sign(mom)
/// momentum == 0:  w = (1 − lr·wd − lr·wd_lh)·w − lr·sign(grad)
/// ```
///
/// (The state holds the *negative* momentum, as MXNet's operator does.) signSGD ignores
/// `rescale_grad` and `clip_gradient`, as MXNet's does. MXNet 1.9.1 rejects `wd_lh` when
/// `momentum` is 0 (its `signsgd_update` has no such argument); here it decays the weight as
/// in the momentum form.
///
/// Defaults: `learning_rate` 0.01, `momentum` 0.9, `wd_lh` 0; state `momentum` when
/// `momentum != 0`.
///
/// ```
/// use mxgluon::optimizer::{Optimizer, Signum};
/// let opt = Signum::new(0.01).wd_lh(0.1);
/// assert_eq!(opt.state_names(), vec!["momentum"]);
/// assert_eq!(opt.hyper_json()["momentum"], 0.9);
/// ```
#[derive(Debug, Clone)]
pub struct Signum {
    params: OptimizerParams,
    momentum: f64,
    wd_lh: f64,
}

impl Default for Signum {
    fn default() -> Self {
        Signum {
            params: OptimizerParams::default(),
            momentum: 0.9,
            wd_lh: 0.0,
        }
    }
}

impl Signum {
    /// Signum with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Signum::default().learning_rate(learning_rate)
    }
    /// Sets the momentum (default 0.9; 0 gives signSGD).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    /// Sets the decoupled weight decay `wd_lh` (default 0).
    pub fn wd_lh(mut self, wd_lh: f64) -> Self {
        self.wd_lh = wd_lh;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("signum", w.len(), g.len());
        let (lr, wd, rg) = (T::of(a.lr), T::of(a.wd), T::of(a.rescale_grad));
        let wd_lh = T::of(self.wd_lh);
        if self.momentum == 0.0 {
            slots::<T, 0>("signum", states, w.len());
            let decay = T::ONE - lr * wd - lr * wd_lh;
            for (w, &g) in w.iter_mut().zip(g) {
                *w = decay * *w - lr * sign(g);
            }
            return;
        }
        let [mom] = slots::<T, 1>("signum", states, w.len());
        let mu = T::of(self.momentum.max(0.0));
        let one_mu = T::ONE - mu;
        let decay = T::ONE - lr * wd_lh;
        match op_clip(a.clip_gradient).map(T::of) {
            Some(c) => {
                for ((w, &g), m) in w.iter_mut().zip(g).zip(mom.iter_mut()) {
                    let v = mu * *m - one_mu * wd * *w - one_mu * clip(rg * g, c);
                    *m = v;
                    *w = decay * *w + lr * sign(v);
                }
            }
            None => {
                for ((w, &g), m) in w.iter_mut().zip(g).zip(mom.iter_mut()) {
                    let v = mu * *m - one_mu * wd * *w - one_mu * rg * g;
                    *m = v;
                    *w = decay * *w + lr * sign(v);
                }
            }
        }
    }
}

shared_builders!(Signum, true);

impl Optimizer for Signum {
    fn name(&self) -> &'static str {
        "signum"
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
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("momentum", self.momentum.into()),
            ("wd_lh", self.wd_lh.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(lr: f64, wd: f64, rescale: f64, clip: Option<f64>) -> StepArgs {
        StepArgs {
            lr,
            wd,
            rescale_grad: rescale,
            clip_gradient: clip,
            t: 1,
            num_update: 1,
        }
    }

    #[test]
    fn spec_clip_after_rescale() {
        // spec §6: grad 10, rescale 0.5, clip 0.5 → step 0.5 (lr 1).
        let opt = Sgd::new(1.0);
        let mut w = [0.0f32];
        opt.step_f32(&args(1.0, 0.0, 0.5, Some(0.5)), &mut w, &[10.0], &mut []);
        assert_eq!(w[0], -0.5);
    }

    #[test]
    fn spec_weight_decay_on_zero_grad() {
        // spec §6: lr 1, wd 0.5, weight 1, zero gradient → 0.5.
        let opt = Sgd::new(1.0).wd(0.5);
        let mut w = [1.0f64];
        opt.step_f64(&args(1.0, 0.5, 1.0, None), &mut w, &[0.0], &mut []);
        assert_eq!(w[0], 0.5);
    }

    #[test]
    fn momentum_accumulates() {
        // lr 0.1, momentum 0.9, grad 1 twice: mom −0.1 then −0.19; w 1 → 0.9 → 0.71.
        let opt = Sgd::new(0.1).momentum(0.9);
        let (mut w, mut m) = ([1.0f64], [0.0f64]);
        let a = args(0.1, 0.0, 1.0, None);
        opt.step_f64(&a, &mut w, &[1.0], &mut [&mut m]);
        assert!((w[0] - 0.9).abs() < 1e-15 && (m[0] + 0.1).abs() < 1e-15);
        opt.step_f64(&a, &mut w, &[1.0], &mut [&mut m]);
        assert!((m[0] + 0.19).abs() < 1e-15);
        assert!((w[0] - 0.71).abs() < 1e-15);
    }

    #[test]
    fn zero_clip_bound_means_no_clipping_in_operators() {
        let opt = Sgd::new(1.0);
        let mut w = [0.0f32];
        opt.step_f32(&args(1.0, 0.0, 1.0, Some(0.0)), &mut w, &[3.0], &mut []);
        assert_eq!(w[0], -3.0);
    }

    #[test]
    fn nag_by_hand() {
        // momentum 0.5, lr 0.1, grad 1, w 1, mom 0: d = 0.1, m1 = 0,
        // w = 1 − 0 + 1.5·(0 − 0.1) = 0.85, mom = −0.1.
        let opt = Nag::new(0.1).momentum(0.5);
        let (mut w, mut m) = ([1.0f64], [0.0f64]);
        opt.step_f64(&args(0.1, 0.0, 1.0, None), &mut w, &[1.0], &mut [&mut m]);
        assert!((w[0] - 0.85).abs() < 1e-15);
        assert!((m[0] + 0.1).abs() < 1e-15);
        // Without momentum it is plain SGD.
        let mut w = [1.0f64];
        Nag::new(0.1).step_f64(&args(0.1, 0.5, 1.0, None), &mut w, &[1.0], &mut []);
        assert!((w[0] - (0.95 - 0.1)).abs() < 1e-15);
        // With weight decay the momentum reads the updated weight (MXNet's in-place
        // operator): lr 0.1, wd 0.05, momentum 0.9, w 1, grad 0.5 → w 0.8955 and
        // mom −0.1·(0.5 + 0.05·0.8955) = −0.0544775 (values printed by MXNet 1.9.1).
        let opt = Nag::new(0.1).momentum(0.9);
        let (mut w, mut m) = ([1.0f64], [0.0f64]);
        opt.step_f64(&args(0.1, 0.05, 1.0, None), &mut w, &[0.5], &mut [&mut m]);
        assert!((w[0] - 0.8955).abs() < 1e-15);
        assert!((m[0] + 0.0544775).abs() < 1e-15);
    }

    #[test]
    fn signum_by_hand() {
        // momentum 0.9: mom = −0.1·(0 + 2) = −0.2 → w = 1 + 0.1·sign(−0.2) = 0.9.
        let opt = Signum::new(0.1);
        let (mut w, mut m) = ([1.0f64], [0.0f64]);
        opt.step_f64(&args(0.1, 0.0, 1.0, None), &mut w, &[2.0], &mut [&mut m]);
        assert!((m[0] + 0.2).abs() < 1e-15);
        assert!((w[0] - 0.9).abs() < 1e-15);
        // signSGD ignores rescale_grad: sign(−3) = −1 → w = 1 + 0.1.
        let opt = Signum::new(0.1).momentum(0.0);
        let mut w = [1.0f64];
        opt.step_f64(&args(0.1, 0.0, 0.0, None), &mut w, &[-3.0], &mut []);
        assert!((w[0] - 1.1).abs() < 1e-15);
    }
}
