"""Hybrid retrieval: fusion, entity matching, graph expansion, BM25, the retriever on the multi-hop set, the CLI."""

from __future__ import annotations

import json
import re

import pytest
from multihop import corpus_folder, gazetteer, passage, questions
from typer.testing import CliRunner

from kgbuild.errors import ConfigError
from kgbuild.ids import entity_id
from kgbuild.retrieve.entities import EntityMatcher
from kgbuild.retrieve.graph import EntityGraph
from kgbuild.types import Entity
from kgbuild.retrieve.hybrid import RRF_K, WITHOUT_TITLE_WEIGHTS, HybridRetriever, reciprocal_rank_fusion
from kgbuild.retrieve.lexical import BM25ChunkIndex
from kgbuild.settings import Settings
from kgbuild.types import VectorFilter


@pytest.fixture(scope="module")
def multihop_index(tmp_path_factory, business_schema, embedder):
    from kgbuild.pipeline import ingest

    root = tmp_path_factory.mktemp("multihop")
    settings = Settings(out_dir=root / "index", device="cpu")
    report = ingest(corpus_folder(root / "corpus"), settings, extractor=gazetteer(business_schema), embedder=embedder)
    assert report.documents_read == 32 and report.relations_kept > 0
    return settings


@pytest.fixture
def retriever_for(multihop_index, business_schema, embedder):
    opened = []

    def make(**options):
        retriever = HybridRetriever(multihop_index, extractor=gazetteer(business_schema), embedder=embedder, **options)
        opened.append(retriever)
        return retriever.open()

    yield make
    for retriever in opened:
        retriever.close()


def test_reciprocal_rank_fusion_adds_one_over_k_plus_rank():
    fused = reciprocal_rank_fusion({"vector": ["a", "b"], "bm25": ["b", "c"]}, rrf_k=60)
    assert [item for item, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)


def _entities():
    def make(entity_type, name, aliases=()):
        from kgbuild.reconcile import normalize_name

        key = f"{entity_type}:{normalize_name(name)}"
        return Entity(entity_id(entity_type, normalize_name(name)), entity_type, key, name, list(aliases), 1, 1.0)

    return {e.id: e for e in [make("COMPANY", "Norvik Systems"), make("COMPANY", "Apple Inc.", ["Apple", "APPLE INC."]),
                              make("PERSON", "Mara Lindqvist")]}


def test_entity_matcher_normalises_then_uses_aliases_then_fuzzy_matching():
    matcher = EntityMatcher(_entities())
    exact = matcher.match("APPLE, Inc.", "COMPANY")
    assert (exact.entity.key, exact.how, exact.weight) == ("COMPANY:apple", "exact", 1.0)
    typo = matcher.match("Norvik Systms", "COMPANY")
    assert typo.entity.key == "COMPANY:norvik systems" and typo.how == "fuzzy" and 0.88 <= typo.weight < 1.0
    other = matcher.match("Mara Lindqvist", "COMPANY")  # the query's extractor typed it differently
    assert other.entity.key == "PERSON:mara lindqvist" and other.how == "other-type"
    assert matcher.match("Globex", "COMPANY") is None
    both = matcher.match_all([("Norvik Systems", "COMPANY"), ("Norvik Systms", "COMPANY")])
    assert len(both) == 1 and both[0].how == "exact"


def test_graph_expansion_follows_relations_and_explains_the_path():
    graph = EntityGraph()
    for e in _entities().values():
        graph.add_entity(e)
    mara, norvik = entity_id("PERSON", "mara lindqvist"), entity_id("COMPANY", "norvik systems")
    graph.add_mention("c1", mara)
    graph.add_mention("c2", norvik)
    graph.add_relation(mara, "CEO_OF", norvik)
    hits = graph.expand({mara: 1.0}, hops=1)
    assert [h.chunk_id for h in hits] == ["c1", "c2"]
    assert hits[1].path == ("PERSON:mara lindqvist", "CEO_OF", "COMPANY:norvik systems", "MENTIONED_IN", "c2")
    assert hits[0].score > hits[1].score > 0
    assert [h.chunk_id for h in graph.expand({mara: 1.0}, hops=0)] == ["c1"]
    assert graph.expand({"ent_unknown": 1.0}) == []


