//! The graph and the backward pass.
//!
//! Every array that takes part in differentiation carries an `Arc<Node>`: a [`Var`] for a
//! marked variable (it owns the handle of the gradient buffer and the `grad_req`), or an
//! [`Op`] for the result of a recorded operation (it holds its inputs' nodes and a closure that
//! maps the output's gradient to the inputs' gradients). Handles of one array share the node, so
//! marking, re-marking and recording are seen through every clone.
//!
//! # Sparse gradients
//!
//! A closure may return a row-sparse contribution ([`Grad::RowSparse`], full shape of the
//! input) — `Embedding` with a sparse gradient, `dot(csr, w)`. A variable's buffer is either
//! dense or row-sparse ([`GradBuf`]); a row-sparse buffer is a [`SparseGrad`] cell whose
//! content is replaced by each store (row-sparse arrays are immutable values). Contributions
//! to one node are summed as: dense + dense → dense, row-sparse + row-sparse → row-sparse
//! (union of rows), mixed → dense. Storing a contribution:
//!
//! | buffer \ contribution | dense | row-sparse |
//! |---|---|---|
//! | dense, `write` | assign | zero, then add its rows |
//! | dense, `add` | add | add its rows |
//! | row-sparse, `write` | its non-zero rows | replace |
//! | row-sparse, `add` | union-merge with them | union-merge |
//!
//! Direct-write destinations ([`GradDest`]) are offered only for dense buffers, so the dense
//! paths are exactly what they were.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;

use crate::dtype::GradReq;
use crate::error::{Error, Result};
use crate::nd::{NDArray, RowSparseNDArray};

/// Where a backward closure may write an input's gradient directly: the variable's own buffer
/// (overwritten, or accumulated into when `accumulate`). Offered only when that input is a
/// variable reached through this one edge, so no other contribution has to be summed first.
pub(crate) struct GradDest {
    /// The variable's gradient buffer.
    pub buf: NDArray,
    /// `true` for `grad_req = add`: add to the buffer instead of overwriting it.
    pub accumulate: bool,
}

/// One input's gradient as returned by a backward closure.
pub(crate) enum Grad {
    /// No gradient flows to this input (it is not differentiable, or was not tracked).
    None,
    /// The gradient, to be summed with other contributions.
    Value(NDArray),
    /// Already stored into the [`GradDest`] that was offered.
    Written,
    /// A row-sparse gradient with the input's full shape (only its rows are non-zero).
    RowSparse(RowSparseNDArray),
}

/// A row-sparse gradient buffer: a shared cell whose value each backward pass replaces (or
/// merges into, for `grad_req = add`). Clones share the cell, so a parameter and the autograd
/// variable of its data see the same gradient.
#[derive(Clone)]
pub(crate) struct SparseGrad(Arc<Mutex<RowSparseNDArray>>);

impl SparseGrad {
    /// A cell holding `value`.
    pub(crate) fn new(value: RowSparseNDArray) -> SparseGrad {
        SparseGrad(Arc::new(Mutex::new(value)))
    }
    /// The current value (a cheap handle clone).
    pub(crate) fn get(&self) -> RowSparseNDArray {
        lock(&self.0).clone()
    }
    /// Replaces the value.
    pub(crate) fn set(&self, value: RowSparseNDArray) {
        *lock(&self.0) = value;
    }
    /// Resets to no stored rows (MXNet's `zeros_like(g, out=g)` on a row_sparse gradient).
    pub(crate) fn clear(&self) -> Result<()> {
        let z = self.get().zeros_like()?;
        self.set(z);
        Ok(())
    }
}

impl std::fmt::Debug for SparseGrad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SparseGrad({:?})", self.get())
    }
}

/// A variable's gradient buffer.
#[derive(Clone, Debug)]
pub(crate) enum GradBuf {
    /// A dense buffer, written in place.
    Dense(NDArray),
    /// A row-sparse buffer.
    RowSparse(SparseGrad),
}

