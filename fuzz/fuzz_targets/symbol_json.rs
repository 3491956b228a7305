//! Fuzzes the symbol JSON reader: bad input must give an error, never a panic; what loads
//! must write back to JSON that loads to the same bytes, and survive the graph queries and
//! shape / type inference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxgluon::symbol::Symbol;
use mxgluon::DType;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sym) = Symbol::load_json(text) else {
        return;
    };
    let json = sym.tojson();
    let again = Symbol::load_json(&json).expect("our own JSON must load");
    assert_eq!(again.tojson(), json, "writing is not stable");
    let args = sym.list_arguments();
    let _ = sym.list_outputs();
    let _ = sym.list_auxiliary_states();
    let _ = sym.get_internals().list_outputs();
    let _ = sym.attr_dict();
    let _ = sym.debug_str();
    if let Some(first) = args.first() {
        let _ = sym.infer_shape([(first.as_str(), [2usize, 3, 4, 4])]);
        let _ = sym.infer_type([(first.as_str(), DType::Float32)]);
    }
});
