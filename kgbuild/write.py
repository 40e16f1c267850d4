"""The write stage's one piece of logic that is not a store's: the payload every vector point carries.

The stores themselves are behind the Protocols of ``kgbuild.sinks``.
"""

from __future__ import annotations

from typing import Sequence

from kgbuild.ids import point_id
from kgbuild.types import ChunkPoint, GraphBatch

# Payload fields that get a keyword index on a Qdrant server (class.<task> and doc_class.<task> are added per
# schema): every keyword field, since other applications may filter a server's collection on any of them.
KEYWORD_FIELDS = ("doc_id", "path", "source_path", "chunk_id", "entity_ids", "entity_keys", "entity_types", "relation_types")
# The ones kgbuild's own filters use (``qdrant_filter.to_qdrant_filter``, removal by doc_id): all the embedded store,
# which only kgbuild reads, indexes. Its keyword indexes are held in memory and grow with the corpus; chunk_id,
# entity_ids and relation_types were 18 of its 39 MiB at 10,000 chunks (BENCHMARKS.md, scale-out).
FILTERED_FIELDS = ("doc_id", "path", "source_path", "entity_keys", "entity_types")


def keyword_fields(classification_tasks: Sequence[str], fields: Sequence[str] = KEYWORD_FIELDS) -> list[str]:
    return [*fields, *(f"class.{t}" for t in classification_tasks), *(f"doc_class.{t}" for t in classification_tasks)]


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
                "header": chunk.header,
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
