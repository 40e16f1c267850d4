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


def _survivors_of_a_busy_pass(peak: list[int]) -> list[tuple[str, int, str]]:
    """One object in a thousand of a pass that makes many short-lived ones, as the links across documents are;
    ``peak`` gets the arenas in use when the pass is at its largest."""
    scratch = [("made on the way", 1_000_000 + i, f"name {i}") for i in range(PASS_OBJECTS)]
    peak.append(_arenas())
    return [scratch[i] for i in range(0, len(scratch), 1000)]


PASS_OBJECTS = 600_000  # about 90 MiB: more than the free space a long test process leaves in its arenas


@pytest.mark.skipif(not hasattr(sys, "_debugmallocstats"), reason="CPython's small-object allocator only")
def test_settled_gives_an_equal_value_without_the_arenas_its_making_filled():
    expected = [("made on the way", 1_000_000 + i, f"name {i}") for i in range(0, PASS_OBJECTS, 1000)]

    before, peak = _arenas(), []
    plain = _survivors_of_a_busy_pass(peak)
    needed, kept_plain = peak[0] - before, _arenas() - before
    assert plain == expected
    del plain

    before, peak = _arenas(), []
    copy = settled(lambda: _survivors_of_a_busy_pass(peak))
    needed_settled, kept_settled = peak[0] - before, _arenas() - before
    assert copy == expected
    # the arenas the pass needed beyond the free space already there: a plain result keeps most of them alive for
    # 600 small tuples, the settled copy none
    assert min(needed, needed_settled) >= 10, f"the pass needed only {needed} and {needed_settled} new arenas"
    assert kept_plain >= needed // 2, f"the control kept {kept_plain} of {needed} arenas: the test shows nothing"
    assert kept_settled <= 2, f"the settled result still holds {kept_settled} of {needed_settled} arenas"
