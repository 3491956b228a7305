//! Learning-rate schedulers (MXNet's `mx.lr_scheduler`), with MXNet 1.9.1's exact semantics.
//!
//! A scheduler maps the optimizer's update count (`num_update`, the highest per-parameter
//! count) to a base learning rate. All four of MXNet's schedulers are here, each with an
//! optional warmup ([`Warmup`]): during the first `warmup.steps` counts the rate rises
//! linearly from `warmup.begin_lr` to the scheduler's base rate (or stays at `begin_lr` in
//! [`WarmupMode::Constant`]).
//!
//! **How the optimizer's learning rate interacts (as in MXNet).** When an optimizer gets both
//! a `learning_rate` and a scheduler, it sets the scheduler's `base_lr` to the learning rate
//! ([`LrScheduler::set_base_lr`]). MXNet changes only the `base_lr` attribute, so:
//! * [`FactorScheduler`] and [`MultiFactorScheduler`] decay from the new rate;
//! * the warmup still ends at the rate the scheduler was *constructed* with;
//! * [`PolyScheduler`] and [`CosineScheduler`] compute from the rate they were constructed
//!   with, so the new rate only shows after `max_update` if they were never consulted in
//!   between.
//!
//! ```
//! use mxgluon::optimizer::{FactorScheduler, LrScheduler, Warmup};
//! let mut s = FactorScheduler::new(2, 0.5)?.with_base_lr(1.0)?.with_warmup(Warmup::linear(2, 0.0))?;
//! let lrs: Vec<f64> = (0..7).map(|n| s.lr(n)).collect();
//! assert_eq!(lrs, [0.0, 0.5, 1.0, 0.5, 0.5, 0.25, 0.25]);
//! # Ok::<(), mxgluon::Error>(())
//! ```

use std::f64::consts::PI;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A learning-rate schedule: the base learning rate as a function of the update count.
pub trait LrScheduler: Send + Sync + fmt::Debug {
    /// The learning rate at update `num_update` (may advance internal state, as MXNet's
    /// `FactorScheduler` does).
    fn lr(&mut self, num_update: u64) -> f64;
    /// The schedule's base learning rate.
    fn base_lr(&self) -> f64;
    /// Sets the base learning rate (the optimizer's `learning_rate` when one is given).
    fn set_base_lr(&mut self, lr: f64);
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn LrScheduler>;
    /// The schedule's configuration and progress as JSON, readable by [`from_json`] (`None`
    /// for schedules that cannot be serialized, the default).
    fn to_json(&self) -> Option<Value> {
        None
    }
}

impl Clone for Box<dyn LrScheduler> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// How the learning rate behaves during warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WarmupMode {
    /// Rises in equal increments from `begin_lr` to the base rate (MXNet's `'linear'`).
    #[default]
    Linear,
    /// Stays at `begin_lr` (MXNet's `'constant'`).
    Constant,
}

impl WarmupMode {
    /// MXNet's name (`"linear"` / `"constant"`).
    pub fn as_str(self) -> &'static str {
        match self {
            WarmupMode::Linear => "linear",
            WarmupMode::Constant => "constant",
        }
    }

    /// Parses MXNet's name.
    pub fn parse(s: &str) -> Result<WarmupMode> {
        match s {
            "linear" => Ok(WarmupMode::Linear),
            "constant" => Ok(WarmupMode::Constant),
            _ => Err(invalid(
                "lr_scheduler",
                "warmup_mode",
                format!("Supports only linear and constant modes of warmup (got {s:?})"),
            )),
        }
    }
}

/// The warmup of a schedule (MXNet's `warmup_steps`, `warmup_begin_lr`, `warmup_mode`).
/// The default is no warmup.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Warmup {
    /// Number of warmup updates (0: none).
    pub steps: u64,
    /// The rate warmup starts from (must not exceed the base rate).
    pub begin_lr: f64,
    /// Linear rise or constant.
    pub mode: WarmupMode,
}

