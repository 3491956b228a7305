//! Per-coordinate adaptive methods: AdaGrad, RMSProp, AdaDelta and FTRL.

use serde_json::{Map, Value};

use super::kernel::{
    check_len, clip, impl_steps, op_clip, py_clip, shared_builders, sign, slots, Real,
};
use super::sgd::obj;
use super::{Optimizer, OptimizerParams, StepArgs};

// ------------------------------------------------------------------------------- AdaGrad

/// AdaGrad (MXNet's `adagrad`; dense gradients are updated by NDArray arithmetic in Python).
///
/// ```text
/// g = clip(rescale_grad·grad, ±clip_gradient)      (weight decay is not in the gradient)
/// history += g²
/// w = w − lr·(g / √(history + eps) + wd·w)
/// ```
///
/// `eps` sits inside the square root. A `clip_gradient` of 0 clips every gradient to 0
/// (MXNet tests `is not None`). Defaults: `learning_rate` 0.01, `eps` 1e-7. State `history`.
///
/// ```
/// use mxgluon::optimizer::{AdaGrad, Optimizer};
/// let opt = AdaGrad::new(0.1).eps(1e-6);
/// assert_eq!(opt.state_names(), vec!["history"]);
/// ```
#[derive(Debug, Clone)]
pub struct AdaGrad {
    params: OptimizerParams,
    eps: f64,
}

impl Default for AdaGrad {
    fn default() -> Self {
        AdaGrad {
            params: OptimizerParams::default(),
            eps: 1e-7,
        }
    }
}

impl AdaGrad {
    /// AdaGrad with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        AdaGrad::default().learning_rate(learning_rate)
    }
    /// Sets `eps`, added to the history under the square root (default 1e-7).
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("adagrad", w.len(), g.len());
        let [hist] = slots::<T, 1>("adagrad", states, w.len());
        let sc = [
            T::of(a.rescale_grad),
            T::of(self.eps),
            T::of(a.wd),
            T::of(-a.lr),
        ];
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            hist: &mut [T],
            [rg, eps, wd, neg_lr]: [T; 4],
            c: T,
        ) {
            for ((w, &g), h) in w.iter_mut().zip(g).zip(hist) {
                let mut g = g * rg;
                if CLIP {
                    g = clip(g, c);
                }
                *h = *h + g * g;
                let div = g / (*h + eps).sqrt();
                *w = *w + (div + *w * wd) * neg_lr;
            }
        }
        match py_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, hist, sc, T::of(c)),
            None => go::<T, false>(w, g, hist, sc, T::ZERO),
        }
    }
}

shared_builders!(AdaGrad, true);

impl Optimizer for AdaGrad {
    fn name(&self) -> &'static str {
        "adagrad"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["history"]
    }
    impl_steps!();
    fn lazy_row_sparse(&self) -> bool {
        true
    }
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![("eps", self.eps.into())])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// ------------------------------------------------------------------------------- RMSProp

/// RMSProp (MXNet's `rmsprop`, operators `rmsprop_update` and, with `centered`,
/// `rmspropalex_update`).
///
/// With `g = clip(rescale_grad·grad + wd·w, ±clip_gradient)`:
///
/// ```text
/// Tieleman & Hinton:  n = (1 − γ1)·g² + γ1·n
///                     w = w − lr·g / √(n + ε)
/// centered (Graves):  n = (1 − γ1)·g² + γ1·n;   ḡ = (1 − γ1)·g + γ1·ḡ
///                     δ = γ2·δ − lr·g / √(n − ḡ² + ε);   w = w + δ
/// ```
///
/// `ε` sits inside the square root; with `clip_weights` the new weight is clipped to
/// `[−clip_weights, clip_weights]` (only for a positive bound). Defaults: `learning_rate`
/// 0.001, `gamma1` 0.9, `gamma2` 0.9, `epsilon` 1e-8, `centered` false, no `clip_weights`.
/// States `n`, or `n`, `g`, `delta` when centered.
///
/// ```
/// use mxgluon::optimizer::{Optimizer, RmsProp};
/// let opt = RmsProp::new(0.01).centered(true).clip_weights(2.0);
/// assert_eq!(opt.state_names(), vec!["n", "g", "delta"]);
/// ```
#[derive(Debug, Clone)]
pub struct RmsProp {
    params: OptimizerParams,
    gamma1: f64,
    gamma2: f64,
    epsilon: f64,
    centered: bool,
    clip_weights: Option<f64>,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            params: OptimizerParams {
                learning_rate: 0.001,
                ..OptimizerParams::default()
            },
            gamma1: 0.9,
            gamma2: 0.9,
            epsilon: 1e-8,
            centered: false,
            clip_weights: None,
        }
    }
}

