"""The graph channel of hybrid retrieval: chunks reached from the query's entities through the knowledge graph.

The graph is read from the index's graph store (NetworkX ``graph.json`` or Neo4j) into one
undirected NetworkX graph of entity and chunk nodes: ``MENTIONS`` edges join a chunk to each
entity it mentions, relation edges (``CEO_OF``, ...) join entities. An entity is within k hops
of a query entity when k steps connect them, a step being a relation or a shared chunk.

Score: personalised PageRank (``networkx.pagerank``, damping 0.85) over the subgraph of the
entities within k hops and the chunks that mention them, the restart mass spread evenly over the
query's entities (weighted by match quality). A chunk's score is its stationary probability:
chunks that mention the query entities rank first, then chunks one relation or shared chunk away,
and well-connected bridges beat chance co-occurrences.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from kgbuild.errors import IndexNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

MENTIONED_IN = "MENTIONED_IN"
DAMPING = 0.85


@dataclass(frozen=True, slots=True)
class GraphEntity:
    id: str
    key: str  # TYPE:normalised name
    type: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GraphHit:
    chunk_id: str
    score: float
    entity: str  # key of the query entity the best path starts from
    path: tuple[str, ...]  # entity key, edge label, entity key, ..., MENTIONED_IN, chunk id


def _new_graph() -> nx.Graph:
    import networkx as nx  # about 0.3 s to import: only where a graph is built

    return nx.Graph()


@dataclass(slots=True)
class EntityGraph:
    """Entities, chunks, and the edges between them, for matching and expansion."""

    entities: dict[str, GraphEntity] = field(default_factory=dict)
    graph: nx.Graph = field(default_factory=_new_graph)  # nodes: entity ids and chunk ids (attribute kind)

    def add_entity(self, entity: GraphEntity) -> None:
        self.entities[entity.id] = entity
        self.graph.add_node(entity.id, kind="Entity")

    def add_mention(self, chunk_id: str, entity_id: str) -> None:
        if entity_id in self.entities:
            self.graph.add_node(chunk_id, kind="Chunk")
            self.graph.add_edge(chunk_id, entity_id, label=MENTIONED_IN)

    def add_relation(self, head_id: str, label: str, tail_id: str) -> None:
        if head_id in self.entities and tail_id in self.entities and head_id != tail_id:
            self.graph.add_edge(head_id, tail_id, label=label)

    def chunks_of(self, entity_id: str) -> list[str]:
        return [n for n in self.graph.neighbors(entity_id) if self.graph.nodes[n]["kind"] == "Chunk"]

    def entities_of(self, chunk_id: str) -> list[str]:
        return [n for n in self.graph.neighbors(chunk_id) if self.graph.nodes[n]["kind"] == "Entity"]

    def _entity_steps(self, entity_id: str) -> Iterable[tuple[str, str]]:
        """(neighbour entity, how): through a relation, or through a chunk that mentions both."""
        for n in self.graph.neighbors(entity_id):
            if self.graph.nodes[n]["kind"] == "Entity":
                yield n, self.graph.edges[entity_id, n]["label"]
        for chunk in self.chunks_of(entity_id):
            for n in self.entities_of(chunk):
                if n != entity_id:
                    yield n, f"CO_MENTIONED[{chunk}]"

    def expand(self, seeds: Mapping[str, float], hops: int = 2, limit: int = 10) -> list[GraphHit]:
        """Chunks that mention the seed entities or entities within ``hops`` of them, ranked by PPR."""
        if hops < 0:
            raise ValueError(f"hops must be 0 or more, got {hops}")
        seeds = {e: w for e, w in seeds.items() if e in self.entities and w > 0}
        if not seeds:
            return []
        # breadth-first over entities: the shortest path from the nearest seed explains each one
        parent: dict[str, tuple[str, str] | None] = {e: None for e in seeds}
        depth = {e: 0 for e in seeds}
        frontier = deque(sorted(seeds))
        while frontier:
            current = frontier.popleft()
            if depth[current] == hops:
                continue
            for neighbour, how in sorted(self._entity_steps(current)):
                if neighbour not in depth:
                    depth[neighbour] = depth[current] + 1
                    parent[neighbour] = (current, how)
                    frontier.append(neighbour)
        nodes = set(depth)
        for entity_id in depth:
            nodes.update(self.chunks_of(entity_id))
        import networkx as nx

        sub = self.graph.subgraph(nodes)
        total = sum(seeds.values())
        ranks = nx.pagerank(sub, alpha=DAMPING, personalization={e: w / total for e, w in seeds.items()})
        hits = []
        for node, score in ranks.items():
            if sub.nodes[node]["kind"] != "Chunk":
                continue
            # explain the chunk through its entity nearest to a seed
            via = min(self.entities_of(node), key=lambda e: (depth.get(e, hops + 1), -ranks.get(e, 0.0), e))
            hits.append(GraphHit(node, score, *self._explain(via, node, parent)))
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        return hits[:limit]

    def _explain(self, entity_id: str, chunk_id: str, parent: dict[str, tuple[str, str] | None]) -> tuple[str, tuple[str, ...]]:
        path: list[str] = [self.entities[entity_id].key, MENTIONED_IN, chunk_id]
        node = entity_id
        while parent.get(node) is not None:
            previous, how = parent[node]  # type: ignore[misc]
            path = [self.entities[previous].key, how, *path]
            node = previous
        return self.entities[node].key, tuple(path)


def load_networkx_entity_graph(path: str | Path) -> EntityGraph:
    """The entity graph of a ``graph.json`` written by the NetworkX graph sink.

    The node-link JSON is read as JSON: building the sink's whole MultiDiGraph first
    (``nx.node_link_graph``) cost more than everything else here. Edges are taken in the order
    that graph's ``edges()`` gives them (by source node, then target, then key), so the entity
    graph, and the PageRank sums over it, are the same as when they were built from it.
    """
    from kgbuild.connectors.networkx_graph import STRUCTURAL_EDGES

    path = Path(path)
    if not path.exists():
        raise IndexNotFoundError(f"no knowledge graph at {path}: run `kgbuild ingest` first")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    result = EntityGraph()
    nodes: dict[str, None] = {}  # every node, in the order the MultiDiGraph would hold them
    for node in data.get("nodes", []):
        nodes[node["id"]] = None
        if node.get("kind") == "Entity":
            result.add_entity(_entity(node["id"], node))
    by_source: dict[str, dict[str, list[str | None]]] = {}
    for edge in data.get("edges", []):
        head, tail = edge["source"], edge["target"]
        nodes.setdefault(head, None)
        nodes.setdefault(tail, None)
        by_source.setdefault(head, {}).setdefault(tail, []).append(edge.get("type"))
    for head in nodes:
        for tail, edge_types in by_source.get(head, {}).items():
            for edge_type in edge_types:
                if edge_type == "MENTIONS":
                    result.add_mention(head, tail)
                elif edge_type not in STRUCTURAL_EDGES:
                    result.add_relation(head, edge_type, tail)
    return result


def load_neo4j_entity_graph(uri: str, user: str, password: str, database: str) -> EntityGraph:
    """The entity graph of an index whose graph lives in Neo4j (ids and names only; one read transaction)."""
    from kgbuild.connectors.neo4j_graph import Neo4jGraphSink

    sink = Neo4jGraphSink(uri, user, password, database)
    result = EntityGraph()
    try:
        for record in sink.run_read("MATCH (e:Entity) RETURN e.id AS id, e.key AS key, e.type AS type, e.name AS name, e.aliases AS aliases"):
            result.add_entity(_entity(record["id"], record))
        for record in sink.run_read("MATCH (c:Chunk)-[:MENTIONS]->(e:Entity) RETURN DISTINCT c.id AS chunk, e.id AS entity"):
            result.add_mention(record["chunk"], record["entity"])
        for record in sink.run_read("MATCH (h:Entity)-[r]->(t:Entity) RETURN h.id AS head, type(r) AS label, t.id AS tail"):
            result.add_relation(record["head"], record["label"], record["tail"])
    finally:
        sink.close()
    return result


def _entity(entity_id: str, data: Mapping[str, Any]) -> GraphEntity:
    key = data.get("key") or ""
    entity_type = data.get("type") or key.split(":", 1)[0]
    aliases = data.get("aliases") or ()
    if isinstance(aliases, str):  # Neo4j may keep a list as JSON text
        try:
            aliases = json.loads(aliases)
        except ValueError:
            aliases = [aliases]
    return GraphEntity(entity_id, key, entity_type, data.get("name") or key.split(":", 1)[-1], tuple(aliases))
