//! Running a symbolic graph on arrays: [`Executor`].
//!
//! A graph is compiled once into a *plan*: a list of steps in execution order, each holding
//! the operator's prepared options (parsed once), the slot numbers of its inputs and of its
//! output, and the slots whose last reader it is. Running the plan fills a vector of slots
//! (one per graph entry), calls the eager `nd` operators — which record themselves for
//! autograd, so gradients flow through an executed graph — and drops every intermediate
//! array as soon as its last consumer has run. A later pass can rewrite the step list
//! (operator fusion) without touching how it runs.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::attr::{parse_bool, parse_float, parse_int, parse_tuple};
use super::ops::{
    BinaryOp, DropoutMode, LeakyActType, OpParams, PoolType as SymPoolType,
    PoolingConvention as SymConvention, ReshapeParam,
};
use super::Symbol;
use crate::autograd;
use crate::error::{Error, Result};
use crate::nd::{
    self, ActType, BatchNormOptions, ConvOptions, LeakyAct, NDArray, PoolOptions, PoolType,
    PoolingConvention,
};

/// The arithmetic of a scalar operator (`_mul_scalar`, ...).
#[derive(Clone, Copy, Debug)]
enum ScalarKind {
    Add,
    Sub,
    RSub,
    Mul,
    Div,
    RDiv,
    Max,
    Min,
}

/// A unary elementwise function of the extra (non-`OpParams`) operators.
#[derive(Clone, Copy, Debug)]
enum Unary {
    Exp,
    Log,
    Sqrt,
    Square,
    Abs,
    Neg,
}

/// One prepared operator: everything parsed and converted at compile time.
#[derive(Clone, Debug)]
enum Kernel {
    FullyConnected {
        units: usize,
        flatten: bool,
    },
    Convolution(ConvOptions),
    BatchNorm {
        opts: BatchNormOptions,
        /// The channel axis as given (negative counts from the end).
        axis: i64,
    },
    Pooling(PoolOptions),
    Activation(ActType),
    LeakyReLU {
        act: LeakyAct,
        slope: f64,
    },
    /// `rrelu`: in inference the slope is the mean of its bounds.
    RRelu {
        slope: f64,
    },
    Flatten,
    Binary {
        op: BinaryOp,
        same_shape: bool,
    },
    Concat {
        dim: i64,
    },
    Dropout {
        p: f64,
        axes: Vec<usize>,
        always: bool,
    },
    Softmax {
        axis: i64,
        temperature: Option<f64>,
        log: bool,
        dtype: Option<crate::DType>,
    },
    /// Softmax over `(N, -1)` (`SoftmaxOutput` without options, `SoftmaxActivation` instance
    /// mode): the output keeps the input's shape.
    SoftmaxFlat,
    Reshape(ReshapeParam),
    Clip {
        a_min: f64,
        a_max: f64,
    },
    Identity,
    StopGradient,
    Scalar(ScalarKind, f64),
    Unary(Unary),
    AddN,
    Reduce {
        mean: bool,
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    Transpose(Vec<usize>),
    /// `Embedding`: rows of the weight picked by the (integer-valued) data.
    Embedding {
        sparse_grad: bool,
    },
    /// `LayerNorm` over `axis` (inputs data, gamma, beta).
    LayerNorm {
        axis: i64,
        eps: f64,
    },
    /// Inference only (made by [`fuse`]): a convolution with the `BatchNorm`, residual
    /// `elemwise_add`, ReLU and max `Pooling` that follow it folded into its epilogue.
    /// Inputs: the convolution's (data, weight, bias unless `no_bias`), then BatchNorm's
    /// gamma, beta, moving mean and moving variance when `bn` is set, then the residual when
    /// `residual`.
    ConvFused {
        conv: ConvOptions,
        /// BatchNorm's `(eps, fix_gamma)`.
        bn: Option<(f64, bool)>,
        residual: bool,
        relu: bool,
        pool: Option<PoolOptions>,
    },
}

/// One step of a plan.
#[derive(Clone, Debug)]
struct Step {
    kernel: Kernel,
    /// Slots read, in the kernel's input order.
    inputs: Vec<usize>,
    /// Slot written (the node's first output).
    output: usize,
    /// Slots whose last reader this step is: released right after it.
    release: Vec<usize>,
    /// Node index in the graph (for error messages).
    node: usize,
}

/// A compiled symbolic graph that runs on [`NDArray`]s (the engine behind
/// [`crate::gluon::SymbolBlock`]).
///
/// The graph's variables — data inputs, weights, auxiliary states alike — are given by name
/// order ([`Executor::variables`]); [`Executor::run`] returns the graph's outputs. Operators
/// run through the recorded `nd` operators, so under [`autograd::record`] gradients reach the
/// variables; `BatchNorm` uses batch statistics and updates the moving statistics in place in
/// training mode ([`autograd::is_training`]), `Dropout` drops only in training mode (unless
/// its `mode` is `always`).
///
/// ```
/// use mxgluon::symbol::{Activation, Executor, FullyConnected, Symbol};
/// use mxgluon::nd::{self, ActType};
/// let x = Symbol::var("x");
/// let fc = FullyConnected::new(2).name("fc").build(&x)?;
/// let out = Activation::new(ActType::Relu).build(&fc)?;
/// let exec = Executor::new(&out)?;
/// assert_eq!(exec.variables(), ["x", "fc_weight", "fc_bias"]);
/// let xv = nd::array(&[1.0f32, -2.0], &[1, 2], None)?;
/// let w = nd::array(&[1.0f32, 0.0, 0.0, 1.0], &[2, 2], None)?;
/// let b = nd::zeros(&[2], None)?;
/// let y = exec.run(&[xv, w, b])?;
/// assert_eq!(y[0].to_vec::<f32>()?, vec![1.0, 0.0]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Executor {
    symbol: Symbol,
    /// Node names (for errors) and operator names, by node index.
    node_names: Vec<String>,
    op_names: Vec<String>,
    /// Unique variable names, in graph order.
    vars: Vec<String>,
    /// For each variable name: the slots its value goes to (one per variable node).
    var_slots: Vec<Vec<usize>>,
    /// Which variables some step actually reads.
    var_used: Vec<bool>,
    steps: Vec<Step>,
    /// The inference plan (operator fusion applied), when fusion changed anything.
    fused: Option<Vec<Step>>,
    num_slots: usize,
    heads: Vec<usize>,
}

