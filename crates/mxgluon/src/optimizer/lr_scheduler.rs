//! Learning-rate schedulers (MXNet's `mx.lr_scheduler`).

use std::fmt;

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
}
