//! The graph in execution order ([`Graph`]) and shape / type inference over it: MXNet's
//! fixed-point pass that alternates forward and backward sweeps over the nodes, calling each
//! operator's rule, until nothing more can be learned.

use std::collections::{HashMap, HashSet};

use super::attr::{parse_int, parse_tuple};
use super::shape::{
    self, infer_shape as op_shape, infer_type as op_type, num_unknown, RuleError, Slot, TShape,
    TType,
};
use super::{dfs_order, Node, NodeEntry};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A graph in execution order: every node after its inputs (the order of MXNet's JSON), with
/// MXNet's entry numbering (output `j` of node `i` is entry `row_ptr[i] + j`).
///
/// ```
/// use mxgluon::symbol::{FullyConnected, Symbol};
/// let fc = FullyConnected::new(4).name("fc").build(&Symbol::var("x"))?;
/// let g = fc.graph();
/// let names: Vec<&str> = g.nodes().iter().map(|n| n.name()).collect();
/// assert_eq!(names, ["x", "fc_weight", "fc_bias", "fc"]);
/// assert_eq!(g.inputs_of(3), [(0, 0), (1, 0), (2, 0)]);
/// assert_eq!(g.heads(), [(3, 0)]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Graph {
    nodes: Vec<Node>,
    inputs: Vec<Vec<(usize, usize)>>,
    row_ptr: Vec<usize>,
    heads: Vec<(usize, usize)>,
    /// Variables updated in place by some operator (by node index).
    mutated: HashSet<usize>,
}

/// Inferred shapes in the order of `list_arguments`, `list_outputs` and
/// `list_auxiliary_states`. `None` is an unknown shape, a `0` dimension an unknown
/// dimension (MXNet's legacy convention).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferredShapes {
    /// Shapes of the arguments.
    pub arg_shapes: Vec<Option<Vec<usize>>>,
    /// Shapes of the outputs.
    pub out_shapes: Vec<Option<Vec<usize>>>,
    /// Shapes of the auxiliary states.
    pub aux_shapes: Vec<Option<Vec<usize>>>,
}

impl InferredShapes {
    /// Whether every shape is fully known.
    pub fn is_complete(&self) -> bool {
        self.arg_shapes
            .iter()
            .chain(&self.out_shapes)
            .chain(&self.aux_shapes)
            .all(|s| s.as_ref().is_some_and(|d| d.iter().all(|&x| x != 0)))
    }
}

/// Inferred dtypes in the order of `list_arguments`, `list_outputs` and
/// `list_auxiliary_states` (`None` = unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferredTypes {
    /// Dtypes of the arguments.
    pub arg_types: Vec<Option<DType>>,
    /// Dtypes of the outputs.
    pub out_types: Vec<Option<DType>>,
    /// Dtypes of the auxiliary states.
    pub aux_types: Vec<Option<DType>>,
}

impl InferredTypes {
    /// Whether every dtype is known.
    pub fn is_complete(&self) -> bool {
        self.arg_types
            .iter()
            .chain(&self.out_types)
            .chain(&self.aux_types)
            .all(|t| t.is_some())
    }
}

fn to_public(s: &TShape) -> Option<Vec<usize>> {
    s.as_ref().map(|d| {
        d.iter()
            .map(|&x| if x < 0 { 0 } else { x as usize })
            .collect()
    })
}

/// A user's shape (legacy: `0` unknown dimension, `()` unknown shape) in inference form.
fn from_public(s: &[usize]) -> TShape {
    if s.is_empty() {
        return None;
    }
    Some(
        s.iter()
            .map(|&x| {
                if x == 0 {
                    -1
                } else {
                    x.min(i64::MAX as usize) as i64
                }
            })
            .collect(),
    )
}

/// What one inference pass works on.
trait Attr: Clone + PartialEq {
    const WHAT: &'static str;
    const KEY: &'static str;
    fn unknown() -> Self;
    fn is_done(&self) -> bool;
    fn count_unknown(&self) -> usize;
    fn from_attr(s: &str) -> Option<Self>;
    fn rule(
        p: &super::OpParams,
        ins: &mut [Self],
        outs: &mut [Self],
    ) -> std::result::Result<bool, RuleError>;
}

