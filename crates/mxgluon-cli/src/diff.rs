//! `mxgluon diff A B`: compares two array files of any formats entry by entry (shape, dtype,
//! and the largest absolute difference of the values). Exit code 0 when identical, 1 when they
//! differ, 2 on usage or read errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mxgluon::io::FileView;

use crate::util::{fmt_shape, fmt_stat};

/// Options of `diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// First file.
    pub a: PathBuf,
    /// Second file.
    pub b: PathBuf,
    /// Values whose absolute difference is at most this count as equal.
    #[arg(long, default_value_t = 0.0)]
    pub atol: f64,
    /// Print only the entries that differ and the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `diff`.
pub fn run(args: DiffArgs) -> ExitCode {
    if args.atol.is_nan() || args.atol < 0.0 {
        eprintln!(
            "error: --atol must be a non-negative number, not {}",
            args.atol
        );
        return ExitCode::from(2);
    }
    match diff(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Entry keys: names when both files name their entries, else positions.
fn keys(v: &FileView, by_name: bool) -> Vec<String> {
    v.entries()
        .iter()
        .enumerate()
        .map(|(i, e)| match (&e.name, by_name) {
            (Some(n), true) => n.clone(),
            _ => format!("#{i}"),
        })
        .collect()
}

fn diff(args: &DiffArgs) -> mxgluon::Result<bool> {
    let va = FileView::open(&args.a)?;
    let vb = FileView::open(&args.b)?;
    let by_name = va.is_dict() && vb.is_dict();
    let (ka, kb) = (keys(&va, by_name), keys(&vb, by_name));
    let index_b: HashMap<&str, usize> = kb
        .iter()
        .enumerate()
        .map(|(j, k)| (k.as_str(), j))
        .collect();
    let index_a: HashMap<&str, usize> = ka
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let (mut same, mut differ, mut only_a, mut only_b) = (0, 0, 0, 0);
    for (i, k) in ka.iter().enumerate() {
        let Some(&j) = index_b.get(k.as_str()) else {
            println!("- {k}: only in {}", args.a.display());
            only_a += 1;
            continue;
        };
        let (ea, eb) = (&va.entries()[i], &vb.entries()[j]);
        let mut notes = Vec::new();
        let mut equal = true;
        if ea.shape != eb.shape {
            notes.push(format!(
                "shape {} vs {}",
                fmt_shape(&ea.shape),
                fmt_shape(&eb.shape)
            ));
            equal = false;
        }
        if ea.dtype != eb.dtype {
            notes.push(format!("dtype {} vs {}", ea.dtype, eb.dtype));
            equal = false;
        }
        if ea.stype != eb.stype {
            // Storage is a representation, not a value: reported, not counted as a difference.
            notes.push(format!(
                "storage {} vs {} (values compared densely)",
                ea.stype, eb.stype
            ));
        }
        if ea.shape == eb.shape {
            let d = va.max_abs_diff(i, &vb, j)?;
            if d > args.atol {
                equal = false;
            }
            notes.insert(0, format!("max |a-b| = {}", fmt_stat(d)));
        }
        let desc = format!("{} {}", fmt_shape(&ea.shape), ea.dtype);
        if equal {
            same += 1;
            if !args.quiet {
                println!("= {k}: {desc}, {}", notes.join(", "));
            }
        } else {
            differ += 1;
            println!("! {k}: {desc}, {}", notes.join(", "));
        }
    }
    for k in &kb {
        if !index_a.contains_key(k.as_str()) {
            println!("+ {k}: only in {}", args.b.display());
            only_b += 1;
        }
    }
    println!("{same} identical, {differ} different, {only_a} only in A, {only_b} only in B");
    Ok(differ == 0 && only_a == 0 && only_b == 0)
}
