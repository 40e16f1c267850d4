"""The two store Protocols every backend implements: a write side for ingest and a read side for
retrieval, views and ``verify``.

Nothing outside ``connectors/`` and the registry (``kgbuild.registry``) knows which store it talks
to: the pipeline, ``Index``, the retrievers, the graph view and ``verify`` call only the methods
below. ``tests/conformance/`` holds every implementation to the same behaviour, read side
included, so a backend that passes it works with every command.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, Sequence

from kgbuild.types import (
    ChunkPoint, CommunityRecord, Entity, EntityGraphData, GraphBatch, GraphExport, IndexStats, MentionRecord, VectorExport, VectorFilter,
    VectorHit,
)


class GraphSink(Protocol):
    """A knowledge-graph store. Writing a document replaces whatever an earlier version of it wrote."""

    def open(self) -> None:
        """Connect, or load what is stored; an absent store opens empty."""
        ...

    # -- write side --------------------------------------------------------------------

    def write(self, batch: GraphBatch) -> None: ...

    def remove_documents(self, doc_ids: Sequence[str]) -> None: ...

    def replace_communities(self, communities: Sequence[CommunityRecord]) -> None:
        """Hold exactly these communities afterwards: a ``Community`` node each (id, level, title, parent, size,
        top_entities, top_terms, summary), ``IN_COMMUNITY {level}`` from each member entity the store holds, and
        ``SUBCOMMUNITY_OF`` to its parent. Communities not given are deleted; a store may rewrite only those that
        differ from what it holds. Entities removed later take their ``IN_COMMUNITY`` edges with them."""
        ...

    def flush(self) -> None:
        """Make everything written so far durable."""
        ...

    def close(self) -> None:
        """Flush what was written, release the connection or file."""
        ...

    # -- read side ---------------------------------------------------------------------

    def stats(self) -> IndexStats:
        """Counts of documents, chunks, mentions, entities and relations (by type)."""
        ...

    def entity_graph(self, *, mentions: bool = True) -> EntityGraphData:
        """Entities (name, aliases, counts), chunk-to-entity mention pairs and relation edges: the graph
        that graph retrieval walks. ``mentions=False`` leaves the mention pairs out (an empty list): the
        retrieval graph takes them from the chunk payloads, and there are ~20 per chunk."""
        ...

    def export(self) -> GraphExport:
        """The whole graph in the store-independent form (``verify``, the graph view, comparisons)."""
        ...

    def entities(self) -> dict[str, Entity]:
        """Every entity by id, with its name, aliases and counts per alias, as ``entity_graph()`` gives them
        (without reading mentions or relations): ``kgbuild entities list`` and finding one by name."""
        ...

    def entity_mentions(self, entity_ids: Sequence[str]) -> list[MentionRecord]:
        """The MENTIONS of these entities as ``export()`` gives them, with the resolution rule and evidence
        each carries (unknown ids: none): ``kgbuild entities show``."""
        ...

    def communities(self) -> list[CommunityRecord]:
        """Every community the store holds, sorted by (level, id), with the member entities it holds
        (``export()`` leaves communities out: they are derived from the graph, not part of it)."""
        ...


class VectorSink(Protocol):
    """A chunk vector store. Point ids are deterministic, so writing twice is an upsert."""

    def exists(self) -> bool:
        """Whether the collection is there (for a server: reachable, or a clear error naming it)."""
        ...

    def open(self, dimension: int | None = None) -> None:
        """Writers pass the embedding dimension: the collection is created if absent, and checked if
        present. Readers pass nothing: the collection must exist."""
        ...

    # -- write side --------------------------------------------------------------------

    def upsert(self, points: Sequence[ChunkPoint]) -> None: ...

    def delete_documents(self, doc_ids: Sequence[str]) -> None: ...

    def set_chunk_communities(self, communities: Mapping[str, Sequence[str]]) -> None:
        """Set the ``communities`` payload field (keyword-indexed) of the points of these chunks (chunk id ->
        community ids; an empty list clears it), leaving vectors and every other field alone. Chunks the store
        does not hold are skipped."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    # -- read side ---------------------------------------------------------------------

    def search(self, vector: Sequence[float], query_filter: VectorFilter | None, limit: int) -> list[VectorHit]: ...

    def count(self) -> int: ...

    def export(self) -> VectorExport:
        """Every point's payload by point id."""
        ...

    def payload_pages(self) -> Iterator[list[dict[str, Any]]]:
        """Every point's payload, a page at a time, in the store's order: what reads the whole store without
        holding it (the retrieval graph's build, ``kgbuild.retrieve.chunk_rows``)."""
        ...

    def chunk_communities(self) -> dict[str, list[str]]:
        """Every point's ``communities`` field by chunk id (missing: an empty list), reading only that field and
        the chunk id: what ``kgbuild.communities`` compares with before it sets the ones that changed."""
        ...