impl GradBuf {
    fn shape(&self) -> Vec<usize> {
        match self {
            GradBuf::Dense(a) => a.shape().to_vec(),
            GradBuf::RowSparse(g) => g.get().shape().to_vec(),
        }
    }
    fn dtype(&self) -> crate::dtype::DType {
        match self {
            GradBuf::Dense(a) => a.dtype(),
            GradBuf::RowSparse(g) => g.get().dtype(),
        }
    }
}

/// A summed contribution to one node's gradient.
#[derive(Clone)]
enum Contrib {
    Dense(NDArray),
    RowSparse(RowSparseNDArray),
}

impl Contrib {
    /// The dense form (row-sparse contributions are expanded; only reached for operation
    /// nodes fed by a sparse contribution and for `autograd::grad`).
    fn into_dense(self) -> Result<NDArray> {
        match self {
            Contrib::Dense(a) => Ok(a),
            Contrib::RowSparse(r) => r.to_dense(),
        }
    }
}

/// The closure of a recorded operation: `(output gradient, destinations) → input gradients`.
pub(crate) type BackwardFn =
    dyn Fn(&NDArray, &[Option<GradDest>]) -> Result<SmallVec<[Grad; 3]>> + Send + Sync;

/// A marked variable: the leaf of a graph.
pub(crate) struct Var {
    req: AtomicU8,
    grad: Mutex<Option<GradBuf>>,
    /// Set when a backward pass stored a gradient; cleared by [`Var::take_fresh`].
    fresh: AtomicBool,
    /// `false` for the pulled rows of a row-sparse parameter, whose buffer has the table's
    /// shape, not the variable's: no closure may write into it directly.
    direct: bool,
}

/// A recorded operation.
pub(crate) struct Op {
    name: &'static str,
    inputs: SmallVec<[Option<Arc<Node>>; 3]>,
    /// `None` once a backward pass without `retain_graph` has run through it.
    backward: Mutex<Option<Box<BackwardFn>>>,
}

/// A node of the autograd graph (see the module docs).
pub(crate) enum Node {
    /// A marked variable.
    Var(Var),
    /// The result of a recorded operation.
    Op(Op),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data (an
    // `Option` of handles) is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn req_to_u8(r: GradReq) -> u8 {
    match r {
        GradReq::Null => 0,
        GradReq::Write => 1,
        GradReq::Add => 2,
    }
}

fn req_from_u8(v: u8) -> GradReq {
    match v {
        1 => GradReq::Write,
        2 => GradReq::Add,
        _ => GradReq::Null,
    }
}

impl Var {
    pub(crate) fn req(&self) -> GradReq {
        req_from_u8(self.req.load(Ordering::Relaxed))
    }

    /// The dense gradient buffer (`None` without one, or when it is row-sparse).
    pub(crate) fn grad(&self) -> Option<NDArray> {
        match &*lock(&self.grad) {
            Some(GradBuf::Dense(a)) => Some(a.clone()),
            _ => None,
        }
    }

    /// The gradient buffer, dense or row-sparse.
    pub(crate) fn grad_buf(&self) -> Option<GradBuf> {
        lock(&self.grad).clone()
    }

    /// Whether a backward pass stored a gradient since the last call; clears the flag.
    pub(crate) fn take_fresh(&self) -> bool {
        self.fresh.swap(false, Ordering::AcqRel)
    }

    /// Whether a backward pass stored a gradient since the flag was last cleared.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::Acquire)
    }

    fn set(&self, grad: Option<GradBuf>, req: GradReq) {
        *lock(&self.grad) = grad;
        self.req.store(req_to_u8(req), Ordering::Relaxed);
        self.fresh.store(false, Ordering::Release);
    }
}

impl Node {
    /// Whether operations on an array carrying this node must be recorded.
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        match self {
            Node::Op(_) => true,
            Node::Var(v) => v.req.load(Ordering::Relaxed) != 0,
        }
    }

    pub(crate) fn as_var(&self) -> Option<&Var> {
        match self {
            Node::Var(v) => Some(v),
            Node::Op(_) => None,
        }
    }
}

