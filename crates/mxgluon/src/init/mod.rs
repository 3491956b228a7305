//! Initializers: MXNet's catalogue (`mx.init`), creatable from MXNet's names and JSON.
//!
//! Gluon applies an initializer's *weight rule* to every parameter whatever its name (spec
//! §5.6): [`Initializer::init_weight`]. The name-based dispatch of MXNet's deprecated string
//! path (`*_bias` → 0, `*_gamma` → 1, ...) is [`init_by_name`]; [`Mixed`] and [`Load`] use it.
//!
//! ```
//! use mxgluon::{init, init::Initializer, nd, Context};
//! let w = nd::zeros(&[64, 32, 3, 3], Context::cpu(0))?;
//! let x = init::create("xavier")?;
//! assert_eq!(x.dumps(), r#"["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]"#);
//! x.init_weight("conv_weight", &w)?;
//! assert!(w.to_vec::<f32>()?.iter().all(|v| v.abs() <= 0.0834));
//! # Ok::<(), mxgluon::Error>(())
//! ```

mod catalogue;
pub mod json;
mod mixed;
mod registry;

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::nd::NDArray;

pub use catalogue::{
    Bilinear, ConstValue, Constant, FactorType, LSTMBias, MSRAPrelu, Normal, Num, One, Orthogonal,
    RandType, RndType, Uniform, Xavier, Zero,
};
pub use mixed::{Load, Mixed};
pub use registry::{create, create_from_kwargs, register, registered_names, Factory, Kwargs};

/// An initializer: fills an array in place.
pub trait Initializer: Send + Sync + fmt::Debug {
    /// The registry name, lower case (`"xavier"`, `"uniform"`, ...): the first element of
    /// [`Initializer::dumps`].
    fn kind(&self) -> String;

    /// The constructor arguments as a JSON object: the second element of
    /// [`Initializer::dumps`].
    fn kwargs(&self) -> serde_json::Map<String, serde_json::Value>;

    /// Fills `arr` (a dense array) by this initializer's weight rule. `name` is only used in
    /// errors and logs.
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()>;

    /// Whether [`Initializer::init_weight`] overwrites every element whatever the array held
    /// before. When true, callers may hand it an array whose contents are unspecified instead
    /// of zeros (saves a pass over memory). Defaults to `false` (the array is zeroed first).
    fn writes_every_element(&self) -> bool {
        false
    }

    /// MXNet's `dumps()`: `["kind", {kwargs}]`, spelled as Python's `json.dumps` spells it
    /// (`", "` and `": "` separators, `0.07`, `1.0`, `3`).
    fn dumps(&self) -> String {
        json::dumps(&serde_json::Value::Array(vec![
            serde_json::Value::String(self.kind()),
            serde_json::Value::Object(self.kwargs()),
        ]))
    }
}

/// An initializer given to a parameter: an object, or a name / JSON string resolved when the
/// parameter is initialized (as MXNet stores `init='zeros'` verbatim).
#[derive(Clone, Debug)]
pub enum InitSpec {
    /// An initializer object.
    Object(Arc<dyn Initializer>),
    /// A registry name (`"zeros"`, `"xavier"`) or a JSON description
    /// (`'["constant", {"value": 2.5}]'`).
    Str(String),
}

impl<I: Initializer + 'static> From<I> for InitSpec {
    fn from(i: I) -> Self {
        InitSpec::Object(Arc::new(i))
    }
}

impl From<Arc<dyn Initializer>> for InitSpec {
    fn from(i: Arc<dyn Initializer>) -> Self {
        InitSpec::Object(i)
    }
}

impl From<&str> for InitSpec {
    fn from(s: &str) -> Self {
        InitSpec::Str(s.to_string())
    }
}

impl From<String> for InitSpec {
    fn from(s: String) -> Self {
        InitSpec::Str(s)
    }
}

impl InitSpec {
    /// Resolves to an initializer object (`Str` goes through [`create`]).
    pub fn resolve(&self) -> Result<Arc<dyn Initializer>> {
        match self {
            InitSpec::Object(o) => Ok(Arc::clone(o)),
            InitSpec::Str(s) => create(s),
        }
    }
}

