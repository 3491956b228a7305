//! # mxgluon
//!
//! Apache MXNet Gluon's parameter system in Rust: an NDArray runtime with contexts, dtypes and
//! storage types; MXNet's initializer catalogue; and [`Parameter`] — one weight with a copy per
//! context, gradient buffers written or accumulated per [`GradReq`], live `lr_mult` /
//! `wd_mult`, and deferred initialization until the shape is known.
//!
//! The seed example:
//!
//! ```
//! use mxgluon::{init, nd, Context, Parameter};
//!
//! let ctx = Context::cpu(0);
//! let x = nd::zeros(&[16, 100], ctx)?;
//! let w = Parameter::new("fc_weight").with_shape([64, 100]).with_init(init::Xavier::default());
//! let b = Parameter::new("fc_bias").with_shape([64]).with_init(init::Zero);
//! w.initialize(ctx)?;
//! b.initialize(ctx)?;
//! let out = nd::fully_connected(&x, &w.data(ctx)?, Some(&b.data(ctx)?), 64)?;
//! assert_eq!(out.shape(), &[16, 64]);
//! # Ok::<(), mxgluon::Error>(())
//! ```
//!
//! Layers, lowest first (a layer never imports a higher one): [`context`] and [`dtype`];
//! [`nd`] (arrays, sparse arrays and operators); [`io`] (MXNet `.params`, safetensors, npy /
//! npz files, re-exported as `nd::save` / `nd::load`); [`random`] and [`init`]; [`symbol`]
//! (symbolic graphs, MXNet's graph JSON, shape and type inference); [`gluon`]
//! (`Parameter`, `Constant`, `ParameterDict`, blocks, layers, losses); [`autograd`]. See `ARCHITECTURE.md` in the repository for the map.
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod autograd;
pub mod context;
pub mod dtype;
pub mod error;
pub mod gluon;
pub mod init;
pub mod io;
pub mod kvstore;
pub mod nd;
pub mod optimizer;
pub mod random;
pub mod symbol;

pub use context::{Context, ContextGuard, ContextList, DeviceType};
pub use dtype::{DType, Element, GradReq, StorageType};
pub use error::{Error, Result};
pub use gluon::{Constant, Parameter, ParameterDict};
pub use nd::NDArray;

/// `half`'s 16-bit float types, re-exported for element access.
pub use half::{bf16, f16};