fn attr<'a>(node: &'a super::Node, key: &str) -> Option<&'a str> {
    node.attrs().get(key).map(String::as_str)
}

fn attr_float(node: &super::Node, key: &str) -> Result<Option<f64>> {
    match attr(node, key) {
        None => Ok(None),
        Some(s) => parse_float(s)
            .map(Some)
            .ok_or_else(|| bad_attr(node, key, s)),
    }
}

fn bad_attr(node: &super::Node, key: &str, value: &str) -> Error {
    Error::NodeFailed {
        node: node.name().to_string(),
        op: node.op_name().to_string(),
        source: Box::new(Error::invalid_arg(
            "Executor",
            format!("attribute {key} = {value:?} is not valid"),
        )),
    }
}

fn unsupported(node: &super::Node, what: &str) -> Error {
    Error::UnsupportedOperator {
        op: if what.is_empty() {
            node.op_name().to_string()
        } else {
            format!("{} ({what})", node.op_name())
        },
        node: node.name().to_string(),
    }
}

/// The kernel of a node with known parameters.
fn known_kernel(node: &super::Node, p: &OpParams) -> Result<Kernel> {
    Ok(match p {
        OpParams::FullyConnected(f) => Kernel::FullyConnected {
            units: f.num_hidden,
            flatten: f.flatten,
        },
        OpParams::Convolution(c) => {
            if c.layout.channels_last() {
                return Err(unsupported(node, &format!("layout {}", c.layout)));
            }
            Kernel::Convolution(ConvOptions {
                kernel: c.kernel.clone(),
                stride: c.stride.clone(),
                dilate: c.dilate.clone(),
                pad: c.pad.clone(),
                num_filter: c.num_filter,
                num_group: c.num_group,
                no_bias: c.no_bias,
            })
        }
        OpParams::BatchNorm(b) => Kernel::BatchNorm {
            opts: BatchNormOptions {
                axis: 1,
                eps: b.eps,
                momentum: b.momentum,
                fix_gamma: b.fix_gamma,
                use_global_stats: b.use_global_stats,
            },
            axis: b.axis,
        },
        OpParams::Pooling(q) => {
            if q.layout.is_some_and(|l| l.channels_last()) {
                return Err(unsupported(node, "channels-last layout"));
            }
            let pool_type = match q.pool_type {
                SymPoolType::Max => PoolType::Max,
                SymPoolType::Avg => PoolType::Avg,
                SymPoolType::Sum => PoolType::Sum,
                SymPoolType::Lp => return Err(unsupported(node, "pool_type lp")),
            };
            let conv = match q.pooling_convention {
                SymConvention::Valid => PoolingConvention::Valid,
                SymConvention::Full => PoolingConvention::Full,
                SymConvention::Same => PoolingConvention::Same,
            };
            let base = if q.global_pool {
                PoolOptions::global(pool_type)
            } else {
                PoolOptions::new(&q.kernel, pool_type)
                    .stride(&q.stride)
                    .pad(&q.pad)
            };
            Kernel::Pooling(
                base.pooling_convention(conv)
                    .count_include_pad(q.count_include_pad.unwrap_or(true)),
            )
        }
        OpParams::Activation(a) => Kernel::Activation(a.act_type),
        OpParams::LeakyReLU(l) => match l.act_type {
            LeakyActType::Rrelu => Kernel::RRelu {
                slope: (l.lower_bound + l.upper_bound) / 2.0,
            },
            t => Kernel::LeakyReLU {
                act: match t {
                    LeakyActType::Leaky => LeakyAct::Leaky,
                    LeakyActType::Elu => LeakyAct::Elu,
                    LeakyActType::Prelu => LeakyAct::Prelu,
                    LeakyActType::Selu => LeakyAct::Selu,
                    _ => LeakyAct::Gelu,
                },
                slope: l.slope,
            },
        },
        OpParams::Flatten => Kernel::Flatten,
        OpParams::Elemwise(op) => Kernel::Binary {
            op: *op,
            same_shape: true,
        },
        OpParams::Broadcast(op) => Kernel::Binary {
            op: *op,
            same_shape: false,
        },
        OpParams::Concat(c) => Kernel::Concat { dim: c.dim },
        OpParams::Dropout(d) => Kernel::Dropout {
            p: d.p,
            axes: d.axes.clone(),
            always: d.mode == DropoutMode::Always,
        },
        OpParams::Softmax(s) => {
            if s.use_length {
                return Err(unsupported(node, "use_length"));
            }
            Kernel::Softmax {
                axis: s.axis,
                temperature: s.temperature,
                log: false,
                dtype: s.dtype,
            }
        }
        OpParams::SoftmaxOutput(s) => {
            if s.multi_output {
                Kernel::Softmax {
                    axis: 1,
                    temperature: None,
                    log: false,
                    dtype: None,
                }
            } else if s.preserve_shape {
                Kernel::Softmax {
                    axis: -1,
                    temperature: None,
                    log: false,
                    dtype: None,
                }
            } else {
                Kernel::SoftmaxFlat
            }
        }
        OpParams::Reshape(r) => Kernel::Reshape(r.clone()),
        OpParams::Clip(c) => Kernel::Clip {
            a_min: c.a_min,
            a_max: c.a_max,
        },
        _ => return Err(unsupported(node, "")),
    })
}

