"""Finding a query's entities without a model (``EntityNameIndex``), and the GLiNER2 path kept behind ``query_model``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from multihop import corpus_folder, gazetteer, passage
from typer.testing import CliRunner

from kgbuild.ids import entity_id
from kgbuild.reconcile import normalize_name
from kgbuild.retrieve.entities import EntityNameIndex
from kgbuild.types import Entity
from kgbuild.retrieve.hybrid import HybridRetriever
from kgbuild.settings import Settings

QUESTION = "Which device does the firm headed by Mara Lindqvist build?"


def make(entity_type: str, name: str, aliases: tuple[str, ...] = ()) -> Entity:
    key = f"{entity_type}:{normalize_name(name)}"
    return Entity(entity_id(entity_type, normalize_name(name)), entity_type, key, name, list(aliases), 1, 1.0)


@pytest.fixture(scope="module")
def names() -> EntityNameIndex:
    entities = [
        make("PERSON", "Tim Cook"), make("COMPANY", "Apple Inc.", ("Apple Computer",)), make("PRODUCT", "Apple"),
        make("COMPANY", "Norvik"), make("COMPANY", "Norvik Systems"), make("COMPANY", "HP"), make("COMPANY", "The"),
        make("LOCATION", "Oslo"), make("PRODUCT", "Fjord X2"), make("MONEY", "$4 million"),
    ]
    return EntityNameIndex({e.id: e for e in entities})


def keys(matches) -> list[str]:
    return sorted(m.entity.key for m in matches)


def test_names_are_normalised_as_reconciliation_normalises_them(names):
    found = names.find("What does Tim Cook's team think of APPLE, Inc. and $4 million in Oslo?")
    assert keys(found) == ["COMPANY:apple", "LOCATION:oslo", "MONEY:$4 million", "PERSON:tim cook", "PRODUCT:apple"]
    cook = next(m for m in found if m.entity.key == "PERSON:tim cook")
    assert (cook.mention, cook.mention_type, cook.how, cook.weight) == ("Tim Cook's", "PERSON", "exact", 1.0)
    assert keys(names.find("tim cook")) == ["PERSON:tim cook"]


def test_one_name_seeds_every_type_that_bears_it(names):
    assert keys(names.find("apple")) == ["COMPANY:apple", "PRODUCT:apple"]


def test_the_longest_match_wins_and_matches_do_not_overlap(names):
    found = names.find("Who competes with Norvik Systems in Oslo?")
    assert keys(found) == ["COMPANY:norvik systems", "LOCATION:oslo"]
    assert keys(names.find("Norvik builds the Fjord X2.")) == ["COMPANY:norvik", "PRODUCT:fjord x2"]


def test_aliases_match_at_a_lower_weight(names):
    [alias] = names.find("When did Apple Computer ship?")
    assert (alias.entity.key, alias.how, alias.weight) == ("COMPANY:apple", "alias", 0.95)


def test_single_words_that_are_stop_words_or_short_seed_only_as_acronyms(names):
    assert names.find("the firm") == []  # COMPANY:the is a stop word
    assert names.find("hp printers") == []  # two letters, written as a word
    assert keys(names.find("HP's printers")) == ["COMPANY:hp"]  # written as an acronym
    assert names.find("Hp's printers") == []  # "hps" is long enough, but the name it matched ("hp") is not
    assert names.find("") == [] and names.find("?!") == []
    assert EntityNameIndex({}).find("Tim Cook") == []


@pytest.fixture(scope="module")
def multihop_index(tmp_path_factory, business_schema, embedder) -> Settings:
    from kgbuild.pipeline import ingest

    root = tmp_path_factory.mktemp("query-entities")
    settings = Settings(out_dir=root / "index", device="cpu")
    ingest(corpus_folder(root / "corpus"), settings, extractor=gazetteer(business_schema), embedder=embedder)
    return settings


class CountingExtractor:
    """The multi-hop gazetteer, counting the texts it is asked to read."""

    def __init__(self, schema):
        self.inner = gazetteer(schema)
        self.name = self.inner.name
        self.calls = 0

    def extract(self, texts):
        self.calls += 1
        return self.inner.extract(texts)


def test_the_retriever_finds_the_query_entities_without_the_extractor_by_default(multihop_index, business_schema, embedder):
    extractor = CountingExtractor(business_schema)
    with HybridRetriever(multihop_index, extractor=extractor, embedder=embedder, vector=False, bm25=False) as retriever:
        hits = retriever.retrieve(QUESTION, k=3)
    assert extractor.calls == 0
    found = [passage(h) for h in hits]
    assert found[0] == "p01" and "p02" in found
    answer = hits[found.index("p02")]
    reason = answer.reasons[0]
    assert reason.entity == "PERSON:mara lindqvist"
    assert reason.path[:3] == ("PERSON:mara lindqvist", "CEO_OF", "COMPANY:norvik systems")
    assert reason.path[-1] == answer.chunk_id


def test_query_model_reads_the_query_with_the_extractor(multihop_index, business_schema, embedder):
    extractor = CountingExtractor(business_schema)
    with HybridRetriever(multihop_index, extractor=extractor, embedder=embedder, vector=False, bm25=False,
                         query_model=True) as retriever:
        default = HybridRetriever(multihop_index, vector=False, bm25=False, embedder=embedder, retrieval_graph=retriever.graph_channel.graph)
        with default:
            by_name = [(h.chunk_id, h.reasons) for h in default.retrieve(QUESTION, k=5)]
        by_model = [(h.chunk_id, h.reasons) for h in retriever.retrieve(QUESTION, k=5)]
    assert extractor.calls == 1
    assert by_model == by_name  # on this set both find the same entity and give the same reasons
    assert HybridRetriever(multihop_index, model="some/checkpoint").query_model


def test_cli_query_model_flag_and_model_option_read_the_query_with_gliner2(multihop_index, business_schema, monkeypatch):
    from kgbuild.cli import app

    built = []

    def build(model, schema, settings, *, indexed_as=""):
        built.append(model or indexed_as)
        return gazetteer(business_schema)

    monkeypatch.setattr("kgbuild.retrieve.hybrid.build_query_extractor", build)
    runner = CliRunner()
    out = str(multihop_index.out_dir)
    base = ["query", "What snack comes from the business that Tobias Reyes runs?", "--out", out, "--hybrid", "--channels",
            "graph", "-k", "2", "--json"]
    for extra, expected in (((), []), (("--query-model",), ["gazetteer-multihop"]), (("--model", "ckpt"), ["ckpt"])):
        built.clear()
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 0, result.output
        assert built == expected, extra
        hits = json.loads(result.stdout)
        assert [h["path"].rsplit("#", 1)[-1] for h in hits] == ["p03", "p04"]
        assert "PERSON:tobias reyes" in hits[1]["reasons"][0]["path"]


PROBE = """
import json, sys
sys.argv = ["kgbuild", *json.loads(sys.argv[1])]
from kgbuild.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print("\\nMODULES=" + json.dumps(sorted(m for m in sys.modules if "." not in m)))
"""


def test_a_default_hybrid_query_imports_neither_gliner2_nor_transformers(multihop_index):
    argv = ["query", QUESTION, "--out", str(multihop_index.out_dir), "--hybrid", "-k", "3", "--json"]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).parent)
    assert "MODULES=" in done.stdout, done.stderr[-3000:]
    output, modules = done.stdout.rsplit("MODULES=", 1)
    loaded = set(json.loads(modules))
    assert {"scipy", "ahocorasick", "bm25s"} <= loaded  # the graph and BM25 channels ran
    assert loaded.isdisjoint({"gliner2", "transformers", "sentence_transformers"}), sorted(loaded & {"gliner2", "transformers"})
    hits = json.loads(output.strip().splitlines()[-1])
    found = [h["path"].rsplit("#", 1)[-1] for h in hits]
    assert found[0] == "p01" and "p02" in found
    answer = hits[found.index("p02")]
    assert any(r["channel"] == "graph" and r["entity"] == "PERSON:mara lindqvist" for r in answer["reasons"])
