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
use std::sync::atomic::AtomicU32;
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
use crate::error::{Error, Result};
use crate::nd::NDArray;
use crate::symbol::{Node, NodeData, NodeEntry, OpNode, OpParams, Symbol};

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
        Sequential::with_prefix(None, None)
    }

    /// An empty container with an explicit prefix and/or sharing `params`.
    pub fn with_prefix(prefix: Option<&str>, params: Option<&ParameterDict>) -> Sequential {
        Sequential::of_class("Sequential", prefix, params)
    }

    fn of_class(
        class: &'static str,
        prefix: Option<&str>,
        params: Option<&ParameterDict>,
    ) -> Sequential {
        Sequential {
            base: BlockBase::new(class, prefix, params),
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

    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
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

/// Gluon's `nn.HybridSequential`: a [`Sequential`] under the class name `HybridSequential`,
/// so its automatic prefix is `hybridsequential0_` and a network built with it names its
/// parameters, and exports its graph, exactly as the same network built in Gluon with
/// `nn.HybridSequential` (every mxgluon block is already "hybrid": [`Block::export`] works on
/// either container).
///
/// ```
/// use mxgluon::gluon::nn::{Activation, Dense, HybridSequential};
/// use mxgluon::gluon::Block;
/// use mxgluon::nd::ActType;
/// let net = HybridSequential::new();
/// {
///     let _scope = net.name_scope();
///     net.add(Dense::builder(4).in_units(3).build()?);
///     net.add(Activation::new(ActType::Relu));
/// }
/// assert_eq!(net.prefix(), "hybridsequential0_");
/// assert_eq!(net.get(1).unwrap().prefix(), "hybridsequential0_relu0_");
/// assert_eq!(net.collect_params()?.keys(),
///            ["hybridsequential0_dense0_weight", "hybridsequential0_dense0_bias"]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct HybridSequential {
    inner: Sequential,
}

impl HybridSequential {
    /// An empty container with an automatic prefix (`hybridsequential0_`).
    pub fn new() -> HybridSequential {
        HybridSequential::with_prefix(None, None)
    }

    /// An empty container with an explicit prefix and/or sharing `params`.
    pub fn with_prefix(prefix: Option<&str>, params: Option<&ParameterDict>) -> HybridSequential {
        HybridSequential {
            inner: Sequential::of_class("HybridSequential", prefix, params),
        }
    }

    /// Appends a block.
    pub fn add(&self, block: impl Block + 'static) {
        self.inner.add(block)
    }

    /// Appends a block that is also held elsewhere.
    pub fn add_shared(&self, block: Arc<dyn Block>) {
        self.inner.add_shared(block)
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The `i`-th child.
    pub fn get(&self, i: usize) -> Option<Arc<dyn Block>> {
        self.inner.get(i)
    }
}

impl Default for HybridSequential {
    fn default() -> Self {
        HybridSequential::new()
    }
}

impl Block for HybridSequential {
    fn base(&self) -> &BlockBase {
        self.inner.base()
    }

    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        self.inner.forward(x)
    }

    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        self.inner.hybrid_symbol(x)
    }

    fn as_dyn(&self) -> &dyn Block {
        self
    }
}

impl fmt::Display for HybridSequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_block(self, f)
    }
}

impl fmt::Debug for HybridSequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_block(self, f)
    }
}

