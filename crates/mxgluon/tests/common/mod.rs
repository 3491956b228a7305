//! Helpers shared by the integration tests: a constant-fill initializer and a logger that
//! captures warnings per thread.
#![allow(dead_code)]

use std::cell::RefCell;
use std::sync::Once;

use mxgluon::init::Initializer;
use mxgluon::NDArray;

/// Fills with a constant.
#[derive(Debug)]
pub struct Fill(pub f64);
impl Initializer for Fill {
    fn kind(&self) -> String {
        "fill".into()
    }
    fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("value".into(), self.0.into());
        m
    }
    fn init_weight(&self, _name: &str, arr: &NDArray) -> mxgluon::Result<()> {
        arr.fill(self.0)
    }
}

/// Captures `log` records per thread so tests can assert on warnings.
struct Capture;
thread_local! {
    static LOGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            LOGS.with(|l| l.borrow_mut().push(record.args().to_string()));
        }
    }
    fn flush(&self) {}
}
static CAPTURE: Capture = Capture;
static INIT_LOG: Once = Once::new();

/// Runs `f` and returns the warnings it logged on this thread.
pub fn warnings_of(f: impl FnOnce()) -> Vec<String> {
    INIT_LOG.call_once(|| {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Trace);
    });
    LOGS.with(|l| l.borrow_mut().clear());
    f();
    LOGS.with(|l| l.borrow_mut().drain(..).collect())
}
