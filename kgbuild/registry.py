"""Which backends exist, and how each is built from the settings: the one place that names them.

A backend is a name, a factory from ``Settings`` to a sink (``kgbuild.sinks``), the settings that
locate its data (recorded in the index's manifest, so that commands reading the index reopen the
same store without flags), and a description for messages. Settings, the CLI and the manifest
all read this registry; adding a backend is one module in ``connectors/`` plus one
``register_graph_backend`` / ``register_vector_backend`` call (see docs/architecture.md).

Factories import their connector on first use, so reading an index imports only its own stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from kgbuild.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.settings import Settings
    from kgbuild.sinks import GraphSink, VectorSink

GRAPH_FILE = "graph.json"  # the NetworkX graph, under the output directory
QDRANT_DIR = "qdrant"  # the qdrant-edge shard, under the output directory


@dataclass(frozen=True, slots=True)
class GraphBackend:
    name: str
    make: Callable[[Settings], GraphSink]
    describe: Callable[[Settings], str]  # where the graph lives, in words (messages, the manifest)
    location_settings: tuple[str, ...] = ()  # Settings fields that say where its data is (the manifest keeps them)
    embedded: bool = True  # its data lives under the output directory
    check: Callable[[Settings], None] | None = None  # settings that can only fail later (a missing password)


@dataclass(frozen=True, slots=True)
class VectorBackend:
    name: str
    make: Callable[[Settings, Sequence[str]], VectorSink]  # (settings, classification tasks)
    describe: Callable[[Settings], str]
    location_settings: tuple[str, ...] = ()
    embedded: bool = True
    check: Callable[[Settings], None] | None = None


GRAPH_BACKENDS: dict[str, GraphBackend] = {}
VECTOR_BACKENDS: dict[str, VectorBackend] = {}
DEFAULT_GRAPH = "networkx"
DEFAULT_VECTOR = "qdrant-edge"


def register_graph_backend(backend: GraphBackend) -> None:
    GRAPH_BACKENDS[backend.name] = backend


def register_vector_backend(backend: VectorBackend) -> None:
    VECTOR_BACKENDS[backend.name] = backend


def graph_backend(name: str) -> GraphBackend:
    try:
        return GRAPH_BACKENDS[name]
    except KeyError:
        raise ConfigError(f"graph backend {name!r} is unknown (known: {', '.join(sorted(GRAPH_BACKENDS))})") from None


def vector_backend(name: str) -> VectorBackend:
    try:
        return VECTOR_BACKENDS[name]
    except KeyError:
        raise ConfigError(f"vector backend {name!r} is unknown (known: {', '.join(sorted(VECTOR_BACKENDS))})") from None


def make_graph_sink(settings: Settings) -> GraphSink:
    return graph_backend(settings.graph).make(settings)


def make_vector_sink(settings: Settings, classification_tasks: Sequence[str] = ()) -> VectorSink:
    return vector_backend(settings.vector_backend).make(settings, classification_tasks)


def store_location(settings: Settings, fields: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in fields}


# -- the built-in backends ------------------------------------------------------------------------


def _networkx(settings: Settings) -> GraphSink:
    from kgbuild.connectors.networkx_graph import NetworkXGraphSink

    return NetworkXGraphSink(Path(settings.out_dir) / GRAPH_FILE)


def _neo4j(settings: Settings) -> GraphSink:
    from kgbuild.connectors.neo4j import Neo4jGraphSink

    return Neo4jGraphSink(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database,
                          retry_time=settings.retry_seconds)


def _neo4j_password(settings: Settings) -> None:
    if not settings.neo4j_password:
        raise ConfigError(
            f"--graph neo4j: no password for Neo4j user '{settings.neo4j_user}' at {settings.neo4j_uri};"
            f" set it in the environment variable {settings.neo4j_password_env}"
        )


def _qdrant_edge(settings: Settings, tasks: Sequence[str]) -> VectorSink:
    from kgbuild.connectors.qdrant_edge import QdrantEdgeVectorSink

    return QdrantEdgeVectorSink(Path(settings.out_dir) / QDRANT_DIR, classification_tasks=tasks)


def _qdrant_server(settings: Settings, tasks: Sequence[str]) -> VectorSink:
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink

    return QdrantServerVectorSink(settings.collection, url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                                  classification_tasks=tasks, retry_seconds=settings.retry_seconds)


def _qdrant_url(settings: Settings) -> None:
    if not settings.qdrant_url:
        raise ConfigError("--vector qdrant-server needs --qdrant-url (or KGBUILD_QDRANT_URL)")


register_graph_backend(GraphBackend(
    "networkx", _networkx, lambda s: f"networkx {GRAPH_FILE} under the output directory"))
register_graph_backend(GraphBackend(
    "neo4j", _neo4j, lambda s: f"neo4j {s.neo4j_uri} database {s.neo4j_database}",
    location_settings=("neo4j_uri", "neo4j_database"), embedded=False, check=_neo4j_password))
register_vector_backend(VectorBackend(
    "qdrant-edge", _qdrant_edge, lambda s: f"qdrant-edge {QDRANT_DIR}/ under the output directory"))
register_vector_backend(VectorBackend(
    "qdrant-server", _qdrant_server, lambda s: f"qdrant server {s.qdrant_url} collection {s.collection}",
    location_settings=("qdrant_url", "collection"), embedded=False, check=_qdrant_url))


def settings_reopening(settings: Settings, graph: Mapping[str, Any] | None, vectors: Mapping[str, Any] | None) -> Settings:
    """Reading an index: the stores its manifest records. Settings that choose a backend themselves (``graph``
    set explicitly; ``vector`` or ``qdrant_url`` set) keep it; where they choose the recorded backend, the
    recorded location fills in what they leave unset (``--vector qdrant-server`` alone finds the URL)."""
    update: dict[str, Any] = {}
    explicit = settings.model_fields_set
    chosen = {"graph": settings.graph if "graph" in explicit else None,
              "vector": settings.vector_backend if settings.vector is not None or settings.qdrant_url else None}
    for record, field in ((graph, "graph"), (vectors, "vector")):
        if not record or not record.get("kind"):
            continue
        if chosen[field] is None:
            update[field] = record["kind"]
        elif chosen[field] != record["kind"]:
            continue  # told to read another store
        update.update({k: v for k, v in record.items() if k != "kind" and k not in explicit})
    update = {k: v for k, v in update.items() if getattr(settings, k) != v}
    return settings.model_copy(update=update) if update else settings
