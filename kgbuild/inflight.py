"""Files in flight: new and changed files between reading and the state.

A file's documents may spread over several write batches. The state records a file only once
every document of it is written (or failed), so that an interrupted run never vouches for half a
file. A file with a failed document is recorded without its hash, so the next run reads it again;
documents the file no longer has are handed back for removal from the stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from kgbuild.plan import ChangedFile
from kgbuild.state import DocumentState, FileState
from kgbuild.types import Chunk, ChunkExtraction, Document


@dataclass(slots=True, eq=False)
class FileInFlight:
    changed: ChangedFile
    kept: dict[str, DocumentState]  # unchanged records of a changed file
    written: dict[str, DocumentState] = field(default_factory=dict)  # extracted and written in this run
    failed: set[str] = field(default_factory=set)  # documents the model could not process
    waiting: int = 0  # documents read but not yet written
    read_complete: bool = False

    @property
    def complete(self) -> bool:
        return self.read_complete and self.waiting == 0


@dataclass(slots=True, eq=False)
class DocumentInFlight:
    """A document read and chunked, on its way to the model and the stores."""

    file: FileInFlight
    document: Document
    chunks: list[Chunk]
    results: list[ChunkExtraction | str] | None = None  # extracted already (the engine ray): per chunk, or why it failed
    vectors: list[Any] | None = None  # embedded already (the engine ray): per chunk


@dataclass(slots=True)
class FinishedFile:
    """A file whose documents are all through: its record for the state, and what it no longer holds."""

    rel_path: str
    record: FileState
    removed: list[str]  # ids of documents the file had before and has no more, sorted


class FilesInFlight:
    """The open files of a run, in the order they were read; ``finish()`` hands back the complete ones."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint  # the extraction fingerprint the files are recorded under
        self._open: list[FileInFlight] = []

    def open(self, changed: ChangedFile, kept: dict[str, DocumentState]) -> FileInFlight:
        file = FileInFlight(changed, dict(kept))
        self._open.append(file)
        return file

    def queue(self, file: FileInFlight, document: Document, chunks: list[Chunk],
              results: list[ChunkExtraction | str] | None = None, vectors: list[Any] | None = None) -> DocumentInFlight:
        file.waiting += 1
        return DocumentInFlight(file, document, chunks, results, vectors)

    def read_complete(self, file: FileInFlight) -> bool:
        """No more documents will come from ``file``; True when it is already complete (nothing to extract)."""
        file.read_complete = True
        return file.complete

    def settle(self, written: Iterable[DocumentInFlight], failed: Iterable[DocumentInFlight],
               cross_links: Mapping[str, list[list[str]]] | None = None) -> None:
        """Documents through the stages: written to graph and vectors (with these links across documents, by
        doc id), or failed in the model."""
        for item in written:
            doc = item.document
            item.file.written[doc.id] = DocumentState(doc.path, doc.content_hash, len(item.chunks),
                                                      list((cross_links or {}).get(doc.id, ())))
            item.file.waiting -= 1
        for item in failed:
            item.file.failed.add(item.document.id)
            item.file.waiting -= 1

    def finish(self) -> list[FinishedFile]:
        """Every complete file, in reading order, taken off the open files."""
        finished = []
        still_open = []
        for file in self._open:
            if not file.complete:
                still_open.append(file)
                continue
            changed = file.changed
            gone = set(changed.previous) - set(file.written) - set(file.kept) - file.failed
            documents = {**file.kept, **file.written}
            # a file with a failed document is recorded without its hash, so the next run reads it again
            file_hash = "" if file.failed else changed.hash
            record = FileState(file_hash, changed.file.size, changed.file.mtime, self.fingerprint, documents)
            finished.append(FinishedFile(changed.file.rel_path, record, sorted(gone)))
        self._open = still_open
        return finished
