"""Named crash points, so tests can kill a real ingest exactly where a crash would hurt.

``KGBUILD_CRASH_AT=NAME`` (or ``NAME@N`` for the N-th time the point is reached) makes the
process SIGKILL itself at that point: no cleanup, no ``finally``, like a power cut. Unset,
a crash point costs one dictionary lookup. The points: ``extract`` (after an extraction
window), ``graph-written`` (graph written, vectors not yet), ``vectors-written`` (both
written, the state not yet), ``neo4j-transaction`` (inside an open Neo4j write transaction),
``write:state.json`` / ``write:journal.json`` / ``write:graph.json`` (a temporary file
written, not yet renamed over the real one).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

CRASH_ENV = "KGBUILD_CRASH_AT"
_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
