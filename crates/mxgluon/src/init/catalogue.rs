//! The concrete initializers of spec §5.4.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::Initializer;
use crate::error::{Error, Result};
use crate::nd::NDArray;
use crate::random;

/// A numeric constructor argument that remembers whether it was given as an integer, so
/// `dumps()` writes `3` or `3.0` as MXNet (Python) would.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// Given as an integer.
    Int(i64),
    /// Given as a float.
    Float(f64),
}

impl Num {
    /// The value as `f64`.
    pub fn value(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// As JSON (a non-finite float becomes `null`).
    pub fn to_json(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => Value::from(f),
        }
    }

    /// From a JSON number (`None` for anything else).
    pub fn from_json(v: &Value) -> Option<Num> {
        let n = v.as_number()?;
        match n.as_i64() {
            Some(i) => Some(Num::Int(i)),
            None => n.as_f64().map(Num::Float),
        }
    }
}

impl From<f64> for Num {
    fn from(v: f64) -> Self {
        Num::Float(v)
    }
}
impl From<f32> for Num {
    fn from(v: f32) -> Self {
        Num::Float(v as f64)
    }
}
impl From<i32> for Num {
    fn from(v: i32) -> Self {
        Num::Int(v as i64)
    }
}
impl From<i64> for Num {
    fn from(v: i64) -> Self {
        Num::Int(v)
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::json::dumps(&self.to_json()))
    }
}

fn failed(init: &dyn Initializer, name: &str, arr: &NDArray, reason: impl Into<String>) -> Error {
    Error::InitializerFailed {
        init: init.kind(),
        name: name.to_string(),
        shape: arr.shape().to_vec(),
        reason: reason.into(),
    }
}

macro_rules! kwargs {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = Map::new();
        $(m.insert($k.to_string(), $v);)*
        m
    }};
}

// ---------------------------------------------------------------------------- Zero / One

/// Fills with 0 (`"zero"`, alias `"zeros"`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Zero;

impl Initializer for Zero {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "zero".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        Map::new()
    }
    fn init_weight(&self, _name: &str, arr: &NDArray) -> Result<()> {
        arr.fill(0.0)
    }
}

/// Fills with 1 (`"one"`, alias `"ones"`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct One;

impl Initializer for One {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "one".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        Map::new()
    }
    fn init_weight(&self, _name: &str, arr: &NDArray) -> Result<()> {
        arr.fill(1.0)
    }
}

// ---------------------------------------------------------------------------- Constant

/// The value of a [`Constant`]: a scalar or an array (broadcast to the target).
#[derive(Clone, Debug, PartialEq)]
pub enum ConstValue {
    /// One number.
    Scalar(Num),
    /// An array, row-major.
    Array {
        /// Elements.
        data: Vec<Num>,
        /// Shape.
        shape: Vec<usize>,
    },
}

impl ConstValue {
    /// From an array's current values (integers stay integers in `dumps()`).
    pub fn from_ndarray(a: &NDArray) -> ConstValue {
        let int = !a.dtype().is_float();
        let data = a
            .to_f64_vec()
            .into_iter()
            .map(|v| {
                if int {
                    Num::Int(v as i64)
                } else {
                    Num::Float(v)
                }
            })
            .collect();
        ConstValue::Array {
            data,
            shape: a.shape().to_vec(),
        }
    }

    /// From JSON: a number or (nested, rectangular) lists of numbers.
    pub fn from_json(v: &Value) -> std::result::Result<ConstValue, String> {
        if let Some(n) = Num::from_json(v) {
            return Ok(ConstValue::Scalar(n));
        }
        fn shape_of(v: &Value, shape: &mut Vec<usize>) {
            if let Value::Array(a) = v {
                shape.push(a.len());
                if let Some(first) = a.first() {
                    shape_of(first, shape);
                }
            }
        }
        fn flatten(
            v: &Value,
            shape: &[usize],
            out: &mut Vec<Num>,
        ) -> std::result::Result<(), String> {
            match (v, shape.split_first()) {
                (Value::Array(a), Some((n, rest))) if a.len() == *n => {
                    a.iter().try_for_each(|x| flatten(x, rest, out))
                }
                (v, None) => {
                    out.push(Num::from_json(v).ok_or_else(|| format!("{v} is not a number"))?);
                    Ok(())
                }
                _ => Err("the value lists are not rectangular".into()),
            }
        }
        if !v.is_array() {
            return Err(format!("value must be a number or a nested list, got {v}"));
        }
        let mut shape = Vec::new();
        shape_of(v, &mut shape);
        let mut data = Vec::new();
        flatten(v, &shape, &mut data)?;
        Ok(ConstValue::Array { data, shape })
    }