impl RmsProp {
    /// RMSProp with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        RmsProp::default().learning_rate(learning_rate)
    }
    /// Sets `gamma1`, the decay of the squared-gradient average (default 0.9).
    pub fn gamma1(mut self, gamma1: f64) -> Self {
        self.gamma1 = gamma1;
        self
    }
    /// Sets `gamma2`, the momentum of the centered version (default 0.9).
    pub fn gamma2(mut self, gamma2: f64) -> Self {
        self.gamma2 = gamma2;
        self
    }
    /// Sets `epsilon` (default 1e-8).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Chooses Graves' centered version (default false).
    pub fn centered(mut self, on: bool) -> Self {
        self.centered = on;
        self
    }
    /// Sets (or removes) the weight clipping bound (default none).
    pub fn clip_weights(mut self, bound: impl Into<Option<f64>>) -> Self {
        self.clip_weights = bound.into();
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("rmsprop", w.len(), g.len());
        let g1 = T::of(self.gamma1);
        let sc = [
            T::of(a.lr),
            T::of(a.wd),
            T::of(a.rescale_grad),
            g1,
            T::ONE - g1,
            T::of(self.gamma2),
            T::of(self.epsilon),
        ];
        let c = op_clip(a.clip_gradient).map(T::of);
        let cw = self.clip_weights.filter(|c| *c > 0.0).map(T::of);
        if self.centered {
            let [n, gbar, delta] = slots::<T, 3>("rmsprop", states, w.len());
            match (c, cw) {
                (None, None) => alex::<T, false, false>(w, g, n, gbar, delta, sc, T::ZERO, T::ZERO),
                (Some(c), None) => alex::<T, true, false>(w, g, n, gbar, delta, sc, c, T::ZERO),
                (None, Some(cw)) => alex::<T, false, true>(w, g, n, gbar, delta, sc, T::ZERO, cw),
                (Some(c), Some(cw)) => alex::<T, true, true>(w, g, n, gbar, delta, sc, c, cw),
            }
        } else {
            let [n] = slots::<T, 1>("rmsprop", states, w.len());
            match (c, cw) {
                (None, None) => plain::<T, false, false>(w, g, n, sc, T::ZERO, T::ZERO),
                (Some(c), None) => plain::<T, true, false>(w, g, n, sc, c, T::ZERO),
                (None, Some(cw)) => plain::<T, false, true>(w, g, n, sc, T::ZERO, cw),
                (Some(c), Some(cw)) => plain::<T, true, true>(w, g, n, sc, c, cw),
            }
        }
    }
}

fn plain<T: Real, const CLIP: bool, const CLIPW: bool>(
    w: &mut [T],
    g: &[T],
    n: &mut [T],
    [lr, wd, rg, g1, og1, _g2, eps]: [T; 7],
    c: T,
    cw: T,
) {
    for ((w, &g), n) in w.iter_mut().zip(g).zip(n) {
        let mut gr = rg * g + wd * *w;
        if CLIP {
            gr = clip(gr, c);
        }
        *n = og1 * (gr * gr) + g1 * *n;
        let mut nw = *w - lr * (gr / (*n + eps).sqrt());
        if CLIPW {
            nw = clip(nw, cw);
        }
        *w = nw;
    }
}

