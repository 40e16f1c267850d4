"""The NetworkX graph sink against the graph-sink conformance suite, plus its own file format."""

from __future__ import annotations

import json
import sys
from pathlib import Path


import networkx as nx
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402
from graph_sink_suite import GraphSinkConformance  # noqa: E402

from kgbuild.connectors.networkx_graph import NetworkXGraphSink, export_graph, load_graph, save_graph  # noqa: E402
from kgbuild.types import GraphExport  # noqa: E402


def _export_graph(g: nx.MultiDiGraph) -> GraphExport:
    out = export_graph(g)
    assert not out.problems, "the graph holds what kgbuild would not write"
    return out


class TestNetworkXGraphSink(GraphSinkConformance):
    def make_sink(self, folder: Path) -> NetworkXGraphSink:
        return NetworkXGraphSink(folder / "graph.json")

    def test_remove_documents_ignores_ids_of_other_nodes(self, open_sink):
        super().test_remove_documents_ignores_ids_of_other_nodes(open_sink)


    # -- NetworkX-only: the file on disk ---------------------------------------------------------

    def test_reload_through_load_graph_is_lossless(self, tmp_path):
        sink = NetworkXGraphSink(tmp_path / "graph.json")
        sink.open()
        sink.write(b.corpus_batch())
        sink.write(b.hostile_batch())
        sink.close()
        loaded = load_graph(tmp_path / "graph.json")
        assert nx.utils.graphs_equal(loaded, sink.graph)
        assert sorted(loaded.edges(keys=True)) == sorted(sink.graph.edges(keys=True))
        for u, v, k, data in sink.graph.edges(keys=True, data=True):
            assert loaded.edges[u, v, k] == data
        assert dict(loaded.nodes(data=True)) == dict(sink.graph.nodes(data=True))
        assert _export_graph(loaded) == _export_graph(sink.graph)

    def test_save_graph_round_trip_and_no_temp_files(self, tmp_path):
        sink = NetworkXGraphSink(tmp_path / "graph.json")
        sink.open()
        sink.write(b.corpus_batch())
        target = tmp_path / "nested" / "copy.json"
        save_graph(sink.graph, target)
        assert nx.utils.graphs_equal(load_graph(target), sink.graph)
        assert [p.name for p in target.parent.iterdir()] == ["copy.json"]
        json.loads(target.read_text(encoding="utf-8"))  # plain JSON

    def test_flush_writes_only_when_dirty(self, tmp_path):
        path = tmp_path / "graph.json"
        sink = NetworkXGraphSink(path)
        sink.open()
        sink.flush()
        assert not path.exists()
        sink.write(b.corpus_batch(b.ACME))
        sink.flush()
        assert path.exists()
        first = path.stat().st_mtime_ns
        sink.flush()
        assert path.stat().st_mtime_ns == first
