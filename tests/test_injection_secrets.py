"""Hostile names are stored verbatim, never executed; secrets never show up in any output of a run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crash_runner import HashEmbedder
from index_snapshot import snapshot

from kgbuild.cli import app
from kgbuild.extract.gazetteer import GazetteerExtractor
from kgbuild.pipeline import ingest
from kgbuild.read.base import clean_title
from kgbuild.settings import Settings

PAYLOADS = [
    "x}) DETACH DELETE n //", "x`) DETACH DELETE n //", "`Entity`", "``", "a`b", "MATCH (n) DETACH DELETE n",
    "'; DROP TABLE documents; --", '" OR 1=1 --', "' OR ''='", "$param", "$password", "${jndi:ldap://evil/a}",
    "{{7*7}}", "{id: 'x'}", "}]->(x) SET x.pwned = true //", "CALL dbms.killQueries()", "LOAD CSV FROM 'file:///etc/passwd'",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "%s%s%s%n", "../../etc/passwd", "C:\\Windows\\system32",
    "back\\slash", "line\nbreak", "tab\tname", "null", "None", "true", "NaN", "-1", "0x41", "\u202eevil\u202c",
    "zero\u200bwidth", "emoji 🚀🔥", "日本語の会社", "שלום חברה", "Ωmega \u0394elta", "quote's", 'double "q"',
    ":Label", "n:Entity", "-[:REL]->", "/* comment */", "// comment", "#hash", "@at", "& amp", "| pipe", "~tilde",
]
NAMES = [f"{PAYLOADS[i % len(PAYLOADS)]} Q{i:03d}" for i in range(120)]  # distinct keys: each has its own number
ACME = "Acme Corp"


def hostile_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": f"r{i:03d}", "title": f"Title {name}", "text": f"Deal: {name} bought {ACME} today."})
             for i, name in enumerate(NAMES)]
    (root / "deals.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / f"{PAYLOADS[0]}.txt".replace("/", "_")).write_text(f"{NAMES[0]} and {ACME} merged.", encoding="utf-8")
    return root


def hostile_extractor(schema) -> GazetteerExtractor:
    return GazetteerExtractor(schema, {"COMPANY": [*NAMES, ACME]}, [(n, "COMPETES_WITH", ACME) for n in NAMES],
                              max_tokens=512)


def check_exact_graph(graph: dict) -> None:
    entities = graph["entities"]
    assert len(entities) == len(NAMES) + 1
    assert sorted(e["name"] for e in entities.values()) == sorted([*NAMES, ACME])
    assert {e["type"] for e in entities.values()} == {"COMPANY"}
    by_name = {e["name"]: eid for eid, e in entities.items()}
    relations = {(r["label"], r["head_id"], r["tail_id"]) for r in graph["relations"]}
    assert relations == {("COMPETES_WITH", by_name[n], by_name[ACME]) for n in NAMES}
    titles = {d["title"] for d in graph["documents"].values()}
    assert {clean_title(f"Title {n}") for n in NAMES} <= titles
    assert len(graph["documents"]) == len(NAMES) + 1
    mentions = {m["text"] for m in graph["mentions"]}
    assert mentions == {*NAMES, ACME}


def test_hundred_hostile_names_are_values_on_networkx(tmp_path, business_schema):
    corpus = hostile_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out")
    report = ingest(corpus, settings, extractor=hostile_extractor(business_schema), embedder=HashEmbedder())
    assert report.skipped == []
    index = snapshot(settings)
    check_exact_graph(index["graph"])
    names_in_points = {n for p in index["points"].values() for n in p["entity_names"]}
    assert names_in_points == {*NAMES, ACME}


@pytest.mark.neo4j
def test_hundred_hostile_names_are_values_on_neo4j(tmp_path, business_schema, neo4j_server, monkeypatch):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    corpus = hostile_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", graph="neo4j", neo4j_uri=neo4j_server["uri"])
    ingest(corpus, settings, extractor=hostile_extractor(business_schema), embedder=HashEmbedder())
    try:
        check_exact_graph(snapshot(settings)["graph"])
        # nothing beyond what kgbuild writes: exactly these labels, types and counts
        ours = "MATCH (n) WHERE n:Document OR n:Chunk OR n:Entity "
        labels = {r["l"] for r in sink.run_read(ours + "UNWIND labels(n) AS l RETURN DISTINCT l")}
        assert labels == {"Document", "Chunk", "Entity", "COMPANY"}
        types = {r["t"] for r in sink.run_read(ours + "MATCH (n)-[x]-() RETURN DISTINCT type(x) AS t")}
        # every document is one chunk; entities may also be IN_COMMUNITY (kgbuild.communities)
        assert types - {"IN_COMMUNITY"} == {"HAS_CHUNK", "MENTIONS", "COMPETES_WITH"}
        assert sink.run_read("MATCH (n) WHERE n.pwned IS NOT NULL RETURN count(n) AS n")[0]["n"] == 0
        assert sink.run_read("MATCH (e:Entity) RETURN count(e) AS n")[0]["n"] == len(NAMES) + 1
    finally:
        sink.clear()
        sink.close()


SECRET = "kgb-S3cr3t-p4ss-7f1e"
API_KEY = "kgb-Qdr4nt-key-91ac"


def test_secrets_never_appear_in_any_output(tmp_path, business_schema, monkeypatch, caplog):
    """Every output of runs with a password and an API key in the environment, grepped for both."""
    import kgbuild.pipeline as pipeline
    from kgbuild.settings import make_settings
    from kgbuild.registry import make_graph_sink, make_vector_sink

    monkeypatch.setenv("NEO4J_PASSWORD", SECRET)
    monkeypatch.setenv("QDRANT_API_KEY", API_KEY)
    monkeypatch.setenv("KGBUILD_RETRY_SECONDS", "1")  # the servers below never come back
    monkeypatch.setattr(pipeline, "build_extractor", lambda settings, schema: hostile_extractor(schema))
    monkeypatch.setattr(pipeline, "build_embedder", lambda settings: HashEmbedder())
    caplog.set_level(logging.DEBUG)
    corpus = hostile_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    runner = CliRunner()
    outputs: list[str] = []

    def cli(*args: str) -> None:
        result = runner.invoke(app, list(args))
        outputs.append(result.output)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            outputs.append(repr(result.exception))

    cli("ingest", str(corpus), "--out", str(out), "--json")
    cli("ingest", str(corpus), "--out", str(out))
    cli("stats", "--out", str(out), "--json")
    cli("verify", "--out", str(out))
    cli("query", "Acme", "--out", str(out), "--json")
    # services that refuse: a Neo4j with the wrong password (or none), a Qdrant URL that does not answer
    cli("ingest", str(corpus), "--out", str(tmp_path / "neo"), "--graph", "neo4j", "--neo4j-uri", "bolt://127.0.0.1:1")
    cli("--debug", "ingest", str(corpus), "--out", str(tmp_path / "neo2"), "--graph", "neo4j", "--neo4j-uri",
        "bolt://127.0.0.1:1")
    cli("ingest", str(corpus), "--out", str(tmp_path / "qd"), "--qdrant-url", "http://127.0.0.1:1")
    cli("stats", "--out", str(tmp_path / "qd"), "--qdrant-url", "http://127.0.0.1:1")

    settings = make_settings(out_dir=out, qdrant_url="http://127.0.0.1:1", graph="neo4j")
    assert settings.neo4j_password == SECRET and settings.qdrant_api_key == API_KEY  # they are read ...
    outputs += [repr(settings), str(settings), settings.model_dump_json(), json.dumps(settings.model_dump(), default=str),
                repr(make_graph_sink(settings)), repr(make_vector_sink(settings))]
    outputs += [p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*.json")]
    outputs.append(caplog.text)
    assert len(outputs) > 15
    text = "\n".join(outputs)
    assert "error" in text  # the failing runs did report
    for secret in (SECRET, API_KEY):
        assert secret not in text
