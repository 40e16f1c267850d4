"""The HTML graph view: what it draws, that it is self-contained, and how it names an unknown entity."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

_CONFORMANCE = str(Path(__file__).resolve().parent / "conformance")
if _CONFORMANCE not in sys.path:
    sys.path.insert(0, _CONFORMANCE)

import builders as b  # noqa: E402

from kgbuild.connectors.networkx_graph import NetworkXGraphSink, load_graph  # noqa: E402
from kgbuild.types import STRUCTURAL_EDGES  # noqa: E402
from kgbuild.errors import ConfigError  # noqa: E402
from kgbuild.explore import write_graph_html  # noqa: E402

pytest.importorskip("pyvis")

# anything that would make a browser fetch: <script src=http..>, <link href=//..>, @import url(https..)
FETCH = re.compile(
    r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?\s*(https?:)?//|@import\s+(url\()?\s*["']?\s*(https?:)?//""",
    re.IGNORECASE,
)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """The shared business corpus, written by the NetworkX sink and read back from graph.json."""
    path = tmp_path_factory.mktemp("index") / "graph.json"
    sink = NetworkXGraphSink(path)
    sink.open()
    sink.write(b.corpus_batch())
    sink.write(b.hostile_batch())
    sink.close()
    return load_graph(path)


def page_data(html_text: str) -> tuple[list[dict], list[dict]]:
    nodes = re.search(r"nodes = new vis\.DataSet\((\[.*?\])\);", html_text, re.DOTALL)
    edges = re.search(r"edges = new vis\.DataSet\((\[.*?\])\);", html_text, re.DOTALL)
    assert nodes and edges, "the page holds no vis DataSets"
    return json.loads(nodes.group(1)), json.loads(edges.group(1))


def entity_names(graph) -> dict[str, str]:
    return {d["key"]: d["name"] for _, d in graph.nodes(data=True) if d["kind"] == "Entity"}


def relation_edges(graph) -> list[tuple[str, str, str]]:
    return [(h, t, d["type"]) for h, t, d in graph.edges(data=True) if d["type"] not in STRUCTURAL_EDGES]


def assert_self_contained(html_text: str) -> None:
    assert not FETCH.search(html_text), FETCH.search(html_text).group(0)
    for attrs in SCRIPT_TAG.findall(html_text):
        assert "src" not in attrs.lower(), attrs  # every script is inline
    assert "vis.Network" in html_text and "vis-network" in html_text.lower()  # the library itself is in the page


def test_whole_graph(graph, tmp_path):
    out = tmp_path / "view" / "graph.html"
    summary = write_graph_html(graph, out)
    names = entity_names(graph)
    relations = relation_edges(graph)
    assert summary.path == out and out.exists()
    assert summary.entities == summary.nodes == len(names) == 28
    assert summary.relations == summary.edges == len(relations) == 10
    assert not summary.truncated and summary.left_out == 0 and summary.center is None

    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    nodes, edges = page_data(text)
    assert len(nodes) == len(names) and len(edges) == len(relations)
    labels = {n["label"] for n in nodes}
    assert set(names.values()) <= labels
    for name in ("Apple", "Tim Cook", "Vision Pro", "Samsung Electronics", "Acme Corp."):
        assert name in labels
        assert json.dumps(name)[1:-1] in text  # embedded in the page
    assert sorted(e["label"] for e in edges) == sorted(t for _, _, t in relations)
    # colour by type: one colour per type, different types differ
    by_type: dict[str, set[str]] = {}
    for n in nodes:
        entity_type = re.search(r"type: (\w+)", n["title"]).group(1)
        by_type.setdefault(entity_type, set()).add(n["color"])
    assert all(len(colors) == 1 for colors in by_type.values())
    assert len({next(iter(c)) for c in by_type.values()}) == len(by_type)
    # tooltips carry type, aliases and mention count; edges their confidence and evidence count
    apple = next(n for n in nodes if n["label"] == "Apple")
    assert "type: COMPANY" in apple["title"] and "mentions: " in apple["title"] and "aliases: " in apple["title"]
    assert "Apple Inc." in apple["title"]
    ceo = next(e for e in edges if e["label"] == "CEO_OF")
    assert "confidence: 0.90" in ceo["title"] and "evidence: 1" in ceo["title"]


def test_one_hop_around_an_entity(graph, tmp_path):
    out = tmp_path / "apple.html"
    summary = write_graph_html(graph, out, entity_key="COMPANY:Apple Inc.", hops=1)
    assert summary.center == "COMPANY:apple"
    # Apple's relation neighbours, either direction: Tim Cook (CEO_OF), Vision Pro (MANUFACTURES), Samsung (COMPETES_WITH x2)
    assert (summary.nodes, summary.entities, summary.edges, summary.relations) == (4, 4, 4, 4)
    nodes, edges = page_data(out.read_text(encoding="utf-8"))
    assert {n["label"] for n in nodes} == {"Apple", "Tim Cook", "Vision Pro", "Samsung"}
    assert sorted(e["label"] for e in edges) == ["CEO_OF", "COMPETES_WITH", "COMPETES_WITH", "MANUFACTURES"]
    assert_self_contained(out.read_text(encoding="utf-8"))

    two = write_graph_html(graph, tmp_path / "apple2.html", entity_key="company:APPLE", hops=2)
    assert two.entities == 5 and two.relations == 5  # + $3,499 through Vision Pro PRICED_AT

    alone = write_graph_html(graph, tmp_path / "apple0.html", entity_key="COMPANY:Apple", hops=0)
    assert (alone.nodes, alone.edges) == (1, 0)


