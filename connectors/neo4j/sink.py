"""The Neo4j graph sink: the graph of the NetworkX sink, in a Neo4j 5 database.

Nodes and relationships::

    (:Document {id, path, source_path, title, mtime, content_hash, classifications, metadata})
    (:Chunk {id, doc_id, position, start, end, text, token_count, classifications, structures})
    (:Entity:`<TYPE>` {id, type, key, name, aliases, alias_counts, mention_count, confidence})
    (:Document)-[:HAS_CHUNK]->(:Chunk)-[:NEXT_CHUNK]->(:Chunk)
    (:Chunk)-[:MENTIONS {id, doc_id, label, text, start, end, confidence, rule, via}]->(:Entity)
    (:Entity)-[:`<RELATION>` {id, confidence, count, evidence, evidence_chunk_ids}]->(:Entity)
    (:Community {id, level, title, parent, size, top_entities, top_terms, summary})   (kgbuild.communities)
    (:Entity)-[:IN_COMMUNITY {level}]->(:Community)-[:SUBCOMMUNITY_OF]->(:Community)

``classifications``, ``metadata``, ``structures`` and ``alias_counts`` are JSON strings; ``evidence``
is a list of JSON strings, one per piece of evidence. A mention's ``rule`` and ``via`` say why it is in
its entity (``kgbuild.types.ResolutionReason``). Entity names, aliases and counts are recomputed
from the MENTIONS that remain, with the same function as the NetworkX sink, so both sinks
hold the same graph for the same input (the conformance suite checks it).

This module holds the connection and its errors; the rest of the backend is split by concern:
``values`` (property encoding, quoted labels), ``queries`` (Cypher and transaction functions)
and ``export`` (reading the graph back).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

from kgbuild.connectors.neo4j import queries
from kgbuild.connectors.neo4j.export import export_graph, read_entities, read_entity_graph, read_entity_mentions
from kgbuild.connectors.neo4j.values import utf8_ok
from kgbuild.errors import SinkError, TransientError
from kgbuild.types import CommunityRecord, Entity, EntityGraphData, GraphBatch, GraphExport, IndexStats, MentionRecord

DEFAULT_BATCH_SIZE = 5000
URI_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")

T = TypeVar("T")


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
                    queries.create_constraints(session)
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
        rows = queries.prepare_write(batch)  # everything is checked and prepared before the first statement runs

        def work() -> None:
            with self._session() as session:
                queries.write_prepared(session, rows, self.batch_size)

        self._call(f"writing {len(rows.documents)} documents", work)

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(d for d in doc_ids if isinstance(d, str) and d and utf8_ok(d)))
        if not ids:
            return

        def work() -> None:
            with self._session() as session:
                queries.remove_documents(session, ids, self.batch_size)

        self._call(f"removing {len(ids)} documents", work)

    def replace_communities(self, communities: Sequence[CommunityRecord]) -> None:
        def work() -> None:
            with self._session() as session:
                queries.replace_communities(session, communities, self.batch_size)

        self._call(f"writing {len(communities)} communities", work)

    # -- reading -----------------------------------------------------------------------------

    def communities(self) -> list[CommunityRecord]:
        def work() -> list[CommunityRecord]:
            with self._session() as session:
                return queries.read_communities(session)

        return self._call("reading communities", work)

    def export(self) -> GraphExport:
        """The whole database in the store-independent export form (see :func:`export_graph`)."""
        return export_graph(self.run_read)

    def entity_graph(self, *, mentions: bool = True) -> EntityGraphData:
        """Entities with names and aliases, chunk-entity pairs (``mentions``) and relation edges, in three reads."""
        return read_entity_graph(self.run_read, mentions)

    def entities(self) -> dict[str, Entity]:
        return read_entities(self.run_read)

    def entity_mentions(self, entity_ids: Sequence[str]) -> list[MentionRecord]:
        ids = [e for e in entity_ids if isinstance(e, str) and utf8_ok(e)]
        return read_entity_mentions(self.run_read, ids) if ids else []

    def stats(self) -> IndexStats:
        def work() -> IndexStats:
            with self._session() as session:
                return session.execute_read(queries.stats_tx)

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
                session.run(queries.CLEAR_DATABASE).consume()

        self._call("clearing the database", work)