/// The kernel of an operator `OpParams` does not model, read from its raw attributes.
fn extra_kernel(node: &super::Node) -> Result<Kernel> {
    let op = node.op_name();
    let scalar = |k: ScalarKind| -> Result<Kernel> {
        let v = attr_float(node, "scalar")?.ok_or_else(|| bad_attr(node, "scalar", ""))?;
        Ok(Kernel::Scalar(k, v))
    };
    Ok(match op {
        "_copy" | "identity" | "_npi_copy" => Kernel::Identity,
        "BlockGrad" | "stop_gradient" => Kernel::StopGradient,
        "relu" => Kernel::Activation(ActType::Relu),
        "sigmoid" => Kernel::Activation(ActType::Sigmoid),
        "tanh" => Kernel::Activation(ActType::Tanh),
        "softsign" => Kernel::Activation(ActType::SoftSign),
        "exp" => Kernel::Unary(Unary::Exp),
        "log" => Kernel::Unary(Unary::Log),
        "sqrt" => Kernel::Unary(Unary::Sqrt),
        "square" => Kernel::Unary(Unary::Square),
        "abs" => Kernel::Unary(Unary::Abs),
        "negative" => Kernel::Unary(Unary::Neg),
        "log_softmax" => {
            let axis = match attr(node, "axis") {
                None => -1,
                Some(s) => parse_int(s).ok_or_else(|| bad_attr(node, "axis", s))?,
            };
            if attr(node, "use_length").and_then(parse_bool) == Some(true) {
                return Err(unsupported(node, "use_length"));
            }
            Kernel::Softmax {
                axis,
                temperature: attr_float(node, "temperature")?,
                log: true,
                dtype: None,
            }
        }
        "SoftmaxActivation" => match attr(node, "mode") {
            None | Some("instance") => Kernel::SoftmaxFlat,
            Some("channel") => Kernel::Softmax {
                axis: 1,
                temperature: None,
                log: false,
                dtype: None,
            },
            Some(m) => return Err(bad_attr(node, "mode", m)),
        },
        "_plus_scalar" | "_PlusScalar" => scalar(ScalarKind::Add)?,
        "_minus_scalar" | "_MinusScalar" => scalar(ScalarKind::Sub)?,
        "_rminus_scalar" | "_RMinusScalar" => scalar(ScalarKind::RSub)?,
        "_mul_scalar" | "_MulScalar" => scalar(ScalarKind::Mul)?,
        "_div_scalar" | "_DivScalar" => scalar(ScalarKind::Div)?,
        "_rdiv_scalar" | "_RDivScalar" => scalar(ScalarKind::RDiv)?,
        "_maximum_scalar" | "_MaximumScalar" => scalar(ScalarKind::Max)?,
        "_minimum_scalar" | "_MinimumScalar" => scalar(ScalarKind::Min)?,
        "add_n" | "ElementWiseSum" | "_add_n" => Kernel::AddN,
        "mean" | "sum" | "sum_axis" => {
            if attr(node, "exclude").and_then(parse_bool) == Some(true) {
                return Err(unsupported(node, "exclude"));
            }
            let axes = match attr(node, "axis") {
                None | Some("None") | Some("()") => None,
                Some(s) => Some(
                    parse_tuple(s)
                        .or_else(|| parse_int(s).map(|v| vec![v]))
                        .ok_or_else(|| bad_attr(node, "axis", s))?,
                ),
            };
            Kernel::Reduce {
                mean: op == "mean",
                axes,
                keepdims: attr(node, "keepdims").and_then(parse_bool) == Some(true),
            }
        }
        "Embedding" => Kernel::Embedding {
            sparse_grad: attr(node, "sparse_grad").and_then(parse_bool) == Some(true),
        },
        "LayerNorm" => {
            if attr(node, "output_mean_var").and_then(parse_bool) == Some(true) {
                return Err(unsupported(node, "output_mean_var"));
            }
            let axis = match attr(node, "axis") {
                None => -1,
                Some(s) => parse_int(s).ok_or_else(|| bad_attr(node, "axis", s))?,
            };
            Kernel::LayerNorm {
                axis,
                eps: attr_float(node, "eps")?.unwrap_or(1e-5),
            }
        }
        "transpose" => {
            let axes = match attr(node, "axes") {
                None | Some("()") | Some("None") => Vec::new(),
                Some(s) => parse_tuple(s)
                    .filter(|v| v.iter().all(|&a| a >= 0))
                    .ok_or_else(|| bad_attr(node, "axes", s))?
                    .into_iter()
                    .map(|a| a as usize)
                    .collect(),
            };
            Kernel::Transpose(axes)
        }
        _ => return Err(unsupported(node, "")),
    })
}

/// How many outputs a kernel actually produces (the rest of the node's outputs are hidden
/// ones it does not compute: pooling workspace, dropout mask, batch statistics).
fn produced_outputs(_k: &Kernel) -> usize {
    1
}

