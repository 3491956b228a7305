//! The Adam family: Adam, AdamW, Adamax and Nadam.

use std::sync::Mutex;

use serde_json::{Map, Value};

use super::kernel::{
    check_len, clip, impl_steps, maximum, op_clip, py_clip, shared_builders, slots, Real,
};
use super::sgd::obj;
use super::{Optimizer, OptimizerParams, StepArgs};

fn params_with_lr(lr: f64) -> OptimizerParams {
    OptimizerParams {
        learning_rate: lr,
        ..OptimizerParams::default()
    }
}

// ---------------------------------------------------------------------------------- Adam

/// Adam (MXNet's `adam`, operator `adam_update`).
///
/// As MXNet 1.9.1's operator computes it, weight decay enters the gradient **before**
/// clipping, and the bias correction is folded into the learning rate:
///
/// ```text
/// g  = clip(rescale_grad·grad + wd·w, ±clip_gradient)
/// m  = β1·m + (1 − β1)·g
/// v  = β2·v + (1 − β2)·g²
/// w  = w − lr_t·m / (√v + ε)      with lr_t = lr·√(1 − β2^t) / (1 − β1^t)
/// ```
///
/// Defaults: `learning_rate` 0.001, `beta1` 0.9, `beta2` 0.999, `epsilon` 1e-8, `lazy_update`
/// true (row-sparse only). States `mean`, `var`.
///
/// ```
/// use mxgluon::optimizer::{Adam, Optimizer};
/// let opt = Adam::new(0.01).beta1(0.8).wd(1e-4);
/// assert_eq!(opt.state_names(), vec!["mean", "var"]);
/// assert_eq!(opt.hyper_json()["beta1"], 0.8);
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    params: OptimizerParams,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    lazy_update: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            params: params_with_lr(0.001),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            lazy_update: true,
        }
    }
}

impl Adam {
    /// Adam with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Adam::default().learning_rate(learning_rate)
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
    /// Sets `epsilon` (default 1e-8).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Sets `lazy_update` (default true; only row-sparse gradients are affected).
    pub fn lazy_update(mut self, on: bool) -> Self {
        self.lazy_update = on;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("adam", w.len(), g.len());
        let [mean, var] = slots::<T, 2>("adam", states, w.len());
        let t = a.t as f64;
        let coef1 = 1.0 - self.beta1.powf(t);
        let coef2 = 1.0 - self.beta2.powf(t);
        let lr = T::of(a.lr * (coef2.sqrt() / coef1));
        let (wd, rg, eps) = (T::of(a.wd), T::of(a.rescale_grad), T::of(self.epsilon));
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let (ob1, ob2) = (T::ONE - b1, T::ONE - b2);
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            mean: &mut [T],
            var: &mut [T],
            [lr, wd, rg, eps, b1, b2, ob1, ob2, c]: [T; 9],
        ) {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(mean).zip(var) {
                let mut gr = g * rg + *w * wd;
                if CLIP {
                    gr = clip(gr, c);
                }
                *m = b1 * *m + ob1 * gr;
                *v = b2 * *v + ob2 * gr * gr;
                *w = *w - lr * *m / (v.sqrt() + eps);
            }
        }
        let s = |c| [lr, wd, rg, eps, b1, b2, ob1, ob2, c];
        match op_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, mean, var, s(T::of(c))),
            None => go::<T, false>(w, g, mean, var, s(T::ZERO)),
        }
    }
}

shared_builders!(Adam, true);

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        "adam"
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
    impl_steps!();
    fn lazy_row_sparse(&self) -> bool {
        self.lazy_update
    }
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("epsilon", self.epsilon.into()),
            ("lazy_update", self.lazy_update.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// --------------------------------------------------------------------------------- AdamW

/// Adam with decoupled weight decay (`adamw`).
///
/// MXNet 1.9.1 registers no AdamW optimizer; it ships the operators
/// `_contrib_adamw_update` / `_contrib_mp_adamw_update`:
///
/// ```text
/// g = clip(rescale_grad·grad, ±clip_gradient)          (no weight decay in the gradient)
/// m = β1·m + (1 − β1)·g
/// v = β2·v + (1 − β2)·g²
/// w = w − η·(lr_op·m / (√v + ε) + wd·w)
/// ```
///
/// This optimizer calls that operator the way MXNet's own `AdamW` optimizer (MXNet 2.0, and
/// GluonNLP's `BERTAdam` on 1.x) does: `lr_op = 1` and `η = lr·√(1 − β2^t) / (1 − β1^t)`
/// (or `η = lr` with `correct_bias = false`), so the decay step is `η·wd·w`. Like the
/// operator, the whole update (states included) is skipped when `rescale_grad` is 0, NaN or
/// infinite.
///
/// Defaults (MXNet 2.0's AdamW): `learning_rate` 0.001, `beta1` 0.9, `beta2` 0.999,
/// `epsilon` 1e-6, `correct_bias` true. States `mean`, `var`.
///
/// ```
/// use mxgluon::optimizer::{AdamW, Optimizer};
/// let opt = AdamW::new(1e-3).wd(0.01).correct_bias(false);
/// assert_eq!(opt.name(), "adamw");
/// assert_eq!(opt.hyper_json()["correct_bias"], false);
/// ```
#[derive(Debug, Clone)]
pub struct AdamW {
    params: OptimizerParams,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    correct_bias: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            params: params_with_lr(0.001),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            correct_bias: true,
        }
    }
}

