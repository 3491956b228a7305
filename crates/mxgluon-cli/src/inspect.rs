//! `mxgluon inspect FILE [--json] [--no-stats]`: what an array file holds, entry by entry,
//! read lazily from a memory map (see `README.md` for the JSON schema).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mxgluon::io::{EntryView, FileView, Stats};
use serde_json::{json, Value};

use crate::util::{fmt_bytes, fmt_shape, fmt_stat, json_num};

/// Options of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The file: .params (MXNet), .safetensors, .npy or .npz (recognised by content).
    pub file: PathBuf,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip the statistics (min/max/mean/std), which read every value.
    #[arg(long = "no-stats")]
    pub no_stats: bool,
}

/// Runs `inspect`: 0 on success, 1 when the file cannot be read.
pub fn run(args: InspectArgs) -> ExitCode {
    match inspect(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn saved_context(e: &EntryView) -> Option<String> {
    let r = e.record.as_ref()?;
    Some(match r.saved_context() {
        Some(c) => c.to_string(),
        None => format!("dev_type {} id {}", r.saved_device_type, r.saved_device_id),
    })
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "count": s.count,
        "nan_count": s.nan_count,
        "min": json_num(s.min),
        "max": json_num(s.max),
        "mean": json_num(s.mean),
        "std": json_num(s.std),
    })
}

fn inspect(args: &InspectArgs) -> mxgluon::Result<()> {
    let view = FileView::open(&args.file)?;
    let mut stats = Vec::with_capacity(view.entries().len());
    for i in 0..view.entries().len() {
        stats.push(if args.no_stats {
            None
        } else {
            Some(view.stats(i)?)
        });
    }
    let elements: u64 = view
        .entries()
        .iter()
        .map(|e| e.shape.iter().map(|&d| d as u64).product::<u64>())
        .sum();
    let data_bytes: u64 = view.entries().iter().map(|e| e.file_bytes).sum();
    if args.json {
        let entries: Vec<Value> = view
            .entries()
            .iter()
            .zip(&stats)
            .enumerate()
            .map(|(i, (e, s))| {
                json!({
                    "index": i,
                    "name": e.name,
                    "shape": e.shape,
                    "dtype": e.dtype.name(),
                    "stype": e.stype.name(),
                    "stored_shape": e.stored_shape,
                    "bytes": e.file_bytes,
                    "offset": e.offset,
                    "record": e.record.as_ref().map(|r| json!({
                        "version": r.version.name(),
                        "saved_context": saved_context(e),
                    })),
                    "stats": s.as_ref().map(stats_json),
                })
            })
            .collect();
        let doc = json!({
            "file": args.file.display().to_string(),
            "format": view.format().name(),
            "kind": if view.is_dict() { "dict" } else { "list" },
            "file_bytes": view.file_len(),
            "entries": entries,
            "totals": {
                "entries": view.entries().len(),
                "elements": elements,
                "bytes": data_bytes,
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{}: {} {}, {} entries, {}",
        args.file.display(),
        view.format().name(),
        if view.is_dict() { "dict" } else { "list" },
        view.entries().len(),
        fmt_bytes(view.file_len())
    );
    let mut rows = vec![vec![
        "name".to_string(),
        "shape".into(),
        "dtype".into(),
        "stype".into(),
        "bytes".into(),
        "min".into(),
        "max".into(),
        "mean".into(),
        "std".into(),
    ]];
    for (i, (e, s)) in view.entries().iter().zip(&stats).enumerate() {
        let name = e.name.clone().unwrap_or_else(|| format!("#{i}"));
        let mut row = vec![
            name,
            fmt_shape(&e.shape),
            e.dtype.name().to_string(),
            e.stype.name().to_string(),
            fmt_bytes(e.file_bytes),
        ];
        match s {
            Some(s) => {
                row.extend([s.min, s.max, s.mean, s.std].map(fmt_stat));
                if s.nan_count > 0 {
                    row[8].push_str(&format!(" ({} NaN)", s.nan_count));
                }
            }
            None => row.extend(["-", "-", "-", "-"].map(String::from)),
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (v, w))| {
                if c == 0 || c == 2 || c == 3 {
                    format!("{v:<w$}")
                } else {
                    format!("{v:>w$}")
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    if let Some(ctxs) = view
        .entries()
        .iter()
        .filter_map(saved_context)
        .find(|c| c != "cpu(0)")
    {
        println!("note: some records were saved from {ctxs}; they load on cpu(0)");
    }
    println!(
        "total: {} entries, {} elements, {} of data",
        view.entries().len(),
        elements,
        fmt_bytes(data_bytes)
    );
    Ok(())
}
