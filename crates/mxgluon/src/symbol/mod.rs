//! Symbolic graphs as MXNet 1.9.1 builds, stores and reads them (`mx.sym`).
//!
//! A [`Symbol`] is an immutable, cheaply cloned handle to one or more outputs of a graph of
//! [`Node`]s: variables (`op` `"null"`) and operator nodes, each with string attributes as
//! MXNet stores them (`{"num_hidden": "16", "no_bias": "False"}`). Symbols are composed with
//! [`Symbol::op`] or the typed constructors of [`ops`] ([`FullyConnected`], [`Convolution`],
//! ...), which create missing weights, biases and auxiliary states with MXNet's automatic
//! names; they answer `list_arguments`, `list_outputs`, `list_auxiliary_states`, infer shapes
//! and dtypes with MXNet's per-operator rules (forward and backward), and are written to and
//! read from MXNet's graph JSON byte for byte ([`Symbol::tojson`], [`Symbol::load_json`]).
//!
//! ```
//! use mxgluon::symbol::{Activation, FullyConnected, Symbol};
//!
//! let data = Symbol::var("data");
//! let fc1 = FullyConnected::new(16).name("fc1").build(&data)?;
//! let act = Activation::new(mxgluon::nd::ActType::Relu).build(&fc1)?;
//! let out = FullyConnected::new(4).name("fc2").build(&act)?;
//! assert_eq!(out.list_arguments(), ["data", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]);
//! assert_eq!(out.list_outputs(), ["fc2_output"]);
//!
//! let shapes = out.infer_shape([("data", [8, 10])])?;
//! assert_eq!(shapes.arg_shapes[1], Some(vec![16, 10]));
//! assert_eq!(shapes.out_shapes[0], Some(vec![8, 4]));
//!
//! let back = Symbol::load_json(&out.tojson())?;
//! assert_eq!(back.tojson(), out.tojson());
//! # Ok::<(), mxgluon::Error>(())
//! ```
//!
//! Differences from MXNet, on purpose: attributes of existing nodes are never changed after
//! creation (MXNet's `_set_attr`, and the `__init__` that composing a `BatchNorm` or `prelu`
//! writes onto a variable the caller passed in, are not reproduced; automatically created
//! variables do get it); operators mxgluon does not know are kept when a file is loaded and
//! written back unchanged, but cannot be composed and stop shape inference with an error;
//! inconsistent shapes are errors where MXNet 1.9.1 overwrites or accepts them (a `Reshape`
//! to a different element count, a BatchNorm `gamma` of the wrong length), and 1-D pooling
//! with the `same` convention works (MXNet 1.9.1's shape function fails on it).

mod attr;
mod build;
mod compose;
mod exec;
mod infer;
mod json;
pub mod ops;
mod shape;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{Error, Result};

pub(crate) use attr::{py_bool, py_float, py_tuple};
pub use build::{
    Activation, BatchNorm, Broadcast, Clip, Concat, Convolution, Dropout, Elemwise, Flatten,
    FullyConnected, LeakyReLU, Pooling, Reshape, Softmax, SoftmaxOutput,
};
pub use compose::{NameManager, NameManagerGuard, VarOptions};
pub use exec::Executor;
pub use infer::{Graph, InferredShapes, InferredTypes};
pub use ops::OpParams;

/// The MXNet version written into graph JSON (`["int", 10901]`).
pub const MXNET_VERSION: u32 = 10901;

/// The attributes MXNet also reports without underscores (`__lr_mult__` as `lr_mult`).
const HIDDEN_KEYS: [&str; 5] = [
    "ctx_group",
    "lr_mult",
    "wd_mult",
    "force_mirroring",
    "mirror_stage",
];

/// The operator of a node.
pub(crate) struct OpNode {
    /// Canonical name (aliases resolved), or the file's name for unknown operators.
    pub(crate) name: String,
    pub(crate) params: OpParams,
}

pub(crate) struct NodeData {
    pub(crate) name: String,
    /// `None` for a variable.
    pub(crate) op: Option<OpNode>,
    pub(crate) attrs: BTreeMap<String, String>,
    pub(crate) inputs: Vec<NodeEntry>,
    pub(crate) control_deps: Vec<Node>,
    /// For variables: how many times an operator mutating it (BatchNorm's moving statistics)
    /// was composed on it; an entry records the version it reads.
    pub(crate) version: AtomicU32,
}

