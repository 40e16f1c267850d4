"""Ingest state: what has been ingested, by content hash, so unchanged documents cost nothing.

Stored as ``state.json`` under the output directory, written atomically (temporary
file, fsync, rename) after every write batch, so a crash leaves the previous
complete state. Layout::

    {"format": 1, "manifest": {...},
     "roots": {"/abs/corpus": {"files": {"a/b.txt": {"hash": sha256, "size": n, "mtime": t, "fingerprint": f,
                                                      "documents": {doc_id: {"path": ..., "content_hash": ...,
                                                                             "chunks": n, "cross_links": [...]}}}}}},
     "totals": {...IndexStats...}, "cross_document": digest}

A document's ``cross_links`` are the links across documents it was last written with (absent: none), and
``cross_document`` the digest of the documents when those links were last brought up to date
(``kgbuild.corpus_links``); both are optional, so states written before them load unchanged.

A file's ``fingerprint`` hashes everything that changed its extraction output (schema,
model, threshold, chunking, embedding model); when the current one differs, the file is
extracted again.

Crash safety. The state only ever vouches for what the stores hold durably: it is saved
after the graph and the vectors are flushed (a checkpoint). Between checkpoints, the ids of
documents about to be written to or removed from the stores are first added to
``journal.json`` (atomically, fsynced). A run that finds a non-empty journal was preceded by
an interrupted one: it removes those documents from both stores, makes their files be read
again, and only then goes on, so the stores never keep half of an interrupted write.
``lock`` (an advisory ``flock``) keeps two processes from writing one index at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kgbuild.errors import KgbuildError

STATE_FORMAT = 1
STATE_FILE = "state.json"
JOURNAL_FILE = "journal.json"
LOCK_FILE = "lock"
TEMP_PREFIXES = (".state-", ".journal-", ".graph-")  # atomic writes in progress; left behind by a crash


@dataclass(slots=True)
class DocumentState:
    path: str
    content_hash: str
    chunks: int
    # the links across documents its stored version was written with (kgbuild.corpus_links.links_record):
    # [[type, short key, full key, full name], ...]; saved only when there are some
    cross_links: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "content_hash": self.content_hash, "chunks": self.chunks}
        if self.cross_links:
            data["cross_links"] = self.cross_links
        return data


@dataclass(slots=True)
class FileState:
    hash: str
    size: int
    mtime: float
    fingerprint: str
    documents: dict[str, DocumentState] = field(default_factory=dict)


@dataclass(slots=True)
class StoreRecord:
    """Where one store of an index lives: its backend and the settings that locate it (no secret)."""

    kind: str  # a backend name of kgbuild.registry
    location: dict[str, Any] = field(default_factory=dict)  # Settings field -> value, e.g. {"neo4j_uri": ...}
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.location}

    @classmethod
    def from_dict(cls, data: dict[str, Any], description: str) -> StoreRecord:
        location = {k: v for k, v in data.items() if k != "kind"}
        # indexes written before the backend registry recorded Neo4j as {"kind", "uri", "database"}
        renamed = {"uri": "neo4j_uri", "database": "neo4j_database"}
        location = {renamed.get(k, k): v for k, v in location.items()}
        return cls(str(data.get("kind") or ""), location, description)


@dataclass(slots=True)
class Manifest:
    """What an index is built with, so that commands reading it need no flags (saved in ``state.json``)."""

    kgbuild_version: str = ""
    schema_definition: dict[str, Any] = field(default_factory=dict)  # the schema, defaults filled in
    schema_name: str = ""
    schema_version: str = ""
    schema_fingerprint: str = ""
    model: str = ""  # the checkpoint's location: a resolved path, or hub id@revision
    model_file_hashes: dict[str, str] = field(default_factory=dict)  # path -> "size:mtime:sha256", to rehash only changes
    extraction: dict[str, Any] = field(default_factory=dict)  # the parts of the extraction fingerprint
    embedding_model: str = ""
    graph: StoreRecord | None = None
    vectors: StoreRecord | None = None

    def __bool__(self) -> bool:
        return bool(self.schema_definition or self.model or self.graph or self.vectors)

    @property
    def classification_tasks(self) -> list[str]:
        return list(self.schema_definition.get("classifications", {}))

    @property
    def schema_label(self) -> str:
        return f"{self.schema_version} ({self.schema_fingerprint})"

    def to_dict(self) -> dict[str, Any]:
        if not self:
            return {}
        data: dict[str, Any] = {
            "kgbuild_version": self.kgbuild_version,
            "schema": {"name": self.schema_name, "version": self.schema_version, "fingerprint": self.schema_fingerprint},
            "schema_definition": self.schema_definition,
            "model": self.model,
            "model_file_hashes": self.model_file_hashes,
            "extraction": self.extraction,
            "embedding_model": self.embedding_model,
        }
        if self.graph is not None:
            data.update(graph=self.graph.to_dict(), graph_store=self.graph.description)
        if self.vectors is not None:
            data.update(vectors=self.vectors.to_dict(), vector_store=self.vectors.description)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        schema = data.get("schema") or {}
        graph = vectors = None
        if data.get("graph"):
            graph = StoreRecord.from_dict(data["graph"], str(data.get("graph_store", "")))
        if data.get("vectors"):
            vectors = StoreRecord.from_dict(data["vectors"], str(data.get("vector_store", "")))
        elif data.get("vector_store"):  # written before the registry: a server URL meant a Qdrant server
            kind = "qdrant-server" if data.get("qdrant_url") else "qdrant-edge"
            location = {"qdrant_url": data["qdrant_url"], "collection": data.get("collection")} if data.get("qdrant_url") else {}
            vectors = StoreRecord(kind, location, str(data["vector_store"]))
        return cls(
            kgbuild_version=str(data.get("kgbuild_version", "")),
            schema_definition=dict(data.get("schema_definition") or {}),
            schema_name=str(schema.get("name", "")),
            schema_version=str(schema.get("version", "")),
            schema_fingerprint=str(schema.get("fingerprint", "")),
            model=str(data.get("model", "")),
            model_file_hashes=dict(data.get("model_file_hashes") or {}),
            extraction=dict(data.get("extraction") or {}),
            embedding_model=str(data.get("embedding_model", "")),
            graph=graph,
            vectors=vectors,
        )


@dataclass(slots=True)
class IngestState:
    path: Path
    manifest: Manifest = field(default_factory=Manifest)
    roots: dict[str, dict[str, FileState]] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)
    # the digest of the documents (kgbuild.corpus_links.documents_digest) when the links across documents were
    # last brought up to date; "" after any write since
    cross_document: str = ""

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
        return cls(path=path, manifest=Manifest.from_dict(data.get("manifest") or {}),
                   roots=roots, totals=data.get("totals", {}), cross_document=str(data.get("cross_document", "")))

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
            "manifest": self.manifest.to_dict(),
            "roots": {
                root: {
                    "files": {
                        rel: {
                            "hash": f.hash,
                            "size": f.size,
                            "mtime": f.mtime,
                            "fingerprint": f.fingerprint,
                            "documents": {d: doc.to_dict() for d, doc in sorted(f.documents.items())},
                        }
                        for rel, f in sorted(files.items())
                    }
                }
                for root, files in sorted(self.roots.items())
            },
            "totals": self.totals,
            **({"cross_document": self.cross_document} if self.cross_document else {}),
        }

    def save(self) -> None:
        write_json_atomic(self.path, self.to_dict(), prefix=".state-")

    def forget_file_hash(self, doc_ids: set[str]) -> int:
        """Make the files holding these documents be read again on the next run; how many files."""
        count = 0
        for files in self.roots.values():
            for record in files.values():
                if record.hash and doc_ids.intersection(record.documents):
                    record.hash = ""
                    count += 1
        return count


def write_json_atomic(path: Path, data: Any, *, prefix: str, indent: int | None = 1) -> None:
    """Write JSON atomically (see ``write_text_atomic``).

    ASCII escapes: any string round-trips exactly, even a lone surrogate (a file name that is
    not UTF-8 comes out of ``os.fsdecode`` holding some).
    """
    write_text_atomic(path, [json.dumps(data, ensure_ascii=True, indent=indent, separators=None if indent else (",", ":"))],
                      prefix=prefix)


def write_text_atomic(path: Path, pieces: Iterable[str], *, prefix: str) -> None:
    """Write a temporary file beside ``path``, fsync it, rename it over ``path``: readers see old or new, never half.

    ``pieces`` may be a generator, so a large file never has to be one string in memory.
    """
    from kgbuild.hooks import reached

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 20) as fh:
            for piece in pieces:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        reached(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Journal:
    """Documents written to or removed from the stores since the last checkpoint (see the module doc)."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / JOURNAL_FILE
        self.doc_ids: set[str] = set()
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.doc_ids = set(data["documents"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise KgbuildError(
                    f"{self.path}: the write journal is unreadable ({exc}); delete the output directory and ingest again"
                ) from None

    def record(self, doc_ids: list[str] | set[str]) -> None:
        new = set(doc_ids) - self.doc_ids
        if new:
            self.doc_ids |= new
            write_json_atomic(self.path, {"documents": sorted(self.doc_ids)}, prefix=".journal-")

    def clear(self) -> None:
        self.doc_ids = set()
        self.path.unlink(missing_ok=True)


class IndexLock:
    """An exclusive advisory lock on an index directory, held while a process writes to it."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self._fd: int | None = None
        self._created_dir = False

    def acquire(self) -> None:
        existing = next((p for p in (self.out_dir, *self.out_dir.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            which = "" if existing == self.out_dir else f"{existing} "
            raise KgbuildError(f"--out {self.out_dir}: {which}is a file, not a directory; pass a directory for the index")
        self._created_dir = not self.out_dir.exists()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise KgbuildError(
                f"--out {self.out_dir}: cannot create the index there ({exc.strerror or exc}); pass a directory you can write"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise KgbuildError(
                    f"{self.out_dir} is being written by another kgbuild process; wait for it to finish or use another --out"
                ) from None
            raise
        self._fd = fd
        # only the lock holder writes here, so temporary files are leftovers of a killed run
        for leftover in self.out_dir.iterdir():
            if leftover.name.startswith(TEMP_PREFIXES) and leftover.suffix == ".json":
                leftover.unlink(missing_ok=True)

    def release(self) -> None:
        """Unlock; a directory this lock created and nothing else was written to is removed again,
        so a run that failed before writing (no model, no server) leaves no empty index behind."""
        if self._fd is None:
            return
        try:
            if self._created_dir and {p.name for p in self.out_dir.iterdir()} <= {LOCK_FILE}:
                (self.out_dir / LOCK_FILE).unlink(missing_ok=True)
                self.out_dir.rmdir()
        except OSError:
            pass  # something else appeared meanwhile: leave the directory as it is
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> IndexLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
