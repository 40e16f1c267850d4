"""The Qdrant server vector sink against the vector-sink conformance suite, through qdrant-client local mode."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402
from vector_sink_suite import DIM, VectorSinkConformance  # noqa: E402

from kgbuild.connectors.qdrant_server import QdrantServerVectorSink  # noqa: E402
from kgbuild.errors import SinkError, TransientError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class TestQdrantServerVectorSink(VectorSinkConformance):
    def make_sink(self, folder: Path) -> QdrantServerVectorSink:
        return QdrantServerVectorSink("chunks", path=str(folder), classification_tasks=["document_type"])

    def test_open_with_another_dimension_is_refused(self, open_sink):
        super().test_open_with_another_dimension_is_refused(open_sink)

    def test_in_memory_location(self):
        sink = QdrantServerVectorSink("chunks", location=":memory:", classification_tasks=["document_type"])
        sink.open(DIM)
        try:
            points = b.points_for(b.corpus_batch(), DIM)
            sink.upsert(points)
            assert sink.count() == len(points)
            assert sink.search(points[3].vector, None, 1)[0].point_id == points[3].id
        finally:
            sink.close()

    def test_collections_in_one_storage_are_separate(self, tmp_path):
        one = QdrantServerVectorSink("one", path=str(tmp_path / "q"))
        one.open(DIM)
        try:
            one.upsert(b.points_for(b.corpus_batch(b.ACME), DIM))
            assert one.count() == 1
            assert not QdrantServerVectorSink("two", path=str(tmp_path / "q"))._call("noop", lambda: False)
        finally:
            one.close()

    def test_second_open_of_a_folder_in_use_is_a_sink_error(self, tmp_path):
        first = QdrantServerVectorSink("chunks", path=str(tmp_path / "q"))
        first.open(DIM)
        second = QdrantServerVectorSink("chunks", path=str(tmp_path / "q"))
        try:
            with pytest.raises(SinkError, match="cannot open Qdrant storage"):
                second.open(DIM)
        finally:
            second.close()
            first.close()

    def test_repr_hides_the_api_key(self):
        sink = QdrantServerVectorSink("chunks", url="https://qdrant.example.invalid:6333", api_key="sekret")
        assert "sekret" not in repr(sink)
        assert "sekret" not in str(sink)
        assert "sekret" not in sink.target
        assert "qdrant.example.invalid" in repr(sink)

    def test_errors_do_not_show_the_api_key(self, monkeypatch):
        from qdrant_client import qdrant_remote

        # qdrant-client checks the server version in a background thread that warns outside the test
        monkeypatch.setattr(qdrant_remote.QdrantRemote, "_check_compatibility", staticmethod(lambda *args: None), raising=False)
        with socket.socket() as probe:  # a local port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sink = QdrantServerVectorSink("chunks", url=f"http://127.0.0.1:{port}", api_key="sekret", retry_seconds=0.5)
        try:
            with pytest.raises(TransientError) as caught:
                sink.open(DIM)
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "sekret" not in str(caught.value) and "sekret" not in repr(caught.value)
            assert "sekret" not in repr(sink)
        finally:
            sink.close()

    def test_exactly_one_target(self, tmp_path):
        with pytest.raises(ValueError):
            QdrantServerVectorSink("chunks")
        with pytest.raises(ValueError):
            QdrantServerVectorSink("chunks", url="http://localhost:6333", path=str(tmp_path))


class _CountingClient:
    """Stands in for a server's client: records each upsert and how many overlapped."""

    def __init__(self, fail_batch: int | None = None, together: int = 0):
        import threading

        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.batches: list[list] = []
        self.fail_batch = fail_batch
        # the first ``together`` upserts wait for each other: in flight at once where the sink runs them in parallel,
        # however loaded the machine (a sleep was not: CI once saw 3 of 4); a serial sink breaks the barrier instead
        self.together = threading.Barrier(together) if together else None

    def upsert(self, collection, points, wait):
        import threading
        import time

        assert wait is True
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            number = len(self.batches)
            self.batches.append(points)
        if self.together is not None and number < self.together.parties:
            try:
                self.together.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
        else:
            time.sleep(0.05)
        with self.lock:
            self.in_flight -= 1
        if number == self.fail_batch:
            from qdrant_client.http.exceptions import UnexpectedResponse

            raise UnexpectedResponse(400, "Bad Request", b"bad point", None)


def _server_sink(client, **options) -> QdrantServerVectorSink:
    sink = QdrantServerVectorSink("chunks", url="http://qdrant.invalid:6333", **options)
    sink._client = client
    return sink


def _many_points(batches: int) -> list:
    """``batches`` full upsert batches of distinct points."""
    import dataclasses
    import uuid

    from kgbuild.connectors.qdrant_server import UPSERT_BATCH

    template = b.points_for(b.corpus_batch(), DIM)[0]
    return [dataclasses.replace(template, id=str(uuid.UUID(int=i)), chunk_id=f"c{i}") for i in range(batches * UPSERT_BATCH)]


def test_a_server_gets_batches_in_parallel_streams_each_point_once():
    from kgbuild.connectors.qdrant_server import UPSERT_BATCH, UPSERT_STREAMS

    client = _CountingClient(together=UPSERT_STREAMS)
    points = _many_points(6)
    _server_sink(client).upsert(points)
    assert sorted(pt.id for batch in client.batches for pt in batch) == sorted(p.id for p in points)
    assert all(len(batch) == UPSERT_BATCH for batch in client.batches) and len(client.batches) == 6
    assert client.most_in_flight == UPSERT_STREAMS


def test_one_stream_where_asked_and_in_local_mode(tmp_path):
    client = _CountingClient()
    _server_sink(client, upsert_streams=1).upsert(_many_points(3))
    assert client.most_in_flight == 1 and len(client.batches) == 3
    assert QdrantServerVectorSink("chunks", path=str(tmp_path / "q"), upsert_streams=8).upsert_streams == 1


def test_a_refused_batch_among_parallel_ones_is_the_upserts_error():
    client = _CountingClient(fail_batch=2)
    with pytest.raises(SinkError, match="refused to upsert points"):
        _server_sink(client).upsert(_many_points(6))
