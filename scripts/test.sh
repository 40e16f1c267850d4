#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite with pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# .venv/bin/pytest (not `python -m pytest`) keeps the repository root off sys.path, so the tests
# import kgbuild as installed: connectors/ is reachable only as kgbuild.connectors.
exec .venv/bin/pytest "$@"
