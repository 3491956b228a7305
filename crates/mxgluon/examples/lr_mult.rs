//! Per-layer learning rates: each parameter's `lr_mult` (and `wd_mult`) scales the Trainer's
//! learning rate (and weight decay) for that parameter, and changes take effect at the next
//! step — e.g. a pretrained body fine-tuned ten times slower than a new head.
//!
//! Run with `cargo run --release -p mxgluon --example lr_mult`.

use mxgluon::gluon::loss::{L2Loss, Loss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, random, Context, DType};

fn main() -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    random::seed(9);
    let x = random::uniform(-1.0, 1.0, &[64, 4], DType::Float32, ctx)?;
    let y = random::uniform(-1.0, 1.0, &[64, 1], DType::Float32, ctx)?;

    let net = Sequential::with_prefix(Some("net_"), None);
    {
        let _scope = net.name_scope();
        net.add(Dense::builder(8).in_units(4).build()?); // the "body"
        net.add(Dense::builder(1).in_units(8).build()?); // the "head"
    }
    net.initialize(Some(init::Xavier::default().into()), ctx)?;
    net.collect_params_select("net_dense0_.*")?.set_lr_mult(0.1);
    net.collect_params_select(".*bias")?.set_wd_mult(0.0);

    let mut trainer = Trainer::new(
        &net.collect_params()?,
        (
            "sgd",
            OptimizerOptions::new()
                .set("learning_rate", 0.1)
                .set("wd", 1e-3),
        ),
        TrainerOptions::default(),
    )?;
    let lossf = L2Loss::new();
    let snapshot = |net: &Sequential| -> mxgluon::Result<Vec<(String, Vec<f32>)>> {
        net.collect_params()?
            .items()
            .into_iter()
            .map(|(k, p)| Ok((k, p.data(ctx)?.to_f32_vec())))
            .collect()
    };
    let before = snapshot(&net)?;
    let loss = {
        let _rec = autograd::record();
        lossf.loss(&net.forward(&x)?, &y, None)?
    };
    loss.backward()?;
    trainer.step(64)?;
    let after = snapshot(&net)?;
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        let change: f32 = b.iter().zip(a).map(|(u, v)| (u - v).abs()).sum::<f32>() / b.len() as f32;
        let p = net.collect_params()?.get_param(name).expect("listed above");
        println!(
            "{name:18} lr_mult {:4} wd_mult {:3}  mean |step| {change:.2e}",
            p.lr_mult(),
            p.wd_mult()
        );
    }
    Ok(())
}
