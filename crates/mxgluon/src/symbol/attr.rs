//! Operator attributes as MXNet stores them: every value is a string (`"True"`, `"(3, 3)"`,
//! `"1e-05"`), parsed the way dmlc-core's parameter structs parse them.
//!
//! Parsing rules (dmlc-core, MXNet 1.9.1):
//! - booleans: `true` / `false` / `1` / `0`, any letter case;
//! - integers and floats: surrounding whitespace allowed, nothing else after the number;
//! - tuples: `(3, 3)`, `[3, 3]`, `(3,)`, `()` or a bare integer `3` (meaning `(3,)`); a
//!   Python 2 long suffix `L` after an element is accepted;
//! - enumerations: one of the listed names, exactly;
//! - optional values: `None` means "not set".
//!
//! Keys of the form `__name__` are hidden attributes (`__lr_mult__`, `__init__`, ...) that
//! every operator accepts and ignores; any other key an operator does not declare is an error.

use std::collections::{BTreeMap, BTreeSet};

/// Python's `str(float)` (`repr`): `1.0`, `0.5`, `1e-05`, `inf`, `nan`.
pub(crate) fn py_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        crate::init::json::py_float(x)
    }
}

/// Python's `str(bool)`.
pub(crate) fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Python's `str(tuple)` of integers: `(3, 3)`, `(3,)`, `()`.
pub(crate) fn py_tuple<T: std::fmt::Display>(t: &[T]) -> String {
    match t.len() {
        0 => "()".into(),
        1 => format!("({},)", t[0]),
        _ => {
            let parts: Vec<String> = t.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// dmlc's boolean field.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// An integer with optional surrounding whitespace.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok()
}

/// A float with optional surrounding whitespace (`1e-05`, `0.9`, `inf`).
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// dmlc's `Tuple<int>` reader: `(a, b)`, `[a, b]`, `(a,)`, `()`, or a bare integer.
pub(crate) fn parse_tuple(s: &str) -> Option<Vec<i64>> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let first = t.as_bytes()[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' {
        return parse_int(t.trim_end_matches('L')).map(|v| vec![v]);
    }
    let close = match first {
        b'(' => ')',
        b'[' => ']',
        _ => return None,
    };
    let inner = t[1..].strip_suffix(close)?;
    let inner = inner.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    let inner = inner.strip_suffix(',').unwrap_or(inner);
    inner
        .split(',')
        .map(|p| {
            let p = p.trim();
            parse_int(p.strip_suffix('L').unwrap_or(p))
        })
        .collect()
}

/// Reads the declared fields of one operator's attribute dictionary and rejects undeclared
/// ones (MXNet's `ParamParser` with hidden keys allowed).
pub(crate) struct AttrReader<'a> {
    op: &'a str,
    attrs: &'a BTreeMap<String, String>,
    declared: BTreeSet<&'static str>,
}

/// Whether `key` is a hidden attribute (`__name__`), accepted by every operator.
pub(crate) fn is_hidden_key(key: &str) -> bool {
    key.len() > 4 && key.starts_with("__") && key.ends_with("__")
}

impl<'a> AttrReader<'a> {
    pub(crate) fn new(op: &'a str, attrs: &'a BTreeMap<String, String>) -> Self {
        AttrReader {
            op,
            attrs,
            declared: BTreeSet::new(),
        }
    }

