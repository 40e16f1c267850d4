"""The Cypher the Neo4j sink runs, and the transaction functions that run it.

The driver may run a transaction function more than once (it retries transient failures),
so each one only reads and sets: running it again gives the same graph. A write is
prepared in full (:func:`prepare_write`: every name checked, every value encoded) before
:func:`write_prepared` runs its first statement, in transactions of at most
``batch_size`` rows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence, TypeVar

from kgbuild.connectors.graph_records import evidence_record, merge_evidence, scores_record
from kgbuild.connectors.neo4j.values import (
    decode_properties,
    encode_properties,
    entity_label,
    relation_properties,
    relation_type,
    to_json,
)
from kgbuild.hooks import reached
from kgbuild.reconcile import summarize_surfaces
from kgbuild.types import STRUCTURAL_EDGES, CommunityRecord, GraphBatch, IndexStats

T = TypeVar("T")

CONSTRAINTS = (
    "CREATE CONSTRAINT kgbuild_document_id IF NOT EXISTS FOR (n:Document) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgbuild_chunk_id IF NOT EXISTS FOR (n:Chunk) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgbuild_entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX kgbuild_entity_key IF NOT EXISTS FOR (n:Entity) ON (n.key)",
    "CREATE CONSTRAINT kgbuild_community_id IF NOT EXISTS FOR (n:Community) REQUIRE n.id IS UNIQUE",
)

WRITE_DOCUMENTS = "UNWIND $rows AS r MERGE (d:Document {id: r.id}) SET d = r"
WRITE_CHUNKS = (
    "UNWIND $rows AS r MERGE (c:Chunk {id: r.id}) SET c = r.props "
    "WITH c, r MATCH (d:Document {id: r.doc}) MERGE (d)-[:HAS_CHUNK]->(c)"
)
WRITE_NEXT_CHUNKS = (
    "UNWIND $rows AS r MATCH (a:Chunk {id: r.a}) MATCH (b:Chunk {id: r.b}) MERGE (a)-[:NEXT_CHUNK]->(b)"
)
WRITE_MENTIONS = (
    "UNWIND $rows AS r MATCH (c:Chunk {id: r.chunk}) MATCH (e:Entity {id: r.entity}) "
    "MERGE (c)-[m:MENTIONS {id: r.props.id}]->(e) SET m = r.props"
)
CLEAR_DATABASE = "MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"


def write_entities(label: str) -> str:
    """Entities of one type; ``label`` is already quoted (:func:`~kgbuild.connectors.neo4j.values.entity_label`)."""
    return f"UNWIND $rows AS r MERGE (e:Entity {{id: r.id}}) ON CREATE SET e += r.props SET e:{label}"


def batches(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """``rows`` in lists of ``size``; a generator's rows are made one batch at a time."""
    it = iter(rows)
    while part := list(islice(it, size)):
        yield part


# -- transaction functions ---------------------------------------------------------------------


def run_tx(tx: Any, query: str) -> None:
    tx.run(query).consume()


def consume_tx(tx: Any, query: str, rows: Sequence[Any]) -> None:
    tx.run(query, rows=list(rows)).consume()


def refresh_entities_tx(tx: Any, entity_ids: Sequence[str]) -> None:
    """Recompute name, aliases and counts (per alias too) from the MENTIONS that remain; drop entities with none."""
    result = tx.run(
        "UNWIND $ids AS id MATCH (e:Entity {id: id}) "
        "OPTIONAL MATCH ()-[m:MENTIONS]->(e) "
        "RETURN id, collect(properties(m)) AS mentions",
        ids=list(entity_ids),
    )
    updates: list[dict[str, Any]] = []
    gone: list[str] = []
    for record in result:
        mentions = [decode_properties(m) for m in record["mentions"]]
        if not mentions:
            gone.append(record["id"])
            continue
        summary = summarize_surfaces((m["doc_id"], m["start"], m["end"], m["text"], m["confidence"]) for m in mentions)
        props = {
            "name": summary.name,
            "aliases": summary.aliases,
            "alias_counts": to_json(summary.alias_counts),  # a map is no property value: JSON text
            "mention_count": summary.mention_count,
            "confidence": summary.confidence,
        }
        updates.append({"id": record["id"], "props": encode_properties(props, clear=("name", "aliases"))})
    if updates:
        tx.run("UNWIND $rows AS r MATCH (e:Entity {id: r.id}) SET e += r.props", rows=updates).consume()
    if gone:
        tx.run("UNWIND $ids AS id MATCH (e:Entity {id: id}) DETACH DELETE e", ids=gone).consume()


