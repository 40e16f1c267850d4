"""Communities (kgbuild.communities): detection, summaries, storage in every store, filters, incremental updates, CLI.

The corpus has three topics (cars, devices, food), four documents each, whose entities a gazetteer finds; a
date every topic mentions ("2024") must not glue them together.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crash_runner import HashEmbedder
from index_snapshot import assert_same_index, snapshot
from test_incremental import write
from kgbuild.cli import app
from kgbuild.communities import CommunityParams, global_query, load_communities, refresh_communities
from kgbuild.communities.build import build_communities
from kgbuild.communities.model import communities_dir
from kgbuild.errors import ConfigError
from kgbuild.index import Index, remove
from kgbuild.pipeline import ingest
from kgbuild.retrieve.chunk_table import ChunkTable
from kgbuild.retrieve.graph_matrix import RetrievalGraph, retrieval_dir
from kgbuild.retrieve.hybrid import HybridRetriever
from kgbuild.retrieve.vector import query
from kgbuild.settings import Settings

TOPICS = {
    "cars": {
        "COMPANY": ["Volkswagen AG", "Tesla"], "PERSON": ["Oliver Blume", "Elon Musk"], "PRODUCT": ["ID.7", "Model Y"],
        "LOCATION": ["Wolfsburg", "Austin"],
    },
    "devices": {
        "COMPANY": ["Apple Inc.", "Samsung"], "PERSON": ["Tim Cook", "TM Roh"], "PRODUCT": ["Vision Pro", "Galaxy Fold"],
        "LOCATION": ["Cupertino", "Seoul"],
    },
    "food": {
        "COMPANY": ["Nestle", "Danone"], "PERSON": ["Mark Schneider", "Antoine de Saint-Affrique"],
        "PRODUCT": ["Nespresso", "Activia"], "LOCATION": ["Vevey", "Paris"],
    },
}
WORDS = {
    "cars": ("electric cars", "battery range", "charging stations"),
    "devices": ("headset display", "smartphone screens", "mixed reality"),
    "food": ("coffee capsules", "yogurt sales", "dairy farms"),
}
ENTITIES = {"DATE": ["2024"], **{t: sorted({n for topic in TOPICS.values() for n in topic[t]}) for t in ("COMPANY", "PERSON", "PRODUCT", "LOCATION")}}
RELATIONS = [("Oliver Blume", "CEO_OF", "Volkswagen AG"), ("Elon Musk", "CEO_OF", "Tesla"), ("Tim Cook", "CEO_OF", "Apple Inc."),
             ("Mark Schneider", "CEO_OF", "Nestle"), ("Apple Inc.", "MANUFACTURES", "Vision Pro"),
             ("Tesla", "MANUFACTURES", "Model Y"), ("Nestle", "MANUFACTURES", "Nespresso")]
CLASSES = {"document_type": {"product_announcement": ["unveil", "launch"], "earnings_report": ["revenue", "quarter"]}}


FAST = HashEmbedder()  # where nothing is queried through the CLI (which loads the index's embedder by name)


def story(topic: str, i: int) -> str:
    e = TOPICS[topic]
    company, person, product, place = (e[t][i % 2] for t in ("COMPANY", "PERSON", "PRODUCT", "LOCATION"))
    rival, other, boss, town = (e[t][(i + 1) % 2] for t in ("COMPANY", "PRODUCT", "PERSON", "LOCATION"))
    a, b, c = WORDS[topic]
    verb = "will unveil" if i % 2 == 0 else "reported revenue for the quarter of"
    return (f"{company} chief {person} {verb} {product} in {place} in 2024. The {a} of {product} and the {b} of {other} "
            f"matter to {rival} and {boss}.\n{person} said {company} and {rival} of {town} compete on {c} and {a}. {other} "
            f"and {product} share {b}.\n")


def corpus_files(n: int = 4) -> dict[str, str]:
    return {f"{topic}/{topic}-{i}.txt": story(topic, i) for topic in TOPICS for i in range(n)}


def settings_for(out: Path, **kwargs) -> Settings:
    return Settings(out_dir=out, chunk_size=48, chunk_overlap=0, checkpoint_seconds=0, **kwargs)


@pytest.fixture(scope="module")
def extractor(business_schema):
    from kgbuild.extract.gazetteer import GazetteerExtractor

    return GazetteerExtractor(business_schema, ENTITIES, RELATIONS, CLASSES, max_tokens=64)


@pytest.fixture(scope="module")
def built(tmp_path_factory, extractor, embedder):
    """The topics corpus ingested on the embedded defaults."""
    root = tmp_path_factory.mktemp("communities")
    corpus = write(root / "corpus", corpus_files())
    settings = settings_for(root / "out")
    ingest(corpus, settings, extractor=extractor, embedder=embedder)
    return settings


def stored_bytes(settings: Settings) -> dict[str, bytes]:
    folder = communities_dir(settings.out_dir)
    return {name: (folder / name).read_bytes() for name in ("communities.json", "chunks.json")}


def topic_of(path: str) -> str:
    return path.split("/", 1)[0]


# -- detection and summaries -------------------------------------------------------------------------


def test_communities_find_the_topics_and_summarise_them(built):
    communities = load_communities(built)
    top = communities.at_level(0)
    assert len(top) == 3, [c.title for c in top]
    by_topic = {}
    for c in top:
        topics = {topic_of(path) for _, path in c.documents}
        assert len(topics) == 1, (c.title, c.documents)  # the date every topic names glues nothing
        by_topic[topics.pop()] = c
    assert set(by_topic) == set(TOPICS)
    for topic, c in by_topic.items():
        names = {e.name for e in c.top_entities}
        wanted = {n for values in TOPICS[topic].values() for n in values}
        assert names <= wanted | {"2024"} and len(names & wanted) >= 6, (topic, names)
        assert {e.type for e in c.top_entities} >= {"COMPANY", "PERSON", "PRODUCT"}
        assert next(e.name for e in c.top_entities if not e.name.isdigit()) in c.title and c.top_entities == sorted(c.top_entities, key=lambda e: (-e.weight, e.id))
        assert len(c.documents) == 4 and c.chunk_count >= 4
        assert set(WORDS[topic][0].split()) & set(c.top_terms), (topic, c.top_terms)  # c-TF-IDF: the topic's own words
        assert c.labels == {"document_type": {"earnings_report": 2, "product_announcement": 2}}
        assert c.chunks and all(topic_of(ch.path) == topic for ch in c.chunks)
        assert c.parent == "" and all(communities.get(child).parent == c.id for child in c.children)
        assert c.id.startswith("c0-")
    for c in communities:
        if c.level:
            parent = communities.get(c.parent)
            assert c.id in parent.children and set(c.members) <= set(parent.members) and c.size <= parent.size


def test_every_chunk_payload_names_its_communities(built):
    communities = load_communities(built)
    with Index.open_existing(built).stores() as stores:
        points = stores.vectors.export().points
        graph = stores.graph.communities()
    assert [c.record() for c in communities] == graph
    level0 = {c.id: c for c in communities.at_level(0)}
    for payload in points.values():
        ids = payload["communities"]
        assert ids == communities.chunk_communities[payload["chunk_id"]]
        mine = [level0[i] for i in ids if i in level0]
        assert len(mine) == 1 and topic_of(mine[0].documents[0][1]) == topic_of(payload["path"])


def test_the_same_index_gives_the_same_communities_byte_for_byte(built, tmp_path, extractor):
    graph = RetrievalGraph.load(retrieval_dir(built.out_dir))
    table = ChunkTable.open(retrieval_dir(built.out_dir))
    first = build_communities(graph, table)
    assert [c.to_dict() for c in first] == [c.to_dict() for c in build_communities(graph, table)]
    # in another process
    script = ("import hashlib, json, sys; from kgbuild.communities.build import build_communities;"
              "from kgbuild.retrieve.graph_matrix import RetrievalGraph; from kgbuild.retrieve.chunk_table import ChunkTable;"
              "from pathlib import Path; d = Path(sys.argv[1]);"
              "c = build_communities(RetrievalGraph.load(d), ChunkTable.open(d));"
              "print(json.dumps([x.to_dict() for x in c], sort_keys=True))")
    out = subprocess.run([sys.executable, "-c", script, str(retrieval_dir(built.out_dir))], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == json.loads(json.dumps([c.to_dict() for c in first], sort_keys=True))
    # a fresh ingest of the same folder elsewhere
    corpus = Path(built.out_dir).parent / "corpus"
    again = settings_for(tmp_path / "again")
    ingest(corpus, again, extractor=extractor, embedder=FAST)  # the communities do not depend on the embedder
    assert stored_bytes(again) == stored_bytes(built)


def test_params_change_recomputes(built, tmp_path):
    graph = RetrievalGraph.load(retrieval_dir(built.out_dir))
    table = ChunkTable.open(retrieval_dir(built.out_dir))
    coarse = build_communities(graph, table, CommunityParams(max_cluster_size=1000))
    assert coarse.levels == [0] and len(coarse.at_level(0)) == 3


# -- filters ------------------------------------------------------------------------------------------


def test_community_filter_on_qdrant_edge_and_in_hybrid(built, embedder):
    communities = load_communities(built)
    cars = next(c for c in communities.at_level(0) if topic_of(c.documents[0][1]) == "cars")
    hits = query("coffee capsules and yogurt", built, embedder=embedder, communities=[cars.id.upper()], k=20)
    assert hits and all(topic_of(h.path) == "cars" and cars.id in h.communities for h in hits)
    with HybridRetriever(built, embedder=embedder, community_context=True) as retriever:
        text = "Tesla battery range and Nestle coffee capsules"
        assert {topic_of(h.path) for h in retriever.retrieve(text, k=20)} >= {"cars", "food"}
        found = retriever.retrieve(text, k=20, communities=[cars.id])
        assert found and all(topic_of(h.path) == "cars" for h in found)
        assert all(any(ctx["id"] == cars.id and ctx["title"] == cars.title for ctx in h.community_context) for h in found)
        for channel in ("graph", "bm25"):  # the channels that filter the chunk table, not the vector store
            assert any(r.channel == channel for h in found for r in h.reasons), channel
        with pytest.raises(ConfigError, match="--community c9-nope: no community 'c9-nope'"):
            retriever.retrieve("coffee", communities=["c9-nope"])
    with pytest.raises(ConfigError, match="c9-nope"):
        query("coffee", built, embedder=embedder, communities=["c9-nope"])


def test_community_filter_on_the_qdrant_server_connector(tmp_path, extractor):
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink

    def sink():
        return QdrantServerVectorSink("kgbuild", path=str(tmp_path / "qdrant-local"), classification_tasks=["document_type"])

    corpus = write(tmp_path / "corpus", corpus_files(2))
    settings = settings_for(tmp_path / "out")
    ingest(corpus, settings, extractor=extractor, embedder=FAST, vector_sink=sink())
    communities = load_communities(settings)
    food = next(c for c in communities.at_level(0) if topic_of(c.documents[0][1]) == "food")
    hits = query("electric cars", settings, embedder=FAST, vector_sink=sink(), communities=[food.id], k=20)
    assert {topic_of(h.path) for h in hits} == {"food"} and len(hits) == sum(
        1 for ids in communities.chunk_communities.values() if food.id in ids)


def test_llamaindex_retrievers_carry_and_filter_communities(built, embedder):
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    from kgbuild.llamaindex import KgbuildHybridRetriever, KgbuildVectorRetriever

    food = next(c for c in load_communities(built).at_level(0) if topic_of(c.documents[0][1]) == "food")
    filters = MetadataFilters(filters=[MetadataFilter(key="communities", value=food.id)])
    retriever = KgbuildVectorRetriever(built, filters=filters, similarity_top_k=5, embedder=embedder)
    nodes = retriever.retrieve("electric cars")
    retriever.close()
    assert nodes and all(food.id in n.node.metadata["communities"] for n in nodes)
    hybrid = KgbuildHybridRetriever(built, similarity_top_k=3, embedder=embedder, community_context=True)
    nodes = hybrid.retrieve("Nespresso coffee capsules")
    hybrid.close()
    assert nodes[0].node.metadata["community_context"][0]["id"] == food.id


def test_global_query_ranks_communities_by_their_summaries(built, embedder):
    hits = global_query("coffee and yogurt makers", built, k=2, embedder=embedder)
    assert topic_of(hits[0].community.documents[0][1]) == "food" and hits[0].community.chunks
    assert set(hits[0].reasons) == {"bm25", "vector"}
    assert [h.community.level for h in global_query("electric cars", built, k=3, level=0, embedder=embedder)] == [0, 0, 0]
    with pytest.raises(ConfigError, match="--level 7"):
        global_query("cars", built, level=7, embedder=embedder)


# -- incremental ---------------------------------------------------------------------------------------


def change(root: Path) -> None:
    (root / "cars/cars-1.txt").write_text(story("devices", 1), encoding="utf-8")  # changed: now about devices
    (root / "food/food-3.txt").unlink()  # deleted
    write(root, {"food/food-9.txt": story("food", 2) + story("food", 3)})  # added


def test_updates_equal_a_fresh_ingest(tmp_path, extractor):
    corpus = write(tmp_path / "corpus", corpus_files())
    updated = settings_for(tmp_path / "updated")
    ingest(corpus, updated, extractor=extractor, embedder=FAST)
    change(corpus)
    ingest(corpus, updated, extractor=extractor, embedder=FAST)
    fresh = settings_for(tmp_path / "fresh")
    ingest(corpus, fresh, extractor=extractor, embedder=FAST)
    assert stored_bytes(updated) == stored_bytes(fresh)
    assert_same_index(snapshot(updated), snapshot(fresh))  # the chunks' communities payloads included
    with Index.open_existing(updated).stores() as a, Index.open_existing(fresh).stores() as b:
        assert a.graph.communities() == b.graph.communities()

    # kgbuild remove: communities of what is left, equal to a fresh ingest of the folder without the file
    remove([corpus / "devices/devices-0.txt"], updated)
    without = tmp_path / "without"
    shutil.copytree(corpus, without)
    (without / "devices/devices-0.txt").unlink()
    fresh_without = settings_for(tmp_path / "fresh-without")
    ingest(without, fresh_without, extractor=extractor, embedder=FAST)
    assert stored_bytes(updated) == stored_bytes(fresh_without)
    assert_same_index(snapshot(updated), snapshot(fresh_without))
    # and the next ingest of the folder puts the file back, communities and all
    ingest(corpus, updated, extractor=extractor, embedder=FAST)
    assert stored_bytes(updated) == stored_bytes(fresh)


def test_a_crash_between_the_retrieval_graph_and_the_communities_heals(tmp_path, extractor):
    corpus = write(tmp_path / "corpus", corpus_files(2))
    settings = settings_for(tmp_path / "out")
    ingest(corpus, settings, extractor=extractor, embedder=FAST)
    want = stored_bytes(settings)
    folder = communities_dir(settings.out_dir)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "signature": "an older graph"}))
    with Index.open_existing(settings).stores() as stores:
        stores.graph.replace_communities([])
        stores.vectors.set_chunk_communities({c: [] for c in json.loads((folder / "chunks.json").read_text())})
    report = ingest(corpus, settings, extractor=extractor, embedder=FAST)
    assert report.documents_read == 0
    assert stored_bytes(settings) == want
    with Index.open_existing(settings).stores() as stores:
        assert len(stores.graph.communities()) == len(load_communities(settings))
        assert all(p["communities"] for p in stores.vectors.export().points.values())
    # other parameters, the same retrieval graph: every chunk's payload follows
    index = Index.open_existing(settings)
    for params in (CommunityParams(max_cluster_size=5), CommunityParams()):
        with index.stores() as stores:
            found = refresh_communities(index, stores, params=params)
            assert found is not None and len(stores.graph.communities()) == len(found)
            points = stores.vectors.export().points.values()
            assert {p["chunk_id"]: p["communities"] for p in points} == {
                c: found.chunk_communities.get(c, []) for c in (p["chunk_id"] for p in points)}
    assert stored_bytes(settings) == want


def test_ids_stay_when_a_few_documents_are_added(tmp_path, extractor):
    corpus = write(tmp_path / "corpus", corpus_files())
    settings = settings_for(tmp_path / "out")
    ingest(corpus, settings, extractor=extractor, embedder=FAST)
    before = {c.id: set(c.members) for c in load_communities(settings).at_level(0)}
    write(corpus, {"cars/cars-8.txt": story("cars", 0)})
    ingest(corpus, settings, extractor=extractor, embedder=FAST)
    after = {c.id: set(c.members) for c in load_communities(settings).at_level(0)}
    assert set(before) == set(after)
    assert all(len(before[i] & after[i]) / len(before[i] | after[i]) >= 0.5 for i in before)


# -- Neo4j ---------------------------------------------------------------------------------------------


def test_neo4j_rows_from_a_generator_are_made_a_batch_at_a_time():
    """The communities' rows (each with its summary) go to Neo4j from generators: one batch in memory at a time."""
    from kgbuild.connectors.neo4j.queries import batches

    made: list[int] = []

    def rows():
        for i in range(7):
            made.append(i)
            yield i

    parts = batches(rows(), 3)
    assert next(parts) == [0, 1, 2] and made == [0, 1, 2]
    assert list(parts) == [[3, 4, 5], [6]]
    assert list(batches([1, 2, 3, 4], 3)) == [[1, 2, 3], [4]]


