"""Services that fail: a Neo4j server that goes away mid-ingest (behind a TCP proxy the test cuts),
a Qdrant server that stops answering, and a vector store locked by another process.

Short outages are retried with backoff and the run completes; a service that stays down stops
the run with a clear message, and the rerun once it is back ends with nothing lost (the index
equals that of an uninterrupted run).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from crash_runner import HashEmbedder, settings_for
from index_snapshot import assert_same_index, snapshot
from tcp_proxy import TcpProxy
from test_crash import CORPUS
from test_incremental import write

from kgbuild.cli import app
from kgbuild.errors import TransientError
from kgbuild.pipeline import ingest
from kgbuild.index import verify as verify_index
from kgbuild.verify import canonical_export


class AfterBatches:
    """Progress listener: calls ``action`` once, when ``after`` extraction windows are done."""

    def __init__(self, after: int, action):
        self.after, self.action, self.seen, self.fired = after, action, 0, False

    def on_chunks_added(self, count: int) -> None:
        pass

    def on_chunks_done(self, count: int) -> None:
        self.seen += 1
        if self.seen == self.after and not self.fired:
            self.fired = True
            self.action()

    def on_file(self, rel_path: str) -> None:
        pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory, business_schema):
    root = tmp_path_factory.mktemp("services")
    corpus = write(root / "corpus", CORPUS)
    settings = settings_for(str(root / "reference"))
    ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder())
    return corpus, snapshot(settings)


def extractor(schema):
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS

    from kgbuild.extract.gazetteer import GazetteerExtractor

    return GazetteerExtractor(schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)


# -- Neo4j -------------------------------------------------------------------------------------


@pytest.fixture
def neo4j_proxy(neo4j_server, monkeypatch):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    sink.close()
    parsed = urlparse(neo4j_server["uri"])
    proxy = TcpProxy((parsed.hostname or "127.0.0.1", parsed.port or 7687)).start()
    yield proxy
    proxy.stop()


def neo4j_settings(out: Path, proxy: TcpProxy, retry_seconds: float):
    return settings_for(str(out), "neo4j").model_copy(
        update={"neo4j_uri": f"bolt://127.0.0.1:{proxy.port}", "retry_seconds": retry_seconds})


@pytest.mark.neo4j
def test_neo4j_outage_mid_ingest_is_retried(reference, tmp_path, neo4j_proxy, business_schema):
    corpus, want = reference
    settings = neo4j_settings(tmp_path / "out", neo4j_proxy, retry_seconds=60)

    def outage() -> None:
        neo4j_proxy.stop()
        threading.Timer(2.0, neo4j_proxy.resume).start()

    listener = AfterBatches(3, outage)
    started = time.monotonic()
    ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder(), progress=listener)
    assert listener.fired and time.monotonic() - started >= 2.0  # it waited for the server
    assert neo4j_proxy.accepted >= 2  # and reconnected
    assert_same_index(snapshot(settings), want)
    assert verify_index(settings).ok


@pytest.mark.neo4j
def test_neo4j_down_for_good_stops_clearly_and_the_rerun_loses_nothing(reference, tmp_path, neo4j_proxy,
                                                                       business_schema, neo4j_server):
    corpus, want = reference
    settings = neo4j_settings(tmp_path / "out", neo4j_proxy, retry_seconds=2)
    listener = AfterBatches(3, neo4j_proxy.stop)
    with pytest.raises(TransientError) as info:
        ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder(), progress=listener)
    message = str(info.value)
    assert f"Neo4j at bolt://127.0.0.1:{neo4j_proxy.port}" in message and "unavailable" in message
    assert neo4j_server["password"] not in message and "\n" not in message

    neo4j_proxy.resume()
    report = ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder())
    assert report.documents_recovered > 0
    assert_same_index(snapshot(settings), want)
    assert verify_index(settings).ok


# -- a Qdrant server (played by qdrant-client's local mode behind a client that stops answering) ------


class FlakyClient:
    """Delegates to a real client; while ``down``, every call fails the way an unreachable server does."""

    def __init__(self, client):
        self._client, self.down, self.failures = client, False, 0

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.down:
                from qdrant_client.http.exceptions import ResponseHandlingException

                self.failures += 1
                raise ResponseHandlingException(ConnectionRefusedError(111, "Connection refused"))
            return attr(*args, **kwargs)

        return call


def flaky_qdrant_sink(path: Path, retry_seconds: float):
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink

    sink = QdrantServerVectorSink("kgbuild", path=str(path), classification_tasks=["document_type"],
                                  retry_seconds=retry_seconds)
    flaky = FlakyClient(sink._connect())
    sink._client = flaky
    return sink, flaky


def test_qdrant_outage_mid_ingest_is_retried(reference, tmp_path, business_schema):
    corpus, want = reference
    sink, flaky = flaky_qdrant_sink(tmp_path / "qdrant", retry_seconds=30)

    def outage() -> None:
        flaky.down = True
        threading.Timer(1.5, lambda: setattr(flaky, "down", False)).start()

    settings = settings_for(str(tmp_path / "out"))
    ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder(), vector_sink=sink,
           progress=AfterBatches(3, outage))
    assert flaky.failures >= 2  # retried, with backoff, until it answered
    sink, _ = flaky_qdrant_sink(tmp_path / "qdrant", retry_seconds=1)
    assert sink.export().points == want["points"]
    sink.close()


def test_qdrant_down_for_good_stops_clearly_and_the_rerun_loses_nothing(reference, tmp_path, business_schema):
    corpus, want = reference
    sink, flaky = flaky_qdrant_sink(tmp_path / "qdrant", retry_seconds=1)
    settings = settings_for(str(tmp_path / "out"))
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder(), vector_sink=sink,
               progress=AfterBatches(3, lambda: setattr(flaky, "down", True)))
    assert time.monotonic() - started < 20
    assert "did not answer" in str(info.value) and "retried for 1 s" in str(info.value)
    assert flaky.failures >= 2

    flaky.down = False
    report = ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder(), vector_sink=sink)
    assert report.documents_recovered > 0
    assert sink.export().points == want["points"]
    from kgbuild.connectors.networkx_graph import NetworkXGraphSink

    graph_sink = NetworkXGraphSink(tmp_path / "out" / "graph.json")
    graph_sink.open()
    assert canonical_export(graph_sink.export()) == want["graph"]
    sink.close()


# -- a vector store locked by another process ------------------------------------------------------


HOLD_EDGE = textwrap.dedent(
    """
    import sys, time
    from kgbuild.connectors.qdrant_edge import QdrantEdgeVectorSink
    sink = QdrantEdgeVectorSink(sys.argv[1])
    sink.open(None)
    print("open", flush=True)
    time.sleep(60)
    """
)


def test_vector_store_locked_by_another_process_is_a_clear_error(reference, tmp_path, business_schema):
    corpus, _ = reference
    settings = settings_for(str(tmp_path / "out"))
    ingest(corpus, settings, extractor=extractor(business_schema), embedder=HashEmbedder())
    holder = subprocess.Popen([sys.executable, "-c", HOLD_EDGE, str(tmp_path / "out" / "qdrant")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open", holder.stderr.read()
        result = CliRunner().invoke(app, ["stats", "--out", str(tmp_path / "out")])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: the vector index at {tmp_path / 'out' / 'qdrant'} is in use by another kgbuild process; wait for it"
        " to finish"]
