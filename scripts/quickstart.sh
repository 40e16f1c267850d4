#!/usr/bin/env bash
# Set up, then ingest a folder on the embedded defaults (NetworkX graph + qdrant-edge vectors in ./.kgbuild).
#   scripts/quickstart.sh [FOLDER] [more kgbuild ingest flags, e.g. --model PATH]
# FOLDER defaults to the small sample corpus in notebooks/sample-corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
folder="${1:-notebooks/sample-corpus}"
[ $# -gt 0 ] && shift
exec .venv/bin/kgbuild ingest "$folder" "$@"
