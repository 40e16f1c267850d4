"""The embedded Qdrant Edge vector sink against the vector-sink conformance suite."""

from __future__ import annotations

import subprocess
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


    def test_a_folder_in_use_by_another_process_is_a_sink_error(self, tmp_path):
        first = QdrantEdgeVectorSink(tmp_path / "shard", classification_tasks=["document_type"])
        first.open(DIM)
        first.upsert(b.points_for(b.corpus_batch(b.ACME), DIM))
        first.flush()
        script = (
            "import sys\n"
            "from kgbuild.connectors.qdrant_edge import QdrantEdgeVectorSink\n"
            "from kgbuild.errors import SinkError\n"
            "try:\n"
            f"    QdrantEdgeVectorSink(sys.argv[1]).open({DIM})\n"
            "except SinkError as exc:\n"
            "    print('SinkError', exc, exc.__cause__ is None and exc.__suppress_context__)\n"
        )
        try:
            done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "shard")], capture_output=True, text=True)
            assert done.stdout.startswith("SinkError"), done.stdout + done.stderr
            assert str(tmp_path / "shard") in done.stdout and "in use" in done.stdout
            assert done.stdout.strip().endswith("True")
            assert first.count() == 1  # the first one is unharmed
        finally:
            first.close()

    def test_sinks_on_one_folder_in_one_process_share_the_store(self, tmp_path):
        """Two retrievers on one index, or a retriever held open during an ingest, in the same process."""
        first = QdrantEdgeVectorSink(tmp_path / "shard", classification_tasks=["document_type"])
        first.open(DIM)
        second = QdrantEdgeVectorSink(tmp_path / "shard", classification_tasks=["document_type"])
        second.open(None)
        try:
            first.upsert(b.points_for(b.corpus_batch(b.ACME), DIM))
            assert second.count() == 1
            first.close()
            assert second.count() == 1  # closing one leaves the other open
        finally:
            first.close()
            second.close()
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
