//! Initializers: MXNet's catalogue (`mx.init`), creatable from MXNet's names and JSON.
//!
//! Gluon applies an initializer's *weight rule* to every parameter whatever its name (spec
//! §5.6): [`Initializer::init_weight`].

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::nd::NDArray;

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

    /// MXNet's `dumps()`: `["kind", {kwargs}]`.
    fn dumps(&self) -> String {
        serde_json::Value::Array(vec![
            serde_json::Value::String(self.kind()),
            serde_json::Value::Object(self.kwargs()),
        ])
        .to_string()
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

/// Creates an initializer from MXNet's short name (`"zeros"`, `"xavier"`, case-insensitive) or
/// its JSON forms (`'["constant", {"value": 2.5}]'`, `'{"initializer": "normal", "sigma": 0.1}'`).
pub fn create(spec: &str) -> Result<Arc<dyn Initializer>> {
    Err(crate::Error::UnknownInitializer {
        name: spec.to_string(),
        known: vec![],
    })
}

/// The global default initializer, `Uniform(0.07)`.
pub fn default_initializer() -> Arc<dyn Initializer> {
    unimplemented!("being written")
}
