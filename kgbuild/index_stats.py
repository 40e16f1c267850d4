"""What an index holds: the graph's counts as the last ingest recorded them, the vector points counted.

Every ingest (and ``kgbuild remove``) ends by counting the graph store and saving the counts in the
ingest state's totals. Reading them back costs milliseconds; loading the graph to count it again costs
a second per ~1,000 chunks with NetworkX, and a connection with Neo4j (BENCHMARKS.md, Q1). The totals
are used only where the state shows that they describe it: no interrupted write pending (no journal),
and the state's own documents and chunks are the ones counted. Otherwise, or with ``recount=True``,
the graph store is counted. The vector points are always counted from the vector store.
"""

from __future__ import annotations

from typing import Any

from kgbuild.retrieve.vector import load_manifest
from kgbuild.settings import Settings
from kgbuild.state import JOURNAL_FILE, IngestState
from kgbuild.stores import make_graph_sink, make_vector_sink, settings_for_index
from kgbuild.types import IndexStats

_COUNTS = ("documents", "chunks", "mentions", "entities", "relations", "entities_by_type", "relations_by_type")


def stats(settings: Settings | None = None, *, recount: bool = False) -> IndexStats:
    """Documents, chunks, mentions, entities and relations by type, vector points, and build provenance."""
    settings = settings or Settings()
    state = load_manifest(settings.out_dir)
    manifest = state.manifest
    settings = settings_for_index(settings, manifest)
    recorded = None if recount else recorded_graph_counts(state)
    if recorded is not None:
        result = IndexStats(**recorded)
    else:
        graph = make_graph_sink(settings)
        graph.open()
        try:
            result = graph.stats()
        finally:
            graph.close()  # nothing was written: closes the Neo4j driver, writes nothing
    tasks = list(manifest.get("schema_definition", {}).get("classifications", {}))
    vectors = make_vector_sink(settings, tasks)
    vectors.open(None)
    try:
        result.vector_points = vectors.count()
    finally:
        vectors.close()
    schema = manifest.get("schema", {})
    result.schema_name = schema.get("name", "")
    result.schema_version = f"{schema.get('version', '')} ({schema.get('fingerprint', '')})"
    result.model = manifest.get("model", "")
    result.embedding_model = manifest.get("embedding_model", "")
    result.kgbuild_version = manifest.get("kgbuild_version", "")
    return result


def recorded_graph_counts(state: IngestState) -> dict[str, Any] | None:
    """The graph counts the last ingest saved, where they still describe the state; else None."""
    totals = state.totals
    if not totals or any(key not in totals for key in _COUNTS):
        return None
    if (state.path.parent / JOURNAL_FILE).exists():  # an interrupted write: the stores may hold more
        return None
    documents = state.all_documents()
    if totals["documents"] != len(documents) or totals["chunks"] != sum(d.chunks for d in documents.values()):
        return None  # written since (an interrupted run's checkpoints, or a LlamaIndex writer with no file records)
    return {key: totals[key] for key in _COUNTS}
