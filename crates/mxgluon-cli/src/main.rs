//! `mxgluon`: the command-line tool of the mxgluon library.
//!
//! Subcommands:
//! - `train`: trains an MLP on the embedded digits (or IDX files) with a Trainer, optionally
//!   data-parallel over several contexts; see `train.rs`.
//! - `seed`: runs the seed example (a fully-connected layer whose weight and bias are Gluon-style
//!   `Parameter`s) and prints the output's shape and first values.
//! - `run`: runs an exported graph (`-symbol.json` + `.params`) on `.npy` input; see `run.rs`.
//! - `inspect`, `convert`, `diff`: array files (`.params`, `.safetensors`, `.npy`, `.npz`); see
//!   the modules of the same names.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mxgluon::{init, nd, Context, Parameter};

mod convert;
mod diff;
mod inspect;
mod plot;
mod run;
mod train;
mod util;

#[derive(Parser, Debug)]
#[command(
    name = "mxgluon",
    version,
    about = "MXNet Gluon's parameter system, in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train an MLP classifier on the embedded 8x8 digits (or MNIST-format IDX files).
    Train(train::TrainArgs),
    /// Run the seed example: Xavier-initialized weight, zero bias, one fully_connected forward.
    Seed {
        /// Context to run on, e.g. `cpu(0)`.
        #[arg(long, default_value = "cpu(0)")]
        ctx: Context,
        /// Batch size (rows of the input).
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Input features.
        #[arg(long = "in-units", default_value_t = 100)]
        in_units: usize,
        /// Output features.
        #[arg(long, default_value_t = 64)]
        units: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// List the arrays of a file (.params, .safetensors, .npy, .npz) with statistics.
    Inspect(inspect::InspectArgs),
    /// Convert an array file to the format named by the output's extension.
    Convert(convert::ConvertArgs),
    /// Compare two array files entry by entry (exit 0 identical, 1 different, 2 error).
    Diff(diff::DiffArgs),
    /// Run an exported graph (MODEL-symbol.json + MODEL-0000.params) on .npy input.
    Run(run::RunArgs),
}

fn seed_example(
    ctx: Context,
    batch: usize,
    in_units: usize,
    units: usize,
    seed: u64,
) -> mxgluon::Result<()> {
    mxgluon::random::seed(seed);
    let x = mxgluon::random::uniform(-1.0, 1.0, &[batch, in_units], mxgluon::DType::Float32, ctx)?;
    let w = Parameter::new("fc_weight")
        .with_shape([units, in_units])
        .with_init(init::Xavier::default());
    let b = Parameter::new("fc_bias")
        .with_shape([units])
        .with_init(init::Zero);
    w.initialize(ctx)?;
    b.initialize(ctx)?;
    let out = nd::fully_connected(&x, &w.data(ctx)?, Some(&b.data(ctx)?), units)?;
    println!("{w}");
    println!("{b}");
    let dims: Vec<String> = out.shape().iter().map(|d| d.to_string()).collect();
    println!("output shape: ({}) on {}", dims.join(", "), out.context());
    let first: Vec<String> = out
        .to_f32_vec()
        .iter()
        .take(8)
        .map(|v| format!("{v:.6}"))
        .collect();
    println!("first values: [{}]", first.join(", "));
    Ok(())
}

fn main() -> ExitCode {
    env_logger_init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed {
            ctx,
            batch,
            in_units,
            units,
            seed,
        } => seed_example(ctx, batch, in_units, units, seed),
        Command::Train(args) => return train::run(args),
        Command::Inspect(args) => return inspect::run(args),
        Command::Convert(args) => return convert::run(args),
        Command::Diff(args) => return diff::run(args),
        Command::Run(args) => return run::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints library warnings (`log` records at warn level and above) to stderr.
fn env_logger_init() {
    struct StderrLogger;
    impl log::Log for StderrLogger {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                eprintln!("{}: {}", r.level().as_str().to_lowercase(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}