/// Whether an operation on `inputs` must be recorded: this thread is recording and at least one
/// input takes part in differentiation.
#[inline]
pub(crate) fn tracked(inputs: &[&NDArray]) -> bool {
    super::is_recording()
        && inputs
            .iter()
            .any(|a| a.autograd_node().is_some_and(|n| n.is_active()))
}

/// Attaches a recorded operation to `out`: `backward` maps the gradient of `out` to the
/// gradients of `inputs` (one [`Grad`] per input, in order). Call only when
/// [`tracked`]`(inputs)` holds (otherwise the closure is built for nothing).
pub(crate) fn record_op(
    name: &'static str,
    inputs: &[&NDArray],
    mut out: NDArray,
    backward: impl Fn(&NDArray, &[Option<GradDest>]) -> Result<SmallVec<[Grad; 3]>>
        + Send
        + Sync
        + 'static,
) -> NDArray {
    let inputs = inputs
        .iter()
        .map(|a| a.autograd_node().filter(|n| n.is_active()).cloned())
        .collect();
    out.set_autograd_node(Some(Arc::new(Node::Op(Op {
        name,
        inputs,
        backward: Mutex::new(Some(Box::new(backward))),
    }))));
    out
}

/// Marks `vars` as variables whose gradients go to `grads` (same shapes) with `req` (MXNet's
/// `autograd.mark_variables`). An array that is already a variable is re-marked in place, so
/// every handle of it sees the new buffer. `req = null` unmarks: the arrays become plain arrays
/// and the old gradient buffers are released.
///
/// ```
/// use mxgluon::{autograd, nd, Context, GradReq};
/// let ctx = Context::cpu(0);
/// let mut x = nd::ones(&[2], ctx)?;
/// let g = nd::zeros(&[2], ctx)?;
/// autograd::mark_variables(std::slice::from_mut(&mut x), &[g.clone()], GradReq::Write)?;
/// let y = { let _r = autograd::record(); x.mul_scalar(3.0)? };
/// y.backward()?;
/// assert_eq!(g.to_vec::<f32>()?, vec![3.0, 3.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn mark_variables(vars: &mut [NDArray], grads: &[NDArray], req: GradReq) -> Result<()> {
    let bufs: Vec<GradBuf> = grads.iter().cloned().map(GradBuf::Dense).collect();
    mark_variables_buf(vars, &bufs, req)
}

/// [`mark_variables`] with dense or row-sparse gradient buffers.
pub(crate) fn mark_variables_buf(
    vars: &mut [NDArray],
    grads: &[GradBuf],
    req: GradReq,
) -> Result<()> {
    if req != GradReq::Null && vars.len() != grads.len() {
        return Err(Error::invalid_arg(
            "mark_variables",
            format!(
                "{} variables but {} gradient buffers",
                vars.len(),
                grads.len()
            ),
        ));
    }
    if req != GradReq::Null {
        for (v, g) in vars.iter().zip(grads) {
            let gshape = g.shape();
            if v.shape() != gshape.as_slice() {
                return Err(Error::ShapeMismatch {
                    op: "mark_variables",
                    lhs: v.shape().to_vec(),
                    rhs: gshape,
                    detail: "a gradient buffer must have its variable's shape".into(),
                });
            }
            if v.dtype() != g.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "mark_variables",
                    expected: v.dtype(),
                    got: g.dtype(),
                });
            }
        }
    }
    for (i, v) in vars.iter_mut().enumerate() {
        let existing = v
            .autograd_node()
            .and_then(|n| n.as_var().map(|_| n.clone()));
        if req == GradReq::Null {
            if let Some(Node::Var(var)) = existing.as_deref() {
                var.set(None, GradReq::Null);
            }
            v.set_autograd_node(None);
            continue;
        }
        let g = grads[i].clone();
        match existing.as_deref() {
            Some(Node::Var(var)) => var.set(Some(g), req),
            _ => v.set_autograd_node(Some(Arc::new(Node::Var(Var {
                req: AtomicU8::new(req_to_u8(req)),
                grad: Mutex::new(Some(g)),
                fresh: AtomicBool::new(false),
                direct: true,
            })))),
        }
    }
    Ok(())
}