#[allow(clippy::too_many_arguments)]
fn alex<T: Real, const CLIP: bool, const CLIPW: bool>(
    w: &mut [T],
    g: &[T],
    n: &mut [T],
    gbar: &mut [T],
    delta: &mut [T],
    [lr, wd, rg, g1, og1, g2, eps]: [T; 7],
    c: T,
    cw: T,
) {
    for ((((w, &g), n), gb), d) in w.iter_mut().zip(g).zip(n).zip(gbar).zip(delta) {
        let mut gr = rg * g + wd * *w;
        if CLIP {
            gr = clip(gr, c);
        }
        *n = og1 * gr * gr + g1 * *n;
        *gb = og1 * gr + g1 * *gb;
        *d = g2 * *d - lr * gr / (*n - *gb * *gb + eps).sqrt();
        let mut nw = *w + *d;
        if CLIPW {
            nw = clip(nw, cw);
        }
        *w = nw;
    }
}

shared_builders!(RmsProp, true);

impl Optimizer for RmsProp {
    fn name(&self) -> &'static str {
        "rmsprop"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        if self.centered {
            vec!["n", "g", "delta"]
        } else {
            vec!["n"]
        }
    }
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("gamma1", self.gamma1.into()),
            ("gamma2", self.gamma2.into()),
            ("epsilon", self.epsilon.into()),
            ("centered", self.centered.into()),
            ("clip_weights", self.clip_weights.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// ------------------------------------------------------------------------------ AdaDelta

/// AdaDelta (MXNet's `adadelta`, written in NDArray arithmetic).
///
/// ```text
/// g = clip(rescale_grad·grad, ±clip_gradient)
/// acc_g = ρ·acc_g + (1 − ρ)·g²
/// δ = √(acc_delta + ε) / √(acc_g + ε) · g
/// acc_delta = ρ·acc_delta + (1 − ρ)·δ²
/// w = w − (δ + wd·w)
/// ```
///
/// The learning rate is not used (as in MXNet); weight decay is applied unscaled. MXNet's
/// Python code also rescales the caller's gradient array in place; here the gradient is
/// read-only. A `clip_gradient` of 0 clips every gradient to 0. Defaults: `rho` 0.9,
/// `epsilon` 1e-5 (`learning_rate` 0.01, unused). States `acc_g`, `acc_delta`.
///
/// ```
/// use mxgluon::optimizer::{AdaDelta, Optimizer};
/// let opt = AdaDelta::default().rho(0.95);
/// assert_eq!(opt.state_names(), vec!["acc_g", "acc_delta"]);
/// ```
#[derive(Debug, Clone)]
pub struct AdaDelta {
    params: OptimizerParams,
    rho: f64,
    epsilon: f64,
}

impl Default for AdaDelta {
    fn default() -> Self {
        AdaDelta {
            params: OptimizerParams::default(),
            rho: 0.9,
            epsilon: 1e-5,
        }
    }
}

impl AdaDelta {
    /// AdaDelta with the defaults (its update does not use a learning rate).
    pub fn new() -> Self {
        AdaDelta::default()
    }
    /// Sets `rho`, the decay of both accumulators (default 0.9).
    pub fn rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }
    /// Sets `epsilon` (default 1e-5).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("adadelta", w.len(), g.len());
        let [acc_g, acc_d] = slots::<T, 2>("adadelta", states, w.len());
        let sc = [
            T::of(a.rescale_grad),
            T::of(self.rho),
            T::of(1.0 - self.rho),
            T::of(self.epsilon),
            T::of(a.wd),
        ];
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            acc_g: &mut [T],
            acc_d: &mut [T],
            [rg, rho, orho, eps, wd]: [T; 5],
            c: T,
        ) {
            for (((w, &g), ag), ad) in w.iter_mut().zip(g).zip(acc_g).zip(acc_d) {
                let mut g = g * rg;
                if CLIP {
                    g = clip(g, c);
                }
                *ag = *ag * rho + orho * g * g;
                let delta = (*ad + eps).sqrt() / (*ag + eps).sqrt() * g;
                *ad = *ad * rho + orho * delta * delta;
                *w = *w - (delta + wd * *w);
            }
        }
        match py_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, acc_g, acc_d, sc, T::of(c)),
            None => go::<T, false>(w, g, acc_g, acc_d, sc, T::ZERO),
        }
    }
}

