//! `mxgluon run`: an exported graph run from the command line on `.npy` input, with the same
//! outputs as the library, and its errors (unsupported operator, missing parameter, shape
//! mismatch, inconsistent options).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mxgluon::gluon::nn::{Activation, BatchNorm, Dense, Sequential};
use mxgluon::gluon::Block;
use mxgluon::io::npy;
use mxgluon::nd::{self, ActType};
use mxgluon::{init, Context};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mxgluon"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-cli-run-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exports a small MLP (Dense, BatchNorm, relu, Dense) to `dir/mlp` and returns it with an input.
fn exported_mlp(dir: &Path) -> (Sequential, nd::NDArray) {
    let net = Sequential::new();
    net.add(Dense::builder(8).in_units(5).build().unwrap());
    net.add(BatchNorm::builder().in_channels(8).build().unwrap());
    net.add(Activation::new(ActType::Relu));
    net.add(Dense::builder(3).in_units(8).build().unwrap());
    mxgluon::random::seed(7);
    net.initialize(Some(init::Xavier::default().into()), Context::cpu(0))
        .unwrap();
    net.export(dir.join("mlp"), 0).unwrap();
    let x = mxgluon::random::uniform(-1.0, 1.0, &[4, 5], mxgluon::DType::Float32, Context::cpu(0))
        .unwrap();
    npy::save(dir.join("x.npy"), &x).unwrap();
    (net, x)
}

#[test]
fn runs_an_exported_graph_like_the_library() {
    let dir = tmp("ok");
    let (net, x) = exported_mlp(&dir);
    let out = run(&[
        "run",
        s(&dir.join("mlp-symbol.json")),
        s(&dir.join("mlp-0000.params")),
        "--input",
        s(&dir.join("x.npy")),
        "--output",
        s(&dir.join("y.npy")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(4, 3)"),
        "{}",
        text(&out.stdout)
    );
    let got = npy::load(dir.join("y.npy"))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let want = net.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got.len(), 12);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_problem() {
    let dir = tmp("err");
    exported_mlp(&dir);
    let sym = dir.join("mlp-symbol.json");
    let params = dir.join("mlp-0000.params");
    let base = |sym: &Path, params: &Path, x: &Path| -> Output {
        run(&[
            "run",
            s(sym),
            s(params),
            "--input",
            s(x),
            "--output",
            s(&dir.join("y.npy")),
        ])
    };

    // An operator the executor does not know.
    let json = std::fs::read_to_string(&sym).unwrap();
    let bad = dir.join("bad-symbol.json");
    std::fs::write(&bad, json.replacen("\"Activation\"", "\"MyCustomOp\"", 1)).unwrap();
    let out = base(&bad, &params, &dir.join("x.npy"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("MyCustomOp"),
        "{}",
        text(&out.stderr)
    );

    // A parameter missing from the file.
    let list = nd::load(&params).unwrap().into_arrays();
    let mxgluon::io::ArrayList::Dict(mut entries) = list else {
        panic!("a dict")
    };
    let (dropped, _) = entries.remove(0);
    let short = dir.join("short.params");
    nd::save(&short, &mxgluon::io::ArrayList::Dict(entries)).unwrap();
    let out = base(&sym, &short, &dir.join("x.npy"));
    assert_eq!(out.status.code(), Some(1));
    let name = dropped
        .trim_start_matches("arg:")
        .trim_start_matches("aux:");
    assert!(text(&out.stderr).contains(name), "{}", text(&out.stderr));

    // An input whose shape does not fit the weights.
    let wrong = dir.join("wrong.npy");
    npy::save(&wrong, &nd::ones(&[4, 7], None).unwrap()).unwrap();
    let out = base(&sym, &params, &wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stderr).is_empty());

    // Inconsistent options: two input names for one input.
    let out = run(&[
        "run",
        s(&sym),
        s(&params),
        "--input",
        s(&dir.join("x.npy")),
        "--input-name",
        "data",
        "--input-name",
        "extra",
        "--output",
        s(&dir.join("y.npy")),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
