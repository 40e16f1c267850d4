"""`kgbuild ingest --graph neo4j` end to end, against the real server from scripts/neo4j-dev.sh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import DOCS, write_corpus

from kgbuild.connectors.neo4j.sink import Neo4jGraphSink
from kgbuild.pipeline import ingest
from kgbuild.settings import Settings
from kgbuild.index import stats

pytestmark = pytest.mark.neo4j


@pytest.fixture
def neo4j_settings(neo4j_server, tmp_path, monkeypatch):
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.open()
    sink.clear()
    sink.close()
    return Settings(out_dir=tmp_path / "neo4j-index", graph="neo4j", neo4j_uri=neo4j_server["uri"],
                    neo4j_user=neo4j_server["user"], neo4j_database=neo4j_server["database"], chunk_size=16, chunk_overlap=4)


def test_neo4j_and_networkx_hold_the_same_graph(tmp_path, neo4j_settings, gazetteer, embedder):
    corpus = write_corpus(tmp_path / "corpus", DOCS)
    on_networkx = ingest(corpus, Settings(out_dir=tmp_path / "nx", chunk_size=16, chunk_overlap=4),
                         extractor=gazetteer, embedder=embedder)
    on_neo4j = ingest(corpus, neo4j_settings, extractor=gazetteer, embedder=embedder)
    for field in ("documents_read", "chunks", "mentions", "entities", "relations_kept", "relations_dropped"):
        assert getattr(on_neo4j, field) == getattr(on_networkx, field), field
    nx_totals, neo_totals = on_networkx.totals.to_dict(), on_neo4j.totals.to_dict()
    for key in ("documents", "chunks", "mentions", "entities", "relations", "entities_by_type", "relations_by_type", "vector_points"):
        assert neo_totals[key] == nx_totals[key], key
    # stats read the graph back from Neo4j, found through the index's manifest
    assert stats(Settings(out_dir=neo4j_settings.out_dir)).relations_by_type == nx_totals["relations_by_type"]
    manifest = json.loads((Path(neo4j_settings.out_dir) / "state.json").read_text())["manifest"]
    assert manifest["graph"]["kind"] == "neo4j" and neo4j_settings.neo4j_uri in manifest["graph_store"]
    assert "password" not in json.dumps(manifest).lower()
    # re-running is idempotent on Neo4j too
    again = ingest(corpus, neo4j_settings, extractor=gazetteer, embedder=embedder)
    assert again.documents_read == 0 and again.totals.to_dict() == neo_totals
