//! A custom training loop with a `Trainer`: Gluon's recipe (record, forward, loss, backward,
//! `trainer.step(batch_size)`) on a toy classification problem, with a learning-rate change
//! half way and the optimizer state saved at the end.
//!
//! Run with `cargo run --release -p mxgluon --example custom_training_loop`.

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::ActType;
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, random, Context, DType, NDArray};

fn main() -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    random::seed(3);
    // Four Gaussian blobs in 2-D; the class is the blob.
    let n = 512;
    let centers = [(-1.0f32, -1.0f32), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)];
    let noise = random::normal(0.0, 0.4, &[n, 2], DType::Float32, ctx)?.to_f32_vec();
    let mut xs = Vec::with_capacity(n * 2);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 4;
        xs.push(centers[c].0 + noise[2 * i]);
        xs.push(centers[c].1 + noise[2 * i + 1]);
        ys.push(c as f32);
    }
    let x = NDArray::from_vec(xs, &[n, 2], ctx)?;
    let y = NDArray::from_vec(ys, &[n], ctx)?;

    let net = Sequential::new();
    {
        let _scope = net.name_scope();
        net.add(Dense::builder(16).activation(ActType::Tanh).build()?);
        net.add(Dense::builder(4).build()?);
    }
    net.initialize(Some(init::Xavier::default().into()), ctx)?;
    let mut trainer = Trainer::new(
        &net.collect_params()?,
        ("adam", OptimizerOptions::new().set("learning_rate", 0.05)),
        TrainerOptions::default(),
    )?;
    let lossf = SoftmaxCrossEntropyLoss::new();
    let batch = 64;
    for epoch in 1..=20 {
        if epoch == 11 {
            let lr = trainer.learning_rate();
            trainer.set_learning_rate(lr / 5.0)?;
        }
        let mut total = 0.0;
        for start in (0..n).step_by(batch) {
            let xb = x.slice_axis0(start, start + batch)?;
            let yb = y.slice_axis0(start, start + batch)?;
            let loss = {
                let _rec = autograd::record();
                lossf.loss(&net.forward(&xb)?, &yb, None)?
            };
            loss.backward()?;
            trainer.step(batch)?;
            total += loss.to_f32_vec().iter().sum::<f32>();
        }
        if epoch % 5 == 0 {
            println!(
                "epoch {epoch:2}: mean loss {:.4} (lr {})",
                total / n as f32,
                trainer.learning_rate()
            );
        }
    }
    let states = std::env::temp_dir().join("custom_training_loop.states");
    trainer.save_states(&states)?;
    println!("optimizer state saved to {}", states.display());
    Ok(())
}
