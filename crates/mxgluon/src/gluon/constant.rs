//! [`Constant`]: a parameter holding a fixed value that never takes gradients (spec §2).

use std::fmt;
use std::ops::Deref;

use serde_json::Value;

use super::parameter::Parameter;
use crate::dtype::GradReq;
use crate::error::{Error, Result};
use crate::init::{InitSpec, Initializer};
use crate::nd::NDArray;

/// The initializer of a [`Constant`]: copies the constant's value into the target.
/// Its `dumps()` is `["constant", {"value": <the value as nested lists>}]`.
#[derive(Debug)]
struct ConstantValue {
    value: NDArray,
}

/// The value of `v` as JSON: integers for integer dtypes, numbers for floats (`null` for
/// non-finite floats, which JSON cannot represent).
fn json_number(v: f64, is_int: bool) -> Value {
    if is_int && v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Nested lists of `values` (row-major) by `shape`, like numpy's `tolist()`.
fn nested(values: &[f64], shape: &[usize], is_int: bool) -> Value {
    match shape.split_first() {
        None => values
            .first()
            .map(|&v| json_number(v, is_int))
            .unwrap_or(Value::Null),
        Some((&n, rest)) => {
            let step: usize = rest.iter().product();
            Value::Array(
                (0..n)
                    .map(|i| {
                        let lo = (i * step).min(values.len());
                        let hi = ((i + 1) * step).min(values.len());
                        nested(&values[lo..hi], rest, is_int)
                    })
                    .collect(),
            )
        }
    }
}

impl Initializer for ConstantValue {
    fn kind(&self) -> String {
        "constant".into()
    }

    fn kwargs(&self) -> serde_json::Map<String, Value> {
        let is_int = !self.value.dtype().is_float();
        let mut m = serde_json::Map::new();
        m.insert(
            "value".into(),
            nested(&self.value.to_f64_vec(), self.value.shape(), is_int),
        );
        m
    }

    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        arr.assign(&self.value)
            .map_err(|e| Error::InitializerFailed {
                init: "constant".into(),
                name: name.to_string(),
                shape: arr.shape().to_vec(),
                reason: e.to_string(),
            })
    }
}

/// A parameter with a fixed value (MXNet's `gluon.Constant`): its initializer fills it with
/// the value, and its `grad_req` is always `null` (setting anything else logs a warning and is
/// ignored). It dereferences to its [`Parameter`].
///
/// A block-level default initializer does not override the value (the constant has its own
/// `init`); an explicit `init` with `force_reinit` does.
///
/// ```
/// use mxgluon::{Constant, Context, GradReq, NDArray};
/// use mxgluon::gluon::InitOptions;
/// let v = NDArray::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], Context::cpu(0))?;
/// let c = Constant::new("const", &v)?;
/// c.initialize(Context::cpu(0))?;
/// assert_eq!(c.data(None)?.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
/// c.set_grad_req(GradReq::Write)?; // ignored, with a warning
/// assert_eq!(c.grad_req(), GradReq::Null);
/// assert_eq!(c.to_string(), "Constant const (shape=(2, 2), dtype=float32)");
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone)]
pub struct Constant {
    param: Parameter,
    value: NDArray,
}

impl Constant {
    /// A constant named `name` holding a copy of `value` (shape and dtype taken from it).
    pub fn new(name: impl Into<String>, value: &NDArray) -> Result<Constant> {
        let value = value.copy_to(value.context())?;
        let param = Parameter::build(name.into(), Some(value.clone()), GradReq::Null)
            .with_shape(value.shape())
            .with_dtype(value.dtype())
            .with_init(InitSpec::from(ConstantValue {
                value: value.clone(),
            }));
        Ok(Constant { param, value })
    }

    /// The constant's value (its own copy, taken at construction).
    pub fn value(&self) -> &NDArray {
        &self.value
    }

    /// The underlying parameter.
    pub fn as_parameter(&self) -> &Parameter {
        &self.param
    }

    /// The underlying parameter, by value (the same parameter, not a copy).
    pub fn into_parameter(self) -> Parameter {
        self.param
    }
}

impl Deref for Constant {
    type Target = Parameter;

    fn deref(&self) -> &Parameter {
        &self.param
    }
}

impl From<Constant> for Parameter {
    fn from(c: Constant) -> Parameter {
        c.param
    }
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.param, f)
    }
}

impl fmt::Debug for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.param, f)
    }
}