    /// As JSON: a number or nested lists (`tolist()`).
    pub fn to_json(&self) -> Value {
        match self {
            ConstValue::Scalar(n) => n.to_json(),
            ConstValue::Array { data, shape } => {
                fn nest(data: &[Num], shape: &[usize]) -> Value {
                    match shape.split_first() {
                        None => data.first().map(|n| n.to_json()).unwrap_or(Value::Null),
                        Some((n, rest)) => {
                            let step: usize = rest.iter().product();
                            Value::Array(
                                (0..*n)
                                    .map(|i| nest(data.get(i * step..).unwrap_or(&[]), rest))
                                    .collect(),
                            )
                        }
                    }
                }
                nest(data, shape)
            }
        }
    }
}

/// Fills with a constant value: a scalar, or an array broadcast (NumPy rules) to the target.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// The value.
    pub value: ConstValue,
}

impl Constant {
    /// A scalar constant.
    pub fn new(value: impl Into<Num>) -> Constant {
        Constant {
            value: ConstValue::Scalar(value.into()),
        }
    }

    /// A constant with any value.
    pub fn from_value(value: ConstValue) -> Constant {
        Constant { value }
    }

    /// An array constant holding `a`'s current values.
    pub fn from_ndarray(a: &NDArray) -> Constant {
        Constant {
            value: ConstValue::from_ndarray(a),
        }
    }
}

impl Initializer for Constant {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "constant".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!("value" => self.value.to_json())
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        match &self.value {
            ConstValue::Scalar(n) => arr.fill(n.value()),
            ConstValue::Array { data, shape } => {
                let out = arr.shape();
                let bad = || {
                    failed(
                        self,
                        name,
                        arr,
                        format!(
                            "the value of shape {} does not broadcast to it",
                            crate::error::fmt_shape(shape)
                        ),
                    )
                };
                if shape.len() > out.len() {
                    return Err(bad());
                }
                // source strides aligned to the output's trailing axes (0 on broadcast axes)
                let lead = out.len() - shape.len();
                let mut strides = vec![0usize; out.len()];
                let mut s = 1usize;
                for i in (0..shape.len()).rev() {
                    let (d, o) = (shape[i], out[lead + i]);
                    if d != o && d != 1 {
                        return Err(bad());
                    }
                    strides[lead + i] = if d == 1 { 0 } else { s };
                    s *= d;
                }
                let n = arr.size();
                let mut vals = Vec::with_capacity(n);
                let mut idx = vec![0usize; out.len()];
                for _ in 0..n {
                    let src: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
                    vals.push(data.get(src).map(|v| v.value()).unwrap_or(0.0));
                    for ax in (0..out.len()).rev() {
                        idx[ax] += 1;
                        if idx[ax] < out[ax] {
                            break;
                        }
                        idx[ax] = 0;
                    }
                }
                arr.assign(&NDArray::from_vec(vals, out, arr.context())?)
            }
        }
    }
}

// ---------------------------------------------------------------------------- Uniform / Normal

/// I.i.d. U(−scale, scale) (`"uniform"`, default scale 0.07). Float arrays only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Uniform {
    /// Half-width of the interval.
    pub scale: Num,
}

impl Uniform {
    /// `Uniform(scale)`.
    pub fn new(scale: impl Into<Num>) -> Uniform {
        Uniform {
            scale: scale.into(),
        }
    }
}

impl Default for Uniform {
    fn default() -> Self {
        Uniform::new(0.07)
    }
}

impl Initializer for Uniform {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "uniform".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!("scale" => self.scale.to_json())
    }
    fn init_weight(&self, _name: &str, arr: &NDArray) -> Result<()> {
        let s = self.scale.value();
        random::fill_uniform(arr, -s, s)
    }
}

/// I.i.d. N(0, sigma²) (`"normal"`, default sigma 0.01). Float arrays only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normal {
    /// Standard deviation.
    pub sigma: Num,
}

