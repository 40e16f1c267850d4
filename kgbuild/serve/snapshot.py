"""What ``kgbuild serve`` reads: committed states of an index, each frozen in a private snapshot folder.

Why a snapshot. The embedded stores admit one process at a time: a qdrant-edge shard is locked against
a second handle (``kgbuild query`` during an ingest gets "in use by another kgbuild process"), so a server
that held the live shard open would make every ``kgbuild ingest`` fail. The server therefore never opens
the live folder's stores. When the index is quiet (no process holds ``<out>/lock``, no ``journal.json``:
no run between checkpoints), it takes a snapshot of it under ``<out>/.serve/``:

- files that kgbuild only ever replaces by a rename (``state.json``, ``graph.json``, ``resolution.yaml``,
  every file of ``retrieval/`` and ``communities/``, written beside them and renamed into place) are hard-linked: a later ingest renames new files over the live names and
  the snapshot keeps the old inodes, so taking them costs nothing;
- the vector shard (``qdrant/``), which the engine changes in place, is copied.

The snapshot is checked after it is taken (the lock still free, the state and retrieval files unchanged:
an ingest that started meanwhile discards it), then opened read-only like any index. An ingest runs
unimpeded beside the server, which keeps answering from the previous snapshot until the ingest has
finished and the next one is taken, so a query never sees a half-written index. Stores that are servers
(Neo4j, a Qdrant server) are read live; only the local files are frozen, and hits of documents an
ingest is writing (those in ``journal.json``) are dropped.

Whether the lock is held is read from ``/proc/locks`` on Linux (nothing is locked, so a starting ingest
is never refused); elsewhere by taking and dropping a shared lock at once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from kgbuild.state import JOURNAL_FILE, LOCK_FILE, STATE_FILE

SNAPSHOT_DIR = ".serve"
# replaced only by renaming a new version over them: a hard link keeps the version it was taken of
RENAMED_ON_WRITE = frozenset({STATE_FILE, "graph.json", "resolution.yaml", "retrieval", "communities"})
# never part of a snapshot: the writer's own files, the extraction cache (ingest only), leftovers of writes
NOT_SNAPSHOTTED = frozenset({LOCK_FILE, JOURNAL_FILE, SNAPSHOT_DIR, "extractions.sqlite", "extractions.sqlite-journal",
                             "extractions.sqlite-wal", "extractions.sqlite-shm", "retrieval.tmp", "retrieval.old",
                             "communities.tmp", "communities.old"})
TEMP_PREFIXES = (".state-", ".journal-", ".graph-")
# the files whose change means a new committed state (kgbuild.retrieve.graph_matrix writes meta.json last)
# (a folder's inode and mtime change when a file is renamed into it: the communities, kgbuild.communities)
SIGNATURE_FILES = (STATE_FILE, "retrieval/meta.json", "resolution.yaml", "communities")


Signature = tuple[tuple[str, int, int, int], ...]


def index_signature(out_dir: Path) -> Signature | None:
    """(name, inode, mtime ns, size) of the files that change when an ingest commits; None without a state."""
    found = []
    for name in SIGNATURE_FILES:
        try:
            st = os.stat(out_dir / name)
        except FileNotFoundError:
            if name == STATE_FILE:
                return None
            continue
        found.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(found)


def lock_held(out_dir: Path) -> bool:
    """Whether a process holds the index's write lock (``kgbuild.state.IndexLock``), without taking it."""
    path = out_dir / LOCK_FILE
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    try:
        with open("/proc/locks", encoding="ascii") as fh:
            table = fh.read()
    except OSError:
        return _probe_lock(path)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(line.split()[1:2] == ["FLOCK"] and device in line.split() for line in table.splitlines())


