//! MXNet's graph JSON (nnvm's `SaveJSON` / `LoadJSON` and MXNet's legacy upgraders).
//!
//! Writing reproduces dmlc-core's `JSONWriter` byte for byte: objects and arrays are
//! multi-line unless they are "small" (an attribute map with one entry, an array of at most
//! ten numbers or `[node, index, version]` triples), a separator is `", "` followed by a
//! newline and two spaces per nesting level, attribute maps are sorted by key, and there is
//! no final newline. Strings escape `\r \n \t \\ "` as MXNet does; other control characters
//! (which MXNet writes raw, producing JSON no strict reader accepts) are written as `\u00XX`,
//! and attribute keys are escaped like values (MXNet writes keys raw).
//!
//! Reading accepts every form MXNet 1.9.1 accepts (`attrs`, or the older `attr` and `param`
//! node keys, `backward_source_id`, entries without a version, no `node_row_ptr`, no
//! `mxnet_version`) and applies MXNet's upgraders to older files. It trusts nothing: every
//! index is range-checked, cycles are refused, operator attributes are parsed and input
//! counts checked, and errors say where (`nodes[3].inputs[1]`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::compose::var_node;
use super::ops::{canonical_op, parse_params, OpParams};
use super::{dfs_order, Node, NodeData, NodeEntry, OpNode, Symbol, HIDDEN_KEYS, MXNET_VERSION};
use crate::error::{Error, Result};

// ------------------------------------------------------------------------------ writing

/// dmlc-core's `JSONWriter`.
struct Writer {
    out: String,
    multi: Vec<bool>,
    count: Vec<usize>,
}

impl Writer {
    fn sep(&mut self) {
        if self.multi.last().copied().unwrap_or(true) {
            self.out.push('\n');
            for _ in 0..self.multi.len() * 2 {
                self.out.push(' ');
            }
        }
    }

    fn begin(&mut self, open: char, multi: bool) {
        self.out.push(open);
        self.multi.push(multi);
        self.count.push(0);
    }

    fn end(&mut self, close: char) {
        let multi = self.multi.pop().unwrap_or(false);
        let n = self.count.pop().unwrap_or(0);
        if multi && n != 0 {
            self.sep();
        }
        self.out.push(close);
    }

    fn bump(&mut self) -> usize {
        match self.count.last_mut() {
            Some(c) => {
                *c += 1;
                *c - 1
            }
            None => 0,
        }
    }

    fn key(&mut self, k: &str) {
        if self.count.last().copied().unwrap_or(0) > 0 {
            self.out.push_str(", ");
        }
        self.sep();
        self.string(k);
        self.out.push_str(": ");
        self.bump();
    }

    fn item(&mut self) {
        if self.bump() != 0 {
            self.out.push_str(", ");
        }
        self.sep();
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '\r' => self.out.push_str("\\r"),
                '\n' => self.out.push_str("\\n"),
                '\\' => self.out.push_str("\\\\"),
                '\t' => self.out.push_str("\\t"),
                '"' => self.out.push_str("\\\""),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn number(&mut self, n: u64) {
        self.out.push_str(&n.to_string());
    }

    fn numbers(&mut self, v: &[u64]) {
        self.begin('[', v.len() > 10);
        for &x in v {
            self.item();
            self.number(x);
        }
        self.end(']');
    }

    fn entries(&mut self, v: &[(u64, u64, u64)]) {
        self.begin('[', v.len() > 10);
        for &(a, b, c) in v {
            self.item();
            self.begin('[', false);
            for x in [a, b, c] {
                self.item();
                self.number(x);
            }
            self.end(']');
        }
        self.end(']');
    }
}

/// The graph JSON of `heads`, as MXNet 1.9.1's `tojson()`.
pub(crate) fn write(heads: &[NodeEntry]) -> String {
    let order = dfs_order(heads);
    let index: HashMap<usize, u64> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.key(), i as u64))
        .collect();
    let entry = |e: &NodeEntry| {
        (
            index.get(&e.node.key()).copied().unwrap_or(0),
            e.index as u64,
            e.version as u64,
        )
    };
    let mut w = Writer {
        out: String::new(),
        multi: Vec::new(),
        count: Vec::new(),
    };
    w.begin('{', true);
    w.key("nodes");
    w.begin('[', true);
    let mut arg_nodes = Vec::new();
    let mut row_ptr = vec![0u64];
    for (i, n) in order.iter().enumerate() {
        if n.is_variable() {
            arg_nodes.push(i as u64);
        }
        row_ptr.push(row_ptr[row_ptr.len() - 1] + n.num_outputs() as u64);
        w.item();
        w.begin('{', true);
        w.key("op");
        w.string(n.op_name());
        w.key("name");
        w.string(n.name());
        if !n.attrs().is_empty() {
            w.key("attrs");
            w.begin('{', n.attrs().len() > 1);
            for (k, v) in n.attrs() {
                w.key(k);
                w.string(v);
            }
            w.end('}');
        }
        w.key("inputs");
        let ins: Vec<(u64, u64, u64)> = n.inputs().iter().map(entry).collect();
        w.entries(&ins);
        if !n.control_deps().is_empty() {
            w.key("control_deps");
            let deps: Vec<u64> = n
                .control_deps()
                .iter()
                .map(|c| index.get(&c.key()).copied().unwrap_or(0))
                .collect();
            w.numbers(&deps);
        }
        w.end('}');
    }
    w.end(']');
    w.key("arg_nodes");
    w.numbers(&arg_nodes);
    w.key("node_row_ptr");
    w.numbers(&row_ptr);
    w.key("heads");
    let hs: Vec<(u64, u64, u64)> = heads.iter().map(entry).collect();
    w.entries(&hs);
    w.key("attrs");
    w.begin('{', false);
    w.key("mxnet_version");
    w.begin('[', false);
    w.item();
    w.string("int");
    w.item();
    w.number(MXNET_VERSION as u64);
    w.end(']');
    w.end('}');
    w.end('}');
    w.out
}

