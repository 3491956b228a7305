//! `Display` for arrays, printed like MXNet's `repr` (without its leading newline): numpy's
//! `str()` of the values followed by `<NDArray 2x3 @cpu(0)>`.
//!
//! The value text follows numpy's defaults: 8 digits of precision in "maxprec" mode,
//! scientific notation when the largest magnitude is ≥ 1e8 or the smallest non-zero one is
//! < 1e-4 or their ratio exceeds 1e3, a line width of 75 and summarization (`...`, 3 edge
//! items) above 1000 elements.

use std::fmt;

use half::{bf16, f16};

use super::NDArray;
use crate::dtype::DType;

const LINE_WIDTH: usize = 75;
const THRESHOLD: usize = 1000;
const EDGE: usize = 3;
const PRECISION: usize = 8;

/// The shortest decimal text (positional, as Rust prints it) that reads back to the same value
/// of the array's dtype.
fn shortest(v: f64, dtype: DType) -> String {
    match dtype {
        DType::Float32 => format!("{}", v as f32),
        DType::Float16 | DType::BFloat16 => {
            for p in 0..9 {
                let s = format!("{:.*e}", p, v);
                if let Ok(back) = s.parse::<f64>() {
                    let same = if dtype == DType::Float16 {
                        f16::from_f64(back) == f16::from_f64(v)
                    } else {
                        bf16::from_f64(back) == bf16::from_f64(v)
                    };
                    if same {
                        return format!("{back}");
                    }
                }
            }
            format!("{}", v as f32)
        }
        _ => format!("{v}"),
    }
}

/// Splits positional text into (integer part with sign, fraction digits), rounded to at most
/// `PRECISION` fraction digits with trailing zeros trimmed.
fn positional(v: f64, dtype: DType) -> (String, String) {
    let mut s = shortest(v, dtype);
    if let Some(dot) = s.find('.') {
        if s.len() - dot - 1 > PRECISION {
            s = format!("{:.*}", PRECISION, v);
            while s.ends_with('0') {
                s.pop();
            }
        }
    }
    match s.split_once('.') {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => (s, String::new()),
    }
}

/// Scientific parts: (integer digit with sign, fraction digits, exponent).
fn scientific(v: f64, dtype: DType) -> (String, String, i32) {
    let short: f64 = shortest(v, dtype).parse().unwrap_or(v);
    let mut s = format!("{short:e}");
    let (m, _) = s.split_once('e').unwrap_or((&s, "0"));
    if m.split_once('.').map_or(0, |(_, f)| f.len()) > PRECISION {
        s = format!("{:.*e}", PRECISION, short);
    }
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    let (i, f) = m.split_once('.').unwrap_or((m, ""));
    let f = f.trim_end_matches('0');
    (i.to_string(), f.to_string(), exp)
}

/// Formats every (shown) float value to equal width, numpy-style.
fn float_strings(vals: &[f64], dtype: DType) -> Vec<String> {
    let finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
    let nonzero: Vec<f64> = finite
        .iter()
        .map(|v| v.abs())
        .filter(|&v| v != 0.0)
        .collect();
    let max = nonzero.iter().copied().fold(0.0, f64::max);
    let min = nonzero.iter().copied().fold(f64::INFINITY, f64::min);
    let exp_mode = !nonzero.is_empty() && (max >= 1e8 || min < 1e-4 || max / min > 1e3);
    let neginf = vals.iter().any(|v| v.is_infinite() && *v < 0.0);
    let nonfinite = |v: f64| -> String {
        if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    };
    let has_nonfinite = finite.len() != vals.len();
    if exp_mode {
        let parts: Vec<(String, String, i32)> =
            finite.iter().map(|&v| scientific(v, dtype)).collect();
        let prec = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
        let exp_size = parts
            .iter()
            .map(|p| p.2.unsigned_abs().to_string().len())
            .max()
            .unwrap_or(0)
            .max(2);
        let pad_right = exp_size + 2 + prec;
        let pad_left = widen_for_nonfinite(
            parts.iter().map(|p| p.0.len()).max().unwrap_or(0),
            pad_right,
            has_nonfinite,
            neginf,
        );
        vals.iter()
            .map(|&v| {
                if !v.is_finite() {
                    let s = nonfinite(v);
                    return format!("{:>w$}", s, w = pad_left + pad_right + 1);
                }
                let (i, f, e) = scientific(v, dtype);
                let sign = if e < 0 { '-' } else { '+' };
                format!(
                    "{:>pl$}.{:0<pr$}e{}{:0>es$}",
                    i,
                    f,
                    sign,
                    e.unsigned_abs(),
                    pl = pad_left,
                    pr = prec,
                    es = exp_size
                )
            })
            .collect()
    } else {
        let parts: Vec<(String, String)> = finite.iter().map(|&v| positional(v, dtype)).collect();
        let pad_right = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
        let pad_left = widen_for_nonfinite(
            parts.iter().map(|p| p.0.len()).max().unwrap_or(0),
            pad_right,
            has_nonfinite,
            neginf,
        );
        vals.iter()
            .map(|&v| {
                if !v.is_finite() {
                    return format!("{:>w$}", nonfinite(v), w = pad_left + pad_right + 1);
                }
                let (i, f) = positional(v, dtype);
                format!("{:>pl$}.{:<pr$}", i, f, pl = pad_left, pr = pad_right)
            })
            .collect()
    }
}

