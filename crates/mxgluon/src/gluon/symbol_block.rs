//! `SymbolBlock`: a block whose computation is a symbolic graph (MXNet's
//! `gluon.SymbolBlock`), and `export` of blocks to MXNet's `-symbol.json` + `.params` pair.

use std::collections::HashSet;
use std::path::Path;

use super::block::{Block, BlockBase};
use super::parameter_dict::{ParamSpec, ParameterDict};
use super::{DTypeSource, LoadParams, Parameter};
use crate::context::ContextList;
use crate::dtype::GradReq;
use crate::error::{Error, Result};
use crate::io::ArrayList;
use crate::nd::sparse::Array;
use crate::nd::NDArray;
use crate::symbol::{Executor, Symbol};

/// What feeds one variable of the graph.
enum Binding {
    /// The `k`-th data input.
    Input(usize),
    /// A parameter.
    Param(Parameter),
}

/// A block that runs a symbolic graph (Gluon's `SymbolBlock`): typically a model exported by
/// MXNet's `HybridBlock.export` and loaded with [`SymbolBlock::imports`].
///
/// The graph's variables that are not data inputs become [`Parameter`]s named exactly as the
/// variables (the block's prefix is empty); auxiliary states (BatchNorm's moving statistics)
/// get `grad_req` `null` and are not differentiable. The parameters are ordinary parameters:
/// [`Block::collect_params`] returns them, a [`crate::gluon::Trainer`] updates them, and
/// gradients flow through the graph under [`crate::autograd::record`]. The graph is compiled
/// once ([`Executor`]) and run on every forward pass.
///
/// ```
/// use mxgluon::gluon::{Block, SymbolBlock};
/// use mxgluon::symbol::{Activation, FullyConnected, Symbol};
/// use mxgluon::{init, nd::{self, ActType}, Context};
/// let data = Symbol::var("data");
/// let fc = FullyConnected::new(4).name("fc").build(&data)?;
/// let out = Activation::new(ActType::Relu).build(&fc)?;
/// let net = SymbolBlock::new(out, &["data"], None)?;
/// assert_eq!(net.collect_params()?.keys(), ["fc_weight", "fc_bias"]);
/// net.initialize(Some(init::One.into()), Context::cpu(0))?;   // shapes inferred on first use
/// let y = net.forward(&nd::ones(&[2, 3], None)?)?;
/// assert_eq!(y.shape(), &[2, 4]);
/// // Gluon applies the initializer to every parameter, the bias too: 3·1 + 1
/// assert_eq!(y.to_vec::<f32>()?, vec![4.0; 8]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub struct SymbolBlock {
    base: BlockBase,
    exec: Executor,
    inputs: Vec<String>,
    bindings: Vec<Binding>,
}

impl SymbolBlock {
    /// A block computing `outputs` from the variables named `input_names`; every other
    /// variable becomes a parameter, taken from `params` when it holds one of that name
    /// (MXNet's `SymbolBlock(outputs, inputs, params)`).
    ///
    /// Errors: an input name that is no variable of the graph, or given twice
    /// ([`Error::InvalidArgument`]); an operator the executor cannot run
    /// ([`Error::UnsupportedOperator`], naming the node).
    pub fn new(
        outputs: Symbol,
        input_names: &[&str],
        params: Option<&ParameterDict>,
    ) -> Result<SymbolBlock> {
        let exec = Executor::new(&outputs)?;
        let vars = exec.variables();
        let mut seen = HashSet::new();
        for &name in input_names {
            if !vars.iter().any(|v| v == name) {
                return Err(Error::invalid_arg(
                    "SymbolBlock",
                    format!(
                        "input {name:?} is not a variable of the graph; its variables: {}",
                        vars.join(", ")
                    ),
                ));
            }
            if !seen.insert(name) {
                return Err(Error::invalid_arg(
                    "SymbolBlock",
                    format!("input {name:?} is given twice"),
                ));
            }
        }
        let base = BlockBase::new("SymbolBlock", Some(""), params);
        let aux: HashSet<String> = outputs.list_auxiliary_states().into_iter().collect();
        // Shapes the graph alone determines (variables' __shape__ attributes); unknown ones
        // are filled from the parameter file or inferred from the first input.
        let known = outputs
            .infer_shape::<&str, [usize; 0]>([])
            .ok()
            .map(|s| {
                let mut m = std::collections::HashMap::new();
                for (n, sh) in outputs.list_arguments().into_iter().zip(s.arg_shapes) {
                    m.insert(n, sh);
                }
                for (n, sh) in outputs
                    .list_auxiliary_states()
                    .into_iter()
                    .zip(s.aux_shapes)
                {
                    m.insert(n, sh);
                }
                m
            })
            .unwrap_or_default();
        let mut bindings = Vec::with_capacity(vars.len());
        for v in vars {
            if let Some(k) = input_names.iter().position(|&n| n == v) {
                bindings.push(Binding::Input(k));
                continue;
            }
            let mut spec = ParamSpec::new().allow_deferred_init(true);
            if let Some(Some(shape)) = known.get(v) {
                spec = spec.shape(shape);
            }
            if aux.contains(v) {
                spec = spec.grad_req(GradReq::Null).differentiable(false);
            }
            let p = base.get_param(v, spec)?;
            bindings.push(Binding::Param(p));
        }
        Ok(SymbolBlock {
            base,
            exec,
            inputs: input_names.iter().map(|s| s.to_string()).collect(),
            bindings,
        })
    }

