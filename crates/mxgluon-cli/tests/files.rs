//! The file subcommands end to end: `inspect`, `convert`, `diff`, their output, exit codes
//! and error messages, on MXNet's golden files and on files made here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mxgluon::io::{self, ArrayList};
use mxgluon::nd::{self, NDArray};
use mxgluon::{Context, DType};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mxgluon"))
}

fn golden(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/mxnet-golden"
    ))
    .join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxgluon-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn inspect_prints_a_table_with_statistics() {
    let out = run(&["inspect", golden("sparse_dict.params").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("params dict, 5 entries, 747 B"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("rsp_half") && l.contains("(8, 3)") && l.contains("row_sparse")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("csr_empty") && l.contains("csr")),
        "{s}"
    );
    assert!(s.contains("total: 5 entries, 73 elements"), "{s}");
    let out = run(&["inspect", golden("ctx_cpu3.params").to_str().unwrap()]);
    assert!(text(&out.stdout).contains("saved from cpu(3)"));
}

#[test]
fn inspect_json_follows_the_documented_schema() {
    let out = run(&[
        "inspect",
        "--json",
        golden("mlp_save_parameters.params").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "params");
    assert_eq!(v["kind"], "dict");
    assert_eq!(v["file_bytes"], 1084);
    let e = &v["entries"][0];
    assert_eq!(e["name"], "0.weight");
    assert_eq!(e["shape"], serde_json::json!([16, 8]));
    assert_eq!(
        (e["dtype"].as_str(), e["stype"].as_str()),
        (Some("float32"), Some("default"))
    );
    assert_eq!(e["bytes"], 512);
    assert_eq!(e["record"]["version"], "V2");
    assert_eq!(e["record"]["saved_context"], "cpu(0)");
    assert_eq!(e["stats"]["count"], 128);
    for k in ["min", "max", "mean", "std"] {
        assert!(e["stats"][k].is_f64(), "{k}");
    }
    assert_eq!(v["totals"]["entries"], 4);
    assert_eq!(v["totals"]["elements"], 16 * 8 + 16 + 4 * 16 + 4);
    // --no-stats leaves stats null
    let out = run(&[
        "inspect",
        "--json",
        "--no-stats",
        golden("mlp-0000.params").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["entries"][0]["stats"].is_null());
    assert_eq!(
        v["entries"][0]["name"],
        "arg:hybridsequential0_dense0_weight"
    );
}

#[test]
fn inspect_reports_nan_and_handles_every_format() {
    let d = tmp("nan");
    let a = NDArray::from_vec(vec![1.0f32, f32::NAN, 3.0], &[3], Context::cpu(0)).unwrap();
    for name in ["a.npy", "a.npz", "a.safetensors", "a.params"] {
        let p = d.join(name);
        io::save(&p, &ArrayList::from(vec![("a", a.clone())])).unwrap();
        let out = run(&["inspect", "--json", p.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let st = &v["entries"][0]["stats"];
        assert_eq!(
            (st["nan_count"].as_u64(), st["max"].as_f64()),
            (Some(1), Some(3.0)),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn convert_round_trips_through_every_format() {
    let d = tmp("conv");
    let src = golden("dtypes_dict.params");
    let chain = ["x.safetensors", "x.npz", "x.params"];
    let mut prev = src.clone();
    for name in chain {
        let next = d.join(name);
        let out = run(&["convert", prev.to_str().unwrap(), next.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("8 arrays"),
            "{}",
            text(&out.stdout)
        );
        prev = next;
    }
    // identical values, dtypes and shapes (order aside)
    let out = run(&["diff", src.to_str().unwrap(), prev.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("8 identical, 0 different"));
    // sparse into safetensors: a warning per sparse array, values kept
    let st = d.join("s.safetensors");
    let out = run(&[
        "convert",
        golden("sparse_dict.params").to_str().unwrap(),
        st.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr).matches("warning:").count(),
        4,
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "diff",
        golden("sparse_dict.params").to_str().unwrap(),
        st.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    // a list into npz gets positional names; npy takes exactly one array
    let out = run(&[
        "convert",
        golden("dtypes_list.params").to_str().unwrap(),
        d.join("l.npz").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("arr_0"));
    let out = run(&[
        "convert",
        golden("dtypes_list.params").to_str().unwrap(),
        d.join("l.npy").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exactly one array"),
        "{}",
        text(&out.stderr)
    );
    // 0-d arrays need --np-shape for .params
    let v3 = golden("np_shape_v3.params");
    let out = run(&[
        "convert",
        v3.to_str().unwrap(),
        d.join("v.params").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("np_shape"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "convert",
        "--np-shape",
        v3.to_str().unwrap(),
        d.join("v.params").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(d.join("v.params")).unwrap(),
        std::fs::read(&v3).unwrap()
    );
    // compressed npz
    let out = run(&[
        "convert",
        "--compress",
        src.to_str().unwrap(),
        d.join("c.npz").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn diff_exit_codes() {
    let d = tmp("diff");
    let a = NDArray::from_vec(vec![1.0f32, 2.0, 3.0], &[3], Context::cpu(0)).unwrap();
    let b = NDArray::from_vec(vec![1.0f32, 2.0, 3.5], &[3], Context::cpu(0)).unwrap();
    let (pa, pb, pc) = (d.join("a.params"), d.join("b.npz"), d.join("c.safetensors"));
    nd::save(&pa, &vec![("w", a.clone()), ("v", a.clone())].into()).unwrap();
    io::save(&pb, &vec![("w", b), ("v", a.clone())].into()).unwrap();
    io::save(&pc, &vec![("w", a.astype(DType::Float64).unwrap())].into()).unwrap();
    let out = run(&["diff", pa.to_str().unwrap(), pa.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["diff", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("! w:") && s.contains("max |a-b| = 0.5"), "{s}");
    assert!(s.contains("= v:"), "{s}");
    let out = run(&[
        "diff",
        "--atol",
        "0.5",
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // dtype differences and missing entries differ
    let out = run(&["diff", pa.to_str().unwrap(), pc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(
        s.contains("dtype float32 vs float64") && s.contains("- v: only in"),
        "{s}"
    );
    // errors and bad options: 2
    let out = run(&[
        "diff",
        pa.to_str().unwrap(),
        d.join("missing.params").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.params"));
    assert_eq!(run(&["diff", pa.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(
        run(&["diff", "--atol", "x", "a", "b"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&[
            "diff",
            "--atol=-1",
            pa.to_str().unwrap(),
            pa.to_str().unwrap()
        ])
        .status
        .code(),
        Some(2)
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_files_and_options_give_clear_errors() {
    let d = tmp("bad");
    let junk = d.join("junk.params");
    std::fs::write(
        &junk,
        b"\x12\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\x0f",
    )
    .unwrap();
    let out = run(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.contains("junk.params") && e.contains("at byte 16") && e.contains("array count"),
        "{e}"
    );
    let out = run(&["inspect", "--frobnicate", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "convert",
        junk.to_str().unwrap(),
        d.join("x.bin").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown file format"));
    std::fs::remove_dir_all(&d).ok();
}
