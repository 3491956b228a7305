//! `mxgluon train`: trains an MLP classifier on the embedded 8×8 digits (or MNIST-format IDX
//! files) with a Trainer, data-parallel over the given contexts (one thread per context).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mxgluon::gluon::data::{ArrayDataset, DataLoader, LastBatch};
use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::utils::{parallel_map, split_and_load};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::ActType;
use mxgluon::optimizer::{self, OptimizerOptions};
use mxgluon::{autograd, init, random, Context, NDArray};

use crate::plot::{plot_history, EpochPoint};

/// Options of `mxgluon train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Contexts to train on, comma separated; the batch is split across them and each runs on
    /// its own thread, e.g. `cpu(0),cpu(1)`.
    #[arg(long, default_value = "cpu(0)")]
    ctx: String,
    /// Hidden layer sizes, comma separated (ReLU after each).
    #[arg(long, default_value = "128,64")]
    hidden: String,
    /// Optimizer name (sgd, nag, adam, adamw, adagrad, rmsprop, adadelta, adamax, nadam,
    /// signum, ftrl, lamb, lars).
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    lr: f64,
    /// More optimizer options as `key=value,...`, e.g. `momentum=0.9,wd=1e-4`.
    #[arg(long = "optimizer-params", default_value = "momentum=0.9")]
    optimizer_params: String,
    /// Passes over the training data.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Samples per step (split across the contexts).
    #[arg(long = "batch-size", default_value_t = 64)]
    batch_size: usize,
    /// Seed of the initialization and of the shuffling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Save the trained parameters to this `.params` file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Train on MNIST-format IDX files in this directory instead of the embedded digits
    /// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
    /// t10k-labels-idx1-ubyte, optionally gzipped).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Draw the loss and accuracy curves into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress bars (the per-epoch lines are still printed).
    #[arg(long)]
    quiet: bool,
}

/// A usage error (exit code 2) or a failure while training (exit code 1).
enum Failure {
    Usage(String),
    Run(String),
}

impl From<mxgluon::Error> for Failure {
    fn from(e: mxgluon::Error) -> Self {
        Failure::Run(e.to_string())
    }
}

