"""LlamaIndex integration: kgbuild's extraction, index and retrieval as LlamaIndex components.

- ``KgbuildEmbedding``: the packaged MiniLM (or any sentence-transformers model) as a ``BaseEmbedding``.
- ``KgbuildExtractor``: a ``TransformComponent`` running GLiNER2 multi-task extraction on nodes; usable
  in an ``IngestionPipeline`` and as a ``kg_extractor`` of ``PropertyGraphIndex``.
- ``KgbuildWriter``: a ``TransformComponent`` that sends the nodes through reconciliation into kgbuild's
  graph and vector stores, the same index ``kgbuild ingest`` builds.
- ``KgbuildVectorRetriever`` / ``KgbuildHybridRetriever``: ``BaseRetriever`` s over a kgbuild index, with
  LlamaIndex ``MetadataFilters``.
- ``Neo4jPropertyGraphStoreWithoutApoc``: LlamaIndex's Neo4j property graph store for servers without APOC.

Importing this package imports llama_index; ``import kgbuild`` alone never does.
"""

from kgbuild.llamaindex.embedding import KgbuildEmbedding
from kgbuild.llamaindex.extractor import KgbuildEntityNode, KgbuildExtractor
from kgbuild.llamaindex.filters import to_vector_filter
from kgbuild.llamaindex.neo4j_store import Neo4jPropertyGraphStoreWithoutApoc
from kgbuild.llamaindex.retrievers import KgbuildHybridRetriever, KgbuildVectorRetriever
from kgbuild.llamaindex.writer import KgbuildWriter

__all__ = [
    "KgbuildEmbedding",
    "KgbuildEntityNode",
    "KgbuildExtractor",
    "KgbuildHybridRetriever",
    "KgbuildVectorRetriever",
    "KgbuildWriter",
    "Neo4jPropertyGraphStoreWithoutApoc",
    "to_vector_filter",
]
