"""kgbuild's graph in Neo4j Browser: the packaged GRASS style and starter queries, in a real headless Chromium.

Needs the dev server (``scripts/neo4j-dev.sh start``, which also serves Neo4j Browser at
http://127.0.0.1:7474/browser/) and Debian's Chromium at /usr/bin/chromium
(``scripts/install-browser.sh``) driven by Python ``playwright``. **Clears the database.**

Without Chromium or playwright the browser test is skipped, except in CI (``CI`` set),
where it fails. Set ``KGBUILD_SCREENSHOT_DIR`` to keep the screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kgbuild.connectors.neo4j.sink import Neo4jGraphSink
from kgbuild.connectors.neo4j.browser import grass_path, grass_rules, grass_text, starter_queries, starter_query

_CONFORMANCE = str(Path(__file__).resolve().parent / "conformance")
if _CONFORMANCE not in sys.path:
    sys.path.insert(0, _CONFORMANCE)

from builders import make_batch  # noqa: E402

pytestmark = [pytest.mark.neo4j, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
BROWSER_URL = os.environ.get("NEO4J_BROWSER_URL", "http://127.0.0.1:7474/browser/")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_MS = 20_000  # any one wait in the browser
TEST_BUDGET_S = 90.0

DOCS = {
    "news/apple.txt": (
        "Apple Inc. CEO Tim Cook unveiled the Vision Pro in Cupertino on June 5, 2023.\n"
        "The Vision Pro costs $2,499.\n"
        "Apple Inc. competes with Meta, which makes the Quest 5.\n"
    ),
    "news/results.txt": (
        "Apple Inc. reported record revenue in Europe.\n"
        "Tim Cook said Apple Inc. will sell the Vision Pro in Seoul.\n"
    ),
    "news/acme.txt": (
        "Acme Corp, led by CEO Jane Park, will launch Rocket Skates.\n"
        "Acme Corp competes with Globex Ltd.\n"
    ),
}
MENTIONS = [
    ("news/apple.txt", "COMPANY", "Apple Inc."),
    ("news/apple.txt", "PERSON", "Tim Cook"),
    ("news/apple.txt", "PRODUCT", "Vision Pro"),
    ("news/apple.txt", "LOCATION", "Cupertino"),
    ("news/apple.txt", "DATE", "June 5, 2023"),
    ("news/apple.txt", "MONEY", "$2,499"),
    ("news/apple.txt", "COMPANY", "Meta"),
    ("news/apple.txt", "PRODUCT", "Quest 5"),
    ("news/results.txt", "COMPANY", "Apple Inc."),
    ("news/results.txt", "LOCATION", "Europe"),
    ("news/results.txt", "PERSON", "Tim Cook"),
    ("news/results.txt", "PRODUCT", "Vision Pro"),
    ("news/results.txt", "LOCATION", "Seoul"),
    ("news/acme.txt", "COMPANY", "Acme Corp"),
    ("news/acme.txt", "PERSON", "Jane Park"),
    ("news/acme.txt", "PRODUCT", "Rocket Skates"),
    ("news/acme.txt", "COMPANY", "Globex Ltd."),
]
RELATIONS = [
    ("news/apple.txt", "Tim Cook", "CEO_OF", "Apple Inc."),
    ("news/apple.txt", "Apple Inc.", "MANUFACTURES", "Vision Pro"),
    ("news/apple.txt", "Vision Pro", "PRICED_AT", "$2,499"),
    ("news/apple.txt", "Apple Inc.", "COMPETES_WITH", "Meta"),
    ("news/apple.txt", "Meta", "MANUFACTURES", "Quest 5"),
    ("news/results.txt", "Tim Cook", "CEO_OF", "Apple Inc."),
    ("news/results.txt", "Apple Inc.", "MANUFACTURES", "Vision Pro"),
    ("news/acme.txt", "Jane Park", "CEO_OF", "Acme Corp"),
    ("news/acme.txt", "Acme Corp", "MANUFACTURES", "Rocket Skates"),
    ("news/acme.txt", "Acme Corp", "COMPETES_WITH", "Globex Ltd."),
]
FOCUS = "Apple Inc."  # the entity whose neighbourhood the browser shows
PARAMS = {
    "type": "COMPANY",
    "name": FOCUS,
    "path": "news/apple.txt",
    "head": "Tim Cook",
    "rel": "CEO_OF",
    "tail": "Apple Inc.",
}


# -- the packaged files ----------------------------------------------------------------------


def test_grass_styles_every_schema_type():
    assert grass_path().name == "kgbuild.grass" and grass_path().is_file()
    text = grass_text()
    rules = grass_rules()
    assert len(rules) == len(re.findall(r"^\S.*\{\s*$", text, flags=re.M)), "a rule did not parse"
    types = ("COMPANY", "PERSON", "PRODUCT", "DATE", "MONEY", "LOCATION", "GENE", "DISEASE", "DRUG", "ORGANISM", "CELL_TYPE")
    colours = {label: rules[f"node.{label}"]["color"].upper() for label in types}
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in colours.values()), colours
    assert len(set(colours.values())) == len(colours), "entity types share a colour"
    assert rules["node.Entity"]["caption"] == "{name}"
    assert rules["node.Document"]["caption"] == "{title}"
    assert "{position}" in rules["node.Chunk"]["caption"]
    assert rules["relationship"]["caption"] == "<type>"
    assert rules["node.Community"]["caption"] == "{title}"
    assert rules["node.Community"]["color"].upper() not in colours.values()
    assert {"relationship.IN_COMMUNITY", "relationship.SUBCOMMUNITY_OF"} <= set(rules)
    # rules for several labels of one node apply in file order: the entity rule must come first
    assert list(rules).index("node.Entity") < min(list(rules).index(f"node.{label}") for label in types)


def test_style_and_queries_ship_as_package_data():
    import fnmatch

    from kgbuild.connectors.neo4j import browser

    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later

    setuptools = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    assert browser.__name__ in setuptools["packages"]
    globs = setuptools["package-data"][browser.__name__]
    for path in (grass_path(), browser.starter_queries_path()):
        assert path.is_file() and any(fnmatch.fnmatch(path.name, g) for g in globs), path


def test_starter_queries_parse():
    queries = starter_queries()
    titles = [title for title, _ in queries]
    assert len(titles) == len(set(titles)) >= 5
    for title in ("Entities of a type", "Entities of a document", "Evidence behind a relation", "Neighbourhood of an entity",
                  "The communities of an entity", "The members of a community", "The largest communities at level 0"):
        assert title in titles
    for title, cypher in queries:
        assert cypher.strip() and not cypher.rstrip().endswith(";"), title
        assert not any(line.lstrip().startswith("//") for line in cypher.splitlines()), title
    assert starter_query("neighbourhood of an entity") == dict(queries)["Neighbourhood of an entity"]
    with pytest.raises(KeyError):
        starter_query("no such query")


# -- against the server ----------------------------------------------------------------------


@pytest.fixture
def loaded_graph(neo4j_server):
    """The small business graph above, written by Neo4jGraphSink into a cleared database."""
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.open()
    try:
        sink.clear()
        sink.write(make_batch(DOCS, MENTIONS, RELATIONS, chunk_lines=1))
        sink.flush()
        yield sink
    finally:
        sink.close()


@pytest.fixture
def graph_with_communities(loaded_graph):
    """The graph above with its communities (``_store_communities``)."""
    return loaded_graph, _store_communities(loaded_graph)


def test_starter_queries_run_on_a_kgbuild_graph(graph_with_communities):
    loaded_graph, built = graph_with_communities
    focus = _entity_id(loaded_graph, FOCUS)
    home = next(c for c in built.communities if c.level == 0 and focus in c.members)
    params_all = {**PARAMS, "community": home.id}
    for title, cypher in starter_queries():
        params = {name: params_all[name] for name in re.findall(r"\$(\w+)", cypher)}
        rows = loaded_graph.run_read(cypher, **params)
        assert rows, f"starter query {title!r} found nothing"
    # the community queries: what kgbuild.communities computed
    largest = loaded_graph.run_read(starter_query("The largest communities at level 0"))
    assert [(r["id"], r["size"]) for r in largest] == [(c.id, c.size) for c in built.at_level(0)]
    assert largest[0]["title"] == built.at_level(0)[0].title
    mine = loaded_graph.run_read(starter_query("The communities of an entity"), name=FOCUS)
    assert {r["c"]["id"] for r in mine} == {c.id for c in built.of_entity(focus)}
    members = loaded_graph.run_read(starter_query("The members of a community"), community=home.id)
    assert {r["e"]["id"] for r in members} == set(home.members)
    assert any(r["r"] is not None for r in members)  # Tim Cook CEO_OF Apple Inc. inside the community
    by_doc = loaded_graph.run_read(starter_query("The communities of a document"), path="news/apple.txt")
    assert home.id in {r["id"] for r in by_doc}
    evidence = loaded_graph.run_read(starter_query("Evidence behind a relation"), **{k: PARAMS[k] for k in ("head", "tail", "rel")})
    assert {row["d"]["path"] for row in evidence} == {"news/apple.txt", "news/results.txt"}


def _expected_view(sink: Neo4jGraphSink, cypher: str, params: dict) -> tuple[int, int, int]:
    """(nodes, relationships, relationships drawn) of the neighbourhood query ``cypher`` (returns e, r, n).

    The frame reports the nodes and relationships the query returns; by default
    ("Connect result nodes") it also draws every other relationship between those nodes.
    """
    query = (
        f"CALL {{ {cypher} }} "
        "RETURN collect(DISTINCT elementId(e)) + collect(DISTINCT elementId(n)) AS ids, count(DISTINCT r) AS rels"
    )
    row = sink.run_read(query, **params)[0]
    ids = sorted(set(row["ids"]))
    drawn = sink.run_read(
        "MATCH (a)-[r]->(b) WHERE elementId(a) IN $ids AND elementId(b) IN $ids RETURN count(r) AS rels", ids=ids
    )[0]["rels"]
    return len(ids), row["rels"], drawn


def _cypher_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _playwright_or_skip():
    """playwright's sync API and /usr/bin/chromium; outside CI a missing one skips, in CI it fails."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, problem = None, "Python playwright is not installed (uv pip install playwright)"
    if problem is None and not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing (run scripts/install-browser.sh as root)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {problem}", pytrace=False)
        pytest.skip(problem)
    return sync_playwright


