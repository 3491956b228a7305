#!/usr/bin/env bash
# Fuzzes every file reader (fuzz/: params, safetensors, npy, npz, idx) for a bounded time each.
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh [TARGET...]
#
# Needs a nightly toolchain (rustup toolchain install nightly) and cargo-fuzz (installed here
# on first use with `cargo install cargo-fuzz`). Seeds come from MXNet's golden files,
# converted to each format with the mxgluon CLI, and (idx) the embedded digits files, gzipped
# and plain. Inputs are capped at 64 KiB and any single allocation above 128 MiB counts as a
# failure (readers must not allocate beyond their input; deflated npz members and gzipped IDX
# files may inflate up to 1032x, i.e. 66 MiB here). Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(params safetensors npy npz idx symbol_json)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "a nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

golden="../shared/reference/mxnet-golden"
echo "== seed corpora"
cargo build -q -p mxgluon-cli
cli=target/debug/mxgluon
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
done
if [ -d "$golden" ]; then
    for f in "$golden"/*.params; do
        name="$(basename "$f" .params)"
        [ -d fuzz/corpus/params ] && cp "$f" "fuzz/corpus/params/$name.params"
        for ext in safetensors npz; do
            [ -d "fuzz/corpus/$ext" ] && "$cli" convert "$f" "fuzz/corpus/$ext/$name.$ext" >/dev/null 2>&1 || true
        done
    done
    [ -d fuzz/corpus/npy ] && "$cli" convert "$golden/ctx_cpu3.params" fuzz/corpus/npy/ctx.npy >/dev/null 2>&1 || true
fi
if [ -d fuzz/corpus/idx ]; then
    for f in crates/mxgluon/data/digits/*.gz; do
        cp "$f" fuzz/corpus/idx/
        gzip -dc "$f" > "fuzz/corpus/idx/$(basename "$f" .gz)"
    done
fi
if [ -d fuzz/corpus/symbol_json ] && [ -f "$golden/mlp-symbol.json" ]; then
    cp "$golden/mlp-symbol.json" fuzz/corpus/symbol_json/
fi

status=0
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    if ! (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- \
            -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=128); then
        echo "!! $t found a failure: see fuzz/artifacts/$t/" >&2
        status=1
    fi
done
exit $status