/// MXNet's `==` on the values a parameter's `init` can hold: two objects are equal when
/// [`equal`] says so (same kind, equal kwargs); two strings when they are the same string; an
/// object never equals a string (Python's `Initializer.__eq__` returns `False` for a non-
/// initializer, so `Zero()` differs from `'zeros'`). Strings are not resolved.
///
/// ```
/// use mxgluon::init::{InitSpec, One, Uniform, Zero};
/// assert_eq!(InitSpec::from(One), InitSpec::from(One));
/// assert_eq!(InitSpec::from(Uniform::default()), InitSpec::from(Uniform::new(0.07)));
/// assert_ne!(InitSpec::from(One), InitSpec::from(Zero));
/// assert_eq!(InitSpec::from("zeros"), InitSpec::from("zeros"));
/// assert_ne!(InitSpec::from(Zero), InitSpec::from("zeros"));
/// ```
impl PartialEq for InitSpec {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (InitSpec::Object(a), InitSpec::Object(b)) => Arc::ptr_eq(a, b) || equal(&**a, &**b),
            (InitSpec::Str(a), InitSpec::Str(b)) => a == b,
            _ => false,
        }
    }
}

/// The global default initializer, `Uniform(0.07)`.
pub fn default_initializer() -> Arc<dyn Initializer> {
    Arc::new(Uniform::default())
}

fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        // Python compares 3 == 3.0 as equal.
        (V::Number(x), V::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// MXNet's `Initializer.__eq__`: same kind and equal kwargs (numbers compare by value, so
/// `Xavier` with magnitude `3` equals one with `3.0`).
///
/// ```
/// use mxgluon::init::{self, Uniform};
/// assert!(init::equal(&Uniform::default(), &Uniform::new(0.07)));
/// assert!(!init::equal(&Uniform::default(), &Uniform::new(0.1)));
/// ```
pub fn equal(a: &dyn Initializer, b: &dyn Initializer) -> bool {
    a.kind() == b.kind()
        && json_eq(
            &serde_json::Value::Object(a.kwargs()),
            &serde_json::Value::Object(b.kwargs()),
        )
}

/// MXNet's legacy (string-name) dispatch of `Initializer.__call__`, checked in this order:
/// `upsampling*` → bilinear; `stn_loc*weight` → 0; `stn_loc*bias` → `[1,0,0,0,1,0]`;
/// `*bias` → 0; `*gamma` → 1; `*beta` → 0; `*weight` → `init.init_weight`; `*moving_mean` → 0;
/// `*moving_var` → 1; `*moving_inv_var` → 0; `*moving_avg` → 0; `*min` → 0; `*max` → 1; any
/// other name → [`Error::InitializerFailed`].
pub fn init_by_name(init: &dyn Initializer, name: &str, arr: &NDArray) -> Result<()> {
    let ends = |s: &str| name.ends_with(s);
    if name.starts_with("upsampling") {
        Bilinear.init_weight(name, arr)
    } else if name.starts_with("stn_loc") && ends("weight") {
        arr.fill(0.0)
    } else if name.starts_with("stn_loc") && ends("bias") {
        if arr.shape().first() != Some(&6) {
            return Err(Error::InitializerFailed {
                init: init.kind(),
                name: name.into(),
                shape: arr.shape().to_vec(),
                reason: "a stn_loc bias must have 6 rows".into(),
            });
        }
        let v = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let row = arr.size() / 6;
        let full: Vec<f64> = v
            .iter()
            .flat_map(|x| std::iter::repeat_n(*x, row))
            .collect();
        let src = NDArray::from_vec(full, arr.shape(), arr.context())?;
        arr.assign(&src)
    } else if ends("bias") || ends("beta") {
        arr.fill(0.0)
    } else if ends("gamma") {
        arr.fill(1.0)
    } else if ends("weight") {
        init.init_weight(name, arr)
    } else if ends("moving_mean") || ends("moving_inv_var") || ends("moving_avg") {
        arr.fill(0.0)
    } else if ends("moving_var") {
        arr.fill(1.0)
    } else if ends("min") {
        arr.fill(0.0)
    } else if ends("max") {
        arr.fill(1.0)
    } else {
        Err(Error::InitializerFailed {
            init: init.kind(),
            name: name.into(),
            shape: arr.shape().to_vec(),
            reason: "unknown initialization pattern; by name, only names ending in \"weight\", \"bias\", \"gamma\" (1.0), \"beta\" (0.0), \"moving_mean\", \"moving_var\", \"min\" or \"max\" can be initialized; give the parameter an explicit initializer".into(),
        })
    }
}
