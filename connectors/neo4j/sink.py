"""The Neo4j graph sink: the graph of the NetworkX sink, in a Neo4j 5 database.

Nodes and relationships::

    (:Document {id, path, source_path, title, mtime, content_hash, classifications, metadata})
    (:Chunk {id, doc_id, position, start, end, text, token_count, classifications, structures})
    (:Entity:`<TYPE>` {id, type, key, name, aliases, mention_count, confidence})
    (:Document)-[:HAS_CHUNK]->(:Chunk)-[:NEXT_CHUNK]->(:Chunk)
    (:Chunk)-[:MENTIONS {id, doc_id, label, text, start, end, confidence}]->(:Entity)
    (:Entity)-[:`<RELATION>` {id, confidence, count, evidence, evidence_chunk_ids}]->(:Entity)

``classifications``, ``metadata`` and ``structures`` are JSON strings; ``evidence`` is a list
of JSON strings, one per piece of evidence. Entity names, aliases and counts are recomputed
from the MENTIONS that remain, with the same function as the NetworkX sink, so both sinks
hold the same graph for the same input (the conformance suite checks it).

Every value travels as a query parameter. Labels and relationship types cannot be
parameters: they must match ``^[A-Za-z][A-Za-z0-9_]*$`` (the extraction schema already
enforces it) and are quoted with backticks; anything else is a ``SinkError``.

Bolt carries UTF-8, which cannot hold a lone surrogate (JSON readers let ``"\\ud800"``
through into document text). A string property holding one is stored with U+FFFD in its
place, and the exact value, JSON-escaped, in a sibling property ``<name>__exact``;
:func:`decode_properties` gives the exact value back.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from kgbuild.connectors.graph_records import evidence_record, merge_evidence, scores_record
from kgbuild.errors import SinkError, TransientError
from kgbuild.faults import crash_point
from kgbuild.reconcile import summarize_surfaces
from kgbuild.types import STRUCTURAL_EDGES, Entity, EntityGraphData, GraphBatch, GraphExport, IndexStats

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
NODE_LABELS = frozenset({"Document", "Chunk", "Entity"})
EXACT_SUFFIX = "__exact"
DEFAULT_BATCH_SIZE = 5000
URI_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")

_SURROGATE = re.compile("[\ud800-\udfff]")
T = TypeVar("T")

CONSTRAINTS = (
    "CREATE CONSTRAINT kgbuild_document_id IF NOT EXISTS FOR (n:Document) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgbuild_chunk_id IF NOT EXISTS FOR (n:Chunk) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT kgbuild_entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX kgbuild_entity_key IF NOT EXISTS FOR (n:Entity) ON (n.key)",
)


# -- names and values ------------------------------------------------------------------------


def quote_name(name: Any, what: str = "label") -> str:
    """``COMPANY`` -> ``\\`COMPANY\\```; anything but ``[A-Za-z][A-Za-z0-9_]*`` is a SinkError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise SinkError(f"cannot use {name!r} as a Neo4j {what}: it must match ^[A-Za-z][A-Za-z0-9_]*$")
    return f"`{name}`"


def _entity_label(entity_type: Any) -> str:
    if entity_type in NODE_LABELS:
        raise SinkError(f"entity type {entity_type!r} collides with the node label {entity_type}")
    return quote_name(entity_type, "entity type label")


def _relation_type(label: Any) -> str:
    if label in STRUCTURAL_EDGES:
        raise SinkError(f"relation label {label!r} collides with the structural relationship {label}")
    return quote_name(label, "relationship type")


def _utf8_ok(text: str) -> bool:
    return _SURROGATE.search(text) is None


def _to_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if _utf8_ok(text) else json.dumps(value, ensure_ascii=True, default=str)


