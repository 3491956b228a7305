//! `mxgluon train` end to end: accuracy with the README's defaults, multi-context runs,
//! `--save`, `--plot`, `--data` with IDX files, and usage errors (exit code 2).

use std::path::PathBuf;
use std::process::{Command, Output};

use mxgluon::gluon::data::vision::Digits;
use mxgluon::gluon::nn::{Dense, Sequential};
use mxgluon::gluon::{Block, LoadParams};

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
    let d = std::env::temp_dir().join(format!("mxgluon-train-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The last "final test accuracy: XX.XX%" of the output, as a fraction.
fn final_accuracy(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("final test accuracy:"))
        .unwrap_or_else(|| panic!("no final accuracy line in:\n{stdout}"));
    let pct = line
        .trim_start_matches("final test accuracy:")
        .trim()
        .trim_end_matches('%');
    pct.parse::<f64>().unwrap() / 100.0
}

#[test]
fn defaults_reach_95_percent_and_save_loadable_parameters() {
    let dir = tmp("defaults");
    let params = dir.join("digits.params");
    let plot = dir.join("curves.png");
    let out = run(&[
        "train",
        "--quiet",
        "--save",
        params.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    let epochs = stdout.lines().filter(|l| l.starts_with("epoch ")).count();
    assert_eq!(epochs, 20, "{stdout}");
    assert!(stdout.contains("samples/s"), "{stdout}");
    let acc = final_accuracy(&stdout);
    assert!(acc >= 0.95, "test accuracy {acc} < 0.95\n{stdout}");

    // The saved file loads into the same architecture and reproduces the accuracy.
    let net = Sequential::new();
    {
        let _s = net.name_scope();
        net.add(
            Dense::builder(128)
                .in_units(64)
                .activation(mxgluon::nd::ActType::Relu)
                .build()
                .unwrap(),
        );
        net.add(
            Dense::builder(64)
                .in_units(128)
                .activation(mxgluon::nd::ActType::Relu)
                .build()
                .unwrap(),
        );
        net.add(Dense::builder(10).in_units(64).build().unwrap());
    }
    net.load_parameters(&params, &LoadParams::default())
        .unwrap();
    let test = Digits::test().unwrap();
    let out = net.forward(test.data()).unwrap().to_f32_vec();
    let labels = test.label().to_f32_vec();
    let hits = out
        .chunks(10)
        .zip(&labels)
        .filter(|(r, &l)| (0..10).fold(0, |b, i| if r[i] > r[b] { i } else { b }) == l as usize)
        .count();
    // The printed accuracy has two decimals (in percent).
    assert!((hits as f64 / labels.len() as f64 - acc).abs() < 6e-5);

    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_contexts_and_other_optimizers_train() {
    let out = run(&[
        "train",
        "--quiet",
        "--ctx",
        "cpu(0),cpu(1)",
        "--optimizer",
        "adam",
        "--lr",
        "0.005",
        "--optimizer-params",
        "",
        "--epochs",
        "8",
        "--hidden",
        "64",
        "--batch-size",
        "50",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    assert!(stdout.contains("over [cpu(0), cpu(1)]"), "{stdout}");
    assert!(final_accuracy(&stdout) >= 0.9, "{stdout}");
}

#[test]
fn data_dir_reads_idx_files() {
    // Write the embedded digits out as IDX files (plain and gzipped) and train on them.
    let dir = tmp("idx");
    for (train, images, labels) in [
        (
            true,
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte.gz",
        ),
        (false, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte"),
    ] {
        let ds = if train {
            Digits::train()
        } else {
            Digits::test()
        }
        .unwrap();
        let n = ds.len();
        let img = ds
            .data()
            .mul_scalar(255.0)
            .unwrap()
            .add_scalar(0.5)
            .unwrap()
            .astype(mxgluon::DType::UInt8)
            .unwrap()
            .reshape(&[n, 8, 8])
            .unwrap();
        let lab = ds.label().astype(mxgluon::DType::UInt8).unwrap();
        mxgluon::io::idx::save(dir.join(images), &img).unwrap();
        mxgluon::io::idx::save(dir.join(labels), &lab).unwrap();
    }
    let out = run(&[
        "train",
        "--quiet",
        "--epochs",
        "3",
        "--data",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    assert!(stdout.contains("IDX files in"), "{stdout}");
    assert!(final_accuracy(&stdout) > 0.8, "{stdout}");

    let empty = tmp("idx-empty");
    let out = run(&["train", "--quiet", "--data", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("train-images-idx3-ubyte"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn bad_options_exit_with_code_2_and_say_why() {
    for (args, needle) in [
        (vec!["--ctx", "gpu(x)"], "--ctx"),
        (vec!["--ctx", "cpu(0),cpu(0)"], "twice"),
        (vec!["--hidden", "128,abc"], "--hidden"),
        (vec!["--optimizer", "sgdd"], "sgdd"),
        (
            vec!["--optimizer-params", "momentum=lots"],
            "--optimizer-params",
        ),
        (vec!["--lr", "-1"], "--lr"),
        (vec!["--epochs", "0"], "--epochs"),
        (
            vec!["--batch-size", "1", "--ctx", "cpu(0),cpu(1)"],
            "--batch-size",
        ),
        (vec!["--data", "/nonexistent/mxgluon"], "--data"),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ] {
        let mut all = vec!["train"];
        all.extend(args.iter().copied());
        let out = run(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(needle), "{all:?}: {err}");
    }
}
