//! [`Mixed`] and [`Load`]: name-dispatching initializers (like MXNet, not [`Initializer`]s).

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use super::{init_by_name, InitSpec, Initializer};
use crate::error::{fmt_shape, Error, Result};
use crate::nd::NDArray;

/// Chooses an initializer by the parameter's name: the first pattern (a regex matched at the
/// start of the name, like Python's `re.match`) wins, and its initializer is applied through
/// the legacy name rules of [`init_by_name`].
///
/// ```
/// use mxgluon::init::{Mixed, One, Zero};
/// use mxgluon::{nd, Context};
/// let m = Mixed::new(&["bias", ".*"], vec![Zero.into(), One.into()])?;
/// let a = nd::full(&[3], 5.0, Context::cpu(0))?;
/// // "fc_bias" doesn't start with "bias": ".*" wins, and One's legacy rule for *bias is 0.
/// m.apply("fc_bias", &a)?;
/// assert_eq!(a.to_vec::<f32>()?, vec![0.0; 3]);
/// m.apply("fc_weight", &a)?;
/// assert_eq!(a.to_vec::<f32>()?, vec![1.0; 3]);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Mixed {
    rules: Vec<(Regex, Arc<dyn Initializer>)>,
}

impl Mixed {
    /// Pairs `patterns[i]` with `initializers[i]` (objects, or names / JSON resolved with
    /// [`create`](super::create)). Errors: different lengths or an invalid regex
    /// ([`Error::InvalidArgument`]), or an unresolvable initializer.
    pub fn new<S: AsRef<str>>(patterns: &[S], initializers: Vec<InitSpec>) -> Result<Mixed> {
        if patterns.len() != initializers.len() {
            return Err(Error::invalid_arg(
                "Mixed",
                format!(
                    "{} patterns but {} initializers; give one initializer per pattern",
                    patterns.len(),
                    initializers.len()
                ),
            ));
        }
        let rules = patterns
            .iter()
            .zip(initializers)
            .map(|(p, i)| {
                let p = p.as_ref();
                let i = i.resolve()?;
                Regex::new(&format!("^(?:{p})"))
                    .map(|r| (r, i))
                    .map_err(|e| Error::invalid_arg("Mixed", format!("invalid pattern {p:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mixed { rules })
    }

    /// Initializes `arr` named `name` with the first matching pattern's initializer.
    /// Errors: no pattern matches ([`Error::InitializerFailed`]), or the initializer's error.
    pub fn apply(&self, name: &str, arr: &NDArray) -> Result<()> {
        match self.rules.iter().find(|(r, _)| r.is_match(name)) {
            Some((_, init)) => init_by_name(init.as_ref(), name, arr),
            None => Err(Error::InitializerFailed {
                init: "mixed".into(),
                name: name.into(),
                shape: arr.shape().to_vec(),
                reason: "the name did not match any pattern; consider adding a \".*\" pattern at the end with a default initializer".into(),
            }),
        }
    }
}

/// Initializes parameters from loaded arrays by name (`arg:` / `aux:` prefixes of the keys are
/// stripped); names not found fall back to `default_init` (legacy name rules) when given.
///
/// ```
/// use std::collections::HashMap;
/// use mxgluon::init::{Load, Zero};
/// use mxgluon::{nd, Context};
/// let mut saved = HashMap::new();
/// saved.insert("arg:fc_weight".to_string(), nd::full(&[2], 3.0, None)?);
/// let l = Load::new(saved, Some(Zero.into()))?;
/// let w = nd::zeros(&[2], None)?;
/// l.apply("fc_weight", &w)?;
/// assert_eq!(w.to_vec::<f32>()?, vec![3.0, 3.0]);
/// assert!(l.apply("fc_weight", &nd::zeros(&[3], None)?).is_err()); // shape mismatch
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Load {
    params: HashMap<String, NDArray>,
    default_init: Option<Arc<dyn Initializer>>,
}

fn strip(name: &str) -> String {
    name.strip_prefix("arg:")
        .or_else(|| name.strip_prefix("aux:"))
        .unwrap_or(name)
        .to_string()
}

impl Load {
    /// From a map name → array. Errors: an unresolvable `default_init` string.
    pub fn new(params: HashMap<String, NDArray>, default_init: Option<InitSpec>) -> Result<Load> {
        Load::from_pairs(params, default_init)
    }

    /// From `(name, array)` pairs (a later duplicate name wins).
    pub fn from_pairs(
        params: impl IntoIterator<Item = (String, NDArray)>,
        default_init: Option<InitSpec>,
    ) -> Result<Load> {
        Ok(Load {
            params: params.into_iter().map(|(k, v)| (strip(&k), v)).collect(),
            default_init: default_init.map(|d| d.resolve()).transpose()?,
        })
    }

    /// Copies the loaded array named `name` into `arr` (shapes must match), or applies the
    /// default initializer. Errors: [`Error::ShapeMismatch`], or [`Error::InitializerFailed`]
    /// when the name is missing and there is no default.
    pub fn apply(&self, name: &str, arr: &NDArray) -> Result<()> {
        match self.params.get(name) {
            Some(src) => {
                if src.shape() != arr.shape() {
                    return Err(Error::ShapeMismatch {
                        op: "Load",
                        lhs: arr.shape().to_vec(),
                        rhs: src.shape().to_vec(),
                        detail: format!(
                            "parameter '{name}' of shape {} cannot be initialized from the loaded array of shape {}",
                            fmt_shape(arr.shape()),
                            fmt_shape(src.shape())
                        ),
                    });
                }
                arr.assign(src)
            }
            None => match &self.default_init {
                Some(d) => init_by_name(d.as_ref(), name, arr),
                None => Err(Error::InitializerFailed {
                    init: "load".into(),
                    name: name.into(),
                    shape: arr.shape().to_vec(),
                    reason:
                        "not found in the loaded parameters and no default initializer was given"
                            .into(),
                }),
            },
        }
    }
}
