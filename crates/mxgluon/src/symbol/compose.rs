//! Creating nodes: variables ([`VarOptions`]), operator application with MXNet's automatic
//! names ([`NameManager`]) and automatically created inputs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::attr::{is_hidden_key, py_float};
use super::ops::{canonical_op, parse_params, var_num_args_key};
use super::{Node, NodeData, NodeEntry, OpNode, Symbol, HIDDEN_KEYS};
use crate::dtype::{DType, StorageType};
use crate::error::{fmt_shape, Error, Result};

/// Attributes of a variable, written as MXNet's `mx.sym.var` writes them (spec §1.20):
/// `__shape__` `"(2, 3)"` (`0` = unknown dimension), `__dtype__` the type flag, `__lr_mult__`
/// / `__wd_mult__` Python floats, `__init__` verbatim, `__storage_type__` the storage id.
///
/// ```
/// use mxgluon::symbol::{Symbol, VarOptions};
/// let opts = VarOptions::new().shape([0, 3]).init("zeros").attr("__group__", "a")?;
/// let v = Symbol::var_with("b", &opts);
/// assert_eq!(v.list_attr().get("__shape__").map(String::as_str), Some("(0, 3)"));
/// assert_eq!(v.attr("__init__").as_deref(), Some("zeros"));
/// assert!(VarOptions::new().attr("group", "a").is_err());
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VarOptions {
    shape: Option<Vec<usize>>,
    lr_mult: Option<f64>,
    wd_mult: Option<f64>,
    dtype: Option<DType>,
    init: Option<String>,
    stype: Option<StorageType>,
    extra: BTreeMap<String, String>,
}

impl VarOptions {
    /// No attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// `__shape__` (a `0` dimension is unknown, as in Gluon).
    pub fn shape(mut self, shape: impl AsRef<[usize]>) -> Self {
        self.shape = Some(shape.as_ref().to_vec());
        self
    }

    /// `__lr_mult__`.
    pub fn lr_mult(mut self, v: f64) -> Self {
        self.lr_mult = Some(v);
        self
    }

    /// `__wd_mult__`.
    pub fn wd_mult(mut self, v: f64) -> Self {
        self.wd_mult = Some(v);
        self
    }

    /// `__dtype__`.
    pub fn dtype(mut self, d: DType) -> Self {
        self.dtype = Some(d);
        self
    }

    /// `__init__`: an initializer name or its `dumps()` JSON.
    pub fn init(mut self, init: impl Into<String>) -> Self {
        self.init = Some(init.into());
        self
    }

    /// `__storage_type__`.
    pub fn stype(mut self, s: StorageType) -> Self {
        self.stype = Some(s);
        self
    }

    /// Another attribute; like MXNet, only hidden keys `__name__` are accepted.
    ///
    /// Errors: a key not of the form `__name__`.
    pub fn attr(mut self, key: &str, value: impl Into<String>) -> Result<Self> {
        if !is_hidden_key(key) {
            return Err(Error::invalid_arg(
                "VarOptions::attr",
                format!(
                    "attribute {key:?} is not supported; additional variable attributes must \
                     start and end with double underscores, e.g. __{key}__"
                ),
            ));
        }
        self.extra.insert(key.to_string(), value.into());
        Ok(self)
    }

    pub(crate) fn to_attrs(&self) -> BTreeMap<String, String> {
        let mut a = self.extra.clone();
        if let Some(s) = &self.shape {
            a.insert("__shape__".into(), fmt_shape(s));
        }
        if let Some(v) = self.lr_mult {
            a.insert("__lr_mult__".into(), py_float(v));
        }
        if let Some(v) = self.wd_mult {
            a.insert("__wd_mult__".into(), py_float(v));
        }
        if let Some(d) = self.dtype {
            a.insert("__dtype__".into(), d.flag().to_string());
        }
        if let Some(i) = &self.init {
            a.insert("__init__".into(), i.clone());
        }
        if let Some(s) = self.stype {
            a.insert("__storage_type__".into(), s.id().to_string());
        }
        a
    }
}

pub(crate) fn var_node(name: String, attrs: BTreeMap<String, String>) -> Node {
    Node(Arc::new(NodeData {
        name,
        op: None,
        attrs,
        inputs: Vec::new(),
        control_deps: Vec::new(),
        version: AtomicU32::new(0),
    }))
}

pub(crate) fn variable(name: String, attrs: BTreeMap<String, String>) -> Symbol {
    Symbol::from_entries(vec![NodeEntry {
        node: var_node(name, attrs),
        index: 0,
        version: 0,
    }])
}