/// Marks `values` — the stored rows of a row-sparse array gathered from a larger table — as
/// a variable whose gradient (which has the **table's** shape, usually row-sparse) goes to
/// `buf` with `req`. Used by `Parameter::row_sparse_data`: operators on the pulled rows send
/// full-shape row-sparse gradients to the parameter's buffer. `values` must be a fresh
/// handle (it gets a new variable node).
pub(crate) fn mark_row_sparse_view(values: &mut NDArray, buf: GradBuf, req: GradReq) {
    values.set_autograd_node(Some(Arc::new(Node::Var(Var {
        req: AtomicU8::new(req_to_u8(req)),
        grad: Mutex::new(Some(buf)),
        fresh: AtomicBool::new(false),
        direct: false,
    }))));
}

type Key = *const Node;

fn key(n: &Arc<Node>) -> Key {
    Arc::as_ptr(n)
}

/// Everything the backward pass learned: the variables reached and their summed gradients.
struct Pass {
    /// Summed gradients of variables not written directly, in first-reached order.
    var_grads: Vec<(Arc<Node>, Contrib)>,
    /// Variables whose gradient a closure stored directly into their buffer.
    written: Vec<Arc<Node>>,
}

fn head_nodes<'a>(heads: &[&'a NDArray]) -> Result<Vec<(&'a NDArray, Arc<Node>)>> {
    heads
        .iter()
        .map(|h| match h.autograd_node() {
            Some(n) if n.is_active() => Ok((*h, n.clone())),
            _ => Err(Error::NoGraph),
        })
        .collect()
}

fn accumulate(map: &mut HashMap<Key, Contrib>, k: Key, g: Contrib) -> Result<()> {
    let sum = match (map.remove(&k), g) {
        (None, g) => g,
        (Some(Contrib::Dense(prev)), Contrib::Dense(g)) => {
            Contrib::Dense(crate::nd::ops::add_untracked(&prev, &g)?)
        }
        (Some(Contrib::RowSparse(prev)), Contrib::RowSparse(g)) => {
            Contrib::RowSparse(prev.add(&g)?)
        }
        (Some(Contrib::Dense(d)), Contrib::RowSparse(r))
        | (Some(Contrib::RowSparse(r)), Contrib::Dense(d)) => {
            // A fresh dense array: the contribution may be shared with its producer.
            let out = d.copy_to(d.context())?;
            r.add_to_dense(&out)?;
            Contrib::Dense(out)
        }
    };
    map.insert(k, sum);
    Ok(())
}

