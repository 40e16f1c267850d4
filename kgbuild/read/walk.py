"""Find the files to ingest under a root, streaming, in a stable order.

Files come out sorted by rel_path (plain code-point order), hidden entries are
ignored, and anything that cannot be ingested is reported as a SkippedFile
instead of raising. No file content is read here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from kgbuild.types import SkippedFile, SourceFile

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl", ".ndjson", ".csv"}
)

_DirKey = tuple[int, int]  # (st_dev, st_ino): identifies a directory however it is reached


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _suffix_problem(name: str) -> str | None:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return None
    return f"unsupported file type '{suffix}'" if suffix else "unsupported file type (no suffix)"


def _file_entry(abs_path: str, rel_path: str, name: str, st: os.stat_result) -> SourceFile | SkippedFile:
    if not stat.S_ISREG(st.st_mode):
        return SkippedFile(rel_path, "not a regular file")
    problem = _suffix_problem(name)
    if problem is not None:
        return SkippedFile(rel_path, problem)
    if not os.access(abs_path, os.R_OK):
        return SkippedFile(rel_path, "cannot read file: permission denied")
    return SourceFile(path=abs_path, rel_path=rel_path, size=st.st_size, mtime=st.st_mtime)


def readable_name(name: str) -> str:
    """A file name as valid Unicode: bytes that are not UTF-8 (``os.fsdecode`` gives surrogates for them)
    are shown as ``\\xNN`` escapes, so paths can go into JSON, Neo4j and vector payloads."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def _list_dir(abs_dir: str, rel_dir: str) -> list[tuple[str, str, str, bool]]:
    """(name, abs path, rel path, is_dir) for the visible entries of one directory, in walk order.

    A directory sorts as ``name + "/"`` so that the whole walk comes out in
    rel_path order ("a.txt" < "a/b.txt" because "." < "/").
    """
    entries: list[tuple[str, str, str, bool]] = []
    with os.scandir(abs_dir) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            shown = readable_name(entry.name)
            rel = f"{rel_dir}/{shown}" if rel_dir else shown
            entries.append((entry.name, os.path.join(abs_dir, entry.name), rel, is_dir))
    entries.sort(key=lambda e: e[0] + "/" if e[3] else e[0])
    return entries


def _dir_key(path: str | Path) -> _DirKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def walk_files(root: str | Path, *, exclude: Sequence[str | Path] = ()) -> Iterator[SourceFile | SkippedFile]:
    """Every file under ``root`` (or ``root`` itself when it is a file), sorted by rel_path.

    ``exclude`` names directories to leave out silently, such as the tool's own
    output directory inside the corpus. Directory symlinks are followed, but a
    directory already visited (a symlink loop, or a second link to the same
    directory) is reported once as skipped rather than walked again.
    Raises FileNotFoundError when ``root`` does not exist.
    """
    root_abs = os.path.abspath(os.fspath(root))
    root_stat = os.stat(root_abs)
    if not stat.S_ISDIR(root_stat.st_mode):
        name = os.path.basename(root_abs)
        yield _file_entry(root_abs, readable_name(name), name, root_stat)
        return

    excluded = {key for key in (_dir_key(os.path.abspath(os.fspath(p))) for p in exclude) if key}
    root_key = (root_stat.st_dev, root_stat.st_ino)
    if root_key in excluded:
        return
    visited: set[_DirKey] = {root_key}
    try:
        top = _list_dir(root_abs, "")
    except OSError as exc:
        yield SkippedFile(".", f"cannot read directory: {_reason(exc)}")
        return

    # A stack of per-directory iterators rather than recursion: trees may be deep.
    stack: list[Iterator[tuple[str, str, str, bool]]] = [iter(top)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        name, abs_path, rel_path, is_dir = item
        try:
            st = os.stat(abs_path)
        except OSError as exc:
            if os.path.islink(abs_path):
                yield SkippedFile(rel_path, "broken symlink")
            else:
                yield SkippedFile(rel_path, f"cannot stat: {_reason(exc)}")
            continue
        if not is_dir:
            yield _file_entry(abs_path, rel_path, name, st)
            continue
        key = (st.st_dev, st.st_ino)
        if key in excluded:
            continue
        if key in visited:
            yield SkippedFile(rel_path, "directory already visited (symlink loop or duplicate link)")
            continue
        visited.add(key)
        try:
            children = _list_dir(abs_path, rel_path)
        except OSError as exc:
            yield SkippedFile(rel_path, f"cannot read directory: {_reason(exc)}")
            continue
        stack.append(iter(children))