    fn raw(&mut self, key: &'static str) -> Option<&'a str> {
        self.declared.insert(key);
        self.attrs.get(key).map(|s| s.as_str())
    }

    fn bad(&self, key: &str, value: &str, expected: &str) -> String {
        format!(
            "invalid value {value:?} for {key} of {}: expected {expected}",
            self.op
        )
    }

    /// A field whose absence is an error.
    pub(crate) fn required<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, String> {
        match self.raw(key) {
            Some(v) => parse(v).ok_or_else(|| self.bad(key, v, expected)),
            None => Err(format!("{} requires the attribute {key}", self.op)),
        }
    }

    /// A field with a default.
    pub(crate) fn or<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, String> {
        match self.raw(key) {
            Some(v) => parse(v).ok_or_else(|| self.bad(key, v, expected)),
            None => Ok(default),
        }
    }

    /// An optional field: absent or `None` give `None`.
    pub(crate) fn optional<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, String> {
        match self.raw(key) {
            Some(v) if v.trim() == "None" => Ok(None),
            Some(v) => parse(v).map(Some).ok_or_else(|| self.bad(key, v, expected)),
            None => Ok(None),
        }
    }

    /// An enumeration field: one of `names`, as its index.
    pub(crate) fn choice(
        &mut self,
        key: &'static str,
        default: Option<usize>,
        names: &[&str],
    ) -> Result<usize, String> {
        let expected = format!("one of {}", names.join(", "));
        let parse = |s: &str| names.iter().position(|n| *n == s);
        match default {
            Some(d) => self.or(key, d, parse, &expected),
            None => self.required(key, parse, &expected),
        }
    }

    /// An optional enumeration field.
    pub(crate) fn optional_choice(
        &mut self,
        key: &'static str,
        names: &[&str],
    ) -> Result<Option<usize>, String> {
        let expected = format!("one of {} or None", names.join(", "));
        self.optional(key, |s| names.iter().position(|n| *n == s), &expected)
    }

    /// Rejects attributes that are neither declared nor hidden (`__name__`).
    pub(crate) fn finish(self) -> Result<(), String> {
        for key in self.attrs.keys() {
            if !self.declared.contains(key.as_str()) && !is_hidden_key(key) {
                let known: Vec<&str> = self.declared.iter().copied().collect();
                return Err(format!(
                    "{} has no attribute {key:?}; its attributes are: {}",
                    self.op,
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_parse_like_dmlc() {
        assert_eq!(parse_tuple("(3, 3)"), Some(vec![3, 3]));
        assert_eq!(parse_tuple("[1,2,3]"), Some(vec![1, 2, 3]));
        assert_eq!(parse_tuple("(3,)"), Some(vec![3]));
        assert_eq!(parse_tuple("()"), Some(vec![]));
        assert_eq!(parse_tuple(" ( ) "), Some(vec![]));
        assert_eq!(parse_tuple("7"), Some(vec![7]));
        assert_eq!(
            parse_tuple("(0, -1, -4, 2, -1)"),
            Some(vec![0, -1, -4, 2, -1])
        );
        assert_eq!(parse_tuple("(2L, 3L)"), Some(vec![2, 3]));
        assert_eq!(parse_tuple("(3, 3"), None);
        assert_eq!(parse_tuple("(a, 3)"), None);
        assert_eq!(parse_tuple("(3,,)"), None);
        assert_eq!(parse_tuple(""), None);
        assert_eq!(parse_tuple("(99999999999999999999,)"), None);
    }

    #[test]
    fn scalars_parse_like_dmlc() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_int(" 16 "), Some(16));
        assert_eq!(parse_int("16.0"), None);
        assert_eq!(parse_float("1e-05"), Some(1e-5));
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(0.9), "0.9");
        assert_eq!(py_float(2.0), "2.0");
        assert_eq!(py_tuple(&[3usize]), "(3,)");
        assert_eq!(py_tuple(&[2usize, 3]), "(2, 3)");
    }

    #[test]
    fn reader_rejects_undeclared_keys_but_not_hidden_ones() {
        let mut attrs = BTreeMap::new();
        attrs.insert("num_hidden".to_string(), "4".to_string());
        attrs.insert("__lr_mult__".to_string(), "2.0".to_string());
        let mut r = AttrReader::new("FullyConnected", &attrs);
        assert_eq!(r.required("num_hidden", parse_int, "an integer"), Ok(4));
        assert_eq!(r.or("no_bias", false, parse_bool, "a boolean"), Ok(false));
        assert!(r.finish().is_ok());
        attrs.insert("foo".to_string(), "1".to_string());
        let mut r = AttrReader::new("FullyConnected", &attrs);
        r.required("num_hidden", parse_int, "an integer").unwrap();
        let e = r.finish().unwrap_err();
        assert!(e.contains("\"foo\"") && e.contains("num_hidden"), "{e}");
    }
}
