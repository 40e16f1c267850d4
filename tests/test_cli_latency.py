"""What a read-only command imports and loads: each process's start-up is the user's wait (BENCHMARKS.md, Q1).

Not timed. Each command runs in a fresh interpreter, through the CLI's own ``main``, and reports the
modules it had imported when it finished: ``kgbuild stats`` imports no model runtime and no graph
library, a vector query imports no torch at all (the query is embedded on numpy), and the light embedder
gives sentence-transformers' vectors within 2e-6 per component, and the same rankings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_pipeline import DOCS, write_corpus

from kgbuild.embed import PACKAGED_MINILM, MiniLMQueryEmbedder, query_embedder
from kgbuild.settings import Settings

# never imported by any read-only command (a hybrid query's GLiNER2 aside)
MODEL_RUNTIMES = ("transformers", "sentence_transformers", "gliner2", "llama_index", "neo4j", "qdrant_client")

PROBE = """
import json, sys
sys.argv = ["kgbuild", *json.loads(sys.argv[1])]
from kgbuild.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print("\\nMODULES=" + json.dumps({"exit": code, "modules": sorted(m for m in sys.modules if "." not in m)}))
"""


def imported_by(*argv: str) -> set[str]:
    """Top-level modules a fresh ``kgbuild ARGV...`` process had imported at exit; fails on a non-zero exit."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(argv))], capture_output=True, text=True, timeout=600)
    line = next((l for l in reversed(done.stdout.splitlines()) if l.startswith("MODULES=")), None)
    assert line is not None, done.stderr[-3000:]
    result = json.loads(line[len("MODULES="):])
    assert result["exit"] == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return set(result["modules"])


class MiniLMNamedHashEmbedder:
    """Unit vectors seeded by the text, of MiniLM's size and under its name: the manifest names the packaged model."""

    name = PACKAGED_MINILM
    dimension = 384

    def embed(self, texts):
        import hashlib

        import numpy as np

        vectors = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
            vector = np.random.default_rng(seed).standard_normal(self.dimension)
            vectors.append((vector / np.linalg.norm(vector)).tolist())
        return vectors


@pytest.fixture(scope="module")
def index(tmp_path_factory, business_schema) -> Path:
    """A small index built without a model, whose manifest names the packaged all-MiniLM-L6-v2."""
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS

    from kgbuild.extract.gazetteer import GazetteerExtractor
    from kgbuild.pipeline import ingest

    root = tmp_path_factory.mktemp("latency")
    extractor = GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)
    settings = Settings(out_dir=root / "index", chunk_size=16, chunk_overlap=4)
    report = ingest(write_corpus(root / "corpus"), settings, extractor=extractor, embedder=MiniLMNamedHashEmbedder())
    assert report.documents_read == len(DOCS) and report.totals.entities > 0
    return settings.out_dir


def test_importing_the_cli_imports_no_model_runtime_and_no_store_client():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, json, kgbuild.cli; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=300,
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert loaded.isdisjoint({"torch", "networkx", "bm25s", "numpy", *MODEL_RUNTIMES}), loaded & {"torch", "networkx", "numpy"}


def test_stats_imports_no_torch_and_does_not_load_the_graph(index):
    loaded = imported_by("stats", "--out", str(index), "--json")
    assert loaded.isdisjoint({"torch", "networkx", *MODEL_RUNTIMES}), sorted(loaded & {"torch", "networkx", *MODEL_RUNTIMES})


def test_a_vector_query_imports_no_torch_for_the_embedding(index):
    for extra in ((), ("--entity", "COMPANY:Acme Corp", "--type", "PERSON", "--class", "document_type=legal_filing")):
        loaded = imported_by("query", "Globex lawsuit", "--out", str(index), "--json", *extra)
        assert {"numpy", "tokenizers", "safetensors"} <= loaded  # the query is embedded by the real MiniLM
        unwanted = {"torch", "networkx", "bm25s", *MODEL_RUNTIMES}
        assert loaded.isdisjoint(unwanted), sorted(loaded & unwanted)