impl Executor {
    /// Compiles `symbol` (all its outputs) into a plan.
    ///
    /// Errors: [`Error::UnsupportedOperator`] naming the first node whose operator (or whose
    /// used output, such as `BatchNorm`'s batch mean) the executor cannot run.
    pub fn new(symbol: &Symbol) -> Result<Executor> {
        let g = symbol.graph();
        let nodes = g.nodes();
        let mut var_index: HashMap<String, usize> = HashMap::new();
        let mut vars: Vec<String> = Vec::new();
        let mut var_slots: Vec<Vec<usize>> = Vec::new();
        let mut steps = Vec::new();
        let mut node_names = Vec::with_capacity(nodes.len());
        let mut op_names = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            node_names.push(node.name().to_string());
            op_names.push(node.op_name().to_string());
            let slot = g.entry_id(i, 0);
            let Some(p) = node.params() else {
                let v = *var_index.entry(node.name().to_string()).or_insert_with(|| {
                    vars.push(node.name().to_string());
                    var_slots.push(Vec::new());
                    vars.len() - 1
                });
                var_slots[v].push(slot);
                continue;
            };
            let kernel = match p {
                OpParams::Unknown { .. } => extra_kernel(node)?,
                p => known_kernel(node, p)?,
            };
            let mut inputs: Vec<usize> = g
                .inputs_of(i)
                .iter()
                .map(|&(n, o)| g.entry_id(n, o))
                .collect();
            match (&kernel, p) {
                // The label of SoftmaxOutput is not read in inference.
                (_, OpParams::SoftmaxOutput(_)) => inputs.truncate(1),
                (Kernel::FullyConnected { .. }, OpParams::FullyConnected(f)) if f.no_bias => {
                    inputs.truncate(2)
                }
                _ => {}
            }
            steps.push(Step {
                kernel,
                inputs,
                output: slot,
                release: Vec::new(),
                node: i,
            });
        }
        // Reads of outputs the kernels do not produce are unsupported.
        let produced: HashMap<usize, usize> = steps
            .iter()
            .map(|s| (s.node, produced_outputs(&s.kernel)))
            .collect();
        let check = |n: usize, o: usize, reader: &str| -> Result<()> {
            match produced.get(&n) {
                Some(&k) if o >= k => Err(Error::UnsupportedOperator {
                    op: format!(
                        "{} (output '{}', read by {reader})",
                        nodes[n].op_name(),
                        nodes[n]
                            .params()
                            .map_or("output".into(), |p| p.output_name(o))
                    ),
                    node: nodes[n].name().to_string(),
                }),
                _ => Ok(()),
            }
        };
        for (i, _) in nodes.iter().enumerate() {
            for &(n, o) in g.inputs_of(i) {
                check(n, o, nodes[i].name())?;
            }
        }
        for &(n, o) in g.heads() {
            check(n, o, "the graph's outputs")?;
        }
        let heads: Vec<usize> = g.heads().iter().map(|&(n, o)| g.entry_id(n, o)).collect();
        let num_slots = g.num_entries();
        set_releases(&mut steps, &heads, num_slots);
        let fused = fuse(&steps, &heads, num_slots);
        let mut read = vec![false; num_slots];
        for s in &steps {
            for &x in &s.inputs {
                read[x] = true;
            }
        }
        for &h in &heads {
            read[h] = true;
        }
        let var_used = var_slots
            .iter()
            .map(|slots| slots.iter().any(|&s| read[s]))
            .collect();
        Ok(Executor {
            symbol: symbol.clone(),
            node_names,
            op_names,
            vars,
            var_slots,
            var_used,
            steps,
            fused,
            num_slots,
            heads,
        })
    }

    /// The symbol this executor runs.
    pub fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    /// The graph's variables (unique names, graph order): what [`Executor::run`] takes.
    pub fn variables(&self) -> &[String] {
        &self.vars
    }

    /// Whether variable `i` is read by some operator or is an output (a `SoftmaxOutput`
    /// label, for example, is not).
    pub fn variable_is_used(&self, i: usize) -> bool {
        self.var_used.get(i).copied().unwrap_or(false)
    }

    /// Number of operator steps in the plan.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Number of steps of the inference plan: the plan with every `Convolution → [BatchNorm]
    /// → [elemwise_add residual] → [ReLU]` chain fused into one
    /// [`nd::convolution_fused`] step. [`Executor::run`] takes this plan outside training
    /// mode when autograd is not recording.
    ///
    /// ```
    /// use mxgluon::symbol::{Activation, BatchNorm, Convolution, Executor, Symbol};
    /// use mxgluon::nd::ActType;
    /// let c = Convolution::new([3, 3], 8).pad([1, 1]).no_bias(true).build(&Symbol::var("x"))?;
    /// let y = Activation::new(ActType::Relu).build(&BatchNorm::new().build(&c)?)?;
    /// let exec = Executor::new(&y)?;
    /// assert_eq!((exec.num_steps(), exec.num_inference_steps()), (3, 1));
    /// # Ok::<(), mxgluon::Error>(())
    /// ```
    pub fn num_inference_steps(&self) -> usize {
        self.fused.as_ref().map_or(self.steps.len(), Vec::len)
    }

    /// Runs the graph with `values[i]` for [`Executor::variables`]`[i]` and returns its
    /// outputs in order. Intermediate arrays are released as soon as their last reader has
    /// run.
    ///
    /// Errors: a wrong number of values ([`Error::InvalidArgument`]); any operator failure
    /// as [`Error::NodeFailed`] naming the node (a data input whose shape does not fit the
    /// weights, for instance).
    pub fn run(&self, values: &[NDArray]) -> Result<Vec<NDArray>> {
        let refs: Vec<&NDArray> = values.iter().collect();
        self.run_refs(&refs)
    }

    /// [`Executor::run`] on borrowed values.
    pub fn run_refs(&self, values: &[&NDArray]) -> Result<Vec<NDArray>> {
        if values.len() != self.vars.len() {
            return Err(Error::invalid_arg(
                "Executor::run",
                format!(
                    "the graph has {} variables ({}) but {} values were given",
                    self.vars.len(),
                    self.vars.join(", "),
                    values.len()
                ),
            ));
        }
        let mut slots: Vec<Option<NDArray>> = vec![None; self.num_slots];
        for (v, slots_of) in values.iter().zip(&self.var_slots) {
            for &s in slots_of {
                slots[s] = Some((*v).clone());
            }
        }
        let training = autograd::is_training();
        // The fused plan computes BatchNorm with its moving statistics and records nothing.
        match &self.fused {
            Some(f) if !training && !autograd::is_recording() => {
                if rayon::current_thread_index().is_some() {
                    self.execute(f, slots, false)
                } else {
                    // Run the whole plan on a pool thread: each operator's parallel split then
                    // forks from inside the pool instead of waking this thread after every
                    // operator (measurable at batch 1, where operators last ~1 ms). Nothing
                    // thread-local matters here: the plan records nothing and is not training.
                    rayon::join(|| self.execute(f, slots, false), || ()).0
                }
            }
            _ => self.execute(&self.steps, slots, training),
        }
    }

    /// Runs `plan` on `slots` (the variables filled in) and returns the graph's outputs.
    fn execute(
        &self,
        plan: &[Step],
        mut slots: Vec<Option<NDArray>>,
        training: bool,
    ) -> Result<Vec<NDArray>> {
        let mut args: Vec<NDArray> = Vec::with_capacity(12);
        for step in plan {
            args.clear();
            for &x in &step.inputs {
                // Every input slot is filled: variables above, operator outputs by earlier
                // steps (execution order), and a slot is released only after its last reader.
                match &slots[x] {
                    Some(a) => args.push(a.clone()),
                    None => {
                        return Err(self.fail(
                            step,
                            Error::invalid_arg("Executor::run", "an input was not computed"),
                        ))
                    }
                }
            }
            let y = eval(&step.kernel, &args, training).map_err(|e| self.fail(step, e))?;
            slots[step.output] = Some(y);
            for &r in &step.release {
                slots[r] = None;
            }
        }
        self.heads
            .iter()
            .map(|&h| {
                slots[h].clone().ok_or_else(|| {
                    Error::invalid_arg("Executor::run", "an output was not computed")
                })
            })
            .collect()
    }

    fn fail(&self, step: &Step, e: Error) -> Error {
        match e {
            e @ (Error::UnsupportedOperator { .. } | Error::NodeFailed { .. }) => e,
            e => Error::NodeFailed {
                node: self.node_names[step.node].clone(),
                op: self.op_names[step.node].clone(),
                source: Box::new(e),
            },
        }
    }
}