/// Text of a 0-d array: Python's `str` of the scalar.
fn scalar_text(v: f64, dtype: DType) -> String {
    match dtype {
        DType::Bool => if v != 0.0 { "True" } else { "False" }.into(),
        d if d.is_float() => {
            if !v.is_finite() {
                return if v.is_nan() {
                    "nan".into()
                } else if v > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                };
            }
            let a = v.abs();
            if a != 0.0 && !(1e-4..1e16).contains(&a) {
                let (i, f, e) = scientific(v, dtype);
                let f = if f.is_empty() {
                    String::new()
                } else {
                    format!(".{f}")
                };
                let sign = if e < 0 { '-' } else { '+' };
                format!("{i}{f}e{sign}{:02}", e.unsigned_abs())
            } else {
                let s = shortest(v, dtype);
                if s.contains('.') {
                    s
                } else {
                    format!("{s}.0")
                }
            }
        }
        _ => format!("{}", v as i128),
    }
}

/// The indices shown along an axis of length `n`.
fn shown(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// numpy's `_formatArray` for `str()` (separator `' '`, no prefix).
fn format_array(
    shape: &[usize],
    words: &dyn Fn(usize) -> String,
    summarize: bool,
    index_base: usize,
    axis: usize,
    hanging: &str,
    width: usize,
) -> String {
    let strides: usize = shape[axis + 1..].iter().product();
    let next_hanging = format!("{hanging} ");
    let next_width = width.saturating_sub(1);
    let items = shown(shape[axis], summarize);
    let mut s = String::new();
    if axis + 1 == shape.len() {
        let elem_width = width.saturating_sub(1);
        let mut line = hanging.to_string();
        let n = items.len();
        for (k, it) in items.iter().enumerate() {
            let word = match it {
                Some(i) => words(index_base + i * strides),
                None => "...".to_string(),
            };
            let needs_wrap = line.len() + word.len() > elem_width && line.len() > hanging.len();
            if needs_wrap {
                s.push_str(line.trim_end());
                s.push('\n');
                line = hanging.to_string();
            }
            line.push_str(&word);
            if k + 1 < n {
                line.push(' ');
            }
        }
        s.push_str(&line);
    } else {
        let line_sep = "\n".repeat(shape.len() - axis - 1);
        let n = items.len();
        for (k, it) in items.iter().enumerate() {
            let nested = match it {
                Some(i) => format_array(
                    shape,
                    words,
                    summarize,
                    index_base + i * strides,
                    axis + 1,
                    &next_hanging,
                    next_width,
                ),
                None => "...".to_string(),
            };
            s.push_str(hanging);
            s.push_str(&nested);
            if k + 1 < n {
                s.push_str(&line_sep);
            }
        }
    }
    format!("[{}]", &s[hanging.len().min(s.len())..])
}

/// numpy's `str()` of the values.
pub(crate) fn values_text(a: &NDArray) -> String {
    let dtype = a.dtype();
    let vals = a.to_f64_vec();
    if a.ndim() == 0 {
        return vals
            .first()
            .map_or_else(String::new, |&v| scalar_text(v, dtype));
    }
    if vals.is_empty() {
        return "[]".into();
    }
    let summarize = vals.len() > THRESHOLD;
    // Which flat indices are shown (summarization formats only the edge items).
    let mut shown_idx = Vec::new();
    collect_shown(a.shape(), summarize, 0, 0, &mut shown_idx);
    let shown_vals: Vec<f64> = shown_idx.iter().map(|&i| vals[i]).collect();
    let strs: Vec<String> = if dtype.is_float() {
        float_strings(&shown_vals, dtype)
    } else if dtype == DType::Bool {
        shown_vals
            .iter()
            .map(|&v| {
                if v != 0.0 {
                    " True".to_string()
                } else {
                    "False".to_string()
                }
            })
            .collect()
    } else {
        let raw: Vec<String> = shown_vals
            .iter()
            .map(|&v| format!("{}", v as i128))
            .collect();
        let w = raw.iter().map(|s| s.len()).max().unwrap_or(0);
        raw.into_iter().map(|s| format!("{s:>w$}")).collect()
    };
    let lookup = |flat: usize| -> String {
        shown_idx
            .binary_search(&flat)
            .ok()
            .and_then(|k| strs.get(k).cloned())
            .unwrap_or_default()
    };
    format_array(a.shape(), &lookup, summarize, 0, 0, " ", LINE_WIDTH)
}

fn collect_shown(shape: &[usize], summarize: bool, base: usize, axis: usize, out: &mut Vec<usize>) {
    let stride: usize = shape[axis + 1..].iter().product();
    for i in shown(shape[axis], summarize).into_iter().flatten() {
        if axis + 1 == shape.len() {
            out.push(base + i * stride);
        } else {
            collect_shown(shape, summarize, base + i * stride, axis + 1, out);
        }
    }
}

impl fmt::Display for NDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&values_text(self))?;
        let dims: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
        write!(f, "\n<NDArray {} @{}>", dims.join("x"), self.context())
    }
}

