"""The embedded graph sink: a NetworkX MultiDiGraph persisted as node-link JSON.

Nodes carry ``kind`` = Document | Chunk | Entity. Edges carry ``type``:
HAS_CHUNK (document -> chunk), NEXT_CHUNK (chunk -> chunk), MENTIONS (chunk -> entity,
one per mention, with start/end/confidence/text and the resolution rule/via that put it in
its entity), and one edge per relation type
between two entities (``type`` = the relation label, with confidence, count and
evidence). ``Community`` nodes (``kgbuild.communities``) have ``IN_COMMUNITY`` edges (``level``) from their
member entities and ``SUBCOMMUNITY_OF`` to their parent. Node-link JSON is NetworkX's own lossless format: ``load_graph`` gives
back the same graph, attributes and edge keys included.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from kgbuild.connectors.graph_records import evidence_record, merge_evidence, scores_record
from kgbuild.reconcile import SurfaceTally
from kgbuild.state import write_text_atomic
from kgbuild.types import (
    STRUCTURAL_EDGES, CommunityRecord, Entity, EntityGraphData, EntityRecord, GraphBatch, GraphExport, IndexStats, MentionRecord,
)

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx  # imported where a graph is loaded (about 0.3 s): reading entities from the file needs none



def load_graph(path: str | Path) -> nx.MultiDiGraph:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    import networkx as nx

    return nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")


def save_graph(graph: nx.MultiDiGraph, path: str | Path) -> None:
    """Atomic: a temporary file beside the target, fsynced, renamed over it.

    The same node-link JSON as ``nx.node_link_data``, written a node and an edge at a time: no
    copy of the graph and no whole-file string in memory (the peak of a save was 3x the graph).
    """
    write_text_atomic(Path(path), _node_link_pieces(graph), prefix=".graph-")


def _node_link_pieces(g: nx.MultiDiGraph) -> Iterator[str]:
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))

    yield f'{{"directed":true,"multigraph":true,"graph":{dumps(g.graph)},"nodes":['
    for i, (node, data) in enumerate(g.nodes(data=True)):
        yield ("," if i else "") + dumps({**data, "id": node})
    yield '],"edges":['
    for i, (u, v, k, data) in enumerate(g.edges(keys=True, data=True)):
        yield ("," if i else "") + dumps({**data, "source": u, "target": v, "key": k})
    yield "]}"


def export_graph(g: nx.MultiDiGraph) -> GraphExport:
    """A graph in the store-independent export form; what kgbuild would not write goes to ``problems``."""
    out = GraphExport()
    for node, data in g.nodes(data=True):
        kind = data.get("kind")
        if kind == "Document":
            out.documents[node] = {k: data[k] for k in ("path", "source_path", "title", "content_hash", "classifications")}
        elif kind == "Chunk":
            out.chunks[node] = {
                k: data[k] for k in ("doc_id", "position", "start", "end", "text", "token_count", "classifications")
            }
        elif kind == "Entity":
            out.entities[node] = _entity_record(data)
        elif kind != "Community":  # communities are derived data: GraphSink.communities() reads them
            out.problems.append(f"node {node!r} has unknown kind {kind!r}")
    for head, tail, key, data in g.edges(keys=True, data=True):
        edge_type = data.get("type")
        if edge_type in _COMMUNITY_EDGES:
            continue
        if edge_type == "HAS_CHUNK":
            out.has_chunk.append([head, tail])
        elif edge_type == "NEXT_CHUNK":
            out.next_chunk.append([head, tail])
        elif edge_type == "MENTIONS":
            out.mentions.append(_mention_record(head, tail, key, data))
        else:
            if key != edge_type:
                out.problems.append(f"relation edge {head!r}->{tail!r} is keyed {key!r}, not by its label {edge_type!r}")
            out.relations.append(
                {
                    "id": data["id"],
                    "label": edge_type,
                    "head_id": head,
                    "tail_id": tail,
                    "confidence": data["confidence"],
                    "count": data["count"],
                    "evidence": data["evidence"],
                }
            )
    return out


_COMMUNITY_EDGES = ("IN_COMMUNITY", "SUBCOMMUNITY_OF")


def _community_attributes(c: CommunityRecord) -> dict[str, Any]:
    return {"kind": "Community", "level": c.level, "title": c.title, "parent": c.parent, "size": c.size,
            "top_entities": list(c.top_entities), "top_terms": list(c.top_terms), "summary": c.summary}


def _entity_record(data: dict[str, Any]) -> EntityRecord:
    record = {k: data[k] for k in ("type", "key", "name", "aliases", "mention_count", "confidence")}
    record["alias_counts"] = dict(data.get("alias_counts") or {})  # absent from graphs written before it was kept
    return record  # type: ignore[return-value]


def _mention_record(chunk: str, entity: str, key: str, data: dict[str, Any]) -> MentionRecord:
    return {  # type: ignore[return-value]
        "id": key,
        "chunk_id": chunk,
        "entity_id": entity,
        **{k: data[k] for k in ("doc_id", "label", "text", "start", "end", "confidence")},
        # graphs written before reasons were recorded have none: unrecorded
        "rule": data.get("rule", ""),
        "via": data.get("via", ""),
    }


def _entity(node: str, data: dict[str, Any]) -> Entity:
    return Entity(node, data["type"], data["key"], data.get("name", ""), list(data.get("aliases", [])),
                  data.get("mention_count", 0), data.get("confidence", 0.0), dict(data.get("alias_counts") or {}))


def read_entity_graph(path: Path, mentions: bool = True) -> EntityGraphData:
    """``entity_graph()`` of a graph file not loaded yet, read as plain JSON: building the whole MultiDiGraph
    first (``nx.node_link_graph``) cost more than everything else a hybrid query does on open.

    The result equals the loaded graph's: entities in node order, edges in the order ``edges()`` gives
    them (by source node, then target, then key).
    """
    out = EntityGraphData()
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    nodes: dict[str, None] = {}  # every node, in the order the MultiDiGraph would hold them
    for node in data.get("nodes", []):
        nodes[node["id"]] = None
        if node.get("kind") == "Entity":
            out.entities[node["id"]] = _entity(node["id"], node)
    by_source: dict[str, dict[str, list[str | None]]] = {}
    for edge in data.get("edges", []):
        head, tail = edge["source"], edge["target"]
        nodes.setdefault(head, None)
        nodes.setdefault(tail, None)
        by_source.setdefault(head, {}).setdefault(tail, []).append(edge.get("type"))
    edges = ((head, tail, edge_type) for head in nodes
             for tail, edge_types in by_source.get(head, {}).items() for edge_type in edge_types)
    return _add_edges(out, edges, mentions)


def _add_edges(out: EntityGraphData, edges: Iterable[tuple[str, str, str | None]], mentions: bool = True) -> EntityGraphData:
    """(head, tail, type) edges in the graph's order: one mention pair per chunk and entity (``mentions``), and the
    relations."""
    seen: set[tuple[str, str]] = set()
    for head, tail, edge_type in edges:
        if edge_type == "MENTIONS":
            if mentions and (head, tail) not in seen:
                seen.add((head, tail))
                out.mentions.append((head, tail))
        elif edge_type not in STRUCTURAL_EDGES:
            out.relations.append((head, edge_type, tail))
    return out


class NetworkXGraphSink:
    """
    >>> sink = NetworkXGraphSink(".kgbuild/graph.json"); sink.open(); sink.write(batch); sink.close()
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.graph: nx.MultiDiGraph | None = None
        self._dirty = False
        # surface forms per entity, kept up to date so a write costs its own mentions, not every
        # mention a common entity ever had (built on an entity's first touch in this process)
        self._tallies: dict[str, SurfaceTally] = {}

    def open(self) -> None:
        """Nothing to connect to: the graph file is loaded on the first read or write that needs it
        (``entity_graph()`` reads the file without building the whole graph)."""

    def _g(self) -> nx.MultiDiGraph:
        if self.graph is None:
            import networkx as nx

            self.graph = load_graph(self.path) if self.path.exists() else nx.MultiDiGraph()
        return self.graph

    # -- writing -------------------------------------------------------------------

    def write(self, batch: GraphBatch) -> None:
        g = self._g()
        self.remove_documents([d.document.id for d in batch.documents])
        touched: set[str] = set()
        for extracted in batch.documents:
            doc = extracted.document
            g.add_node(
                doc.id,
                kind="Document",
                path=doc.path,
                source_path=doc.source_path,
                title=doc.title,
                mtime=doc.mtime,
                content_hash=doc.content_hash,
                classifications=scores_record(extracted.classifications),
                metadata=dict(doc.metadata),
            )
            previous: str | None = None
            for extraction in extracted.extractions:
                chunk = extraction.chunk
                g.add_node(
                    chunk.id,
                    kind="Chunk",
                    doc_id=chunk.doc_id,
                    position=chunk.position,
                    start=chunk.start,
                    end=chunk.end,
                    text=chunk.text,
                    token_count=chunk.token_count,
                    classifications=scores_record(extraction.classifications),
                    structures=[{"name": s.name, "fields": s.fields} for s in extraction.structures],
                )
                g.add_edge(doc.id, chunk.id, key="HAS_CHUNK", type="HAS_CHUNK")
                if previous is not None:
                    g.add_edge(previous, chunk.id, key="NEXT_CHUNK", type="NEXT_CHUNK")
                previous = chunk.id
                for mention in extraction.mentions:
                    eid = batch.mention_entity[mention.id]
                    entity = batch.entities[eid]
                    if eid not in g:
                        g.add_node(eid, kind="Entity", type=entity.type, key=entity.key)
                    reason = batch.reason(mention.id)
                    g.add_edge(
                        chunk.id,
                        eid,
                        key=mention.id,
                        type="MENTIONS",
                        doc_id=mention.doc_id,
                        label=mention.label,
                        text=mention.text,
                        start=mention.start,
                        end=mention.end,
                        confidence=round(mention.confidence, 6),
                        rule=reason.rule,
                        via=reason.via,
                    )
                    tally = self._tallies.get(eid)
                    if tally is not None:
                        tally.add(mention.doc_id, mention.start, mention.end, mention.text, round(mention.confidence, 6))
                    touched.add(eid)
        for relation in batch.relations:
            evidence = [evidence_record(e) for e in relation.evidence]
            if g.has_edge(relation.head_id, relation.tail_id, key=relation.label):
                data = g.edges[relation.head_id, relation.tail_id, relation.label]
                evidence = merge_evidence(data["evidence"], evidence)
            g.add_edge(
                relation.head_id,
                relation.tail_id,
                key=relation.label,
                type=relation.label,
                id=relation.id,
                evidence=evidence,
                count=len(evidence),
                confidence=max(e["confidence"] for e in evidence),
            )
        self._refresh_entities(touched)
        self._dirty = True

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        g = self._g()
        doc_set = {d for d in doc_ids if d in g and g.nodes[d].get("kind") == "Document"}
        if not doc_set:
            return
        touched: set[str] = set()
        for doc_id in doc_set:
            chunks = [c for _, c, k in g.out_edges(doc_id, keys=True) if k == "HAS_CHUNK"]
            spans: dict[str, list[tuple[int, int]]] = {}
            for chunk in chunks:
                for _, eid, d in g.out_edges(chunk, data=True):
                    if d.get("type") == "MENTIONS":
                        spans.setdefault(eid, []).append((d["start"], d["end"]))
            for eid, entity_spans in spans.items():
                if eid in self._tallies:
                    self._tallies[eid].remove_document(doc_id, entity_spans)
            touched.update(spans)
            g.remove_nodes_from(chunks)
            g.remove_node(doc_id)
        for eid in touched:
            for head, tail, key, data in list(g.out_edges(eid, keys=True, data=True)) + list(
                g.in_edges(eid, keys=True, data=True)
            ):
                if data.get("type") in STRUCTURAL_EDGES or not g.has_edge(head, tail, key):
                    continue
                kept = [e for e in data["evidence"] if e["doc_id"] not in doc_set]
                if not kept:
                    g.remove_edge(head, tail, key)
                elif len(kept) != len(data["evidence"]):
                    data.update(evidence=kept, count=len(kept), confidence=max(e["confidence"] for e in kept))
        self._refresh_entities(touched)
        self._dirty = True

    def replace_communities(self, communities: Sequence[CommunityRecord]) -> None:
        g = self._g()
        g.remove_nodes_from([n for n, d in g.nodes(data=True) if d.get("kind") == "Community"])
        for c in sorted(communities, key=lambda c: (c.level, c.id)):
            g.add_node(c.id, **_community_attributes(c))
            for member in c.members:
                if member in g and g.nodes[member].get("kind") == "Entity":
                    g.add_edge(member, c.id, key="IN_COMMUNITY", type="IN_COMMUNITY", level=c.level)
        for c in communities:
            if c.parent and c.parent in g:
                g.add_edge(c.id, c.parent, key="SUBCOMMUNITY_OF", type="SUBCOMMUNITY_OF")
        self._dirty = True

    def _refresh_entities(self, entity_ids: Iterable[str]) -> None:
        """Recompute name, aliases and counts from the mentions that remain, whoever wrote them."""
        g = self._g()
        for eid in entity_ids:
            if eid not in g:
                self._tallies.pop(eid, None)
                continue
            tally = self._tallies.get(eid)
            if tally is None:
                tally = self._tallies[eid] = SurfaceTally()
                for _, _, d in g.in_edges(eid, data=True):
                    if d.get("type") == "MENTIONS":
                        tally.add(d["doc_id"], d["start"], d["end"], d["text"], d["confidence"])
            if not len(tally):
                g.remove_node(eid)
                del self._tallies[eid]
                continue
            summary = tally.summary()
            g.nodes[eid].update(
                name=summary.name,
                aliases=summary.aliases,
                alias_counts=summary.alias_counts,
                mention_count=summary.mention_count,
                confidence=summary.confidence,
            )

    # -- reading ---------------------------------------------------------------------

    def export(self) -> GraphExport:
        return export_graph(self._g())

    def entities(self) -> dict[str, Entity]:
        if self.graph is None:
            return read_entity_graph(self.path).entities
        return {node: _entity(node, data) for node, data in self.graph.nodes(data=True) if data.get("kind") == "Entity"}

    def entity_mentions(self, entity_ids: Sequence[str]) -> list[MentionRecord]:
        g = self._g()
        out: list[MentionRecord] = []
        for eid in dict.fromkeys(entity_ids):
            if eid in g and g.nodes[eid].get("kind") == "Entity":
                out += [_mention_record(head, eid, key, data) for head, _, key, data in g.in_edges(eid, keys=True, data=True)
                        if data.get("type") == "MENTIONS"]
        return out

    def communities(self) -> list[CommunityRecord]:
        g = self._g()
        out = []
        for node, d in g.nodes(data=True):
            if d.get("kind") == "Community":
                members = sorted(h for h, _, k in g.in_edges(node, keys=True) if k == "IN_COMMUNITY")
                out.append(CommunityRecord(node, int(d["level"]), d.get("title", ""), d.get("parent") or "", tuple(members),
                                           tuple(d.get("top_entities") or ()), tuple(d.get("top_terms") or ()),
                                           d.get("summary", "")))
        return sorted(out, key=lambda c: (c.level, c.id))

    def entity_graph(self, *, mentions: bool = True) -> EntityGraphData:
        if self.graph is None:
            return read_entity_graph(self.path, mentions)
        g = self.graph
        out = EntityGraphData()
        for node, data in g.nodes(data=True):
            if data.get("kind") == "Entity":
                out.entities[node] = _entity(node, data)
        return _add_edges(out, ((head, tail, data.get("type")) for head, tail, data in g.edges(data=True)), mentions)

    def stats(self) -> IndexStats:
        g = self._g()
        kinds: Counter[str] = Counter()
        entity_types: Counter[str] = Counter()
        for _, data in g.nodes(data=True):
            kinds[data.get("kind", "")] += 1
            if data.get("kind") == "Entity":
                entity_types[data["type"]] += 1
        relation_types: Counter[str] = Counter()
        mention_spans: set[tuple[Any, ...]] = set()
        for _, target, data in g.edges(data=True):
            edge_type = data.get("type")
            if edge_type == "MENTIONS":
                mention_spans.add((data["doc_id"], data["start"], data["end"], target))
            elif edge_type not in STRUCTURAL_EDGES:
                relation_types[edge_type] += 1
        return IndexStats(
            documents=kinds["Document"],
            chunks=kinds["Chunk"],
            mentions=len(mention_spans),
            entities=kinds["Entity"],
            relations=sum(relation_types.values()),
            entities_by_type=dict(sorted(entity_types.items())),
            relations_by_type=dict(sorted(relation_types.items())),
        )

    def flush(self) -> None:
        if self.graph is not None and self._dirty:
            save_graph(self.graph, self.path)
            self._dirty = False

    def close(self) -> None:
        self.flush()