impl Drop for NodeData {
    /// Drops long chains without recursion: a node's inputs are detached and released one at
    /// a time from a local stack (a hostile file may hold a chain of a million nodes).
    fn drop(&mut self) {
        fn detach(n: &mut NodeData, stack: &mut Vec<Arc<NodeData>>) {
            stack.extend(n.inputs.drain(..).map(|e| e.node.0));
            stack.extend(n.control_deps.drain(..).map(|c| c.0));
        }
        let mut stack = Vec::new();
        detach(self, &mut stack);
        while let Some(n) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(n) {
                detach(&mut inner, &mut stack);
            }
        }
    }
}

/// A node of a graph: a variable or an operator application. Cheap to clone (shared).
#[derive(Clone)]
pub struct Node(pub(crate) Arc<NodeData>);

impl Node {
    /// The node's name (`"fc1"`, `"fc1_weight"`).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether this is a variable (an input of the graph).
    pub fn is_variable(&self) -> bool {
        self.0.op.is_none()
    }

    /// The operator's canonical name, `"null"` for a variable (as in the JSON).
    pub fn op_name(&self) -> &str {
        self.0.op.as_ref().map_or("null", |o| o.name.as_str())
    }

    /// The parsed operator parameters (`None` for a variable).
    pub fn params(&self) -> Option<&OpParams> {
        self.0.op.as_ref().map(|o| &o.params)
    }

    /// The attributes exactly as stored (strings).
    pub fn attrs(&self) -> &BTreeMap<String, String> {
        &self.0.attrs
    }

    /// The entries this node reads, in the operator's input order.
    pub fn inputs(&self) -> &[NodeEntry] {
        &self.0.inputs
    }

    /// Nodes that must run before this one without feeding it data (kept from files).
    pub fn control_deps(&self) -> &[Node] {
        &self.0.control_deps
    }

    /// Number of outputs, hidden ones included (1 for a variable).
    pub fn num_outputs(&self) -> usize {
        self.params().map_or(1, |p| p.num_outputs())
    }

    /// Number of outputs a symbol of this node exposes.
    pub fn num_visible_outputs(&self) -> usize {
        self.params().map_or(1, |p| p.num_visible_outputs())
    }

    /// Whether two handles are the same node.
    pub fn ptr_eq(&self, other: &Node) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The name `list_outputs` gives output `index`: the variable's name, or
    /// `<node>_<output name>`.
    pub(crate) fn output_label(&self, index: usize) -> String {
        match self.params() {
            None => self.name().to_string(),
            Some(p) => {
                let out = p.output_name(index);
                if self.name().is_empty() {
                    out
                } else {
                    format!("{}_{out}", self.name())
                }
            }
        }
    }

    /// The variable's current version (0 for operator nodes).
    pub(crate) fn current_version(&self) -> u32 {
        self.0.version.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({} {:?})", self.op_name(), self.name())
    }
}

/// One output of a node: `(node, output index, version)` as in MXNet's JSON.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub(crate) node: Node,
    pub(crate) index: u32,
    pub(crate) version: u32,
}

impl NodeEntry {
    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Which output of the node.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// For a variable: the version read (bumped by each operator that mutates it).
    pub fn version(&self) -> u32 {
        self.version
    }
}

/// A handle to one or more outputs of a graph (MXNet's `Symbol`). Immutable and cheap to
/// clone; `Send + Sync`.
#[derive(Clone)]
pub struct Symbol {
    outputs: Arc<[NodeEntry]>,
}

