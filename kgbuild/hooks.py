"""Named points of a run that an observer can listen to: where a write becomes durable, where a
transaction is open, where a temporary file waits to be renamed.

Production code only announces the points (``reached``); it never acts on them. The crash tests
(``tests/crash_runner.py``) listen and SIGKILL the process at one of them, to prove that a run
killed anywhere is repaired by the next. With no listener, announcing a point costs one check.

The points: ``extract`` (after an extraction window), ``graph-written`` (graph written, vectors
not yet), ``vectors-written`` (both written, the state not yet), ``neo4j-transaction`` (inside
an open Neo4j write transaction), ``relink`` (the links across documents worked out, the documents
whose links changed not yet written again), ``write:<file name>`` (a temporary file written and fsynced,
not yet renamed over ``state.json``, ``journal.json`` or ``graph.json``).
"""

from __future__ import annotations

from typing import Callable

Listener = Callable[[str], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Call ``listener(point)`` at every point reached from now on; returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def reached(point: str) -> None:
    if _listeners:
        for listener in list(_listeners):
            listener(point)
