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
from kgbuild.ids import point_id  # noqa: E402
from kgbuild.types import ChunkPoint  # noqa: E402


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

    def test_every_field_kgbuild_filters_on_is_indexed_and_no_other(self, shared):
        """The engine holds keyword indexes in memory: the embedded store indexes what kgbuild's filters name (a
        filter naming every condition kgbuild has, and removal by doc_id), not chunk_id or entity_ids."""
        import qdrant_edge

        from kgbuild.connectors.qdrant_filter import to_qdrant_filter
        from kgbuild.types import VectorFilter

        every = VectorFilter(entity_keys=("PERSON:a",), entity_types=("PERSON",), classes=(("document_type", "x"),),
                             paths=("a.md",), doc_ids=("doc_1",), entity_any=(("PERSON:b",),), communities=("c0-1",))
        named: set[str] = set()

        def walk(condition):
            for part in [*(condition.must or []), *(condition.should or [])]:
                walk(part) if isinstance(part, qdrant_edge.Filter) else named.add(part.key)

        walk(to_qdrant_filter(qdrant_edge, every))
        sink, _ = shared
        schema = set(sink._shard.info().payload_schema)
        assert named <= schema
        assert schema == named | {"doc_id"}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")
def test_written_pages_of_the_shard_do_not_stay_in_the_process(tmp_path):
    """The engine keeps every page it wrote through its memory-mapped files resident until the shard closes; the sink
    lets go of them after each write (kgbuild.memory.release_mapped_pages), so a long ingest does not grow by them."""
    sink = QdrantEdgeVectorSink(tmp_path / "vectors")
    sink.open(DIM)
    chunks = [f"doc_{i // 4}:{i % 4:05d}" for i in range(3000)]
    points = [ChunkPoint(point_id(c), c, b.fake_vector(c, DIM), {"chunk_id": c, "doc_id": c.split(":")[0], "text": "word " * 200})
              for c in chunks]
    def resident_kib() -> int:
        total, inside = 0, False
        prefix = str((tmp_path / "vectors").resolve())
        with open("/proc/self/smaps") as fh:
            for line in fh:
                fields = line.split()
                if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's first line
                    inside = len(fields) >= 6 and fields[5].startswith(prefix)
                elif inside and fields[0] == "Rss:":
                    total += int(fields[1])
        return total

    for start in range(0, len(points), 500):
        sink.upsert(points[start:start + 500])
    assert resident_kib() < 1024, resident_kib()  # after the writes, before any flush
    sink.flush()
    assert resident_kib() < 1024, resident_kib()
    assert sink.count() == 3000
    assert len(sink.export().points) == 3000  # read back from the files
    sink.close()
