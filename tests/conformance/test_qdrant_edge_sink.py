"""The embedded Qdrant Edge vector sink against the vector-sink conformance suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402
from vector_sink_suite import DIM, VectorSinkConformance  # noqa: E402

from kgbuild.connectors.qdrant_edge import QdrantEdgeVectorSink  # noqa: E402
from kgbuild.errors import SinkError  # noqa: E402


class TestQdrantEdgeVectorSink(VectorSinkConformance):
    def make_sink(self, folder: Path) -> QdrantEdgeVectorSink:
        return QdrantEdgeVectorSink(folder, classification_tasks=["document_type"])

    def test_open_with_another_dimension_is_refused(self, open_sink):
        super().test_open_with_another_dimension_is_refused(open_sink)


    def test_second_open_of_a_folder_in_use_is_a_sink_error(self, tmp_path):
        first = QdrantEdgeVectorSink(tmp_path / "shard", classification_tasks=["document_type"])
        first.open(DIM)
        first.upsert(b.points_for(b.corpus_batch(b.ACME), DIM))
        first.flush()
        second = QdrantEdgeVectorSink(tmp_path / "shard", classification_tasks=["document_type"])
        try:
            with pytest.raises(SinkError) as caught:
                second.open(DIM)
            message = str(caught.value)
            assert str(tmp_path / "shard") in message
            assert "in use" in message
            assert caught.value.__cause__ is None and caught.value.__suppress_context__
            # the first one is unharmed
            assert first.count() == 1
        finally:
            second.close()
            first.close()
        reopened = QdrantEdgeVectorSink(tmp_path / "shard")
        reopened.open(None)
        try:
            assert reopened.count() == 1
        finally:
            reopened.close()

    def test_payload_indexes_exist(self, shared):
        sink, _ = shared
        schema = set(sink._shard.info().payload_schema)
        for field in ("doc_id", "path", "source_path", "entity_keys", "entity_types", "class.document_type", "doc_class.document_type"):
            assert field in schema
