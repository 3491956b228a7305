#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need first.
#
# - The Rust toolchain must be on PATH (cargo).
# - The MXNet interop tests need Python 3.11 with numpy 1.23.5 and mxnet 1.9.1: this script
#   creates that virtual environment once (cached outside the repo, in
#   ${MXGLUON_VENV:-$HOME/.cache/mxgluon/venv-mxnet}) and hands its interpreter to the tests
#   through MXGLUON_MXNET_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${MXGLUON_VENV:-$HOME/.cache/mxgluon/venv-mxnet}"
py="$venv/bin/python"
if ! "$py" -c 'import mxnet, numpy; assert mxnet.__version__ == "1.9.1"' >/dev/null 2>&1; then
    echo "== setting up MXNet 1.9.1 in $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check numpy==1.23.5 mxnet==1.9.1
fi
"$py" -c 'import mxnet; print("== MXNet", mxnet.__version__, "at", mxnet.__file__)'
export MXGLUON_MXNET_PYTHON="$py"

echo "== cargo test (unit, integration and doc tests)"
cargo test --workspace "$@"