/// Sets every step's `release` list: the slots whose last reader it is (graph outputs are
/// never released).
fn set_releases(steps: &mut [Step], heads: &[usize], num_slots: usize) {
    let mut last: Vec<Option<usize>> = vec![None; num_slots];
    for (si, s) in steps.iter().enumerate() {
        for &x in &s.inputs {
            last[x] = Some(si);
        }
    }
    for &h in heads {
        last[h] = None;
    }
    for s in steps.iter_mut() {
        s.release.clear();
    }
    for (slot, l) in last.iter().enumerate() {
        if let Some(si) = l {
            steps[*si].release.push(slot);
        }
    }
}

/// The inference plan: each `Convolution` whose output feeds only a channel-axis
/// `BatchNorm`, then (optionally) only an `elemwise_add`, then (optionally) only a ReLU,
/// becomes one [`Kernel::ConvFused`] step placed where the chain's last step was (every
/// input of the chain is computed by then). An intermediate that is also a graph output, or
/// has another reader, ends the chain. `None` when nothing was fused.
fn fuse(steps: &[Step], heads: &[usize], num_slots: usize) -> Option<Vec<Step>> {
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); num_slots];
    for (si, s) in steps.iter().enumerate() {
        for &x in &s.inputs {
            readers[x].push(si);
        }
    }
    let mut is_head = vec![false; num_slots];
    for &h in heads {
        is_head[h] = true;
    }
    let mut absorbed = vec![false; steps.len()];
    // The only step reading `slot`, when exactly one does (once), it is not part of a chain
    // already, and the slot is no output.
    let sole_reader = |slot: usize, absorbed: &[bool]| -> Option<usize> {
        match readers[slot][..] {
            [r] if !is_head[slot] && !absorbed[r] => Some(r),
            _ => None,
        }
    };
    // Fused step by the index of the step it replaces (the chain's last).
    let mut at: HashMap<usize, Step> = HashMap::new();
    for (ci, c) in steps.iter().enumerate() {
        let Kernel::Convolution(conv) = &c.kernel else {
            continue;
        };
        let spatial = conv.kernel.len() as i64;
        let mut inputs = c.inputs.clone();
        // The chain's steps, convolution first.
        let mut chain: SmallVec<[usize; 4]> = smallvec::smallvec![ci];
        let mut last = ci;
        let mut bn = None;
        let mut residual = false;
        let mut relu = false;
        if let Some(r) = sole_reader(steps[last].output, &absorbed) {
            if let Kernel::BatchNorm { opts, axis } = &steps[r].kernel {
                // The channel axis of an (N, C, *spatial) output.
                let channel = *axis == 1 || *axis == -(spatial + 1);
                if channel && steps[r].inputs.len() == 5 && steps[r].inputs[0] == c.output {
                    inputs.extend_from_slice(&steps[r].inputs[1..]);
                    bn = Some((opts.eps, opts.fix_gamma));
                    chain.push(r);
                    last = r;
                }
            }
        }
        if let Some(r) = sole_reader(steps[last].output, &absorbed) {
            let s = &steps[r];
            if let Kernel::Binary {
                op: BinaryOp::Add,
                same_shape: true,
            } = s.kernel
            {
                let out = steps[last].output;
                if let [a, b] = s.inputs[..] {
                    inputs.push(if a == out { b } else { a });
                    residual = true;
                    chain.push(r);
                    last = r;
                }
            }
        }
        if let Some(r) = sole_reader(steps[last].output, &absorbed) {
            if let Kernel::Activation(ActType::Relu) = steps[r].kernel {
                relu = true;
                chain.push(r);
                last = r;
            }
        }
        // A max pooling of the result (a ResNet's stem): pooled from each finished tile.
        let mut pool = None;
        if let Some(r) = sole_reader(steps[last].output, &absorbed) {
            if let Kernel::Pooling(o) = &steps[r].kernel {
                if o.pool_type == PoolType::Max && steps[r].inputs[..] == [steps[last].output] {
                    pool = Some(o.clone());
                    chain.push(r);
                    last = r;
                }
            }
        }
        if chain.len() == 1 {
            continue;
        }
        for &si in &chain {
            absorbed[si] = true;
        }
        at.insert(
            last,
            Step {
                kernel: Kernel::ConvFused {
                    conv: conv.clone(),
                    bn,
                    residual,
                    relu,
                    pool,
                },
                inputs,
                output: steps[last].output,
                release: Vec::new(),
                node: c.node,
            },
        );
    }
    if at.is_empty() {
        return None;
    }
    let mut plan = Vec::with_capacity(steps.len());
    for (si, s) in steps.iter().enumerate() {
        if let Some(f) = at.remove(&si) {
            plan.push(f);
        } else if !absorbed[si] {
            plan.push(s.clone());
        }
    }
    set_releases(&mut plan, heads, num_slots);
    Some(plan)
}

fn norm_axis(axis: i64, ndim: usize, what: &str) -> Result<usize> {
    let a = if axis < 0 { axis + ndim as i64 } else { axis };
    if a < 0 || a >= ndim as i64 {
        return Err(Error::invalid_arg(
            "Executor",
            format!("{what} {axis} is out of range for an input with {ndim} axes"),
        ));
    }
    Ok(a as usize)
}

fn binary(op: BinaryOp, a: &NDArray, b: &NDArray) -> Result<NDArray> {
    match op {
        BinaryOp::Add => nd::add(a, b),
        BinaryOp::Sub => nd::sub(a, b),
        BinaryOp::Mul => nd::mul(a, b),
        BinaryOp::Div => nd::div(a, b),
    }
}

