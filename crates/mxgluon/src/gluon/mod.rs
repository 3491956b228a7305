//! Gluon: [`Parameter`], [`Constant`] and [`ParameterDict`].

mod constant;
mod parameter;
mod parameter_dict;

pub use constant::Constant;
pub use parameter::{DTypeSource, InitOptions, ParamState, Parameter};
pub use parameter_dict::{ParamSpec, ParameterDict};
