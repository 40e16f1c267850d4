"""One translation of kgbuild's VectorFilter into Qdrant filter objects, for both Qdrant connectors.

qdrant-client (``qdrant_client.models``) and qdrant-edge (``qdrant_edge``) expose classes with the same
names and keyword arguments (Filter, FieldCondition, MatchValue, MatchAny); each connector passes its module.
"""

from __future__ import annotations

from typing import Any

from kgbuild.types import VectorFilter


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
