"""Reading a kgbuild graph back out of Neo4j, with plain Cypher: the whole graph, or the entity graph.

Both readers take ``read(query, **params) -> list of record dicts`` (the sink's ``run_read``),
so they need no driver of their own:

>>> export_graph(sink.run_read).documents
"""

from __future__ import annotations

import json
from typing import Any, Callable

from kgbuild.connectors.neo4j.values import decode_properties
from kgbuild.types import STRUCTURAL_EDGES, Entity, EntityGraphData, GraphExport

ReadRecords = Callable[..., list[dict[str, Any]]]

# other applications' nodes in the same database are none of kgbuild's business
OURS = "(n:Document OR n:Chunk OR n:Entity)"


def export_graph(read: ReadRecords) -> GraphExport:
    """The whole database in the store-independent export form.

    Nodes without a Document, Chunk or Entity label belong to someone else and are left out;
    what kgbuild would not have written (other labels on its nodes, an entity without its
    type label, evidence ids out of step with the evidence) is listed under "problems".
    """
    out = GraphExport()
    problems = out.problems
    for row in read(f"MATCH (n) WHERE {OURS} RETURN labels(n) AS labels, properties(n) AS props"):
        labels, p = set(row["labels"]), decode_properties(row["props"])
        if labels == {"Document"}:
            out.documents[p["id"]] = {
                **{k: p[k] for k in ("path", "source_path", "title", "content_hash")},
                "classifications": json.loads(p["classifications"]),
            }
        elif labels == {"Chunk"}:
            out.chunks[p["id"]] = {
                **{k: p[k] for k in ("doc_id", "position", "start", "end", "text", "token_count")},
                "classifications": json.loads(p["classifications"]),
            }
        elif "Entity" in labels:
            if labels != {"Entity", p.get("type")}:
                problems.append(f"entity {p.get('id')!r} has labels {sorted(labels)}")
            out.entities[p["id"]] = {k: p[k] for k in ("type", "key", "name", "aliases", "mention_count", "confidence")}
        else:
            problems.append(f"node {p.get('id')!r} has labels {sorted(labels)}")
    query = (
        f"MATCH (h)-[x]->(t) WHERE {OURS.replace('n:', 'h:')} OR {OURS.replace('n:', 't:')} "
        "RETURN h.id AS head, labels(h) AS head_labels, t.id AS tail, "
        "labels(t) AS tail_labels, type(x) AS type, properties(x) AS props"
    )
    for row in read(query):
        edge_type, head, tail, p = row["type"], row["head"], row["tail"], decode_properties(row["props"])
        ends = (set(row["head_labels"]), set(row["tail_labels"]))
        if edge_type == "HAS_CHUNK":
            if ends != ({"Document"}, {"Chunk"}) or p:
                problems.append(f"HAS_CHUNK {head!r}->{tail!r} joins {ends} with properties {sorted(p)}")
            out.has_chunk.append([head, tail])
        elif edge_type == "NEXT_CHUNK":
            if ends != ({"Chunk"}, {"Chunk"}) or p:
                problems.append(f"NEXT_CHUNK {head!r}->{tail!r} joins {ends} with properties {sorted(p)}")
            out.next_chunk.append([head, tail])
        elif edge_type == "MENTIONS":
            if ends[0] != {"Chunk"} or "Entity" not in ends[1]:
                problems.append(f"MENTIONS {head!r}->{tail!r} joins {ends}")
            out.mentions.append(
                {
                    "id": p["id"],
                    "chunk_id": head,
                    "entity_id": tail,
                    **{k: p[k] for k in ("doc_id", "label", "text", "start", "end", "confidence")},
                }
            )
        else:
            if "Entity" not in ends[0] or "Entity" not in ends[1]:
                problems.append(f"{edge_type} {head!r}->{tail!r} joins {ends}")
            evidence = [json.loads(e) for e in p.get("evidence", [])]
            if p.get("evidence_chunk_ids") != [e["chunk_id"] for e in evidence]:
                problems.append(f"{edge_type} {head!r}->{tail!r}: evidence_chunk_ids out of step with evidence")
            out.relations.append(
                {
                    "id": p.get("id"),
                    "label": edge_type,
                    "head_id": head,
                    "tail_id": tail,
                    "confidence": p.get("confidence"),
                    "count": p.get("count"),
                    "evidence": evidence,
                }
            )
    return out


def read_entity_graph(read: ReadRecords) -> EntityGraphData:
    """Entities with names and aliases, chunk-entity pairs and relation edges, in three reads."""
    out = EntityGraphData()
    for record in read(
        "MATCH (e:Entity) RETURN e.id AS id, e.key AS key, e.type AS type, e.name AS name, e.aliases AS aliases,"
        " e.mention_count AS mention_count, e.confidence AS confidence"
    ):
        aliases = record["aliases"] or []
        if isinstance(aliases, str):  # a list kept as JSON text
            aliases = json.loads(aliases)
        out.entities[record["id"]] = Entity(record["id"], record["type"], record["key"], record["name"] or "",
                                            list(aliases), record["mention_count"] or 0, record["confidence"] or 0.0)
    for record in read("MATCH (c:Chunk)-[:MENTIONS]->(e:Entity) RETURN DISTINCT c.id AS chunk, e.id AS entity"):
        out.mentions.append((record["chunk"], record["entity"]))
    for record in read(
        "MATCH (h:Entity)-[r]->(t:Entity) WHERE NOT type(r) IN $structural RETURN h.id AS head, type(r) AS label, t.id AS tail",
        structural=sorted(STRUCTURAL_EDGES),
    ):
        out.relations.append((record["head"], record["label"], record["tail"]))
    return out
