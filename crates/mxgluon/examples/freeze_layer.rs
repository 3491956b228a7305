//! Fine-tuning with a frozen layer: `grad_req = null` on the first layer's parameters (selected
//! by a regular expression) keeps them fixed, holds no gradient memory, and the Trainer skips
//! them.
//!
//! Run with `cargo run --release -p mxgluon --example freeze_layer`.

use mxgluon::gluon::loss::{Loss, SoftmaxCrossEntropyLoss};
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::{Block, Trainer, TrainerOptions};
use mxgluon::nd::ActType;
use mxgluon::optimizer::OptimizerOptions;
use mxgluon::{autograd, init, random, Context, DType, GradReq, NDArray};

fn main() -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    random::seed(5);
    let n = 256;
    let x = random::uniform(-1.0, 1.0, &[n, 8], DType::Float32, ctx)?;
    let labels: Vec<f32> = x
        .to_f32_vec()
        .chunks(8)
        .map(|r| if r[0] + r[1] > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let y = NDArray::from_vec(labels, &[n], ctx)?;

    let net = Sequential::with_prefix(Some("model_"), None);
    {
        let _scope = net.name_scope();
        net.add(Dense::builder(16).activation(ActType::Relu).build()?); // model_dense0_
        net.add(Dense::builder(2).build()?); // model_dense1_
    }
    net.initialize(Some(init::Xavier::default().into()), ctx)?;
    net.forward(&x)?; // completes the deferred shapes

    // Freeze the first layer.
    let frozen = net.collect_params_select("model_dense0_.*")?;
    frozen.set_grad_req(GradReq::Null)?;
    let before: Vec<Vec<f32>> = frozen
        .values()
        .iter()
        .map(|p| p.data(ctx).map(|d| d.to_f32_vec()))
        .collect::<mxgluon::Result<_>>()?;

    let mut trainer = Trainer::new(
        &net.collect_params()?,
        ("sgd", OptimizerOptions::new().set("learning_rate", 0.5)),
        TrainerOptions::default(),
    )?;
    let lossf = SoftmaxCrossEntropyLoss::new();
    for epoch in 1..=20 {
        let loss = {
            let _rec = autograd::record();
            lossf.loss(&net.forward(&x)?, &y, None)?
        };
        loss.backward()?;
        trainer.step(n)?;
        if epoch % 5 == 0 {
            println!(
                "epoch {epoch:2}: mean loss {:.4}",
                loss.mean()?.to_f32_vec()[0]
            );
        }
    }
    for (p, old) in frozen.values().iter().zip(&before) {
        assert_eq!(&p.data(ctx)?.to_f32_vec(), old);
        assert!(p.grad(ctx).is_err(), "a frozen parameter keeps no gradient");
        println!("{} stayed frozen (grad_req {:?})", p.name(), p.grad_req());
    }
    Ok(())
}
