"""``kgbuild serve`` over HTTP: a real uvicorn server on a free port, httpx as the client.

The indexes are the project's multi-hop set (tests/multihop.py) ingested with its gazetteer and hash vectors
under MiniLM's name; servers in this process are given the same hash embedder, the one started as a
``kgbuild serve`` process loads the packaged MiniLM (its filters, graph and BM25 answers do not need the
vectors to mean anything).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from multihop import corpus_folder, gazetteer

from kgbuild.settings import Settings

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.fakes import HashEmbedder  # noqa: E402

QUESTION = "What snack comes from the business that Tobias Reyes runs?"


class MiniLMNamedHashEmbedder(HashEmbedder):
    """bench/fakes.py's hash vectors, of MiniLM's size and under its name (the manifest names the packaged model)."""

    name = "all-MiniLM-L6-v2"


EMBEDDER = MiniLMNamedHashEmbedder()


def build_index(root: Path, schema, **settings) -> Settings:
    from kgbuild.pipeline import ingest

    options = Settings(out_dir=root / "index", device="cpu", **settings)
    report = ingest(corpus_folder(root / "corpus"), options, extractor=gazetteer(schema), embedder=EMBEDDER)
    assert report.documents_read == 32
    return options


def add_document(root: Path, settings: Settings, schema, text: str, title: str) -> None:
    """A new file in the corpus folder, ingested (the pipeline's own ingest, as `kgbuild ingest` runs it)."""
    from kgbuild.pipeline import ingest

    (root / "corpus" / "late.jsonl").write_text(json.dumps({"id": "late", "title": title, "text": text}) + "\n",
                                                encoding="utf-8")
    ingest(root / "corpus", settings, extractor=gazetteer(schema), embedder=EMBEDDER)


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a thread; ``with ServerThread(app) as url``."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def start_service(settings: Settings, **options):
    from kgbuild.serve.service import IndexService, ServeLimits

    return IndexService(settings, embedder=EMBEDDER, poll_seconds=0.1, limits=ServeLimits(max_k=50)).start(**options)


def app_for(service, *, token: str = "", mcp: bool = False, max_body_bytes: int = 65536):
    from kgbuild.serve import ServeOptions, create_app

    options = ServeOptions(mcp=mcp, max_k=50, max_body_bytes=max_body_bytes)
    return create_app(service.settings, options, service=service, token=token)


@pytest.fixture(scope="module")
def index(tmp_path_factory, business_schema) -> Settings:
    return build_index(tmp_path_factory.mktemp("serve"), business_schema)


@pytest.fixture(scope="module")
def server(index):
    with ServerThread(app_for(start_service(index))) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def query(client: httpx.Client, **body) -> dict:
    response = client.post("/query", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# -- answers ------------------------------------------------------------------------------------------------


def test_hybrid_query_answers_the_multi_hop_question_and_says_why(server):
    answer = query(server, text=QUESTION, hybrid=True, k=3)
    assert answer["mode"] == "hybrid" and answer["channels"] == ["vector", "graph", "bm25"]
    paths = [h["path"] for h in answer["hits"]]
    assert paths[0] == "corpus.jsonl#p03" and "corpus.jsonl#p04" in paths  # the answer is one hop from the question
    second = answer["hits"][paths.index("corpus.jsonl#p04")]
    graph = next(r for r in second["reasons"] if r["channel"] == "graph")
    assert graph["path"][:3] == ["PERSON:tobias reyes", "CEO_OF", "COMPANY:halden foods"]
    assert any(w.startswith("graph #") and "CEO_OF" in w for w in second["why"])
    assert second["start"] == 0 and second["end"] == len(second["text"]) and second["doc_id"].startswith("doc_")
    assert answer["fusion_weights"] and answer["generation"]["documents"] == 32
    only_graph = query(server, text=QUESTION, channels=["graph"], k=2)
    assert only_graph["mode"] == "hybrid" and {r["channel"] for h in only_graph["hits"] for r in h["reasons"]} == {"graph"}


def test_vector_query_with_filters(server):
    answer = query(server, text="chief executive", entity=["PERSON:Tobias Reyes"], k=5)
    assert answer["mode"] == "vector"
    assert [h["path"] for h in answer["hits"]] == ["corpus.jsonl#p03"]
    assert answer["hits"][0]["matched_entities"] == ["PERSON:tobias reyes"]
    typed = query(server, text="a product", type="PRODUCT", doc=["corpus.jsonl#p04"], k=5)
    assert [h["path"] for h in typed["hits"]] == ["corpus.jsonl#p04"]
    assert all("PRODUCT" in {e["type"] for e in h["entities"]} for h in query(server, text="x", type=["PRODUCT"], k=50)["hits"])


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"text": "x", "type": ["SPACESHIP"]}, "type", "unknown entity type 'SPACESHIP'"),
    ({"text": "x", "class": ["mood=happy"]}, "class", "unknown classification task 'mood'"),
    ({"text": "x", "entity": ["Tobias Reyes"]}, "entity", "TYPE:NAME"),
    ({"text": "x", "doc": ["no/such.txt"]}, "doc", "no ingested file"),
    ({"text": "x", "k": 51}, "k", "from 1 to 50"),
    ({"text": "   "}, "text", "empty"),
    ({"text": "x", "channels": ["vector", "telepathy"]}, "channels", "vector"),
    ({"text": "x", "kk": 3}, "kk", "unknown field"),
    ({"text": "x", "community": ["c9-999"]}, "community", "c9-999"),
])
def test_a_bad_field_is_400_naming_it(server, body, field, words):
    response = server.post("/query", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["field"] == field and words in error["error"]


def test_a_body_that_is_not_json_is_400(server):
    response = server.post("/query", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_entity_neighbourhood_document_stats_health(server):
    entity = server.get("/entities/person/Tobias Reyes").json()
    assert entity["entity"]["key"] == "PERSON:tobias reyes" and entity["matched"] == "key"
    assert entity["documents"][0]["path"] == "corpus.jsonl#p03"
    mention = entity["mentions"][0]
    assert (mention["path"], mention["start"], mention["end"], mention["text"]) == ("corpus.jsonl#p03", 0, 12, "Tobias Reyes")
    assert 0 < mention["confidence"] <= 1 and entity["why_merged"][0]["explanation"] == "same name"
    assert server.get(f"/entities/{entity['entity']['id']}").json()["entity"]["key"] == "PERSON:tobias reyes"
    around = server.get(f"/entities/{entity['entity']['id']}/neighbourhood", params={"hops": 2}).json()
    assert [(n["entity"]["key"], n["hops"]) for n in around["neighbours"]][:2] == [("COMPANY:halden foods", 1), ("PRODUCT:crispo", 2)]
    assert {"head": "PERSON:tobias reyes", "label": "CEO_OF", "tail": "COMPANY:halden foods"}.items() <= around["relations"][-1].items() \
        or any(r["head"] == "PERSON:tobias reyes" and r["label"] == "CEO_OF" for r in around["relations"])
    by_name = server.get("/entities/PERSON:Tobias Reyes/neighbourhood").json()
    assert [n["entity"]["key"] for n in by_name["neighbours"]] == ["COMPANY:halden foods"]
    document = server.get(f"/documents/{entity['documents'][0]['doc_id']}").json()
    assert document["path"] == "corpus.jsonl#p03" and document["title"] == "Halden Foods appointment"
    assert document["chunks"][0]["text"].startswith("Tobias Reyes") and document["entities"]["PERSON:tobias reyes"] == 1
    assert server.get("/documents/corpus.jsonl#p03".replace("#", "%23")).json()["doc_id"] == document["doc_id"]
    stats = server.get("/stats").json()
    assert (stats["documents"], stats["chunks"], stats["vector_points"]) == (32, 32, 32) and stats["entities_by_type"]["PERSON"] == 7
    health = server.get("/health").json()
    assert health["status"] == "ok" and health["generation"]["documents"] == 32 and not health["ingest_running"]
    assert "/query" in server.get("/openapi.json").json()["paths"]


def test_unknowns_are_404_with_close_names(server):
    missing = server.get("/entities/PERSON/Tobias Reyez")
    assert missing.status_code == 404
    assert "no entity PERSON:Tobias Reyez" in missing.json()["error"] and "PERSON:tobias reyes" in missing.json()["candidates"]
    assert server.get("/entities/ent_0000/neighbourhood").status_code == 400  # neither an id nor TYPE:NAME
    assert server.get("/entities/PERSON:Nobody/neighbourhood").status_code == 404
    assert server.get("/entities/PERSON:Tobias Reyes/neighbourhood", params={"hops": 9}).json()["field"] == "hops"
    document = server.get("/documents/corpus.jsonl%23p99")
    assert document.status_code == 404 and "corpus.jsonl#p09" in document.json()["candidates"]
    assert server.get("/nowhere").status_code == 404 and "error" in server.get("/nowhere").json()


# -- limits and the token -------------------------------------------------------------------------------------


def test_an_oversized_body_is_413_declared_or_streamed(index):
    with ServerThread(app_for(start_service(index), max_body_bytes=2048)) as url, httpx.Client(base_url=url) as client:
        declared = client.post("/query", json={"text": "x" * 5000})
        assert declared.status_code == 413 and "over the server's limit of 2048 bytes" in declared.json()["error"]

        def chunks():
            for _ in range(10):
                yield b" " * 1000

        streamed = client.post("/query", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.post("/query", json={"text": "Halden Foods"}).status_code == 200


def test_a_token_is_required_off_loopback_and_checked(index, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kgbuild.cli import app
    from kgbuild.errors import ConfigError
    from kgbuild.serve import api_token

    with pytest.raises(ConfigError, match="set KGBUILD_API_TOKEN"):
        api_token("0.0.0.0", {})
    assert api_token("127.0.0.1", {}) is None and api_token("::1", {}) is None and api_token("localhost", {}) is None
    assert api_token("10.1.2.3", {"KGBUILD_API_TOKEN": "s3cret"}) == "s3cret"
    monkeypatch.delenv("KGBUILD_API_TOKEN", raising=False)
    refused = CliRunner().invoke(app, ["serve", "--out", str(index.out_dir), "--host", "0.0.0.0"])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        "error: --host 0.0.0.0 is reachable from other machines: set KGBUILD_API_TOKEN to a secret that clients send as"
        " `Authorization: Bearer <token>`, or serve on 127.0.0.1"]
    token = "t0ken-" + "x" * 26
    with ServerThread(app_for(start_service(index), token=token)) as url, httpx.Client(base_url=url) as client:
        none = client.post("/query", json={"text": "x"})
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
        assert token not in none.text and "Authorization: Bearer" in none.json()["error"]
        assert client.get("/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/stats", headers={"Authorization": f"Basic {token}"}).status_code == 401
        good = client.post("/query", json={"text": "Halden Foods", "k": 1}, headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and good.json()["hits"]


# -- the index changing under the server ----------------------------------------------------------------------


def test_503_while_a_first_ingest_holds_the_index_then_it_is_served(tmp_path, business_schema):
    from kgbuild.state import IndexLock

    settings = Settings(out_dir=tmp_path / "index", device="cpu")
    service = start_service(settings)
    with ServerThread(app_for(service)) as url, httpx.Client(base_url=url) as client:
        nothing = client.post("/query", json={"text": "x"})
        assert nothing.status_code == 503 and nothing.headers["retry-after"]
        assert "no kgbuild index in" in nothing.json()["error"] and "kgbuild ingest" in nothing.json()["error"]
        with IndexLock(settings.out_dir):  # what a first ingest holds while it writes
            locked = client.post("/query", json={"text": "x"})
            assert locked.status_code == 503 and "being built by a first `kgbuild ingest`" in locked.json()["error"]
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["ingest_running"]
        build_index(tmp_path, business_schema)
        answer = client.post("/query", json={"text": QUESTION, "hybrid": True, "k": 2})
        assert answer.status_code == 200 and answer.json()["hits"][0]["path"] == "corpus.jsonl#p03"


def test_an_ingest_beside_the_server_is_picked_up_without_a_failed_request(tmp_path, business_schema):
    settings = build_index(tmp_path, business_schema)
    service = start_service(settings)
    failures, answers, stop = [], [], threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/query", json={"text": QUESTION, "hybrid": True, "k": 3})
                (answers if response.status_code == 200 else failures).append(response.json())

    with ServerThread(app_for(service)) as url, httpx.Client(base_url=url) as client:
        first = client.get("/health").json()["generation"]["number"]
        worker = threading.Thread(target=hammer, args=(url,))
        worker.start()
        try:
            add_document(tmp_path, settings, business_schema, "Tobias Reyes opened a Halden Foods bakery in Valparaiso.",
                         "Halden Foods in Chile")
            deadline = time.monotonic() + 30
            while client.get("/health").json()["generation"]["number"] == first:
                assert time.monotonic() < deadline, "the server did not pick up the ingest"
                time.sleep(0.05)
        finally:
            stop.set()
            worker.join()
        assert not failures and answers
        assert {a["generation"]["documents"] for a in answers} <= {32, 33}
        late = client.post("/query", json={"text": "bakery", "doc": ["late.jsonl"], "k": 3}).json()
        assert [h["path"] for h in late["hits"]] == ["late.jsonl#late"] and late["generation"]["documents"] == 33
        entity = client.get("/entities/PERSON/Tobias Reyes").json()
        assert {d["path"] for d in entity["documents"]} == {"corpus.jsonl#p03", "late.jsonl#late"}
    snapshots = settings.out_dir / ".serve"
    assert not snapshots.exists() or not any(snapshots.iterdir())  # closed generations leave nothing behind


def test_kgbuild_serve_runs_as_a_process(index, tmp_path):
    """The command as a user runs it: its own process, the packaged MiniLM as query embedder."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "KGBUILD_API_TOKEN": ""}
    process = subprocess.Popen([sys.executable, "-m", "kgbuild.cli", "serve", "--out", str(index.out_dir), "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, process.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "kgbuild serve did not answer"
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            answer = client.post("/query", json={"text": "oat cracker", "entity": ["PRODUCT:Crispo"], "hybrid": True, "k": 2})
            assert answer.status_code == 200 and answer.json()["hits"][0]["path"] == "corpus.jsonl#p04"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode in (0, -signal.SIGINT)


@pytest.mark.neo4j
def test_served_from_neo4j_and_a_qdrant_server(neo4j_server, tmp_path, business_schema, monkeypatch):
    """Neo4j as the graph, and the Qdrant server connector (through qdrant-client's local mode, as its conformance
    suite runs it) as the vectors: read live, not snapshotted."""
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink
    from kgbuild.pipeline import ingest

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    import neo4j

    with neo4j.GraphDatabase.driver(neo4j_server["uri"], auth=(neo4j_server["user"], neo4j_server["password"])) as driver:
        driver.execute_query("MATCH (n) DETACH DELETE n", database_=neo4j_server["database"])
    settings = Settings(out_dir=tmp_path / "index", device="cpu", graph="neo4j", neo4j_uri=neo4j_server["uri"],
                        neo4j_user=neo4j_server["user"], neo4j_database=neo4j_server["database"])

    def vectors():
        return QdrantServerVectorSink("chunks", path=str(tmp_path / "qdrant"), classification_tasks=["document_type"])

    ingest(corpus_folder(tmp_path / "corpus"), settings, extractor=gazetteer(business_schema), embedder=EMBEDDER,
           vector_sink=vectors())
    from kgbuild.serve.service import IndexService

    service = IndexService(settings, embedder=EMBEDDER, vector_sink=vectors).start()
    with ServerThread(app_for(service)) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = client.post("/query", json={"text": QUESTION, "hybrid": True, "k": 2}).json()
        assert [h["path"] for h in answer["hits"]] == ["corpus.jsonl#p03", "corpus.jsonl#p04"]
        assert client.get("/entities/COMPANY/Halden Foods").json()["entity"]["mention_count"] == 2
        assert client.get("/stats").json()["graph_store"].lower().startswith("neo4j")
    assert not (tmp_path / "index" / ".serve").exists() or not any((tmp_path / "index" / ".serve").iterdir())
    shutil.rmtree(tmp_path / "qdrant", ignore_errors=True)
