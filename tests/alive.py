"""How many objects of some classes are alive: what the memory tests check is let go of (gc-tracked objects only)."""

from __future__ import annotations

import gc


def alive(*kinds: type) -> tuple[int, ...]:
    """The number of live instances of each of ``kinds``, after a collection."""
    gc.collect()
    counts = [0] * len(kinds)
    for obj in gc.get_objects():
        for i, kind in enumerate(kinds):
            if isinstance(obj, kind):
                counts[i] += 1
    return tuple(counts)