/// Post-order DFS from `heads` over inputs then control dependencies (nnvm's `DFSVisit`):
/// every node after its inputs, in the order MXNet writes them to JSON.
pub(crate) fn dfs_order(heads: &[NodeEntry]) -> Vec<Node> {
    let mut visited: HashSet<usize> = HashSet::new();
    let mut order = Vec::new();
    let mut stack: Vec<(Node, usize)> = Vec::new();
    for h in heads {
        if visited.insert(h.node.key()) {
            stack.push((h.node.clone(), 0));
        }
        while let Some((n, i)) = stack.last_mut() {
            let ninputs = n.0.inputs.len();
            if *i < ninputs + n.0.control_deps.len() {
                let child = if *i < ninputs {
                    n.0.inputs[*i].node.clone()
                } else {
                    n.0.control_deps[*i - ninputs].clone()
                };
                *i += 1;
                if visited.insert(child.key()) {
                    stack.push((child, 0));
                }
            } else {
                order.push(n.clone());
                stack.pop();
            }
        }
    }
    order
}

fn with_hidden_aliases(attrs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = attrs.clone();
    for (k, v) in attrs {
        if let Some(bare) = k.strip_prefix("__").and_then(|s| s.strip_suffix("__")) {
            if HIDDEN_KEYS.contains(&bare) {
                out.insert(bare.to_string(), v.clone());
            }
        }
    }
    out
}

impl Symbol {
    pub(crate) fn from_entries(outputs: Vec<NodeEntry>) -> Symbol {
        Symbol {
            outputs: outputs.into(),
        }
    }

    /// A variable (graph input) named `name`, without attributes.
    ///
    /// ```
    /// use mxgluon::symbol::Symbol;
    /// let x = Symbol::var("x");
    /// assert_eq!(x.name().as_deref(), Some("x"));
    /// assert_eq!(x.to_string(), "<Symbol x>");
    /// assert_eq!(x.list_arguments(), ["x"]);
    /// ```
    pub fn var(name: impl Into<String>) -> Symbol {
        compose::variable(name.into(), BTreeMap::new())
    }

    /// A variable with attributes (`__shape__`, `__dtype__`, `__lr_mult__`, ...; see
    /// [`VarOptions`]).
    ///
    /// ```
    /// use mxgluon::symbol::{Symbol, VarOptions};
    /// use mxgluon::DType;
    /// let w = Symbol::var_with("w", &VarOptions::new().shape([2, 3]).dtype(DType::Float16).lr_mult(2.0));
    /// assert_eq!(w.attr("__shape__").as_deref(), Some("(2, 3)"));
    /// assert_eq!(w.attr("__dtype__").as_deref(), Some("2"));
    /// assert_eq!(w.attr("lr_mult").as_deref(), Some("2.0"));
    /// ```
    pub fn var_with(name: impl Into<String>, opts: &VarOptions) -> Symbol {
        compose::variable(name.into(), opts.to_attrs())
    }