impl Warmup {
    /// A linear warmup over `steps` updates starting at `begin_lr`.
    pub fn linear(steps: u64, begin_lr: f64) -> Warmup {
        Warmup {
            steps,
            begin_lr,
            mode: WarmupMode::Linear,
        }
    }
    /// A constant rate `lr` for the first `steps` updates.
    pub fn constant(steps: u64, lr: f64) -> Warmup {
        Warmup {
            steps,
            begin_lr: lr,
            mode: WarmupMode::Constant,
        }
    }
}

fn invalid(who: &str, option: &str, reason: impl Into<String>) -> Error {
    Error::InvalidOptimizerOption {
        optimizer: who.to_string(),
        option: option.to_string(),
        reason: reason.into(),
    }
}

/// What MXNet's `LRScheduler` base class holds.
#[derive(Clone, Debug, PartialEq)]
struct Base {
    base_lr: f64,
    warmup: Warmup,
    /// The constructor's `base_lr`: where warmup ends (not moved by `set_base_lr`).
    warmup_final_lr: f64,
}

impl Base {
    fn new(who: &str, base_lr: f64, warmup: Warmup) -> Result<Base> {
        if warmup.begin_lr > base_lr {
            return Err(invalid(
                who,
                "warmup_begin_lr",
                format!(
                    "Base lr has to be higher than warmup_begin_lr ({} > {base_lr})",
                    warmup.begin_lr
                ),
            ));
        }
        Ok(Base {
            base_lr,
            warmup,
            warmup_final_lr: base_lr,
        })
    }

    /// The warmup rate, when `num_update` is inside the warmup.
    fn warmup_lr(&self, num_update: u64) -> Option<f64> {
        if num_update >= self.warmup.steps {
            return None;
        }
        Some(match self.warmup.mode {
            WarmupMode::Linear => {
                let increase = (self.warmup_final_lr - self.warmup.begin_lr) * num_update as f64
                    / self.warmup.steps as f64;
                self.warmup.begin_lr + increase
            }
            WarmupMode::Constant => self.warmup.begin_lr,
        })
    }

    fn to_json(&self, kind: &str, m: &mut Map<String, Value>) {
        m.insert("type".into(), kind.into());
        m.insert("base_lr".into(), self.base_lr.into());
        m.insert("warmup_steps".into(), self.warmup.steps.into());
        m.insert("warmup_begin_lr".into(), self.warmup.begin_lr.into());
        m.insert("warmup_final_lr".into(), self.warmup_final_lr.into());
        m.insert("warmup_mode".into(), self.warmup.mode.as_str().into());
    }
}

// --------------------------------------------------------------------------- Factor

/// Multiplies the rate by `factor` every `step` updates, never going below
/// `stop_factor_lr` (MXNet's `FactorScheduler`).
///
/// At update `n` (after warmup) the rate is `base_lr · factor^k` for the smallest `k ≥ 0`
/// with `n ≤ (k + 1)·step`, computed incrementally as MXNet does (the state only moves
/// forward). Defaults: `factor` 1, `stop_factor_lr` 1e-8, `base_lr` 0.01, no warmup.
///
/// ```
/// use mxgluon::optimizer::{FactorScheduler, LrScheduler};
/// let mut s = FactorScheduler::new(10, 0.5)?.with_base_lr(0.1)?;
/// assert_eq!(s.lr(10), 0.1);
/// assert_eq!(s.lr(11), 0.05);
/// assert_eq!(s.lr(25), 0.025);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FactorScheduler {
    base: Base,
    step: u64,
    factor: f64,
    stop_factor_lr: f64,
    count: u64,
}