impl Attr for TShape {
    const WHAT: &'static str = "shape";
    const KEY: &'static str = "__shape__";
    fn unknown() -> Self {
        None
    }
    fn is_done(&self) -> bool {
        shape::is_known(self)
    }
    fn count_unknown(&self) -> usize {
        num_unknown(self)
    }
    fn from_attr(s: &str) -> Option<Self> {
        let t = parse_tuple(s)?;
        if t.iter().any(|&x| x < 0) {
            return None;
        }
        Some(if t.is_empty() {
            None
        } else {
            Some(t.iter().map(|&x| if x == 0 { -1 } else { x }).collect())
        })
    }
    fn rule(
        p: &super::OpParams,
        ins: &mut [Self],
        outs: &mut [Self],
    ) -> std::result::Result<bool, RuleError> {
        op_shape(p, ins, outs)
    }
}

impl Attr for TType {
    const WHAT: &'static str = "type";
    const KEY: &'static str = "__dtype__";
    fn unknown() -> Self {
        None
    }
    fn is_done(&self) -> bool {
        self.is_some()
    }
    fn count_unknown(&self) -> usize {
        usize::from(self.is_none())
    }
    fn from_attr(s: &str) -> Option<Self> {
        let f = parse_int(s)?;
        if f == -1 {
            return Some(None);
        }
        DType::from_flag(i32::try_from(f).ok()?).ok().map(Some)
    }
    fn rule(
        p: &super::OpParams,
        ins: &mut [Self],
        outs: &mut [Self],
    ) -> std::result::Result<bool, RuleError> {
        op_type(p, ins, outs)
    }
}

