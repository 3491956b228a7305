#!/usr/bin/env bash
# One command for the whole comparison: builds the mxgluon bench binary, sets up the peers
# (MXNet 1.9.1, PyTorch) in cached venvs outside the repository, runs every workload in each
# implementation one after another, and writes bench/RESULTS.md. See bench/README.md.
#
#   bench/run.sh [--quick] [--no-peers] [--filter NAME]
#
# Environment: MXGLUON_BENCH_CACHE (venv cache, default ~/.cache/mxgluon-bench),
#              PYTHON (interpreter the venvs are made from, default python3).
# A peer that cannot be set up or fails is recorded in RESULTS.md; the run goes on.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MXGLUON_BENCH_CACHE:-$HOME/.cache/mxgluon-bench}"
PYTHON="${PYTHON:-python3}"
OUT="$ROOT/bench/out"
COMMAND="bench/run.sh$(printf ' %q' "$@")"

TOOL_ARGS=()
PEERS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) TOOL_ARGS+=(--quick) ;;
        --no-peers) PEERS=0 ;;
        --filter)
            [ $# -ge 2 ] || { echo "--filter needs a workload name" >&2; exit 2; }
            TOOL_ARGS+=(--filter "$2"); shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

mkdir -p "$OUT" "$CACHE"
rm -f "$OUT"/*.jsonl "$OUT"/*.err
STATUS="$OUT/status.jsonl"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# status IMPL ok|failed|skipped DETAIL: one JSON line for report.py.
status() {
    python3 -c 'import json,sys; print(json.dumps({"impl": sys.argv[1], "status": sys.argv[2], "detail": sys.argv[3]}))' \
        "$1" "$2" "$3" >>"$STATUS"
}

# The last lines of a file, on one line, for a status detail.
tail_of() { tail -n "${2:-3}" "$1" 2>/dev/null | tr '\n' ' ' | cut -c1-400; }

load1() { cut -d' ' -f1 /proc/loadavg; }

# ensure_venv NAME CHECK_PY PIP_ARGS...: makes $CACHE/NAME unless a working one exists.
# CHECK_PY must exit 0 in a usable venv; a lock keeps concurrent runs from installing twice.
ensure_venv() {
    local name="$1" check="$2"
    shift 2
    local venv="$CACHE/$name" logf="$CACHE/$name-install.log"
    (
        flock 9
        if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
            log "$name: existing install works, reusing $venv"
            exit 0
        fi
        log "$name: installing $* into $venv (log: $logf)"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv" >"$logf" 2>&1 &&
            "$venv/bin/python" -m pip install "$@" >>"$logf" 2>&1 &&
            "$venv/bin/python" -c "$check" >>"$logf" 2>&1
    ) 9>"$CACHE/.$name.lock"
}

# run_tool IMPL OUTFILE CMD...: runs one tool, records its status.
run_tool() {
    local impl="$1" outf="$2"
    shift 2
    log "$impl: running (load $(load1))"
    local rc=0
    "$@" >"$outf" 2>"$OUT/$impl.err" || rc=$?
    if [ "$rc" = 0 ]; then
        status "$impl" ok "$(grep -c '"workload"' "$outf") figures"
    else
        log "$impl: failed (exit $rc), see $OUT/$impl.err"
        status "$impl" failed "exit $rc: $(tail_of "$OUT/$impl.err")"
    fi
}

LOAD_BEFORE="$(load1)"
if awk -v l="$LOAD_BEFORE" 'BEGIN { exit !(l > 1.0) }'; then
    log "warning: load average $LOAD_BEFORE on $(nproc) CPU(s): other jobs are running, figures will be noisy"
fi

# 1. ours
log "building mxgluon-bench (release)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mxgluon-bench"
if (cd "$ROOT" && cargo build --release -p mxgluon-bench) 2>"$OUT/build.err"; then
    run_tool ours "$OUT/ours.jsonl" "$BIN" "${TOOL_ARGS[@]}"
else
    log "build failed, see $OUT/build.err"
    status ours failed "cargo build --release -p mxgluon-bench failed: $(grep -m3 '^error' "$OUT/build.err" | tr '\n' ' ' | cut -c1-400)"
fi

# 2. peers, one after another so that they never share the two cores
if [ "$PEERS" = 1 ]; then
    if ensure_venv venv-mxnet \
        'import numpy, mxnet; assert numpy.__version__ == "1.23.5" and mxnet.__version__ == "1.9.1"; mxnet.nd.ones((2,)).asnumpy()' \
        numpy==1.23.5 mxnet==1.9.1; then
        # MXNet uses one OpenMP thread here unless told; OPENBLAS_* stays as the machine sets it
        # (its bundled OpenBLAS 0.3.13 falls back to an SSE kernel without OPENBLAS_CORETYPE).
        run_tool mxnet "$OUT/mxnet.jsonl" env OMP_NUM_THREADS=2 \
            "$CACHE/venv-mxnet/bin/python" "$ROOT/bench/peers/mxnet_bench.py" "${TOOL_ARGS[@]}"
        # topic scripts (sparse embedding steps, resnet18 inference), one process each
        for extra in mxnet_sparse mxnet_resnet; do
            [ -f "$ROOT/bench/peers/$extra.py" ] || continue
            run_tool "$extra" "$OUT/$extra.jsonl" env OMP_NUM_THREADS=2 \
                "$CACHE/venv-mxnet/bin/python" "$ROOT/bench/peers/$extra.py" "${TOOL_ARGS[@]}"
        done
    else
        status mxnet failed "venv setup failed (log: $CACHE/venv-mxnet-install.log): $(tail_of "$CACHE/venv-mxnet-install.log")"
    fi

    # PyPI's default torch wheel pulls several GB of CUDA libraries: installed once, then reused.
    if ensure_venv venv-torch 'import torch; torch.ones(2).sum().item()' torch numpy; then
        run_tool torch "$OUT/torch.jsonl" env OMP_NUM_THREADS=2 \
            "$CACHE/venv-torch/bin/python" "$ROOT/bench/peers/torch_bench.py" "${TOOL_ARGS[@]}"
        for extra in torch_sparse torch_resnet; do
            [ -f "$ROOT/bench/peers/$extra.py" ] || continue
            run_tool "$extra" "$OUT/$extra.jsonl" env OMP_NUM_THREADS=2 \
                "$CACHE/venv-torch/bin/python" "$ROOT/bench/peers/$extra.py" "${TOOL_ARGS[@]}"
        done
    else
        status torch failed "venv setup failed (log: $CACHE/venv-torch-install.log): $(tail_of "$CACHE/venv-torch-install.log")"
    fi
else
    status mxnet skipped "--no-peers"
    status torch skipped "--no-peers"
fi

# 3. report
python3 "$ROOT/bench/report.py" --out "$ROOT/bench/RESULTS.md" --command "$COMMAND" \
    --loads "$LOAD_BEFORE / $(load1)" "$OUT"/*.jsonl
log "done: $ROOT/bench/RESULTS.md"