def test_bm25_ranks_by_words_and_honours_filters():
    payloads = [
        {"chunk_id": "a", "text": "Acme builds rocket skates", "entity_keys": ["COMPANY:acme"]},
        {"chunk_id": "b", "text": "Rocket launches and rocket fuel", "entity_keys": []},
        {"chunk_id": "c", "text": "Quarterly revenue grew", "entity_keys": []},
    ]
    index = BM25ChunkIndex(payloads)
    assert [i for i, _ in index.search("rocket")] == [1, 0]
    assert [i for i, _ in index.search("rocket", query_filter=VectorFilter(entity_keys=("COMPANY:acme",)))] == [0]
    assert index.search("zebra") == []
    assert BM25ChunkIndex([]).search("rocket") == []


def test_hybrid_finds_answer_passages_that_vector_search_misses(retriever_for):
    hybrid, vector_only = retriever_for(), retriever_for(graph=False, bm25=False)
    found_by_hybrid_only = []
    for q in questions():
        hybrid_ids = [passage(h) for h in hybrid.retrieve(q["question"], k=5)]
        vector_ids = [passage(h) for h in vector_only.retrieve(q["question"], k=5)]
        assert q["answer"] in hybrid_ids, (q["id"], hybrid_ids)
        if q["answer"] not in vector_ids:
            found_by_hybrid_only.append(q["id"])
    assert found_by_hybrid_only, "on this set vector search alone must miss some answer passages"


@pytest.mark.parametrize("query_model", [False, True], ids=["entities-by-name", "query-model"])
def test_every_hit_says_which_channel_entity_and_path_found_it(retriever_for, query_model):
    retriever = retriever_for(query_model=query_model)
    hits = retriever.retrieve("Which device does the firm headed by Mara Lindqvist build?", k=3)
    found = [passage(h) for h in hits]
    assert found[0] == "p01" and "p02" in found  # p02 and p13 both name her company: the graph alone cannot tell them apart
    answer = hits[found.index("p02")]
    graph_reason = next(r for r in answer.reasons if r.channel == "graph")
    assert graph_reason.entity == "PERSON:mara lindqvist"
    assert graph_reason.path[:3] == ("PERSON:mara lindqvist", "CEO_OF", "COMPANY:norvik systems")
    assert graph_reason.path[-1] == answer.chunk_id
    assert {r.channel for r in hits[0].reasons} == {"vector", "graph", "bm25"}
    assert retriever.fusion_weights == WITHOUT_TITLE_WEIGHTS  # the question names no document's title
    assert hits[0].score == pytest.approx(sum(WITHOUT_TITLE_WEIGHTS[r.channel] / (RRF_K + r.rank) for r in hits[0].reasons), abs=1e-6)


def test_each_channel_can_be_switched_off(retriever_for):
    question = "Which device does the firm headed by Mara Lindqvist build?"
    for channel in ("vector", "graph", "bm25"):
        others = {c: c == channel for c in ("vector", "graph", "bm25")}
        hits = retriever_for(**others).retrieve(question, k=5)
        assert hits and all({r.channel for r in h.reasons} == {channel} for h in hits), channel
    with pytest.raises(ConfigError, match="at least one channel"):
        HybridRetriever(Settings(), vector=False, graph=False, bm25=False)


def test_filters_apply_to_every_channel(retriever_for):
    hits = retriever_for().retrieve("Which device does the firm headed by Mara Lindqvist build?", k=10,
                                    entities=["PRODUCT:Fjord X2"])
    assert [passage(h) for h in hits] == ["p02"]
    assert {r.channel for r in hits[0].reasons} == {"vector", "graph"}
    with pytest.raises(ConfigError, match="unknown entity type 'GADGET'"):
        retriever_for().retrieve("anything", entities=["GADGET:x"])