def test_a_hybrid_query_loads_no_model_but_its_extractor(index):
    """The vector channel's embedder is the light one; only the query extractor (a gazetteer here) is a model."""
    script = f"""
import json, sys
from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS
from kgbuild.extract.gazetteer import GazetteerExtractor
from kgbuild.retrieve.hybrid import hybrid_query
from kgbuild.schema import load_schema
from kgbuild.settings import Settings
extractor = GazetteerExtractor(load_schema("business-news"), BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES)
hits = hybrid_query("Who leads Acme Corp?", Settings(out_dir={str(index)!r}), k=3, extractor=extractor)
assert hits, "no hits"
print("MODULES=" + json.dumps(sorted(m for m in sys.modules if "." not in m)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).parent)
    line = next((l for l in reversed(done.stdout.splitlines()) if l.startswith("MODULES=")), None)
    assert line is not None, done.stderr[-3000:]
    loaded = set(json.loads(line[len("MODULES="):]))
    assert {"scipy", "ahocorasick", "bm25s"} <= loaded and "networkx" not in loaded  # the stored retrieval graph: no NetworkX load
    assert loaded.isdisjoint({"torch", *MODEL_RUNTIMES}), sorted(loaded & {"torch", *MODEL_RUNTIMES})


def test_the_light_minilm_gives_sentence_transformers_vectors_and_rankings(embedder):
    import numpy as np

    texts = [
        "Which bishop of Elmham died in 997?", "", "   padded   with  spaces ", "Ünïcödé façade — naïve café, 東京, 🙂",
        "Tim Cook\tCEO\nof Apple Inc.", "$2,499 (USD) for the Vision Pro; €78 billion in Europe.", "word " * 600, "A" * 3000,
        *DOCS.values(),
    ]
    light = MiniLMQueryEmbedder(device="cpu")
    assert light.dimension == embedder.dimension == 384
    chunks = np.array(embedder.embed(list(DOCS.values()) + texts[:6]))  # vectors as ingest stores them (one batch)
    for text in texts:
        got, want = np.array(light.embed([text])[0]), np.array(embedder.embed([text])[0])
        assert np.abs(got - want).max() < 2e-6, text[:40]
        assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-6
        assert list(np.argsort(-(chunks @ got), kind="stable")) == list(np.argsort(-(chunks @ want), kind="stable")), text[:40]
    assert light._fallback is None  # it ran on numpy alone, not by handing over to sentence-transformers


def test_query_embedder_picks_the_light_path_for_the_packaged_minilm_only(tmp_path):
    assert isinstance(query_embedder(PACKAGED_MINILM), MiniLMQueryEmbedder)
    assert isinstance(query_embedder(f"sentence-transformers/{PACKAGED_MINILM}"), MiniLMQueryEmbedder)
    assert not isinstance(query_embedder(str(tmp_path / "some-other-model")), MiniLMQueryEmbedder)


def test_stats_from_the_recorded_totals_equal_a_recount(index):
    from kgbuild.index import Index, stats
    from kgbuild.state import JOURNAL_FILE

    settings = Settings(out_dir=index)
    assert Index(settings).recorded_graph_counts() is not None
    assert stats(settings).to_dict() == stats(settings, recount=True).to_dict()
    journal = Path(index) / JOURNAL_FILE
    journal.write_text(json.dumps({"documents": ["doc_x"]}))  # an interrupted write: the totals no longer vouch
    try:
        assert Index(settings).recorded_graph_counts() is None
    finally:
        journal.unlink()
    changed = Index(settings)
    changed.state.totals["chunks"] += 1  # written since the totals were counted
    assert changed.recorded_graph_counts() is None


def test_the_entity_graph_read_from_json_is_the_one_built_from_the_sinks_graph(index):
    from kgbuild.connectors.networkx_graph import NetworkXGraphSink
    from kgbuild.retrieve.graph import EntityGraph

    from_graph = NetworkXGraphSink(Path(index) / "graph.json")
    from_graph._g()  # the whole MultiDiGraph loaded: entity_graph() reads it instead of the file
    expected = EntityGraph.from_data(from_graph.entity_graph())
    loaded = EntityGraph.from_data(NetworkXGraphSink(Path(index) / "graph.json").entity_graph())
    assert list(loaded.entities.items()) == list(expected.entities.items())
    assert list(loaded.graph.nodes(data=True)) == list(expected.graph.nodes(data=True))
    assert list(loaded.graph.edges(data=True)) == list(expected.graph.edges(data=True))  # same order: same PageRank sums
    assert any(d["label"] != "MENTIONED_IN" for _, _, d in loaded.graph.edges(data=True))  # relations are there too
