"""LlamaIndex ``MetadataFilters`` -> kgbuild's ``VectorFilter``, validated against the index's schema.

Supported keys (all conditions AND-ed, operator ``==`` unless said otherwise):

- ``entity_keys`` (or ``entity``): ``"COMPANY:Apple Inc."``; normalised as at ingest
- ``entity_types``: ``"PERSON"``
- ``class.<task>``: a label of the chunk or of its document, e.g. ``class.document_type``
- ``path`` / ``source_path``: a document path (``==`` or ``in``)
- ``doc_id``: a document id (``==`` or ``in``)
- ``communities`` (or ``community``): a community id (``==`` or ``in``: any of them; ``kgbuild communities``)
"""

from __future__ import annotations

from typing import Callable, Sequence

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from kgbuild.errors import ConfigError
from kgbuild.retrieve.vector import build_filter
from kgbuild.state import Manifest
from kgbuild.types import VectorFilter


def to_vector_filter(filters: MetadataFilters | None, manifest: Manifest,
                     resolve_entity: Callable[[str], Sequence[str]] | None = None,
                     resolve_community: Callable[[str], str] | None = None) -> VectorFilter:
    """The filters as a ``VectorFilter``; ``resolve_entity`` (the index's ``EntityKeyResolver``) makes an entity
    value match what ingest resolved it to ("PERSON:Blair" -> Tony Blair); ``resolve_community``
    (``kgbuild.communities.community_resolver``) checks community ids."""
    if filters is None:
        return VectorFilter()
    entities: list[str] = []
    types: list[str] = []
    classes: list[tuple[str, str]] = []
    paths: list[str] = []
    doc_ids: list[str] = []
    communities: list[str] = []
    for item in _flatten(filters):
        key, op, value = item.key, item.operator, item.value
        many = op == FilterOperator.IN and key in ("path", "source_path", "doc_id", "communities", "community")
        if op != FilterOperator.EQ and not many:
            raise ConfigError(f"metadata filter on {key!r}: operator {op.value!r} is not supported here (use ==)")
        values = [str(v) for v in value] if many and isinstance(value, (list, tuple)) else [str(value)]
        if key in ("entity_keys", "entity"):
            entities.extend(values)
        elif key == "entity_types":
            types.extend(values)
        elif key.startswith("class.") and len(key) > len("class."):
            classes.extend((key[len("class."):], v) for v in values)
        elif key in ("path", "source_path"):
            paths.extend(values)
        elif key == "doc_id":
            doc_ids.extend(values)
        elif key in ("communities", "community"):
            communities.extend(values)
        else:
            raise ConfigError(
                f"metadata filter key {key!r} is not filterable in a kgbuild index"
                " (use entity_keys, entity_types, class.<task>, path, source_path, doc_id or communities)"
            )
    return build_filter(manifest, entities=entities, types=types, classes=[f"{t}={v}" for t, v in classes],
                        docs=paths, doc_ids=doc_ids, resolve_entity=resolve_entity, communities=communities,
                        resolve_community=resolve_community)


def _flatten(filters: MetadataFilters) -> list[MetadataFilter]:
    if filters.condition not in (None, FilterCondition.AND) and len(filters.filters) > 1:
        raise ConfigError(f"metadata filters: condition {filters.condition.value!r} is not supported here (only AND)")
    out: list[MetadataFilter] = []
    for item in filters.filters:
        out.extend(_flatten(item) if isinstance(item, MetadataFilters) else [item])
    return out