shared_builders!(AdaDelta, true);

impl Optimizer for AdaDelta {
    fn name(&self) -> &'static str {
        "adadelta"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["acc_g", "acc_delta"]
    }
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("rho", self.rho.into()),
            ("epsilon", self.epsilon.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// ---------------------------------------------------------------------------------- FTRL

/// FTRL-proximal (MXNet's `ftrl`, operator `ftrl_update`).
///
/// With `g = clip(rescale_grad·grad, ±clip_gradient)`:
///
/// ```text
/// z += g − (√(n + g²) − √n)·w / lr
/// n += g²
/// w = (sign(z)·λ1 − z) / ((β + √n) / lr + wd) · (|z| > λ1)
/// ```
///
/// Defaults: `lamda1` 0.01, `beta` 1, `learning_rate` **0.1**. As in MXNet, FTRL's
/// `learning_rate` never reaches the shared options' scheduler logic: a scheduler keeps its
/// own `base_lr`. States `z`, `n`.
///
/// ```
/// use mxgluon::optimizer::{Ftrl, Optimizer};
/// let opt = Ftrl::default();
/// assert_eq!(opt.params().learning_rate, 0.1);
/// assert_eq!(opt.state_names(), vec!["z", "n"]);
/// ```
#[derive(Debug, Clone)]
pub struct Ftrl {
    params: OptimizerParams,
    lamda1: f64,
    beta: f64,
}

impl Default for Ftrl {
    fn default() -> Self {
        Ftrl {
            params: OptimizerParams {
                learning_rate: 0.1,
                ..OptimizerParams::default()
            },
            lamda1: 0.01,
            beta: 1.0,
        }
    }
}

impl Ftrl {
    /// FTRL with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Ftrl::default().learning_rate(learning_rate)
    }
    /// Sets the L1 coefficient `lamda1` (MXNet's spelling; default 0.01).
    pub fn lamda1(mut self, lamda1: f64) -> Self {
        self.lamda1 = lamda1;
        self
    }
    /// Sets `beta` (default 1).
    pub fn beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("ftrl", w.len(), g.len());
        let [z, n] = slots::<T, 2>("ftrl", states, w.len());
        let sc = [
            T::of(a.rescale_grad),
            T::of(a.lr),
            T::of(a.wd),
            T::of(self.lamda1),
            T::of(self.beta),
        ];
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            z: &mut [T],
            n: &mut [T],
            [rg, lr, wd, l1, beta]: [T; 5],
            c: T,
        ) {
            for (((w, &g), z), n) in w.iter_mut().zip(g).zip(z).zip(n) {
                let mut g = g * rg;
                if CLIP {
                    g = clip(g, c);
                }
                *z = *z + (g - ((*n + g * g).sqrt() - n.sqrt()) * *w / lr);
                *n = *n + g * g;
                let keep = if z.abs() > l1 { T::ONE } else { T::ZERO };
                *w = (sign(*z) * l1 - *z) / ((beta + n.sqrt()) / lr + wd) * keep;
            }
        }
        match op_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, z, n, sc, T::of(c)),
            None => go::<T, false>(w, g, z, n, sc, T::ZERO),
        }
    }
}

shared_builders!(Ftrl, false);

