#!/usr/bin/env bash
# Set up (if needed), start the local Neo4j server for the Neo4j tests (if it can run here and is not
# already running), and run the whole test suite with pytest. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1

# the Neo4j Browser test drives Debian's Chromium; install it where we may (root, apt)
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  ./scripts/install-browser.sh || exit 1
fi

started_neo4j=0
if [ -z "${NEO4J_URI:-}" ] && command -v java >/dev/null && command -v mvn >/dev/null; then
  if ! ./scripts/neo4j-dev.sh status >/dev/null 2>&1; then
    ./scripts/neo4j-dev.sh start || exit 1
    started_neo4j=1
  fi
fi
stop_neo4j() { [ "$started_neo4j" = 1 ] && ./scripts/neo4j-dev.sh stop >/dev/null 2>&1; }
trap stop_neo4j EXIT

# .venv/bin/pytest (not `python -m pytest`) keeps the repository root off sys.path, so the tests
# import kgbuild as installed: connectors/ is reachable only as kgbuild.connectors.
# Two pytest-xdist workers; the tests of shared services (Neo4j, a local Ray, the repository's scripts) stay in
# one of them, in order (tests/conftest.py). KGBUILD_TEST_WORKERS=0 runs everything in this process.
.venv/bin/pytest -n "${KGBUILD_TEST_WORKERS:-2}" --dist loadgroup "$@"
