"""The write stage: the sink Protocols, and the vector payload every vector sink stores.

Connectors (``kgbuild.connectors.*``) implement these Protocols; the conformance
suites in ``tests/conformance/`` hold every implementation to the same behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from kgbuild.ids import point_id
from kgbuild.types import ChunkPoint, GraphBatch, IndexStats

# Payload fields that get a keyword index (class.<task> and doc_class.<task> are added per schema).
KEYWORD_FIELDS = ("doc_id", "path", "source_path", "chunk_id", "entity_ids", "entity_keys", "entity_types", "relation_types")


def keyword_fields(classification_tasks: Sequence[str]) -> list[str]:
    return [*KEYWORD_FIELDS, *(f"class.{t}" for t in classification_tasks), *(f"doc_class.{t}" for t in classification_tasks)]


class GraphSink(Protocol):
    """A knowledge-graph store. Writing a document replaces whatever an earlier version of it wrote."""

    def open(self) -> None: ...

    def write(self, batch: GraphBatch) -> None: ...

    def remove_documents(self, doc_ids: Sequence[str]) -> None: ...

    def stats(self) -> IndexStats:
        """Counts of documents, chunks, mentions, entities and relations (by type)."""
        ...

    def flush(self) -> None:
        """Make everything written so far durable."""
        ...

    def export(self) -> dict[str, Any]:
        """The whole graph in the sink-agnostic form of ``kgbuild.verify``."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class VectorFilter:
    """Metadata conditions; every listed condition must hold.

    ``classes`` matches a label given to the chunk or to its whole document;
    ``paths`` matches a document path or the file it came from (any of them).
    """

    entity_keys: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    classes: tuple[tuple[str, str], ...] = ()
    paths: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()  # any of them

    def is_empty(self) -> bool:
        return not (self.entity_keys or self.entity_types or self.classes or self.paths or self.doc_ids)

    def matches(self, payload: dict[str, Any]) -> bool:
        """The same conditions evaluated on one point payload in Python (graph and BM25 channels)."""
        keys, types = set(payload.get("entity_keys") or ()), set(payload.get("entity_types") or ())
        if not (set(self.entity_keys) <= keys and set(self.entity_types) <= types):
            return False
        for task, label in self.classes:
            labels = {*((payload.get("class") or {}).get(task) or ()), *((payload.get("doc_class") or {}).get(task) or ())}
            if label not in labels:
                return False
        if self.paths and payload.get("path") not in self.paths and payload.get("source_path") not in self.paths:
            return False
        return not self.doc_ids or payload.get("doc_id") in self.doc_ids


@dataclass(frozen=True, slots=True)
class VectorHit:
    point_id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


class VectorSink(Protocol):
    """A chunk vector store. Point ids are deterministic, so writing twice is an upsert."""

    def open(self, dimension: int) -> None: ...

    def upsert(self, points: Sequence[ChunkPoint]) -> None: ...

    def delete_documents(self, doc_ids: Sequence[str]) -> None: ...

    def search(self, vector: Sequence[float], query_filter: VectorFilter | None, limit: int) -> list[VectorHit]: ...

    def count(self) -> int: ...

    def export_points(self) -> dict[str, dict[str, Any]]:
        """Every point's payload by point id."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def build_chunk_points(batch: GraphBatch, vectors: Sequence[Sequence[float]]) -> list[ChunkPoint]:
    """One point per chunk, in the batch's chunk order; ``vectors`` is in the same order."""
    points: list[ChunkPoint] = []
    vector_iter = iter(vectors)
    chunk_relation_types: dict[str, set[str]] = {}
    for relation in batch.relations:
        for evidence in relation.evidence:
            chunk_relation_types.setdefault(evidence.chunk_id, set()).add(relation.label)
    for extracted in batch.documents:
        doc = extracted.document
        doc_classes = {task: [s.label for s in scores] for task, scores in extracted.classifications.items()}
        for extraction in extracted.extractions:
            chunk = extraction.chunk
            # the name an entity goes by in this chunk (its first mention here), not its corpus-wide
            # canonical name: that one changes as other documents come and go, and a payload must not
            surfaces: dict[str, str] = {}
            for mention in extraction.mentions:
                eid = batch.mention_entity[mention.id]
                if eid not in surfaces and eid in batch.entities:
                    surfaces[eid] = mention.text
            entity_ids = list(surfaces)
            entities = [batch.entities[eid] for eid in entity_ids]
            relation_types = sorted(chunk_relation_types.get(chunk.id, ()))
            payload = {
                "doc_id": doc.id,
                "path": doc.path,
                "source_path": doc.source_path,
                "title": doc.title,
                "chunk_id": chunk.id,
                "position": chunk.position,
                "start": chunk.start,
                "end": chunk.end,
                "text": chunk.text,
                "entity_ids": entity_ids,
                "entity_keys": [e.key for e in entities],
                "entity_names": list(surfaces.values()),
                "entity_types": sorted({e.type for e in entities}),
                "class": {task: [s.label for s in scores] for task, scores in extraction.classifications.items()},
                "doc_class": doc_classes,
                "relation_types": relation_types,
            }
            points.append(ChunkPoint(id=point_id(chunk.id), chunk_id=chunk.id, vector=list(next(vector_iter)), payload=payload))
    return points