impl FactorScheduler {
    /// A schedule changing the rate by `factor` (≤ 1) every `step` (≥ 1) updates.
    pub fn new(step: u64, factor: f64) -> Result<FactorScheduler> {
        let s = FactorScheduler {
            base: Base::new("FactorScheduler", 0.01, Warmup::default())?,
            step,
            factor,
            stop_factor_lr: 1e-8,
            count: 0,
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        if self.step < 1 {
            return Err(invalid(
                "FactorScheduler",
                "step",
                "Schedule step must be greater or equal than 1 round",
            ));
        }
        if self.factor > 1.0 {
            return Err(invalid(
                "FactorScheduler",
                "factor",
                format!(
                    "Factor must be no more than 1 to make lr reduce (got {})",
                    self.factor
                ),
            ));
        }
        Ok(())
    }

    /// Sets the rate the schedule starts from (the constructor's `base_lr`; default 0.01).
    pub fn with_base_lr(mut self, base_lr: f64) -> Result<FactorScheduler> {
        self.base = Base::new("FactorScheduler", base_lr, self.base.warmup)?;
        Ok(self)
    }

    /// Sets the warmup (default none).
    pub fn with_warmup(mut self, warmup: Warmup) -> Result<FactorScheduler> {
        self.base = Base::new("FactorScheduler", self.base.warmup_final_lr, warmup)?;
        Ok(self)
    }

    /// Sets the floor of the rate (default 1e-8).
    pub fn with_stop_factor_lr(mut self, stop_factor_lr: f64) -> FactorScheduler {
        self.stop_factor_lr = stop_factor_lr;
        self
    }
}

impl LrScheduler for FactorScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if let Some(lr) = self.base.warmup_lr(num_update) {
            return lr;
        }
        while num_update > self.count + self.step {
            self.count += self.step;
            self.base.base_lr *= self.factor;
            if self.base.base_lr < self.stop_factor_lr {
                self.base.base_lr = self.stop_factor_lr;
                log::info!(
                    "Update[{num_update}]: now learning rate arrived at {:.5e}, will not change in the future",
                    self.base.base_lr
                );
            } else {
                log::info!(
                    "Update[{num_update}]: Change learning rate to {:.5e}",
                    self.base.base_lr
                );
            }
        }
        self.base.base_lr
    }
    fn base_lr(&self) -> f64 {
        self.base.base_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base.base_lr = lr;
    }
    fn clone_box(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        self.base.to_json("factor", &mut m);
        m.insert("step".into(), self.step.into());
        m.insert("factor".into(), self.factor.into());
        m.insert("stop_factor_lr".into(), self.stop_factor_lr.into());
        m.insert("count".into(), self.count.into());
        Some(Value::Object(m))
    }
}

// ---------------------------------------------------------------------- MultiFactor

/// Multiplies the rate by `factor` after each of the given update counts (MXNet's
/// `MultiFactorScheduler`): at update `n` the rate is `base_lr · factor^k` where `k` is the
/// number of steps `s` with `s < n`.
///
/// ```
/// use mxgluon::optimizer::{LrScheduler, MultiFactorScheduler};
/// let mut s = MultiFactorScheduler::new(&[2, 4], 0.1)?.with_base_lr(1.0)?;
/// let lrs: Vec<f64> = (1..=5).map(|n| s.lr(n)).collect();
/// assert_eq!(lrs, [1.0, 1.0, 0.1, 0.1, 0.1 * 0.1]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MultiFactorScheduler {
    base: Base,
    steps: Vec<u64>,
    factor: f64,
    cur_step_ind: usize,
}

impl MultiFactorScheduler {
    /// A schedule changing the rate by `factor` (≤ 1) after each of `steps` (increasing,
    /// each ≥ 1, at least one).
    pub fn new(steps: &[u64], factor: f64) -> Result<MultiFactorScheduler> {
        let who = "MultiFactorScheduler";
        if steps.is_empty() {
            return Err(invalid(who, "step", "the list of steps must not be empty"));
        }
        for (i, &s) in steps.iter().enumerate() {
            if i != 0 && s <= steps[i - 1] {
                return Err(invalid(
                    who,
                    "step",
                    "Schedule step must be an increasing integer list",
                ));
            }
            if s < 1 {
                return Err(invalid(
                    who,
                    "step",
                    "Schedule step must be greater or equal than 1 round",
                ));
            }
        }
        if factor > 1.0 {
            return Err(invalid(
                who,
                "factor",
                format!("Factor must be no more than 1 to make lr reduce (got {factor})"),
            ));
        }
        Ok(MultiFactorScheduler {
            base: Base::new(who, 0.01, Warmup::default())?,
            steps: steps.to_vec(),
            factor,
            cur_step_ind: 0,
        })
    }

