"""What both Qdrant connectors share: one translation of kgbuild's VectorFilter into Qdrant filter objects, and
the ``communities`` payload field read and grouped for updates.

qdrant-client (``qdrant_client.models``) and qdrant-edge (``qdrant_edge``) expose classes with the same
names and keyword arguments (Filter, FieldCondition, MatchValue, MatchAny); each connector passes its module.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from kgbuild.types import COMMUNITIES_FIELD, VectorExport, VectorFilter


def to_qdrant_filter(models: Any, query_filter: VectorFilter | None) -> Any:
    if query_filter is None or query_filter.is_empty():
        return None

    def equals(key: str, value: str) -> Any:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    must: list[Any] = [equals("entity_keys", key) for key in query_filter.entity_keys]
    must += [models.FieldCondition(key="entity_keys", match=models.MatchAny(any=list(group)))
             for group in query_filter.entity_any]
    must += [equals("entity_types", entity_type) for entity_type in query_filter.entity_types]
    for task, label in query_filter.classes:
        # a label given to the chunk, or to the whole document the chunk belongs to
        must.append(models.Filter(should=[equals(f"class.{task}", label), equals(f"doc_class.{task}", label)]))
    if query_filter.paths:
        paths = list(query_filter.paths)
        must.append(
            models.Filter(
                should=[
                    models.FieldCondition(key="path", match=models.MatchAny(any=paths)),
                    models.FieldCondition(key="source_path", match=models.MatchAny(any=paths)),
                ]
            )
        )
    if query_filter.communities:
        must.append(models.FieldCondition(key="communities", match=models.MatchAny(any=list(query_filter.communities))))
    if query_filter.doc_ids:
        must.append(models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(query_filter.doc_ids))))
    return models.Filter(must=must)


def group_by_communities(communities: Mapping[str, Sequence[str]]) -> dict[tuple[str, ...], list[str]]:
    """Chunks by the community ids they get (one payload update per distinct value), each list sorted."""
    out: dict[tuple[str, ...], list[str]] = {}
    for chunk in sorted(communities):
        out.setdefault(tuple(communities[chunk]), []).append(chunk)
    return out


def add_chunk_communities(records: Iterable[Any], out: dict[str, list[str]]) -> None:
    """The ``communities`` field of scrolled records (payload: ``chunk_id`` and that field), by chunk id."""
    for r in records:
        payload = r.payload or {}
        if payload.get("chunk_id"):
            out[str(payload["chunk_id"])] = list(payload.get(COMMUNITIES_FIELD) or [])


def payloads_of(pages: Iterable[Sequence[Any]]) -> Iterator[list[dict[str, Any]]]:
    """Pages of scrolled records (either client's) as pages of payloads (``VectorSink.payload_pages``)."""
    for records in pages:
        yield [dict(r.payload or {}) for r in records]


def export_of(pages: Iterable[Sequence[Any]]) -> VectorExport:
    """Pages of scrolled records as every point's payload by point id (``VectorSink.export``)."""
    points: dict[str, dict[str, Any]] = {}
    for records in pages:
        points.update((str(r.id), dict(r.payload or {})) for r in records)
    return VectorExport(points)
