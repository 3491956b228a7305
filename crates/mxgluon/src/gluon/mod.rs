//! Gluon: [`Parameter`] and [`Constant`].

/// Placeholder (being written).
pub struct Parameter;
/// Placeholder (being written).
pub struct Constant;
