//! Gluon: [`Parameter`], [`Constant`] and [`ParameterDict`]; [`Block`]s and the layers of
//! [`nn`]; the [`loss`] functions.

mod block;
mod constant;
pub mod data;
pub mod loss;
pub mod nn;
mod parameter;
mod parameter_dict;
mod serialize;
mod symbol_block;
mod trainer;
pub mod utils;

pub use block::{fmt_block, Block, BlockBase, NameScope};
pub use constant::Constant;
pub use parameter::{DTypeSource, InitOptions, ParamState, Parameter};
pub use parameter_dict::{ParamSpec, ParameterDict};
pub use serialize::LoadParams;
pub use symbol_block::SymbolBlock;
pub use trainer::{IntoOptimizer, IntoTrainerParams, Trainer, TrainerOptions};
