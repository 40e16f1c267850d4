#!/usr/bin/env bash
# Create ./.venv with kgbuild and its pinned dependencies (uv.lock). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
  export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi
uv sync --frozen --extra dev --python python3 --quiet
echo "kgbuild is installed in $(pwd)/.venv (run .venv/bin/kgbuild --help)" >&2