    /// Loads a model exported by MXNet's `HybridBlock.export` (or [`Block::export`]): the
    /// graph from `symbol_json`, and — when `params` is given — every parameter from that
    /// `.params` file (`arg:` / `aux:` prefixes stripped; arrays keep the file's dtype) onto
    /// `ctx` (MXNet's `SymbolBlock.imports`). Without a file the parameters are left
    /// uninitialized: call [`Block::initialize`]; shapes are inferred on the first forward.
    ///
    /// Errors: an unreadable or invalid file; an operator the executor cannot run
    /// ([`Error::UnsupportedOperator`]); a file that lacks a parameter of the graph or holds
    /// one the graph does not use, or a shape that contradicts the graph
    /// ([`Error::ParameterLoadMismatch`], naming them).
    ///
    /// ```
    /// use mxgluon::gluon::{Block, SymbolBlock};
    /// use mxgluon::symbol::{FullyConnected, Symbol};
    /// use mxgluon::{nd, Context};
    /// let dir = std::env::temp_dir().join(format!("mxgluon-imports-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let fc = FullyConnected::new(2).name("fc").build(&Symbol::var("data"))?;
    /// fc.save(dir.join("m-symbol.json"))?;
    /// let w = nd::array(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], None)?;
    /// let b = nd::array(&[0.5f32, -0.5], &[2], None)?;
    /// nd::save(dir.join("m-0000.params"), &mxgluon::io::ArrayList::Dict(vec![
    ///     ("arg:fc_weight".into(), w.into()), ("arg:fc_bias".into(), b.into())]))?;
    /// let net = SymbolBlock::imports(dir.join("m-symbol.json"), &["data"],
    ///                                Some(dir.join("m-0000.params")), Context::cpu(0))?;
    /// let y = net.forward(&nd::array(&[1.0f32, 1.0], &[1, 2], None)?)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![3.5, 6.5]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn imports(
        symbol_json: impl AsRef<Path>,
        input_names: &[&str],
        params: Option<impl AsRef<Path>>,
        ctx: impl Into<ContextList>,
    ) -> Result<SymbolBlock> {
        let sym = Symbol::load(symbol_json)?;
        let block = SymbolBlock::new(sym, input_names, None)?;
        if let Some(path) = params {
            block.collect_params()?.load(
                path,
                &LoadParams::new().ctx(ctx).cast_dtype(DTypeSource::Saved),
            )?;
        }
        Ok(block)
    }

    /// The graph.
    pub fn symbol(&self) -> &Symbol {
        self.exec.symbol()
    }

    /// The data inputs' names, in the order [`SymbolBlock::forward_multi`] takes them.
    pub fn input_names(&self) -> &[String] {
        &self.inputs
    }

    /// Sets unknown parameter shapes from the inputs' shapes (deferred initialization).
    fn infer(&self, inputs: &[&NDArray]) -> Result<()> {
        let sym = self.exec.symbol();
        let known: Vec<(&str, &[usize])> = self
            .inputs
            .iter()
            .zip(inputs)
            .map(|(n, a)| (n.as_str(), a.shape()))
            .collect();
        let s = sym.infer_shape(known)?;
        let names = sym
            .list_arguments()
            .into_iter()
            .zip(s.arg_shapes)
            .chain(sym.list_auxiliary_states().into_iter().zip(s.aux_shapes));
        for (name, shape) in names {
            if let (Some(p), Some(shape)) = (self.params().get_param(&name), shape) {
                p.set_shape(&shape)?;
            }
        }
        Ok(())
    }

    /// Runs the graph on several inputs (in [`SymbolBlock::input_names`] order) and returns
    /// all its outputs.
    ///
    /// Errors: a wrong number of inputs ([`Error::InvalidArgument`]); uninitialized
    /// parameters; an input that does not fit the graph ([`Error::NodeFailed`] naming the
    /// node, or a shape-inference error naming it on the first call of a deferred model).
    pub fn forward_multi(&self, inputs: &[NDArray]) -> Result<Vec<NDArray>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::invalid_arg(
                "SymbolBlock::forward",
                format!(
                    "the block takes {} inputs ({}) but {} were given",
                    self.inputs.len(),
                    self.inputs.join(", "),
                    inputs.len()
                ),
            ));
        }
        let refs: Vec<&NDArray> = inputs.iter().collect();
        let Some(first) = inputs.first() else {
            return self.run(&refs, crate::Context::current());
        };
        self.run(&refs, first.context())
    }

    fn run(&self, inputs: &[&NDArray], ctx: crate::Context) -> Result<Vec<NDArray>> {
        let mut values: Vec<NDArray> = Vec::with_capacity(self.bindings.len());
        for b in &self.bindings {
            values.push(match b {
                Binding::Input(k) => inputs[*k].clone(),
                Binding::Param(p) => self.base.param_data(p, ctx, || self.infer(inputs))?,
            });
        }
        self.exec.run(&values)
    }
}

