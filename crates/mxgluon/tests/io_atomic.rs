//! Saves are atomic: a process killed in the middle of a save leaves the previous file
//! intact. The writer is this test binary itself, started again with `MXGLUON_SAVE_LOOP` set
//! so that only `helper_save_loop` runs (and saves a large file over and over).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mxgluon::io::{self, ArrayList};
use mxgluon::nd::NDArray;
use mxgluon::{Context, DType};

const ENV: &str = "MXGLUON_SAVE_LOOP";
/// Elements per array: two arrays of 16 MiB each.
const N: usize = 4 << 20;

fn data(value: f64) -> ArrayList {
    let a = NDArray::full(&[N], value, DType::Float32, Context::cpu(0)).unwrap();
    let b = NDArray::full(&[N / 4, 4], value, DType::Float32, Context::cpu(0)).unwrap();
    ArrayList::from(vec![("a", a), ("b", b)])
}

/// Checks that `path` holds one complete save: both arrays, every value the same.
fn check_intact(path: &Path) -> f32 {
    let l = io::load(path).unwrap_or_else(|e| panic!("the file is torn: {e}"));
    let a = l
        .get("a")
        .unwrap()
        .to_dense()
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let b = l
        .get("b")
        .unwrap()
        .to_dense()
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!((a.len(), b.len()), (N, N));
    let v = a[0];
    assert!(a.iter().chain(&b).all(|&x| x == v), "mixed contents");
    v
}

/// The writer: saves forever (until killed), each time with a new value.
#[test]
fn helper_save_loop() {
    let Ok(target) = std::env::var(ENV) else {
        return;
    };
    let ext = Path::new(&target)
        .extension()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for i in 1.. {
        let d = data(i as f64);
        match ext.as_str() {
            "params" => mxgluon::nd::save(&target, &d).unwrap(),
            _ => io::save(&target, &d).unwrap(),
        }
    }
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count()
}

fn kill_mid_save(dir: &Path, name: &str, delays_ms: &[u64]) {
    let target: PathBuf = dir.join(name);
    io::save(&target, &data(0.0)).unwrap();
    for &delay in delays_ms {
        let before = check_intact(&target);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "helper_save_loop",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, &target)
            .spawn()
            .unwrap();
        // wait until a save is in progress (its temporary file exists)
        let start = Instant::now();
        let tmp_before = temp_files(dir);
        while temp_files(dir) <= tmp_before {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the writer never started a save"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the writer exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let after = check_intact(&target);
        assert!(after >= before, "went back from {before} to {after}");
    }
}

#[test]
fn killing_a_save_midway_leaves_the_previous_file_intact() {
    let dir = std::env::temp_dir().join(format!("mxgluon-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    kill_mid_save(&dir, "w.params", &[0, 3, 20]);
    kill_mid_save(&dir, "w.safetensors", &[0, 7]);
    kill_mid_save(&dir, "w.npz", &[2]);
    std::fs::remove_dir_all(&dir).ok();
}
