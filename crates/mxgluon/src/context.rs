//! Devices ("contexts") on which arrays live.
//!
//! `cpu(i)` for any `i` is a distinct *logical* device in host memory: arrays on `cpu(0)` and
//! `cpu(1)` are separate buffers, which is how data-parallel code is tested without GPUs.
//! `gpu(i)` is representable (files and parameters can name it) but allocating on it fails with
//! [`crate::Error::DeviceUnavailable`] until a GPU backend exists.
//!
//! A thread has a *current* context, `cpu(0)` unless a [`ContextGuard`] from
//! [`Context::enter`] (MXNet's `with mx.cpu(1):`) is alive.
//!
//! ```
//! use mxgluon::Context;
//! assert_eq!(Context::current(), Context::cpu(0));
//! {
//!     let _guard = Context::cpu(1).enter();
//!     assert_eq!(Context::current(), Context::cpu(1));
//! }
//! assert_eq!(Context::current(), Context::cpu(0));
//! assert_eq!(Context::gpu(2).to_string(), "gpu(2)");
//! ```

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The kind of device, with MXNet's numeric device-type codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceType {
    /// Host memory (`dev_type` 1).
    Cpu,
    /// A CUDA GPU (`dev_type` 2).
    Gpu,
    /// Page-locked host memory (`dev_type` 3); behaves like `cpu` here.
    CpuPinned,
    /// Shared host memory (`dev_type` 5); behaves like `cpu` here.
    CpuShared,
}

impl DeviceType {
    /// MXNet's device-type code (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared).
    pub fn code(self) -> i32 {
        match self {
            DeviceType::Cpu => 1,
            DeviceType::Gpu => 2,
            DeviceType::CpuPinned => 3,
            DeviceType::CpuShared => 5,
        }
    }

    /// The device type for an MXNet code.
    pub fn from_code(code: i32) -> Result<Self> {
        Ok(match code {
            1 => DeviceType::Cpu,
            2 => DeviceType::Gpu,
            3 => DeviceType::CpuPinned,
            5 => DeviceType::CpuShared,
            other => {
                return Err(Error::InvalidFlag {
                    what: "device type",
                    flag: other as i64,
                })
            }
        })
    }

    /// MXNet's name of the device type.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Cpu => "cpu",
            DeviceType::Gpu => "gpu",
            DeviceType::CpuPinned => "cpu_pinned",
            DeviceType::CpuShared => "cpu_shared",
        }
    }

    /// Whether memory of this type lives in host RAM.
    pub fn is_host(self) -> bool {
        !matches!(self, DeviceType::Gpu)
    }
}

/// A device: a device type and an index, e.g. `cpu(0)` or `gpu(1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Context {
    device_type: DeviceType,
    device_id: u32,
}

impl Context {
    /// A context of the given type and index.
    pub const fn new(device_type: DeviceType, device_id: u32) -> Self {
        Context {
            device_type,
            device_id,
        }
    }

    /// Logical CPU device `i` (a separate buffer space in host memory).
    pub const fn cpu(i: u32) -> Self {
        Context::new(DeviceType::Cpu, i)
    }

    /// GPU `i`. Representable everywhere; allocating on it needs a GPU backend.
    pub const fn gpu(i: u32) -> Self {
        Context::new(DeviceType::Gpu, i)
    }

    /// Pinned host memory `i` (behaves like `cpu(i)`).
    pub const fn cpu_pinned(i: u32) -> Self {
        Context::new(DeviceType::CpuPinned, i)
    }

    /// Shared host memory `i` (behaves like `cpu(i)`).
    pub const fn cpu_shared(i: u32) -> Self {
        Context::new(DeviceType::CpuShared, i)
    }

    /// The device type.
    pub fn device_type(&self) -> DeviceType {
        self.device_type
    }

    /// The device index.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The key under which MXNet's parameter context map files this context: cpu, cpu_pinned
    /// and cpu_shared with the same index share a slot (spec §1.7).
    pub fn map_key(&self) -> (bool, u32) {
        (self.device_type.is_host(), self.device_id)
    }

    /// The calling thread's current context: `cpu(0)` unless changed by [`Context::enter`].
    pub fn current() -> Context {
        CURRENT.with(|stack| stack.borrow().last().copied().unwrap_or(Context::cpu(0)))
    }

