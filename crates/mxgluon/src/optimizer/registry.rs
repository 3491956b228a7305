//! Creating optimizers by name, from keyword options or from JSON.

use std::fmt;

use indexmap::IndexMap;
use serde_json::Value;

use super::lr_scheduler::{self, LrScheduler};
use super::{
    AdaDelta, AdaGrad, Adam, AdamW, Adamax, Ftrl, Lamb, Lars, Nadam, Nag, Optimizer,
    OptimizerParams, RmsProp, Sgd, Signum,
};
use crate::error::{Error, Result};

/// The registered names, sorted.
const NAMES: [&str; 13] = [
    "adadelta", "adagrad", "adam", "adamax", "adamw", "ftrl", "lamb", "lars", "nadam", "nag",
    "rmsprop", "sgd", "signum",
];

/// The names [`create`] accepts (lower case, sorted).
///
/// ```
/// assert!(mxgluon::optimizer::registered().contains(&"adam"));
/// ```
pub fn registered() -> Vec<&'static str> {
    NAMES.to_vec()
}

/// The value of one option.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// Python's `None`: "not set" (for options such as `clip_gradient` or `lower_bound`).
    None,
    /// A flag such as `centered` or `lazy_update`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// Text; numbers and flags given as text are converted when read.
    Str(String),
}

impl From<f64> for OptionValue {
    fn from(v: f64) -> Self {
        OptionValue::Number(v)
    }
}
impl From<bool> for OptionValue {
    fn from(v: bool) -> Self {
        OptionValue::Bool(v)
    }
}
impl From<&str> for OptionValue {
    fn from(v: &str) -> Self {
        OptionValue::Str(v.to_string())
    }
}
impl From<Option<f64>> for OptionValue {
    fn from(v: Option<f64>) -> Self {
        v.map_or(OptionValue::None, OptionValue::Number)
    }
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::None => write!(f, "None"),
            OptionValue::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            OptionValue::Number(x) => write!(f, "{x}"),
            OptionValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Options for [`create`], by MXNet's keyword names: the shared ones (`learning_rate`, `wd`,
/// `rescale_grad`, `clip_gradient`, `multi_precision`, `begin_num_update`, and a boxed
/// learning-rate schedule) and the optimizer's own (`momentum`, `beta1`, `centered`, ...).
/// Setting a key again replaces its value.
///
/// ```
/// use mxgluon::optimizer::{self, FactorScheduler, OptimizerOptions};
/// let opts = OptimizerOptions::new()
///     .set("learning_rate", 0.1)
///     .set_bool("centered", true)
///     .set("clip_gradient", 5.0)
///     .lr_scheduler(Box::new(FactorScheduler::new(100, 0.9)?));
/// let opt = optimizer::create("RMSProp", &opts)?;
/// assert_eq!(opt.state_names(), vec!["n", "g", "delta"]);
/// // The command line's spelling:
/// let opts = OptimizerOptions::parse("learning_rate=0.1, momentum=0.9, lazy_update=False")?;
/// assert_eq!(optimizer::create("sgd", &opts)?.hyper_json()["lazy_update"], false);
/// # Ok::<(), mxgluon::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct OptimizerOptions {
    values: IndexMap<String, OptionValue>,
    lr_scheduler: Option<Box<dyn LrScheduler>>,
}

