//! `mxgluon run MODEL-symbol.json MODEL-0000.params --input x.npy --output y.npy`: runs an
//! exported graph (MXNet's `HybridBlock.export` or ours) on NumPy input with the executor
//! behind `SymbolBlock::imports`, in inference mode, and writes each output as `.npy`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mxgluon::gluon::SymbolBlock;
use mxgluon::io::npy;
use mxgluon::{Context, Error};

use crate::util::fmt_shape;

/// Options of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The graph, `MODEL-symbol.json`.
    pub symbol: PathBuf,
    /// The parameters, `MODEL-0000.params` (`arg:` / `aux:` keys).
    pub params: PathBuf,
    /// An input array (`.npy`); repeat for graphs with several inputs, in `--input-name` order.
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// The graph variable each input feeds (default `data`); repeat as `--input`.
    #[arg(long = "input-name")]
    pub input_names: Vec<String>,
    /// Where to write each output (`.npy`); one per graph output, in order.
    #[arg(long = "output", required = true)]
    pub outputs: Vec<PathBuf>,
    /// The context to run on.
    #[arg(long, default_value = "cpu(0)")]
    pub ctx: Context,
}

/// Runs `run`: 0 on success, 2 for inconsistent options, 1 for other failures (an unsupported
/// operator, a missing parameter, a shape mismatch, unreadable files).
pub fn run(args: RunArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(
                e,
                Error::InvalidArgument {
                    op: "mxgluon run",
                    ..
                }
            ) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn execute(args: &RunArgs) -> mxgluon::Result<()> {
    let names: Vec<String> = if args.input_names.is_empty() {
        vec!["data".to_string()]
    } else {
        args.input_names.clone()
    };
    if names.len() != args.inputs.len() {
        return Err(Error::invalid_arg(
            "mxgluon run",
            format!(
                "{} --input file(s) but {} input name(s) ({}); give one --input-name per --input",
                args.inputs.len(),
                names.len(),
                names.join(", ")
            ),
        ));
    }
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let block = SymbolBlock::imports(&args.symbol, &name_refs, Some(&args.params), args.ctx)?;
    let n_out = block.symbol().list_outputs().len();
    if n_out != args.outputs.len() {
        return Err(Error::invalid_arg(
            "mxgluon run",
            format!(
                "the graph has {n_out} output(s) ({}) but {} --output file(s) were given",
                block.symbol().list_outputs().join(", "),
                args.outputs.len()
            ),
        ));
    }
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        inputs.push(npy::load(path)?.copy_to(args.ctx)?);
    }
    let start = std::time::Instant::now();
    let outputs = block.forward_multi(&inputs)?;
    let elapsed = start.elapsed();
    for ((path, out), name) in args
        .outputs
        .iter()
        .zip(&outputs)
        .zip(block.symbol().list_outputs())
    {
        npy::save(path, out)?;
        println!(
            "{name}: {} {} -> {}",
            fmt_shape(out.shape()),
            out.dtype(),
            path.display()
        );
    }
    println!(
        "ran {} on {} in {:.1} ms",
        args.symbol.display(),
        args.ctx,
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
