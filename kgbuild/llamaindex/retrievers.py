"""LlamaIndex retrievers over a kgbuild index: metadata-filtered vector search, and hybrid retrieval.

Both return ``NodeWithScore`` with ``TextNode(id_=chunk id)`` whose metadata carries the document
path, title, entity keys, classes and community ids (``communities``, every level); the hybrid one adds
``retrieval``: one record per channel that found the chunk (channel, rank, score, query entity, graph path),
and with ``community_context=True`` ``community_context`` (id, level, title, top entities and terms of each of
the chunk's communities). Works in a ``RetrieverQueryEngine``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import MetadataFilters

from kgbuild.entities import EntityKeyResolver
from kgbuild.embed import Embedder
from kgbuild.extract.base import Extractor
from kgbuild.llamaindex.filters import to_vector_filter
from kgbuild.retrieve.hybrid import HybridRetriever
from kgbuild.index import Index
from kgbuild.retrieve.vector import VectorSearcher
from kgbuild.settings import Settings
from kgbuild.types import QueryHit
from kgbuild.sinks import VectorSink


def hit_to_node(hit: QueryHit) -> NodeWithScore:
    metadata: dict[str, Any] = {
        "doc_id": hit.doc_id,
        "path": hit.path,
        "title": hit.title,
        "start": hit.start,
        "end": hit.end,
        "entity_keys": [e.key for e in hit.entities],
        "classes": hit.classes,
        "communities": hit.communities,
    }
    if hit.reasons:
        metadata["retrieval"] = [asdict(r) for r in hit.reasons]
    if hit.community_context:
        metadata["community_context"] = hit.community_context
    node = TextNode(id_=hit.chunk_id, text=hit.text, metadata=metadata, excluded_embed_metadata_keys=list(metadata),
                    excluded_llm_metadata_keys=["entity_keys", "classes", "retrieval", "communities", "community_context"])
    return NodeWithScore(node=node, score=hit.score)


class KgbuildVectorRetriever(BaseRetriever):
    """
    >>> retriever = KgbuildVectorRetriever(Settings(out_dir=".kgbuild"), filters=MetadataFilters(filters=[
    ...     MetadataFilter(key="entity_keys", value="COMPANY:Apple"), MetadataFilter(key="class.document_type",
    ...     value="product_announcement")]), similarity_top_k=5)
    """

    def __init__(self, settings: Settings | None = None, *, filters: MetadataFilters | None = None, similarity_top_k: int = 10,
                 embedder: Embedder | None = None, vector_sink: VectorSink | None = None, hold_store: bool = True,
                 **kwargs: Any):
        """``hold_store``: keep the vector store open from the first query until ``close()`` (a query then costs
        milliseconds, not the store's opening); False opens it per query, for an index another process writes to."""
        super().__init__(**kwargs)
        self.settings = settings or Settings()
        self.filters = filters
        self.similarity_top_k = similarity_top_k
        self.hold_store = hold_store
        self._searcher = VectorSearcher(self.settings, embedder=embedder, vector_sink=vector_sink)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        from kgbuild.communities import community_resolver

        index = Index.open_existing(self.settings)
        vector_filter = to_vector_filter(self.filters, index.manifest, EntityKeyResolver(index), community_resolver(index.out_dir))
        try:
            hits = self._searcher.query(query_bundle.query_str, k=self.similarity_top_k, query_filter=vector_filter)
        finally:
            if not self.hold_store:
                self._searcher.close()
        return [hit_to_node(h) for h in hits]

    def close(self) -> None:
        """Release the vector store (an embedded one admits one process at a time)."""
        self._searcher.close()


class KgbuildHybridRetriever(BaseRetriever):
    """Vector + graph expansion + BM25, fused by reciprocal rank (see ``kgbuild.retrieve.hybrid``)."""

    def __init__(self, settings: Settings | None = None, *, filters: MetadataFilters | None = None, similarity_top_k: int = 10,
                 vector: bool = True, graph: bool = True, bm25: bool = True, hops: int = 2, model: str | None = None,
                 query_model: bool = False, extractor: Extractor | None = None, embedder: Embedder | None = None,
                 community_context: bool = False, **kwargs: Any):
        """``community_context``: each node's metadata also describes its communities (``community_context``)."""
        super().__init__(**kwargs)
        self.filters = filters
        self.similarity_top_k = similarity_top_k
        self.hybrid = HybridRetriever(settings, vector=vector, graph=graph, bm25=bm25, hops=hops, model=model,
                                      query_model=query_model, extractor=extractor, embedder=embedder,
                                      community_context=community_context)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.hybrid.open()
        vector_filter = to_vector_filter(self.filters, self.hybrid.manifest, EntityKeyResolver(self.hybrid.index),
                                         self.hybrid.resolve_community)
        hits = self.hybrid.retrieve(query_bundle.query_str, k=self.similarity_top_k, query_filter=vector_filter)
        return [hit_to_node(h) for h in hits]

    def close(self) -> None:
        self.hybrid.close()