impl Block for SymbolBlock {
    fn base(&self) -> &BlockBase {
        &self.base
    }

    /// Runs the graph on one input; the block must have exactly one data input, and the
    /// first output is returned (see [`SymbolBlock::forward_multi`] for the general case).
    fn forward(&self, x: &NDArray) -> Result<NDArray> {
        let mut out = self.forward_multi(std::slice::from_ref(x))?;
        if out.is_empty() {
            return Err(Error::invalid_arg(
                "SymbolBlock::forward",
                "the graph has no output",
            ));
        }
        Ok(out.swap_remove(0))
    }

    fn describe(&self) -> String {
        format!(
            "SymbolBlock({} -> {})",
            self.inputs.join(", "),
            self.exec.symbol().list_outputs().join(", ")
        )
    }

    /// The graph itself, when `x` is a variable named like the block's only input.
    fn hybrid_symbol(&self, x: &Symbol) -> Result<Symbol> {
        match (self.inputs.as_slice(), x.name()) {
            ([only], Some(n)) if *only == n && x.outputs()[0].node().is_variable() => {
                Ok(self.exec.symbol().clone())
            }
            _ => Err(Error::invalid_arg(
                "SymbolBlock::hybrid_symbol",
                format!(
                    "a SymbolBlock can only be exported on a variable named like its single \
                     input ({})",
                    self.inputs.join(", ")
                ),
            )),
        }
    }

    fn as_dyn(&self) -> &dyn Block {
        self
    }
}

impl std::fmt::Display for SymbolBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// An operator node named `name` (the helper of the layers' `hybrid_symbol`).
pub(crate) fn sym_op(
    op: &str,
    inputs: &[&Symbol],
    attrs: &[(&str, String)],
    name: &str,
) -> Result<Symbol> {
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Symbol::op(op, inputs, &attrs, Some(name))
}

/// The `Activation` a layer with an `activation` option appends (Gluon names its block
/// `<act>_` inside the layer's scope, and the node `fwd`).
pub(crate) fn act_sym(y: Symbol, act: Option<crate::nd::ActType>, prefix: &str) -> Result<Symbol> {
    match act {
        None => Ok(y),
        Some(a) => sym_op(
            "Activation",
            &[&y],
            &[("act_type", a.name().to_string())],
            &format!("{prefix}{}_fwd", a.name()),
        ),
    }
}

/// [`Block::export`]: the graph and the `arg:` / `aux:` parameter file.
pub(crate) fn export_block(block: &dyn Block, path: &Path, epoch: u32) -> Result<()> {
    let sym = block.hybrid_symbol(&Symbol::var("data"))?;
    let args: HashSet<String> = sym.list_arguments().into_iter().collect();
    let aux: HashSet<String> = sym.list_auxiliary_states().into_iter().collect();
    let mut out = Vec::new();
    for (name, p) in block.collect_params()?.items() {
        let key = if args.contains(&name) {
            format!("arg:{name}")
        } else if aux.contains(&name) {
            format!("aux:{name}")
        } else {
            return Err(Error::invalid_arg(
                "Block::export",
                format!(
                    "parameter '{name}' is not used by the block's graph (its variables: {})",
                    sym.list_inputs().join(", ")
                ),
            ));
        };
        out.push((key, Array::Dense(p.reduce()?)));
    }
    let base = path.as_os_str().to_string_lossy().into_owned();
    sym.save(format!("{base}-symbol.json"))?;
    crate::io::params::save(format!("{base}-{epoch:04}.params"), &ArrayList::Dict(out))
}