impl AdamW {
    /// AdamW with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        AdamW::default().learning_rate(learning_rate)
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
    /// Whether the bias correction is folded into the step size (default true).
    pub fn correct_bias(mut self, on: bool) -> Self {
        self.correct_bias = on;
        self
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("adamw", w.len(), g.len());
        let [mean, var] = slots::<T, 2>("adamw", states, w.len());
        let rescale = T::of(a.rescale_grad);
        if !rescale.to_f64().is_finite() || rescale.to_f64() == 0.0 {
            return;
        }
        let mut eta = a.lr;
        if self.correct_bias {
            let t = a.t as f64;
            let coef1 = 1.0 - self.beta1.powf(t);
            let coef2 = 1.0 - self.beta2.powf(t);
            eta *= coef2.sqrt() / coef1;
        }
        let (eta, wd, eps) = (T::of(eta), T::of(a.wd), T::of(self.epsilon));
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let (ob1, ob2) = (T::ONE - b1, T::ONE - b2);
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            mean: &mut [T],
            var: &mut [T],
            [eta, wd, rg, eps, b1, b2, ob1, ob2, c]: [T; 9],
        ) {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(mean).zip(var) {
                let mut gs = rg * g;
                if CLIP {
                    gs = clip(gs, c);
                }
                *m = b1 * *m + ob1 * gs;
                *v = b2 * *v + ob2 * (gs * gs);
                *w = *w - eta * (*m / (v.sqrt() + eps) + wd * *w);
            }
        }
        let s = |c| [eta, wd, rescale, eps, b1, b2, ob1, ob2, c];
        match op_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, mean, var, s(T::of(c))),
            None => go::<T, false>(w, g, mean, var, s(T::ZERO)),
        }
    }
}

shared_builders!(AdamW, true);

impl Optimizer for AdamW {
    fn name(&self) -> &'static str {
        "adamw"
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
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("epsilon", self.epsilon.into()),
            ("correct_bias", self.correct_bias.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// -------------------------------------------------------------------------------- Adamax

/// AdaMax, Adam with the infinity norm (MXNet's `adamax`, written in NDArray arithmetic).
///
/// ```text
/// g = clip(rescale_grad·grad + wd·w, ±clip_gradient)
/// m = β1·m + (1 − β1)·g
/// u = max(β2·u, |g|)
/// w = w − lr / (1 − β1^t) · m / u
/// ```
///
/// A `clip_gradient` of 0 clips every gradient to 0 here (MXNet's Python code tests
/// `is not None`). Defaults: `learning_rate` 0.002, `beta1` 0.9, `beta2` 0.999. States
/// `mean`, `u`.
///
/// ```
/// use mxgluon::optimizer::{Adamax, Optimizer};
/// let opt = Adamax::default();
/// assert_eq!(opt.params().learning_rate, 0.002);
/// assert_eq!(opt.state_names(), vec!["mean", "u"]);
/// ```
#[derive(Debug, Clone)]
pub struct Adamax {
    params: OptimizerParams,
    beta1: f64,
    beta2: f64,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax {
            params: params_with_lr(0.002),
            beta1: 0.9,
            beta2: 0.999,
        }
    }
}

impl Adamax {
    /// Adamax with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Adamax::default().learning_rate(learning_rate)
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

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("adamax", w.len(), g.len());
        let [mean, u] = slots::<T, 2>("adamax", states, w.len());
        let lr = T::of(a.lr / (1.0 - self.beta1.powf(a.t as f64)));
        let (wd, rg) = (T::of(a.wd), T::of(a.rescale_grad));
        let (b1, b2, ob1) = (
            T::of(self.beta1),
            T::of(self.beta2),
            T::of(1.0 - self.beta1),
        );
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            mean: &mut [T],
            u: &mut [T],
            [lr, wd, rg, b1, b2, ob1, c]: [T; 7],
        ) {
            for (((w, &g), m), u) in w.iter_mut().zip(g).zip(mean).zip(u) {
                let mut gr = g * rg + *w * wd;
                if CLIP {
                    gr = clip(gr, c);
                }
                *m = *m * b1 + ob1 * gr;
                *u = maximum(b2 * *u, gr.abs());
                *w = *w - lr * *m / *u;
            }
        }
        let s = |c| [lr, wd, rg, b1, b2, ob1, c];
        match py_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, mean, u, s(T::of(c))),
            None => go::<T, false>(w, g, mean, u, s(T::ZERO)),
        }
    }
}