    /// Applies the operator `op` (a name or alias MXNet registers, e.g. `"FullyConnected"`,
    /// `"elemwise_add"`, `"_Plus"`) to positional `inputs`, with attributes as strings.
    /// Missing trailing inputs become new variables named `<name>_<input>` (carrying a copy
    /// of the operator's attributes, as MXNet does); `name` defaults to the per-thread
    /// [`NameManager`]'s `<op in lower case><counter>`.
    ///
    /// Errors: an unknown operator, invalid attributes, too many inputs, or an input with
    /// several outputs ([`Error::InvalidArgument`]).
    ///
    /// ```
    /// use mxgluon::symbol::Symbol;
    /// let _names = mxgluon::symbol::NameManager::new().enter();
    /// let x = Symbol::var("x");
    /// let fc = Symbol::op("FullyConnected", &[&x], &[("num_hidden", "3")], None)?;
    /// assert_eq!(fc.name().as_deref(), Some("fullyconnected0"));
    /// assert_eq!(fc.list_arguments(), ["x", "fullyconnected0_weight", "fullyconnected0_bias"]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn op(
        op: &str,
        inputs: &[&Symbol],
        attrs: &[(&str, &str)],
        name: Option<&str>,
    ) -> Result<Symbol> {
        compose::apply(op, inputs, &[], attrs, name)
    }

    /// Like [`Symbol::op`] with inputs given by name (`[("data", &x), ("bias", &b)]`);
    /// inputs not named are created as variables.
    ///
    /// ```
    /// use mxgluon::symbol::Symbol;
    /// let x = Symbol::var("x");
    /// let w = Symbol::var("shared_w");
    /// let fc = Symbol::op_named("FullyConnected", &[("data", &x), ("weight", &w)],
    ///                           &[("num_hidden", "3")], Some("fc"))?;
    /// assert_eq!(fc.list_arguments(), ["x", "shared_w", "fc_bias"]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn op_named(
        op: &str,
        inputs: &[(&str, &Symbol)],
        attrs: &[(&str, &str)],
        name: Option<&str>,
    ) -> Result<Symbol> {
        compose::apply(op, &[], inputs, attrs, name)
    }

    /// The outputs of several symbols as one symbol (`mx.sym.Group`).
    ///
    /// Errors: an empty list.
    pub fn group(symbols: &[Symbol]) -> Result<Symbol> {
        if symbols.is_empty() {
            return Err(Error::invalid_arg(
                "Symbol::group",
                "cannot group an empty list of symbols",
            ));
        }
        Ok(Symbol::from_entries(
            symbols
                .iter()
                .flat_map(|s| s.outputs.iter().cloned())
                .collect(),
        ))
    }

    /// The output entries.
    pub fn outputs(&self) -> &[NodeEntry] {
        &self.outputs
    }

    /// Number of outputs (`len(sym)`).
    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Output `index` as a symbol (`sym[index]`); a single-output symbol returns itself.
    ///
    /// Errors: `index` out of range.
    pub fn output(&self, index: usize) -> Result<Symbol> {
        if index >= self.outputs.len() {
            return Err(Error::invalid_arg(
                "Symbol::output",
                format!(
                    "index {index} is out of range for a symbol with {} outputs",
                    self.outputs.len()
                ),
            ));
        }
        if self.outputs.len() == 1 {
            return Ok(self.clone());
        }
        Ok(Symbol::from_entries(vec![self.outputs[index].clone()]))
    }

    /// The output whose `list_outputs` name is `name` (`sym["fc1_output"]`).
    ///
    /// Errors: no output or several outputs have that name.
    pub fn output_named(&self, name: &str) -> Result<Symbol> {
        let names = self.list_outputs();
        let hits: Vec<usize> = (0..names.len()).filter(|&i| names[i] == name).collect();
        match hits.as_slice() {
            [i] => self.output(*i),
            [] => Err(Error::invalid_arg(
                "Symbol::output_named",
                format!("no output is named {name:?}; outputs: {}", names.join(", ")),
            )),
            _ => Err(Error::invalid_arg(
                "Symbol::output_named",
                format!("several outputs are named {name:?}"),
            )),
        }
    }

    /// The node all outputs come from, if they come from one.
    fn single_node(&self) -> Option<&Node> {
        let first = &self.outputs.first()?.node;
        self.outputs
            .iter()
            .all(|e| e.node.ptr_eq(first))
            .then_some(first)
    }

    /// The name of the node all outputs come from; `None` for a group of several nodes.
    pub fn name(&self) -> Option<String> {
        self.single_node().map(|n| n.name().to_string())
    }

    /// An attribute of the (single) node: `"name"` gives the name; a hidden key asked for
    /// without underscores (`"lr_mult"`) finds `__lr_mult__`. `None` if absent or for a
    /// group of several nodes.
    pub fn attr(&self, key: &str) -> Option<String> {
        let n = self.single_node()?;
        if key == "name" {
            return Some(n.name().to_string());
        }
        if let Some(v) = n.attrs().get(key) {
            return Some(v.clone());
        }
        if HIDDEN_KEYS.contains(&key) {
            return n.attrs().get(&format!("__{key}__")).cloned();
        }
        None
    }

    /// The attributes of the first output's node, with the un-dundered aliases of hidden
    /// keys (`lr_mult` beside `__lr_mult__`), as `list_attr()`.
    pub fn list_attr(&self) -> BTreeMap<String, String> {
        self.outputs
            .first()
            .map(|e| with_hidden_aliases(e.node.attrs()))
            .unwrap_or_default()
    }

    /// Every node's attributes by node name (nodes without attributes left out), with the
    /// hidden-key aliases, as `attr_dict()`.
    pub fn attr_dict(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for n in dfs_order(&self.outputs) {
            if !n.attrs().is_empty() {
                out.entry(n.name().to_string())
                    .or_default()
                    .extend(with_hidden_aliases(n.attrs()));
            }
        }
        out
    }

    /// Whether the variable `n` is updated by some operator of this graph.
    fn mutated_vars(order: &[Node]) -> HashSet<usize> {
        let mut set = HashSet::new();
        for n in order {
            if let Some(p) = n.params() {
                for &i in p.mutated_inputs() {
                    if let Some(e) = n.inputs().get(i) {
                        set.insert(e.node.key());
                    }
                }
            }
        }
        set
    }

    fn list_vars(&self, aux: Option<bool>) -> Vec<String> {
        let order = dfs_order(&self.outputs);
        let mutated = Symbol::mutated_vars(&order);
        order
            .iter()
            .filter(|n| n.is_variable())
            .filter(|n| aux.is_none_or(|a| mutated.contains(&n.key()) == a))
            .map(|n| n.name().to_string())
            .collect()
    }

    /// The variables that are arguments (not auxiliary states), in graph order.
    pub fn list_arguments(&self) -> Vec<String> {
        self.list_vars(Some(false))
    }

    /// The variables some operator updates in place (BatchNorm's moving statistics).
    pub fn list_auxiliary_states(&self) -> Vec<String> {
        self.list_vars(Some(true))
    }

    /// Every variable, arguments and auxiliary states, in graph order.
    pub fn list_inputs(&self) -> Vec<String> {
        self.list_vars(None)
    }

    /// The output names: a variable's name, or `<node>_<output>` (`fc1_output`,
    /// `bn_mean`).
    pub fn list_outputs(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|e| e.node.output_label(e.index()))
            .collect()
    }

    /// Every variable and every visible output of every node, in graph order, as one group
    /// (`get_internals()`).
    pub fn get_internals(&self) -> Symbol {
        let mut out = Vec::new();
        for n in dfs_order(&self.outputs) {
            if n.is_variable() {
                let version = n.current_version();
                out.push(NodeEntry {
                    node: n,
                    index: 0,
                    version,
                });
            } else {
                for i in 0..n.num_visible_outputs() {
                    out.push(NodeEntry {
                        node: n.clone(),
                        index: i as u32,
                        version: 0,
                    });
                }
            }
        }
        Symbol::from_entries(out)
    }

    /// The inputs of the output nodes as one group; `None` when they have none.
    pub fn get_children(&self) -> Option<Symbol> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for e in self.outputs.iter() {
            if seen.insert(e.node.key()) {
                out.extend(e.node.inputs().iter().cloned());
            }
        }
        (!out.is_empty()).then(|| Symbol::from_entries(out))
    }

    /// The graph in execution order, with entry numbering: what an executor walks.
    pub fn graph(&self) -> Graph {
        Graph::new(&self.outputs)
    }

    /// Infers the shapes of all arguments, outputs and auxiliary states from the known
    /// ones (by variable name; a `0` dimension or an empty shape is unknown) and the
    /// variables' `__shape__` attributes, with MXNet's per-operator rules in both
    /// directions. Incomplete information gives a partial result (see
    /// [`InferredShapes::is_complete`]).
    ///
    /// Errors: a name that is no input of the graph ([`Error::InvalidArgument`]);
    /// contradicting shapes or an operator mxgluon cannot infer ([`Error::SymbolInference`],
    /// naming the node).
    ///
    /// ```
    /// use mxgluon::symbol::{Convolution, Symbol};
    /// let x = Symbol::var("x");
    /// let c = Convolution::new([3, 3], 8).pad([1, 1]).name("c").build(&x)?;
    /// let s = c.infer_shape([("x", [2, 3, 32, 32])])?;
    /// assert_eq!(s.arg_shapes, [Some(vec![2, 3, 32, 32]), Some(vec![8, 3, 3, 3]), Some(vec![8])]);
    /// assert_eq!(s.out_shapes, [Some(vec![2, 8, 32, 32])]);
    /// assert!(c.infer_shape::<&str, [usize; 0]>([])?.arg_shapes[0].is_none());
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn infer_shape<K: AsRef<str>, S: AsRef<[usize]>>(
        &self,
        known: impl IntoIterator<Item = (K, S)>,
    ) -> Result<InferredShapes> {
        self.graph().infer_shape(known)
    }

    /// Infers the dtypes of all arguments, outputs and auxiliary states from the known ones
    /// and the variables' `__dtype__` attributes (MXNet's `infer_type`). Unknown dtypes stay
    /// `None`.
    ///
    /// ```
    /// use mxgluon::symbol::{FullyConnected, Symbol};
    /// use mxgluon::DType;
    /// let x = Symbol::var("x");
    /// let fc = FullyConnected::new(4).build(&x)?;
    /// let t = fc.infer_type([("x", DType::Float64)])?;
    /// assert_eq!(t.arg_types, [Some(DType::Float64); 3]);
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn infer_type<K: AsRef<str>>(
        &self,
        known: impl IntoIterator<Item = (K, DType)>,
    ) -> Result<InferredTypes> {
        self.graph().infer_type(known)
    }

    /// MXNet 1.9.1's graph JSON, byte for byte as `sym.tojson()` writes it.
    pub fn tojson(&self) -> String {
        json::write(&self.outputs)
    }

    /// Reads a graph from MXNet's JSON (any version MXNet 1.9.1 reads: `attrs`, or the
    /// older `attr` / `param` keys, without `node_row_ptr`; pre-0.9 files get their missing
    /// auxiliary states added as MXNet's upgrader does). Everything is validated: indices,
    /// cycles, operator attributes, input counts.
    ///
    /// Errors: [`Error::InvalidSymbolJson`] saying where and what.
    pub fn load_json(json: &str) -> Result<Symbol> {
        json::read(json, "<string>")
    }

    /// Reads a `-symbol.json` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Symbol> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        json::read(&text, &path.display().to_string())
    }

    /// Writes [`Symbol::tojson`] to `path`, atomically (a temporary file renamed over it).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = self.tojson();
        crate::io::write_atomic(path.as_ref(), true, |w| {
            std::io::Write::write_all(w, json.as_bytes())
        })
    }

    /// A multi-line description of the graph (`debug_str()`, nnvm's printer).
    pub fn debug_str(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if let [only] = &*self.outputs {
            if only.node.inputs().is_empty() && only.node.control_deps().is_empty() {
                if only.node.is_variable() {
                    let _ = writeln!(s, "Variable:{}", only.node.name());
                } else {
                    let _ = writeln!(s, "AtomicFunctor  Op:{}", only.node.op_name());
                }
                return s;
            }
        }
        s.push_str("Symbol Outputs:\n");
        for (i, e) in self.outputs.iter().enumerate() {
            let _ = writeln!(s, "\toutput[{i}]={}({})", e.node.name(), e.index);
        }
        for n in dfs_order(&self.outputs) {
            if n.is_variable() {
                let _ = writeln!(s, "Variable:{}", n.name());
                continue;
            }
            s.push_str("--------------------\n");
            let _ = writeln!(s, "Op:{}, Name={}", n.op_name(), n.name());
            s.push_str("Inputs:\n");
            for (i, e) in n.inputs().iter().enumerate() {
                let _ = write!(s, "\targ[{i}]={}({})", e.node.name(), e.index);
                if e.node.is_variable() {
                    let _ = writeln!(s, " version={}", e.version);
                } else {
                    s.push('\n');
                }
            }
            if !n.attrs().is_empty() {
                s.push_str("Attrs:\n");
                for (k, v) in n.attrs() {
                    let _ = writeln!(s, "\t{k}={v}");
                }
            }
            if !n.control_deps().is_empty() {
                s.push_str("Control deps:\n");
                for (i, c) in n.control_deps().iter().enumerate() {
                    let _ = writeln!(s, "\tcdep[{i}]={}", c.name());
                }
            }
        }
        s
    }

    /// Whether two handles share the same outputs.
    pub fn ptr_eq(&self, other: &Symbol) -> bool {
        Arc::ptr_eq(&self.outputs, &other.outputs)
    }
}

impl fmt::Display for Symbol {
    /// MXNet's repr: `<Symbol fc1>`, or `<Symbol group [a, fc1]>` for several nodes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "<Symbol {n}>"),
            None => {
                let names: Vec<&str> = self.outputs.iter().map(|e| e.node.name()).collect();
                write!(f, "<Symbol group [{}]>", names.join(", "))
            }
        }
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
