"""The graph channel's retrieval graph: seeds without a model, the stored matrix (equal to a fresh build after any
change), personalised PageRank on a hand graph, explanations on hits, and an index built before the graph existed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from multihop import corpus_folder, gazetteer, passage

from kgbuild.ids import entity_id
from kgbuild.reconcile import normalize_name
from kgbuild.retrieve.graph_matrix import RetrievalGraph, build_retrieval_graph, retrieval_dir, title_entities
from kgbuild.retrieve.hybrid import HybridRetriever
from kgbuild.retrieve.ppr import GraphChannel, GraphChannelSettings, PPRGraph
from kgbuild.retrieve.seeds import SeedMatcher
from kgbuild.settings import Settings
from kgbuild.types import Entity, EntityGraphData

QUESTION = "Which device does the firm headed by Mara Lindqvist build?"


def make(entity_type: str, name: str, aliases: tuple[str, ...] = ()) -> Entity:
    key = f"{entity_type}:{normalize_name(name)}"
    return Entity(entity_id(entity_type, normalize_name(name)), entity_type, key, name, list(aliases), 1, 1.0)


def graph_of(entities: list[Entity], mentions=(), relations=()) -> RetrievalGraph:
    data = EntityGraphData({e.id: e for e in entities}, list(mentions), list(relations))
    return build_retrieval_graph(data)


# -- seeds ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matcher() -> SeedMatcher:
    entities = [
        make("PERSON", "Robert Young"), make("PERSON", "OBE"), make("AWARD", "obe"), make("DATE", "year"),
        make("DATE", "2011"), make("PERSON", "Andy Warhol"), make("COMPANY", "Norvik Systems", ("Norvik Sys",)),
        make("COMPANY", "Apple Inc.", ("Apple Computer",)), make("COMPANY", "HP"), make("COMPANY", "The"),
        make("LOCATION", "Oslo"), make("PERSON", "Tim Cook"),
    ]
    return SeedMatcher(graph_of(entities).entities)


def keys(seeds) -> list[str]:
    return sorted(s.key for s in seeds)


def test_exact_names_and_aliases_seed_on_word_boundaries(matcher):
    found = matcher.find("What does Tim Cook's team think of APPLE, Inc. in Oslo?")
    assert keys(found) == ["COMPANY:apple", "LOCATION:oslo", "PERSON:tim cook"]
    cook = next(s for s in found if s.key == "PERSON:tim cook")
    assert (cook.mention, cook.how, cook.weight) == ("Tim Cook's", "exact", 1.0)
    [alias] = matcher.find("When did Apple Computer ship?")
    assert (alias.key, alias.how, alias.weight) == ("COMPANY:apple", "alias", 0.95)
    assert keys(matcher.find("HP's printers")) == ["COMPANY:hp"]  # an acronym as written
    assert matcher.find("hp printers") == [] and matcher.find("the firm") == []


def test_names_never_match_inside_words_or_as_common_words(matcher):
    assert keys(matcher.find("Who directed Robert Young?")) == ["PERSON:robert young"]  # never 'obe' inside 'Robert'
    assert matcher.find("In what year was it founded?") == []  # 'year' is written in lower case: not a proper name
    assert keys(matcher.find("What happened in 2011?")) == ["DATE:2011"]
    assert matcher.find("Where was the oslo office?") == []  # a proper name written as a common word...
    assert keys(matcher.find("where was the oslo office")) == ["LOCATION:oslo"]  # ...unless the query is all lower case


def test_fuzzy_matches_only_strict_multi_word_names(matcher):
    [typo] = matcher.find("Who founded Norvik Systms?")
    assert (typo.key, typo.how) == ("COMPANY:norvik systems", "fuzzy") and 0.8 < typo.weight < 0.9
    assert matcher.find("Who sang with the Dandy Warhols?") == []  # not 'Andy Warhol'
    assert matcher.find("Who is Tim Brook?") == []  # two letters off a short name is another name
    assert SeedMatcher(graph_of([make("COMPANY", "Norvik Systems")]).entities, fuzzy=False).find("Norvik Systms") == []


def test_frequent_entities_seed_with_less_weight():
    hub, rare = make("DATE", "2011"), make("PERSON", "Ines Okafor")
    mentions = [(f"doc_{i}:00000", hub.id) for i in range(10)] + [("doc_0:00000", rare.id)]
    graph = graph_of([hub, rare], mentions)
    channel = GraphChannel(graph, GraphChannelSettings(passage_seeds=0, embedding_seeds=0))
    restart = channel.restart(channel.entity_seeds("What did Ines Okafor do in 2011?"), [])
    n, h, r = len(graph.chunk_ids), channel.entity_index(hub.id), channel.entity_index(rare.id)
    spec = graph.specificity()  # log(1 + N / df) / log(1 + N): 1 for one document of ten, 0.29 for all ten
    assert spec[r] == pytest.approx(1.0) and spec[h] == pytest.approx(np.log(2) / np.log(11))
    assert restart[n + r] == pytest.approx(restart[n + h] / spec[h])


# -- personalised PageRank --------------------------------------------------------------------------


def test_ppr_by_power_iteration_matches_networkx_on_a_hand_graph():
    import networkx as nx

    a, b, c = make("PERSON", "Mara Lindqvist"), make("COMPANY", "Norvik Systems"), make("PRODUCT", "Fjord X2")
    mentions = [("d1:00000", a.id), ("d1:00000", b.id), ("d2:00000", b.id), ("d2:00000", c.id), ("d3:00000", c.id)]
    graph = graph_of([a, b, c], mentions, [(a.id, "CEO_OF", b.id)])
    settings = GraphChannelSettings(cooccurrence_weight=0.0, idf=False, iterations=200, tolerance=1e-12, prune=0.0, explain_depth=4)
    ppr = PPRGraph(graph, settings)
    restart = np.zeros(len(graph.chunk_ids) + len(graph.entities))
    seed = len(graph.chunk_ids) + [e.id for e in graph.entities].index(a.id)
    restart[seed] = 1.0
    ranks = ppr.run(restart, 0.5, settings.iterations, settings.tolerance)
    g = nx.Graph()
    names = [*graph.chunk_ids, *(e.id for e in graph.entities)]
    coo = ppr.adjacency.tocoo()
    g.add_nodes_from(names)
    g.add_weighted_edges_from((names[i], names[j], float(w)) for i, j, w in zip(coo.row, coo.col, coo.data))
    expected = nx.pagerank(g, alpha=0.5, personalization={a.id: 1.0}, weight="weight", tol=1e-12, max_iter=500)
    assert ranks / ranks.sum() == pytest.approx(np.array([expected[n] for n in names]), abs=1e-5)
    # the chunk that mentions the seed, then the one its company reaches, then the one beyond
    channel = GraphChannel(graph, settings)
    hits = channel.search("What does Mara Lindqvist sell?", limit=3)
    assert [h.chunk_id for h in hits] == ["d1:00000", "d2:00000", "d3:00000"]
    assert hits[0].path == ("PERSON:mara lindqvist", "MENTIONED_IN", "d1:00000")
    assert hits[1].path == ("PERSON:mara lindqvist", "CEO_OF", "COMPANY:norvik systems", "MENTIONED_IN", "d2:00000")
    assert hits[2].entity == "PERSON:mara lindqvist" and hits[2].path[-1] == "d3:00000"


def test_passage_seeds_alone_rank_their_neighbourhood():
    a, b = make("PERSON", "Mara Lindqvist"), make("COMPANY", "Norvik Systems")
    data = EntityGraphData({a.id: a, b.id: b}, [("d1:00000", a.id), ("d1:00000", b.id), ("d2:00000", b.id)], [])
    graph = build_retrieval_graph(data, chunk_ids=["d3:00000"])  # d3 names no entity: a node all the same
    assert graph.chunk_ids == ["d1:00000", "d2:00000", "d3:00000"]
    channel = GraphChannel(graph)
    hits = channel.search("an unrelated question", passages=[("d1:00000", 0.9), ("d3:00000", 0.2)], limit=5)
    assert [h.chunk_id for h in hits][:2] == ["d1:00000", "d2:00000"]
    assert hits[0].entity == "" and hits[0].path == ("d1:00000",)
    assert hits[1].path == ("d1:00000", "MENTIONS", "COMPANY:norvik systems", "MENTIONED_IN", "d2:00000")
    assert channel.search("nothing at all", limit=5) == []


def test_synonym_edges_join_close_names_of_one_type():
    class Names:
        name = "fake-names"

        def embed(self, texts):
            table = {"Halden Foods": [1.0, 0.0, 0.0], "Haldens Food": [0.99, 0.1, 0.0], "Halden": [0.98, 0.0, 0.2],
                     "Pear": [0.0, 1.0, 0.0]}
            return [table[t] for t in texts]

    a, b, c, d = make("COMPANY", "Halden Foods"), make("COMPANY", "Haldens Food"), make("PRODUCT", "Halden"), make("COMPANY", "Pear")
    data = EntityGraphData({e.id: e for e in (a, b, c, d)}, [("x:00000", a.id), ("y:00000", b.id)], [])
    graph = build_retrieval_graph(data, embedder=Names())
    ids = [e.id for e in graph.entities]
    pairs = {(ids[i], ids[j]) for i, j in zip(*graph.synonyms.nonzero())}
    assert pairs == {(a.id, b.id), (b.id, a.id)}  # same type only, cosine >= 0.9
    assert graph.name_vectors.shape == (4, 3)
    hits = GraphChannel(graph, GraphChannelSettings(synonym_weight=1.0)).search("Who owns Haldens Food?", limit=2)
    assert [h.chunk_id for h in hits] == ["y:00000", "x:00000"]
    assert hits[1].path == ("COMPANY:haldens food", "SYNONYM", "COMPANY:halden foods", "MENTIONED_IN", "x:00000")


def test_saving_reads_the_name_vectors_from_their_file_before_the_transition_is_built(tmp_path, monkeypatch):
    """The default transition's build and the name vectors in memory at once set the retrieval graph's peak on a
    large index: the vectors are written first and read from the file from then on, with the same values."""
    import kgbuild.retrieve.ppr as ppr

    class Names:
        name = "fake-names"

        def embed(self, texts):
            return [[1.0, float(len(t)), 0.5] for t in texts]

    a, b = make("COMPANY", "Halden Foods"), make("PERSON", "Mara Lindqvist")
    graph = build_retrieval_graph(EntityGraphData({e.id: e for e in (a, b)}, [("x:00000", a.id), ("x:00000", b.id)], []),
                                  embedder=Names())
    vectors = np.array(graph.name_vectors)
    seen = []
    build = ppr.PPRGraph.__init__

    def observed(self, g, settings):
        seen.append(isinstance(g.name_vectors, np.memmap))
        build(self, g, settings)

    monkeypatch.setattr(ppr.PPRGraph, "__init__", observed)
    graph.save(tmp_path / "saved")
    assert seen == [True]
    assert isinstance(graph.name_vectors, np.memmap) and np.array_equal(graph.name_vectors, vectors)
    assert np.array_equal(RetrievalGraph.load(tmp_path / "saved").name_vectors, vectors)
    mapped = RetrievalGraph.load(tmp_path / "saved", map_vectors=True)  # what the communities' build loads
    assert isinstance(mapped.name_vectors, np.memmap) and np.array_equal(mapped.name_vectors, vectors)
    assert mapped.equals(RetrievalGraph.load(tmp_path / "saved"))


def test_name_vectors_are_built_into_a_mapped_file_whose_pages_are_let_go_of(tmp_path, monkeypatch):
    """With chunk rows, the names' vectors are written into a file in the rows' folder (not the heap), its pages let go
    of as blocks are written and read; the values, and the saved file, are those of a build in memory."""
    import kgbuild.retrieve.graph_matrix as graph_matrix
    from kgbuild.retrieve.graph_matrix import embed_names

    class Names:
        name = "fake-names"

        def embed(self, texts):
            return [[1.0, float(len(t)), float(sum(map(ord, t)) % 7)] for t in texts]

    names = [f"Name {i % 700}" for i in range(1000)]  # repeated names are copied, not embedded again
    calls = []
    in_memory, embedded = embed_names(names, Names())
    mapped, embedded_too = embed_names(names, Names(), out_file=tmp_path / "v.npy", after_block=lambda: calls.append(1))
    assert isinstance(mapped, np.memmap) and not isinstance(in_memory, np.memmap)
    assert embedded == embedded_too == 700 and np.array_equal(mapped, in_memory)
    assert len(calls) >= 700 // 256 + 1
    assert np.array_equal(np.load(tmp_path / "v.npy"), in_memory)

    released = []
    release = graph_matrix.release_mapped_pages
    monkeypatch.setattr(graph_matrix, "release_mapped_pages", lambda folder: released.append(Path(folder)) or release(folder))
    entities = [make("COMPANY", "Acme Corp"), make("PERSON", "Mara Lindqvist")]
    payloads = {f"d{i}:00000": {"chunk_id": f"d{i}:00000", "doc_id": f"d{i}", "title": f"Report {i}",
                                "text": "Mara Lindqvist runs Acme Corp.", "entity_ids": [e.id for e in entities]}
                for i in range(3)}
    graph = build_retrieval_graph(EntityGraphData({e.id: e for e in entities}, [], []), embedder=Names(),
                                  payloads=payloads, rows_folder=tmp_path / "rows")
    assert isinstance(graph.name_vectors, np.memmap) and Path(graph.name_vectors.filename).parent == tmp_path / "rows"
    assert released and set(released) == {tmp_path / "rows"}
    want, _ = embed_names([e.name for e in graph.entities], Names())
    assert np.array_equal(graph.name_vectors, want)
    graph.save(tmp_path / "saved")
    assert not (tmp_path / "rows").exists()
    assert np.array_equal(np.load(tmp_path / "saved" / "name_vectors.npy"), want)
    assert np.array_equal(RetrievalGraph.load(tmp_path / "saved").name_vectors, want)


def test_document_titles_are_entities_linked_from_the_chunks_that_name_them():
    payloads = {
        "a:00000": {"title": "The Toast of New Orleans", "text": "A 1950 musical film directed by Norman Taurog."},
        "b:00000": {"title": "Norman Taurog (director)", "text": "Born in Chicago, he directed films."},
        "c:00000": {"title": "Chicago", "text": "A city; it has THE toast  of new-orleans bar."},
    }
    entities, mentions = title_entities(payloads)
    keys = {e.id: e.key for e in entities.values()}
    assert sorted(keys.values()) == ["TITLE:chicago", "TITLE:norman taurog", "TITLE:toast of new orleans"]  # names normalised
    assert sorted((c, keys[e]) for c, e in mentions) == [
        ("a:00000", "TITLE:norman taurog"), ("a:00000", "TITLE:toast of new orleans"),
        ("b:00000", "TITLE:norman taurog"),  # one-word titles link only their own document: 'Chicago' is not linked from b
        ("c:00000", "TITLE:chicago"), ("c:00000", "TITLE:toast of new orleans"),  # casefolded, on word boundaries
    ]
    graph = build_retrieval_graph(EntityGraphData(), payloads={c: payloads[c] for c in ("a:00000", "b:00000")})
    hits = GraphChannel(graph).search("When was the director of The Toast of New Orleans born?", limit=2)
    assert [h.chunk_id for h in hits] == ["a:00000", "b:00000"]
    assert hits[1].path == ("TITLE:toast of new orleans", "MENTIONED_IN", "a:00000", "MENTIONS", "TITLE:norman taurog",
                            "MENTIONED_IN", "b:00000")


def test_a_build_from_the_stores_pages_equals_one_from_payloads_in_memory_and_stores_the_same_files(tmp_path):
    """The ingest builds from ``VectorSink.payload_pages`` (spilled to disk, in the store's order), never holding every
    payload: the graph and every stored file must be those of a build over the payloads as one dict."""
    import random

    entities = [make("COMPANY", "Acme Corp"), make("PERSON", "Mara Lindqvist"), make("PRODUCT", "Rocket Skates")]
    payloads = {}
    for d in range(30):
        for position in range(3):
            chunk = f"doc_{d:03d}:{position:05d}"
            named = [e.id for e in entities if (d + position) % (1 + entities.index(e)) == 0]
            payloads[chunk] = {"chunk_id": chunk, "doc_id": f"doc_{d:03d}", "title": f"Report {d % 7} of Acme Corp",
                               "text": f"Mara Lindqvist said Acme Corp sells Rocket Skates, part {position}.",
                               "entity_ids": named}
    data = EntityGraphData({e.id: e for e in entities}, [], [])
    in_memory = build_retrieval_graph(data, chunk_ids=sorted(payloads), payloads=payloads)
    shuffled = list(payloads.values())
    random.Random(7).shuffle(shuffled)
    pages = [shuffled[i:i + 8] for i in range(0, len(shuffled), 8)]
    streamed = build_retrieval_graph(data, chunk_ids=sorted(payloads), payload_pages=iter(pages),
                                     rows_folder=tmp_path / "rows")
    assert streamed.equals(in_memory)
    assert [n.df for n in streamed.entities] == [n.df for n in in_memory.entities]
    in_memory.save(tmp_path / "a")
    streamed.save(tmp_path / "b")
    assert not (tmp_path / "rows").exists()  # the rows were moved into the saved folder
    for name in ("payloads.jsonl", "payload_offsets.npy", "payload_ids.json", "plain.txt", "tokens.txt", "nodes.json",
                 "matrices.npz", "name_vectors.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert RetrievalGraph.load(tmp_path / "b").equals(in_memory)


# -- the stored graph through ingest ----------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory, business_schema, embedder):
    from kgbuild.pipeline import ingest

    root = tmp_path_factory.mktemp("retrieval-graph")
    settings = Settings(out_dir=root / "index", device="cpu")
    ingest(corpus_folder(root / "corpus"), settings, extractor=gazetteer(business_schema), embedder=embedder)
    return root, settings


def fresh_build(corpus, tmp_path, business_schema, embedder) -> RetrievalGraph:
    from kgbuild.pipeline import ingest

    settings = Settings(out_dir=tmp_path / "fresh", device="cpu")
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    return RetrievalGraph.load(retrieval_dir(settings.out_dir))


def test_ingest_stores_the_retrieval_graph_and_it_equals_a_fresh_build_after_change_delete_add(tmp_path, business_schema, embedder,
                                                                                               monkeypatch):
    from kgbuild.pipeline import ingest

    corpus = corpus_folder(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "index", device="cpu")
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    stored = RetrievalGraph.load(retrieval_dir(settings.out_dir))
    assert stored is not None and len(stored.chunk_ids) == 32 and stored.relations.nnz > 0 and stored.name_vectors.shape[1] == 384
    lines = (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    # change one passage, delete one, add one (a new file)
    changed = lines[0].replace("Mara Lindqvist", "Ines Okafor")
    (corpus / "corpus.jsonl").write_text("\n".join([changed, *lines[2:]]) + "\n", encoding="utf-8")
    (corpus / "extra.jsonl").write_text(lines[1] + "\n", encoding="utf-8")
    report = ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    assert report.documents_read >= 2
    updated = RetrievalGraph.load(retrieval_dir(settings.out_dir))
    assert updated.updated and not stored.updated  # brought up to date with what the run wrote, not built again
    assert not updated.equals(stored)
    fresh = fresh_build(corpus, tmp_path, business_schema, embedder)
    assert updated.equals(fresh)
    # a new document whose two-word title an unchanged passage names: the update links that passage to it
    (corpus / "new.jsonl").write_text('{"id": "n1", "title": "Halden Foods", "text": "A profile of a company."}\n',
                                      encoding="utf-8")
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    updated = RetrievalGraph.load(retrieval_dir(settings.out_dir))
    title = next(i for i, e in enumerate(updated.entities) if e.key == "TITLE:halden foods")
    linked = {updated.chunk_ids[c] for c in updated.chunk_entity[:, title].nonzero()[0]}
    assert len(linked) > 1 and updated.updated
    assert updated.equals(fresh_build(corpus, tmp_path / "2", business_schema, embedder))
    # a file removed (kgbuild remove), then an ingest that writes nothing: updated with the removal alone
    from kgbuild.index import Index

    Index(settings).remove([corpus / "new.jsonl"])
    (corpus / "new.jsonl").unlink()
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    updated = RetrievalGraph.load(retrieval_dir(settings.out_dir))
    assert updated.updated and updated.equals(fresh)
    # a run that writes more chunks than it keeps payloads of builds the graph from the stores
    monkeypatch.setattr("kgbuild.pipeline.WRITTEN_LIMIT", 0)
    (corpus / "new.jsonl").write_text('{"id": "n2", "title": "Crispo", "text": "An oat cracker."}\n', encoding="utf-8")
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    built = RetrievalGraph.load(retrieval_dir(settings.out_dir))
    assert not built.updated and len(built.chunk_ids) == len(fresh.chunk_ids) + 1
    (corpus / "new.jsonl").unlink()
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    assert RetrievalGraph.load(retrieval_dir(settings.out_dir)).equals(fresh)
    # nothing changed: the stored graph is kept as it is
    before = (retrieval_dir(settings.out_dir) / "meta.json").stat().st_mtime_ns
    ingest(corpus, settings, extractor=gazetteer(business_schema), embedder=embedder)
    assert (retrieval_dir(settings.out_dir) / "meta.json").stat().st_mtime_ns == before


def test_an_update_that_cannot_account_for_every_change_gives_way_to_a_build(corpus_index):
    """A changed document the run did not write (it crashed after writing it), or points in the vector store that
    no document accounts for (a LlamaIndex writer): no update, the caller builds from the stores."""
    from kgbuild.index import Index
    from kgbuild.retrieve.graph_matrix import document_signatures, extraction_signature, update_retrieval_graph

    _, settings = corpus_index
    index = Index.open_existing(settings)
    folder = retrieval_dir(settings.out_dir)
    stored = RetrievalGraph.load(folder)
    documents = document_signatures(index.state)
    extraction = extraction_signature(index.state)
    with index.stores() as stores:
        data = stores.graph.entity_graph(mentions=False)
        points = stores.vectors.count()
    same = update_retrieval_graph(folder, data, {}, documents, extraction, points, chunk_ids=stored.chunk_ids)
    assert same is not None and same.chunk_ids == stored.chunk_ids and (same.chunk_entity != stored.chunk_entity).nnz == 0
    first = sorted(documents)[0]
    assert update_retrieval_graph(folder, data, {}, {**documents, first: "another"}, extraction, points) is None
    assert update_retrieval_graph(folder, data, {}, documents, extraction, points + 1) is None
    assert update_retrieval_graph(folder, data, {}, documents, "another extraction", points) is None


def test_names_already_embedded_are_not_embedded_again(corpus_index):
    from kgbuild.index import Index

    class Counting:
        name = None

        def __init__(self, inner):
            self.inner, self.texts = inner, 0
            self.name = inner.name

        def embed(self, texts):
            self.texts += len(texts)
            return self.inner.embed(texts)

    _, settings = corpus_index
    index = Index.open_existing(settings)
    stored = RetrievalGraph.load(retrieval_dir(settings.out_dir))
    from kgbuild.embed import SentenceTransformerEmbedder

    counting = Counting(SentenceTransformerEmbedder(device="cpu"))
    with index.stores() as stores:
        payloads = {p["chunk_id"]: p for p in stores.vectors.export().points.values()}
        again = build_retrieval_graph(stores.graph.entity_graph(), embedder=counting, reuse_from=retrieval_dir(settings.out_dir),
                                      chunk_ids=stored.chunk_ids, signature=stored.signature, payloads=payloads)
    assert counting.texts == 0 and again.equals(stored)


def test_hits_carry_explanations(corpus_index, business_schema, embedder):
    _, settings = corpus_index
    with HybridRetriever(settings, extractor=gazetteer(business_schema), embedder=embedder, vector=False, bm25=False) as retriever:
        hits = retriever.retrieve(QUESTION, k=3)
    found = [passage(h) for h in hits]
    assert found[0] == "p01" and "p02" in found
    for hit in hits:
        [reason] = hit.reasons
        assert reason.channel == "graph" and reason.path and reason.path[-1] == hit.chunk_id
    answer = hits[found.index("p02")].reasons[0]  # from the query's entity, through her company (a relation, or a chunk naming both)
    assert answer.entity == answer.path[0] == "PERSON:mara lindqvist" and "COMPANY:norvik systems" in answer.path


def test_an_index_without_a_retrieval_folder_still_answers(tmp_path, corpus_index, business_schema, embedder, caplog):
    root, settings = corpus_index
    old = tmp_path / "old-index"
    shutil.copytree(settings.out_dir, old)
    shutil.rmtree(retrieval_dir(old))
    old_settings = Settings(out_dir=old, device="cpu")
    with caplog.at_level("WARNING", logger="kgbuild"):
        with HybridRetriever(old_settings, embedder=embedder, vector=False, bm25=False) as retriever:
            hits = retriever.retrieve(QUESTION, k=3)
    assert passage(hits[0]) == "p01" and "p02" in [passage(h) for h in hits]
    assert "no retrieval graph" in caplog.text and "saved in" in caplog.text
    rebuilt = RetrievalGraph.load(retrieval_dir(old))
    assert rebuilt is not None and rebuilt.equals(RetrievalGraph.load(retrieval_dir(settings.out_dir)))


@pytest.mark.neo4j
def test_the_retrieval_graph_from_neo4j_equals_the_networkx_one_and_a_fresh_build(neo4j_server, tmp_path, business_schema, embedder,
                                                                                  monkeypatch):
    """Built through the Protocol, the graph is the same for both stores, after a change and a deletion too."""
    import neo4j

    from kgbuild.pipeline import ingest

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])

    def clear() -> None:
        with neo4j.GraphDatabase.driver(neo4j_server["uri"], auth=(neo4j_server["user"], neo4j_server["password"])) as driver:
            driver.execute_query("MATCH (n) DETACH DELETE n", database_=neo4j_server["database"])

    corpus = corpus_folder(tmp_path / "corpus")
    on_neo4j = Settings(out_dir=tmp_path / "neo4j", device="cpu", graph="neo4j", neo4j_uri=neo4j_server["uri"],
                        neo4j_user=neo4j_server["user"], neo4j_database=neo4j_server["database"])
    clear()
    ingest(corpus, on_neo4j, extractor=gazetteer(business_schema), embedder=embedder)
    lines = (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (corpus / "corpus.jsonl").write_text("\n".join([lines[0].replace("Mara Lindqvist", "Ines Okafor"), *lines[2:]]) + "\n",
                                         encoding="utf-8")
    ingest(corpus, on_neo4j, extractor=gazetteer(business_schema), embedder=embedder)
    from_neo4j = RetrievalGraph.load(retrieval_dir(on_neo4j.out_dir))
    clear()
    on_networkx = Settings(out_dir=tmp_path / "networkx", device="cpu")
    ingest(corpus, on_networkx, extractor=gazetteer(business_schema), embedder=embedder)
    assert from_neo4j.equals(RetrievalGraph.load(retrieval_dir(on_networkx.out_dir)))


def test_the_graph_counts_most_in_the_fusion_when_the_query_names_a_document_s_title(corpus_index, business_schema, embedder):
    from kgbuild.retrieve.hybrid import CHANNEL_WEIGHTS, WITHOUT_TITLE_WEIGHTS

    _, settings = corpus_index
    with HybridRetriever(settings, extractor=gazetteer(business_schema), embedder=embedder) as retriever:
        retriever.retrieve("What does Norvik Systems hardware include?", k=3)  # the title of p02
        assert retriever.fusion_weights == CHANNEL_WEIGHTS and CHANNEL_WEIGHTS["graph"] > CHANNEL_WEIGHTS["vector"]
        hits = retriever.retrieve(QUESTION, k=3)  # names a person, no title
        assert retriever.fusion_weights == WITHOUT_TITLE_WEIGHTS
        assert WITHOUT_TITLE_WEIGHTS["graph"] < CHANNEL_WEIGHTS["graph"] and WITHOUT_TITLE_WEIGHTS["vector"] == WITHOUT_TITLE_WEIGHTS["bm25"]
        assert passage(hits[0]) == "p01"
    same = {"vector": 1.0, "graph": 2.0, "bm25": 1.0}
    with HybridRetriever(settings, extractor=gazetteer(business_schema), embedder=embedder, weights=same) as retriever:
        retriever.retrieve(QUESTION, k=3)
        assert retriever.fusion_weights == same  # weights given alone serve both kinds of query
