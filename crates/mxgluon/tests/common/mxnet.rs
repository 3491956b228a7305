//! Finding the MXNet 1.9.1 interpreter for the live tests.

/// The Python interpreter with MXNet 1.9.1 that `./scripts/test.sh` sets up and passes in
/// `MXGLUON_MXNET_PYTHON`. Without it the live checks print a note and are not run locally,
/// but under CI (`CI` set) that is a failure, so CI cannot silently skip them.
pub fn python() -> Option<String> {
    match std::env::var("MXGLUON_MXNET_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "MXGLUON_MXNET_PYTHON is not set: run the tests through ./scripts/test.sh"
            );
            eprintln!("note: MXGLUON_MXNET_PYTHON not set, MXNet live checks not run (use ./scripts/test.sh)");
            None
        }
    }
}

/// Runs `script` with the MXNet interpreter `py` (one OpenMP thread) and returns its stdout;
/// a failing script fails the test with Python's stderr and the script.
pub fn run_script(py: &str, script: &str) -> String {
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("failed to start the MXNet python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n--- script ---\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python printed non-UTF-8")
}