impl OptimizerOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets a numeric option.
    pub fn set(self, key: &str, value: f64) -> Self {
        self.set_value(key, OptionValue::Number(value))
    }
    /// Sets a flag (`centered`, `lazy_update`, `multi_precision`, ...).
    pub fn set_bool(self, key: &str, value: bool) -> Self {
        self.set_value(key, OptionValue::Bool(value))
    }
    /// Sets an option from text (converted to the option's type by [`create`]).
    pub fn set_str(self, key: &str, value: &str) -> Self {
        self.set_value(key, OptionValue::Str(value.to_string()))
    }
    /// Sets an option to `None` (unset `clip_gradient`, `lower_bound`, ...).
    pub fn set_none(self, key: &str) -> Self {
        self.set_value(key, OptionValue::None)
    }
    /// Sets an option to any value.
    pub fn set_value(mut self, key: &str, value: OptionValue) -> Self {
        self.values.insert(key.to_string(), value);
        self
    }
    /// Sets the learning-rate schedule (MXNet's `lr_scheduler`).
    pub fn lr_scheduler(mut self, scheduler: Box<dyn LrScheduler>) -> Self {
        self.lr_scheduler = Some(scheduler);
        self
    }
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&OptionValue> {
        self.values.get(key)
    }
    /// The options set, in the order first set (the schedule is not among them).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OptionValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// The schedule, if set.
    pub fn scheduler(&self) -> Option<&dyn LrScheduler> {
        self.lr_scheduler.as_deref()
    }

    /// Parses `key=value` pairs separated by commas, such as
    /// `"learning_rate=0.1,momentum=0.9,centered=True,clip_gradient=None"`. Values are
    /// numbers, `True` / `False` (any case), `None`, or text. Whitespace around keys and
    /// values is ignored; an empty string gives no options.
    pub fn parse(text: &str) -> Result<OptimizerOptions> {
        let mut out = OptimizerOptions::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(invalid(
                    "optimizer options",
                    part,
                    "expected key=value (pairs separated by commas)",
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(invalid("optimizer options", part, "the key is empty"));
            }
            if out.values.contains_key(key) {
                return Err(invalid("optimizer options", key, "is given twice"));
            }
            let v = match value.to_ascii_lowercase().as_str() {
                "none" | "null" => OptionValue::None,
                "true" => OptionValue::Bool(true),
                "false" => OptionValue::Bool(false),
                _ => match value.parse::<f64>() {
                    Ok(x) => OptionValue::Number(x),
                    Err(_) => {
                        OptionValue::Str(value.trim_matches(|c| c == '\'' || c == '"').to_string())
                    }
                },
            };
            out.values.insert(key.to_string(), v);
        }
        Ok(out)
    }
}

fn invalid(who: &str, option: &str, reason: impl Into<String>) -> Error {
    Error::InvalidOptimizerOption {
        optimizer: who.to_string(),
        option: option.to_string(),
        reason: reason.into(),
    }
}

