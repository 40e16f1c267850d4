"""What an index holds, counted from the stores themselves."""

from __future__ import annotations

from kgbuild.retrieve.vector import load_manifest
from kgbuild.settings import Settings
from kgbuild.stores import make_graph_sink, make_vector_sink, settings_for_index
from kgbuild.types import IndexStats


def stats(settings: Settings | None = None) -> IndexStats:
    """Documents, chunks, mentions, entities and relations by type, vector points, and build provenance."""
    settings = settings or Settings()
    state = load_manifest(settings.out_dir)
    manifest = state.manifest
    settings = settings_for_index(settings, manifest)
    graph = make_graph_sink(settings)
    graph.open()
    result = graph.stats()
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
