"""Where an index lives under ``--out``, and which connector serves each store.

Layout of the output directory::

    .kgbuild/
      state.json   ingest state: file and document hashes, manifest, totals (kgbuild.state)
      journal.json documents being written between checkpoints; lock: held by the writing process
      graph.json   the knowledge graph, NetworkX node-link JSON (kgbuild.connectors.networkx_graph)
      qdrant/      the chunk vectors, a qdrant-edge shard (kgbuild.connectors.qdrant_edge);
                   absent when --qdrant-url sends the vectors to a server
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kgbuild.settings import Settings
from kgbuild.write import GraphSink, VectorSink

GRAPH_FILE = "graph.json"
QDRANT_DIR = "qdrant"


def graph_path(out_dir: Path) -> Path:
    return Path(out_dir) / GRAPH_FILE


def make_graph_sink(settings: Settings) -> GraphSink:
    if settings.graph == "neo4j":
        from kgbuild.connectors.neo4j_graph import Neo4jGraphSink

        return Neo4jGraphSink(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database,
                              retry_time=settings.retry_seconds)
    from kgbuild.connectors.networkx_graph import NetworkXGraphSink

    return NetworkXGraphSink(graph_path(settings.out_dir))


def describe_graph_store(settings: Settings) -> str:
    if settings.graph == "neo4j":
        return f"neo4j {settings.neo4j_uri} database {settings.neo4j_database}"
    return f"networkx {GRAPH_FILE} under the output directory"


def make_vector_sink(settings: Settings, classification_tasks: Sequence[str] = ()) -> VectorSink:
    if settings.qdrant_url:
        from kgbuild.connectors.qdrant_server import QdrantServerVectorSink

        return QdrantServerVectorSink(
            settings.collection,
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            classification_tasks=classification_tasks,
            retry_seconds=settings.retry_seconds,
        )
    from kgbuild.connectors.qdrant_edge import QdrantEdgeVectorSink

    return QdrantEdgeVectorSink(Path(settings.out_dir) / QDRANT_DIR, classification_tasks=classification_tasks)


def describe_vector_store(settings: Settings) -> str:
    """Where the vectors of an index live, as recorded in its manifest."""
    if settings.qdrant_url:
        return f"qdrant server {settings.qdrant_url} collection {settings.collection}"
    return f"qdrant-edge {QDRANT_DIR}/ under the output directory"


def settings_for_index(settings: Settings, manifest: dict) -> Settings:
    """Reading an index: use the stores it was built with (a Qdrant server, Neo4j) unless told otherwise."""
    update: dict = {}
    if not settings.qdrant_url and manifest.get("qdrant_url"):
        update.update(qdrant_url=manifest["qdrant_url"], collection=manifest.get("collection", settings.collection))
    graph = manifest.get("graph") or {}
    if graph.get("kind") == "neo4j" and settings.graph == "networkx":
        update.update(graph="neo4j", neo4j_uri=graph.get("uri", settings.neo4j_uri),
                      neo4j_database=graph.get("database", settings.neo4j_database))
    return settings.model_copy(update=update) if update else settings
