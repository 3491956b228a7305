//! Fuzzes the IDX reader (plain and gzipped): it must return errors on bad input, never panic,
//! and never allocate more than the input can hold (gzip: 1032 bytes per compressed byte).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = mxgluon::io::idx::load_from_bytes(data, "<fuzz>") {
        assert!(a.nbytes() as u64 <= data.len() as u64 * 1032);
    }
});