// ------------------------------------------------------------------------------ names

struct Manager {
    prefix: String,
    counter: HashMap<String, usize>,
}

thread_local! {
    static MANAGERS: RefCell<Vec<Manager>> = RefCell::new(vec![Manager {
        prefix: String::new(),
        counter: HashMap::new(),
    }]);
}

/// MXNet's `mx.name.NameManager` / `mx.name.Prefix`: automatic operator names
/// `<hint><counter>` (`fullyconnected0`, `fullyconnected1`, `convolution0`), counted per hint
/// and per thread. Entering a manager starts fresh counters (and an optional prefix) until
/// its guard is dropped.
///
/// ```
/// use mxgluon::symbol::{FullyConnected, NameManager, Symbol};
/// let x = Symbol::var("x");
/// {
///     let _g = NameManager::with_prefix("net_").enter();
///     let a = FullyConnected::new(2).build(&x)?;
///     let b = FullyConnected::new(2).build(&a)?;
///     assert_eq!(b.name().as_deref(), Some("net_fullyconnected1"));
///     assert_eq!(a.list_arguments()[1], "net_fullyconnected0_weight");
/// }
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct NameManager {
    prefix: String,
}

/// Restores the previous [`NameManager`] when dropped.
#[must_use = "the name manager is active only while the guard lives"]
#[derive(Debug)]
pub struct NameManagerGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl NameManager {
    /// Fresh counters, no prefix (`with mx.name.NameManager():`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Fresh counters and a prefix for every name, given or generated (`mx.name.Prefix`).
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        NameManager {
            prefix: prefix.into(),
        }
    }

    /// Makes this manager the current one on this thread.
    pub fn enter(self) -> NameManagerGuard {
        MANAGERS.with(|m| {
            m.borrow_mut().push(Manager {
                prefix: self.prefix,
                counter: HashMap::new(),
            })
        });
        NameManagerGuard {
            _not_send: std::marker::PhantomData,
        }
    }

    /// The name for a new node: `name` if given (non-empty), else `<hint><k>`; with the
    /// current manager's prefix.
    pub fn get(name: Option<&str>, hint: &str) -> String {
        MANAGERS.with(|m| {
            let mut stack = m.borrow_mut();
            if stack.is_empty() {
                stack.push(Manager {
                    prefix: String::new(),
                    counter: HashMap::new(),
                });
            }
            let top = stack.len() - 1;
            let cur = &mut stack[top];
            let base = match name {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => {
                    let c = cur.counter.entry(hint.to_string()).or_insert(0);
                    let s = format!("{hint}{c}");
                    *c += 1;
                    s
                }
            };
            format!("{}{base}", cur.prefix)
        })
    }
}

impl Drop for NameManagerGuard {
    fn drop(&mut self) {
        MANAGERS.with(|m| {
            let mut stack = m.borrow_mut();
            if stack.len() > 1 {
                stack.pop();
            }
        });
    }
}

// ------------------------------------------------------------------------------ operators

/// MXNet's handling of hidden keys given as operator attributes: `lr_mult` becomes
/// `__lr_mult__`; `weight_lr_mult` (the deprecated per-input form) is refused.
fn operator_attr_key(key: &str, value: &str) -> Result<String> {
    for k in HIDDEN_KEYS {
        match key.rfind(k) {
            Some(0) => return Ok(format!("__{key}__")),
            Some(pos) if pos + k.len() == key.len() => {
                return Err(Error::invalid_arg(
                    "Symbol::op",
                    format!(
                        "setting variable attributes with {key} is deprecated; create the \
                         variable with {k}={value} (VarOptions) and pass it as input {:?}",
                        &key[..pos.saturating_sub(1)]
                    ),
                ))
            }
            _ => {}
        }
    }
    Ok(key.to_string())
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid_arg("Symbol::op", reason)
}