// ------------------------------------------------------------------------------ reading

/// Outputs accepted for an operator mxgluon does not know (taken from `node_row_ptr` or the
/// entries using it); bounds what a hostile file can make queries allocate.
const MAX_UNKNOWN_OUTPUTS: usize = 1 << 16;

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, at: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidSymbolJson {
            file: self.file.to_string(),
            location: at.into(),
            reason: reason.into(),
        }
    }

    fn u32(&self, v: &Value, at: &str) -> Result<u32> {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                self.err(
                    at,
                    format!(
                        "expected an integer from 0 to 4294967295, found {}",
                        brief(v)
                    ),
                )
            })
    }

    fn array<'v>(&self, v: &'v Value, at: &str) -> Result<&'v Vec<Value>> {
        v.as_array()
            .ok_or_else(|| self.err(at, format!("expected an array, found {}", brief(v))))
    }

    fn object<'v>(&self, v: &'v Value, at: &str) -> Result<&'v Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.err(at, format!("expected an object, found {}", brief(v))))
    }

    fn string(&self, v: &Value, at: &str) -> Result<String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(at, format!("expected a string, found {}", brief(v))))
    }

    fn entry(&self, v: &Value, at: &str) -> Result<(u32, u32, u32)> {
        let a = self.array(v, at)?;
        if a.len() != 2 && a.len() != 3 {
            return Err(self.err(
                at,
                format!(
                    "expected [node, index] or [node, index, version], found {}",
                    brief(v)
                ),
            ));
        }
        let version = match a.get(2) {
            Some(x) => self.u32(x, &format!("{at}[2]"))?,
            None => 0,
        };
        Ok((
            self.u32(&a[0], &format!("{at}[0]"))?,
            self.u32(&a[1], &format!("{at}[1]"))?,
            version,
        ))
    }

    fn str_map(&self, v: &Value, at: &str) -> Result<BTreeMap<String, String>> {
        let o = self.object(v, at)?;
        o.iter()
            .map(|(k, x)| Ok((k.clone(), self.string(x, &format!("{at}.{k}"))?)))
            .collect()
    }
}

/// A short description of a JSON value for error messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// A node as read, before validation.
struct RawNode {
    op: String,
    name: String,
    attrs: BTreeMap<String, String>,
    inputs: Vec<(u32, u32, u32)>,
    control_deps: Vec<u32>,
}

