"""One rule for the paths users type to name ingested files (``--doc``, ``kgbuild remove``, ``graph view --doc``).

A path names the ingested files at or under it, in any of three forms, tried in this order:

1. an absolute path, or a path relative to the current directory, that leads to an ingested file or
   to a folder holding ingested files (``/data/corpus/tech/019.html``, ``../corpus/tech``);
2. the path as the index stores it, relative to the folder that was ingested (``tech/019.html``,
   ``tech``), as shown by ``kgbuild query`` and in the graph;
3. either form followed by ``#RECORD`` names one record of a JSON, JSONL or CSV file
   (``feed.jsonl#p02``).

A path that names nothing in the index is an error that says so, never an empty result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from kgbuild.errors import ConfigError
from kgbuild.state import IngestState


@dataclass(frozen=True, slots=True)
class IndexedFile:
    root: str  # the folder that was ingested, absolute
    rel: str  # the file's path under it, as stored

    @property
    def absolute(self) -> str:
        # a single file given to `kgbuild ingest` is its own root, stored under its name
        if os.path.basename(self.root) == self.rel and not os.path.isdir(self.root):
            return self.root
        return os.path.join(self.root, self.rel)


def _is_at_or_under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def _absolute(given: str, cwd: str | None) -> str:
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = Path(cwd or os.getcwd()) / path
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(path)


def match_indexed_files(state: IngestState, given: str | os.PathLike[str], *, cwd: str | None = None) -> list[IndexedFile]:
    """The ingested files that ``given`` names (see the module doc); [] when it names none."""
    text = os.fspath(given)
    files = [IndexedFile(root, rel) for root, by_rel in sorted(state.roots.items()) for rel in sorted(by_rel)]
    absolute = _absolute(text, cwd)
    by_location = [f for f in files if _is_at_or_under(f.absolute, absolute)]
    if by_location:
        return by_location
    if os.path.isabs(text):
        return []
    stored = os.path.normpath(text.strip())
    if stored in (".", "") or stored.startswith(".."):
        return []
    return [f for f in files if _is_at_or_under(f.rel, stored)]


def resolve_document_filters(state: IngestState, given: Sequence[str], *, cwd: str | None = None) -> list[str]:
    """Turn ``--doc`` values into the document paths the index stores (file paths, or ``file#record``).

    Raises ConfigError naming a value that matches nothing in the index.
    """
    resolved: list[str] = []
    for value in given:
        path, hash_mark, record = str(value).partition("#")
        matches = match_indexed_files(state, path, cwd=cwd)
        if not matches:
            raise ConfigError(
                f"--doc {value}: no ingested file at or under it (give an absolute path, a path relative to the"
                f" current directory, or the path as stored, e.g. from `kgbuild query`)"
            )
        for match in matches:
            resolved.append(f"{match.rel}#{record}" if hash_mark else match.rel)
    return list(dict.fromkeys(resolved))


def documents_as_stored(state: IngestState | None, given: Sequence[str], *, cwd: str | None = None) -> list[str]:
    """``resolve_document_filters`` against an index's state; values pass unchanged where there is no
    kgbuild index (a Qdrant collection read on its own stores whatever paths its writer chose)."""
    if not given:
        return []
    if state is None or not state.exists or not state.roots:
        return list(given)
    return resolve_document_filters(state, given, cwd=cwd)