/// Runs the command; exit code 0 on success, 2 on bad options, 1 on other failures.
pub fn run(args: TrainArgs) -> ExitCode {
    match train(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Run(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}

struct Config {
    ctxs: Vec<Context>,
    hidden: Vec<usize>,
    opt_options: OptimizerOptions,
}

fn parse(args: &TrainArgs) -> Result<Config, Failure> {
    let ctxs = args
        .ctx
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<Context>()
                .map_err(|e| Failure::Usage(format!("--ctx: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, c) in ctxs.iter().enumerate() {
        if ctxs[..i].contains(c) {
            return Err(Failure::Usage(format!("--ctx: {c} is listed twice")));
        }
    }
    let hidden = if args.hidden.trim().is_empty() {
        Vec::new()
    } else {
        args.hidden
            .split(',')
            .map(|s| match s.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(Failure::Usage(format!(
                    "--hidden: {s:?} is not a positive layer size (expected e.g. 128,64)"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if args.epochs == 0 {
        return Err(Failure::Usage("--epochs must be at least 1".into()));
    }
    if args.batch_size < ctxs.len() {
        return Err(Failure::Usage(format!(
            "--batch-size {} is smaller than the number of contexts ({})",
            args.batch_size,
            ctxs.len()
        )));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(Failure::Usage(format!(
            "--lr must be a positive number, got {}",
            args.lr
        )));
    }
    let opt_options = OptimizerOptions::parse(&args.optimizer_params)
        .map_err(|e| Failure::Usage(format!("--optimizer-params: {e}")))?
        .set("learning_rate", args.lr);
    // Validate the optimizer and its options now, so that a typo is a usage error.
    optimizer::create(&args.optimizer, &opt_options).map_err(|e| {
        let flag = match e {
            mxgluon::Error::UnknownOptimizer { .. } => "--optimizer",
            _ => "--optimizer-params",
        };
        Failure::Usage(format!("{flag}: {e}"))
    })?;
    Ok(Config {
        ctxs,
        hidden,
        opt_options,
    })
}

/// Training and test sets: images flattened to (N, features) float32 in [0, 1], labels (N,).
struct Dataset {
    name: String,
    train: ArrayDataset,
    test: ArrayDataset,
    classes: usize,
}

fn load_data(args: &TrainArgs) -> Result<Dataset, Failure> {
    use mxgluon::gluon::data::vision::{Digits, Mnist};
    match &args.data {
        None => Ok(Dataset {
            name: "UCI 8x8 digits (embedded)".into(),
            train: Digits::train()?,
            test: Digits::test()?,
            classes: 10,
        }),
        Some(dir) => {
            if !dir.is_dir() {
                return Err(Failure::Usage(format!(
                    "--data: {} is not a directory",
                    dir.display()
                )));
            }
            Ok(Dataset {
                name: format!("IDX files in {}", dir.display()),
                train: Mnist::from_dir(dir, true)?,
                test: Mnist::from_dir(dir, false)?,
                classes: 10,
            })
        }
    }
}

fn build_net(hidden: &[usize], classes: usize) -> Result<Sequential, mxgluon::Error> {
    let net = Sequential::new();
    {
        let _scope = net.name_scope();
        for &h in hidden {
            net.add(Dense::builder(h).activation(ActType::Relu).build()?);
        }
        net.add(Dense::builder(classes).build()?);
    }
    Ok(net)
}

/// Number of rows whose arg-max equals the label.
fn correct(out: &NDArray, labels: &NDArray) -> usize {
    let classes = out.shape().get(1).copied().unwrap_or(1).max(1);
    let o = out.to_f32_vec();
    let l = labels.to_f32_vec();
    o.chunks(classes)
        .zip(l)
        .filter(|(row, label)| {
            let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            best == *label as usize
        })
        .count()
}

fn evaluate(net: &Sequential, data: &ArrayDataset, ctx: Context) -> Result<f64, Failure> {
    let n = data.len();
    if n == 0 {
        return Ok(0.0);
    }
    let out = net.forward(&data.data().as_in_context(ctx)?)?;
    Ok(correct(&out, data.label()) as f64 / n as f64)
}

/// Forward, loss and backward of one batch, split over the contexts (one pool task each).
/// Returns (summed loss, correct predictions).
fn step_parts(
    net: &Sequential,
    lossf: &SoftmaxCrossEntropyLoss,
    parts: Vec<(NDArray, NDArray)>,
) -> Result<(f64, usize), mxgluon::Error> {
    let one = |x: &NDArray, y: &NDArray| -> Result<(f64, usize), mxgluon::Error> {
        let (out, loss) = {
            let _rec = autograd::record();
            let out = net.forward(x)?;
            let loss = lossf.loss(&out, y, None)?;
            (out, loss)
        };
        loss.backward()?;
        let l: f64 = loss.to_f32_vec().iter().map(|&v| v as f64).sum();
        Ok((l, correct(&out, y)))
    };
    let results = parallel_map(&parts, |(x, y)| one(x, y))?;
    let mut total = (0.0, 0);
    for (l, c) in results {
        total.0 += l;
        total.1 += c;
    }
    Ok(total)
}

fn train(args: &TrainArgs) -> Result<(), Failure> {
    let cfg = parse(args)?;
    let data = load_data(args)?;
    let n_train = data.train.len();
    let features = data.train.data().shape().get(1).copied().unwrap_or(0);
    println!(
        "data: {} — {} training and {} test samples, {} features, {} classes",
        data.name,
        n_train,
        data.test.len(),
        features,
        data.classes
    );
    random::seed(args.seed);
    let net = build_net(&cfg.hidden, data.classes)?;
    net.initialize(Some(init::Xavier::default().into()), cfg.ctxs.clone())?;
    let params = net.collect_params()?;
    let mut trainer = Trainer::new(
        &params,
        (args.optimizer.as_str(), &cfg.opt_options),
        TrainerOptions::default(),
    )?;
    let layers: Vec<String> = std::iter::once(features)
        .chain(cfg.hidden.iter().copied())
        .chain(std::iter::once(data.classes))
        .map(|n| n.to_string())
        .collect();
    println!(
        "model: MLP {} (ReLU), optimizer {} (lr {}), batch {} over [{}]",
        layers.join("-"),
        args.optimizer,
        args.lr,
        args.batch_size,
        cfg.ctxs
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let lossf = SoftmaxCrossEntropyLoss::new();
    let mut loader = DataLoader::new(data.train.clone(), args.batch_size)?
        .shuffle(args.seed)
        .last_batch(LastBatch::Keep);
    let mut history = Vec::with_capacity(args.epochs);
    for epoch in 1..=args.epochs {
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(n_train as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix:>3} [{bar:30}] {pos}/{len} samples {per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(epoch.to_string());
            b
        };
        let start = Instant::now();
        let (mut loss_sum, mut hits, mut seen) = (0.0, 0usize, 0usize);
        for batch in loader.iter() {
            let (x, y) = batch?;
            let bs = x.shape()[0];
            let parts: Vec<(NDArray, NDArray)> = if bs < cfg.ctxs.len() {
                vec![(x.as_in_context(cfg.ctxs[0])?, y.as_in_context(cfg.ctxs[0])?)]
            } else {
                split_and_load(&x, &cfg.ctxs, false)?
                    .into_iter()
                    .zip(split_and_load(&y, &cfg.ctxs, false)?)
                    .collect()
            };
            let (l, c) = step_parts(&net, &lossf, parts)?;
            // A short last batch leaves some contexts without data: skip their stale grads.
            trainer.step_with(bs, bs < cfg.ctxs.len())?;
            loss_sum += l;
            hits += c;
            seen += bs;
            bar.inc(bs as u64);
            bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        let secs = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let train_acc = hits as f64 / seen.max(1) as f64;
        let test_acc = evaluate(&net, &data.test, cfg.ctxs[0])?;
        let loss = loss_sum / seen.max(1) as f64;
        println!(
            "epoch {epoch:>3}/{}  loss {loss:.4}  train acc {:.2}%  test acc {:.2}%  {:.0} samples/s",
            args.epochs,
            100.0 * train_acc,
            100.0 * test_acc,
            seen as f64 / secs.max(1e-9)
        );
        history.push(EpochPoint {
            epoch,
            loss,
            train_acc,
            test_acc,
        });
    }
    if let Some(last) = history.last() {
        println!("final test accuracy: {:.2}%", 100.0 * last.test_acc);
    }
    if let Some(path) = &args.save {
        net.save_parameters(path, false)?;
        println!("saved parameters to {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot_history(path, &history).map_err(Failure::Run)?;
        println!("saved plot to {}", path.display());
    }
    Ok(())
}