/// The integer-part width, widened so that `nan` / `inf` / `-inf` fit in a column whose
/// fraction part (after the point) is `pad_right` wide.
fn widen_for_nonfinite(
    pad_left: usize,
    pad_right: usize,
    has_nonfinite: bool,
    neginf: bool,
) -> usize {
    if !has_nonfinite {
        return pad_left;
    }
    let offset = pad_right + 1;
    pad_left
        .max(3usize.saturating_sub(offset))
        .max((3 + neginf as usize).saturating_sub(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nd;
    use crate::Context;

    fn text<T: crate::Element>(v: &[T], shape: &[usize]) -> String {
        values_text(&NDArray::from_slice(v, shape, Context::cpu(0)).unwrap())
    }

    #[test]
    fn floats_like_numpy() {
        assert_eq!(
            text(&[1.0f32, 2., 3., 4., 5., 6.], &[2, 3]),
            "[[1. 2. 3.]\n [4. 5. 6.]]"
        );
        assert_eq!(text(&[0.1f32, 0.25], &[2]), "[0.1  0.25]");
        assert_eq!(text(&[-1.5f64, 2.0], &[2]), "[-1.5  2. ]");
        assert_eq!(text(&[1.0f32 / 3.0], &[1]), "[0.33333334]");
        assert_eq!(text(&[1e8f32, 1.0], &[2]), "[1.e+08 1.e+00]");
        assert_eq!(text(&[1.5e-5f64, 1.0], &[2]), "[1.5e-05 1.0e+00]");
        assert_eq!(
            text(&[f32::NAN, 1.0, f32::NEG_INFINITY], &[3]),
            "[ nan   1. -inf]"
        );
        assert_eq!(text(&[0.1f64], &[]), "0.1");
        assert_eq!(text(&[half::f16::from_f32(0.1)], &[1]), "[0.1]");
        assert_eq!(text(&[0.0f32; 4], &[2, 1, 2]), "[[[0. 0.]]\n\n [[0. 0.]]]");
    }

    #[test]
    fn ints_bools_and_repr() {
        assert_eq!(text(&[1i32, 2, 3], &[3]), "[1 2 3]");
        assert_eq!(text(&[-10i64, 5], &[2]), "[-10   5]");
        assert_eq!(text(&[true, false], &[2]), "[ True False]");
        let a = nd::ones(&[2, 3], Context::cpu(0)).unwrap();
        assert_eq!(
            a.to_string(),
            "[[1. 1. 1.]\n [1. 1. 1.]]\n<NDArray 2x3 @cpu(0)>"
        );
        let s = NDArray::scalar(2.0f32, Context::cpu(0)).unwrap();
        assert_eq!(s.to_string(), "2.0\n<NDArray  @cpu(0)>");
    }

    #[test]
    fn wraps_and_summarizes() {
        let a = nd::arange(0.0, 30.0, 1.0, None).unwrap();
        assert_eq!(
            values_text(&a),
            "[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n 18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.]"
        );
        let b = nd::arange(0.0, 2000.0, 1.0, None).unwrap();
        assert_eq!(
            values_text(&b),
            "[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]"
        );
        let c = NDArray::arange(0.0, 1200.0, 1.0, DType::Int32, Context::cpu(0))
            .unwrap()
            .reshape(&[40, 30])
            .unwrap();
        assert_eq!(
            values_text(&c),
            "[[   0    1    2 ...   27   28   29]\n [  30   31   32 ...   57   58   59]\n [  60   61   62 ...   87   88   89]\n ...\n [1110 1111 1112 ... 1137 1138 1139]\n [1140 1141 1142 ... 1167 1168 1169]\n [1170 1171 1172 ... 1197 1198 1199]]"
        );
    }
}