impl Normal {
    /// `Normal(sigma)`.
    pub fn new(sigma: impl Into<Num>) -> Normal {
        Normal {
            sigma: sigma.into(),
        }
    }
}

impl Default for Normal {
    fn default() -> Self {
        Normal::new(0.01)
    }
}

impl Initializer for Normal {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "normal".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!("sigma" => self.sigma.to_json())
    }
    fn init_weight(&self, _name: &str, arr: &NDArray) -> Result<()> {
        random::fill_normal(arr, 0.0, self.sigma.value())
    }
}

// ---------------------------------------------------------------------------- Xavier

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident, $what:expr, { $($(#[$vm:meta])* $v:ident => $s:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),* }
        impl $name {
            /// MXNet's spelling.
            pub fn name(self) -> &'static str { match self { $($name::$v => $s),* } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok($name::$v),)*
                    _ => Err(Error::InvalidEnumValue {
                        what: $what,
                        got: s.to_string(),
                        valid: vec![$($s.to_string()),*],
                    }),
                }
            }
        }
    };
}

str_enum!(
    /// Xavier's distribution: `"uniform"` or `"gaussian"`.
    RndType, "rnd_type", {
        /// U(−scale, scale).
        Uniform => "uniform",
        /// N(0, scale²).
        Gaussian => "gaussian",
    }
);

str_enum!(
    /// Which fan Xavier divides by: `"avg"`, `"in"` or `"out"`.
    FactorType, "factor_type", {
        /// (fan_in + fan_out) / 2.
        Avg => "avg",
        /// fan_in.
        In => "in",
        /// fan_out.
        Out => "out",
    }
);

str_enum!(
    /// Orthogonal's source distribution: `"uniform"` (U(−1, 1)) or `"normal"` (N(0, 1)).
    RandType, "rand_type", {
        /// U(−1, 1).
        Uniform => "uniform",
        /// N(0, 1).
        Normal => "normal",
    }
);

/// Xavier/Glorot initialization (`"xavier"`): with `hw = prod(shape[2..])`,
/// `fan_in = shape[1]·hw`, `fan_out = shape[0]·hw`, `factor` per [`FactorType`] and
/// `scale = sqrt(magnitude / factor)`, draws U(−scale, scale) or N(0, scale²). Needs at least
/// 2 dimensions. Defaults: uniform, avg, magnitude 3 (an integer, as MXNet dumps it).
///
/// ```
/// use mxgluon::init::{FactorType, Initializer, RndType, Xavier};
/// use mxgluon::{nd, Context};
/// let w = nd::zeros(&[64, 32, 3, 3], Context::cpu(0))?;
/// Xavier::default().init_weight("w", &w)?;
/// let bound = (3.0f64 / ((288.0 + 576.0) / 2.0)).sqrt(); // 0.08333…
/// assert!(w.to_vec::<f32>()?.iter().all(|v| (*v as f64).abs() <= bound));
/// let g = Xavier::new(RndType::Gaussian, FactorType::In, 2);
/// assert_eq!(g.dumps(), r#"["xavier", {"rnd_type": "gaussian", "factor_type": "in", "magnitude": 2}]"#);
/// assert!(Xavier::default().init_weight("b", &nd::zeros(&[5], None)?).is_err());
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Xavier {
    /// Distribution.
    pub rnd_type: RndType,
    /// Fan used as the divisor.
    pub factor_type: FactorType,
    /// Magnitude.
    pub magnitude: Num,
}

impl Xavier {
    /// `Xavier(rnd_type, factor_type, magnitude)`.
    pub fn new(rnd_type: RndType, factor_type: FactorType, magnitude: impl Into<Num>) -> Xavier {
        Xavier {
            rnd_type,
            factor_type,
            magnitude: magnitude.into(),
        }
    }

    /// The scale (uniform half-width or normal sigma) for `shape`, or why there is none.
    pub fn scale_for(&self, shape: &[usize]) -> std::result::Result<f64, String> {
        xavier_scale(self.factor_type, self.magnitude.value(), shape)
    }
}

impl Default for Xavier {
    fn default() -> Self {
        Xavier::new(RndType::Uniform, FactorType::Avg, 3)
    }
}

