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


# -- the entity map (the default view): communities, co-mentions, the page in Chromium ---------------------


@pytest.fixture(scope="module")
def topics_index(tmp_path_factory, business_schema):
    """The communities' topics corpus (cars, devices, food: three communities), ingested on the embedded defaults."""
    from crash_runner import HashEmbedder
    from test_communities import CLASSES, ENTITIES, RELATIONS, corpus_files, settings_for
    from test_incremental import write

    from kgbuild.extract.gazetteer import GazetteerExtractor
    from kgbuild.pipeline import ingest

    root = tmp_path_factory.mktemp("topics")
    settings = settings_for(root / "out")
    extractor = GazetteerExtractor(business_schema, ENTITIES, RELATIONS, CLASSES, max_tokens=64)
    ingest(write(root / "corpus", corpus_files()), settings, extractor=extractor, embedder=HashEmbedder())
    return settings


DREW = re.compile(r"drew (\d+) nodes and (\d+) edges \((\d+) relations, (\d+) co-mentions\), (\d+) labelled")


def run_view(out_dir, html, *args) -> tuple[re.Match, str]:
    from typer.testing import CliRunner

    from kgbuild.cli import app

    result = CliRunner().invoke(app, ["graph", "view", "--out", str(out_dir), "--html", str(html), *args])
    assert result.exit_code == 0, result.output
    drew = DREW.search(result.output)
    assert drew, result.output
    return drew, result.output


def map_data(html_text: str) -> dict:
    found = re.search(r'<script type="application/json" id="kg-data">(.*?)</script>', html_text, re.DOTALL)
    assert found, "the page holds no kg-data"
    return json.loads(found.group(1))


def assert_map_self_contained(html_text: str) -> None:
    assert not FETCH.search(html_text), FETCH.search(html_text).group(0)
    for attrs in SCRIPT_TAG.findall(html_text):
        assert "src" not in attrs.lower(), attrs
    assert "vis.Network" in html_text and "vis-network" in html_text.lower()


def test_map_draws_communities_relations_and_comentions(topics_index, tmp_path):
    from kgbuild.communities import load_communities
    from test_communities import TOPICS

    html = tmp_path / "map.html"
    drew, output = run_view(topics_index.out_dir, html)
    nodes, edges, relations, comentions, labelled = map(int, drew.groups())
    top = load_communities(topics_index).at_level(0)
    assert f"{len(top)} communities" in output and relations > 0 and comentions > 0 and edges == relations + comentions
    text = html.read_text(encoding="utf-8")
    assert_map_self_contained(text)
    data = map_data(text)
    assert (data["drawn"], data["drawnEdges"]) == (nodes, edges)
    drawn = data["nodes"][: data["drawn"]]
    names = {n[0] for n in drawn}
    assert names >= {n for topic in TOPICS.values() for values in topic.values() for n in values}  # all 24 are drawn
    assert sum(n[5] for n in drawn) == labelled == len(drawn)  # fewer than --labels: all named
    assert [c["title"] for c in data["communities"]] == [c.title for c in top] and data["clusters"] == len(top) >= 3
    # a community (a colour) holds one topic's entities
    topic_of_name = {n: t for t, topic in TOPICS.items() for values in topic.values() for n in values}
    for k in range(len(top)):
        assert len({topic_of_name[n[0]] for n in drawn if n[4] == k and n[0] in topic_of_name}) == 1
    ceo = [e for e in data["edges"][:edges] if e[3] == 1 and "Tim Cook CEO_OF Apple Inc." in e[2]]
    assert ceo and "co-mentioned in" in ceo[0][2]
    # one palette for types, with the Neo4j Browser style
    from kgbuild.connectors.neo4j.browser import grass_rules

    for entity_type in ("COMPANY", "PERSON", "PRODUCT", "LOCATION"):
        assert data["typeColours"][entity_type] == grass_rules()[f"node.{entity_type}"]["color"].lower()

    few, _ = run_view(topics_index.out_dir, tmp_path / "few.html", "--labels", "5", "--communities", "2", "--max-nodes", "10")
    assert int(few.group(1)) == 10 and 5 <= int(few.group(5)) <= 7  # + each cluster's most central member
    assert map_data((tmp_path / "few.html").read_text(encoding="utf-8"))["clusters"] == 2


