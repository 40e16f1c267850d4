#!/usr/bin/env bash
# Create ./.venv with kgbuild and its pinned dependencies (uv.lock). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
  export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi
# Compile every module to bytecode now, once: without it each of the first runs compiled torch,
# transformers and the rest (~16,000 files) again, and the first `kgbuild query` took 30-35 s (BENCHMARKS.md, Q1).
uv sync --frozen --extra dev --python python3 --quiet --compile-bytecode
.venv/bin/python -m compileall -q -j 0 kgbuild connectors >/dev/null
echo "kgbuild is installed in $(pwd)/.venv (run .venv/bin/kgbuild --help)" >&2
