"""Ingest state: what has been ingested, by content hash, so unchanged documents cost nothing.

Stored as ``state.json`` under the output directory, written atomically (temporary
file, fsync, rename) after every write batch, so a crash leaves the previous
complete state. Layout::

    {"format": 1, "manifest": {...},
     "roots": {"/abs/corpus": {"files": {"a/b.txt": {"hash": sha256, "size": n, "mtime": t, "fingerprint": f,
                                                      "documents": {doc_id: {"path": ..., "content_hash": ...,
                                                                             "chunks": n}}}}}},
     "totals": {...IndexStats...}}

A file's ``fingerprint`` hashes everything that changed its extraction output (schema,
model, threshold, chunking, embedding model); when the current one differs, the file is
extracted again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgbuild.errors import KgbuildError

STATE_FORMAT = 1
STATE_FILE = "state.json"


@dataclass(slots=True)
class DocumentState:
    path: str
    content_hash: str
    chunks: int


@dataclass(slots=True)
class FileState:
    hash: str
    size: int
    mtime: float
    fingerprint: str
    documents: dict[str, DocumentState] = field(default_factory=dict)


@dataclass(slots=True)
class IngestState:
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    roots: dict[str, dict[str, FileState]] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: str | Path) -> IngestState:
        path = Path(out_dir) / STATE_FILE
        if not path.exists():
            return cls(path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown state format {data.get('format')!r}")
            roots = {
                root: {
                    rel: FileState(
                        hash=f["hash"],
                        size=f["size"],
                        mtime=f["mtime"],
                        fingerprint=f["fingerprint"],
                        documents={d: DocumentState(**doc) for d, doc in f["documents"].items()},
                    )
                    for rel, f in files["files"].items()
                }
                for root, files in data["roots"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KgbuildError(
                f"{path}: the ingest state is unreadable ({exc}); delete the output directory and ingest again"
            ) from None
        return cls(path=path, manifest=data.get("manifest", {}),
                   roots=roots, totals=data.get("totals", {}))

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def files(self, root: str) -> dict[str, FileState]:
        return self.roots.setdefault(root, {})

    def all_documents(self) -> dict[str, DocumentState]:
        return {d: doc for files in self.roots.values() for f in files.values() for d, doc in f.documents.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "manifest": self.manifest,
            "roots": {
                root: {
                    "files": {
                        rel: {
                            "hash": f.hash,
                            "size": f.size,
                            "mtime": f.mtime,
                            "fingerprint": f.fingerprint,
                            "documents": {
                                d: {"path": doc.path, "content_hash": doc.content_hash, "chunks": doc.chunks}
                                for d, doc in sorted(f.documents.items())
                            },
                        }
                        for rel, f in sorted(files.items())
                    }
                }
                for root, files in sorted(self.roots.items())
            },
            "totals": self.totals,
        }

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, ensure_ascii=False, indent=1, sort_keys=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
