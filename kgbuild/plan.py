"""Change detection, before any model loads: walk and hash a folder, and diff it against the state.

A file is unchanged when its content hash and its extraction fingerprint (schema, model, chunking,
embedding model, precision, reader fields, and the index's resolution overrides when it has any) are the
ones the state recorded; otherwise it is read again. Files the state knows but the walk did not find are gone, unless they lie under a path that
could not be read this time: those are kept until their files are really gone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kgbuild.ids import file_hash
from kgbuild.read import walk_files
from kgbuild.schema import ExtractionSchema
from kgbuild.settings import Settings
from kgbuild.state import DocumentState, FileState
from kgbuild.types import SkippedFile, SourceFile


def extraction_fingerprint_parts(settings: Settings, schema: ExtractionSchema, model_fingerprint: str, embedder_name: str,
                                 overrides: str | None = None) -> dict[str, Any]:
    """Everything that changes what extraction writes; a file extracted under other parts is extracted again.

    ``overrides`` is the fingerprint of the index's resolution.yaml (``ResolutionOverrides.fingerprint``):
    resolution runs on a batch's documents as they are extracted, so a changed file re-processes them all.
    It is a part only when there is one, so an index without overrides keeps the fingerprint it had.
    """
    parts = {
        "schema": schema.fingerprint,
        "model": model_fingerprint,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "embedding_model": embedder_name,
        "precision": settings.precision,
        "reader": [settings.text_field, settings.id_field, settings.title_field, settings.csv_text_column],
    }
    if settings.title_header:  # a part only when on, so an index built without headers keeps its fingerprint
        parts["chunk_header"] = "title"
    if overrides is not None:
        parts["resolution_overrides"] = overrides
    return parts


def extraction_fingerprint(settings: Settings, schema: ExtractionSchema, model_fingerprint: str, embedder_name: str,
                           overrides: str | None = None) -> str:
    parts = extraction_fingerprint_parts(settings, schema, model_fingerprint, embedder_name, overrides)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def describe_fingerprint_change(before: dict[str, Any], now: dict[str, Any], models: tuple[str, str] = ("", "")) -> str:
    """Why files are extracted again, in words: which parts of the extraction fingerprint changed. ``models``: the
    model as the manifest named it before and now (with its adapter and decoding), said instead of two hashes
    where the names differ."""
    if not before:
        return "the index was built by an earlier kgbuild that did not record its extraction settings"
    changes = []
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            was, will = (models if key == "model" and all(models) and models[0] != models[1]
                         else (_shown(before.get(key)), _shown(now.get(key))))
            changes.append(f"{key.replace('_', ' ')} {was} -> {will}")
    return "; ".join(changes) or "extraction settings changed"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19]
    return json.dumps(value) if not isinstance(value, str) else value


@dataclass(slots=True)
class ChangedFile:
    """A new or changed file: to be read, chunked and extracted."""

    file: SourceFile
    hash: str
    previous: dict[str, DocumentState]  # what the state knew of this file's documents
    reusable: dict[str, DocumentState]  # earlier documents valid under the current fingerprint
    previous_fingerprint: str | None  # the extraction fingerprint the file was last written under


@dataclass(slots=True)
class IngestPlan:
    """What a run has to do, from one walk of the folder against the state."""

    known: dict[str, FileState]  # the state's files under this root
    changed: list[ChangedFile] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # files present (read or not)
    unreadable: list[str] = field(default_factory=list)  # walk entries and files that could not be read
    skipped: list[SkippedFile] = field(default_factory=list)
    files_seen: int = 0
    documents_unchanged: int = 0

    @property
    def empty(self) -> bool:
        """No documents here now, and none indexed from here before."""
        return not self.seen and not self.known

    def reextracted(self, fingerprint: str) -> bool:
        """Are files read again because the extraction settings changed (not their content)?"""
        return any(c.previous_fingerprint not in (None, fingerprint) for c in self.changed)

    @property
    def gone(self) -> list[str]:
        """Files the state knows that the walk did not find (including those kept as unreadable)."""
        return [rel for rel in self.known if rel not in self.seen]

    @property
    def kept_unreadable(self) -> list[str]:
        """Gone files under a path that could not be read: what an earlier run ingested stays."""
        return [rel for rel in self.gone if any(_under(rel, skipped) for skipped in self.unreadable)]

    @property
    def removed(self) -> list[str]:
        """Gone files to prune: not found, and not under an unreadable path."""
        kept = set(self.kept_unreadable)
        return [rel for rel in self.gone if rel not in kept]


def plan_ingest(
    root_path: Path,
    known: dict[str, FileState],
    fingerprint: str,
    *,
    exclude: list[Path],
    on_file: Callable[[str], None],
) -> IngestPlan:
    """Walk and hash: which files are new or changed, unchanged, present, or unreadable."""
    plan = IngestPlan(known)
    for item in walk_files(root_path, exclude=exclude):
        plan.files_seen += 1
        if isinstance(item, SkippedFile):
            plan.skipped.append(item)
            plan.unreadable.append(item.path)  # present but unreadable: keep what an earlier run ingested
            continue
        plan.seen.add(item.rel_path)
        on_file(item.rel_path)
        previous = known.get(item.rel_path)
        try:
            digest = file_hash(item.path)
        except OSError as exc:
            plan.skipped.append(SkippedFile(item.rel_path, f"unreadable: {exc.strerror or exc}"))
            plan.unreadable.append(item.rel_path)
            continue
        if previous is not None and previous.hash == digest and previous.fingerprint == fingerprint:
            plan.documents_unchanged += len(previous.documents)
            continue
        documents = dict(previous.documents) if previous else {}
        reusable = documents if previous is not None and previous.fingerprint == fingerprint else {}
        plan.changed.append(ChangedFile(item, digest, documents, reusable, previous.fingerprint if previous else None))
    return plan


def _under(rel_path: str, skipped_path: str) -> bool:
    """Is ``rel_path`` at or below ``skipped_path`` (a walk entry that could not be read)?"""
    return skipped_path in (".", "") or rel_path == skipped_path or rel_path.startswith(skipped_path.rstrip("/") + "/")