/// Reads typed options and remembers which keys the optimizer asked for.
struct Reader<'a> {
    name: &'static str,
    opts: &'a OptimizerOptions,
    asked: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    fn value(&mut self, key: &'static str) -> Option<&'a OptionValue> {
        self.asked.push(key);
        self.opts.values.get(key)
    }

    fn bad(&self, key: &str, what: &str, v: &OptionValue) -> Error {
        invalid(self.name, key, format!("expects {what}, got {v}"))
    }

    fn number_of(&self, key: &str, v: &OptionValue) -> Result<f64> {
        let x = match v {
            OptionValue::Number(x) => *x,
            OptionValue::Str(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| self.bad(key, "a number", v))?,
            _ => return Err(self.bad(key, "a number", v)),
        };
        if x.is_nan() {
            return Err(self.bad(key, "a number", v));
        }
        Ok(x)
    }

    /// A number (default when absent).
    fn num(&mut self, key: &'static str, default: f64) -> Result<f64> {
        match self.value(key) {
            None => Ok(default),
            Some(v) => self.number_of(key, v),
        }
    }

    /// A number or `None`.
    fn opt_num(&mut self, key: &'static str) -> Result<Option<f64>> {
        match self.value(key) {
            None | Some(OptionValue::None) => Ok(None),
            Some(OptionValue::Str(s)) if s.eq_ignore_ascii_case("none") => Ok(None),
            Some(v) => self.number_of(key, v).map(Some),
        }
    }

    /// A flag: a bool, a number (non-zero is true) or `true` / `false` / `1` / `0` as text.
    fn flag(&mut self, key: &'static str, default: bool) -> Result<bool> {
        let v = match self.value(key) {
            None => return Ok(default),
            Some(v) => v,
        };
        match v {
            OptionValue::Bool(b) => Ok(*b),
            OptionValue::Number(x) if !x.is_nan() => Ok(*x != 0.0),
            OptionValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(self.bad(key, "True or False", v)),
            },
            _ => Err(self.bad(key, "True or False", v)),
        }
    }

    /// A non-negative integer count.
    fn count(&mut self, key: &'static str, default: u64) -> Result<u64> {
        let v = match self.value(key) {
            None => return Ok(default),
            Some(v) => v,
        };
        let x = self.number_of(key, v)?;
        if x < 0.0 || x.fract() != 0.0 || x > 9_007_199_254_740_992.0 {
            return Err(self.bad(key, "a non-negative integer", v));
        }
        Ok(x as u64)
    }

    /// Fails on any option the optimizer did not ask for.
    fn finish(&self) -> Result<()> {
        for (key, _) in self.opts.iter() {
            if !self.asked.contains(&key) {
                let mut accepted = self.asked.clone();
                accepted.sort_unstable();
                accepted.dedup();
                let hint = if key == "lr_scheduler" {
                    " (give a schedule with OptimizerOptions::lr_scheduler)"
                } else {
                    ""
                };
                return Err(invalid(
                    self.name,
                    key,
                    format!(
                        "unknown option{hint}; {} accepts: lr_scheduler, {}",
                        self.name,
                        accepted.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads the shared options into `params`, applying MXNet's learning-rate rules:
/// `passed_lr` is what reaches `Optimizer.__init__` (the given `learning_rate`, else the
/// optimizer's own default, which is `None` for SGD, NAG, AdaGrad, AdaDelta and LARS).
/// With neither a rate nor a schedule the rate is 0.01; with both, the schedule's `base_lr`
/// is set to the rate.
fn read_shared(
    r: &mut Reader<'_>,
    params: &mut OptimizerParams,
    class_default_lr: Option<f64>,
) -> Result<()> {
    let given_lr = r.opt_num("learning_rate")?;
    params.wd = r.num("wd", 0.0)?;
    params.rescale_grad = r.num("rescale_grad", 1.0)?;
    params.clip_gradient = r.opt_num("clip_gradient")?;
    params.multi_precision = r.flag("multi_precision", false)?;
    params.begin_num_update = r.count("begin_num_update", 0)?;
    params.num_update = params.begin_num_update;
    let mut sched = r.opts.lr_scheduler.clone();
    if r.name == "ftrl" {
        // MXNet's Ftrl keeps `learning_rate` out of `Optimizer.__init__` and sets it after.
        params.learning_rate = given_lr.unwrap_or(0.1);
    } else {
        let passed = given_lr.or(class_default_lr);
        params.learning_rate = match (sched.as_mut(), passed) {
            (None, None) => 0.01,
            (None, Some(lr)) => lr,
            (Some(s), Some(lr)) => {
                if s.base_lr() != lr {
                    log::warn!(
                        "learning rate from lr_scheduler has been overwritten by learning_rate \
                         in optimizer ({} -> {lr})",
                        s.base_lr()
                    );
                    s.set_base_lr(lr);
                }
                lr
            }
            (Some(s), None) => s.base_lr(),
        };
    }
    params.lr_scheduler = sched;
    Ok(())
}

/// Creates an optimizer by name (case-insensitive) with MXNet's keyword options.
///
/// Every option of MXNet 1.9.1's constructor is accepted under its name (plus AdamW's, see
/// [`AdamW`]); an unknown option or a value of the wrong type is an
/// [`Error::InvalidOptimizerOption`], an unknown name an [`Error::UnknownOptimizer`] listing
/// [`registered`]. The learning rate follows MXNet: without `learning_rate` the optimizer's
/// default applies (0.01 for SGD, 0.001 for Adam, ...), and a schedule given together with a
/// learning rate gets that rate as its `base_lr` — which, as in MXNet, includes the default
/// rates of Adam, AdamW, Adamax, Nadam, RMSProp, Signum and LAMB, but not SGD's, NAG's,
/// AdaGrad's, AdaDelta's, LARS' (whose default is `None`) or FTRL's (never passed on).
///
/// ```
/// use mxgluon::optimizer::{self, OptimizerOptions};
/// let adam = optimizer::create("Adam", &OptimizerOptions::new())?;
/// assert_eq!(adam.params().learning_rate, 0.001);
/// let err = optimizer::create("adam", &OptimizerOptions::new().set("momentum", 0.9));
/// assert!(matches!(err, Err(mxgluon::Error::InvalidOptimizerOption { .. })));
/// assert!(matches!(
///     optimizer::create("sgdd", &OptimizerOptions::new()),
///     Err(mxgluon::Error::UnknownOptimizer { .. })
/// ));
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn create(name: &str, options: &OptimizerOptions) -> Result<Box<dyn Optimizer>> {
    let lname = name.to_ascii_lowercase();
    let Some(&key) = NAMES.iter().find(|n| **n == lname) else {
        return Err(Error::UnknownOptimizer {
            name: name.to_string(),
            known: registered().iter().map(|s| s.to_string()).collect(),
        });
    };
    let mut r = Reader {
        name: key,
        opts: options,
        asked: Vec::new(),
    };
    let (mut opt, default_lr): (Box<dyn Optimizer>, Option<f64>) = match key {
        "sgd" => (
            Box::new(
                Sgd::default()
                    .momentum(r.num("momentum", 0.0)?)
                    .lazy_update(r.flag("lazy_update", true)?),
            ),
            None,
        ),
        "nag" => (
            Box::new(Nag::default().momentum(r.num("momentum", 0.0)?)),
            None,
        ),
        "signum" => (
            Box::new(
                Signum::default()
                    .momentum(r.num("momentum", 0.9)?)
                    .wd_lh(r.num("wd_lh", 0.0)?),
            ),
            Some(0.01),
        ),
        "adam" => (
            Box::new(
                Adam::default()
                    .beta1(r.num("beta1", 0.9)?)
                    .beta2(r.num("beta2", 0.999)?)
                    .epsilon(r.num("epsilon", 1e-8)?)
                    .lazy_update(r.flag("lazy_update", true)?),
            ),
            Some(0.001),
        ),
        "adamw" => (
            Box::new(
                AdamW::default()
                    .beta1(r.num("beta1", 0.9)?)
                    .beta2(r.num("beta2", 0.999)?)
                    .epsilon(r.num("epsilon", 1e-6)?)
                    .correct_bias(r.flag("correct_bias", true)?),
            ),
            Some(0.001),
        ),
        "adamax" => (
            Box::new(
                Adamax::default()
                    .beta1(r.num("beta1", 0.9)?)
                    .beta2(r.num("beta2", 0.999)?),
            ),
            Some(0.002),
        ),
        "nadam" => (
            Box::new(
                Nadam::default()
                    .beta1(r.num("beta1", 0.9)?)
                    .beta2(r.num("beta2", 0.999)?)
                    .epsilon(r.num("epsilon", 1e-8)?)
                    .schedule_decay(r.num("schedule_decay", 0.004)?),
            ),
            Some(0.001),
        ),
        "adagrad" => (Box::new(AdaGrad::default().eps(r.num("eps", 1e-7)?)), None),
        "rmsprop" => (
            Box::new(
                RmsProp::default()
                    .gamma1(r.num("gamma1", 0.9)?)
                    .gamma2(r.num("gamma2", 0.9)?)
                    .epsilon(r.num("epsilon", 1e-8)?)
                    .centered(r.flag("centered", false)?)
                    .clip_weights(r.opt_num("clip_weights")?),
            ),
            Some(0.001),
        ),
        "adadelta" => (
            Box::new(
                AdaDelta::default()
                    .rho(r.num("rho", 0.9)?)
                    .epsilon(r.num("epsilon", 1e-5)?),
            ),
            None,
        ),
        "ftrl" => (
            Box::new(
                Ftrl::default()
                    .lamda1(r.num("lamda1", 0.01)?)
                    .beta(r.num("beta", 1.0)?),
            ),
            None,
        ),
        "lamb" => (
            Box::new(
                Lamb::default()
                    .beta1(r.num("beta1", 0.9)?)
                    .beta2(r.num("beta2", 0.999)?)
                    .epsilon(r.num("epsilon", 1e-6)?)
                    .lower_bound(r.opt_num("lower_bound")?)
                    .upper_bound(r.opt_num("upper_bound")?)
                    .bias_correction(r.flag("bias_correction", true)?),
            ),
            Some(0.001),
        ),
        "lars" => (
            Box::new(
                Lars::default()
                    .momentum(r.num("momentum", 0.0)?)
                    .lazy_update(r.flag("lazy_update", true)?)
                    .eta(r.num("eta", 0.001)?)
                    .eps(r.num("eps", 0.0)?)
                    .momentum_correction(r.flag("momentum_correction", true)?),
            ),
            None,
        ),
        // Unreachable: `key` is one of NAMES, all matched above.
        other => {
            return Err(Error::UnknownOptimizer {
                name: other.to_string(),
                known: registered().iter().map(|s| s.to_string()).collect(),
            })
        }
    };
    read_shared(&mut r, opt.params_mut(), default_lr)?;
    r.finish()?;
    Ok(opt)
}

/// An optimizer's configuration as one JSON object: its own options
/// ([`Optimizer::hyper_json`]) and the shared ones ([`OptimizerParams::options_json`],
/// including the schedule and its progress). [`create_from_json`] with the optimizer's
/// [`Optimizer::name`] rebuilds it (update counts excepted: they belong to the caller, e.g.
/// the Trainer's saved state).
///
/// ```
/// use mxgluon::optimizer::{self, Adam, Optimizer, PolyScheduler};
/// let adam = Adam::new(0.01).beta2(0.99).wd(1e-4).lr_scheduler(Box::new(PolyScheduler::new(100)?));
/// let json = optimizer::config_json(&adam);
/// let back = optimizer::create_from_json(adam.name(), &json)?;
/// assert_eq!(optimizer::config_json(back.as_ref()), json);
/// # Ok::<(), mxgluon::Error>(())
/// ```
pub fn config_json(opt: &dyn Optimizer) -> Value {
    let mut m = opt.hyper_json();
    m.extend(opt.params().options_json());
    Value::Object(m)
}

/// Rebuilds an optimizer from its name and a JSON object of options — typically
/// [`config_json`]'s output, i.e. [`Optimizer::hyper_json`] merged with
/// [`OptimizerParams::options_json`] (what a Trainer saves).
///
/// Keys are [`create`]'s option names; JSON `null` is `None`. An `"lr_scheduler"` entry is
/// read with [`lr_scheduler::from_json`] and installed **as saved** (its `base_lr` and
/// progress are not overwritten by `learning_rate`, unlike in [`create`]). Errors as in
/// [`create`], plus [`Error::InvalidOptimizerOption`] for values that are not JSON
/// numbers, booleans, strings or null.
pub fn create_from_json(name: &str, json: &Value) -> Result<Box<dyn Optimizer>> {
    let lname = name.to_ascii_lowercase();
    let obj = json
        .as_object()
        .ok_or_else(|| invalid(&lname, "options", "the saved options must be a JSON object"))?;
    let mut opts = OptimizerOptions::new();
    let mut sched = None;
    for (k, v) in obj {
        if k == "lr_scheduler" {
            if !v.is_null() {
                sched = Some(lr_scheduler::from_json(v)?);
            }
            continue;
        }
        let value = match v {
            Value::Null => OptionValue::None,
            Value::Bool(b) => OptionValue::Bool(*b),
            Value::Number(n) => match n.as_f64() {
                Some(x) => OptionValue::Number(x),
                None => return Err(invalid(&lname, k, "the number does not fit a float")),
            },
            Value::String(s) => OptionValue::Str(s.clone()),
            _ => {
                return Err(invalid(
                    &lname,
                    k,
                    format!("expects a number, boolean, string or null, got {v}"),
                ))
            }
        };
        opts = opts.set_value(k, value);
    }
    let mut opt = create(name, &opts)?;
    if let Some(s) = sched {
        let params = opt.params_mut();
        if opts.get("learning_rate").is_none() {
            params.learning_rate = s.base_lr();
        }
        params.lr_scheduler = Some(s);
    }
    Ok(opt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::FactorScheduler;

    #[test]
    fn every_registered_name_creates_with_defaults() {
        for name in registered() {
            let opt = create(&name.to_uppercase(), &OptimizerOptions::new()).unwrap();
            assert_eq!(opt.name(), name);
            // hyper_json round-trips through create.
            let back = create_from_json(name, &config_json(opt.as_ref())).unwrap();
            assert_eq!(config_json(back.as_ref()), config_json(opt.as_ref()));
        }
    }

    #[test]
    fn default_learning_rates() {
        let lr = |n: &str| {
            create(n, &OptimizerOptions::new())
                .unwrap()
                .params()
                .learning_rate
        };
        assert_eq!(lr("sgd"), 0.01);
        assert_eq!(lr("adam"), 0.001);
        assert_eq!(lr("adamax"), 0.002);
        assert_eq!(lr("ftrl"), 0.1);
        assert_eq!(lr("rmsprop"), 0.001);
        assert_eq!(lr("lamb"), 0.001);
        assert_eq!(lr("signum"), 0.01);
    }

    #[test]
    fn scheduler_base_lr_rules() {
        let sched = || {
            Box::new(
                FactorScheduler::new(10, 0.5)
                    .unwrap()
                    .with_base_lr(0.5)
                    .unwrap(),
            )
        };
        let base = |n: &str, o: OptimizerOptions| {
            let opt = create(n, &o.lr_scheduler(sched())).unwrap();
            let p = opt.params();
            (p.learning_rate, p.lr_scheduler.as_ref().unwrap().base_lr())
        };
        // SGD without learning_rate keeps the schedule's rate.
        assert_eq!(base("sgd", OptimizerOptions::new()), (0.5, 0.5));
        // With learning_rate it overwrites it.
        assert_eq!(
            base("sgd", OptimizerOptions::new().set("learning_rate", 0.2)),
            (0.2, 0.2)
        );
        // Adam passes its default 0.001 on.
        assert_eq!(base("adam", OptimizerOptions::new()), (0.001, 0.001));
        // FTRL never does.
        assert_eq!(
            base("ftrl", OptimizerOptions::new().set("learning_rate", 0.3)),
            (0.3, 0.5)
        );
    }

    #[test]
    fn bad_options() {
        let e = create("sgd", &OptimizerOptions::new().set("beta1", 0.9)).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidOptimizerOption { option, .. } if option == "beta1"),
            "{e}"
        );
        assert!(e.to_string().contains("momentum"), "{e}");
        let e = create("sgd", &OptimizerOptions::new().set_str("momentum", "fast")).unwrap_err();
        assert!(e.to_string().contains("expects a number"), "{e}");
        let e = create(
            "rmsprop",
            &OptimizerOptions::new().set_str("centered", "maybe"),
        );
        assert!(e.is_err());
        let e = create("sgd", &OptimizerOptions::new().set("begin_num_update", 1.5));
        assert!(e.is_err());
        let e = create("nope", &OptimizerOptions::new()).unwrap_err();
        assert!(e.to_string().contains("adadelta, adagrad"), "{e}");
    }

    #[test]
    fn parse_values() {
        let o = OptimizerOptions::parse(
            " learning_rate = 0.1, centered=true ,clip_gradient=None, gamma1='0.8',",
        )
        .unwrap();
        assert_eq!(o.get("learning_rate"), Some(&OptionValue::Number(0.1)));
        assert_eq!(o.get("centered"), Some(&OptionValue::Bool(true)));
        assert_eq!(o.get("clip_gradient"), Some(&OptionValue::None));
        assert_eq!(o.get("gamma1"), Some(&OptionValue::Str("0.8".into())));
        let opt = create("rmsprop", &o).unwrap();
        assert_eq!(opt.hyper_json()["gamma1"], 0.8);
        assert_eq!(opt.params().clip_gradient, None);
        assert!(OptimizerOptions::parse("momentum").is_err());
        assert!(OptimizerOptions::parse("a=1,a=2").is_err());
        assert!(OptimizerOptions::parse("").unwrap().iter().next().is_none());
    }

    #[test]
    fn from_json_rejects_non_objects_and_arrays() {
        assert!(create_from_json("sgd", &serde_json::json!(3)).is_err());
        assert!(create_from_json("sgd", &serde_json::json!({"momentum": [1]})).is_err());
        let opt = create_from_json("sgd", &serde_json::json!({"momentum": 0.9})).unwrap();
        assert_eq!(opt.state_names(), vec!["momentum"]);
    }
}