    /// Sets the rate the schedule starts from (default 0.01).
    pub fn with_base_lr(mut self, base_lr: f64) -> Result<MultiFactorScheduler> {
        self.base = Base::new("MultiFactorScheduler", base_lr, self.base.warmup)?;
        Ok(self)
    }

    /// Sets the warmup (default none).
    pub fn with_warmup(mut self, warmup: Warmup) -> Result<MultiFactorScheduler> {
        self.base = Base::new("MultiFactorScheduler", self.base.warmup_final_lr, warmup)?;
        Ok(self)
    }
}

impl LrScheduler for MultiFactorScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if let Some(lr) = self.base.warmup_lr(num_update) {
            return lr;
        }
        while self.cur_step_ind < self.steps.len() {
            if num_update > self.steps[self.cur_step_ind] {
                self.cur_step_ind += 1;
                self.base.base_lr *= self.factor;
                log::info!(
                    "Update[{num_update}]: Change learning rate to {:.5e}",
                    self.base.base_lr
                );
            } else {
                return self.base.base_lr;
            }
        }
        self.base.base_lr
    }
    fn base_lr(&self) -> f64 {
        self.base.base_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base.base_lr = lr;
    }
    fn clone_box(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        self.base.to_json("multifactor", &mut m);
        m.insert("step".into(), self.steps.clone().into());
        m.insert("factor".into(), self.factor.into());
        m.insert("cur_step_ind".into(), self.cur_step_ind.into());
        Some(Value::Object(m))
    }
}

// ----------------------------------------------------------------------------- Poly

/// Polynomial decay to `final_lr` at `max_update` (MXNet's `PolyScheduler`):
/// `final_lr + (base_lr − final_lr)·(1 − (n − warmup)/(max_update − warmup))^pwr` for
/// `n ≤ max_update`; after that the last rate stays.
///
/// Defaults: `pwr` 2, `final_lr` 0, `base_lr` 0.01, no warmup. (If `max_update` equals the
/// warmup length, MXNet divides by zero at that count; here the rate is `final_lr`.)
///
/// ```
/// use mxgluon::optimizer::{LrScheduler, PolyScheduler};
/// let mut s = PolyScheduler::new(4)?.with_base_lr(1.0)?;
/// assert_eq!(s.lr(2), 0.25);
/// assert_eq!(s.lr(9), 0.25); // past max_update the last computed rate stays
/// assert_eq!(s.lr(4), 0.0);
/// assert_eq!(s.lr(9), 0.0);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PolyScheduler {
    base: Base,
    max_update: u64,
    power: f64,
    final_lr: f64,
    base_lr_orig: f64,
}

impl PolyScheduler {
    /// A polynomial decay over `max_update` (≥ 1) updates.
    pub fn new(max_update: u64) -> Result<PolyScheduler> {
        check_max_update("PolyScheduler", max_update)?;
        Ok(PolyScheduler {
            base: Base::new("PolyScheduler", 0.01, Warmup::default())?,
            max_update,
            power: 2.0,
            final_lr: 0.0,
            base_lr_orig: 0.01,
        })
    }

    /// Sets the rate the decay starts from (default 0.01).
    pub fn with_base_lr(mut self, base_lr: f64) -> Result<PolyScheduler> {
        self.base = Base::new("PolyScheduler", base_lr, self.base.warmup)?;
        self.base_lr_orig = base_lr;
        Ok(self)
    }

    /// Sets the warmup (default none).
    pub fn with_warmup(mut self, warmup: Warmup) -> Result<PolyScheduler> {
        self.base = Base::new("PolyScheduler", self.base.warmup_final_lr, warmup)?;
        Ok(self)
    }

    /// Sets the power of the decay (default 2).
    pub fn with_pwr(mut self, pwr: f64) -> PolyScheduler {
        self.power = pwr;
        self
    }

    /// Sets the final rate (default 0).
    pub fn with_final_lr(mut self, final_lr: f64) -> PolyScheduler {
        self.final_lr = final_lr;
        self
    }
}