fn xavier_scale(
    factor_type: FactorType,
    magnitude: f64,
    shape: &[usize],
) -> std::result::Result<f64, String> {
    if shape.len() < 2 {
        return Err("Xavier initialization requires at least 2 dimensions".into());
    }
    let hw: f64 = shape[2..].iter().map(|d| *d as f64).product();
    let fan_in = shape[1] as f64 * hw;
    let fan_out = shape[0] as f64 * hw;
    let factor = match factor_type {
        FactorType::Avg => (fan_in + fan_out) / 2.0,
        FactorType::In => fan_in,
        FactorType::Out => fan_out,
    };
    Ok((magnitude / factor).sqrt())
}

fn xavier_fill(
    init: &dyn Initializer,
    rnd: RndType,
    factor_type: FactorType,
    magnitude: f64,
    name: &str,
    arr: &NDArray,
) -> Result<()> {
    let scale = xavier_scale(factor_type, magnitude, arr.shape())
        .map_err(|r| failed(init, name, arr, r))?;
    if arr.size() == 0 {
        return Ok(());
    }
    match rnd {
        RndType::Uniform => random::fill_uniform(arr, -scale, scale),
        RndType::Gaussian => random::fill_normal(arr, 0.0, scale),
    }
}

impl Initializer for Xavier {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "xavier".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!(
            "rnd_type" => Value::from(self.rnd_type.name()),
            "factor_type" => Value::from(self.factor_type.name()),
            "magnitude" => self.magnitude.to_json(),
        )
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        xavier_fill(
            self,
            self.rnd_type,
            self.factor_type,
            self.magnitude.value(),
            name,
            arr,
        )
    }
}

/// He/MSRA initialization for PReLU (`"msraprelu"`): Xavier with gaussian draws and magnitude
/// `2 / (1 + slope²)`. Defaults: avg, slope 0.25.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MSRAPrelu {
    /// Fan used as the divisor.
    pub factor_type: FactorType,
    /// The PReLU slope.
    pub slope: Num,
}

impl MSRAPrelu {
    /// `MSRAPrelu(factor_type, slope)`.
    pub fn new(factor_type: FactorType, slope: impl Into<Num>) -> MSRAPrelu {
        MSRAPrelu {
            factor_type,
            slope: slope.into(),
        }
    }

    /// `2 / (1 + slope²)`.
    pub fn magnitude(&self) -> f64 {
        let s = self.slope.value();
        2.0 / (1.0 + s * s)
    }
}

impl Default for MSRAPrelu {
    fn default() -> Self {
        MSRAPrelu::new(FactorType::Avg, 0.25)
    }
}

impl Initializer for MSRAPrelu {
    fn writes_every_element(&self) -> bool {
        true
    }

    fn kind(&self) -> String {
        "msraprelu".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!(
            "factor_type" => Value::from(self.factor_type.name()),
            "slope" => self.slope.to_json(),
        )
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        xavier_fill(
            self,
            RndType::Gaussian,
            self.factor_type,
            self.magnitude(),
            name,
            arr,
        )
    }
}

// ---------------------------------------------------------------------------- Orthogonal

/// Orthogonal initialization (`"orthogonal"`): with `nout = shape[0]`,
/// `nin = prod(shape[1..])`, draws a (nout, nin) matrix from U(−1, 1) or N(0, 1), takes its
/// thin SVD `u·s·vᵀ` and writes `scale · u` when `u` is (nout, nin) (tall or square), else
/// `scale · vᵀ` (wide): rows (wide) or columns (tall/square) are orthonormal times `scale`.
/// Defaults: scale 1.414, uniform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Orthogonal {
    /// Multiplier of the orthonormal matrix.
    pub scale: Num,
    /// Distribution of the random source matrix.
    pub rand_type: RandType,
}

impl Orthogonal {
    /// `Orthogonal(scale, rand_type)`.
    pub fn new(scale: impl Into<Num>, rand_type: RandType) -> Orthogonal {
        Orthogonal {
            scale: scale.into(),
            rand_type,
        }
    }
}

impl Default for Orthogonal {
    fn default() -> Self {
        Orthogonal::new(1.414, RandType::Uniform)
    }
}

