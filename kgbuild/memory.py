"""Giving memory back during a long run: the process's freed heap, and the pages of files it has mapped.

Both matter to an ingest's peak memory, not to what it computes (BENCHMARKS.md, scale-out): glibc keeps freed
memory unless asked to return it, and a memory-mapped store (qdrant-edge's segments and write-ahead log) keeps every
page it has written resident in the process until the mapping is closed. Linux (glibc) only; elsewhere these do
nothing. And Python's own small-object allocator returns an arena only when nothing in it is alive (``settled``).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

MADV_DONTNEED = 4


def release_heap() -> None:
    """Give freed memory back to the OS (glibc keeps it otherwise: measured 0.5 GB per write batch)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def settled(make: Callable[[], T]) -> T:
    """``make()``'s result, copied once everything else ``make`` allocated is gone (a pickle round trip).

    Python's small-object allocator hands a 1 MiB arena back only when nothing in it is alive. A small result made
    among many short-lived objects has a few of its objects in each arena they filled, and keeps every one of those
    arenas resident for as long as it lives: the links across documents of 10,000 chunks, 0.2 MiB of objects made
    while every document's names were compared, kept 34 MiB of arenas through the rest of the run (BENCHMARKS.md,
    scale-out). The copy goes where objects already live, and the originals, with their arenas, are let go.
    The result must pickle; an equal value comes back."""
    data = pickle.dumps(make(), protocol=pickle.HIGHEST_PROTOCOL)  # make()'s result is dropped when dumps returns
    return pickle.loads(data)


def release_mapped_pages(folder: str | Path) -> int:
    """Drop from this process the resident pages of the shared file mappings under ``folder``; returns how many
    mappings. Safe for shared mappings only (the ones taken): their pages live in the page cache, written back by
    the kernel, and a later access reads them again from the file. Call it after the store has flushed."""
    if _LIBC is None:
        return 0
    prefix = os.path.realpath(folder) + os.sep
    released = 0
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            mappings = [line.split(maxsplit=5) for line in fh]
    except OSError:
        return 0
    for fields in mappings:
        if len(fields) < 6 or not fields[5].rstrip("\n").startswith(prefix) or fields[1][3:4] != "s":
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED) == 0:
            released += 1
    return released


def _load_libc() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - present in glibc only
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()