def encode_properties(props: dict[str, Any], *, clear: Iterable[str] = ()) -> dict[str, Any]:
    """Property map ready for Bolt: strings (or string lists) with a lone surrogate get an exact twin.

    ``clear`` names properties whose ``__exact`` twin is set to null when not needed (for ``SET +=``).
    """
    out: dict[str, Any] = {}
    for key, value in props.items():
        out[key] = value
        if isinstance(value, str):
            if not _utf8_ok(value):
                out[key] = _SURROGATE.sub("\ufffd", value)
                out[key + EXACT_SUFFIX] = json.dumps(value)
        elif isinstance(value, list) and any(isinstance(v, str) and not _utf8_ok(v) for v in value):
            out[key] = [_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for v in value]
            out[key + EXACT_SUFFIX] = json.dumps(value)
    for key in clear:
        out.setdefault(key + EXACT_SUFFIX, None)
    return out


def decode_properties(props: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`encode_properties`: exact values back in place, twins dropped."""
    out = {k: v for k, v in props.items() if not k.endswith(EXACT_SUFFIX)}
    for key, value in props.items():
        if key.endswith(EXACT_SUFFIX) and value is not None:
            out[key[: -len(EXACT_SUFFIX)]] = json.loads(value)
    return out


def _batches(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _relation_props(relation_id: str, evidence: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": relation_id,
        "confidence": max(e["confidence"] for e in evidence),
        "count": len(evidence),
        "evidence": [_to_json(e) for e in evidence],
        "evidence_chunk_ids": [e["chunk_id"] for e in evidence],
    }


# -- transaction functions (the driver may run each more than once: they only read and set) ----


def _consume(tx: Any, query: str, rows: Sequence[Any]) -> None:
    tx.run(query, rows=list(rows)).consume()


def _refresh_entities_tx(tx: Any, entity_ids: Sequence[str]) -> None:
    """Recompute name, aliases and counts from the MENTIONS that remain; drop entities with none."""
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
            "mention_count": summary.mention_count,
            "confidence": summary.confidence,
        }
        updates.append({"id": record["id"], "props": encode_properties(props, clear=("name", "aliases"))})
    if updates:
        tx.run("UNWIND $rows AS r MATCH (e:Entity {id: r.id}) SET e += r.props", rows=updates).consume()
    if gone:
        tx.run("UNWIND $ids AS id MATCH (e:Entity {id: id}) DETACH DELETE e", ids=gone).consume()


def _remove_documents_tx(tx: Any, doc_ids: Sequence[str]) -> int:
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
            props = _relation_props("", kept)
            del props["id"]
            updated.append({**ends, "props": props})
    match = "UNWIND $rows AS r MATCH (:Entity {id: r.head})-[x]->(:Entity {id: r.tail}) WHERE type(x) = r.type "
    if deleted:
        tx.run(match + "DELETE x", rows=deleted).consume()
    if updated:
        tx.run(match + "SET x += r.props", rows=updated).consume()
    _refresh_entities_tx(tx, touched)
    return len(found)


def _merge_relations_tx(tx: Any, rel_type: str, rows: Sequence[dict[str, Any]]) -> None:
    """Add the rows' evidence to the relationships of one type, creating those that are new.

    ``write()`` removes the batch's documents first, so what a relationship already holds is
    evidence from other documents, which never coincides with the new evidence: merging is
    appending, done by the server in the same statement (no read-back round trip).
    """
    out = [{"head": row["head"], "tail": row["tail"], "props": _relation_props(row["id"], row["evidence"])} for row in rows]
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
    crash_point("neo4j-transaction")  # tests: killed here, the server rolls this transaction back


# -- the sink --------------------------------------------------------------------------------


class Neo4jGraphSink:
    """
    >>> sink = Neo4jGraphSink("bolt://127.0.0.1:7687", password="..."); sink.open(); sink.write(batch); sink.close()

    The constructor does no I/O; ``open()`` connects and creates the uniqueness constraints.
    Writes go in explicit transactions of at most ``batch_size`` rows; the driver retries
    transient failures (with backoff) for up to ``retry_time`` seconds, after which they
    surface as ``kgbuild.errors.TransientError``; every other failure is a ``SinkError``.
    A write that fails part-way leaves its documents partly written: writing the same
    batch again (it replaces its documents) repairs them.
    """

    def __init__(
        self,
        uri: str = "bolt://127.0.0.1:7687",
        user: str = "neo4j",
        password: str = "",
        database: str = "neo4j",
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry_time: float = 30.0,
        connection_timeout: float = 10.0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.uri = uri
        self.user = user
        self.database = database
        self.batch_size = batch_size
        self.retry_time = retry_time
        self.connection_timeout = connection_timeout
        self.__password = password
        self._driver: Any = None

    def __repr__(self) -> str:
        return f"Neo4jGraphSink(uri={self.uri!r}, user={self.user!r}, database={self.database!r})"

    __str__ = __repr__

    @property
    def target(self) -> str:
        return f"{self.uri} (database {self.database})"

    # -- connection and errors ---------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; driver errors become TransientError or SinkError (never with the password)."""
        try:
            from neo4j.exceptions import (
                AuthError,
                DriverError,
                Neo4jError,
                ServiceUnavailable,
                SessionExpired,
            )
            from neo4j.exceptions import TransientError as Neo4jTransientError
        except ImportError as exc:  # pragma: no cover - the driver is a dependency
            raise SinkError("the neo4j Python driver is not installed (pip install neo4j)") from exc
        try:
            return fn()
        except (ServiceUnavailable, SessionExpired) as exc:
            raise TransientError(
                f"Neo4j at {self.uri} is unavailable while {what} (is the server running? check --neo4j-uri or NEO4J_URI):"
                f" {self._message(exc)}"
            ) from exc
        except Neo4jTransientError as exc:
            raise TransientError(f"Neo4j at {self.uri} failed transiently while {what}: {self._message(exc)}") from exc
        except AuthError as exc:
            raise SinkError(f"Neo4j at {self.uri} refused user {self.user!r} while {what}: {self._message(exc)}") from exc
        except (Neo4jError, DriverError) as exc:
            raise SinkError(f"Neo4j at {self.uri} failed while {what}: {self._message(exc)}") from exc

    def _message(self, exc: BaseException) -> str:
        import warnings

        with warnings.catch_warnings():  # the driver warns that its GQL status fields are a preview
            warnings.simplefilter("ignore")
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if text.startswith("50N42") or "Unexpected error has occurred" in text:  # a GQL status, not the cause
                text = str(exc.__cause__ or exc.__context__ or "") or str(exc.args[0] if exc.args else type(exc).__name__)
        if self.__password:
            text = text.replace(self.__password, "***")
        return " ".join(text.split())  # one line

    def open(self) -> None:
        if self._driver is not None:
            return
        scheme = self.uri.split("://", 1)[0] if "://" in self.uri else ""
        if scheme not in URI_SCHEMES:
            raise SinkError(f"bad Neo4j URI {self.uri!r}: it must start with one of {', '.join(s + '://' for s in URI_SCHEMES)}")
        try:
            from neo4j import GraphDatabase
        except ImportError as exc:
            raise SinkError("the Neo4j graph sink needs the neo4j Python driver (pip install neo4j)") from exc

        def connect() -> Any:
            driver = GraphDatabase.driver(
                self.uri,
                auth=(self.user, self.__password),
                max_transaction_retry_time=self.retry_time,
                connection_timeout=self.connection_timeout,
                notifications_min_severity="OFF",
                user_agent="kgbuild",
            )
            try:
                driver.verify_connectivity()
                with driver.session(database=self.database) as session:
                    for statement in CONSTRAINTS:
                        session.execute_write(lambda tx, q=statement: tx.run(q).consume())
            except BaseException:
                driver.close()
                raise
            return driver

        try:
            self._driver = self._call("connecting", connect)
        except ValueError as exc:  # a malformed URI the driver refuses
            raise SinkError(f"bad Neo4j URI {self.uri!r}: {exc}") from None

    def _session(self) -> Any:
        if self._driver is None:
            self.open()
        return self._driver.session(database=self.database)

    def run_read(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read query (values as parameters) and return its records as dicts."""

        def work() -> list[dict[str, Any]]:
            with self._session() as session:
                return session.execute_read(lambda tx: [r.data() for r in tx.run(query, **params)])

        return self._call("reading", work)

    # -- writing -----------------------------------------------------------------------------

    def write(self, batch: GraphBatch) -> None:
        # everything is checked and prepared before the first statement runs
        doc_ids: list[str] = []
        doc_rows: list[dict[str, Any]] = []
        chunk_rows: list[dict[str, Any]] = []
        next_rows: list[dict[str, str]] = []
        mention_rows: list[dict[str, Any]] = []
        entity_rows: dict[str, list[dict[str, Any]]] = {}
        seen_entities: set[str] = set()
        for extracted in batch.documents:
            doc = extracted.document
            doc_ids.append(doc.id)
            doc_rows.append(
                encode_properties(
                    {
                        "id": doc.id,
                        "path": doc.path,
                        "source_path": doc.source_path,
                        "title": doc.title,
                        "mtime": doc.mtime,
                        "content_hash": doc.content_hash,
                        "classifications": _to_json(scores_record(extracted.classifications)),
                        "metadata": _to_json(dict(doc.metadata)),
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
                    "classifications": _to_json(scores_record(extraction.classifications)),
                    "structures": _to_json([{"name": s.name, "fields": s.fields} for s in extraction.structures]),
                }
                chunk_rows.append({"id": chunk.id, "doc": doc.id, "props": encode_properties(props)})
                if previous is not None:
                    next_rows.append({"a": previous, "b": chunk.id})
                previous = chunk.id
                for mention in extraction.mentions:
                    eid = batch.mention_entity[mention.id]
                    entity = batch.entities[eid]
                    if eid not in seen_entities:
                        seen_entities.add(eid)
                        label = _entity_label(entity.type)
                        entity_rows.setdefault(label, []).append(
                            {"id": eid, "props": encode_properties({"id": eid, "type": entity.type, "key": entity.key})}
                        )
                    mention_props = {
                        "id": mention.id,
                        "doc_id": mention.doc_id,
                        "label": mention.label,
                        "text": mention.text,
                        "start": mention.start,
                        "end": mention.end,
                        "confidence": round(mention.confidence, 6),
                    }
                    mention_rows.append({"chunk": chunk.id, "entity": eid, "props": encode_properties(mention_props)})
        # relations: one row per (type, head, tail), merged in batch order like the NetworkX sink
        relation_rows: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for relation in batch.relations:
            rel_type = _relation_type(relation.label)
            evidence = [evidence_record(e) for e in relation.evidence]
            if not evidence:
                continue
            rows = relation_rows.setdefault(rel_type, {})
            key = (relation.head_id, relation.tail_id)
            if key in rows:
                evidence = merge_evidence(rows[key]["evidence"], evidence)
            rows[key] = {"id": relation.id, "head": relation.head_id, "tail": relation.tail_id, "evidence": evidence}

        def work() -> None:
            with self._session() as session:
                self._remove(session, doc_ids)
                self._run(
                    session,
                    "UNWIND $rows AS r MERGE (d:Document {id: r.id}) SET d = r",
                    doc_rows,
                )
                self._run(
                    session,
                    "UNWIND $rows AS r MERGE (c:Chunk {id: r.id}) SET c = r.props "
                    "WITH c, r MATCH (d:Document {id: r.doc}) MERGE (d)-[:HAS_CHUNK]->(c)",
                    chunk_rows,
                )
                self._run(
                    session,
                    "UNWIND $rows AS r MATCH (a:Chunk {id: r.a}) MATCH (b:Chunk {id: r.b}) MERGE (a)-[:NEXT_CHUNK]->(b)",
                    next_rows,
                )
                for label, rows in entity_rows.items():
                    self._run(
                        session,
                        f"UNWIND $rows AS r MERGE (e:Entity {{id: r.id}}) ON CREATE SET e += r.props SET e:{label}",
                        rows,
                    )
                self._run(
                    session,
                    "UNWIND $rows AS r MATCH (c:Chunk {id: r.chunk}) MATCH (e:Entity {id: r.entity}) "
                    "MERGE (c)-[m:MENTIONS {id: r.props.id}]->(e) SET m = r.props",
                    mention_rows,
                )
                for rel_type, by_key in relation_rows.items():
                    for part in _batches(list(by_key.values()), self.batch_size):
                        session.execute_write(_merge_relations_tx, rel_type, part)
                touched = sorted(seen_entities)
                for part in _batches(touched, self.batch_size):
                    session.execute_write(_refresh_entities_tx, part)

        self._call(f"writing {len(doc_rows)} documents", work)

    def _run(self, session: Any, query: str, rows: Sequence[Any]) -> None:
        for part in _batches(rows, self.batch_size):
            session.execute_write(_consume, query, part)

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(d for d in doc_ids if isinstance(d, str) and d and _utf8_ok(d)))
        if not ids:
            return

        def work() -> None:
            with self._session() as session:
                self._remove(session, ids)

        self._call(f"removing {len(ids)} documents", work)

    def _remove(self, session: Any, doc_ids: Sequence[str]) -> None:
        for part in _batches(list(doc_ids), self.batch_size):
            session.execute_write(_remove_documents_tx, part)

    # -- reading -----------------------------------------------------------------------------

    def export(self) -> GraphExport:
        """The whole database in the store-independent export form, read back with plain Cypher.

        Nodes without a Document, Chunk or Entity label belong to someone else and are left out;
        what kgbuild would not have written (other labels on its nodes, an entity without its
        type label, evidence ids out of step with the evidence) is listed under "problems".
        """
        out = GraphExport()
        problems = out.problems
        # other applications' nodes in the same database are none of kgbuild's business
        ours = "(n:Document OR n:Chunk OR n:Entity)"
        for row in self.run_read(f"MATCH (n) WHERE {ours} RETURN labels(n) AS labels, properties(n) AS props"):
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
            f"MATCH (h)-[x]->(t) WHERE {ours.replace('n:', 'h:')} OR {ours.replace('n:', 't:')} "
            "RETURN h.id AS head, labels(h) AS head_labels, t.id AS tail, "
            "labels(t) AS tail_labels, type(x) AS type, properties(x) AS props"
        )
        for row in self.run_read(query):
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

    def entity_graph(self) -> EntityGraphData:
        """Entities with names and aliases, chunk-entity pairs and relation edges, in three reads."""
        out = EntityGraphData()
        for record in self.run_read(
            "MATCH (e:Entity) RETURN e.id AS id, e.key AS key, e.type AS type, e.name AS name, e.aliases AS aliases,"
            " e.mention_count AS mention_count, e.confidence AS confidence"
        ):
            aliases = record["aliases"] or []
            if isinstance(aliases, str):  # a list kept as JSON text
                aliases = json.loads(aliases)
            out.entities[record["id"]] = Entity(record["id"], record["type"], record["key"], record["name"] or "",
                                                list(aliases), record["mention_count"] or 0, record["confidence"] or 0.0)
        for record in self.run_read("MATCH (c:Chunk)-[:MENTIONS]->(e:Entity) RETURN DISTINCT c.id AS chunk, e.id AS entity"):
            out.mentions.append((record["chunk"], record["entity"]))
        for record in self.run_read(
            "MATCH (h:Entity)-[r]->(t:Entity) WHERE NOT type(r) IN $structural RETURN h.id AS head, type(r) AS label, t.id AS tail",
            structural=sorted(STRUCTURAL_EDGES),
        ):
            out.relations.append((record["head"], record["label"], record["tail"]))
        return out

    def stats(self) -> IndexStats:
        def read(tx: Any) -> IndexStats:
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

        def work() -> IndexStats:
            with self._session() as session:
                return session.execute_read(read)

        return self._call("counting", work)

    def flush(self) -> None:
        """Nothing to do: every write is committed (and durable) when it returns."""

    def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()

    # -- for tests -----------------------------------------------------------------------------

    def clear(self) -> None:
        """Delete every node and relationship in the database (constraints and indexes stay)."""

        def work() -> None:
            with self._session() as session:
                session.run(
                    "MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
                ).consume()

        self._call("clearing the database", work)