@pytest.mark.neo4j
def test_communities_on_neo4j_equal_networkx(tmp_path, extractor, embedder, built, neo4j_server, monkeypatch):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    sink.close()
    corpus = Path(built.out_dir).parent / "corpus"
    settings = settings_for(tmp_path / "neo", graph="neo4j", neo4j_uri=neo4j_server["uri"], neo4j_user=neo4j_server["user"],
                            neo4j_database=neo4j_server["database"])
    ingest(corpus, settings, extractor=extractor, embedder=embedder)
    assert stored_bytes(settings) == stored_bytes(built)
    with Index.open_existing(settings).stores() as neo, Index.open_existing(built).stores() as nx:
        assert neo.graph.communities() == nx.graph.communities()
        assert neo.graph.export().problems == []
        rows = neo.graph.run_read("MATCH (e:Entity)-[r:IN_COMMUNITY]->(c:Community) RETURN count(r) AS n, "
                                  "count(DISTINCT r.level) AS levels")
    assert rows[0]["n"] == sum(c.size for c in load_communities(built)) and rows[0]["levels"] == len(load_communities(built).levels)
    result = CliRunner().invoke(app, ["communities", "--out", str(settings.out_dir), "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == len(load_communities(built))


# -- CLI -----------------------------------------------------------------------------------------------


def test_cli(built):
    runner = CliRunner()
    out = ["--out", str(built.out_dir)]
    communities = load_communities(built)
    listed = runner.invoke(app, ["communities", *out, "--level", "0"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    for c in communities.at_level(0):
        assert c.id in listed.stdout and c.top_entities[0].name.split()[0] in listed.stdout
    data = json.loads(runner.invoke(app, ["communities", *out, "--json"]).stdout)
    assert [d["id"] for d in data] == [c.id for c in communities.at_level(None)]
    assert {"title", "size", "top_entities", "top_terms", "labels", "documents", "parent", "children", "chunks"} <= set(data[0])
    first = communities.at_level(0)[0]
    shown = runner.invoke(app, ["communities", "show", first.id, *out], terminal_width=200)
    assert shown.exit_code == 0 and first.title in shown.stdout and "representative chunks" in shown.stdout
    assert json.loads(runner.invoke(app, ["communities", *out, "show", first.id, "--json"]).stdout)["id"] == first.id
    bad = runner.invoke(app, ["communities", "show", "c0-nothing", *out])
    assert bad.exit_code == 1 and "no community 'c0-nothing'" in bad.output and len(bad.output.strip().splitlines()) == 1
    level = runner.invoke(app, ["communities", *out, "--level", "9"])
    assert level.exit_code == 1 and "--level 9" in level.output
    hits = runner.invoke(app, ["query", "yogurt", *out, "--community", first.id, "--json"])
    assert hits.exit_code == 0 and all(first.id in h["communities"] for h in json.loads(hits.stdout))
    hybrid = runner.invoke(app, ["query", "yogurt", *out, "--community", first.id, "--hybrid", "--json"])
    assert hybrid.exit_code == 0 and all(first.id in h["communities"] for h in json.loads(hybrid.stdout))
    wrong = runner.invoke(app, ["query", "yogurt", *out, "--community", "c0-nothing", "--hybrid"])
    assert wrong.exit_code == 1 and "--community c0-nothing" in wrong.output
    themes = runner.invoke(app, ["query", "coffee and dairy", *out, "--global", "-k", "1"], terminal_width=200)
    assert themes.exit_code == 0 and "1. c" in themes.stdout and "food/" in themes.stdout


def test_entity_weights_are_those_of_the_matrix_products_with_the_diagonal_set_to_zero():
    """The weights Leiden reads, entry for entry and bit for bit, as s (co-mention + relations) s with scipy's
    setdiag(0): zeroing the diagonal in place (no COO round trip) changes no float and leaves no self-loop."""
    from types import SimpleNamespace

    import numpy as np
    from scipy import sparse

    from kgbuild.communities.detect import entity_weights

    rng = np.random.default_rng(7)
    n_chunks, n_entities = 300, 120
    chunk_entity = sparse.random(n_chunks, n_entities, density=0.05, random_state=rng, format="lil", dtype=np.float32)
    chunk_entity[0, :] = 0
    chunk_entity[0, 5] = 0.7  # a chunk that names one entity: its share is 0, its products explicit zeros
    chunk_entity = chunk_entity.tocsr()
    relations = sparse.random(n_entities, n_entities, density=0.02, random_state=rng, format="csr")
    relations = ((relations + relations.T) > 0).astype(np.float32).tolil()
    relations[3, 3] = 1.0  # a self-loop, which no weight may keep
    relations = relations.tocsr()
    types = ["TITLE" if i % 17 == 0 else "COMPANY" for i in range(n_entities)]
    specificity = rng.uniform(0.2, 1.0, n_entities).astype(np.float32)
    graph = SimpleNamespace(entities=[SimpleNamespace(type=t) for t in types], chunk_entity=chunk_entity,
                            relations=relations, specificity=lambda: specificity)
    params = CommunityParams()
    got = entity_weights(graph, params)

    keep = np.array([i for i, t in enumerate(types) if t != "TITLE"])
    mentions = chunk_entity[:, keep].tocsr()
    mentions.data[:] = 1.0
    per_chunk = np.asarray(mentions.sum(axis=1)).ravel()
    share = np.where(per_chunk > 1, 1.0 / np.maximum(per_chunk - 1, 1), 0.0)
    co = (mentions.T @ sparse.diags(share) @ mentions).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    want = (co + relations[keep][:, keep].tocsr().astype(np.float64) * params.relation_weight).tocsr()
    s = specificity[keep].astype(np.float64) ** params.specificity_power
    want.data = s[np.repeat(np.arange(len(keep)), np.diff(want.indptr))] * want.data
    want.data *= s[want.indices]
    want.setdiag(0)
    want.eliminate_zeros()
    want.sort_indices()

    w = got.weights
    assert w.diagonal().tolist() == [0.0] * len(keep) and (w.data != 0).all()
    assert np.array_equal(w.indptr, want.indptr) and np.array_equal(w.indices, want.indices)
    assert np.array_equal(w.data, want.data), "the same floats, not merely close ones"


# -- what the build holds at once (BENCHMARKS.md, scale-out memory) ---------------------------------------------


def test_term_counts_are_each_chunks_kept_words_with_the_vocabulary_in_alphabetical_order(monkeypatch):
    """Counted a chunk at a time straight into the matrix's rows, across pages, past a page without text, and with
    words of under three letters, digits and function words left out."""
    import numpy as np
    from scipy import sparse

    import kgbuild.communities.build as build

    monkeypatch.setattr(build, "TEXTS_PER_PAGE", 2)
    texts = {"a#0": "Tesla builds electric cars; electric cars need charging stations.", "a#1": "",
             "b#0": "", "b#1": "",
             "c#0": "The yogurt sales of Danone rose, and yogurt prices fell.", "c#1": "a an of 42 xx whose",
             "d#0": "Coffee capsules, coffee farms and DAIRY farms of Vevey."}
    ids = sorted(texts)
    counts = build._TermCounts(ids, {c: {"text": t} for c, t in texts.items()})

    want = [{"builds": 1, "cars": 2, "charging": 1, "electric": 2, "need": 1, "stations": 1, "tesla": 1}, {}, {}, {},
            {"danone": 1, "fell": 1, "prices": 1, "rose": 1, "sales": 1, "yogurt": 2}, {},
            {"capsules": 1, "coffee": 2, "dairy": 1, "farms": 2, "vevey": 1}]
    assert counts.vocab == sorted({w for c in want for w in c})
    dense = counts.counts.toarray()
    assert dense.shape == (len(ids), len(counts.vocab)) and dense.dtype == np.float32
    assert [{counts.vocab[j]: dense[row, j] for j in np.flatnonzero(dense[row])} for row in range(len(ids))] == want
    assert counts.counts.has_sorted_indices

    nothing = build._TermCounts(["x#0", "x#1", "x#2"], {"x#0": {"text": "of the and"}, "x#1": {"text": ""},
                                                      "x#2": {"text": "an 7 is"}})
    assert nothing.vocab == [] and nothing.counts.shape == (3, 0)
    assert nothing.top_terms(sparse.csr_matrix(np.ones((1, 3)))) == [[]]


def test_the_build_holds_neither_the_weights_beside_leiden_nor_the_term_counts_through_the_summaries(built,
                                                                                                   monkeypatch):
    """Leiden's own copy of the graph and the summaries are the build's two peaks: the entity weights are made
    again after Leiden, and every level's key terms come before the summaries, so the term counts are gone."""
    import kgbuild.communities.build as build
    from alive import alive
    from kgbuild.communities.detect import EntityWeights

    (weights_before,), (counts_before,) = alive(EntityWeights), alive(build._TermCounts)  # what earlier tests left
    seen: dict[str, list[int]] = {"weights during leiden": [], "term counts during summaries": []}
    leiden, summarise = build.leiden_clusters, build._summarise

    def counted_leiden(*args, **kwargs):
        seen["weights during leiden"].append(alive(EntityWeights)[0] - weights_before)
        return leiden(*args, **kwargs)

    def counted_summarise(*args, **kwargs):
        if not seen["term counts during summaries"]:  # once: a heap scan per community would be slow
            seen["term counts during summaries"].append(alive(build._TermCounts)[0] - counts_before)
        return summarise(*args, **kwargs)

    monkeypatch.setattr(build, "leiden_clusters", counted_leiden)
    monkeypatch.setattr(build, "_summarise", counted_summarise)
    source = retrieval_dir(built.out_dir)
    got = build_communities(RetrievalGraph.load(source), ChunkTable.open(source))
    assert got.communities == load_communities(built).communities  # what the ingest stored, from the same graph
    assert seen == {"weights during leiden": [0], "term counts during summaries": [0]}


def test_an_ingest_lets_go_of_the_name_caches_and_the_retrieval_graph_before_what_needs_them_no_more(
        tmp_path, extractor, embedder, monkeypatch):
    """Resolution's name caches are empty when the end-of-run builds start, and the retrieval graph and chunk
    table the communities were built from are gone when the chunk payloads are updated (the ingest hands the
    graph over rather than holding it)."""
    import kgbuild.communities.build as build
    import kgbuild.communities.refresh as refresh
    from alive import alive
    from kgbuild.names import normalize_name

    seen: dict[str, object] = {}
    refresh_graph, set_payloads, leiden = Index.refresh_retrieval_graph, refresh._set_payloads, build.leiden_clusters

    def at_retrieval_graph(self, *args, **kwargs):
        seen["cached names"] = normalize_name.cache_info().currsize
        return refresh_graph(self, *args, **kwargs)

    before = alive(RetrievalGraph, ChunkTable)  # what earlier tests left, if anything

    def at_payloads(*args, **kwargs):
        now = alive(RetrievalGraph, ChunkTable)
        seen["alive"] = (now[0] - before[0], now[1] - before[1])
        return set_payloads(*args, **kwargs)

    def at_leiden(*args, **kwargs):
        seen["graphs during leiden"] = alive(RetrievalGraph)[0] - before[0]
        return leiden(*args, **kwargs)

    monkeypatch.setattr(Index, "refresh_retrieval_graph", at_retrieval_graph)
    monkeypatch.setattr(refresh, "_set_payloads", at_payloads)
    monkeypatch.setattr(build, "leiden_clusters", at_leiden)
    corpus = write(tmp_path / "corpus", corpus_files(2))
    report = ingest(corpus, settings_for(tmp_path / "out"), extractor=extractor, embedder=embedder)
    stored = load_communities(settings_for(tmp_path / "out"))
    assert report.totals.entities > 0 and stored.communities
    assert seen == {"cached names": 0, "graphs during leiden": 0, "alive": (0, 0)}
    # the graph loaded again after Leiden is the one the clusters came from: the same as a build over the stored one
    source = retrieval_dir(settings_for(tmp_path / "out").out_dir)
    assert build_communities(RetrievalGraph.load(source), ChunkTable.open(source)).communities == stored.communities


def test_communities_come_from_the_stored_graph_where_the_graph_handed_over_is_not_it(built, tmp_path):
    """Leiden runs on the graph handed over, which is then let go of and loaded again from the index: where the
    index holds another graph (another signature), the clusters are detected again on the one loaded, so the
    communities stored always describe the stored graph."""
    out = tmp_path / "copy"
    shutil.copytree(built.out_dir, out)
    shutil.rmtree(communities_dir(out))
    source = retrieval_dir(out)
    stored_graph = RetrievalGraph.load(source)
    want = build_communities(stored_graph, ChunkTable.open(source))

    def another_graph() -> RetrievalGraph:
        graph = RetrievalGraph.load(source)
        keep = graph.chunk_entity.copy()
        keep.data[::2] = 0  # half the mentions gone: other communities
        keep.eliminate_zeros()
        graph.chunk_entity, graph.signature = keep, "another graph"
        return graph

    index = Index.open_existing(settings_for(out))
    with index.stores() as stores:
        got = refresh_communities(index, stores, another_graph)
    assert got is not None and got.signature == stored_graph.signature != "another graph"
    assert got.communities == want.communities


def test_community_payload_updates_let_go_of_the_written_pages_as_they_go(built, tmp_path, monkeypatch):
    """A page release every ``RELEASE_EVERY`` chunks updated, not only at the end: the pages written by a whole
    index's updates stayed resident until then (~30 MiB at 10,000 chunks)."""
    import kgbuild.connectors.qdrant_edge as qdrant_edge

    out = tmp_path / "copy"
    shutil.copytree(built.out_dir, out)
    releases: list[str] = []
    monkeypatch.setattr(qdrant_edge, "release_mapped_pages", lambda folder: releases.append(str(folder)))
    monkeypatch.setattr(qdrant_edge, "RELEASE_EVERY", 3)
    with Index.open_existing(settings_for(out)).stores() as stores:
        chunks = sorted(stores.vectors.chunk_communities())
        releases.clear()
        stores.vectors.set_chunk_communities({c: [f"c0-test{i}"] for i, c in enumerate(chunks[:10])}
                                             | {c: ["c0-shared"] for c in chunks[10:]})
        updated = len(releases)
        assert stores.vectors.chunk_communities() == {c: [f"c0-test{i}"] for i, c in enumerate(chunks[:10])} \
            | {c: ["c0-shared"] for c in chunks[10:]}
    # ten values of one chunk each, then one value shared by the rest (its chunks in slices of RELEASE_EVERY too)
    assert len(chunks) >= 20 and updated == len(chunks) // 3 + 1
