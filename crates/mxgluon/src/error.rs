//! The one error type of the crate.
//!
//! Every fallible public function returns [`Result<T>`](crate::Result). Variants are typed and
//! carry what a user needs to act: the parameter's name, the contexts, shapes or dtypes
//! involved. The conditions follow MXNet 1.9.1; the wording is ours.

use crate::context::Context;
use crate::dtype::{DType, StorageType};

/// Shorthand for `std::result::Result<T, mxgluon::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Formats a shape the way MXNet prints tuples: `(2, 3)`, `(3,)`, `()`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Formats an optional parameter shape (`None` when unknown).
pub fn fmt_opt_shape(shape: &Option<Vec<usize>>) -> String {
    match shape {
        Some(s) => fmt_shape(s),
        None => "None".to_string(),
    }
}

/// Formats a list of contexts as `[cpu(0), cpu(1)]`.
pub fn fmt_ctx_list(ctxs: &[Context]) -> String {
    let parts: Vec<String> = ctxs.iter().map(|c| c.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// One parameter whose saved value cannot be loaded as is.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadConflict {
    /// A known dimension differs.
    Shape {
        /// Parameter name.
        name: String,
        /// The parameter's shape (0 = unknown).
        expected: Vec<usize>,
        /// The saved shape.
        saved: Vec<usize>,
    },
    /// The dtypes differ and casting was not asked for.
    DType {
        /// Parameter name.
        name: String,
        /// The parameter's dtype.
        expected: DType,
        /// The saved dtype.
        saved: DType,
    },
}

fn brief(names: &[String]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    if q.len() > 7 {
        format!(
            "{}, ..., {}",
            q[..3].join(", "),
            q[q.len() - 4..].join(", ")
        )
    } else {
        q.join(", ")
    }
}

fn fmt_load_mismatch(
    file: &str,
    missing: &[String],
    unexpected: &[String],
    conflicts: &[LoadConflict],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "missing from the file: {} (pass allow_missing to keep their current values)",
            brief(missing)
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "not parameters of the model: {} (pass ignore_extra to skip them; check that the \
             saving and loading models use the same names / prefixes)",
            brief(unexpected)
        ));
    }
    for c in conflicts {
        parts.push(match c {
            LoadConflict::Shape {
                name,
                expected,
                saved,
            } => format!(
                "'{name}' has shape {} but the file holds {}",
                fmt_shape(expected),
                fmt_shape(saved)
            ),
            LoadConflict::DType {
                name,
                expected,
                saved,
            } => format!(
                "'{name}' is {expected} but the file holds {saved} (pass cast_dtype to convert)"
            ),
        });
    }
    format!("cannot load parameters from {file}: {}", parts.join("; "))
}

fn fmt_stale(stale: &[(String, Context)]) -> String {
    let parts: Vec<String> = stale
        .iter()
        .map(|(n, c)| format!("parameter '{n}' on {c}"))
        .collect();
    parts.join(", ")
}