/// Runs the backward pass from `heads`. With `write_into_vars`, single-use variables may have
/// their gradient stored directly by the operation's closure.
fn run(
    heads: &[&NDArray],
    head_grads: Option<&[NDArray]>,
    retain_graph: bool,
    write_into_vars: bool,
) -> Result<Pass> {
    let heads = head_nodes(heads)?;
    if let Some(hg) = head_grads {
        if hg.len() != heads.len() {
            return Err(Error::invalid_arg(
                "backward",
                format!("{} heads but {} head gradients", heads.len(), hg.len()),
            ));
        }
    }
    // Post-order DFS (iterative: graphs can be deep) and edge counts per node.
    let mut order: Vec<Arc<Node>> = Vec::new();
    let mut visited: HashMap<Key, ()> = HashMap::new();
    let mut uses: HashMap<Key, usize> = HashMap::new();
    let mut stack: Vec<(Arc<Node>, bool)> = heads.iter().map(|(_, n)| (n.clone(), false)).collect();
    while let Some((n, expanded)) = stack.pop() {
        if expanded {
            order.push(n);
            continue;
        }
        if visited.insert(key(&n), ()).is_some() {
            continue;
        }
        stack.push((n.clone(), true));
        if let Node::Op(op) = &*n {
            for inp in op.inputs.iter().flatten() {
                *uses.entry(key(inp)).or_insert(0) += 1;
                if !visited.contains_key(&key(inp)) {
                    stack.push((inp.clone(), false));
                }
            }
        }
    }
    let mut grads: HashMap<Key, Contrib> = HashMap::new();
    for (i, (h, n)) in heads.iter().enumerate() {
        let g = match head_grads {
            Some(hg) => {
                let g = &hg[i];
                if g.shape() != h.shape() {
                    return Err(Error::ShapeMismatch {
                        op: "backward",
                        lhs: h.shape().to_vec(),
                        rhs: g.shape().to_vec(),
                        detail: "a head gradient must have its head's shape".into(),
                    });
                }
                if g.dtype() != h.dtype() {
                    return Err(Error::DTypeMismatch {
                        op: "backward",
                        expected: h.dtype(),
                        got: g.dtype(),
                    });
                }
                g.as_in_context(h.context())?.detach()
            }
            None => NDArray::ones(h.shape(), h.dtype(), h.context())?,
        };
        // A head also counts as a use: its variable cannot be written directly.
        *uses.entry(key(n)).or_insert(0) += 1;
        accumulate(&mut grads, key(n), Contrib::Dense(g))?;
    }
    let mut pass = Pass {
        var_grads: Vec::new(),
        written: Vec::new(),
    };
    for n in order.iter().rev() {
        let k = key(n);
        let op = match &**n {
            Node::Op(op) => op,
            Node::Var(_) => {
                if let Some(g) = grads.remove(&k) {
                    pass.var_grads.push((n.clone(), g));
                }
                continue;
            }
        };
        let Some(dy) = grads.remove(&k) else {
            continue;
        };
        let dy = dy.into_dense()?;
        let dests: SmallVec<[Option<GradDest>; 3]> = op
            .inputs
            .iter()
            .map(|inp| {
                let inp = inp.as_ref()?;
                if !write_into_vars || uses.get(&key(inp)).copied() != Some(1) {
                    return None;
                }
                let var = inp.as_var().filter(|v| v.direct)?;
                let accumulate = match var.req() {
                    GradReq::Null => return None,
                    GradReq::Write => false,
                    GradReq::Add => true,
                };
                Some(GradDest {
                    buf: var.grad()?,
                    accumulate,
                })
            })
            .collect();
        let input_grads = if retain_graph {
            let f = lock(&op.backward);
            let f = f.as_ref().ok_or(Error::GraphFreed { op: op.name })?;
            f(&dy, &dests)?
        } else {
            let f = lock(&op.backward)
                .take()
                .ok_or(Error::GraphFreed { op: op.name })?;
            f(&dy, &dests)?
        };
        drop(dy);
        for (inp, g) in op.inputs.iter().zip(input_grads) {
            let Some(inp) = inp else { continue };
            match g {
                Grad::None => {}
                Grad::Value(v) => accumulate(&mut grads, key(inp), Contrib::Dense(v.detach()))?,
                Grad::RowSparse(r) => accumulate(&mut grads, key(inp), Contrib::RowSparse(r))?,
                Grad::Written => pass.written.push(inp.clone()),
            }
        }
    }
    Ok(pass)
}

