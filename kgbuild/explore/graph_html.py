"""A self-contained interactive HTML view of the knowledge graph (pyvis / vis-network).

>>> summary = view_index(Settings(out_dir=".kgbuild"), Path("graph.html"))  # any graph backend
>>> summary = write_graph_html(graph, Path("apple.html"), entity_key="COMPANY:Apple", hops=2)

The view holds the Entity nodes and the relation edges between them; with
``include_chunks`` also the chunks that mention those entities (one MENTIONS edge per
chunk and entity, however many mentions) and their documents. Around one entity, the
view holds every entity within ``hops`` relation edges of it (either direction).

The file opens without any network access: the vis-network script and style are
inlined (pyvis ``cdn_resources="in_line"``), and the CDN links of pyvis's own page
template (Bootstrap) are removed. Every string from the corpus reaches the page through
JSON with ``<``, ``>``, ``&`` and ``'`` escaped, or through ``html.escape``, and vis-network
shows tooltips as text, never as HTML.

When the view has more than ``max_nodes`` nodes, the highest-degree nodes are kept
(around one entity: the entity itself, then the nearest, then the highest degree) and
the summary says how many were left out.
"""

from __future__ import annotations

import colorsys
import difflib
import hashlib
import html
import os
import re
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import networkx as nx

from kgbuild.errors import ConfigError, KgbuildError
from kgbuild.reconcile import parse_entity_filter
from kgbuild.types import STRUCTURAL_EDGES, GraphExport

# Distinct, readable colours for the first entity types (sorted); further types get a hashed hue.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf",
    "#bcbd22", "#8c564b",
)
CHUNK_COLOR = "#c7c7c7"
DOCUMENT_COLOR = "#555555"

# <script src="http..."> / <link href="https..."> / url(http...): anything that would fetch from the network
EXTERNAL_REFERENCE = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)
T = TypeVar("T")

_CDN_TAG = re.compile(
    r"""<link\b[^>]*?\bhref\s*=\s*["']?\s*(?:https?:)?//[^>]*>|<script\b[^>]*?\bsrc\s*=\s*["']?\s*(?:https?:)?//[^>]*>\s*</script>""",
    re.IGNORECASE | re.DOTALL,
)

# a commented-out <script src="../node_modules/vis/..."> in pyvis's template
_TEMPLATE_COMMENT = re.compile(r"<!--\s*<link\b[^>]*node_modules.*?-->", re.DOTALL)


@dataclass(frozen=True, slots=True)
class GraphViewSummary:
    path: Path
    nodes: int  # nodes drawn (entities, plus chunks and documents with include_chunks)
    edges: int  # edges drawn
    entities: int  # entity nodes drawn
    relations: int  # relation edges drawn
    truncated: bool  # True when nodes were left out to stay within max_nodes
    total_nodes: int  # nodes the view would have held without max_nodes
    center: str | None = None  # the entity key of a neighbourhood view

    @property
    def left_out(self) -> int:
        return self.total_nodes - self.nodes

    def describe(self) -> str:
        what = f"{self.nodes} nodes ({self.entities} entities), {self.edges} edges ({self.relations} relations)"
        where = f" within reach of {self.center}" if self.center else ""
        text = f"wrote {self.path}: {what}{where}"
        if self.truncated:
            text += f"; {self.left_out} of {self.total_nodes} nodes left out (kept the {self.nodes} highest-degree)"
        return text