/// Applies operator `op`: positional inputs first, then named ones by input name, the rest
/// created as variables `<name>_<input>`.
pub(crate) fn apply(
    op: &str,
    positional: &[&Symbol],
    named: &[(&str, &Symbol)],
    attrs: &[(&str, &str)],
    name: Option<&str>,
) -> Result<Symbol> {
    let canonical = canonical_op(op).ok_or_else(|| {
        bad(format!(
            "unknown operator {op:?}; operators mxgluon can compose: {}",
            super::ops::known_ops().join(", ")
        ))
    })?;
    let mut dict = BTreeMap::new();
    for (k, v) in attrs {
        dict.insert(operator_attr_key(k, v)?, v.to_string());
    }
    if let Some(key) = var_num_args_key(canonical) {
        dict.entry(key.to_string())
            .or_insert_with(|| positional.len().to_string());
    }
    for (i, s) in positional.iter().enumerate() {
        if s.num_outputs() != 1 {
            return Err(bad(format!(
                "input {i} of {op} has {} outputs; a single output is required",
                s.num_outputs()
            )));
        }
    }
    for (k, s) in named {
        if s.num_outputs() != 1 {
            return Err(bad(format!(
                "input {k:?} of {op} has {} outputs; a single output is required",
                s.num_outputs()
            )));
        }
    }
    let params = parse_params(canonical, &dict).map_err(bad)?;
    let node_name = NameManager::get(name, &op.to_lowercase());
    let arg_names = params.input_names().unwrap_or_default();
    let n_req = arg_names.len();
    if positional.len() > n_req {
        return Err(bad(format!(
            "{op} takes {n_req} inputs ({}), got {}",
            arg_names.join(", "),
            positional.len()
        )));
    }
    for (k, _) in named {
        let pos = arg_names.iter().position(|a| a == k);
        if pos.is_none_or(|p| p < positional.len()) {
            return Err(bad(format!(
                "{op} has no input {k:?} left to set; candidates: {}",
                arg_names[positional.len()..].join(", ")
            )));
        }
    }
    let mut inputs: Vec<NodeEntry> = positional.iter().map(|s| s.outputs[0].clone()).collect();
    for (i, arg) in arg_names.iter().enumerate().skip(positional.len()) {
        match named.iter().find(|(k, _)| k == arg) {
            Some((_, s)) => inputs.push(s.outputs[0].clone()),
            None => {
                let vname = if node_name.is_empty() {
                    arg.clone()
                } else {
                    format!("{node_name}_{arg}")
                };
                let mut vattrs = dict.clone();
                if let Some(init) = params.default_var_init(i) {
                    vattrs
                        .entry("__init__".to_string())
                        .or_insert_with(|| init.to_string());
                }
                inputs.push(NodeEntry {
                    node: var_node(vname, vattrs),
                    index: 0,
                    version: 0,
                });
            }
        }
    }
    for &i in params.mutated_inputs() {
        if !inputs[i].node.is_variable() {
            return Err(bad(format!(
                "input {:?} of {op} is updated in place and must be a variable, got the output \
                 of {}",
                arg_names[i],
                inputs[i].node.name()
            )));
        }
    }
    // Versions as nnvm's UpdateNodeVersion: read the variable's current version, and bump it
    // for inputs the operator mutates.
    for e in inputs.iter_mut() {
        if e.node.is_variable() {
            e.version = e.node.current_version();
        }
    }
    for &i in params.mutated_inputs() {
        inputs[i].version = inputs[i].node.0.version.fetch_add(1, Ordering::SeqCst) + 1;
    }
    let nvis = params.num_visible_outputs();
    let node = Node(Arc::new(NodeData {
        name: node_name,
        op: Some(OpNode {
            name: canonical.to_string(),
            params,
        }),
        attrs: dict,
        inputs,
        control_deps: Vec::new(),
        version: AtomicU32::new(0),
    }));
    Ok(Symbol::from_entries(
        (0..nvis)
            .map(|i| NodeEntry {
                node: node.clone(),
                index: i as u32,
                version: 0,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_operator_keys() {
        assert_eq!(operator_attr_key("lr_mult", "2").unwrap(), "__lr_mult__");
        assert_eq!(
            operator_attr_key("__lr_mult__", "2").unwrap(),
            "__lr_mult__"
        );
        assert_eq!(operator_attr_key("num_hidden", "2").unwrap(), "num_hidden");
        assert!(operator_attr_key("weight_lr_mult", "2").is_err());
    }

    #[test]
    fn names_count_per_hint_and_scope() {
        let _g = NameManager::new().enter();
        assert_eq!(NameManager::get(None, "fc"), "fc0");
        assert_eq!(NameManager::get(None, "fc"), "fc1");
        assert_eq!(NameManager::get(None, "conv"), "conv0");
        assert_eq!(NameManager::get(Some("mine"), "fc"), "mine");
        assert_eq!(NameManager::get(Some(""), "fc"), "fc2");
        {
            let _p = NameManager::with_prefix("p_").enter();
            assert_eq!(NameManager::get(None, "fc"), "p_fc0");
            assert_eq!(NameManager::get(Some("x"), "fc"), "p_x");
        }
        assert_eq!(NameManager::get(None, "fc"), "fc3");
    }
}
