//! The global registry of initializer factories and [`create`].

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{Map, Value};

use super::catalogue::{
    Bilinear, ConstValue, Constant, FactorType, LSTMBias, MSRAPrelu, Normal, Num, One, Orthogonal,
    RandType, RndType, Uniform, Xavier, Zero,
};
use super::Initializer;
use crate::error::{Error, Result};

/// A factory: builds an initializer from its JSON kwargs (use [`Kwargs`] to read them).
pub type Factory = Arc<dyn Fn(&Map<String, Value>) -> Result<Arc<dyn Initializer>> + Send + Sync>;

fn registry() -> &'static RwLock<BTreeMap<String, Factory>> {
    static R: OnceLock<RwLock<BTreeMap<String, Factory>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(builtins()))
}

fn arc<I: Initializer + 'static>(i: I) -> Result<Arc<dyn Initializer>> {
    Ok(Arc::new(i))
}

fn builtins() -> BTreeMap<String, Factory> {
    let mut m: BTreeMap<String, Factory> = BTreeMap::new();
    fn put<F>(m: &mut BTreeMap<String, Factory>, names: &[&str], f: F)
    where
        F: Fn(&Map<String, Value>) -> Result<Arc<dyn Initializer>> + Send + Sync + 'static,
    {
        let f: Factory = Arc::new(f);
        for n in names {
            m.insert(n.to_string(), Arc::clone(&f));
        }
    }
    put(&mut m, &["zero", "zeros"], |kw| {
        Kwargs::new("zero", kw, &[])?;
        arc(Zero)
    });
    put(&mut m, &["one", "ones"], |kw| {
        Kwargs::new("one", kw, &[])?;
        arc(One)
    });
    put(&mut m, &["constant"], |kw| {
        let k = Kwargs::new("constant", kw, &["value"])?;
        let v = k
            .get("value")
            .ok_or_else(|| k.err("missing required argument \"value\""))?;
        arc(Constant::from_value(
            ConstValue::from_json(v).map_err(|r| k.err(r))?,
        ))
    });
    put(&mut m, &["uniform"], |kw| {
        let k = Kwargs::new("uniform", kw, &["scale"])?;
        arc(Uniform::new(k.num("scale", Num::Float(0.07))?))
    });
    put(&mut m, &["normal"], |kw| {
        let k = Kwargs::new("normal", kw, &["sigma"])?;
        arc(Normal::new(k.num("sigma", Num::Float(0.01))?))
    });
    put(&mut m, &["xavier"], |kw| {
        let k = Kwargs::new("xavier", kw, &["rnd_type", "factor_type", "magnitude"])?;
        arc(Xavier {
            rnd_type: k.parse("rnd_type", RndType::Uniform)?,
            factor_type: k.parse("factor_type", FactorType::Avg)?,
            magnitude: k.num("magnitude", Num::Int(3))?,
        })
    });
    put(&mut m, &["msraprelu"], |kw| {
        let k = Kwargs::new("msraprelu", kw, &["factor_type", "slope"])?;
        arc(MSRAPrelu {
            factor_type: k.parse("factor_type", FactorType::Avg)?,
            slope: k.num("slope", Num::Float(0.25))?,
        })
    });
    put(&mut m, &["orthogonal"], |kw| {
        let k = Kwargs::new("orthogonal", kw, &["scale", "rand_type"])?;
        arc(Orthogonal {
            scale: k.num("scale", Num::Float(1.414))?,
            rand_type: k.parse("rand_type", RandType::Uniform)?,
        })
    });
    put(&mut m, &["bilinear"], |kw| {
        Kwargs::new("bilinear", kw, &[])?;
        arc(Bilinear)
    });
    put(&mut m, &["lstmbias"], |kw| {
        let k = Kwargs::new("lstmbias", kw, &["forget_bias"])?;
        arc(LSTMBias::new(k.num("forget_bias", Num::Float(1.0))?))
    });
    m
}

/// Registers (or replaces) a factory under `name` (stored lower-cased), so [`create`] can
/// build it from a name or JSON.
///
/// ```
/// use std::sync::Arc;
/// use mxgluon::init::{self, Initializer, Kwargs, Uniform};
/// init::register("tiny_uniform", |kw| {
///     Kwargs::new("tiny_uniform", kw, &[])?; // accepts no arguments
///     Ok(Arc::new(Uniform::new(1e-3)) as Arc<dyn Initializer>)
/// });
/// assert_eq!(init::create("Tiny_Uniform")?.dumps(), r#"["uniform", {"scale": 0.001}]"#);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn register<F>(name: &str, factory: F)
where
    F: Fn(&Map<String, Value>) -> Result<Arc<dyn Initializer>> + Send + Sync + 'static,
{
    let factory: Factory = Arc::new(factory);
    let name = name.to_lowercase();
    let mut r = registry().write().unwrap_or_else(|e| e.into_inner());
    if r.contains_key(&name) {
        log::warn!("initializer {name:?} is already registered; the new factory replaces it");
    }
    r.insert(name, factory);
}

