//! Gluon: [`Parameter`] and [`Constant`].

mod constant;
mod parameter;

pub use constant::Constant;
pub use parameter::{DTypeSource, InitOptions, ParamState, Parameter};