def remove_documents_tx(tx: Any, doc_ids: Sequence[str]) -> int:
    found = tx.run("UNWIND $ids AS id MATCH (d:Document {id: id}) RETURN d.id AS id", ids=list(doc_ids)).value("id")
    if not found:
        return 0
    touched = tx.run(
        "UNWIND $ids AS id MATCH (:Document {id: id})-[:HAS_CHUNK]->(:Chunk)-[:MENTIONS]->(e:Entity) "
        "RETURN DISTINCT e.id AS id",
        ids=found,
    ).value("id")
    tx.run(
        "UNWIND $ids AS id MATCH (:Document {id: id})-[:HAS_CHUNK]->(c:Chunk) DETACH DELETE c", ids=found
    ).consume()
    tx.run("UNWIND $ids AS id MATCH (d:Document {id: id}) DETACH DELETE d", ids=found).consume()
    if not touched:
        return len(found)
    # relation evidence from the removed documents goes; a relation with none left goes too
    removed = set(found)
    # (a relationship is named by its ends and type: a lookup by elementId scans every relationship)
    result = tx.run(
        "UNWIND $ids AS id MATCH (e:Entity {id: id})-[x]-(:Entity) WHERE NOT type(x) IN $structural "
        "RETURN DISTINCT startNode(x).id AS head, endNode(x).id AS tail, type(x) AS type, x.evidence AS evidence",
        ids=touched,
        structural=sorted(STRUCTURAL_EDGES),
    )
    deleted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for record in result:
        evidence = [json.loads(e) for e in record["evidence"] or []]
        kept = [e for e in evidence if e["doc_id"] not in removed]
        ends = {"head": record["head"], "tail": record["tail"], "type": record["type"]}
        if not kept:
            deleted.append(ends)
        elif len(kept) != len(evidence):
            props = relation_properties("", kept)
            del props["id"]
            updated.append({**ends, "props": props})
    match = "UNWIND $rows AS r MATCH (:Entity {id: r.head})-[x]->(:Entity {id: r.tail}) WHERE type(x) = r.type "
    if deleted:
        tx.run(match + "DELETE x", rows=deleted).consume()
    if updated:
        tx.run(match + "SET x += r.props", rows=updated).consume()
    refresh_entities_tx(tx, touched)
    return len(found)


def merge_relations_tx(tx: Any, rel_type: str, rows: Sequence[dict[str, Any]]) -> None:
    """Add the rows' evidence to the relationships of one type, creating those that are new.

    ``write()`` removes the batch's documents first, so what a relationship already holds is
    evidence from other documents, which never coincides with the new evidence: merging is
    appending, done by the server in the same statement (no read-back round trip).
    """
    out = [{"head": row["head"], "tail": row["tail"], "props": relation_properties(row["id"], row["evidence"])} for row in rows]
    tx.run(
        "UNWIND $rows AS r MATCH (h:Entity {id: r.head}) MATCH (t:Entity {id: r.tail}) "
        f"MERGE (h)-[x:{rel_type}]->(t) "
        "ON CREATE SET x = r.props "
        "ON MATCH SET x.evidence = x.evidence + r.props.evidence, "
        "x.evidence_chunk_ids = x.evidence_chunk_ids + r.props.evidence_chunk_ids, "
        "x.count = x.count + r.props.count, "
        "x.confidence = CASE WHEN r.props.confidence > x.confidence THEN r.props.confidence ELSE x.confidence END",
        rows=out,
    ).consume()
    reached("neo4j-transaction")  # tests: killed here, the server rolls this transaction back


def stats_tx(tx: Any) -> IndexStats:
    """The counts of ``GraphSink.stats()``, all read in one transaction."""
    documents = tx.run("MATCH (n:Document) RETURN count(n) AS n").single()["n"]
    chunks = tx.run("MATCH (n:Chunk) RETURN count(n) AS n").single()["n"]
    mentions = tx.run(
        "MATCH (:Chunk)-[m:MENTIONS]->(e:Entity) RETURN count(DISTINCT [m.doc_id, m.start, m.end, e.id]) AS n"
    ).single()["n"]
    entity_types: Counter[str] = Counter()
    for record in tx.run("MATCH (e:Entity) RETURN e.type AS type, count(*) AS n"):
        entity_types[record["type"]] += record["n"]
    relation_types: Counter[str] = Counter()
    for record in tx.run(
        "MATCH (:Entity)-[x]->(:Entity) WHERE NOT type(x) IN $structural RETURN type(x) AS type, count(*) AS n",
        structural=sorted(STRUCTURAL_EDGES),
    ):
        relation_types[record["type"]] += record["n"]
    return IndexStats(
        documents=documents,
        chunks=chunks,
        mentions=mentions,
        entities=sum(entity_types.values()),
        relations=sum(relation_types.values()),
        entities_by_type=dict(sorted(entity_types.items())),
        relations_by_type=dict(sorted(relation_types.items())),
    )