/// Applies an operator the symbol module does not model (it has no [`OpParams`] for it, so
/// [`Symbol::op`] refuses it): the node keeps `attrs` exactly as given, as a node of that
/// operator read from a graph file does, and MXNet reads it with its own definition. Shape
/// inference stops at such a node, and mxgluon's executor runs it only if it knows the
/// operator. `name` is the node's full name.
pub(crate) fn raw_op(
    op: &str,
    inputs: &[&Symbol],
    attrs: &[(&str, String)],
    name: &str,
) -> Result<Symbol> {
    let mut entries = Vec::with_capacity(inputs.len());
    for (i, s) in inputs.iter().enumerate() {
        match s.outputs() {
            [e] => entries.push(e.clone()),
            outs => {
                return Err(Error::invalid_arg(
                    "Symbol",
                    format!(
                        "input {i} of {op} has {} outputs; a single output is required",
                        outs.len()
                    ),
                ))
            }
        }
    }
    let node = Node(Arc::new(NodeData {
        name: name.to_string(),
        op: Some(OpNode {
            name: op.to_string(),
            params: OpParams::Unknown { num_outputs: 1 },
        }),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        inputs: entries,
        control_deps: Vec::new(),
        version: AtomicU32::new(0),
    }));
    Ok(Symbol::from_entries(vec![NodeEntry {
        node,
        index: 0,
        version: 0,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluon::SymbolBlock;
    use crate::nd::{self, ActType};
    use crate::{init, Context};

    fn ops_and_names(s: &Symbol) -> Vec<(String, String)> {
        s.graph()
            .nodes()
            .iter()
            .map(|n| (n.op_name().to_string(), n.name().to_string()))
            .collect()
    }

    #[test]
    fn activation_blocks_are_named_after_their_function() {
        let net = HybridSequential::new();
        {
            let _s = net.name_scope();
            net.add(Activation::new(ActType::Relu));
            net.add(Activation::new(ActType::Relu));
            net.add(Activation::new(ActType::Sigmoid));
            net.add(LeakyReLU::new(0.2).unwrap());
        }
        let prefixes: Vec<String> = (0..4)
            .map(|i| net.get(i).unwrap().prefix().to_string())
            .collect();
        let p = "hybridsequential0_";
        assert_eq!(
            prefixes,
            [
                format!("{p}relu0_"),
                format!("{p}relu1_"),
                format!("{p}sigmoid0_"),
                format!("{p}leakyrelu0_")
            ]
        );
        assert_eq!(net.to_string().lines().next(), Some("HybridSequential("));
        let s = net.hybrid_symbol(&Symbol::var("data")).unwrap();
        let names: Vec<String> = ops_and_names(&s).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names[1], format!("{p}relu0_fwd"));
        assert_eq!(names[3], format!("{p}sigmoid0_fwd"));
    }

    #[test]
    fn embedding_and_layer_norm_have_graphs() {
        let net = HybridSequential::with_prefix(Some("net_"), None);
        {
            let _s = net.name_scope();
            net.add(
                Embedding::builder(7, 3)
                    .dtype(crate::DType::Float64)
                    .sparse_grad(true)
                    .build()
                    .unwrap(),
            );
            net.add(
                LayerNorm::builder()
                    .axis(1)
                    .epsilon(1e-3)
                    .center(false)
                    .build()
                    .unwrap(),
            );
        }
        let s = net.hybrid_symbol(&Symbol::var("data")).unwrap();
        assert_eq!(
            ops_and_names(&s),
            [
                ("null", "data"),
                ("null", "net_embedding0_weight"),
                ("Embedding", "net_embedding0_fwd"),
                ("null", "net_layernorm0_gamma"),
                ("null", "net_layernorm0_beta"),
                ("LayerNorm", "net_layernorm0_layernorm0"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let graph = s.graph();
        let nodes = graph.nodes();
        let attrs = |i: usize| -> Vec<(String, String)> {
            nodes[i]
                .attrs()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let kv = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            attrs(2),
            kv(&[
                ("dtype", "float64"),
                ("input_dim", "7"),
                ("output_dim", "3"),
                ("sparse_grad", "True")
            ])
        );
        assert_eq!(attrs(5), kv(&[("axis", "1"), ("eps", "0.001")]));
        assert_eq!(
            s.list_arguments(),
            [
                "data",
                "net_embedding0_weight",
                "net_layernorm0_gamma",
                "net_layernorm0_beta"
            ]
        );
        // The graph survives MXNet's JSON unchanged.
        let back = Symbol::load_json(&s.tojson()).unwrap();
        assert_eq!(back.tojson(), s.tojson());
    }

    #[test]
    fn a_raw_operator_refuses_a_multi_output_input() {
        let a = Symbol::var("a");
        let g = Symbol::group(&[a.clone(), Symbol::var("b")]).unwrap();
        assert!(raw_op("_copy", &[&g], &[], "c").is_err());
        assert!(raw_op("_copy", &[&a], &[], "c").is_ok());
    }

    #[test]
    fn zero_rate_dropout_exports_an_identity_that_runs_here() {
        let net = HybridSequential::new();
        {
            let _s = net.name_scope();
            net.add(Dense::builder(3).in_units(2).build().unwrap());
            net.add(Dropout::new(0.0).unwrap());
        }
        net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
            .unwrap();
        let s = net.hybrid_symbol(&Symbol::var("data")).unwrap();
        let last = ops_and_names(&s).pop().unwrap();
        assert_eq!(
            last,
            (
                "_copy".to_string(),
                "hybridsequential0_dropout0_identity0".to_string()
            )
        );
        let dir = std::env::temp_dir().join(format!("mxgluon-nn-dropout0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        net.export(dir.join("m"), 0).unwrap();
        let back = SymbolBlock::imports(
            dir.join("m-symbol.json"),
            &["data"],
            Some(dir.join("m-0000.params")),
            Context::cpu(0),
        )
        .unwrap();
        let x = nd::array(&[0.5f32, -1.0, 2.0, 0.25], &[2, 2], None).unwrap();
        assert_eq!(
            back.forward(&x).unwrap().to_vec::<f32>().unwrap(),
            net.forward(&x).unwrap().to_vec::<f32>().unwrap()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
