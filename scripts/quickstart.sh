#!/usr/bin/env bash
# Set up, then ingest a folder on the embedded defaults (NetworkX graph + qdrant-edge vectors in ./.kgbuild).
#   scripts/quickstart.sh [FOLDER] [more kgbuild ingest flags, e.g. --model PATH]
# FOLDER defaults to the small sample corpus in notebooks/sample-corpus; flags may come first
# (scripts/quickstart.sh --model PATH ingests the sample). Relative paths are taken from where you run it.
set -euo pipefail
here="$(pwd)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
"$repo/scripts/setup.sh"
folder="$repo/notebooks/sample-corpus"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  folder="$1"
  shift
fi
if [ ! -e "$folder" ]; then
  echo "quickstart: no folder '$folder' (run it with no folder to ingest the sample in notebooks/sample-corpus)" >&2
  exit 2
fi
cd "$here"
exec "$repo/.venv/bin/kgbuild" ingest "$folder" "$@"