def write_graph_html(
    graph: nx.MultiDiGraph,
    out_file: Path,
    *,
    entity_key: str | None = None,
    hops: int = 1,
    include_chunks: bool = False,
    max_nodes: int = 2000,
    doc_paths: Sequence[str] = (),
) -> GraphViewSummary:
    """Write the view of ``graph`` (as stored by the NetworkX graph sink) to ``out_file``.

    ``doc_paths`` (document paths as stored, see ``kgbuild.paths``) keeps the entities those documents mention.
    """
    if hops < 0:
        raise ConfigError(f"hops must be 0 or more, got {hops}")
    if max_nodes < 1:
        raise ConfigError(f"max_nodes must be at least 1, got {max_nodes}")
    out_file = Path(out_file)

    entities = {n for n, d in graph.nodes(data=True) if d.get("kind") == "Entity"}
    center: str | None = None
    center_key: str | None = None
    distance: dict[str, int] = {}
    if entity_key is not None:
        center, center_key = _find_entity(graph, entities, entity_key)
        distance = _within_hops(graph, center, hops)
        chosen = set(distance)
    else:
        chosen = set(entities)
    if doc_paths:
        wanted = set(doc_paths)
        documents = {n for n, d in graph.nodes(data=True) if d.get("kind") == "Document"
                     and (d.get("path") in wanted or str(d.get("path", "")).partition("#")[0] in wanted)}
        if not documents:
            raise ConfigError(f"no document {', '.join(sorted(wanted))} in the graph")
        doc_chunks = {c for doc in documents for _, c, data in graph.out_edges(doc, data=True) if data.get("type") == "HAS_CHUNK"}
        chosen &= {e for c in doc_chunks for _, e, data in graph.out_edges(c, data=True) if data.get("type") == "MENTIONS"}

    nodes = set(chosen)
    if include_chunks:
        chunks = {c for e in chosen for c, _, d in graph.in_edges(e, data=True) if d.get("type") == "MENTIONS"}
        documents = {d for c in chunks for d, _, data in graph.in_edges(c, data=True) if data.get("type") == "HAS_CHUNK"}
        nodes |= chunks | documents

    edges = _view_edges(graph, nodes, include_chunks)
    degree: dict[str, int] = {n: 0 for n in nodes}
    for head, tail, _ in edges:
        degree[head] += 1
        degree[tail] += 1

    total_nodes = len(nodes)
    truncated = total_nodes > max_nodes
    if truncated:
        # around an entity: itself first, then the nearest (chunks and documents count as one hop further)
        far = hops + 1
        ranked = sorted(
            nodes,
            key=lambda n: (n != center, distance.get(n, far) if center else 0, -degree[n], str(n)),
        )
        nodes = set(ranked[:max_nodes])
        edges = [(h, t, data) for h, t, data in edges if h in nodes and t in nodes]

    html_text = _render(graph, nodes, edges, center, include_chunks)
    _write_atomic(out_file, html_text)
    return GraphViewSummary(
        path=out_file,
        nodes=len(nodes),
        edges=len(edges),
        entities=sum(1 for n in nodes if n in entities),
        relations=sum(1 for _, _, d in edges if d["type"] not in STRUCTURAL_EDGES),
        truncated=truncated,
        total_nodes=total_nodes,
        center=center_key,
    )


# -- choosing what to draw ----------------------------------------------------------------------


def _find_entity(graph: nx.MultiDiGraph, entities: set[str], value: str) -> tuple[str, str]:
    by_key: dict[str, str] = {}
    for n in sorted(entities, key=str):
        by_key.setdefault(graph.nodes[n].get("key", ""), n)
    return find_entity_key(by_key, value)


def find_entity_key(by_key: Mapping[str, T], value: str) -> tuple[T, str]:
    """The node of the entity ``value`` (TYPE:NAME) names, and its key, from ``by_key`` (entity key -> node);
    ``ConfigError`` with the closest keys where there is none."""
    try:
        entity_type, key = parse_entity_filter(value)
    except ValueError as exc:
        raise ConfigError(f"--entity: {exc}") from None
    types = {k.split(":", 1)[0] for k in by_key}
    if entity_type not in types:  # "company:apple" for "COMPANY:apple", when that is unambiguous
        folded = [t for t in types if t.casefold() == entity_type.casefold()]
        if len(folded) == 1:
            entity_type, key = folded[0], f"{folded[0]}:{names_of(key)}"
    if key in by_key:
        return by_key[key], key
    same_type = [k for k in by_key if k.split(":", 1)[0] == entity_type]
    name = names_of(key)
    # compare names within the type (the shared "TYPE:" prefix would make everything look close), then keys
    names = {names_of(k): k for k in same_type}
    close = [names[n] for n in difflib.get_close_matches(name, list(names), n=5, cutoff=0.6)]
    close += sorted(k for k in same_type if name in names_of(k) and k not in close)[: 5 - len(close)]
    close += sorted(k for k in by_key if names_of(k) == name and k not in close)  # the same name, another type
    if not close:
        close = difflib.get_close_matches(key, list(by_key), n=5, cutoff=0.75)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    if not by_key:
        hint = "; the graph holds no entities"
    elif not same_type:
        hint += f" (entity types in the graph: {', '.join(sorted(types))})"
    raise ConfigError(f"--entity: no entity {key!r} (from {value!r}) in the graph{hint}")


