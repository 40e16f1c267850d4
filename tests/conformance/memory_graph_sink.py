"""A third graph backend that lives only in the tests: the whole graph in plain dicts, in this process.

It is the smallest thing that satisfies ``kgbuild.sinks.GraphSink``, written from the Protocol and
the export format alone, so that the conformance suite and the registry are checked against a
backend nobody tuned them for. Like a database, its data outlives a sink object: stores are kept
in the module-level ``STORES``, keyed by the folder (or path) a sink is made for, so a second sink
made for the same place sees what the first wrote. ``flush`` and ``close`` have nothing to do.

>>> register_memory_backend()          # kgbuild ingest --graph memory now keeps its graph here
>>> sink = MemoryGraphSink(tmp_path); sink.open(); sink.write(batch)
>>> unregister_memory_backend()
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from kgbuild.connectors.graph_records import evidence_record, merge_evidence, scores_record
from kgbuild.reconcile import summarize_surfaces
from kgbuild.registry import GRAPH_BACKENDS, GraphBackend, register_graph_backend
from kgbuild.types import (
    ChunkRecord,
    CommunityRecord,
    DocumentRecord,
    Entity,
    EntityGraphData,
    EntityRecord,
    GraphBatch,
    GraphExport,
    IndexStats,
    MentionRecord,
    RelationRecord,
)

BACKEND_NAME = "memory"


@dataclass
class MemoryStore:
    """One graph: what a database would hold, as plain records."""

    documents: dict[str, DocumentRecord] = field(default_factory=dict)
    chunk_order: dict[str, list[str]] = field(default_factory=dict)  # document id -> its chunk ids, in order
    chunks: dict[str, ChunkRecord] = field(default_factory=dict)
    mentions: dict[str, MentionRecord] = field(default_factory=dict)  # by mention id
    entities: dict[str, EntityRecord] = field(default_factory=dict)
    relations: dict[tuple[str, str, str], RelationRecord] = field(default_factory=dict)  # (head, label, tail)
    communities: dict[str, CommunityRecord] = field(default_factory=dict)  # by id


STORES: dict[str, MemoryStore] = {}


def store_for(place: str | Path) -> MemoryStore:
    return STORES.setdefault(str(Path(place).resolve()), MemoryStore())


class MemoryGraphSink:
    def __init__(self, place: str | Path):
        self.place = Path(place)
        self._store: MemoryStore | None = None

    def __repr__(self) -> str:
        return f"MemoryGraphSink({str(self.place)!r})"

    @property
    def store(self) -> MemoryStore:
        if self._store is None:
            self._store = store_for(self.place)
        return self._store

    def open(self) -> None:
        """Nothing to connect to; the store is found on first use."""

    def flush(self) -> None:
        """Every write is in the store when it returns."""

    def close(self) -> None:
        self._store = None

    # -- write side ----------------------------------------------------------------------------

    def write(self, batch: GraphBatch) -> None:
        store = self.store
        self.remove_documents([d.document.id for d in batch.documents])
        touched: set[str] = set()
        for extracted in batch.documents:
            doc = extracted.document
            store.documents[doc.id] = {"path": doc.path, "source_path": doc.source_path, "title": doc.title,
                                       "content_hash": doc.content_hash,
                                       "classifications": scores_record(extracted.classifications)}
            store.chunk_order[doc.id] = [e.chunk.id for e in extracted.extractions]
            for extraction in extracted.extractions:
                chunk = extraction.chunk
                store.chunks[chunk.id] = {"doc_id": chunk.doc_id, "position": chunk.position, "start": chunk.start,
                                          "end": chunk.end, "text": chunk.text, "token_count": chunk.token_count,
                                          "classifications": scores_record(extraction.classifications)}
                for mention in extraction.mentions:
                    entity = batch.entities[batch.mention_entity[mention.id]]
                    store.entities.setdefault(entity.id, {"type": entity.type, "key": entity.key, "name": "", "aliases": [],
                                                          "alias_counts": {}, "mention_count": 0, "confidence": 0.0})
                    reason = batch.reason(mention.id)
                    store.mentions[mention.id] = {"id": mention.id, "chunk_id": chunk.id, "entity_id": entity.id,
                                                  "doc_id": mention.doc_id, "label": mention.label, "text": mention.text,
                                                  "start": mention.start, "end": mention.end,
                                                  "confidence": round(mention.confidence, 6),
                                                  "rule": reason.rule, "via": reason.via}
                    touched.add(entity.id)
        for relation in batch.relations:
            triple = (relation.head_id, relation.label, relation.tail_id)
            evidence = [evidence_record(e) for e in relation.evidence]
            if triple in store.relations:
                evidence = merge_evidence(store.relations[triple]["evidence"], evidence)
            store.relations[triple] = {"id": relation.id, "label": relation.label, "head_id": relation.head_id,
                                       "tail_id": relation.tail_id, "confidence": max(e["confidence"] for e in evidence),
                                       "count": len(evidence), "evidence": evidence}
        self._refresh_entities(touched)

    def replace_communities(self, communities: Sequence[CommunityRecord]) -> None:
        self.store.communities = {c.id: c for c in communities}

    def communities(self) -> list[CommunityRecord]:
        """Members the store no longer holds (entities removed since) are left out, as a database's edges go."""
        store = self.store
        out = [CommunityRecord(c.id, c.level, c.title, c.parent, tuple(m for m in c.members if m in store.entities),
                               c.top_entities, c.top_terms, c.summary) for c in store.communities.values()]
        return sorted(out, key=lambda c: (c.level, c.id))

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        store = self.store
        gone = {d for d in doc_ids if d in store.documents}
        if not gone:
            return
        for doc_id in gone:
            del store.documents[doc_id]
            for chunk in store.chunk_order.pop(doc_id):
                del store.chunks[chunk]
        touched = {m["entity_id"] for m in store.mentions.values() if m["doc_id"] in gone}
        store.mentions = {k: m for k, m in store.mentions.items() if m["doc_id"] not in gone}
        for triple, relation in list(store.relations.items()):
            kept = [e for e in relation["evidence"] if e["doc_id"] not in gone]
            if not kept:
                del store.relations[triple]
            elif len(kept) != len(relation["evidence"]):
                relation.update(evidence=kept, count=len(kept), confidence=max(e["confidence"] for e in kept))
        self._refresh_entities(touched)

    def _refresh_entities(self, entity_ids: set[str]) -> None:
        """Name, aliases and counts (per alias too) from the mentions that remain (whoever wrote them); none left: gone."""
        store = self.store
        occurrences: dict[str, list[tuple[str, int, int, str, float]]] = {eid: [] for eid in entity_ids}
        for m in store.mentions.values():
            if m["entity_id"] in occurrences:
                occurrences[m["entity_id"]].append((m["doc_id"], m["start"], m["end"], m["text"], m["confidence"]))
        for eid, found in occurrences.items():
            if not found:
                store.entities.pop(eid, None)
                continue
            summary = summarize_surfaces(found)
            store.entities[eid].update(name=summary.name, aliases=summary.aliases, alias_counts=summary.alias_counts,
                                       mention_count=summary.mention_count, confidence=summary.confidence)

    # -- read side -----------------------------------------------------------------------------

    def export(self) -> GraphExport:
        store = self.store
        return copy.deepcopy(GraphExport(
            documents=store.documents,
            chunks=store.chunks,
            entities=store.entities,
            mentions=list(store.mentions.values()),
            has_chunk=[[doc, chunk] for doc, chunks in store.chunk_order.items() for chunk in chunks],
            next_chunk=[[a, b] for chunks in store.chunk_order.values() for a, b in zip(chunks, chunks[1:])],
            relations=list(store.relations.values()),
        ))

    def entities(self) -> dict[str, Entity]:
        return {eid: Entity(eid, e["type"], e["key"], e["name"], list(e["aliases"]), e["mention_count"], e["confidence"],
                            dict(e["alias_counts"]))
                for eid, e in self.store.entities.items()}

    def entity_mentions(self, entity_ids: Sequence[str]) -> list[MentionRecord]:
        wanted = set(entity_ids)
        return copy.deepcopy([m for m in self.store.mentions.values() if m["entity_id"] in wanted])

    def entity_graph(self, *, mentions: bool = True) -> EntityGraphData:
        store = self.store
        return EntityGraphData(
            entities=self.entities(),
            mentions=list(dict.fromkeys((m["chunk_id"], m["entity_id"]) for m in store.mentions.values())) if mentions else [],
            relations=list(store.relations),
        )

    def stats(self) -> IndexStats:
        store = self.store
        relation_types = Counter(label for _, label, _ in store.relations)
        entity_types = Counter(e["type"] for e in store.entities.values())
        return IndexStats(
            documents=len(store.documents),
            chunks=len(store.chunks),
            mentions=len({(m["doc_id"], m["start"], m["end"], m["entity_id"]) for m in store.mentions.values()}),
            entities=len(store.entities),
            relations=len(store.relations),
            entities_by_type=dict(sorted(entity_types.items())),
            relations_by_type=dict(sorted(relation_types.items())),
        )


# -- the registry ------------------------------------------------------------------------------


def _make(settings: Any) -> MemoryGraphSink:
    return MemoryGraphSink(settings.out_dir)


def register_memory_backend() -> GraphBackend:
    """``Settings(graph="memory")`` now names this backend; its graph lives in ``STORES`` under the output directory."""
    backend = GraphBackend(BACKEND_NAME, _make, lambda settings: "memory (this process) under the output directory")
    register_graph_backend(backend)
    return backend


def unregister_memory_backend() -> None:
    """Forget the backend and every graph it held."""
    GRAPH_BACKENDS.pop(BACKEND_NAME, None)
    STORES.clear()
