"""Graph backends by name: one defined only in the tests works with ingest and every command that reads an index.

Adding a graph backend takes three things, and nothing else in kgbuild changes:

1. **The module.** ``connectors/<name>.py`` (or a subpackage ``connectors/<name>/``) with a class that
   has the methods of ``kgbuild.sinks.GraphSink``: the write side (``open``, ``write``,
   ``remove_documents``, ``flush``, ``close``) and the read side (``stats``, ``entity_graph``,
   ``export``). It imports its client library lazily and does no I/O in its constructor. It stores
   the records of ``kgbuild.connectors.graph_records`` and recomputes entity names, aliases and
   counts from the mentions that remain with ``kgbuild.reconcile`` (``SurfaceTally`` or
   ``summarize_surfaces``), so every store holds the same canonical entities.
2. **One registry call.** ``register_graph_backend(GraphBackend(name, make, describe, ...))`` in
   ``kgbuild/registry.py``, beside the built-in ones: ``make(settings)`` returns the sink, not opened;
   ``describe(settings)`` says where the graph lives; ``location_settings`` names the settings the
   manifest keeps so that read commands reopen the same store; ``embedded=False`` for a server;
   ``check`` for settings that can only fail later (a missing password). From then on
   ``--graph <name>`` (``Settings.graph``) accepts it, ingest records it in the manifest, and
   ``query --hybrid``, ``graph view``, ``stats``, ``remove`` and ``verify`` reopen it.
3. **The conformance test.** ``tests/conformance/test_<name>_graph_sink.py``: a class that mixes in
   ``GraphSinkConformance`` (``tests/conformance/graph_sink_suite.py``) and implements one hook,
   ``make_sink(folder)``; a server-backed store is marked (``pytest.mark.neo4j``) and skips only
   where its server cannot run.

A vector backend is the same three steps with ``kgbuild.sinks.VectorSink``, ``register_vector_backend``
and ``VectorSinkConformance``.

Here the module is ``tests/conformance/memory_graph_sink.py`` (plain dicts in this process), its
registry call is ``register_memory_backend()`` (made by a fixture, so the backend exists only for
these tests), and ``tests/conformance/test_memory_graph_sink.py`` is its conformance test. The tests
below ingest with it and read the index back through the CLI, in process.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

_CONFORMANCE = str(Path(__file__).resolve().parent / "conformance")
if _CONFORMANCE not in sys.path:
    sys.path.insert(0, _CONFORMANCE)

from memory_graph_sink import BACKEND_NAME, MemoryGraphSink, register_memory_backend, unregister_memory_backend  # noqa: E402

from kgbuild.cli import app  # noqa: E402
from kgbuild.index import Index  # noqa: E402
from kgbuild.pipeline import ingest  # noqa: E402
from kgbuild.registry import GRAPH_BACKENDS, GRAPH_FILE  # noqa: E402
from kgbuild.settings import Settings  # noqa: E402
from kgbuild.verify import graph_checksum  # noqa: E402

runner = CliRunner()

CORPUS = {
    "news/apple.txt": "Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino. The Vision Pro costs $2,499.",
    "news/acme.md": "# Acme\nAcme Corp, led by CEO Jane Park, will launch Rocket Skates. Acme Corp competes with Globex Ltd.",
    "news/results.txt": "APPLE INC. reported revenue for the quarter. Globex said profit fell in Europe.",
    "legal/suit.txt": "In a lawsuit filed in Seoul, Globex accused Acme Corp before the court.",
}


@pytest.fixture
def memory_backend():
    """The memory graph backend, registered for one test and removed (with every graph it held) after it."""
    register_memory_backend()
    yield
    unregister_memory_backend()
    assert BACKEND_NAME not in GRAPH_BACKENDS


@pytest.fixture
def memory_index(tmp_path, memory_backend, gazetteer, embedder) -> Path:
    """A small corpus ingested with ``graph="memory"``; the output directory."""
    corpus = tmp_path / "corpus"
    for rel, text in CORPUS.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text, encoding="utf-8")
    settings = Settings(out_dir=tmp_path / "out", graph=BACKEND_NAME, chunk_size=16, chunk_overlap=4, checkpoint_seconds=0)
    report = ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    assert report.documents_read == len(CORPUS) and report.entities > 0
    return settings.out_dir


def memory_sink(out: Path) -> MemoryGraphSink:
    sink = MemoryGraphSink(out)
    sink.open()
    return sink


def test_ingest_keeps_the_graph_in_the_registered_backend(memory_index):
    sink = memory_sink(memory_index)
    stats = sink.stats()
    assert (stats.documents, stats.entities) == (len(CORPUS), len(sink.export().entities))
    assert stats.relations_by_type.get("CEO_OF") == 2 and stats.relations_by_type.get("COMPETES_WITH") == 1
    assert not (memory_index / GRAPH_FILE).exists(), "nothing was written to the default networkx graph"
    index = Index.open_existing(Settings(out_dir=memory_index))  # no graph named: the manifest says which
    assert index.manifest.graph is not None and index.manifest.graph.kind == BACKEND_NAME
    assert index.settings.graph == BACKEND_NAME


def test_hybrid_query_walks_the_memory_graph(memory_index, monkeypatch):
    reads = []
    entity_graph = MemoryGraphSink.entity_graph

    def counted(self, **kwargs):
        reads.append(self.place)
        return entity_graph(self, **kwargs)

    monkeypatch.setattr(MemoryGraphSink, "entity_graph", counted)
    # ingest stored the graph channel's matrix, read from the memory store; without it, the query builds it again
    shutil.rmtree(memory_index / "retrieval")
    result = runner.invoke(app, ["query", "Who leads the company that competes with Globex Ltd.?", "--hybrid",
                                 "--out", str(memory_index), "-k", "5", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits and len(hits) <= 5
    assert reads == [memory_index], "the graph channel read the memory store of this index"
    graph_hits = [h for h in hits if any(r["channel"] == "graph" for r in h["reasons"])]
    assert graph_hits, [h["reasons"] for h in hits]
    reason = next(r for r in graph_hits[0]["reasons"] if r["channel"] == "graph")
    assert reason["entity"] == "COMPANY:globex" and reason["path"][0] == "COMPANY:globex"
    assert any("Jane Park" in h["text"] for h in graph_hits)


def test_graph_view_shows_the_memory_graph(memory_index, tmp_path):
    html = tmp_path / "view" / "graph.html"
    result = runner.invoke(app, ["graph", "view", "--html", str(html), "--out", str(memory_index)])
    assert result.exit_code == 0, result.output
    page = html.read_text(encoding="utf-8")
    names = [e["name"] for e in memory_sink(memory_index).export().entities.values()]
    assert len(names) >= 10
    for name in names:
        assert json.dumps(name)[1:-1] in page or name in page, name


def test_stats_and_verify_read_the_memory_graph(memory_index):
    sink = memory_sink(memory_index)
    stats = runner.invoke(app, ["stats", "--out", str(memory_index), "--json"])
    assert stats.exit_code == 0, stats.output
    counts = json.loads(stats.stdout)
    expected = sink.stats()
    for name in ("documents", "chunks", "mentions", "entities", "relations", "entities_by_type", "relations_by_type"):
        assert counts[name] == getattr(expected, name), name
    assert counts["vector_points"] == expected.chunks

    verified = runner.invoke(app, ["verify", "--out", str(memory_index), "--json"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert report["ok"] and report["problems"] == []
    assert (report["documents"], report["graph_documents"]) == (len(CORPUS), len(CORPUS))
    assert report["graph_checksum"] == graph_checksum(sink.export())

    # the graph changed behind kgbuild's back: verify finds it in the memory store
    sink.remove_documents([next(iter(sink.export().documents))])
    damaged = runner.invoke(app, ["verify", "--out", str(memory_index)])
    assert damaged.exit_code == 1 and "problem" in damaged.output


def test_an_unknown_graph_backend_is_one_line_naming_the_setting(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(CORPUS["news/apple.txt"], encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(app, ["ingest", str(corpus), "--graph", "no-such-store", "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "setting graph" in lines[0] and "'no-such-store'" in lines[0]
    assert "networkx" in lines[0] and "neo4j" in lines[0]  # what it could have been
    assert not out.exists()


def test_an_index_whose_backend_is_not_registered_says_which(memory_index):
    unregister_memory_backend()
    for command in (["verify"], ["graph", "view", "--html", str(memory_index / "view.html")]):
        result = runner.invoke(app, [*command, "--out", str(memory_index)])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        assert f"graph backend '{BACKEND_NAME}' is unknown" in lines[0]
