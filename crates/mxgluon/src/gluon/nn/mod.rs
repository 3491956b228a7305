//! `gluon::nn`: layers (Gluon's `mxnet.gluon.nn`).
//!
//! Every layer is a [`Block`]: build it (layers with options have a builder), add it to a
//! [`Sequential`] or use it directly, initialize, and call [`Block::forward`]. Layers whose
//! input size is not given (`Dense` without `in_units`, `BatchNorm` without `in_channels`, ...)
//! defer their parameters' initialization to the first forward pass, which infers the shapes
//! from the input.
//!
//! ```
//! use mxgluon::gluon::nn::{Dense, Sequential};
//! use mxgluon::gluon::Block;
//! use mxgluon::nd::ActType;
//! use mxgluon::{nd, Context};
//! let ctx = Context::cpu(0);
//! let net = Sequential::new();
//! {
//!     let _scope = net.name_scope();
//!     net.add(Dense::builder(32).activation(ActType::Relu).build()?);
//!     net.add(Dense::builder(10).build()?);
//! }
//! net.initialize(None, ctx)?;                    // deferred: in_units unknown
//! let y = net.forward(&nd::ones(&[4, 20], ctx)?)?; // infers in_units = 20, then 32
//! assert_eq!(y.shape(), &[4, 10]);
//! assert_eq!(net.collect_params()?.get_param("sequential0_dense0_weight").unwrap().shape(),
//!            Some(vec![32, 20]));
//! # Ok::<(), mxgluon::Error>(())
//! ```

mod basic;
mod conv;
mod dense;
mod norm;

use std::fmt;
use std::sync::Arc;

pub use basic::{Activation, Dropout, Embedding, EmbeddingBuilder, Flatten, LeakyReLU, PReLU, ELU};
pub use conv::{
    AvgPool1D, AvgPool1DBuilder, AvgPool2D, AvgPool2DBuilder, AvgPool3D, AvgPool3DBuilder, Conv1D,
    Conv1DBuilder, Conv2D, Conv2DBuilder, Conv3D, Conv3DBuilder, GlobalAvgPool1D, GlobalAvgPool2D,
    GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D, MaxPool1D,
    MaxPool1DBuilder, MaxPool2D, MaxPool2DBuilder, MaxPool3D, MaxPool3DBuilder,
};
pub use dense::{Dense, DenseBuilder};
pub use norm::{BatchNorm, BatchNormBuilder, LayerNorm, LayerNormBuilder};

use super::block::{fmt_block, Block, BlockBase};
use super::parameter_dict::ParameterDict;
use crate::error::Result;
use crate::nd::NDArray;

/// Implements `Display` (Gluon's model printout) and `Debug` for a block type.
macro_rules! block_display {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::gluon::block::fmt_block(self, f)
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::gluon::block::fmt_block(self, f)
            }
        }
    };
}
pub(crate) use block_display;

/// Runs children one after another (Gluon's `nn.Sequential`). Children are registered under
/// their index (`"0"`, `"1"`, ...), which is how structural parameter names are formed.
pub struct Sequential {
    base: BlockBase,
}

impl Sequential {
    /// An empty container with an automatic prefix (`sequential0_`).
    pub fn new() -> Sequential {
        Sequential {
            base: BlockBase::new("Sequential", None, None),
        }
    }

    /// An empty container with an explicit prefix and/or sharing `params`.
    pub fn with_prefix(prefix: Option<&str>, params: Option<&ParameterDict>) -> Sequential {
        Sequential {
            base: BlockBase::new("Sequential", prefix, params),
        }
    }

    /// Appends a block.
    pub fn add(&self, block: impl Block + 'static) {
        self.base.register_child(None, Arc::new(block));
    }

    /// Appends a block that is also held elsewhere (for example to reach its parameters
    /// directly).
    pub fn add_shared(&self, block: Arc<dyn Block>) {
        self.base.register_child(None, block);
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.base.children().len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th child.
    pub fn get(&self, i: usize) -> Option<Arc<dyn Block>> {
        self.base.children().get(i).map(|(_, b)| b.clone())
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Block for Sequential {
    fn base(&self) -> &BlockBase {
        &self.base
    }

    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let mut h = x.clone();
        for (_, c) in self.base.children() {
            h = c.forward(&h)?;
        }
        Ok(h)
    }

    fn hybrid_symbol(&self, x: &crate::symbol::Symbol) -> Result<crate::symbol::Symbol> {
        let mut h = x.clone();
        for (_, c) in self.base.children() {
            h = c.hybrid_symbol(&h)?;
        }
        Ok(h)
    }

    fn as_dyn(&self) -> &dyn Block {
        self
    }
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_block(self, f)
    }
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_block(self, f)
    }
}