impl Graph {
    pub(crate) fn new(heads: &[NodeEntry]) -> Graph {
        let nodes = dfs_order(heads);
        let index: HashMap<usize, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.key(), i))
            .collect();
        let mut row_ptr = vec![0];
        let mut inputs = Vec::with_capacity(nodes.len());
        let mut mutated = HashSet::new();
        for n in &nodes {
            row_ptr.push(row_ptr[row_ptr.len() - 1] + n.num_outputs());
            // dfs_order visits every input before its consumer, so the lookups succeed.
            let ins: Vec<(usize, usize)> = n
                .inputs()
                .iter()
                .map(|e| (index.get(&e.node.key()).copied().unwrap_or(0), e.index()))
                .collect();
            if let Some(p) = n.params() {
                for &i in p.mutated_inputs() {
                    if let Some(&(src, _)) = ins.get(i) {
                        mutated.insert(src);
                    }
                }
            }
            inputs.push(ins);
        }
        let heads = heads
            .iter()
            .map(|e| (index.get(&e.node.key()).copied().unwrap_or(0), e.index()))
            .collect();
        Graph {
            nodes,
            inputs,
            row_ptr,
            heads,
            mutated,
        }
    }

    /// The nodes, every one after its inputs.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The inputs of node `i` as `(node index, output index)`.
    pub fn inputs_of(&self, i: usize) -> &[(usize, usize)] {
        &self.inputs[i]
    }

    /// The graph's outputs as `(node index, output index)`.
    pub fn heads(&self) -> &[(usize, usize)] {
        &self.heads
    }

    /// The entry number of output `output` of node `node`.
    pub fn entry_id(&self, node: usize, output: usize) -> usize {
        self.row_ptr[node] + output
    }

    /// The number of entries (outputs of all nodes, hidden ones included).
    pub fn num_entries(&self) -> usize {
        self.row_ptr[self.row_ptr.len() - 1]
    }

    /// Whether node `i` is a variable updated in place (an auxiliary state).
    pub fn is_aux(&self, i: usize) -> bool {
        self.mutated.contains(&i)
    }

    /// Indices of the argument variables (`list_arguments` order).
    pub fn arg_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_variable() && !self.is_aux(i))
            .collect()
    }

    /// Indices of the auxiliary-state variables (`list_auxiliary_states` order).
    pub fn aux_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_variable() && self.is_aux(i))
            .collect()
    }

    /// Maps names to the variable nodes that carry them; an unknown name is an error.
    fn match_inputs<T>(&self, known: Vec<(String, T)>, what: &str) -> Result<Vec<(usize, T)>>
    where
        T: Clone,
    {
        let mut out = Vec::new();
        for (name, v) in known {
            let hits: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_variable() && self.nodes[i].name() == name)
                .collect();
            if hits.is_empty() {
                let cands: Vec<&str> = self
                    .nodes
                    .iter()
                    .filter(|n| n.is_variable())
                    .map(|n| n.name())
                    .collect();
                return Err(Error::invalid_arg(
                    "Symbol::infer_shape",
                    format!(
                        "no input named {name:?} to give a {what} to; inputs: {}",
                        cands.join(", ")
                    ),
                ));
            }
            out.extend(hits.into_iter().map(|i| (i, v.clone())));
        }
        Ok(out)
    }

    /// MXNet's `InferAttr`: the values of every entry.
    fn run<T: Attr>(&self, known: Vec<(usize, T)>) -> Result<Vec<T>> {
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(super::OpParams::Unknown { .. }) = node.params() {
                return Err(Error::SymbolInference {
                    node: node.name().to_string(),
                    op: node.op_name().to_string(),
                    what: T::WHAT,
                    reason: format!(
                        "mxgluon has no {} rule for operator {} (node {i})",
                        T::WHAT,
                        node.op_name()
                    ),
                });
            }
        }
        let mut table: Vec<T> = vec![T::unknown(); self.num_entries()];
        for (i, v) in known {
            table[self.row_ptr[i]] = v;
        }
        let mut finished = vec![false; n];
        let mut scratch = (Vec::new(), Vec::new());
        let mut num_unknown = usize::MAX;
        let mut last_iter = false;
        let mut forward = true;
        loop {
            if forward {
                for nid in 0..n {
                    self.step(nid, &mut table, &mut finished, &mut scratch)?;
                }
            } else {
                for nid in (0..n).rev() {
                    self.step(nid, &mut table, &mut finished, &mut scratch)?;
                }
            }
            let last = num_unknown;
            num_unknown = table.iter().map(|v| v.count_unknown()).sum();
            let mut again = num_unknown > 0 && last > num_unknown;
            if !again && !last_iter {
                again = finished.iter().any(|f| !f);
                last_iter = true;
            }
            forward = !forward;
            if !again {
                break;
            }
        }
        Ok(table)
    }

    /// One node's inference step (MXNet's `infer_step`).
    fn step<T: Attr>(
        &self,
        nid: usize,
        table: &mut [T],
        finished: &mut [bool],
        (ins, outs): &mut (Vec<T>, Vec<T>),
    ) -> Result<()> {
        if finished[nid] {
            return Ok(());
        }
        let node = &self.nodes[nid];
        let out0 = self.row_ptr[nid];
        let Some(params) = node.params() else {
            // A variable: its attribute is the starting point unless the entry is known.
            if !table[out0].is_done() {
                if let Some(s) = node.attrs().get(T::KEY) {
                    table[out0] = T::from_attr(s).ok_or_else(|| Error::SymbolInference {
                        node: node.name().to_string(),
                        op: "null".into(),
                        what: T::WHAT,
                        reason: format!("invalid attribute {}={s:?}", T::KEY),
                    })?;
                }
            }
            finished[nid] = table[out0].is_done();
            return Ok(());
        };
        ins.clear();
        ins.extend(
            self.inputs[nid]
                .iter()
                .map(|&(src, j)| table[self.row_ptr[src] + j].clone()),
        );
        outs.clear();
        outs.extend((out0..self.row_ptr[nid + 1]).map(|e| table[e].clone()));
        T::rule(params, ins, outs).map_err(|e| self.rule_error::<T>(nid, e))?;
        finished[nid] = ins.iter().chain(outs.iter()).all(|v| v.is_done());
        for (k, &(src, j)) in self.inputs[nid].iter().enumerate() {
            table[self.row_ptr[src] + j] = ins[k].clone();
        }
        for (k, v) in outs.iter().enumerate() {
            table[out0 + k] = v.clone();
        }
        Ok(())
    }

    fn rule_error<T: Attr>(&self, nid: usize, e: RuleError) -> Error {
        let node = &self.nodes[nid];
        let slot = match e.slot {
            Some(Slot::In(k)) => {
                let arg = node
                    .params()
                    .and_then(|p| p.input_names())
                    .and_then(|names| names.get(k).cloned())
                    .unwrap_or_else(|| format!("{k}"));
                let src = self.inputs[nid]
                    .get(k)
                    .map(|&(s, _)| self.nodes[s].name().to_string())
                    .unwrap_or_default();
                format!("input {arg} ({src}): ")
            }
            Some(Slot::Out(k)) => format!("output {k}: "),
            None => String::new(),
        };
        Error::SymbolInference {
            node: node.name().to_string(),
            op: node.op_name().to_string(),
            what: T::WHAT,
            reason: format!("{slot}{}", e.msg),
        }
    }

    fn split<T: Clone, U>(&self, table: &[T], conv: impl Fn(&T) -> U) -> (Vec<U>, Vec<U>, Vec<U>) {
        let args = self
            .arg_nodes()
            .iter()
            .map(|&i| conv(&table[self.row_ptr[i]]))
            .collect();
        let outs = self
            .heads
            .iter()
            .map(|&(i, j)| conv(&table[self.row_ptr[i] + j]))
            .collect();
        let aux = self
            .aux_nodes()
            .iter()
            .map(|&i| conv(&table[self.row_ptr[i]]))
            .collect();
        (args, outs, aux)
    }

    /// Shapes of every entry (indexed by [`Graph::entry_id`]), inferred from the known
    /// variable shapes; see [`Symbol::infer_shape`](super::Symbol::infer_shape).
    pub fn infer_entry_shapes<K: AsRef<str>, S: AsRef<[usize]>>(
        &self,
        known: impl IntoIterator<Item = (K, S)>,
    ) -> Result<Vec<Option<Vec<usize>>>> {
        let known: Vec<(String, TShape)> = known
            .into_iter()
            .map(|(k, s)| (k.as_ref().to_string(), from_public(s.as_ref())))
            .collect();
        let known = self.match_inputs(known, "shape")?;
        Ok(self.run(known)?.iter().map(to_public).collect())
    }

    /// Dtypes of every entry (indexed by [`Graph::entry_id`]).
    pub fn infer_entry_types<K: AsRef<str>>(
        &self,
        known: impl IntoIterator<Item = (K, DType)>,
    ) -> Result<Vec<Option<DType>>> {
        let known: Vec<(String, TType)> = known
            .into_iter()
            .map(|(k, t)| (k.as_ref().to_string(), Some(t)))
            .collect();
        let known = self.match_inputs(known, "dtype")?;
        self.run(known)
    }

    pub(crate) fn infer_shape<K: AsRef<str>, S: AsRef<[usize]>>(
        &self,
        known: impl IntoIterator<Item = (K, S)>,
    ) -> Result<InferredShapes> {
        let table = self.infer_entry_shapes(known)?;
        let (arg_shapes, out_shapes, aux_shapes) = self.split(&table, |s| s.clone());
        Ok(InferredShapes {
            arg_shapes,
            out_shapes,
            aux_shapes,
        })
    }

    pub(crate) fn infer_type<K: AsRef<str>>(
        &self,
        known: impl IntoIterator<Item = (K, DType)>,
    ) -> Result<InferredTypes> {
        let table = self.infer_entry_types(known)?;
        let (arg_types, out_types, aux_types) = self.split(&table, |t| *t);
        Ok(InferredTypes {
            arg_types,
            out_types,
            aux_types,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_attributes_parse_with_unknown_dims() {
        assert_eq!(TShape::from_attr("(0, 3)"), Some(Some(vec![-1, 3])));
        assert_eq!(TShape::from_attr("()"), Some(None));
        assert_eq!(TShape::from_attr("(2, x)"), None);
        assert_eq!(TType::from_attr("2"), Some(Some(DType::Float16)));
        assert_eq!(TType::from_attr("99"), None);
    }
}