# -- sessions: a sequence of transactions ------------------------------------------------------


def create_constraints(session: Any) -> None:
    for statement in CONSTRAINTS:
        session.execute_write(run_tx, statement)


def run_batched(session: Any, query: str, rows: Iterable[Any], batch_size: int) -> None:
    for part in batches(rows, batch_size):
        session.execute_write(consume_tx, query, part)


def remove_documents(session: Any, doc_ids: Sequence[str], batch_size: int) -> None:
    for part in batches(list(doc_ids), batch_size):
        session.execute_write(remove_documents_tx, part)


@dataclass
class WriteRows:
    """A GraphBatch as the parameter rows of the write statements, keyed as those statements read them."""

    doc_ids: list[str] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)  # {id, doc, props}
    next_chunks: list[dict[str, str]] = field(default_factory=list)  # {a, b}
    entities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # quoted label -> [{id, props}]
    mentions: list[dict[str, Any]] = field(default_factory=list)  # {chunk, entity, props}
    # quoted relationship type -> (head id, tail id) -> {id, head, tail, evidence}
    relations: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    entity_ids: set[str] = field(default_factory=set)  # every entity the batch mentions


def prepare_write(batch: GraphBatch) -> WriteRows:
    """Check every name and encode every value of ``batch``; a SinkError here means nothing was written."""
    out = WriteRows()
    for extracted in batch.documents:
        doc = extracted.document
        out.doc_ids.append(doc.id)
        out.documents.append(
            encode_properties(
                {
                    "id": doc.id,
                    "path": doc.path,
                    "source_path": doc.source_path,
                    "title": doc.title,
                    "mtime": doc.mtime,
                    "content_hash": doc.content_hash,
                    "classifications": to_json(scores_record(extracted.classifications)),
                    "metadata": to_json(dict(doc.metadata)),
                }
            )
        )
        previous: str | None = None
        for extraction in extracted.extractions:
            chunk = extraction.chunk
            props = {
                "id": chunk.id,
                "doc_id": chunk.doc_id,
                "position": chunk.position,
                "start": chunk.start,
                "end": chunk.end,
                "text": chunk.text,
                "token_count": chunk.token_count,
                "classifications": to_json(scores_record(extraction.classifications)),
                "structures": to_json([{"name": s.name, "fields": s.fields} for s in extraction.structures]),
            }
            out.chunks.append({"id": chunk.id, "doc": doc.id, "props": encode_properties(props)})
            if previous is not None:
                out.next_chunks.append({"a": previous, "b": chunk.id})
            previous = chunk.id
            for mention in extraction.mentions:
                eid = batch.mention_entity[mention.id]
                entity = batch.entities[eid]
                if eid not in out.entity_ids:
                    out.entity_ids.add(eid)
                    out.entities.setdefault(entity_label(entity.type), []).append(
                        {"id": eid, "props": encode_properties({"id": eid, "type": entity.type, "key": entity.key})}
                    )
                reason = batch.reason(mention.id)
                mention_props = {
                    "id": mention.id,
                    "doc_id": mention.doc_id,
                    "label": mention.label,
                    "text": mention.text,
                    "start": mention.start,
                    "end": mention.end,
                    "confidence": round(mention.confidence, 6),
                    "rule": reason.rule,
                    "via": reason.via,
                }
                out.mentions.append({"chunk": chunk.id, "entity": eid, "props": encode_properties(mention_props)})
    # relations: one row per (type, head, tail), merged in batch order like the NetworkX sink
    for relation in batch.relations:
        rel_type = relation_type(relation.label)
        evidence = [evidence_record(e) for e in relation.evidence]
        if not evidence:
            continue
        rows = out.relations.setdefault(rel_type, {})
        key = (relation.head_id, relation.tail_id)
        if key in rows:
            evidence = merge_evidence(rows[key]["evidence"], evidence)
        rows[key] = {"id": relation.id, "head": relation.head_id, "tail": relation.tail_id, "evidence": evidence}
    return out