def _probe_lock(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    return False


class NotReady(Exception):
    """The index cannot be snapshotted now; ``reason`` says why in words, ``writing`` whether an ingest runs."""

    def __init__(self, reason: str, *, writing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.writing = writing


@dataclass(frozen=True, slots=True)
class Snapshot:
    folder: Path
    signature: Signature
    seconds: float  # taking it
    copied_bytes: int  # what was copied rather than linked


def quiet_signature(out_dir: Path) -> Signature:
    """The index's signature where it can be snapshotted now; ``NotReady`` saying why otherwise."""
    signature = index_signature(out_dir)
    held = lock_held(out_dir)
    if signature is None:
        if held:
            raise NotReady(f"the index at {out_dir} is being built by a first `kgbuild ingest`; retry when it has finished",
                           writing=True)
        raise NotReady(f"no kgbuild index in {out_dir} yet: run `kgbuild ingest PATH --out {out_dir}` first")
    if held:
        raise NotReady(f"an ingest is writing the index at {out_dir}", writing=True)
    if (out_dir / JOURNAL_FILE).exists():
        raise NotReady(f"the index at {out_dir} holds the writes of an interrupted ingest ({JOURNAL_FILE});"
                       " run `kgbuild ingest` on the same folder again to recover it")
    return signature


def take_snapshot(out_dir: Path, name: str, root: Path | None = None) -> Snapshot:
    """Freeze the index under ``root/<name>`` (default ``<out>/.serve``; see the module doc); ``NotReady`` when it
    is being written. Under another file system than the index's, everything is copied."""
    started = time.perf_counter()
    signature = quiet_signature(out_dir)
    target = (root or out_dir / SNAPSHOT_DIR) / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    copied = 0
    try:
        for entry in sorted(out_dir.iterdir()):
            if entry.name in NOT_SNAPSHOTTED or entry.name.startswith(TEMP_PREFIXES):
                continue
            copied += _freeze(entry, target / entry.name, link=entry.name in RENAMED_ON_WRITE)
        if index_signature(out_dir) != signature or lock_held(out_dir) or (out_dir / JOURNAL_FILE).exists():
            raise NotReady(f"an ingest started writing the index at {out_dir} while it was being read", writing=True)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Snapshot(target, signature, time.perf_counter() - started, copied)


def _freeze(source: Path, target: Path, *, link: bool) -> int:
    """Link (or, across file systems, copy) ``source`` to ``target``; a folder file by file. Bytes copied."""
    if source.is_dir():
        target.mkdir()
        return sum(_freeze(child, target / child.name, link=link) for child in sorted(source.iterdir()))
    if link:
        try:
            os.link(source, target)
            return 0
        except OSError:
            pass
    return _copy_sparse(source, target)


def _copy_sparse(source: Path, target: Path) -> int:
    """Copy the data of ``source`` and leave its holes holes: the engine preallocates its files (a 3-point shard
    is 208 MB long and 0.7 MB on disk), so a plain copy would write hundreds of megabytes of zeros. Bytes copied."""
    copied = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        fd, size = src.fileno(), os.fstat(src.fileno()).st_size
        dst.truncate(size)
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nothing but a hole up to the end
                    break
                src.seek(0)  # a file system without SEEK_DATA: every byte
                dst.seek(0)
                shutil.copyfileobj(src, dst, 1 << 20)
                return size
            end = os.lseek(fd, start, os.SEEK_HOLE)
            src.seek(start)
            dst.seek(start)
            left = end - start
            while left:
                block = src.read(min(left, 1 << 20))
                if not block:
                    break
                dst.write(block)
                left -= len(block)
            copied += end - start
            offset = end
    return copied


def remove_stale_snapshots(out_dir: Path) -> None:
    """Snapshots left by servers that are gone (named ``<pid>-...``, of a process that no longer runs)."""
    root = out_dir / SNAPSHOT_DIR
    if not root.is_dir():
        return
    for folder in root.iterdir():
        pid = folder.name.partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    try:
        root.rmdir()
    except OSError:
        pass  # another server's snapshots are in it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