impl Optimizer for Ftrl {
    fn name(&self) -> &'static str {
        "ftrl"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["z", "n"]
    }
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("lamda1", self.lamda1.into()),
            ("beta", self.beta.into()),
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
    fn adagrad_eps_inside_sqrt() {
        // g 2 → history 4, w = 1 − 0.5·2/√(4 + 1) .
        let opt = AdaGrad::new(0.5).eps(1.0);
        let (mut w, mut h) = ([1.0f64], [0.0f64]);
        opt.step_f64(&args(0.5, 0.0, 1.0, None), &mut w, &[2.0], &mut [&mut h]);
        assert_eq!(h[0], 4.0);
        assert!((w[0] - (1.0 - 0.5 * 2.0 / 5f64.sqrt())).abs() < 1e-15);
        // A zero clip bound zeroes the gradient (Python `is not None`), leaving only decay.
        let (mut w, mut h) = ([1.0f64], [1.0f64]);
        opt.step_f64(
            &args(0.5, 0.5, 1.0, Some(0.0)),
            &mut w,
            &[2.0],
            &mut [&mut h],
        );
        assert_eq!((w[0], h[0]), (0.75, 1.0));
    }

    #[test]
    fn rmsprop_by_hand() {
        // gamma1 0.9: n = 0.1·4 = 0.4; w = 1 − 0.01·2/√(0.4 + 1e-8).
        let opt = RmsProp::new(0.01);
        let (mut w, mut n) = ([1.0f64], [0.0f64]);
        opt.step_f64(&args(0.01, 0.0, 1.0, None), &mut w, &[2.0], &mut [&mut n]);
        assert!((n[0] - 0.4).abs() < 1e-15);
        assert!((w[0] - (1.0 - 0.01 * 2.0 / (0.4f64 + 1e-8).sqrt())).abs() < 1e-15);
        // clip_weights bounds the result.
        let opt = RmsProp::new(10.0).clip_weights(0.5);
        let (mut w, mut n) = ([0.0f64], [0.0f64]);
        opt.step_f64(&args(10.0, 0.0, 1.0, None), &mut w, &[2.0], &mut [&mut n]);
        assert_eq!(w[0], -0.5);
    }

    #[test]
    fn rmsprop_centered_by_hand() {
        let opt = RmsProp::new(0.01).centered(true);
        let (mut w, mut n, mut gb, mut d) = ([1.0f64], [0.0], [0.0], [0.0]);
        opt.step_f64(
            &args(0.01, 0.0, 1.0, None),
            &mut w,
            &[2.0],
            &mut [&mut n, &mut gb, &mut d],
        );
        let (n1, g1) = (0.1 * 4.0, 0.1 * 2.0);
        let d1 = -0.01 * 2.0 / (n1 - g1 * g1 + 1e-8f64).sqrt();
        assert!((d[0] - d1).abs() < 1e-15);
        assert!((w[0] - (1.0 + d1)).abs() < 1e-15);
    }

    #[test]
    fn adadelta_ignores_lr() {
        let a = AdaDelta::new();
        let (mut w1, mut s1, mut s2) = ([1.0f64], [0.0f64], [0.0f64]);
        a.step_f64(
            &args(123.0, 0.0, 1.0, None),
            &mut w1,
            &[2.0],
            &mut [&mut s1, &mut s2],
        );
        let ag = 0.1 * 4.0;
        let delta = (1e-5f64).sqrt() / (ag + 1e-5f64).sqrt() * 2.0;
        assert!((w1[0] - (1.0 - delta)).abs() < 1e-15);
        assert!((s2[0] - 0.1 * delta * delta).abs() < 1e-18);
    }

    #[test]
    fn ftrl_by_hand() {
        // lr 0.1, w 0, g 1: z = 1, n = 1, w = (0.01 − 1)/((1 + 1)/0.1) = −0.0495.
        let opt = Ftrl::default();
        let (mut w, mut z, mut n) = ([0.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.1, 0.0, 1.0, None),
            &mut w,
            &[1.0],
            &mut [&mut z, &mut n],
        );
        assert_eq!((z[0], n[0]), (1.0, 1.0));
        assert!((w[0] + 0.0495).abs() < 1e-15);
        // |z| ≤ λ1 zeroes the weight.
        let (mut w, mut z, mut n) = ([0.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.1, 0.0, 1.0, None),
            &mut w,
            &[0.005],
            &mut [&mut z, &mut n],
        );
        assert_eq!(w[0], 0.0);
    }
}
