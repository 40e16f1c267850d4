"""The in-memory graph sink (a backend that lives only in the tests) against the graph-sink conformance suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402
from graph_sink_suite import GraphSinkConformance, canonical_export  # noqa: E402
from memory_graph_sink import STORES, MemoryGraphSink  # noqa: E402

from kgbuild.connectors.networkx_graph import NetworkXGraphSink  # noqa: E402
from kgbuild.ids import document_id  # noqa: E402


@pytest.fixture(autouse=True)
def _forget_stores():
    yield
    STORES.clear()


class TestMemoryGraphSink(GraphSinkConformance):
    def make_sink(self, folder: Path) -> MemoryGraphSink:
        return MemoryGraphSink(folder)

    # -- memory-only ---------------------------------------------------------------------------

    def test_constructor_does_nothing(self, tmp_path):
        MemoryGraphSink(tmp_path / "never")
        assert STORES == {}

    def test_same_export_and_stats_as_networkx(self, open_sink, tmp_path):
        """Written from the Protocol alone, it stores exactly what the NetworkX sink stores."""
        reference = NetworkXGraphSink(tmp_path / "graph.json")
        reference.open()
        sink = open_sink()
        for batch in (b.corpus_batch(), b.hostile_batch(), b.apple_v2_batch()):
            reference.write(batch)
            sink.write(batch)
        for doc_ids in ([document_id(b.ACME)], [document_id(b.WIRE_1), document_id(b.HOSTILE_PATH)]):
            reference.remove_documents(doc_ids)
            sink.remove_documents(doc_ids)
            assert canonical_export(self.export(sink)) == canonical_export(reference.export())
            assert sink.stats() == reference.stats()