def test_chunks_and_documents(graph, tmp_path):
    out = tmp_path / "apple-chunks.html"
    summary = write_graph_html(graph, out, entity_key="COMPANY:Apple", include_chunks=True)
    keys = {"COMPANY:apple", "PERSON:tim cook", "PRODUCT:vision pro", "COMPANY:samsung"}
    pairs = {(c, e) for e, d in graph.nodes(data=True) if d["kind"] == "Entity" and d["key"] in keys
             for c, _, x in graph.in_edges(e, data=True) if x["type"] == "MENTIONS"}
    chunk_ids = {c for c, _ in pairs}
    doc_ids = {graph.nodes[c]["doc_id"] for c in chunk_ids}
    mention_count = sum(1 for c, e in pairs for _ in range(graph.number_of_edges(c, e)))
    assert mention_count > len(pairs)  # some chunk mentions an entity twice: drawn once
    assert summary.entities == 4
    assert summary.nodes == 4 + len(chunk_ids) + len(doc_ids)
    nodes, edges = page_data(out.read_text(encoding="utf-8"))
    assert len(nodes) == summary.nodes and len(edges) == summary.edges
    titles = [e["title"] for e in edges]
    assert sum(t.startswith("MENTIONS") for t in titles) == len(pairs)  # one edge per chunk and entity
    assert sum(t == "HAS_CHUNK" for t in titles) == len(chunk_ids)
    assert {n["label"] for n in nodes} >= {"news/apple.txt", "Apple"}
    assert_self_contained(out.read_text(encoding="utf-8"))


def test_truncation_keeps_highest_degree(graph, tmp_path):
    summary = write_graph_html(graph, tmp_path / "small.html", max_nodes=5)
    assert summary.truncated and summary.nodes == 5 and summary.total_nodes == 28 and summary.left_out == 23
    assert "left out" in summary.describe()
    nodes, edges = page_data((tmp_path / "small.html").read_text(encoding="utf-8"))
    labels = {n["label"] for n in nodes}
    assert "Apple" in labels and "Vision Pro" in labels  # degree 4 and 3
    assert len(edges) == summary.edges
    around = write_graph_html(graph, tmp_path / "around.html", entity_key="LOCATION:Seoul", max_nodes=1)
    assert around.nodes == 1 and not around.truncated  # Seoul has no relations


def test_unknown_entity_is_a_config_error(graph, tmp_path):
    with pytest.raises(ConfigError) as info:
        write_graph_html(graph, tmp_path / "x.html", entity_key="COMPANY:Samsng")
    assert "COMPANY:samsng" in str(info.value) and "COMPANY:samsung" in str(info.value)
    with pytest.raises(ConfigError, match="COMPANY:apple"):  # right name, wrong type
        write_graph_html(graph, tmp_path / "x.html", entity_key="PERSON:Apple")
    with pytest.raises(ConfigError, match="TYPE:NAME"):
        write_graph_html(graph, tmp_path / "x.html", entity_key="Apple")
    assert not (tmp_path / "x.html").exists()


def test_corpus_text_cannot_become_markup(tmp_path):
    name = "</script><script>alert(1)</script> <b>Corp</b> href"
    text = f"Filing: {name} sued Globex.\n"
    batch = b.make_batch({"x.txt": text}, [("x.txt", "COMPANY", name), ("x.txt", "COMPANY", "Globex")],
                         [("x.txt", name, "COMPETES_WITH", "Globex")])
    sink = NetworkXGraphSink(tmp_path / "graph.json")
    sink.open()
    sink.write(batch)
    out = tmp_path / "x.html"
    summary = write_graph_html(sink.graph, out, include_chunks=True)
    page = out.read_text(encoding="utf-8")
    assert summary.entities == 2
    assert "alert(1)" in page and "<script>alert(1)" not in page and "<b>Corp" not in page
    assert "innerHTML = nodeData" not in page  # pyvis's HTML-tooltip template stays off
    nodes, _ = page_data(page)
    assert any(n["label"].startswith("</script>") for n in nodes)  # shown as text, exactly


def test_pipeline_index(tmp_path, gazetteer, embedder):
    """The view of a graph.json written by a real ingest."""
    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino.", encoding="utf-8")
    settings = Settings(out_dir=tmp_path / "out")
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    graph = load_graph(Path(settings.out_dir) / "graph.json")
    summary = write_graph_html(graph, tmp_path / "g.html", entity_key="PERSON:tim cook")
    assert summary.entities >= 2 and summary.relations >= 1
    assert "Tim Cook" in (tmp_path / "g.html").read_text(encoding="utf-8")
