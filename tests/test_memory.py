"""kgbuild.memory: giving memory back during a long run (the rest of it is tested with the stores that use it,
tests/test_chunk_rows.py)."""

from __future__ import annotations

import os
import re
import sys
import tempfile

import pytest

from kgbuild.memory import settled


def _arenas() -> int:
    """Python's small-object arenas in use now (CPython's allocator statistics, written to the C stderr)."""
    fd, path = tempfile.mkstemp()
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    os.remove(path)
    found = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    assert found, "CPython's allocator statistics changed their wording"
    return int(found.group(1).replace(",", ""))


def _survivors_of_a_busy_pass() -> list[tuple[str, int, str]]:
    """One object in a thousand of a pass that makes many short-lived ones, as the links across documents are."""
    scratch = [("made on the way", 1_000_000 + i, f"name {i}") for i in range(300_000)]
    return [scratch[i] for i in range(0, len(scratch), 1000)]


@pytest.mark.skipif(not hasattr(sys, "_debugmallocstats"), reason="CPython's small-object allocator only")
def test_settled_gives_an_equal_value_without_the_arenas_its_making_filled():
    expected = [("made on the way", 1_000_000 + i, f"name {i}") for i in range(0, 300_000, 1000)]

    before = _arenas()
    plain = _survivors_of_a_busy_pass()
    pinned = _arenas() - before
    assert plain == expected
    del plain

    before = _arenas()
    copy = settled(_survivors_of_a_busy_pass)
    kept = _arenas() - before
    assert copy == expected
    # the plain result keeps tens of 1 MiB arenas alive for 300 small tuples; the settled copy none of them
    assert pinned >= 10, f"the control kept only {pinned} arenas: the test no longer shows what it checks"
    assert kept <= 2, f"the settled result still holds {kept} arenas (the plain one held {pinned})"