def _browser_url_or_fail(url: str) -> None:
    import socket

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=3.0):
            return
    except OSError:
        pytest.fail(f"Neo4j Browser does not answer at {url}: run `scripts/neo4j-dev.sh start`", pytrace=False)


def _run_in_editor(page, text: str) -> None:
    editor = page.locator('[data-testid="activeEditor"]')
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # Monaco closes brackets and quotes as they are typed: insert the text in one go
    page.keyboard.insert_text(text)
    page.locator('[data-testid="editor-Run"]').click()


def _keep_screenshot(path: Path) -> None:
    shot_dir = os.environ.get("KGBUILD_SCREENSHOT_DIR")
    if shot_dir and path.exists():
        Path(shot_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(shot_dir) / path.name)


def test_neo4j_browser_shows_styled_neighbourhood(neo4j_server, loaded_graph, tmp_path):
    started = time.monotonic()
    sync_playwright = _playwright_or_skip()
    _browser_url_or_fail(BROWSER_URL)
    cypher = starter_query("Neighbourhood of an entity")
    expected_nodes, expected_rels, expected_drawn = _expected_view(loaded_graph, cypher, {"name": FOCUS})
    assert expected_nodes > 3 and expected_drawn >= expected_rels > 3
    bolt = urlparse(neo4j_server["uri"])
    screenshot = tmp_path / "neo4j-browser.png"  # the result frame
    page_screenshot = tmp_path / "neo4j-browser-page.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(STEP_MS)
            # the packaged style, as Neo4j Browser keeps it, in place before the page loads
            # (typing `:style <grass>` into the editor would do too, but Monaco auto-closes braces)
            context.add_init_script(
                "window.localStorage.setItem('neo4j.grass', " + json.dumps(json.dumps(grass_rules())) + ");"
            )
            page = context.new_page()
            page.goto(BROWSER_URL, wait_until="domcontentloaded")

            # connect with the form
            page.locator('[data-testid="bolt-scheme-select"]').select_option(f"{bolt.scheme}://")
            page.locator('[data-testid="boltaddress"]').fill(f"{bolt.hostname}:{bolt.port or 7687}")
            page.locator('[data-testid="username"]').fill(neo4j_server["user"])
            page.locator('[data-testid="password"]').fill(neo4j_server["password"])
            page.locator('[data-testid="connect"]').click()
            page.get_by_text("You are connected as user").first.wait_for()

            # the starter query, its parameter written in as a literal
            _run_in_editor(page, cypher.replace("$name", _cypher_literal(FOCUS)))
            frame = page.locator('[data-testid="frame"]').filter(has=page.locator("svg.neod3viz")).first
            frame.locator("svg.neod3viz g.node").first.wait_for()
            status = frame.get_by_text(re.compile(r"Displaying \d+ nodes?, \d+ relationships?")).first
            status.wait_for()
            page.wait_for_timeout(1500)  # let the force layout settle for the screenshot
            frame.screenshot(path=str(screenshot))
            page.screenshot(path=str(page_screenshot))

            shown = re.search(r"Displaying (\d+) nodes?, (\d+) relationships?", status.inner_text())
            rendered_nodes = frame.locator("svg.neod3viz g.node").count()
            rendered_rels = frame.locator("svg.neod3viz g.relationship").count()
            captions = frame.locator("svg.neod3viz g.node").evaluate_all(
                "nodes => nodes.map(n => Array.from(n.querySelectorAll('text.caption')).map(t => t.textContent.trim()).filter(Boolean).join(' '))"
            )
            rel_captions = frame.locator("svg.neod3viz g.relationship text").evaluate_all(
                "texts => texts.map(t => t.textContent.trim())"
            )
            fills = frame.locator("svg.neod3viz g.node circle.b-outline").evaluate_all(
                "cs => cs.map(c => (c.getAttribute('fill') || '').toUpperCase())"
            )

            # communities, as an ingest stores them: the starter query draws them in the style's Community colour
            built = _store_communities(loaded_graph)
            mine = [c for c in built.communities if any(m for m in c.members if m == _entity_id(loaded_graph, FOCUS))]
            frames = page.locator('[data-testid="frame"]').filter(has=page.locator("svg.neod3viz"))
            before = frames.count()
            _run_in_editor(page, starter_query("The communities of an entity").replace("$name", _cypher_literal(FOCUS)))
            page.wait_for_function(
                "n => document.querySelectorAll('[data-testid=\"frame\"] svg.neod3viz').length > n", arg=before
            )
            newest = frames.first
            newest.locator("svg.neod3viz g.node").first.wait_for()
            page.wait_for_timeout(500)
            community_fills = newest.locator("svg.neod3viz g.node circle.b-outline").evaluate_all(
                "cs => cs.map(c => (c.getAttribute('fill') || '').toUpperCase())"
            )
        except Exception:
            failure = tmp_path / "neo4j-browser-failure.png"
            try:
                page.screenshot(path=str(failure))
                _keep_screenshot(failure)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        finally:
            browser.close()

    _keep_screenshot(screenshot)
    _keep_screenshot(page_screenshot)

    assert screenshot.stat().st_size > 10_000
    assert shown, "no 'Displaying N nodes, M relationships' in the result frame"
    assert (int(shown.group(1)), int(shown.group(2))) == (expected_nodes, expected_rels)
    assert (rendered_nodes, rendered_rels) == (expected_nodes, expected_drawn)
    # captions from the style: entity names, chunk positions, relationship types
    assert FOCUS in captions and "Tim Cook" in captions, captions
    assert any(re.fullmatch(r"#\d+", c) for c in captions), captions
    # (a caption too long for its edge is cut short with an ellipsis)
    types = {"CEO_OF", "MANUFACTURES", "COMPETES_WITH", "MENTIONS", "NEXT_CHUNK", "HAS_CHUNK"}
    shown_types = [c.rstrip("…").rstrip(".") for c in rel_captions if c]
    assert shown_types and all(any(t.startswith(c) for t in types) for c in shown_types), rel_captions
    assert "MENTIONS" in shown_types and any(c.startswith("CE") for c in shown_types), rel_captions
    # colours from the style: the company and the person are drawn in their type's colour
    for label in ("COMPANY", "PERSON", "PRODUCT"):
        colour = grass_rules()[f"node.{label}"]["color"].upper()
        assert colour in fills, (label, colour, fills)
    # the entity and its community at each level (and their parents: the same ones)
    community = grass_rules()["node.Community"]["color"].upper()
    assert mine and community_fills.count(community) == len(mine), (community_fills, [c.id for c in mine])
    assert grass_rules()["node.COMPANY"]["color"].upper() in community_fills
    assert time.monotonic() - started < TEST_BUDGET_S


