//! Formatting helpers shared by the file subcommands.

use serde_json::Value;

/// `(2, 3)`, `(3,)`, `()`.
pub fn fmt_shape(shape: &[usize]) -> String {
    mxgluon::error::fmt_shape(shape)
}

/// Bytes with a binary unit: `512 B`, `1.5 KiB`, `256.0 MiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A statistic for the table: 6 significant digits, `nan` / `inf` spelled out.
pub fn fmt_stat(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        format!("{v:.5e}")
    } else {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// A JSON number, or `null` for NaN and infinities (which JSON cannot hold).
pub fn json_num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3 << 20), "3.0 MiB");
        assert_eq!(fmt_stat(2.5), "2.5");
        assert_eq!(fmt_stat(-0.0), "0");
        assert_eq!(fmt_stat(1e-7), "1.00000e-7");
        assert_eq!(fmt_stat(f64::NEG_INFINITY), "-inf");
        assert_eq!(json_num(f64::NAN), Value::Null);
    }
}
