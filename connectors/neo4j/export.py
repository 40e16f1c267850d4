"""Reading a kgbuild graph back out of Neo4j, with plain Cypher: the whole graph, or the entity graph.

Both readers take ``read(query, **params) -> list of record dicts`` (the sink's ``run_read``),
so they need no driver of their own:

>>> export_graph(sink.run_read).documents
"""

from __future__ import annotations

import json
from typing import Any, Callable

from kgbuild.connectors.neo4j.values import decode_properties
from kgbuild.types import STRUCTURAL_EDGES, Entity, EntityGraphData, EntityRecord, GraphExport, MentionRecord

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
            out.entities[p["id"]] = _entity_record(p)
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
        elif edge_type == "IN_COMMUNITY" and ends[1] == {"Community"}:
            continue  # communities are derived data: GraphSink.communities() reads them
        elif edge_type == "MENTIONS":
            if ends[0] != {"Chunk"} or "Entity" not in ends[1]:
                problems.append(f"MENTIONS {head!r}->{tail!r} joins {ends}")
            out.mentions.append(mention_record(head, tail, p))
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


def _alias_counts(value: Any) -> dict[str, int]:
    """The JSON text an entity keeps its counts per alias in (absent from graphs written before it was kept)."""
    return dict(json.loads(value)) if value else {}


def _entity_record(p: dict[str, Any]) -> EntityRecord:
    record = {k: p[k] for k in ("type", "key", "name", "aliases", "mention_count", "confidence")}
    record["alias_counts"] = _alias_counts(p.get("alias_counts"))
    return record  # type: ignore[return-value]


def mention_record(chunk: str, entity: str, p: dict[str, Any]) -> MentionRecord:
    """A MENTIONS relationship's (decoded) properties as the export has them; one written before resolution
    reasons were recorded has an unrecorded (empty) rule."""
    return {  # type: ignore[return-value]
        "id": p["id"],
        "chunk_id": chunk,
        "entity_id": entity,
        **{k: p[k] for k in ("doc_id", "label", "text", "start", "end", "confidence")},
        "rule": p.get("rule", ""),
        "via": p.get("via", ""),
    }


def read_entities(read: ReadRecords) -> dict[str, Entity]:
    """Every entity with its name, aliases (with counts) and counts, in one read."""
    out: dict[str, Entity] = {}
    for record in read("MATCH (e:Entity) RETURN properties(e) AS props"):
        p = decode_properties(record["props"])
        aliases = p.get("aliases") or []
        if isinstance(aliases, str):  # a list kept as JSON text
            aliases = json.loads(aliases)
        out[p["id"]] = Entity(p["id"], p["type"], p["key"], p.get("name") or "", list(aliases), p.get("mention_count") or 0,
                              p.get("confidence") or 0.0, _alias_counts(p.get("alias_counts")))
    return out


def read_entity_mentions(read: ReadRecords, entity_ids: list[str]) -> list[MentionRecord]:
    """The MENTIONS of the given entities, as the export has them, in one read."""
    rows = read(
        "UNWIND $ids AS id MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity {id: id}) "
        "RETURN c.id AS chunk, e.id AS entity, properties(m) AS props",
        ids=list(dict.fromkeys(entity_ids)),
    )
    return [mention_record(row["chunk"], row["entity"], decode_properties(row["props"])) for row in rows]


def read_entity_graph(read: ReadRecords, mentions: bool = True) -> EntityGraphData:
    """Entities with names and aliases, chunk-entity pairs (``mentions``) and relation edges, in three reads."""
    out = EntityGraphData()
    out.entities = read_entities(read)
    if mentions:
        for record in read("MATCH (c:Chunk)-[:MENTIONS]->(e:Entity) RETURN DISTINCT c.id AS chunk, e.id AS entity"):
            out.mentions.append((record["chunk"], record["entity"]))
    for record in read(
        "MATCH (h:Entity)-[r]->(t:Entity) WHERE NOT type(r) IN $structural RETURN h.id AS head, type(r) AS label, t.id AS tail",
        structural=sorted(STRUCTURAL_EDGES),
    ):
        out.relations.append((record["head"], record["label"], record["tail"]))
    return out