fn read_node(cx: &Ctx<'_>, v: &Value, at: &str) -> Result<RawNode> {
    let o = cx.object(v, at)?;
    let mut op = None;
    let mut name = None;
    let mut inputs = None;
    let mut attrs = BTreeMap::new();
    let mut param = BTreeMap::new();
    let mut control_deps = Vec::new();
    for (k, x) in o {
        let here = format!("{at}.{k}");
        match k.as_str() {
            "op" => op = Some(cx.string(x, &here)?),
            "name" => name = Some(cx.string(x, &here)?),
            "inputs" => {
                let a = cx.array(x, &here)?;
                inputs = Some(
                    a.iter()
                        .enumerate()
                        .map(|(i, e)| cx.entry(e, &format!("{here}[{i}]")))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            // nnvm reads both spellings into the same map; the later one wins.
            "attrs" | "attr" => attrs = cx.str_map(x, &here)?,
            "param" => param = cx.str_map(x, &here)?,
            "control_deps" => {
                control_deps = cx
                    .array(x, &here)?
                    .iter()
                    .enumerate()
                    .map(|(i, e)| cx.u32(e, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
            }
            "backward_source_id" => {
                if !x.is_i64() {
                    return Err(cx.err(here, format!("expected an integer, found {}", brief(x))));
                }
            }
            "subgraphs" => {
                if !cx.array(x, &here)?.is_empty() {
                    return Err(cx.err(
                        here,
                        "nodes with subgraphs (control-flow operators) are not supported",
                    ));
                }
            }
            other => {
                return Err(cx.err(
                    at,
                    format!(
                        "unknown node field {other:?} (expected op, name, inputs, attrs, attr, \
                         param, control_deps, backward_source_id, subgraphs)"
                    ),
                ))
            }
        }
    }
    // Like nnvm: `param` entries never replace `attrs` entries.
    for (k, v) in param {
        attrs.entry(k).or_insert(v);
    }
    Ok(RawNode {
        op: op.ok_or_else(|| cx.err(at, "missing field \"op\""))?,
        name: name.ok_or_else(|| cx.err(at, "missing field \"name\""))?,
        inputs: inputs.ok_or_else(|| cx.err(at, "missing field \"inputs\""))?,
        attrs,
        control_deps,
    })
}

/// The version recorded in the graph attributes (0.8.0 when absent, as MXNet assumes).
fn read_graph_attrs(cx: &Ctx<'_>, v: &Value) -> Result<u32> {
    let mut version = 800;
    for (k, x) in cx.object(v, "attrs")? {
        let at = format!("attrs.{k}");
        let pair = cx.array(x, &at)?;
        if pair.len() != 2 || !pair[0].is_string() {
            return Err(cx.err(
                at,
                format!("expected [type name, value], found {}", brief(x)),
            ));
        }
        if k == "mxnet_version" {
            if pair[0] != "int" {
                return Err(cx.err(
                    at,
                    format!("expected [\"int\", version], found {}", brief(x)),
                ));
            }
            version = pair[1]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| v <= i32::MAX as u32)
                .ok_or_else(|| {
                    cx.err(
                        format!("{at}[1]"),
                        format!("expected a version number, found {}", brief(&pair[1])),
                    )
                })?;
        }
    }
    Ok(version)
}

/// A topological order of all nodes over inputs and control dependencies; a cycle is an
/// error.
fn topo_order(cx: &Ctx<'_>, raw: &[RawNode]) -> Result<Vec<usize>> {
    let n = raw.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut order = Vec::with_capacity(n);
    let child = |i: usize, k: usize| {
        let r = &raw[i];
        if k < r.inputs.len() {
            Some(r.inputs[k].0 as usize)
        } else {
            r.control_deps.get(k - r.inputs.len()).map(|&c| c as usize)
        }
    };
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            match child(node, top.1) {
                Some(c) => {
                    top.1 += 1;
                    match state[c] {
                        0 => {
                            state[c] = 1;
                            stack.push((c, 0));
                        }
                        1 => {
                            return Err(cx.err(
                                format!("nodes[{node}]"),
                                format!(
                                    "the graph has a cycle: node {node} ({:?}) depends on node \
                                     {c} ({:?}), which depends on it",
                                    raw[node].name, raw[c].name
                                ),
                            ))
                        }
                        _ => {}
                    }
                }
                None => {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

/// MXNet's `UpgradeJSON_FixParsing` for files older than 1.9.1: hidden keys written without
/// underscores (`lr_mult`) become `__lr_mult__`; `weight_lr_mult` on an operator moves to
/// its `weight` variable.
fn fix_parsing(raw: &mut [RawNode], order: &[usize]) {
    for &i in order {
        let mut hidden = Vec::new();
        let keys: Vec<String> = raw[i].attrs.keys().cloned().collect();
        for k in keys {
            let matches = HIDDEN_KEYS.iter().any(|h| match k.rfind(h) {
                Some(0) => true,
                Some(p) => p + h.len() == k.len(),
                None => false,
            });
            if matches {
                if let Some(v) = raw[i].attrs.remove(&k) {
                    hidden.push((k, v));
                }
            }
        }
        if hidden.is_empty() {
            continue;
        }
        let arg_names = canonical_op(&raw[i].op)
            .and_then(|op| parse_params(op, &raw[i].attrs).ok())
            .and_then(|p| p.input_names());
        for (k, v) in hidden {
            let mut placed = false;
            for h in HIDDEN_KEYS {
                match k.rfind(h) {
                    Some(0) if k.len() == h.len() => {
                        raw[i].attrs.insert(format!("__{h}__"), v.clone());
                        placed = true;
                        break;
                    }
                    Some(p) if p > 1 && p + h.len() == k.len() => {
                        if raw[i].op != "null" {
                            let arg = &k[..p - 1];
                            let idx = arg_names
                                .as_ref()
                                .and_then(|names| names.iter().position(|a| a == arg));
                            if let Some(&(src, _, _)) = idx.and_then(|j| raw[i].inputs.get(j)) {
                                let src = src as usize;
                                if raw[src].op == "null" {
                                    raw[src].attrs.insert(format!("__{h}__"), v.clone());
                                    placed = true;
                                }
                            }
                        }
                        break;
                    }
                    _ => {}
                }
            }
            if !placed {
                raw[i].attrs.insert(k, v);
            }
        }
    }
}

/// Reads MXNet graph JSON; `file` names the source in errors.
pub(crate) fn read(text: &str, file: &str) -> Result<Symbol> {
    let cx = Ctx { file };
    let root: Value = serde_json::from_str(text).map_err(|e| {
        cx.err(
            format!("line {}, column {}", e.line(), e.column()),
            format!("not valid JSON: {e}"),
        )
    })?;
    let top = cx.object(&root, "the top level")?;
    let (mut nodes_v, mut arg_v, mut heads_v, mut row_v, mut attrs_v) =
        (None, None, None, None, None);
    for (k, v) in top {
        match k.as_str() {
            "nodes" => nodes_v = Some(v),
            "arg_nodes" => arg_v = Some(v),
            "heads" => heads_v = Some(v),
            "node_row_ptr" => row_v = Some(v),
            "attrs" => attrs_v = Some(v),
            other => {
                return Err(cx.err(
                    "the top level",
                    format!(
                        "unknown field {other:?} (expected nodes, arg_nodes, node_row_ptr, \
                         heads, attrs)"
                    ),
                ))
            }
        }
    }
    let missing = |f: &str| cx.err("the top level", format!("missing field {f:?}"));
    let nodes_v = cx.array(nodes_v.ok_or_else(|| missing("nodes"))?, "nodes")?;
    let arg_v = cx.array(arg_v.ok_or_else(|| missing("arg_nodes"))?, "arg_nodes")?;
    let heads_v = cx.array(heads_v.ok_or_else(|| missing("heads"))?, "heads")?;
    let version = match attrs_v {
        Some(a) => read_graph_attrs(&cx, a)?,
        None => 800,
    };
    if version > MXNET_VERSION {
        log::warn!(
            "{file}: the symbol was saved by MXNet version {version}, newer than the 1.9.1 \
             format mxgluon reads; it may not load correctly"
        );
    }

    let mut raw: Vec<RawNode> = nodes_v
        .iter()
        .enumerate()
        .map(|(i, v)| read_node(&cx, v, &format!("nodes[{i}]")))
        .collect::<Result<_>>()?;
    let n = raw.len();
    let heads: Vec<(u32, u32, u32)> = heads_v
        .iter()
        .enumerate()
        .map(|(i, v)| cx.entry(v, &format!("heads[{i}]")))
        .collect::<Result<_>>()?;
    if heads.is_empty() {
        return Err(cx.err("heads", "a symbol needs at least one output"));
    }

    // Indices in range, variables without inputs.
    for (i, r) in raw.iter().enumerate() {
        for (k, e) in r.inputs.iter().enumerate() {
            if e.0 as usize >= n {
                return Err(cx.err(
                    format!("nodes[{i}].inputs[{k}]"),
                    format!("node index {} is out of range ({n} nodes)", e.0),
                ));
            }
        }
        for (k, &c) in r.control_deps.iter().enumerate() {
            if c as usize >= n {
                return Err(cx.err(
                    format!("nodes[{i}].control_deps[{k}]"),
                    format!("node index {c} is out of range ({n} nodes)"),
                ));
            }
        }
        if r.op == "null" && !r.inputs.is_empty() {
            return Err(cx.err(
                format!("nodes[{i}]"),
                format!("variable {:?} has inputs", r.name),
            ));
        }
    }
    for (k, e) in heads.iter().enumerate() {
        if e.0 as usize >= n {
            return Err(cx.err(
                format!("heads[{k}]"),
                format!("node index {} is out of range ({n} nodes)", e.0),
            ));
        }
    }
    for (k, v) in arg_v.iter().enumerate() {
        let at = format!("arg_nodes[{k}]");
        let a = cx.u32(v, &at)? as usize;
        if a >= n {
            return Err(cx.err(at, format!("node index {a} is out of range ({n} nodes)")));
        }
        if raw[a].op != "null" {
            return Err(cx.err(
                at,
                format!("node {a} ({:?}) is not a variable", raw[a].name),
            ));
        }
    }
    let row_ptr: Option<Vec<u32>> = match row_v {
        None => None,
        Some(v) => {
            let a = cx.array(v, "node_row_ptr")?;
            let r: Vec<u32> = a
                .iter()
                .enumerate()
                .map(|(i, x)| cx.u32(x, &format!("node_row_ptr[{i}]")))
                .collect::<Result<_>>()?;
            if r.len() != n + 1 || r.first() != Some(&0) || r.windows(2).any(|w| w[1] < w[0]) {
                return Err(cx.err(
                    "node_row_ptr",
                    format!(
                        "expected {} non-decreasing offsets starting at 0, found {}",
                        n + 1,
                        brief(v)
                    ),
                ));
            }
            Some(r)
        }
    };
    let order = topo_order(&cx, &raw)?;

    if version < MXNET_VERSION {
        fix_parsing(&mut raw, &order);
    }

    // Operators: canonical names, parameters, output counts.
    let mut max_index = vec![0u32; n];
    for r in &raw {
        for e in &r.inputs {
            max_index[e.0 as usize] = max_index[e.0 as usize].max(e.1);
        }
    }
    for e in &heads {
        max_index[e.0 as usize] = max_index[e.0 as usize].max(e.1);
    }
    let mut ops: Vec<Option<OpNode>> = Vec::with_capacity(n);
    for (i, r) in raw.iter().enumerate() {
        if r.op == "null" {
            ops.push(None);
            continue;
        }
        let at = format!("nodes[{i}]");
        let op = match canonical_op(&r.op) {
            Some(c) => OpNode {
                name: c.to_string(),
                params: parse_params(c, &r.attrs)
                    .map_err(|e| cx.err(&at, format!("operator {:?} ({}): {e}", r.name, r.op)))?,
            },
            None => {
                let from_rows = row_ptr.as_ref().map(|rp| (rp[i + 1] - rp[i]) as usize);
                let needed = max_index[i] as usize + 1;
                let num_outputs = from_rows.unwrap_or(needed).max(needed).max(1);
                if num_outputs > MAX_UNKNOWN_OUTPUTS {
                    return Err(cx.err(
                        &at,
                        format!(
                            "operator {:?} ({}) would have {num_outputs} outputs; at most \
                             {MAX_UNKNOWN_OUTPUTS} are accepted for an operator mxgluon does \
                             not know",
                            r.name, r.op
                        ),
                    ));
                }
                OpNode {
                    name: r.op.clone(),
                    params: OpParams::Unknown { num_outputs },
                }
            }
        };
        ops.push(Some(op));
    }

    // Input counts; files before 0.9.0 lack the auxiliary states, which are added.
    let mut added: Vec<Vec<(String, BTreeMap<String, String>)>> = vec![Vec::new(); n];
    for (i, r) in raw.iter().enumerate() {
        let Some(op) = &ops[i] else { continue };
        let Some(names) = op.params.input_names() else {
            continue;
        };
        let have = r.inputs.len();
        if have == names.len() {
            continue;
        }
        if version < 900 && have < names.len() {
            for arg in &names[have..] {
                let vname = if r.name.is_empty() {
                    arg.clone()
                } else {
                    format!("{}_{arg}", r.name)
                };
                added[i].push((vname, r.attrs.clone()));
            }
        } else {
            return Err(cx.err(
                format!("nodes[{i}].inputs"),
                format!(
                    "operator {:?} ({}) takes {} inputs ({}), found {have}",
                    r.name,
                    op.name,
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
    }

    // Output indices in range.
    let num_out = |i: usize| ops[i].as_ref().map_or(1, |o| o.params.num_outputs());
    for (i, r) in raw.iter().enumerate() {
        for (k, e) in r.inputs.iter().enumerate() {
            if e.1 as usize >= num_out(e.0 as usize) {
                return Err(cx.err(
                    format!("nodes[{i}].inputs[{k}]"),
                    format!(
                        "output {} of node {} ({:?}) does not exist (it has {})",
                        e.1,
                        e.0,
                        raw[e.0 as usize].name,
                        num_out(e.0 as usize)
                    ),
                ));
            }
        }
    }
    for (k, e) in heads.iter().enumerate() {
        if e.1 as usize >= num_out(e.0 as usize) {
            return Err(cx.err(
                format!("heads[{k}]"),
                format!(
                    "output {} of node {} ({:?}) does not exist (it has {})",
                    e.1,
                    e.0,
                    raw[e.0 as usize].name,
                    num_out(e.0 as usize)
                ),
            ));
        }
    }

    // Files before 0.9.4: the initializers operators give their variable inputs.
    if version < 904 {
        for i in 0..n {
            let Some(op) = &ops[i] else { continue };
            let inputs = raw[i].inputs.clone();
            for (k, e) in inputs.iter().enumerate() {
                let src = e.0 as usize;
                if raw[src].op == "null" {
                    if let Some(init) = op.params.default_var_init(k) {
                        raw[src]
                            .attrs
                            .entry("__init__".into())
                            .or_insert_with(|| init.to_string());
                    }
                }
            }
            let have = inputs.len();
            for (k, (_, attrs)) in added[i].iter_mut().enumerate() {
                if let Some(init) = op.params.default_var_init(have + k) {
                    attrs
                        .entry("__init__".into())
                        .or_insert_with(|| init.to_string());
                }
            }
        }
    }

    // Build, inputs first.
    let mut built: Vec<Option<Node>> = vec![None; n];
    let mut ops: Vec<Option<OpNode>> = ops;
    for &i in &order {
        let r = &mut raw[i];
        let node = match ops[i].take() {
            None => var_node(std::mem::take(&mut r.name), std::mem::take(&mut r.attrs)),
            Some(op) => {
                let mut inputs = Vec::with_capacity(r.inputs.len() + added[i].len());
                for &(src, idx, ver) in &r.inputs {
                    // `order` puts every input before its consumer.
                    let Some(node) = built[src as usize].clone() else {
                        return Err(cx.err(format!("nodes[{i}]"), "internal: input not built"));
                    };
                    inputs.push(NodeEntry {
                        node,
                        index: idx,
                        version: ver,
                    });
                }
                for (vname, attrs) in std::mem::take(&mut added[i]) {
                    inputs.push(NodeEntry {
                        node: var_node(vname, attrs),
                        index: 0,
                        version: 0,
                    });
                }
                let mut deps = Vec::with_capacity(r.control_deps.len());
                for &c in &r.control_deps {
                    let Some(node) = built[c as usize].clone() else {
                        return Err(cx.err(format!("nodes[{i}]"), "internal: dependency not built"));
                    };
                    deps.push(node);
                }
                Node(Arc::new(NodeData {
                    name: std::mem::take(&mut r.name),
                    op: Some(op),
                    attrs: std::mem::take(&mut r.attrs),
                    inputs,
                    control_deps: deps,
                    version: AtomicU32::new(0),
                }))
            }
        };
        built[i] = Some(node);
    }
    let mut outputs = Vec::with_capacity(heads.len());
    for &(h, idx, ver) in &heads {
        let Some(node) = built[h as usize].clone() else {
            return Err(cx.err("heads", "internal: head not built"));
        };
        outputs.push(NodeEntry {
            node,
            index: idx,
            version: ver,
        });
    }
    Ok(Symbol::from_entries(outputs))
}