fn check_max_update(who: &str, max_update: u64) -> Result<()> {
    if max_update < 1 {
        return Err(invalid(
            who,
            "max_update",
            "maximum number of updates must be strictly positive",
        ));
    }
    Ok(())
}

/// `x·(n − warmup) / (max_update − warmup)` in MXNet's order of operations (`x` is 1 for
/// the polynomial and π for the cosine), with `x` for the count where MXNet would divide by
/// zero (`max_update` equal to the warmup length).
fn progress(x: f64, num_update: u64, warmup: u64, max_update: u64) -> f64 {
    let max_steps = max_update as f64 - warmup as f64;
    if max_steps == 0.0 {
        return x;
    }
    x * (num_update - warmup) as f64 / max_steps
}

impl LrScheduler for PolyScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if let Some(lr) = self.base.warmup_lr(num_update) {
            return lr;
        }
        if num_update <= self.max_update {
            let p = progress(1.0, num_update, self.base.warmup.steps, self.max_update);
            self.base.base_lr =
                self.final_lr + (self.base_lr_orig - self.final_lr) * (1.0 - p).powf(self.power);
        }
        self.base.base_lr
    }
    fn base_lr(&self) -> f64 {
        self.base.base_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base.base_lr = lr;
    }
    fn clone_box(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        self.base.to_json("poly", &mut m);
        m.insert("max_update".into(), self.max_update.into());
        m.insert("pwr".into(), self.power.into());
        m.insert("final_lr".into(), self.final_lr.into());
        m.insert("base_lr_orig".into(), self.base_lr_orig.into());
        Some(Value::Object(m))
    }
}

// --------------------------------------------------------------------------- Cosine

/// Cosine decay to `final_lr` at `max_update` (MXNet's `CosineScheduler`):
/// `final_lr + (base_lr − final_lr)·(1 + cos(π·(n − warmup)/(max_update − warmup)))/2` for
/// `n ≤ max_update`; after that the last rate stays.
///
/// Defaults: `final_lr` 0, `base_lr` 0.01, no warmup.
///
/// ```
/// use mxgluon::optimizer::{CosineScheduler, LrScheduler};
/// let mut s = CosineScheduler::new(10)?.with_base_lr(1.0)?;
/// assert!((s.lr(5) - 0.5).abs() < 1e-15);
/// assert_eq!(s.lr(10), 0.0);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CosineScheduler {
    base: Base,
    max_update: u64,
    final_lr: f64,
    base_lr_orig: f64,
}

impl CosineScheduler {
    /// A cosine decay over `max_update` (≥ 1) updates.
    pub fn new(max_update: u64) -> Result<CosineScheduler> {
        check_max_update("CosineScheduler", max_update)?;
        Ok(CosineScheduler {
            base: Base::new("CosineScheduler", 0.01, Warmup::default())?,
            max_update,
            final_lr: 0.0,
            base_lr_orig: 0.01,
        })
    }

    /// Sets the rate the decay starts from (default 0.01).
    pub fn with_base_lr(mut self, base_lr: f64) -> Result<CosineScheduler> {
        self.base = Base::new("CosineScheduler", base_lr, self.base.warmup)?;
        self.base_lr_orig = base_lr;
        Ok(self)
    }

    /// Sets the warmup (default none).
    pub fn with_warmup(mut self, warmup: Warmup) -> Result<CosineScheduler> {
        self.base = Base::new("CosineScheduler", self.base.warmup_final_lr, warmup)?;
        Ok(self)
    }

    /// Sets the final rate (default 0).
    pub fn with_final_lr(mut self, final_lr: f64) -> CosineScheduler {
        self.final_lr = final_lr;
        self
    }
}