impl Initializer for Orthogonal {
    fn kind(&self) -> String {
        "orthogonal".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!(
            "scale" => self.scale.to_json(),
            "rand_type" => Value::from(self.rand_type.name()),
        )
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        let shape = arr.shape();
        if shape.is_empty() {
            return Err(failed(self, name, arr, "needs at least 1 dimension"));
        }
        if !arr.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: "orthogonal",
                dtype: arr.dtype(),
                hint: "the output type must be float16, bfloat16, float32 or float64".into(),
            });
        }
        let nout = shape[0];
        let nin: usize = shape[1..].iter().product();
        if nout == 0 || nin == 0 {
            return Ok(());
        }
        let mut tmp = vec![0f64; nout * nin];
        match self.rand_type {
            RandType::Uniform => random::uniform_f64_slice(&mut tmp, -1.0, 1.0)?,
            RandType::Normal => random::normal_f64_slice(&mut tmp, 0.0, 1.0)?,
        }
        let m = faer::Mat::<f64>::from_fn(nout, nin, |i, j| tmp[i * nin + j]);
        let svd = m
            .thin_svd()
            .map_err(|e| failed(self, name, arr, format!("SVD did not converge: {e:?}")))?;
        let scale = self.scale.value();
        let mut out = vec![0f64; nout * nin];
        if nin <= nout {
            // u is (nout, min) = (nout, nin)
            let u = svd.U();
            for i in 0..nout {
                for j in 0..nin {
                    out[i * nin + j] = scale * u[(i, j)];
                }
            }
        } else {
            // numpy's v is Vᵀ, (min, nin) = (nout, nin)
            let v = svd.V();
            for i in 0..nout {
                for j in 0..nin {
                    out[i * nin + j] = scale * v[(j, i)];
                }
            }
        }
        arr.assign(&NDArray::from_vec(out, shape, arr.context())?)
    }
}

// ---------------------------------------------------------------------------- Bilinear

/// Bilinear upsampling kernel (`"bilinear"`) for arrays of at least 4 dimensions: with
/// `f = ceil(shape[3] / 2)` and `c = (2f − 1 − f mod 2) / (2f)`, element `i` gets
/// `(1 − |x/f − c|)·(1 − |y/f − c|)` where `x = i mod shape[3]` and
/// `y = (i div shape[3]) mod shape[2]` — the width's `f` and `c` serve both axes, as in
/// MXNet. Values are computed in f64 and rounded through f32 like MXNet's float32 buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bilinear;

impl Initializer for Bilinear {
    fn kind(&self) -> String {
        "bilinear".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        Map::new()
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        let shape = arr.shape();
        if shape.len() < 4 {
            return Err(failed(
                self,
                name,
                arr,
                "bilinear needs at least 4 dimensions",
            ));
        }
        let (w, h) = (shape[3], shape[2]);
        let f = (w as f64 / 2.0).ceil();
        let c = (2.0 * f - 1.0 - f % 2.0) / (2.0 * f);
        let vals: Vec<f64> = (0..arr.size())
            .map(|i| {
                let x = (i % w) as f64;
                let y = ((i / w) % h) as f64;
                ((1.0 - (x / f - c).abs()) * (1.0 - (y / f - c).abs())) as f32 as f64
            })
            .collect();
        arr.assign(&NDArray::from_vec(vals, shape, arr.context())?)
    }
}

// ---------------------------------------------------------------------------- LSTMBias

/// LSTM bias (`"lstmbias"`): zeros, except the forget gate's quarter (rows `h..2h` with
/// `h = shape[0] / 4`, gate order i, f, c, o) set to `forget_bias` (default 1.0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LSTMBias {
    /// The forget gate's bias.
    pub forget_bias: Num,
}

impl LSTMBias {
    /// `LSTMBias(forget_bias)`.
    pub fn new(forget_bias: impl Into<Num>) -> LSTMBias {
        LSTMBias {
            forget_bias: forget_bias.into(),
        }
    }
}

impl Default for LSTMBias {
    fn default() -> Self {
        LSTMBias::new(1.0)
    }
}

impl Initializer for LSTMBias {
    fn kind(&self) -> String {
        "lstmbias".into()
    }
    fn kwargs(&self) -> Map<String, Value> {
        kwargs!("forget_bias" => self.forget_bias.to_json())
    }
    fn init_weight(&self, name: &str, arr: &NDArray) -> Result<()> {
        let rows = *arr
            .shape()
            .first()
            .ok_or_else(|| failed(self, name, arr, "needs at least 1 dimension"))?;
        arr.fill(0.0)?;
        let h = rows / 4;
        arr.slice_axis0(h, 2 * h)?.fill(self.forget_bias.value())
    }
}
