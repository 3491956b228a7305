//! The seed example: a fully-connected layer whose weight and bias are Gluon-style parameters.
//!
//! Run with `cargo run --release -p mxgluon --example seed`.

use mxgluon::{init, nd, Context, Parameter};

fn main() -> mxgluon::Result<()> {
    let ctx = Context::cpu(0);
    let x = nd::zeros(&[16, 100], ctx)?;
    let w = Parameter::new("fc_weight")
        .with_shape([64, 100])
        .with_init(init::Xavier::default());
    let b = Parameter::new("fc_bias")
        .with_shape([64])
        .with_init(init::Zero);
    w.initialize(ctx)?;
    b.initialize(ctx)?;
    let out = nd::fully_connected(&x, &w.data(ctx)?, Some(&b.data(ctx)?), 64)?;
    assert_eq!(out.shape(), &[16, 64]);
    println!("{w}\n{b}\nout: {out}");
    Ok(())
}
