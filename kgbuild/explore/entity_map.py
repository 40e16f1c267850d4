"""The entity map: what ``kgbuild graph view --html`` draws by default.

>>> summary = map_index(Settings(out_dir=".kgbuild"), Path("map.html"))            # the top communities
>>> summary = map_index(Settings(out_dir=".kgbuild"), Path("apple.html"), entity_key="COMPANY:Apple", hops=2)

**What is drawn.** Entities only (documents' ``TITLE`` entities left out, as communities leave them out), joined
by their relations (labelled, directed as extracted) and by co-mention (two entities named in the same chunk),
each co-mention weighted as community detection weighs it (``kgbuild.communities.detect.entity_weights``:
specificity-weighted, Newman's 1/(n-1) per shared chunk). Co-mention weights come from the stored retrieval graph
(``<out>/retrieval/``), or, where an index has none, from one built in memory from the graph store's entity graph.
The relations (labels, direction) always come from the graph store.

- **Overview** (no ``entity_key``): the ``communities`` largest communities of ``level`` as clusters, each with its
  most connected members (weighted degree), at least three per community, at most ``max_nodes`` in all; the
  ``labels`` best connected nodes and each community's most central member carry their names. Where the index has
  no communities yet, the ``max_nodes`` best connected entities, with a note saying so.
- **Around an entity**: every entity within ``hops`` steps of relations or co-mention, nearest first, then the
  best connected.

Of the edges between drawn nodes, each node keeps its first ``RELATIONS_PER_NODE`` relations (by co-mention weight)
and its ``COMENTIONS_PER_NODE`` strongest co-mentions, and an edge is drawn when either end keeps it (a backbone: all
of them make a hairball around the entities named everywhere); around an entity, all of the entity's edges.
Edges between two communities barely pull in the layout (``ACROSS``). The page also embeds, for each drawn node and (within a budget) for
each of their neighbours, its ``NEIGHBOURS`` strongest neighbours, so clicking a node adds them without a server.

**Layout.** networkx's ``spring_layout`` (Fruchterman-Reingold, fixed seed) on the drawn graph plus one anchor node
per community that its members are tied to, so communities come out as separate clusters; the anchors are then
dropped. The page (``kgbuild.explore.map_page``) draws it with vis-network, physics off: the positions are final and
the view is the same every time it opens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kgbuild.errors import ConfigError

DEFAULT_MAX_NODES = 300
DEFAULT_ENTITY_MAX_NODES = 200
DEFAULT_LABELS = 150
DEFAULT_COMMUNITIES = 12
MIN_PER_COMMUNITY = 3
COMENTIONS_PER_NODE = 3
RELATIONS_PER_NODE = 6  # a hub's other relations are drawn where they are among its partner's first
NEIGHBOURS = 12
EXPAND_BUDGET = 3000  # nodes the page may hold in all (drawn, and reachable by clicks)
LAYOUT_SEED = 20261130
ANCHOR_WEIGHT = 3.0  # how strongly a community's members are pulled together (an edge weighs 0.2 to 1)
HUB_WEIGHT = 1.2
ACROSS = 0.1  # layout weight of an edge between two communities, relative to one inside
SPREAD = 90.0
NAME_ROOM = 55.0  # page pixels between a node and its nearest neighbour, typically (names are 22 px high)  # page pixels per sqrt(node): labels of neighbours overlap little at the first zoom


@dataclass(frozen=True, slots=True)
class MapNode:
    id: str
    key: str
    name: str
    type: str
    mentions: int
    degree: float  # weighted degree (relations + co-mention)
    communities: tuple[str, ...]  # coarse to fine


@dataclass(frozen=True, slots=True)
class MapEdge:
    head: int  # positions into EntityMap.nodes
    tail: int
    labels: tuple[str, ...]  # relation labels "CEO_OF" (head -> tail) or "CEO_OF ←" (tail -> head); () for co-mention only
    weight: float  # co-mention weight (0 where none)
    shared: int  # chunks naming both

    @property
    def is_relation(self) -> bool:
        return bool(self.labels)


@dataclass(slots=True)
class EntityMap:
    """Everything the page holds: nodes and edges, the first ``drawn`` / ``drawn_edges`` of them on screen when it
    opens, the rest reachable by clicking (``neighbours``: node -> its edges)."""

    nodes: list[MapNode]
    edges: list[MapEdge]
    drawn: int
    drawn_edges: int
    labelled: set[int]
    positions: dict[int, tuple[float, float]]
    neighbours: dict[int, list[int]]
    communities: list[dict[str, Any]]  # the communities of the colour level that nodes belong to: id, title, size
    level: int | None
    center: int | None = None
    center_key: str | None = None
    note: str = ""
    total_entities: int = 0
    colour_by: str = "community"
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntityMapSummary:
    path: Path
    nodes: int  # nodes drawn when the page opens
    edges: int  # edges drawn when the page opens
    relations: int  # of which relation edges
    comentions: int  # of which co-mention edges (no relation)
    labelled: int  # nodes drawn with their name
    communities: int  # communities drawn as clusters (0 without communities)
    expandable: int  # nodes the page holds beyond those drawn (clicks reveal them)
    total_entities: int
    center: str | None = None
    note: str = ""

    def describe(self) -> str:
        what = (f"drew {self.nodes} nodes and {self.edges} edges ({self.relations} relations, {self.comentions} co-mentions)"
                f", {self.labelled} labelled")
        if self.communities:
            what += f", {self.communities} communities"
        where = f" around {self.center}" if self.center else f" of {self.total_entities} entities"
        return f"wrote {self.path}: {what}{where}; {self.expandable} more one click away"


# -- the data -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Graph:
    """The entity graph the map draws from: positions are entity positions (TITLE entities left out)."""

    ids: list[str]
    nodes: list[MapNode]
    weights: Any  # csr, symmetric: relations + co-mention (community detection's weights)
    comention: Any  # csr, symmetric: co-mention weight only
    shared: Any  # csr, symmetric: chunks naming both, where two or more
    relations: dict[tuple[int, int], list[str]]  # (a, b) with a < b -> labels, as seen from a
    degree: np.ndarray


def load_graph_data(out_dir: Path, sink: Any) -> _Graph:
    """Read the entity graph: relations from the graph store, co-mention from the stored retrieval graph (or one
    built in memory from the store where there is none)."""
    from kgbuild.communities.detect import CommunityParams, entity_weights
    from kgbuild.retrieve.graph_matrix import RetrievalGraph, build_retrieval_graph, retrieval_dir

    stored = RetrievalGraph.load(retrieval_dir(out_dir))
    data = sink.entity_graph(mentions=stored is None)
    graph = stored if stored is not None else build_retrieval_graph(data)
    full = entity_weights(graph, CommunityParams())
    keep = full.entities
    relations_only = graph.relations[keep][:, keep].tocsr().astype(np.float64)
    comention = (full.weights - relations_only).tocsr()
    comention.data[comention.data < 1e-12] = 0
    comention.eliminate_zeros()
    comention.sort_indices()
    # chunks naming both: the retrieval graph keeps the pairs that share two or more; a co-mention weight without
    # one is a single shared chunk (computing them all would square the mentions, ~18^2 per chunk)
    shared = graph.cooccurrence[keep][:, keep].tocsr()
    shared.sort_indices()
    chunks_of = np.diff(graph.chunk_entity[:, keep].tocsc().indptr)
    ids = [graph.entities[int(i)].id for i in keep]
    position = {e: i for i, e in enumerate(ids)}
    degree = np.asarray(full.weights.sum(axis=1)).ravel()
    nodes = []
    for i, e in enumerate(ids):
        node = graph.entities[int(keep[i])]
        stored_entity = data.entities.get(e)
        mentions = stored_entity.mention_count if stored_entity is not None else int(chunks_of[i])
        nodes.append(MapNode(e, node.key, node.name, node.type, int(mentions), round(float(degree[i]), 6), ()))
    relations: dict[tuple[int, int], list[str]] = {}
    for head, label, tail in sorted(set(data.relations)):
        a, b = position.get(head), position.get(tail)
        if a is None or b is None or a == b:
            continue
        relations.setdefault((min(a, b), max(a, b)), []).append(label if a < b else f"{label} ←")
    return _Graph(ids, nodes, full.weights, comention, shared, relations, degree)


def _with_communities(g: _Graph, communities: Any) -> None:
    by_entity: dict[str, list[tuple[int, str]]] = {}
    for c in communities:
        for member in c.members:
            by_entity.setdefault(member, []).append((c.level, c.id))
    g.nodes = [MapNode(n.id, n.key, n.name, n.type, n.mentions, n.degree,
                       tuple(cid for _, cid in sorted(by_entity.get(n.id, ())))) for n in g.nodes]


# -- choosing what to draw ------------------------------------------------------------------------


def _overview(g: _Graph, communities: Any, level: int, k: int, max_nodes: int) -> tuple[list[int], list[Any]]:
    chosen = communities.at_level(level)[:k] if communities is not None else []
    if not chosen:
        order = sorted(range(len(g.ids)), key=lambda i: (-g.degree[i], -g.nodes[i].mentions, g.ids[i]))
        return order[:max_nodes], []
    position = {e: i for i, e in enumerate(g.ids)}
    picked: list[int] = []
    seen: set[int] = set()
    ranked: list[int] = []
    for c in chosen:
        members = sorted((position[m] for m in c.members if m in position), key=lambda i: (-g.degree[i], g.ids[i]))
        for i in members[:MIN_PER_COMMUNITY]:
            if i not in seen and len(picked) < max_nodes:
                seen.add(i)
                picked.append(i)
        ranked += members[MIN_PER_COMMUNITY:]
    for i in sorted(ranked, key=lambda i: (-g.degree[i], g.ids[i])):
        if len(picked) >= max_nodes:
            break
        if i not in seen:
            seen.add(i)
            picked.append(i)
    return picked, chosen


def _around(g: _Graph, center: int, hops: int, max_nodes: int) -> list[int]:
    distance = {center: 0}
    frontier = [center]
    adjacency = g.weights
    for step in range(1, hops + 1):
        nxt = []
        for node in frontier:
            for other in adjacency.indices[adjacency.indptr[node]:adjacency.indptr[node + 1]].tolist():
                if other not in distance:
                    distance[other] = step
                    nxt.append(other)
        frontier = nxt
    order = sorted(distance, key=lambda i: (distance[i], -_value(adjacency, center, i) if distance[i] == 1 else 0.0,
                                            -g.degree[i], g.ids[i]))
    return order[:max_nodes]


def _edge(g: _Graph, a: int, b: int) -> MapEdge | None:
    lo, hi = min(a, b), max(a, b)
    labels = g.relations.get((lo, hi), [])
    weight = _value(g.comention, lo, hi)
    if not labels and weight <= 0:
        return None
    if a != lo:  # labels are written as seen from the smaller position; flip them for a -> b
        labels = [lab[:-2] if lab.endswith(" ←") else f"{lab} ←" for lab in labels]
    shared = int(_value(g.shared, lo, hi)) or (1 if weight > 0 else 0)
    return MapEdge(a, b, tuple(labels), round(weight, 6), shared)


def _value(m: Any, row: int, col: int) -> float:
    """``m[row, col]`` of a CSR matrix with sorted indices (scipy's indexing costs ~0.1 ms a call)."""
    start, end = m.indptr[row], m.indptr[row + 1]
    k = start + int(np.searchsorted(m.indices[start:end], col))
    return float(m.data[k]) if k < end and m.indices[k] == col else 0.0


def _strongest(g: _Graph, node: int, among: set[int] | None, limit: int | None) -> list[int]:
    """The node's neighbours, relations first, then by co-mention weight (ties: id order)."""
    row = slice(g.weights.indptr[node], g.weights.indptr[node + 1])
    others = g.weights.indices[row].tolist()
    values = g.weights.data[row].tolist()
    scored = []
    for other, value in zip(others, values):
        if among is not None and other not in among:
            continue
        related = (min(node, other), max(node, other)) in g.relations
        scored.append((not related, -value, g.ids[other], other))
    scored.sort()
    return [other for *_, other in scored[:limit]]


def build_map(g: _Graph, communities: Any = None, *, entity_key: str | None = None, hops: int = 1, level: int = 0,
              top_communities: int = DEFAULT_COMMUNITIES, max_nodes: int | None = None, labels: int = DEFAULT_LABELS,
              colour_by: str = "community") -> EntityMap:
    if hops < 0:
        raise ConfigError(f"hops must be 0 or more, got {hops}")
    if labels < 0:
        raise ConfigError(f"labels must be 0 or more, got {labels}")
    if colour_by not in ("community", "type"):
        raise ConfigError(f"colour by 'community' or 'type', not {colour_by!r}")
    if communities is not None and not communities.levels:
        communities = None  # a communities folder with none in it (an index with no entity edges): as if unbuilt
    if communities is not None:
        if level not in communities.levels:
            raise ConfigError(f"--level {level}: the communities have levels {', '.join(map(str, communities.levels))}")
        _with_communities(g, communities)
    note = ""
    center = center_key = None
    if entity_key is not None:
        from kgbuild.explore.graph_html import find_entity_key

        keys = {n.key: i for i, n in sorted(enumerate(g.nodes), key=lambda x: x[1].id, reverse=True)}
        found, center_key = find_entity_key(keys, entity_key)
        center = int(found)
        limit = max_nodes or DEFAULT_ENTITY_MAX_NODES
        if limit < 1:
            raise ConfigError(f"max_nodes must be at least 1, got {limit}")
        drawn = _around(g, center, hops, limit)
        # the communities of the drawn nodes, the most represented first: they get the palette's colours
        clusters = []
        if communities is not None:
            level_ids = {c.id for c in communities.at_level(level)}
            count: dict[str, int] = {}
            for n in drawn:
                cid = community_at(g.nodes[n], level_ids)
                if cid is not None:
                    count[cid] = count.get(cid, 0) + 1
            clusters = sorted((communities.by_id[c] for c in count), key=lambda c: (-count[c.id], -c.size, c.id))
    else:
        limit = max_nodes or DEFAULT_MAX_NODES
        if limit < 1:
            raise ConfigError(f"max_nodes must be at least 1, got {limit}")
        drawn, clusters = _overview(g, communities, level, top_communities, limit)
        if communities is None:
            note = (f"this index has no communities (built before them, or no two entities share a chunk or a relation):"
                    f" showing the {len(drawn)} best connected entities; `kgbuild ingest` on its folder builds them")
            colour_by = "type"
    drawn_set = set(drawn)

    # edges among the drawn nodes: each node's relations (the first RELATIONS_PER_NODE) and strongest co-mentions;
    # every edge of the centre
    pairs: set[tuple[int, int]] = set()
    for node in drawn:
        ranked = [(min(node, o), max(node, o)) for o in _strongest(g, node, drawn_set, None)]
        if node == center:
            pairs.update(ranked)
            continue
        related = [p for p in ranked if p in g.relations]
        pairs.update(related[:RELATIONS_PER_NODE])
        pairs.update([p for p in ranked if p not in g.relations][:COMENTIONS_PER_NODE])
    # the page's own numbering: drawn nodes first
    page: dict[int, int] = {n: i for i, n in enumerate(drawn)}
    edges = [e for e in (_edge(g, a, b) for a, b in sorted(pairs, key=lambda p: (page[p[0]], page[p[1]]))) if e is not None]
    edge_at = {(min(e.head, e.tail), max(e.head, e.tail)): j for j, e in enumerate(edges)}
    drawn_edges = len(edges)

    # what clicks reveal: the strongest neighbours of every node the page holds, breadth first, within a budget
    neighbours: dict[int, list[int]] = {}
    queue = list(drawn)
    for node in queue:
        if len(page) >= EXPAND_BUDGET:
            break
        mine = _strongest(g, node, None, NEIGHBOURS)
        if len(page) + sum(o not in page for o in mine) > EXPAND_BUDGET:
            break
        for other in mine:
            if other not in page:
                page[other] = len(page)
                queue.append(other)
            key = (min(node, other), max(node, other))
            if key not in edge_at:
                edge = _edge(g, node, other)
                if edge is None:
                    continue
                edge_at[key] = len(edges)
                edges.append(edge)
            neighbours.setdefault(page[node], []).append(edge_at[key])
    order = sorted(page, key=page.get)
    nodes = [g.nodes[n] for n in order]
    edges = [MapEdge(page[e.head], page[e.tail], e.labels, e.weight, e.shared) for e in edges]

    # names: the best connected drawn nodes, each cluster's most central member, the centre
    ranked = sorted(range(len(drawn)), key=lambda i: (-g.degree[drawn[i]], g.ids[drawn[i]]))
    labelled = set(ranked[:labels])
    drawn_ids = {g.ids[n]: page[n] for n in drawn}
    for c in clusters[:top_communities] if entity_key is None else []:
        anchor = next((drawn_ids[e.id] for e in c.top_entities if e.id in drawn_ids), None)
        if anchor is not None:
            labelled.add(anchor)
    if center is not None:
        labelled.add(page[center])

    levels = communities.at_level(level) if communities is not None else []
    held = {cid for n in nodes for cid in n.communities}
    shown = [{"id": c.id, "title": c.title, "size": c.size} for c in levels if c.id in held]
    order_clusters = {c.id: i for i, c in enumerate(clusters)}
    shown.sort(key=lambda c: (order_clusters.get(c["id"], len(order_clusters)), -c["size"], c["id"]))
    result = EntityMap(nodes, edges, len(drawn), drawn_edges, labelled, {}, neighbours, shown,
                       level if communities is not None else None, page[center] if center is not None else None,
                       center_key, note, len(g.ids), colour_by)
    result.positions = _layout(result)
    return result


def community_at(node: MapNode, level_ids: set[str]) -> str | None:
    return next((c for c in node.communities if c in level_ids), None)


def _layout(m: EntityMap) -> dict[int, tuple[float, float]]:
    """Positions of the drawn nodes (see the module's docstring), in page pixels."""
    import networkx as nx

    level_ids = {c["id"] for c in m.communities}
    g = nx.Graph()
    g.add_nodes_from(range(m.drawn))
    top = max((e.weight for e in m.edges[:m.drawn_edges]), default=1.0) or 1.0
    home = [community_at(m.nodes[i], level_ids) if level_ids else None for i in range(m.drawn)]
    for e in m.edges[:m.drawn_edges]:
        w = 1.0 if e.is_relation else 0.2 + 0.8 * e.weight / top
        if m.center is None and home[e.head] != home[e.tail]:
            w *= ACROSS  # drawn, but barely pulling: hubs named everywhere would knot the clusters together
        g.add_edge(e.head, e.tail, w=w)
    if m.center is None:
        # communities (and loose nodes) on weak ties to one hub: parts with no edge between them would drift to
        # the corners and leave each cluster a dot
        for i in range(m.drawn):
            cid = community_at(m.nodes[i], level_ids) if level_ids else None
            if cid is not None:
                g.add_edge(i, ("community", cid), w=ANCHOR_WEIGHT)
                g.add_edge(("community", cid), "hub", w=HUB_WEIGHT)
            else:
                g.add_edge(i, "hub", w=HUB_WEIGHT / 4)
    n = g.number_of_nodes()
    if n == 0:
        return {}
    fixed = None
    start = None
    if m.center is not None:
        start, fixed = {m.center: (0.0, 0.0)}, [m.center]
    pos = nx.spring_layout(g, weight="w", seed=LAYOUT_SEED, iterations=150, pos=start, fixed=fixed)
    scale = SPREAD * math.sqrt(max(m.drawn, 4))
    if m.drawn > 2:  # neighbours far enough apart for their names (vis-network scales names with the zoom)
        from scipy.spatial import cKDTree

        points = np.array([pos[i] for i in range(m.drawn)], dtype=np.float64)
        nearest = cKDTree(points).query(points, k=2)[0][:, 1]
        typical = float(np.median(nearest))
        if typical > 0:
            scale = max(scale, NAME_ROOM / typical)
    return {i: (round(float(pos[i][0]) * scale, 1), round(float(pos[i][1]) * scale, 1)) for i in range(m.drawn)}


# -- the index ------------------------------------------------------------------------------------


def map_index(settings: Any, html_file: Path, *, entity_key: str | None = None, hops: int = 1, level: int = 0,
              top_communities: int = DEFAULT_COMMUNITIES, max_nodes: int | None = None, labels: int = DEFAULT_LABELS,
              colour_by: str = "community") -> EntityMapSummary:
    """``kgbuild graph view --html FILE``: the entity map of the index under ``settings.out_dir``, any graph backend."""
    from kgbuild.communities.model import CommunityIndex, communities_dir
    from kgbuild.explore.map_page import render_map
    from kgbuild.index import Index

    index = Index.open_existing(settings)
    sink = index.graph_sink()
    sink.open()
    try:
        g = load_graph_data(Path(index.out_dir), sink)
    finally:
        sink.close()
    communities = CommunityIndex.load(communities_dir(index.out_dir))
    view = build_map(g, communities, entity_key=entity_key, hops=hops, level=level, top_communities=top_communities,
                     max_nodes=max_nodes, labels=labels, colour_by=colour_by)
    render_map(view, Path(html_file))
    return summarize(view, Path(html_file))


def summarize(view: EntityMap, path: Path) -> EntityMapSummary:
    drawn = view.edges[:view.drawn_edges]
    relations = sum(1 for e in drawn if e.is_relation)
    clusters = {community_at(view.nodes[i], {c["id"] for c in view.communities}) for i in range(view.drawn)} - {None}
    return EntityMapSummary(path, view.drawn, len(drawn), relations, len(drawn) - relations, len(view.labelled),
                            len(clusters) if view.center is None else 0, len(view.nodes) - view.drawn, view.total_entities,
                            view.center_key, view.note)


def relation_text(edge: MapEdge, names: Sequence[str]) -> str:
    parts = []
    for label in edge.labels:
        if label.endswith(" ←"):
            parts.append(f"{names[edge.tail]} {label[:-2]} {names[edge.head]}")
        else:
            parts.append(f"{names[edge.head]} {label} {names[edge.tail]}")
    return "; ".join(parts)


__all__ = ["EntityMap", "EntityMapSummary", "MapEdge", "MapNode", "build_map", "load_graph_data", "map_index",
           "summarize"]