impl LrScheduler for CosineScheduler {
    fn lr(&mut self, num_update: u64) -> f64 {
        if let Some(lr) = self.base.warmup_lr(num_update) {
            return lr;
        }
        if num_update <= self.max_update {
            let angle = progress(PI, num_update, self.base.warmup.steps, self.max_update);
            self.base.base_lr =
                self.final_lr + (self.base_lr_orig - self.final_lr) * (1.0 + angle.cos()) / 2.0;
        }
        self.base.base_lr
    }
    fn base_lr(&self) -> f64 {
        self.base.base_lr
    }
    fn set_base_lr(&mut self, lr: f64) {
        self.base.base_lr = lr;
    }
    fn clone_box(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn to_json(&self) -> Option<Value> {
        let mut m = Map::new();
        self.base.to_json("cosine", &mut m);
        m.insert("max_update".into(), self.max_update.into());
        m.insert("final_lr".into(), self.final_lr.into());
        m.insert("base_lr_orig".into(), self.base_lr_orig.into());
        Some(Value::Object(m))
    }
}

// ------------------------------------------------------------------------------ JSON

/// Reads one field of a scheduler's JSON.
struct Fields<'a> {
    m: &'a Map<String, Value>,
    who: &'static str,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Result<&Value> {
        self.m
            .get(key)
            .ok_or_else(|| invalid(self.who, key, "missing from the scheduler's JSON"))
    }
    fn f64(&self, key: &str) -> Result<f64> {
        self.get(key)?
            .as_f64()
            .ok_or_else(|| invalid(self.who, key, "must be a number"))
    }
    fn u64(&self, key: &str) -> Result<u64> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| invalid(self.who, key, "must be a non-negative integer"))
    }
    fn base(&self) -> Result<Base> {
        let mode = match self.get("warmup_mode")?.as_str() {
            Some(s) => WarmupMode::parse(s)?,
            None => return Err(invalid(self.who, "warmup_mode", "must be a string")),
        };
        let warmup = Warmup {
            steps: self.u64("warmup_steps")?,
            begin_lr: self.f64("warmup_begin_lr")?,
            mode,
        };
        let mut b = Base::new(self.who, self.f64("warmup_final_lr")?, warmup)?;
        b.base_lr = self.f64("base_lr")?;
        Ok(b)
    }
}

