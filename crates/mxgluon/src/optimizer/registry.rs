//! Creating optimizers by name.

use super::Optimizer;
use crate::error::{Error, Result};

/// Options for [`create`], by MXNet's keyword names.
#[derive(Debug, Clone, Default)]
pub struct OptimizerOptions {
    values: Vec<(String, f64)>,
}

impl OptimizerOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets one option.
    pub fn set(mut self, key: &str, value: f64) -> Self {
        self.values.push((key.to_string(), value));
        self
    }
}

/// Creates an optimizer by name (case-insensitive).
pub fn create(name: &str, _options: &OptimizerOptions) -> Result<Box<dyn Optimizer>> {
    Err(Error::UnknownOptimizer {
        name: name.to_string(),
        known: vec![],
    })
}

/// Rebuilds an optimizer from a saved description (`Trainer::save_states`' header).
pub fn create_from_json(name: &str, _json: &serde_json::Value) -> Result<Box<dyn Optimizer>> {
    create(name, &OptimizerOptions::new())
}