fn softmax_flat(x: &NDArray) -> Result<NDArray> {
    let flat = nd::flatten(x)?;
    nd::softmax(&flat, 1)?.reshape(x.shape())
}

/// Runs one kernel on its inputs.
fn eval(k: &Kernel, a: &[NDArray], training: bool) -> Result<NDArray> {
    let arity = |n: usize| -> Result<()> {
        if a.len() < n {
            return Err(Error::invalid_arg(
                "Executor",
                format!("the operator needs {n} inputs, the node has {}", a.len()),
            ));
        }
        Ok(())
    };
    arity(1)?;
    let x = &a[0];
    match k {
        Kernel::FullyConnected { units, flatten } => {
            arity(2)?;
            nd::fully_connected_with(x, &a[1], a.get(2), *units, *flatten)
        }
        Kernel::Convolution(o) => {
            arity(2)?;
            let bias = if o.no_bias { None } else { a.get(2) };
            nd::convolution(x, &a[1], bias, o)
        }
        Kernel::Embedding { sparse_grad } => {
            arity(2)?;
            nd::embedding_ex(x, &a[1], *sparse_grad)
        }
        Kernel::LayerNorm { axis, eps } => {
            arity(3)?;
            let ax = norm_axis(*axis, x.ndim(), "LayerNorm axis")?;
            nd::layer_norm(x, &a[1], &a[2], ax as isize, *eps)
        }
        Kernel::ConvFused {
            conv,
            bn,
            residual,
            relu,
            pool,
        } => {
            let nc = if conv.no_bias { 2 } else { 3 };
            let nb = if bn.is_some() { 4 } else { 0 };
            arity(nc + nb + usize::from(*residual))?;
            let bias = (!conv.no_bias).then(|| &a[2]);
            let mut epi = match bn {
                Some((eps, fix_gamma)) => nd::ConvEpilogue::batch_norm(
                    &a[nc],
                    &a[nc + 1],
                    &a[nc + 2],
                    &a[nc + 3],
                    *eps,
                    *fix_gamma,
                )?,
                None => nd::ConvEpilogue::new(),
            };
            if *residual {
                epi = epi.residual(a[nc + nb].clone());
            }
            if let Some(o) = pool {
                epi = epi.pool(o.clone());
            }
            nd::convolution_fused(x, &a[1], bias, conv, &epi.relu(*relu))
        }
        Kernel::BatchNorm { opts, axis } => {
            arity(5)?;
            let mut o = *opts;
            o.axis = norm_axis(*axis, x.ndim(), "BatchNorm axis")?;
            nd::batch_norm(x, &a[1], &a[2], &a[3], &a[4], &o, training)
        }
        Kernel::Pooling(o) => nd::pooling(x, o),
        Kernel::Activation(t) => nd::activation(x, *t),
        Kernel::LeakyReLU { act, slope } => {
            let gamma = if matches!(act, LeakyAct::Prelu) {
                arity(2)?;
                Some(&a[1])
            } else {
                None
            };
            nd::leaky_relu(x, *act, *slope, gamma)
        }
        Kernel::RRelu { slope } => {
            if training {
                return Err(Error::invalid_arg(
                    "LeakyReLU",
                    "act_type rrelu runs in inference mode only (its random slopes are not \
                     implemented)",
                ));
            }
            nd::leaky_relu(x, LeakyAct::Leaky, *slope, None)
        }
        Kernel::Flatten => nd::flatten(x),
        Kernel::Binary { op, same_shape } => {
            arity(2)?;
            if *same_shape && x.shape() != a[1].shape() {
                return Err(Error::ShapeMismatch {
                    op: "elemwise",
                    lhs: x.shape().to_vec(),
                    rhs: a[1].shape().to_vec(),
                    detail: "elemwise operators need equal shapes".into(),
                });
            }
            binary(*op, x, &a[1])
        }
        Kernel::Concat { dim } => {
            let d = norm_axis(*dim, x.ndim(), "Concat dim")?;
            let refs: Vec<&NDArray> = a.iter().collect();
            nd::concat(&refs, d)
        }
        Kernel::Dropout { p, axes, always } => {
            if *always && !training {
                let _g = autograd::train_mode();
                nd::dropout_axes(x, *p, axes)
            } else {
                nd::dropout_axes(x, *p, axes)
            }
        }
        Kernel::Softmax {
            axis,
            temperature,
            log,
            dtype,
        } => {
            let x = match dtype {
                Some(d) if *d != x.dtype() => x.astype(*d)?,
                _ => x.clone(),
            };
            let ax = norm_axis(*axis, x.ndim(), "softmax axis")? as isize;
            match (log, temperature) {
                (true, None) => nd::log_softmax(&x, ax),
                (true, Some(t)) => nd::log_softmax(&x.div_scalar(*t)?, ax),
                (false, None) => nd::softmax(&x, ax),
                (false, Some(t)) => nd::softmax_with_temperature(&x, ax, *t),
            }
        }
        Kernel::SoftmaxFlat => softmax_flat(x),
        Kernel::Reshape(p) => {
            let ins: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
            let mut i = [Some(ins)];
            let mut o = [None];
            super::shape::infer_shape(&OpParams::Reshape(p.clone()), &mut i, &mut o).map_err(
                |e| Error::InvalidShape {
                    op: "Reshape",
                    shape: x.shape().to_vec(),
                    reason: e.msg,
                },
            )?;
            let out: Vec<usize> = o[0]
                .as_ref()
                .filter(|d| d.iter().all(|&v| v >= 0))
                .map(|d| d.iter().map(|&v| v as usize).collect())
                .ok_or_else(|| Error::InvalidShape {
                    op: "Reshape",
                    shape: x.shape().to_vec(),
                    reason: format!("cannot infer the target shape {:?}", p.shape),
                })?;
            x.reshape(&out)
        }
        Kernel::Clip { a_min, a_max } => x.clip(*a_min, *a_max),
        Kernel::Identity => Ok(x.clone()),
        Kernel::StopGradient => Ok(x.detach()),
        Kernel::Scalar(kind, v) => match kind {
            ScalarKind::Add => x.add_scalar(*v),
            ScalarKind::Sub => x.sub_scalar(*v),
            ScalarKind::RSub => x.rsub_scalar(*v),
            ScalarKind::Mul => x.mul_scalar(*v),
            ScalarKind::Div => x.div_scalar(*v),
            ScalarKind::RDiv => x.rdiv_scalar(*v),
            ScalarKind::Max => x.maximum_scalar(*v),
            ScalarKind::Min => x.minimum_scalar(*v),
        },
        Kernel::Unary(u) => match u {
            Unary::Exp => x.exp(),
            Unary::Log => x.log(),
            Unary::Sqrt => x.sqrt(),
            Unary::Square => x.square(),
            Unary::Abs => x.abs(),
            Unary::Neg => x.neg(),
        },
        Kernel::AddN => {
            let mut acc = x.clone();
            for b in &a[1..] {
                acc = nd::add(&acc, b)?;
            }
            Ok(acc)
        }
        Kernel::Reduce {
            mean,
            axes,
            keepdims,
        } => {
            let axes: Vec<usize> = match axes {
                None => Vec::new(),
                Some(v) => v
                    .iter()
                    .map(|&ax| norm_axis(ax, x.ndim(), "reduction axis"))
                    .collect::<Result<_>>()?,
            };
            if *mean {
                x.mean_axis(&axes, *keepdims)
            } else {
                x.sum_axis(&axes, *keepdims)
            }
        }
        Kernel::Transpose(axes) => {
            let axes: Vec<usize> = if axes.is_empty() {
                (0..x.ndim()).rev().collect()
            } else {
                axes.clone()
            };
            nd::transpose(x, &axes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intermediates_are_released_after_their_last_reader() -> Result<()> {
        let x = Symbol::var("x");
        let a = Symbol::op("relu", &[], &[], None);
        assert!(
            a.is_err(),
            "relu is not composable: symbols only compose known operators"
        );
        let r1 = Symbol::op("Activation", &[&x], &[("act_type", "relu")], Some("r1"))?;
        let r2 = Symbol::op("Activation", &[&r1], &[("act_type", "tanh")], Some("r2"))?;
        let s = Symbol::op("elemwise_add", &[&r1, &r2], &[], Some("s"))?;
        let e = Executor::new(&s)?;
        assert_eq!(e.num_steps(), 3);
        // r1 is read by r2 and s: released after s (the last step), not after r2.
        assert!(e.steps[1].release.iter().all(|&r| r != e.steps[0].output));
        assert!(e.steps[2].release.contains(&e.steps[0].output));
        assert!(!e.steps[2].release.contains(&e.steps[2].output));
        Ok(())
    }

    use crate::symbol::ops::BinaryOp;
    use crate::symbol::{Activation, BatchNorm, Convolution, Elemwise};

    fn conv(x: &Symbol, name: &str, ch: usize, k: usize, stride: usize) -> Result<Symbol> {
        Convolution::new([k, k], ch)
            .stride([stride, stride])
            .pad([k / 2, k / 2])
            .no_bias(k == 3)
            .name(name)
            .build(x)
    }

    fn bn(x: &Symbol, name: &str) -> Result<Symbol> {
        BatchNorm::new()
            .fix_gamma(false)
            .eps(1e-5)
            .name(name)
            .build(x)
    }

    fn relu(x: &Symbol) -> Result<Symbol> {
        Activation::new(ActType::Relu).build(x)
    }

    fn add(a: &Symbol, b: &Symbol) -> Result<Symbol> {
        Elemwise::new(BinaryOp::Add).build(a, b)
    }

    /// Random values for every variable (`x` is the input), BatchNorm variances positive.
    fn values(e: &Executor, x_shape: &[usize], sym: &Symbol) -> Result<Vec<NDArray>> {
        let known = [("x", x_shape)];
        let shapes = sym.infer_shape(known)?;
        let mut by_name = HashMap::new();
        let names = sym
            .list_arguments()
            .into_iter()
            .zip(shapes.arg_shapes)
            .chain(
                sym.list_auxiliary_states()
                    .into_iter()
                    .zip(shapes.aux_shapes),
            );
        for (n, sh) in names {
            let sh = sh.ok_or_else(|| Error::invalid_arg("values", format!("no shape for {n}")))?;
            by_name.insert(n, sh);
        }
        e.variables()
            .iter()
            .map(|v| {
                let (lo, hi) = if v.ends_with("_var") || v.ends_with("_gamma") {
                    (0.5, 1.5)
                } else {
                    (-1.0, 1.0)
                };
                crate::random::uniform(
                    lo,
                    hi,
                    &by_name[v],
                    crate::DType::Float32,
                    crate::Context::cpu(0),
                )
            })
            .collect()
    }

    /// Runs the inference plan and the unfused plan (autograd recording in predict mode takes
    /// the unfused plan) and checks they agree.
    fn check_fused_matches(sym: &Symbol, x_shape: &[usize], expect_steps: usize) -> Result<()> {
        let e = Executor::new(sym)?;
        assert_eq!(e.num_inference_steps(), expect_steps, "{:?}", e.fused);
        let vals = values(&e, x_shape, sym)?;
        let fused = e.run(&vals)?;
        let plain = {
            let _rec = autograd::record_with(false);
            e.run(&vals)?
        };
        for (f, p) in fused.iter().zip(&plain) {
            assert_eq!(f.shape(), p.shape());
            let (f, p) = (f.to_vec::<f32>()?, p.to_vec::<f32>()?);
            for (a, b) in f.iter().zip(&p) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_residual_block_with_a_downsample_fuses_into_three_convolutions() -> Result<()> {
        let x = Symbol::var("x");
        let y = relu(&bn(&conv(&x, "c0", 8, 3, 2)?, "b0")?)?;
        let y = bn(&conv(&y, "c1", 8, 3, 1)?, "b1")?;
        let skip = bn(&conv(&x, "c2", 8, 1, 2)?, "b2")?;
        let out = relu(&add(&y, &skip)?)?;
        // c0+b0+relu, c1+b1+add+relu, c2+b2
        check_fused_matches(&out, &[2, 4, 9, 9], 3)
    }

    #[test]
    fn an_identity_shortcut_and_a_biased_convolution_fuse() -> Result<()> {
        let x = Symbol::var("x");
        let y = relu(&bn(&conv(&x, "c0", 4, 1, 1)?, "b0")?)?;
        let y = bn(&conv(&y, "c1", 4, 3, 1)?, "b1")?;
        check_fused_matches(&relu(&add(&y, &x)?)?, &[1, 4, 6, 6], 2)?;
        // conv → relu only, and conv → add (no BatchNorm)
        let z = relu(&conv(&x, "c2", 4, 3, 1)?)?;
        check_fused_matches(&z, &[1, 4, 6, 6], 1)?;
        check_fused_matches(&add(&conv(&x, "c3", 4, 1, 1)?, &x)?, &[1, 4, 6, 6], 1)
    }

    #[test]
    fn a_stem_and_its_max_pooling_fuse_into_one_step() -> Result<()> {
        use crate::symbol::ops::PoolType as P;
        use crate::symbol::Pooling;
        let pool = |x: &Symbol, t: P| {
            Pooling::new([3, 3])
                .stride([2, 2])
                .pad([1, 1])
                .pool_type(t)
                .build(x)
        };
        let x = Symbol::var("x");
        // conv 7×7/2 + bn + relu + max pool 3/2/1, then a block: 2 steps.
        let stem = pool(&relu(&bn(&conv(&x, "c0", 32, 7, 2)?, "b0")?)?, P::Max)?;
        let out = relu(&bn(&conv(&stem, "c1", 32, 3, 1)?, "b1")?)?;
        check_fused_matches(&out, &[2, 3, 40, 40], 2)?;
        // A pooling straight after a convolution fuses too; an average pooling does not.
        check_fused_matches(
            &pool(&conv(&x, "c2", 16, 3, 1)?, P::Max)?,
            &[1, 3, 12, 12],
            1,
        )?;
        check_fused_matches(
            &pool(&relu(&conv(&x, "c3", 16, 3, 1)?)?, P::Avg)?,
            &[1, 3, 12, 12],
            2,
        )
    }

    #[test]
    fn intermediates_read_twice_or_returned_end_the_chain() -> Result<()> {
        let x = Symbol::var("x");
        let c = conv(&x, "c0", 4, 3, 1)?;
        let b = bn(&c, "b0")?;
        // The BatchNorm output is read by the relu and by the add: conv+bn fuse, the rest not.
        let out = add(&relu(&b)?, &b)?;
        check_fused_matches(&out, &[1, 4, 5, 5], 3)?;
        // The convolution's output is also a graph output: nothing fuses.
        let grouped = Symbol::group(&[c.clone(), relu(&bn(&c, "b1")?)?])?;
        let e = Executor::new(&grouped)?;
        assert_eq!(e.num_inference_steps(), e.num_steps());
        check_fused_matches(&grouped, &[1, 4, 5, 5], 3)
    }

    #[test]
    fn training_mode_and_recording_take_the_unfused_plan() -> Result<()> {
        let x = Symbol::var("x");
        let out = relu(&bn(&conv(&x, "c0", 4, 3, 1)?, "b0")?)?;
        let e = Executor::new(&out)?;
        let mut vals = values(&e, &[2, 3, 5, 5], &out)?;
        vals[1].attach_grad(crate::GradReq::Write)?;
        let y = {
            let _rec = autograd::record();
            e.run(&vals)?
        };
        // Recorded: backward reaches the weight (the fused step is not recorded).
        y[0].backward()?;
        let g = vals[1]
            .grad()
            .ok_or_else(|| Error::invalid_arg("test", "the weight has no gradient"))?
            .to_vec::<f32>()?;
        assert!(g.iter().any(|v| *v != 0.0));
        Ok(())
    }

    #[test]
    fn embedding_and_layer_norm_nodes_run_like_the_eager_operators() -> Result<()> {
        let json = r#"{"nodes": [
            {"op": "null", "name": "data", "inputs": []},
            {"op": "null", "name": "e_weight", "inputs": []},
            {"op": "Embedding", "name": "e", "attrs": {"input_dim": "5", "output_dim": "4",
             "dtype": "float32", "sparse_grad": "False"}, "inputs": [[0, 0, 0], [1, 0, 0]]},
            {"op": "null", "name": "ln_gamma", "inputs": []},
            {"op": "null", "name": "ln_beta", "inputs": []},
            {"op": "LayerNorm", "name": "ln", "attrs": {"axis": "-1", "eps": "1e-05"},
             "inputs": [[2, 0, 0], [3, 0, 0], [4, 0, 0]]}],
            "arg_nodes": [0, 1, 3, 4], "node_row_ptr": [0, 1, 2, 3, 4, 5, 6],
            "heads": [[5, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}"#;
        let sym = Symbol::load_json(json)?;
        let e = Executor::new(&sym)?;
        assert_eq!(e.variables(), ["data", "e_weight", "ln_gamma", "ln_beta"]);
        let ctx = crate::Context::cpu(0);
        let ids = nd::array(&[3.0f32, 0.0, 4.0], &[3], None)?;
        let w = crate::random::uniform(-1.0, 1.0, &[5, 4], crate::DType::Float32, ctx)?;
        let g = crate::random::uniform(0.5, 1.5, &[4], crate::DType::Float32, ctx)?;
        let b = crate::random::uniform(-0.5, 0.5, &[4], crate::DType::Float32, ctx)?;
        let y = e.run(&[ids.clone(), w.clone(), g.clone(), b.clone()])?;
        let want = nd::layer_norm(&nd::embedding(&ids, &w)?, &g, &b, 1, 1e-5)?;
        assert_eq!(y[0].shape(), &[3, 4]);
        assert_eq!(y[0].to_vec::<f32>()?, want.to_vec::<f32>()?);
        // output_mean_var is not supported and is named
        let bad = json.replace(
            r#""eps": "1e-05"}"#,
            r#""eps": "1e-05", "output_mean_var": "True"}"#,
        );
        let err = Executor::new(&Symbol::load_json(&bad)?).unwrap_err();
        assert!(err.to_string().contains("output_mean_var"), "{err}");
        Ok(())
    }
}