shared_builders!(Adamax, true);

impl Optimizer for Adamax {
    fn name(&self) -> &'static str {
        "adamax"
    }
    fn params(&self) -> &OptimizerParams {
        &self.params
    }
    fn params_mut(&mut self) -> &mut OptimizerParams {
        &mut self.params
    }
    fn state_names(&self) -> Vec<&'static str> {
        vec!["mean", "u"]
    }
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

// --------------------------------------------------------------------------------- Nadam

/// How many update counts apart the cached momentum-schedule products are.
const SCHEDULE_STRIDE: u64 = 256;

/// Cache of Nadam's momentum-schedule products `Π_{i ≤ t} μ_i` (a pure function of `t` and
/// the hyper-parameters): every [`SCHEDULE_STRIDE`]-th product plus the last few values
/// asked for, so a step costs one multiplication in steady state and memory stays small.
#[derive(Debug, Clone, Default)]
struct ScheduleCache {
    /// `checkpoints[k]` = product up to `k·SCHEDULE_STRIDE` (`checkpoints[0]` = 1).
    checkpoints: Vec<f64>,
    /// Recently computed `(t, product)` pairs.
    recent: Vec<(u64, f64)>,
}

/// Nesterov Adam (MXNet's `nadam`, written in NDArray arithmetic).
///
/// With `μ_t = β1·(1 − 0.5·0.96^(t·schedule_decay))` and `M_t = μ_1·…·μ_t`:
///
/// ```text
/// g  = clip(rescale_grad·grad + wd·w, ±clip_gradient)
/// m  = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g²
/// m̄  = (1 − μ_t)·g / (1 − M_t) + μ_{t+1}·m / (1 − M_t·μ_{t+1})
/// w  = w − lr·m̄ / (√(v / (1 − β2^t)) + ε)
/// ```
///
/// **Difference from MXNet 1.9.1:** MXNet keeps one running product `m_schedule` in the
/// optimizer and multiplies it by `μ_t` at every update of *any* parameter, so with several
/// parameters the product advances several times per step (a quirk). Here `M_t` is each
/// parameter's own product over its update counts `1..=t` (equal to MXNet's for a single
/// parameter). It is computed from `t` alone, so no per-parameter state is needed: the
/// optimizer caches the products in a `Mutex` (checkpoints every 256 counts plus the latest
/// values; one multiplication per step in steady state). A `clip_gradient` of 0 clips every
/// gradient to 0 (MXNet tests `is not None`).
///
/// Defaults: `learning_rate` 0.001, `beta1` 0.9, `beta2` 0.999, `epsilon` 1e-8,
/// `schedule_decay` 0.004. States `mean`, `var`.
///
/// ```
/// use mxgluon::optimizer::{Nadam, Optimizer};
/// let opt = Nadam::new(0.002).schedule_decay(0.005);
/// assert_eq!(opt.hyper_json()["schedule_decay"], 0.005);
/// ```
#[derive(Debug)]
pub struct Nadam {
    params: OptimizerParams,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    schedule_decay: f64,
    cache: Mutex<ScheduleCache>,
}

impl Clone for Nadam {
    fn clone(&self) -> Self {
        Nadam {
            params: self.params.clone(),
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            schedule_decay: self.schedule_decay,
            cache: Mutex::new(self.lock_cache().clone()),
        }
    }
}

impl Default for Nadam {
    fn default() -> Self {
        Nadam {
            params: params_with_lr(0.001),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            schedule_decay: 0.004,
            cache: Mutex::new(ScheduleCache::default()),
        }
    }
}