/// Every registered name, sorted.
pub fn registered_names() -> Vec<String> {
    let r = registry().read().unwrap_or_else(|e| e.into_inner());
    r.keys().cloned().collect()
}

/// Creates the initializer registered as `name` (case-insensitive) with JSON `kwargs`.
pub fn create_from_kwargs(name: &str, kwargs: &Map<String, Value>) -> Result<Arc<dyn Initializer>> {
    let lname = name.to_lowercase();
    let f = {
        let r = registry().read().unwrap_or_else(|e| e.into_inner());
        r.get(&lname).cloned()
    };
    match f {
        Some(f) => f(kwargs),
        None => Err(Error::UnknownInitializer {
            name: name.to_string(),
            known: registered_names(),
        }),
    }
}

/// Creates an initializer from MXNet's short name (`"zeros"`, `"xavier"`, case-insensitive) or
/// its JSON forms (`'["constant", {"value": 2.5}]'`, `'{"initializer": "normal", "sigma": 0.1}'`).
///
/// Errors: [`Error::UnknownInitializer`] (listing the registered names) for an unknown name;
/// [`Error::InvalidInitializer`] for malformed JSON or bad kwargs (unknown key, wrong type).
///
/// ```
/// use mxgluon::init::{self, Initializer};
/// assert_eq!(init::create("Zeros")?.dumps(), r#"["zero", {}]"#);
/// let c = init::create(r#"["constant", {"value": 2.5}]"#)?;
/// assert_eq!(c.dumps(), r#"["constant", {"value": 2.5}]"#);
/// let n = init::create(r#"{"initializer": "normal", "sigma": 0.1}"#)?;
/// assert_eq!(n.dumps(), r#"["normal", {"sigma": 0.1}]"#);
/// assert!(init::create("nope").is_err());
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn create(spec: &str) -> Result<Arc<dyn Initializer>> {
    let t = spec.trim();
    let bad = |reason: String| Error::InvalidInitializer {
        spec: spec.to_string(),
        reason,
    };
    let fix = |e: Error| match e {
        Error::InvalidInitializer { reason, .. } => bad(reason),
        e => e,
    };
    if t.starts_with('[') {
        let v: Value = serde_json::from_str(t).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let arr = v
            .as_array()
            .ok_or_else(|| bad("expected [name, {kwargs}]".into()))?;
        let name = arr
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the first element must be the initializer name".into()))?;
        let empty = Map::new();
        let kwargs = match arr.get(1) {
            None => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad("the second element must be a kwargs object".into())),
        };
        if arr.len() > 2 {
            return Err(bad("expected [name, {kwargs}]".into()));
        }
        create_from_kwargs(name, kwargs).map_err(fix)
    } else if t.starts_with('{') {
        let v: Value = serde_json::from_str(t).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let mut m = match v {
            Value::Object(m) => m,
            _ => return Err(bad("expected a JSON object".into())),
        };
        let name = match m.shift_remove("initializer") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(bad("\"initializer\" must be a string".into())),
            None => return Err(bad("missing the \"initializer\" key".into())),
        };
        create_from_kwargs(&name, &m).map_err(fix)
    } else {
        create_from_kwargs(t, &Map::new()).map_err(fix)
    }
}

/// Reads an initializer's JSON kwargs, rejecting unknown keys and wrong types with
/// [`Error::InvalidInitializer`].
pub struct Kwargs<'a> {
    kind: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Kwargs<'a> {
    /// Checks that every key of `map` is in `allowed`.
    pub fn new(kind: &'a str, map: &'a Map<String, Value>, allowed: &[&str]) -> Result<Self> {
        let k = Kwargs { kind, map };
        if let Some(key) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(k.err(format!(
                "unexpected argument {key:?} for {kind}; accepted: [{}]",
                allowed.join(", ")
            )));
        }
        Ok(k)
    }

    /// An [`Error::InvalidInitializer`] about this initializer.
    pub fn err(&self, reason: impl Into<String>) -> Error {
        Error::InvalidInitializer {
            spec: json_of(self.kind, self.map),
            reason: reason.into(),
        }
    }

    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// A numeric argument (keeping whether it was written as an integer), or `default`.
    pub fn num(&self, key: &str, default: Num) -> Result<Num> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => Num::from_json(v)
                .ok_or_else(|| self.err(format!("{key} must be a number, got {v}"))),
        }
    }

    /// A string argument parsed with `FromStr`, or `default`.
    pub fn parse<T: std::str::FromStr<Err = Error>>(&self, key: &str, default: T) -> Result<T> {
        match self.map.get(key) {
            None => Ok(default),
            Some(Value::String(s)) => s.parse().map_err(|e: Error| self.err(e.to_string())),
            Some(v) => Err(self.err(format!("{key} must be a string, got {v}"))),
        }
    }
}

fn json_of(kind: &str, map: &Map<String, Value>) -> String {
    super::json::dumps(&Value::Array(vec![
        Value::String(kind.into()),
        Value::Object(map.clone()),
    ]))
}