def test_cli_query_hybrid_prints_reasons(multihop_index, business_schema, monkeypatch):
    from kgbuild.cli import app

    monkeypatch.setattr("kgbuild.retrieve.hybrid.build_query_extractor", lambda *args, **kwargs: gazetteer(business_schema))
    runner = CliRunner()
    out = str(multihop_index.out_dir)
    result = runner.invoke(app, ["query", "What snack comes from the business that Tobias Reyes runs?", "--out", out,
                                 "--hybrid", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert [passage(type("H", (), h)) for h in hits[:2]] == ["p03", "p04"]
    assert hits[1]["reasons"][0]["channel"] in ("vector", "graph")
    assert any(r["channel"] == "graph" and "CEO_OF" in r["path"] for r in hits[1]["reasons"])
    table = runner.invoke(app, ["query", "What snack comes from the business that Tobias Reyes runs?", "--out", out,
                                "--hybrid", "--channels", "graph", "-k", "2"])
    assert table.exit_code == 0, table.output
    assert "via graph #1" in table.output and "PERSON:tobias reyes -> CEO_OF -> COMPANY:halden foods" in table.output
    # the path ends at the hit itself, named as the hit is
    assert "MENTIONED_IN -> " + json.loads(runner.invoke(app, ["query", "What snack comes from the business that Tobias Reyes"
                                                           " runs?", "--out", out, "--hybrid", "--channels", "graph",
                                                           "-k", "1", "--json"]).stdout)[0]["path"] in table.output
    assert "MENTIONED_IN -> doc_" not in table.output
    # every chunk on a path, not only the hit, goes by its document's path: a hit reached through another chunk
    import dataclasses

    from kgbuild.retrieve import hybrid as hybrid_module
    from kgbuild.types import RetrievalReason

    real = hybrid_module.hybrid_query
    hits = real("What snack comes from the business that Tobias Reyes runs?", multihop_index, k=2)
    via, end = hits[1], hits[0]
    through = RetrievalReason("graph", 1, 0.5, path=("PERSON:tobias reyes", "MENTIONED_IN", via.chunk_id, "MENTIONS",
                                                     "COMPANY:halden foods", "MENTIONED_IN", end.chunk_id))
    monkeypatch.setattr(hybrid_module, "hybrid_query",
                        lambda *args, **kwargs: [dataclasses.replace(end, reasons=[through])])
    deeper = runner.invoke(app, ["query", "anything", "--out", out, "--hybrid", "-k", "1"])
    assert deeper.exit_code == 0, deeper.output
    flat = " ".join(deeper.output.split())  # the console wraps long lines at spaces
    assert f"MENTIONED_IN -> {via.path} -> MENTIONS" in flat, deeper.output
    assert f"MENTIONED_IN -> {end.path}" in flat and via.chunk_id not in flat
    none = runner.invoke(app, ["query", "x", "--out", out, "--hybrid", "--channels", ""])
    assert none.exit_code == 1 and "at least one channel" in none.output


def clear_neo4j(server: dict) -> None:
    import neo4j

    with neo4j.GraphDatabase.driver(server["uri"], auth=(server["user"], server["password"])) as driver:
        driver.execute_query("MATCH (n) DETACH DELETE n", database_=server["database"])


@pytest.mark.neo4j
def test_graph_channel_reads_the_graph_from_neo4j(neo4j_server, tmp_path, business_schema, embedder, monkeypatch):
    from kgbuild.pipeline import ingest

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    settings = Settings(out_dir=tmp_path / "index", device="cpu", graph="neo4j", neo4j_uri=neo4j_server["uri"],
                        neo4j_user=neo4j_server["user"], neo4j_database=neo4j_server["database"])
    clear_neo4j(neo4j_server)
    ingest(corpus_folder(tmp_path / "corpus"), settings, extractor=gazetteer(business_schema), embedder=embedder)
    with HybridRetriever(settings, extractor=gazetteer(business_schema), embedder=embedder, vector=False, bm25=False) as r:
        hits = r.retrieve("What gadget does the organisation under Samuel Achebe offer?", k=2)
    assert [passage(h) for h in hits] == ["p11", "p12"]
    assert hits[1].reasons[0].path[:3] == ("PERSON:samuel achebe", "CEO_OF", "COMPANY:pellucid health")