def _store_communities(sink: Neo4jGraphSink):
    """The communities of the graph in ``sink``, computed by kgbuild.communities from the store's entity graph and
    written through the GraphSink Protocol (as an ingest does)."""
    from kgbuild.communities.build import build_communities
    from kgbuild.retrieve.graph_matrix import build_retrieval_graph

    built = build_communities(build_retrieval_graph(sink.entity_graph()), {})
    assert built.communities
    sink.replace_communities([c.record() for c in built.communities])
    sink.flush()
    return built


def _entity_id(sink: Neo4jGraphSink, name: str) -> str:
    return next(e.id for e in sink.entity_graph(mentions=False).entities.values() if e.name == name)


def test_graph_view_of_a_neo4j_graph(graph_with_communities, tmp_path):
    """The entity map reads the graph store through the Protocol: here Neo4j, with no retrieval folder (co-mention
    from the store's own entity graph) and the communities built above."""
    from kgbuild.explore.entity_map import build_map, load_graph_data, summarize
    from kgbuild.explore.map_page import render_map

    sink, built = graph_with_communities
    graph = load_graph_data(tmp_path / "no-index", sink)
    view = build_map(graph, built)
    render_map(view, tmp_path / "map.html")
    summary = summarize(view, tmp_path / "map.html")
    names = {n.name for n in view.nodes[: view.drawn]}
    assert {FOCUS, "Tim Cook", "Vision Pro", "Acme Corp"} <= names
    assert summary.relations == len({tuple(sorted((h, t))) for _, h, _, t in RELATIONS})  # one edge per related pair
    assert summary.comentions > 0 and summary.communities == len(built.at_level(0))
    assert "Tim Cook CEO_OF Apple Inc." in (tmp_path / "map.html").read_text(encoding="utf-8")
