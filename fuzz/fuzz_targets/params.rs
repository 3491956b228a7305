//! Fuzzes the params reader: the eager loader and the lazy FileView (listing, statistics,
//! loading each entry) must return errors on bad input, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxgluon::io::{FileView, Format};

fuzz_target!(|data: &[u8]| {
    let _ = mxgluon::nd::load_from_bytes(data).is_ok();
    if let Ok(view) = FileView::from_bytes(data.to_vec(), Format::Params) {
        for i in 0..view.entries().len() {
            let _ = view.stats(i);
            let _ = view.to_array(i);
        }
    }
});