/// Everything that can go wrong in mxgluon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `backward` was called on an array that was not computed, under `autograd::record`, from
    /// an array marked for gradients.
    #[error(
        "cannot differentiate: the head was not computed from a variable while recording; \
         mark inputs with attach_grad (or initialize Parameters with grad_req write/add) and run \
         the forward pass inside autograd::record()"
    )]
    NoGraph,

    /// A block could not infer the unknown shapes of its parameters from its first input, so
    /// their deferred initialization could not complete (they stay deferred).
    #[error("deferred initialization of block '{block}' failed because the parameter shapes cannot be inferred from the input: {reason}")]
    ShapeInferenceFailed {
        /// The block's prefix.
        block: String,
        /// Why inference failed.
        reason: String,
    },

    /// A parameter file does not fit the parameters it is loaded into. Nothing was loaded.
    #[error("{}", fmt_load_mismatch(file, missing, unexpected, conflicts))]
    ParameterLoadMismatch {
        /// The file the parameters came from (or a description of the arrays).
        file: String,
        /// Parameters the file lacks (empty with `allow_missing`).
        missing: Vec<String>,
        /// Names in the file that match no parameter (empty with `ignore_extra`).
        unexpected: Vec<String>,
        /// Per-name shape and dtype conflicts.
        conflicts: Vec<LoadConflict>,
    },

    /// A second backward pass went through a graph whose saved arrays were already released.
    #[error(
        "the recorded graph was already released by a previous backward pass (at operator \
         {op}); pass retain_graph = true to the first backward to differentiate twice"
    )]
    GraphFreed {
        /// The operator at which the released graph was found.
        op: &'static str,
    },

    /// A string did not name any valid value of an enumeration (dtype, storage type, grad_req,
    /// initializer kind, ...).
    #[error("invalid {what} {got:?}; valid values are: {}", valid.join(", "))]
    InvalidEnumValue {
        /// What was being parsed, e.g. `"dtype"`.
        what: &'static str,
        /// The string that was given.
        got: String,
        /// Every accepted spelling.
        valid: Vec<String>,
    },

    /// A numeric type flag read from a file or given by a caller is not one MXNet defines.
    #[error("unknown {what} flag {flag}")]
    InvalidFlag {
        /// What the flag encodes, e.g. `"dtype"`.
        what: &'static str,
        /// The flag value.
        flag: i64,
    },

    /// The shapes of the operands of `op` do not fit together.
    #[error("{op}: shape mismatch between {} and {}{}", fmt_shape(lhs), fmt_shape(rhs), if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Left (or first) operand's shape.
        lhs: Vec<usize>,
        /// Right (or second) operand's shape.
        rhs: Vec<usize>,
        /// Extra explanation, possibly empty.
        detail: String,
    },

    /// A shape was invalid for an operation on its own (wrong rank, zero-size where not allowed,
    /// reshape to a different element count, out-of-range axis ...).
    #[error("{op}: invalid shape {}: {reason}", fmt_shape(shape))]
    InvalidShape {
        /// The operation.
        op: &'static str,
        /// The offending shape.
        shape: Vec<usize>,
        /// Why it is invalid.
        reason: String,
    },

    /// The dtypes of the operands of `op` differ (mxgluon never promotes silently).
    #[error("{op}: dtype mismatch, expected {expected} but got {got}")]
    DTypeMismatch {
        /// The operation.
        op: &'static str,
        /// The dtype required.
        expected: DType,
        /// The dtype found.
        got: DType,
    },

    /// An operation does not support a dtype.
    #[error("{op}: dtype {dtype} is not supported{}", if hint.is_empty() { String::new() } else { format!(" ({hint})") })]
    UnsupportedDType {
        /// The operation.
        op: &'static str,
        /// The dtype given.
        dtype: DType,
        /// What to do instead, possibly empty.
        hint: String,
    },

    /// The operands of `op` live on different contexts; copy one with `copy_to` first.
    #[error("{op}: operands are on different contexts, {lhs} and {rhs}; copy one of them with copy_to() first")]
    ContextMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's context.
        lhs: Context,
        /// Second operand's context.
        rhs: Context,
    },

    /// Memory on this context cannot be allocated (e.g. `gpu(0)` without a GPU backend).
    #[error("cannot allocate on {ctx}: {reason}")]
    DeviceUnavailable {
        /// The context asked for.
        ctx: Context,
        /// Why it is unavailable.
        reason: String,
    },

    /// The storage type of an array does not allow this operation.
    #[error("{op}: storage type {stype} is not supported here")]
    UnsupportedStorage {
        /// The operation.
        op: &'static str,
        /// The storage type.
        stype: StorageType,
    },

    /// Any other invalid argument of an operation.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// An element index is outside the array.
    #[error(
        "index {index:?} is out of bounds for an array of shape {}",
        fmt_shape(shape)
    )]
    IndexOutOfBounds {
        /// The index given.
        index: Vec<usize>,
        /// The array's shape.
        shape: Vec<usize>,
    },

    // ---------------------------------------------------------------- Parameter errors
    /// `data()`/`grad()`/... on a parameter that was never initialized (or whose
    /// initialization failed).
    #[error("parameter '{name}' has not been initialized; call initialize() on it (or on the Block / ParameterDict holding it) first")]
    ParameterNotInitialized {
        /// Parameter name.
        name: String,
    },

    /// The parameter's initialization is deferred until its shape is known.
    #[error("parameter '{name}' has not been initialized yet because its initialization was deferred until its shape is known; run one forward pass (or set its shape / call set_data) before reading it, or give the layer its input size (e.g. in_units) to avoid deferral")]
    DeferredInitialization {
        /// Parameter name.
        name: String,
    },

    /// The parameter has no copy on the requested context.
    #[error(
        "parameter '{name}' was not initialized on context {ctx}; it only lives on {}",
        fmt_ctx_list(available)
    )]
    ParameterNotOnContext {
        /// Parameter name.
        name: String,
        /// Context asked for.
        ctx: Context,
        /// Contexts the parameter lives on.
        available: Vec<Context>,
    },

    /// Gradient access on a parameter whose `grad_req` is `null`.
    #[error("parameter '{name}' has no gradient because its grad_req is 'null'; set grad_req to 'write' or 'add' to get one")]
    GradReqNull {
        /// Parameter name.
        name: String,
    },

    /// The parameter's shape is unknown (or has unknown dimensions) and deferral is not allowed
    /// or could not be completed.
    #[error("cannot initialize parameter '{name}' because its shape {} is not fully known{}", fmt_opt_shape(shape), if *deferred { "; specify the input size (in_units, in_channels, ...) of the layer or set the shape before the first forward" } else { "; give it a complete shape or allow deferred initialization" })]
    UnknownParameterShape {
        /// Parameter name.
        name: String,
        /// Its current shape (`0` marks an unknown dimension).
        shape: Option<Vec<usize>>,
        /// Whether this happened while completing a deferred initialization.
        deferred: bool,
    },

    /// A new shape contradicts the parameter's known dimensions.
    #[error("parameter '{name}': new shape {} is incompatible with its current shape {} (only unknown dimensions, marked 0, may change)", fmt_shape(new), fmt_shape(current))]
    IncompatibleShape {
        /// Parameter name.
        name: String,
        /// The shape that was offered.
        new: Vec<usize>,
        /// The stored shape.
        current: Vec<usize>,
    },

    /// `reset_ctx` (and similar) on a parameter that was never initialized.
    #[error("cannot {action} parameter '{name}' because it has not been initialized")]
    NotInitializedFor {
        /// Parameter name.
        name: String,
        /// What was attempted, e.g. `"reset the context of"`.
        action: &'static str,
    },

    /// A dense accessor was used on a sparse parameter, or a sparse accessor on a dense one.
    #[error(
        "parameter '{name}' has storage type {stype}; use {use_instead}() instead of {called}()"
    )]
    WrongParameterStorage {
        /// Parameter name.
        name: String,
        /// Its storage type.
        stype: StorageType,
        /// The method called.
        called: &'static str,
        /// The method to call instead.
        use_instead: &'static str,
    },

    /// A saved value's dtype differs from the parameter's and casting was not asked for.
    #[error("parameter '{name}' has dtype {expected} but the value to load has dtype {got}; load with cast_dtype = true to convert it")]
    ParameterDTypeMismatch {
        /// Parameter name.
        name: String,
        /// The parameter's dtype.
        expected: DType,
        /// The value's dtype.
        got: DType,
    },

    /// Loading asked for other contexts than those the parameter is (or will be) initialized on.
    #[error("cannot load parameter '{name}' on {} because it is initialized on {}; load on the same contexts or call reset_ctx first", fmt_ctx_list(requested), fmt_ctx_list(initialized))]
    ParameterContextMismatch {
        /// Parameter name.
        name: String,
        /// Contexts asked for.
        requested: Vec<Context>,
        /// Contexts the parameter lives on (or was deferred to).
        initialized: Vec<Context>,
    },

    /// A value given to `set_data` does not fit the parameter.
    #[error("parameter '{name}': {reason}")]
    InvalidParameterValue {
        /// Parameter name.
        name: String,
        /// What is wrong.
        reason: String,
    },

    // ---------------------------------------------------------------- ParameterDict errors
    /// `ParameterDict::get` found an existing parameter whose attribute differs from the one
    /// asked for.
    #[error("cannot retrieve parameter '{name}': the requested {attribute} '{desired}' does not match its stored {attribute} '{stored}'; ask for the stored value (or leave the attribute unset), or use another name")]
    ParameterAttributeMismatch {
        /// Full parameter name.
        name: String,
        /// The attribute, e.g. `"shape"`, `"lr_mult"`.
        attribute: &'static str,
        /// The requested value, as text.
        desired: String,
        /// The stored value, as text.
        stored: String,
    },

    /// Two different parameters would be stored in one `ParameterDict` under the same name.
    #[error("cannot add parameter '{name}': the dict already holds a different parameter with that name; share the parameter itself (e.g. through a shared ParameterDict) or give one of them another name")]
    DuplicateParameter {
        /// Full parameter name.
        name: String,
    },

    /// `ParameterDict::get_constant` without a value for a constant that does not exist.
    #[error("no constant named '{name}'; give a value to create it")]
    ConstantNotFound {
        /// Full constant name.
        name: String,
    },

    /// `ParameterDict::get_constant` with a value named an ordinary parameter.
    #[error("parameter '{name}' already exists but it is not a constant; use another name for the constant")]
    NotAConstant {
        /// Full parameter name.
        name: String,
    },

    /// `ParameterDict::get_constant` with a value different from the stored constant's.
    #[error("constant '{name}' already exists with a different value (stored: shape {}, given: shape {}); pass the same value, no value, or use another name", fmt_shape(stored_shape), fmt_shape(given_shape))]
    ConstantValueMismatch {
        /// Full constant name.
        name: String,
        /// Shape of the stored value.
        stored_shape: Vec<usize>,
        /// Shape of the given value.
        given_shape: Vec<usize>,
    },

    // ---------------------------------------------------------------- symbols
    /// A symbol graph (MXNet's `-symbol.json`) that is not valid JSON or does not describe a
    /// valid graph: an index out of range, a cycle, invalid operator attributes, a wrong
    /// number of inputs.
    #[error("{file}: invalid MXNet symbol JSON at {location}: {reason}")]
    InvalidSymbolJson {
        /// The file's path, or `<string>` for `load_json`.
        file: String,
        /// Where: a JSON path such as `nodes[3].inputs[1]`, or a line and column.
        location: String,
        /// What is wrong.
        reason: String,
    },

    /// Shape or dtype inference over a symbol found contradicting values at an operator, or
    /// an operator it has no rule for.
    #[error("{what} inference failed at operator '{node}' ({op}): {reason}")]
    SymbolInference {
        /// The node's name.
        node: String,
        /// The operator (`null` for a variable).
        op: String,
        /// `"shape"` or `"type"`.
        what: &'static str,
        /// What contradicts what.
        reason: String,
    },

    /// A parameter selection pattern (`ParameterDict::select`) is not a valid regular
    /// expression.
    #[error("invalid parameter selection pattern {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern given.
        pattern: String,
        /// What the regex parser reported.
        reason: String,
    },

    // ---------------------------------------------------------------- initializers
    /// An optimizer name is not registered.
    #[error("optimizer {name:?} is not registered; known optimizers: {}", known.join(", "))]
    UnknownOptimizer {
        /// The name asked for.
        name: String,
        /// Registered names.
        known: Vec<String>,
    },

    /// An optimizer or learning-rate scheduler option is unknown or has an invalid value.
    #[error("invalid option {option:?} for {optimizer}: {reason}")]
    InvalidOptimizerOption {
        /// The optimizer or scheduler.
        optimizer: String,
        /// The option.
        option: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// `Trainer::step` found parameters whose gradient was not written by a backward pass since
    /// the last step.
    #[error(
        "the gradient of {} has not been updated by backward since the last step; this usually \
         means the model used only some of its parameters in this iteration; if that is \
         intended, call step with ignore_stale_grad = true to skip those parameters",
        fmt_stale(stale)
    )]
    StaleGradient {
        /// `(parameter name, context)` of every stale gradient.
        stale: Vec<(String, Context)>,
    },

    /// The parameters given to a Trainer do not live on the same contexts.
    #[error(
        "all parameters of a Trainer must be initialized on the same contexts, but '{name}' is on \
         {} while the parameters before it are on {}",
        fmt_ctx_list(found),
        fmt_ctx_list(expected)
    )]
    TrainerContextMismatch {
        /// The first parameter that differs.
        name: String,
        /// Its contexts.
        found: Vec<Context>,
        /// The contexts of the parameters before it.
        expected: Vec<Context>,
    },

    /// An initializer name is not registered.
    #[error("initializer {name:?} is not registered; known initializers: {}", known.join(", "))]
    UnknownInitializer {
        /// The name asked for.
        name: String,
        /// Registered names.
        known: Vec<String>,
    },

    /// An initializer could not be created from its description (bad JSON, bad kwargs).
    #[error("invalid initializer description {spec:?}: {reason}")]
    InvalidInitializer {
        /// The description.
        spec: String,
        /// What is wrong.
        reason: String,
    },

    /// An initializer cannot fill this array (e.g. Xavier on a vector).
    #[error(
        "initializer {init} cannot initialize '{name}' of shape {}: {reason}",
        fmt_shape(shape)
    )]
    InitializerFailed {
        /// Initializer name.
        init: String,
        /// Name of the array / parameter.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Why.
        reason: String,
    },

    // ---------------------------------------------------------------- sparse arrays
    /// The parts given for a sparse array do not describe a valid array (indices unsorted,
    /// duplicated or out of range, `indptr` not monotone, lengths that disagree ...).
    #[error("invalid {stype} array: {part} {reason}")]
    InvalidSparse {
        /// The storage type being built.
        stype: StorageType,
        /// Which part is wrong: `"indices"`, `"indptr"`, `"values"`, `"shape"`.
        part: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    // ---------------------------------------------------------------- I/O
    /// Bytes that do not follow a file format: a truncated, corrupted or hostile file. Readers
    /// check every count and length against the bytes that remain before allocating, so such
    /// input ends here instead of in a crash or a huge allocation.
    #[error("{file}: invalid {format} data at byte {offset}: expected {expected}, found {found}")]
    InvalidFile {
        /// The file's path, or `<bytes>` for an in-memory buffer.
        file: String,
        /// The format being read: `"MXNet .params"`, `"safetensors"`, `"npy"`, `"npz"`.
        format: &'static str,
        /// Byte offset (from the start of the file or buffer) where the problem was found.
        offset: u64,
        /// What the format requires there.
        expected: String,
        /// What was found instead.
        found: String,
    },

    /// A value cannot be written in (or read from) a file format, e.g. a sparse array in
    /// safetensors, or a 0-d array in a legacy (V2) `.params` record.
    #[error("{format}: cannot store {what}{}", if hint.is_empty() { String::new() } else { format!("; {hint}") })]
    UnsupportedByFormat {
        /// The format.
        format: &'static str,
        /// What cannot be stored.
        what: String,
        /// What to do instead, possibly empty.
        hint: String,
    },

    /// A file name whose extension names no format this crate reads or writes.
    #[error("{path}: unknown file format (expected one of the extensions {})", known.join(", "))]
    UnknownFileFormat {
        /// The path given.
        path: String,
        /// The extensions understood, e.g. `".params"`.
        known: Vec<&'static str>,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    // ---------------------------------------------------------------- sparse parameters
    /// A row-sparse parameter operation that goes through the parameter's Trainer (pulling
    /// rows, reducing, saving, moving contexts) on a parameter no Trainer was created with.
    #[error("cannot {action} parameter '{name}': no Trainer was created with it (row_sparse values live in their Trainer; create one first)")]
    NoTrainer {
        /// Parameter name.
        name: String,
        /// What was attempted, e.g. `"get row_sparse data of"`.
        action: &'static str,
    },

    /// A second [`Trainer`](crate::gluon::Trainer) was created over a parameter with sparse
    /// storage, which may belong to one Trainer only (it holds the parameter's value).
    #[error("cannot attach parameter '{name}' to a second Trainer: it already belongs to one, and a {stype} parameter can belong to only one Trainer")]
    TrainerAlreadySet {
        /// Parameter name.
        name: String,
        /// Its storage type.
        stype: StorageType,
    },

    // ---------------------------------------------------------------- symbolic graphs
    /// A symbolic graph holds an operator (or an operator output) that the executor of
    /// [`crate::symbol::Executor`] / `SymbolBlock` cannot run.
    #[error("operator {op} of node '{node}' is not supported by the mxgluon executor")]
    UnsupportedOperator {
        /// The operator's name as the graph spells it.
        op: String,
        /// The node using it.
        node: String,
    },

    /// An operator node of a symbolic graph failed while running (typically an input whose
    /// shape does not fit the graph's parameters).
    #[error("node '{node}' (operator {op}) failed: {source}")]
    NodeFailed {
        /// The node's name.
        node: String,
        /// The operator.
        op: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid_arg(op: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }

    /// The parameter name carried by a parameter-related error, if any.
    pub fn parameter_name(&self) -> Option<&str> {
        match self {
            Error::ParameterNotInitialized { name }
            | Error::DeferredInitialization { name }
            | Error::ParameterNotOnContext { name, .. }
            | Error::GradReqNull { name }
            | Error::UnknownParameterShape { name, .. }
            | Error::IncompatibleShape { name, .. }
            | Error::NotInitializedFor { name, .. }
            | Error::WrongParameterStorage { name, .. }
            | Error::ParameterDTypeMismatch { name, .. }
            | Error::ParameterContextMismatch { name, .. }
            | Error::InvalidParameterValue { name, .. }
            | Error::ParameterAttributeMismatch { name, .. }
            | Error::DuplicateParameter { name }
            | Error::ConstantNotFound { name }
            | Error::NotAConstant { name }
            | Error::ConstantValueMismatch { name, .. }
            | Error::NoTrainer { name, .. }
            | Error::TrainerAlreadySet { name, .. } => Some(name),
            Error::InitializerFailed { name, .. } => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_print_like_python_tuples() {
        assert_eq!(fmt_shape(&[]), "()");
        assert_eq!(fmt_shape(&[3]), "(3,)");
        assert_eq!(fmt_shape(&[2, 3]), "(2, 3)");
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let e = Error::ParameterNotOnContext {
            name: "w".into(),
            ctx: Context::cpu(1),
            available: vec![Context::cpu(0)],
        };
        assert_eq!(e.parameter_name(), Some("w"));
        let msg = e.to_string();
        assert!(msg.contains("'w'") && msg.contains("cpu(1)") && msg.contains("[cpu(0)]"));
    }
}