impl Nadam {
    /// Nadam with learning rate `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Self {
        Nadam::default().learning_rate(learning_rate)
    }
    /// Sets `beta1` (default 0.9).
    pub fn beta1(mut self, beta1: f64) -> Self {
        self.beta1 = beta1;
        self.cache = Mutex::new(ScheduleCache::default());
        self
    }
    /// Sets `beta2` (default 0.999).
    pub fn beta2(mut self, beta2: f64) -> Self {
        self.beta2 = beta2;
        self
    }
    /// Sets `epsilon` (default 1e-8).
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Sets `schedule_decay` (default 0.004).
    pub fn schedule_decay(mut self, schedule_decay: f64) -> Self {
        self.schedule_decay = schedule_decay;
        self.cache = Mutex::new(ScheduleCache::default());
        self
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ScheduleCache> {
        // The cache holds plain numbers that are valid after any panic: recover from poison.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `μ_t`.
    fn momentum_at(&self, t: u64) -> f64 {
        self.beta1 * (1.0 - 0.5 * 0.96f64.powf(t as f64 * self.schedule_decay))
    }

    /// `M_t = μ_1·…·μ_t`, multiplied in order (so every path gives the same bits).
    fn schedule_product(&self, t: u64) -> f64 {
        let mut c = self.lock_cache();
        if let Some(&(_, p)) = c.recent.iter().find(|(rt, _)| *rt == t) {
            return p;
        }
        let p = if let Some(&(_, prev)) = c.recent.iter().find(|(rt, _)| *rt + 1 == t) {
            prev * self.momentum_at(t)
        } else {
            if c.checkpoints.is_empty() {
                c.checkpoints.push(1.0);
            }
            let k = (t / SCHEDULE_STRIDE) as usize;
            while c.checkpoints.len() <= k {
                let base = (c.checkpoints.len() as u64 - 1) * SCHEDULE_STRIDE;
                let mut p = c.checkpoints[c.checkpoints.len() - 1];
                for i in base + 1..=base + SCHEDULE_STRIDE {
                    p *= self.momentum_at(i);
                }
                c.checkpoints.push(p);
            }
            let mut p = c.checkpoints[k];
            for i in k as u64 * SCHEDULE_STRIDE + 1..=t {
                p *= self.momentum_at(i);
            }
            p
        };
        if c.recent.len() >= 4 {
            c.recent.remove(0);
        }
        c.recent.push((t, p));
        p
    }

    fn kernel<T: Real>(&self, a: &StepArgs, w: &mut [T], g: &[T], states: &mut [&mut [T]]) {
        check_len("nadam", w.len(), g.len());
        let [mean, var] = slots::<T, 2>("nadam", states, w.len());
        let t = a.t;
        let mom_t = self.momentum_at(t);
        let mom_t1 = self.momentum_at(t + 1);
        let m_schedule = self.schedule_product(t);
        let m_schedule_next = m_schedule * mom_t1;
        let sc = [
            T::of(a.lr),
            T::of(a.wd),
            T::of(a.rescale_grad),
            T::of(self.beta1),
            T::of(1.0 - self.beta1),
            T::of(self.beta2),
            T::of(1.0 - self.beta2),
            T::of(1.0 - m_schedule),
            T::of(1.0 - m_schedule_next),
            T::of(1.0 - self.beta2.powf(t as f64)),
            T::of(1.0 - mom_t),
            T::of(mom_t1),
            T::of(self.epsilon),
        ];
        fn go<T: Real, const CLIP: bool>(
            w: &mut [T],
            g: &[T],
            mean: &mut [T],
            var: &mut [T],
            [lr, wd, rg, b1, ob1, b2, ob2, d_g, d_m, d_v, omt, mt1, eps]: [T; 13],
            c: T,
        ) {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(mean).zip(var) {
                let mut gr = g * rg + *w * wd;
                if CLIP {
                    gr = clip(gr, c);
                }
                *m = *m * b1 + ob1 * gr;
                *v = *v * b2 + ob2 * gr * gr;
                let g_prime = gr / d_g;
                let m_prime = *m / d_m;
                let v_prime = *v / d_v;
                let m_bar = omt * g_prime + mt1 * m_prime;
                *w = *w - lr * m_bar / (v_prime.sqrt() + eps);
            }
        }
        match py_clip(a.clip_gradient) {
            Some(c) => go::<T, true>(w, g, mean, var, sc, T::of(c)),
            None => go::<T, false>(w, g, mean, var, sc, T::ZERO),
        }
    }
}

shared_builders!(Nadam, true);

impl Optimizer for Nadam {
    fn name(&self) -> &'static str {
        "nadam"
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
    impl_steps!();
    fn hyper_json(&self) -> Map<String, Value> {
        obj(vec![
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("epsilon", self.epsilon.into()),
            ("schedule_decay", self.schedule_decay.into()),
        ])
    }
    fn clone_box(&self) -> Box<dyn Optimizer> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(lr: f64, wd: f64, rescale: f64, clip: Option<f64>, t: u64) -> StepArgs {
        StepArgs {
            lr,
            wd,
            rescale_grad: rescale,
            clip_gradient: clip,
            t,
            num_update: t,
        }
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // At t = 1 the bias-corrected step is lr·g/(|g| + ε·√(1−β2)) ≈ lr·sign(g).
        let opt = Adam::new(0.1);
        let (mut w, mut m, mut v) = ([1.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.1, 0.0, 1.0, None, 1),
            &mut w,
            &[3.0],
            &mut [&mut m, &mut v],
        );
        assert!((m[0] - 0.3).abs() < 1e-15);
        assert!((v[0] - 0.009).abs() < 1e-15);
        let lr_t = 0.1 * (0.001f64).sqrt() / 0.1;
        let expect = 1.0 - lr_t * 0.3 / (0.009f64.sqrt() + 1e-8);
        assert!((w[0] - expect).abs() < 1e-15);
        assert!((w[0] - 0.9).abs() < 1e-6);
    }

    #[test]
    fn adam_adds_weight_decay_before_clipping() {
        // grad 0, w 10, wd 1 → g = 10, clipped to 1: m = 0.1.
        let opt = Adam::new(0.1);
        let (mut w, mut m, mut v) = ([10.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.1, 1.0, 1.0, Some(1.0), 1),
            &mut w,
            &[0.0],
            &mut [&mut m, &mut v],
        );
        assert!((m[0] - 0.1).abs() < 1e-15);
    }

    #[test]
    fn adamw_decouples_decay_and_skips_on_zero_rescale() {
        // grad 0: m = v = 0, so w = w − η·wd·w with η = lr·√(1−β2)/(1−β1).
        let opt = AdamW::new(0.1);
        let (mut w, mut m, mut v) = ([2.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.1, 0.5, 1.0, None, 1),
            &mut w,
            &[0.0],
            &mut [&mut m, &mut v],
        );
        let eta = 0.1 * (0.001f64).sqrt() / 0.1;
        assert!((w[0] - (2.0 - eta * 0.5 * 2.0)).abs() < 1e-15);
        let before = w[0];
        opt.step_f64(
            &args(0.1, 0.5, 0.0, None, 2),
            &mut w,
            &[5.0],
            &mut [&mut m, &mut v],
        );
        assert_eq!((w[0], m[0], v[0]), (before, 0.0, 0.0));
    }

    #[test]
    fn adamax_by_hand() {
        // t 1, lr 0.2: lr_t = 0.2/0.1 = 2; g 0.5 → m 0.05, u 0.5 → w = 1 − 2·0.05/0.5 = 0.8.
        let opt = Adamax::new(0.2);
        let (mut w, mut m, mut u) = ([1.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.2, 0.0, 1.0, None, 1),
            &mut w,
            &[0.5],
            &mut [&mut m, &mut u],
        );
        assert!((m[0] - 0.05).abs() < 1e-15 && u[0] == 0.5);
        assert!((w[0] - 0.8).abs() < 1e-14);
    }

    #[test]
    fn nadam_schedule_is_a_product_per_count() {
        let opt = Nadam::default();
        let direct = |t: u64| (1..=t).fold(1.0f64, |p, i| p * opt.momentum_at(i));
        // In any order, across checkpoints, the cached product equals the in-order product.
        for t in [1u64, 2, 3, 700, 255, 256, 257, 1, 5000, 5001] {
            assert_eq!(opt.schedule_product(t), direct(t), "t = {t}");
        }
        let copy = opt.clone();
        assert_eq!(copy.schedule_product(300), direct(300));
    }

    #[test]
    fn nadam_first_step_by_hand() {
        let opt = Nadam::new(0.1);
        let (mut w, mut m, mut v) = ([1.0f64], [0.0f64], [0.0f64]);
        opt.step_f64(
            &args(0.1, 0.0, 1.0, None, 1),
            &mut w,
            &[2.0],
            &mut [&mut m, &mut v],
        );
        let mu1 = 0.9 * (1.0 - 0.5 * 0.96f64.powf(0.004));
        let mu2 = 0.9 * (1.0 - 0.5 * 0.96f64.powf(0.008));
        let (m1, v1) = (0.1 * 2.0, 0.001 * 4.0);
        let m_bar = (1.0 - mu1) * 2.0 / (1.0 - mu1) + mu2 * m1 / (1.0 - mu1 * mu2);
        let expect = 1.0 - 0.1 * m_bar / ((v1 / 0.001f64).sqrt() + 1e-8);
        assert!((w[0] - expect).abs() < 1e-14, "{} vs {expect}", w[0]);
    }
}