def test_map_around_an_entity_shows_comentioned_entities(topics_index, tmp_path):
    html = tmp_path / "tesla.html"
    drew, output = run_view(topics_index.out_dir, html, "--entity", "company:tesla", "--hops", "1")
    assert "around COMPANY:tesla" in output
    data = map_data(html.read_text(encoding="utf-8"))
    drawn = {n[0] for n in data["nodes"][: data["drawn"]]}
    # related (CEO_OF, MANUFACTURES) and co-mentioned (the rival, the other product, the places): the cars topic
    assert {"Tesla", "Elon Musk", "Model Y", "Volkswagen AG", "ID.7", "Austin"} <= drawn
    assert not drawn & {"Apple Inc.", "Nestle"}
    assert data["center"] == 0 and data["nodes"][0][0] == "Tesla"
    assert int(drew.group(3)) >= 2 and int(drew.group(4)) >= 3
    none, _ = run_view(topics_index.out_dir, tmp_path / "t0.html", "--entity", "COMPANY:Tesla", "--hops", "0")
    assert (int(none.group(1)), int(none.group(2))) == (1, 0)


def test_map_without_communities_falls_back_to_the_best_connected(topics_index, tmp_path):
    import shutil

    from kgbuild.communities.model import communities_dir

    old = tmp_path / "old"
    shutil.copytree(topics_index.out_dir, old)
    shutil.rmtree(communities_dir(old))
    drew, output = run_view(old, tmp_path / "old.html", "--max-nodes", "8")
    assert "has no communities" in output and int(drew.group(1)) == 8
    data = map_data((tmp_path / "old.html").read_text(encoding="utf-8"))
    assert data["communities"] == [] and data["colourBy"] == "type" and data["note"]


def test_map_in_chromium(topics_index, tmp_path):
    """The page in a real headless Chromium: no console errors, the labels vis-network holds, the node count the
    command printed, the colour switch, the search box, and a click that expands a node."""
    from test_neo4j_browser import CHROMIUM, CHROMIUM_ARGS, _keep_screenshot, _playwright_or_skip

    sync_playwright = _playwright_or_skip()
    html = tmp_path / "map.html"
    drew, _ = run_view(topics_index.out_dir, html, "--max-nodes", "18", "--labels", "12")
    nodes, edges = int(drew.group(1)), int(drew.group(2))
    data = map_data(html.read_text(encoding="utf-8"))
    screenshot = tmp_path / "graph-view.png"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(20_000)
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
            page.goto(html.as_uri())
            page.wait_for_function("window.kgbuildView !== undefined")
            page.wait_for_timeout(300)
            page.screenshot(path=str(screenshot))
            state = page.evaluate("""() => { const v = kgbuildView; return {
                nodes: v.nodes.length, edges: v.edges.length,
                labels: v.nodes.get().filter(n => n.label).map(n => n.label),
                counts: document.getElementById('kg-counts').textContent,
                legend: document.getElementById('kg-legend').textContent,
                colours: v.nodes.get().map(n => n.color.background) }; }""")
            assert (state["nodes"], state["edges"]) == (nodes, edges)
            assert f"{nodes} nodes, {edges} edges" in state["counts"]
            assert len(state["labels"]) == int(drew.group(5)) and {"Tesla", "Apple Inc.", "Nestle"} & set(state["labels"])
            assert all(c["title"] in state["legend"] for c in data["communities"][: data["clusters"]])
            assert set(state["colours"]) <= set(data["palette"]) | {data["other"]}
            # colour by type: the style's colours, and the legend names the types
            page.locator("input[name=kg-colour][value=type]").check()
            by_type = page.evaluate("() => kgbuildView.nodes.get().map(n => [n.id, n.color.background])")
            assert all(colour == data["typeColours"][data["nodes"][i][1]] for i, colour in by_type)
            assert "COMPANY" in page.locator("#kg-legend").inner_text()
            # search: an entity that is drawn, then one only the embedded neighbourhoods hold
            page.locator("#kg-search").fill("tim co")
            page.locator("#kg-search").press("Enter")
            selected = page.evaluate("() => kgbuildView.network.getSelectedNodes().map(i => kgbuildView.data.nodes[i][0])")
            assert selected == ["Tim Cook"], selected
            assert "Tim Cook" in page.locator("#kg-found").inner_text()
            # click a node that has neighbours not drawn: they join the view
            target = page.evaluate("""() => { const v = kgbuildView;
                const id = v.nodes.getIds().find(i => v.hidden(i).length > 0);
                v.network.fit({ nodes: [id], animation: false }); v.network.redraw();
                const p = v.network.canvasToDOM(v.network.getPositions([id])[id]);
                const box = document.getElementById('kg-network').getBoundingClientRect();
                return { id, more: v.hidden(id).length, x: box.left + p.x, y: box.top + p.y }; }""")
            page.mouse.click(target["x"], target["y"])
            page.wait_for_timeout(200)
            after = page.evaluate("() => [kgbuildView.nodes.length, kgbuildView.edges.length]")
            assert after[0] == nodes + target["more"] and after[1] > edges, (after, target)
            assert page.locator("#kg-info").is_visible()
        finally:
            browser.close()
    _keep_screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000
    assert not problems, problems