    /// Makes `self` the current context of this thread until the guard is dropped (MXNet's
    /// `with ctx:`). Guards nest.
    pub fn enter(self) -> ContextGuard {
        CURRENT.with(|stack| stack.borrow_mut().push(self));
        ContextGuard {
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with `self` as the current context.
    pub fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        let _g = self.enter();
        f()
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::cpu(0)
    }
}

thread_local! {
    static CURRENT: RefCell<Vec<Context>> = const { RefCell::new(Vec::new()) };
}

/// Restores the previous current context when dropped. Not `Send`: it belongs to the thread
/// that created it.
#[must_use = "the context is only current while the guard is alive"]
pub struct ContextGuard {
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CURRENT.with(|stack| {
            stack.borrow_mut().pop();
        });
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.device_type.name(), self.device_id)
    }
}

impl FromStr for Context {
    type Err = Error;

    /// Parses `cpu(0)`, `gpu(1)`, `cpu_pinned(0)`, `cpu_shared(0)`, and the short forms `cpu`,
    /// `gpu` (index 0) and `cpu:1`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidEnumValue {
            what: "context",
            got: s.to_string(),
            valid: vec![
                "cpu(N)".into(),
                "gpu(N)".into(),
                "cpu_pinned(N)".into(),
                "cpu_shared(N)".into(),
            ],
        };
        let t = s.trim();
        let (kind, id) = if let Some(open) = t.find('(') {
            let inner = t[open + 1..].strip_suffix(')').ok_or_else(bad)?;
            (&t[..open], inner.trim())
        } else if let Some((k, i)) = t.split_once(':') {
            (k, i.trim())
        } else {
            (t, "0")
        };
        let device_type = match kind.trim() {
            "cpu" => DeviceType::Cpu,
            "gpu" => DeviceType::Gpu,
            "cpu_pinned" => DeviceType::CpuPinned,
            "cpu_shared" => DeviceType::CpuShared,
            _ => return Err(bad()),
        };
        let device_id = id.parse::<u32>().map_err(|_| bad())?;
        Ok(Context::new(device_type, device_id))
    }
}

/// One or several contexts, as accepted by `initialize` and `reset_ctx`.
///
/// Converts from a [`Context`], an array, slice or `Vec` of contexts, and from `None`
/// (meaning "the current context").
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ContextList(pub Option<Vec<Context>>);

impl ContextList {
    /// Resolves to a concrete list: `None` becomes `[Context::current()]`.
    pub fn resolve(&self) -> Vec<Context> {
        match &self.0 {
            Some(v) => v.clone(),
            None => vec![Context::current()],
        }
    }
}

impl From<Context> for ContextList {
    fn from(c: Context) -> Self {
        ContextList(Some(vec![c]))
    }
}
impl From<&Context> for ContextList {
    fn from(c: &Context) -> Self {
        ContextList(Some(vec![*c]))
    }
}
impl From<Vec<Context>> for ContextList {
    fn from(v: Vec<Context>) -> Self {
        ContextList(Some(v))
    }
}
impl From<&[Context]> for ContextList {
    fn from(v: &[Context]) -> Self {
        ContextList(Some(v.to_vec()))
    }
}
impl From<&Vec<Context>> for ContextList {
    fn from(v: &Vec<Context>) -> Self {
        ContextList(Some(v.clone()))
    }
}
impl<const N: usize> From<[Context; N]> for ContextList {
    fn from(v: [Context; N]) -> Self {
        ContextList(Some(v.to_vec()))
    }
}
impl From<Option<Context>> for ContextList {
    fn from(c: Option<Context>) -> Self {
        ContextList(c.map(|c| vec![c]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "cpu(0)",
            "cpu(7)",
            "gpu(1)",
            "cpu_pinned(0)",
            "cpu_shared(2)",
        ] {
            let c: Context = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
        }
        assert_eq!("gpu".parse::<Context>().unwrap(), Context::gpu(0));
        assert_eq!("cpu:3".parse::<Context>().unwrap(), Context::cpu(3));
        let err = "tpu(0)".parse::<Context>().unwrap_err().to_string();
        assert!(err.contains("cpu(N)"), "{err}");
    }

    #[test]
    fn scopes_nest_and_are_per_thread() {
        let _a = Context::cpu(1).enter();
        {
            let _b = Context::cpu(2).enter();
            assert_eq!(Context::current(), Context::cpu(2));
            std::thread::spawn(|| assert_eq!(Context::current(), Context::cpu(0)))
                .join()
                .unwrap();
        }
        assert_eq!(Context::current(), Context::cpu(1));
        assert_eq!(Context::cpu(4).scope(Context::current), Context::cpu(4));
    }

    #[test]
    fn host_contexts_alias_in_map() {
        assert_eq!(Context::cpu(0).map_key(), Context::cpu_pinned(0).map_key());
        assert_ne!(Context::cpu(0).map_key(), Context::gpu(0).map_key());
        assert_eq!(DeviceType::from_code(5).unwrap(), DeviceType::CpuShared);
        assert!(DeviceType::from_code(4).is_err());
    }
}