def write_prepared(session: Any, rows: WriteRows, batch_size: int) -> None:
    """Replace the batch's documents: remove them, then write nodes, chunks, mentions and relations."""
    remove_documents(session, rows.doc_ids, batch_size)
    run_batched(session, WRITE_DOCUMENTS, rows.documents, batch_size)
    run_batched(session, WRITE_CHUNKS, rows.chunks, batch_size)
    run_batched(session, WRITE_NEXT_CHUNKS, rows.next_chunks, batch_size)
    for label, entity_rows in rows.entities.items():
        run_batched(session, write_entities(label), entity_rows, batch_size)
    run_batched(session, WRITE_MENTIONS, rows.mentions, batch_size)
    for rel_type, by_ends in rows.relations.items():
        for part in batches(list(by_ends.values()), batch_size):
            session.execute_write(merge_relations_tx, rel_type, part)
    for part in batches(sorted(rows.entity_ids), batch_size):
        session.execute_write(refresh_entities_tx, part)


# -- communities (kgbuild.communities) ---------------------------------------------------------------

READ_COMMUNITIES = (
    "MATCH (c:Community) OPTIONAL MATCH (e:Entity)-[:IN_COMMUNITY]->(c) "
    "RETURN properties(c) AS props, collect(e.id) AS members"
)
DELETE_COMMUNITIES = "UNWIND $ids AS id MATCH (c:Community {id: id}) DETACH DELETE c"
WRITE_COMMUNITIES = (
    "UNWIND $rows AS r MERGE (c:Community {id: r.id}) SET c = r.props "
    "WITH c, r OPTIONAL MATCH (c)-[x:SUBCOMMUNITY_OF]->() DELETE x "
    "WITH DISTINCT c, r OPTIONAL MATCH (:Entity)-[y:IN_COMMUNITY]->(c) DELETE y"
)
WRITE_COMMUNITY_MEMBERS = (
    "UNWIND $rows AS r MATCH (c:Community {id: r.id}) MATCH (e:Entity {id: r.entity}) "
    "MERGE (e)-[x:IN_COMMUNITY]->(c) SET x.level = r.level"
)
WRITE_COMMUNITY_PARENTS = (
    "UNWIND $rows AS r MATCH (c:Community {id: r.id}) MATCH (p:Community {id: r.parent}) MERGE (c)-[:SUBCOMMUNITY_OF]->(p)"
)


def community_properties(c: CommunityRecord) -> dict[str, Any]:
    return {"id": c.id, "level": c.level, "title": c.title, "parent": c.parent, "size": c.size,
            "top_entities": list(c.top_entities), "top_terms": list(c.top_terms), "summary": c.summary}


def community_record(props: dict[str, Any], members: Sequence[str]) -> CommunityRecord:
    return CommunityRecord(props["id"], int(props["level"]), props.get("title") or "", props.get("parent") or "",
                           tuple(sorted(members)), tuple(props.get("top_entities") or ()), tuple(props.get("top_terms") or ()),
                           props.get("summary") or "")


COMMUNITY_ROWS_PER_BATCH = 500


def replace_communities(session: Any, communities: Sequence[CommunityRecord], batch_size: int) -> None:
    """Rewrite only the communities that differ from the stored ones (properties, members or parent), delete
    those that are gone: after an ingest that changes a few documents most communities are unchanged."""
    stored = {}
    for record in session.execute_read(lambda tx: [r.data() for r in tx.run(READ_COMMUNITIES)]):
        c = community_record(decode_properties(record["props"]), record["members"])
        stored[c.id] = c
    wanted = {c.id: c for c in communities}
    gone = sorted(set(stored) - set(wanted))
    # members the store does not hold (an entity removed since) cannot differ: compare on what it can hold
    changed = [c for cid, c in sorted(wanted.items()) if stored.get(cid) != c]
    for part in batches(gone, batch_size):
        session.execute_write(lambda tx, ids: tx.run(DELETE_COMMUNITIES, ids=list(ids)).consume(), part)
    # rows made a batch at a time: every community's properties and every membership at once were tens of MiB;
    # a community's row carries its summary (kilobytes of representative text), so those go in smaller batches
    run_batched(session, WRITE_COMMUNITIES, ({"id": c.id, "props": encode_properties(community_properties(c))} for c in changed),
                min(batch_size, COMMUNITY_ROWS_PER_BATCH))
    run_batched(session, WRITE_COMMUNITY_MEMBERS,
                ({"id": c.id, "entity": e, "level": c.level} for c in changed for e in c.members), batch_size)
    run_batched(session, WRITE_COMMUNITY_PARENTS, ({"id": c.id, "parent": c.parent} for c in changed if c.parent), batch_size)


def read_communities(session: Any) -> list[CommunityRecord]:
    rows = session.execute_read(lambda tx: [r.data() for r in tx.run(READ_COMMUNITIES)])
    out = [community_record(decode_properties(r["props"]), r["members"]) for r in rows]
    return sorted(out, key=lambda c: (c.level, c.id))