def names_of(key: str) -> str:
    return key.split(":", 1)[1] if ":" in key else key


def _within_hops(graph: nx.MultiDiGraph, start: str, hops: int) -> dict[str, int]:
    """Entities within ``hops`` relation edges of ``start``, either direction, with their distance."""
    distance = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if distance[node] >= hops:
            continue
        neighbours = [t for _, t, d in graph.out_edges(node, data=True) if d.get("type") not in STRUCTURAL_EDGES]
        neighbours += [h for h, _, d in graph.in_edges(node, data=True) if d.get("type") not in STRUCTURAL_EDGES]
        for other in neighbours:
            if other not in distance and graph.nodes[other].get("kind") == "Entity":
                distance[other] = distance[node] + 1
                queue.append(other)
    return distance


def _view_edges(graph: nx.MultiDiGraph, nodes: set[str], include_chunks: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """Relation edges among ``nodes``; with chunks also HAS_CHUNK, NEXT_CHUNK and one MENTIONS per chunk and entity."""
    edges: list[tuple[str, str, dict[str, Any]]] = []
    mentions: dict[tuple[str, str], dict[str, Any]] = {}
    for head, tail, data in graph.subgraph(nodes).edges(data=True):
        edge_type = data.get("type")
        if edge_type == "MENTIONS":
            if not include_chunks:
                continue
            seen = mentions.get((head, tail))
            if seen is None:
                seen = mentions[(head, tail)] = {"type": "MENTIONS", "count": 0, "confidence": 0.0, "texts": set()}
                edges.append((head, tail, seen))
            seen["count"] += 1
            seen["confidence"] = max(seen["confidence"], float(data.get("confidence", 0.0)))
            seen["texts"].add(str(data.get("text", "")))
        elif edge_type in STRUCTURAL_EDGES:
            if include_chunks:
                edges.append((head, tail, {"type": edge_type}))
        else:
            edges.append((head, tail, dict(data)))
    edges.sort(key=lambda e: (str(e[0]), str(e[1]), e[2]["type"]))
    return edges


# -- drawing ----------------------------------------------------------------------------------------


def type_colors(types: Iterable[str]) -> dict[str, str]:
    """A colour per entity type, the same in every view: the Neo4j Browser style's (``kgbuild.grass``) for the types
    it styles, then the palette in sorted order for the others, then hues hashed from the name."""
    from kgbuild.connectors.neo4j.browser import grass_rules

    styled = {selector.split(".", 1)[1]: rule["color"] for selector, rule in grass_rules().items()
              if selector.startswith("node.") and "color" in rule}
    types = sorted(set(types))
    colors: dict[str, str] = {}
    others = [t for t in types if t not in styled or t in _NOT_TYPES]
    for entity_type in types:
        if entity_type in styled and entity_type not in _NOT_TYPES:
            colors[entity_type] = styled[entity_type].lower()
    taken = set(colors.values())
    spare = [c for c in PALETTE if c not in taken]
    for i, entity_type in enumerate(others):
        if i < len(spare):
            colors[entity_type] = spare[i]
        else:
            hue = int.from_bytes(hashlib.blake2b(entity_type.encode("utf-8", "surrogatepass"), digest_size=2).digest(), "big") / 65536
            r, g, b = colorsys.hls_to_rgb(hue, 0.5, 0.55)
            colors[entity_type] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return dict(sorted(colors.items()))


# labels of the style that are not entity types
_NOT_TYPES = frozenset({"Entity", "Document", "Chunk", "Community"})


def _text(value: Any, limit: int = 300) -> str:
    """Plain text for a label or tooltip; a lone surrogate (possible in JSON input) becomes U+FFFD."""
    text = str(value if value is not None else "")
    text = text.encode("utf-8", "replace").decode("utf-8") if re.search("[\ud800-\udfff]", text) else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tooltip(lines: Iterable[str]) -> str:
    """Tooltip text. pyvis switches to a template that sets ``innerHTML`` from a node title holding
    "href"; a zero-width space keeps corpus text from ever turning that on."""
    return "\n".join(lines).replace("href", "hre\u200bf")


def _render(
    graph: nx.MultiDiGraph,
    nodes: set[str],
    edges: list[tuple[str, str, dict[str, Any]]],
    center: str | None,
    include_chunks: bool,
) -> str:
    try:
        from pyvis.network import Network
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise KgbuildError("the graph view needs pyvis (pip install pyvis)") from exc

    colors = type_colors(graph.nodes[n].get("type", "") for n in nodes if graph.nodes[n].get("kind") == "Entity")
    net = Network(height="92vh", width="100%", directed=True, notebook=False, cdn_resources="in_line")
    ids: dict[str, int] = {}  # small integer ids in the page; the graph's ids stay out of it
    for node in sorted(nodes, key=str):
        data = graph.nodes[node]
        ids[node] = len(ids)
        kind = data.get("kind")
        if kind == "Entity":
            entity_type = _text(data.get("type"))
            aliases = [a for a in data.get("aliases", []) if a != data.get("name")]
            lines = [
                _text(data.get("name") or data.get("key")),
                f"type: {entity_type}",
                f"key: {_text(data.get('key'))}",
                f"mentions: {data.get('mention_count', 0)}",
            ]
            if aliases:
                lines.append("aliases: " + _text("; ".join(_text(a, 80) for a in aliases[:12]) + ("; …" if len(aliases) > 12 else "")))
            options: dict[str, Any] = {
                "shape": "dot",
                "value": max(1, int(data.get("mention_count") or 1)),
                "color": colors[data.get("type", "")],
            }
            if node == center:
                options.update(borderWidth=4, color={"background": colors[data.get("type", "")], "border": "#000000"})
            net.add_node(ids[node], label=_text(data.get("name") or data.get("key"), 60), title=_tooltip(lines), **options)
        elif kind == "Chunk":
            lines = [f"chunk {data.get('position', '')} of {_text(data.get('doc_id'))}", _text(" ".join(str(data.get("text", "")).split()), 400)]
            net.add_node(ids[node], label=f"chunk {data.get('position', '')}", title=_tooltip(lines), shape="box",
                         color=CHUNK_COLOR, font={"size": 10})
        else:
            lines = [_text(data.get("path") or node), f"title: {_text(data.get('title'))}"]
            net.add_node(ids[node], label=_text(data.get("path") or node, 60), title=_tooltip(lines), shape="box",
                         color=DOCUMENT_COLOR, font={"color": "#ffffff"})
    for head, tail, data in edges:
        edge_type = data["type"]
        if edge_type == "MENTIONS":
            title = f"MENTIONS ×{data['count']}, confidence {data['confidence']:.2f}: " + _text(", ".join(sorted(data["texts"])))
            net.add_edge(ids[head], ids[tail], title=_tooltip([title]), color="#bbbbbb", dashes=True, width=1)
        elif edge_type in STRUCTURAL_EDGES:
            net.add_edge(ids[head], ids[tail], title=edge_type, color="#999999", width=1)
        else:
            confidence = float(data.get("confidence", 0.0))
            count = int(data.get("count", len(data.get("evidence", [])) or 1))
            title = f"{_text(edge_type)}\nconfidence: {confidence:.2f}\nevidence: {count}"
            net.add_edge(ids[head], ids[tail], label=_text(edge_type, 40), title=_tooltip([title]), width=1 + min(count, 8) * 0.5,
                         color="#666666", font={"size": 10, "align": "middle"})
    big = len(ids) > 300
    net.options = {
        "nodes": {"font": {"size": 14}, "scaling": {"min": 8, "max": 40}},
        "edges": {"arrows": {"to": {"enabled": True, "scaleFactor": 0.5}}, "smooth": {"type": "dynamic"}},
        "interaction": {"hover": True, "tooltipDelay": 150, "navigationButtons": False, "hideEdgesOnDrag": big},
        "physics": {
            "solver": "forceAtlas2Based",
            "forceAtlas2Based": {"gravitationalConstant": -60, "springLength": 120, "avoidOverlap": 0.2},
            "stabilization": {"enabled": True, "iterations": 300 if big else 150, "fit": True},
        },
    }
    page = net.generate_html(notebook=False)
    page = _CDN_TAG.sub("", page)
    page = _TEMPLATE_COMMENT.sub("", page)
    page = page.replace("</body>", _legend(colors, len(ids), len(edges), include_chunks) + "\n</body>", 1)
    if EXTERNAL_REFERENCE.search(page):  # a pyvis template change: refuse to write a page that fetches
        raise KgbuildError(f"the graph view page would load {EXTERNAL_REFERENCE.search(page).group(0)!r} from the network")
    return page


def _legend(colors: dict[str, str], nodes: int, edges: int, include_chunks: bool) -> str:
    items = [
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;height:12px;'
        f'border-radius:6px;background:{color};margin-right:4px;vertical-align:middle"></span>{html.escape(_text(t, 60))}</span>'
        for t, color in colors.items()
    ]
    if include_chunks:
        items.append(f'<span style="margin-right:12px">▭ <span style="color:{CHUNK_COLOR}">chunk</span> '
                     f'<span style="color:{DOCUMENT_COLOR}">document</span></span>')
    counts = html.escape(f"{nodes} nodes, {edges} edges")
    return (
        '<div id="kgbuild-legend" style="position:fixed;top:8px;left:8px;background:rgba(255,255,255,.9);'
        'padding:6px 10px;border:1px solid #ddd;border-radius:4px;font:13px sans-serif;max-width:70vw">'
        f'<b>kgbuild graph</b> · {counts}<br>{"".join(items)}</div>'
    )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".graph-view-", suffix=".html", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a page is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["GraphViewSummary", "graph_from_export", "view_index", "write_graph_html", "type_colors", "EXTERNAL_REFERENCE"]


def view_index(
    settings: Any,
    html_file: Path,
    *,
    entity_key: str | None = None,
    hops: int = 1,
    include_chunks: bool = False,
    max_nodes: int = 2000,
    docs: Sequence[str] = (),
) -> GraphViewSummary:
    """The view of an index's graph, whichever store holds it (``kgbuild graph view``); ``docs`` follow ``kgbuild.paths``."""
    from kgbuild.index import Index
    from kgbuild.paths import resolve_document_filters

    index = Index.open_existing(settings)
    doc_paths = resolve_document_filters(index.state, docs) if docs else []
    sink = index.graph_sink()
    sink.open()
    try:
        export = sink.export()
    finally:
        sink.close()
    return write_graph_html(graph_from_export(export), html_file, entity_key=entity_key, hops=hops,
                            include_chunks=include_chunks, max_nodes=max_nodes, doc_paths=doc_paths)


def graph_from_export(export: GraphExport) -> nx.MultiDiGraph:
    """The graph a store exported, as the MultiDiGraph the view draws: nodes with ``kind`` Document, Chunk or
    Entity and their records' fields; edges keyed and typed HAS_CHUNK, NEXT_CHUNK, MENTIONS (one per mention,
    keyed by its id) or the relation label."""
    graph = nx.MultiDiGraph()
    for kind, records in (("Document", export.documents), ("Chunk", export.chunks), ("Entity", export.entities)):
        for node_id, record in sorted(records.items()):
            graph.add_node(node_id, kind=kind, **record)
    for head, tail in sorted(export.has_chunk):
        graph.add_edge(head, tail, key="HAS_CHUNK", type="HAS_CHUNK")
    for head, tail in sorted(export.next_chunk):
        graph.add_edge(head, tail, key="NEXT_CHUNK", type="NEXT_CHUNK")
    for mention in sorted(export.mentions, key=lambda m: m["id"]):
        fields = {k: v for k, v in mention.items() if k not in ("id", "chunk_id", "entity_id")}
        graph.add_edge(mention["chunk_id"], mention["entity_id"], key=mention["id"], type="MENTIONS", **fields)
    for relation in sorted(export.relations, key=lambda r: (r["head_id"], r["tail_id"], r["label"])):
        fields = {k: v for k, v in relation.items() if k not in ("label", "head_id", "tail_id")}
        graph.add_edge(relation["head_id"], relation["tail_id"], key=relation["label"], type=relation["label"], **fields)
    return graph