/// Computes the gradients of `heads` with respect to every variable they depend on and stores
/// them in the variables' gradient buffers according to their `grad_req` (MXNet's
/// `autograd.backward`). `head_grads` default to ones. Without `retain_graph` the graph's
/// saved arrays are released and a second backward through it is an [`Error::GraphFreed`].
///
/// A head that was not computed under [`record`](super::record) from a variable is an
/// [`Error::NoGraph`].
pub fn backward(
    heads: &[&NDArray],
    head_grads: Option<&[NDArray]>,
    retain_graph: bool,
) -> Result<()> {
    let pass = run(heads, head_grads, retain_graph, true)?;
    for (n, g) in pass.var_grads {
        let Node::Var(var) = &*n else { continue };
        let Some(buf) = var.grad_buf() else { continue };
        let req = var.req();
        if req == GradReq::Null {
            continue;
        }
        store(&buf, g, req == GradReq::Add)?;
        var.fresh.store(true, Ordering::Release);
    }
    for n in pass.written {
        if let Node::Var(var) = &*n {
            var.fresh.store(true, Ordering::Release);
        }
    }
    Ok(())
}

/// Stores a summed contribution into a variable's buffer (see the module docs' table).
fn store(buf: &GradBuf, g: Contrib, add: bool) -> Result<()> {
    match (buf, g) {
        (GradBuf::Dense(b), Contrib::Dense(g)) => {
            if add {
                b.add_assign(&g)
            } else {
                b.assign(&g)
            }
        }
        (GradBuf::Dense(b), Contrib::RowSparse(r)) => {
            if !add {
                b.fill(0.0)?;
            }
            r.add_to_dense(b)
        }
        (GradBuf::RowSparse(cell), g) => {
            let r = match g {
                Contrib::RowSparse(r) => r,
                Contrib::Dense(d) => RowSparseNDArray::from_dense(&d)?,
            };
            let prev = cell.get();
            if r.dtype() != prev.dtype() || r.shape() != prev.shape() {
                return Err(Error::ShapeMismatch {
                    op: "backward",
                    lhs: prev.shape().to_vec(),
                    rhs: r.shape().to_vec(),
                    detail: format!(
                        "a row_sparse gradient buffer of dtype {} got a {} gradient",
                        prev.dtype(),
                        r.dtype()
                    ),
                });
            }
            let r = if r.context() != prev.context() {
                r.copy_to(prev.context())?
            } else {
                r
            };
            let new = if add { prev.add(&r)? } else { r };
            cell.set(new);
            Ok(())
        }
    }
}

/// The gradients of `heads` with respect to `variables`, returned as new arrays instead of
/// being stored in the variables' buffers (MXNet's `autograd.grad` without `create_graph`). A
/// variable the heads do not depend on gets zeros.
///
/// ```
/// use mxgluon::{autograd, nd, Context, GradReq};
/// let mut x = nd::array(&[3.0f64], &[1], Context::cpu(0))?;
/// x.attach_grad(GradReq::Write)?;
/// let y = { let _r = autograd::record(); x.mul(&x)?.mul(&x)? };   // x³
/// let g = autograd::grad(&[&y], &[&x], None, false)?;
/// assert_eq!(g[0].to_vec::<f64>()?, vec![27.0]);                   // 3x²
/// assert_eq!(x.grad().unwrap().to_vec::<f64>()?, vec![0.0]);         // buffer untouched
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn grad(
    heads: &[&NDArray],
    variables: &[&NDArray],
    head_grads: Option<&[NDArray]>,
    retain_graph: bool,
) -> Result<Vec<NDArray>> {
    let keys = variables
        .iter()
        .map(|v| match v.autograd_node() {
            Some(n) if n.as_var().is_some_and(|var| var.req() != GradReq::Null) => Ok(key(n)),
            _ => Err(Error::invalid_arg(
                "autograd::grad",
                "every variable must be an array marked with attach_grad (grad_req write or add)",
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let pass = run(heads, head_grads, retain_graph, false)?;
    let found: HashMap<Key, Contrib> = pass
        .var_grads
        .into_iter()
        .map(|(n, g)| (key(&n), g))
        .collect();
    keys.iter()
        .zip(variables)
        .map(|(k, v)| match found.get(k) {
            Some(g) => g.clone().into_dense(),
            None => v.zeros_like(),
        })
        .collect()
}