/// Rebuilds a scheduler, progress included, from [`LrScheduler::to_json`]'s output (an
/// object whose `"type"` is `factor`, `multifactor`, `poly` or `cosine`).
///
/// ```
/// use mxgluon::optimizer::{lr_scheduler, FactorScheduler, LrScheduler};
/// let mut s = FactorScheduler::new(1, 0.5)?;
/// s.lr(3);
/// let mut back = lr_scheduler::from_json(&s.to_json().unwrap())?;
/// assert_eq!(back.lr(3), s.lr(3));
/// assert_eq!(back.lr(4), 0.01 * 0.125);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn from_json(json: &Value) -> Result<Box<dyn LrScheduler>> {
    let m = json
        .as_object()
        .ok_or_else(|| invalid("lr_scheduler", "lr_scheduler", "must be a JSON object"))?;
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "factor" => {
            let f = Fields {
                m,
                who: "FactorScheduler",
            };
            let mut s = FactorScheduler::new(f.u64("step")?, f.f64("factor")?)?
                .with_stop_factor_lr(f.f64("stop_factor_lr")?);
            s.base = f.base()?;
            s.count = f.u64("count")?;
            Ok(Box::new(s))
        }
        "multifactor" => {
            let f = Fields {
                m,
                who: "MultiFactorScheduler",
            };
            let steps = f
                .get("step")?
                .as_array()
                .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
                .ok_or_else(|| invalid(f.who, "step", "must be a list of integers"))?;
            let mut s = MultiFactorScheduler::new(&steps, f.f64("factor")?)?;
            s.base = f.base()?;
            let ind = f.u64("cur_step_ind")?;
            s.cur_step_ind = usize::try_from(ind)
                .ok()
                .filter(|i| *i <= steps.len())
                .ok_or_else(|| invalid(f.who, "cur_step_ind", "is past the list of steps"))?;
            Ok(Box::new(s))
        }
        "poly" => {
            let f = Fields {
                m,
                who: "PolyScheduler",
            };
            let mut s = PolyScheduler::new(f.u64("max_update")?)?
                .with_pwr(f.f64("pwr")?)
                .with_final_lr(f.f64("final_lr")?);
            s.base = f.base()?;
            s.base_lr_orig = f.f64("base_lr_orig")?;
            Ok(Box::new(s))
        }
        "cosine" => {
            let f = Fields {
                m,
                who: "CosineScheduler",
            };
            let mut s =
                CosineScheduler::new(f.u64("max_update")?)?.with_final_lr(f.f64("final_lr")?);
            s.base = f.base()?;
            s.base_lr_orig = f.f64("base_lr_orig")?;
            Ok(Box::new(s))
        }
        other => Err(invalid(
            "lr_scheduler",
            "type",
            format!("unknown scheduler type {other:?}; known: factor, multifactor, poly, cosine"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_validation() {
        assert!(FactorScheduler::new(0, 0.5).is_err());
        let e = FactorScheduler::new(1, 1.5).unwrap_err();
        assert!(
            e.to_string().contains("Factor must be no more than 1"),
            "{e}"
        );
        let e = FactorScheduler::new(1, 0.5)
            .unwrap()
            .with_warmup(Warmup::linear(3, 0.5))
            .unwrap_err();
        assert!(e.to_string().contains("warmup_begin_lr"), "{e}");
    }

    #[test]
    fn factor_floor_and_state() {
        let mut s = FactorScheduler::new(1, 0.1)
            .unwrap()
            .with_base_lr(1.0)
            .unwrap()
            .with_stop_factor_lr(0.005);
        assert_eq!(s.lr(1), 1.0);
        assert!((s.lr(2) - 0.1).abs() < 1e-16);
        assert_eq!(s.lr(10), 0.005);
        // The state only moves forward: asking for an earlier count keeps the floor.
        assert_eq!(s.lr(1), 0.005);
    }

    #[test]
    fn multifactor_validation() {
        assert!(MultiFactorScheduler::new(&[], 0.5).is_err());
        assert!(MultiFactorScheduler::new(&[3, 3], 0.5).is_err());
        assert!(MultiFactorScheduler::new(&[0, 3], 0.5).is_err());
        assert!(MultiFactorScheduler::new(&[1, 3], 2.0).is_err());
    }

    #[test]
    fn set_base_lr_keeps_warmup_target_and_poly_origin() {
        let mut s = PolyScheduler::new(10)
            .unwrap()
            .with_base_lr(1.0)
            .unwrap()
            .with_warmup(Warmup::linear(4, 0.0))
            .unwrap();
        s.set_base_lr(5.0);
        assert_eq!(s.lr(2), 0.5); // warmup still rises to 1.0
        assert_eq!(s.lr(4), 1.0); // decay starts from the constructor's rate
        assert_eq!(s.base_lr(), 1.0);
    }

    #[test]
    fn warmup_constant_and_equal_max_update() {
        let mut s = CosineScheduler::new(3)
            .unwrap()
            .with_base_lr(1.0)
            .unwrap()
            .with_warmup(Warmup::constant(3, 0.25))
            .unwrap();
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(2), 0.25);
        assert_eq!(s.lr(3), 0.0);
        assert!(WarmupMode::parse("cubic").is_err());
    }

    #[test]
    fn json_round_trip_every_kind() {
        let all: Vec<Box<dyn LrScheduler>> = vec![
            Box::new(FactorScheduler::new(2, 0.5).unwrap()),
            Box::new(MultiFactorScheduler::new(&[2, 5], 0.5).unwrap()),
            Box::new(
                PolyScheduler::new(8)
                    .unwrap()
                    .with_pwr(1.5)
                    .with_final_lr(0.001),
            ),
            Box::new(
                CosineScheduler::new(8)
                    .unwrap()
                    .with_warmup(Warmup::linear(2, 0.001))
                    .unwrap(),
            ),
        ];
        for mut s in all {
            for n in 0..4 {
                s.lr(n);
            }
            let mut back = from_json(&s.to_json().unwrap()).unwrap();
            for n in 4..12 {
                assert_eq!(back.lr(n), s.lr(n), "{s:?} at {n}");
            }
        }
        assert!(from_json(&serde_json::json!({"type": "step"})).is_err());
        assert!(from_json(&serde_json::json!({"type": "factor"})).is_err());
    }
}
