"""Giving memory back during a long run: the process's freed heap, and the pages of files it has mapped.

Both matter to an ingest's peak memory, not to what it computes (BENCHMARKS.md, scale-out): glibc keeps freed
memory unless asked to return it, and a memory-mapped store (qdrant-edge's segments and write-ahead log) keeps every
page it has written resident in the process until the mapping is closed. Linux (glibc) only; elsewhere these do
nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any

MADV_DONTNEED = 4


def release_heap() -> None:
    """Give freed memory back to the OS (glibc keeps it otherwise: measured 0.5 GB per write batch)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


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
