"""One output folder, one owner: the ``Index``.

Layout of the output directory::

    .kgbuild/
      state.json   ingest state: file and document hashes, manifest, totals (kgbuild.state)
      journal.json documents being written between checkpoints (kgbuild.state.Journal)
      lock         held by the process writing the index (kgbuild.state.IndexLock)
      graph.json   the knowledge graph of the networkx backend (kgbuild.connectors.networkx_graph)
      qdrant/      the chunk vectors of the qdrant-edge backend (kgbuild.connectors.qdrant_edge)
      resolution.yaml  the user's resolution overrides, if any: merge / never_merge pairs (kgbuild.overrides)

Stores that are not embedded (Neo4j, a Qdrant server) keep their data elsewhere; the manifest
records where, and ``Index.open_existing`` reopens them without flags.

Everything that touches the folder goes through here: ingest (``kgbuild.pipeline``) and the
LlamaIndex writer lock it, record the manifest, open both stores with ``stores()``, recover and
checkpoint; ``remove``, ``stats`` and ``verify`` are methods; the retrievers and the graph view
open it read-only and reach the stores through the Protocols of ``kgbuild.sinks``.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from kgbuild import __version__
from kgbuild.errors import ConfigError, IndexNotFoundError
from kgbuild.overrides import ResolutionOverrides, load_overrides, overrides_path
from kgbuild.registry import graph_backend, make_graph_sink, make_vector_sink, settings_reopening, store_location, vector_backend
from kgbuild.settings import Settings
from kgbuild.sinks import GraphSink, VectorSink
from kgbuild.state import JOURNAL_FILE, IndexLock, IngestState, Journal, Manifest, StoreRecord
from kgbuild.types import IndexStats

_COUNTS = ("documents", "chunks", "mentions", "entities", "relations", "entities_by_type", "relations_by_type")


class Stores:
    """The graph and the vector store of one index, opened together (on first use) and closed together."""

    def __init__(self, graph: GraphSink, vectors: VectorSink, dimension: Callable[[], int | None] | int | None = None):
        self.graph = graph
        self.vectors = vectors
        self._dimension = dimension
        self.is_open = False

    def open(self) -> Stores:
        """Open both; a writer's dimension (or the function that loads the embedder for it) is asked only now."""
        if not self.is_open:
            dimension = self._dimension() if callable(self._dimension) else self._dimension
            self.graph.open()
            try:
                self.vectors.open(dimension)
            except BaseException:
                self.graph.close()
                raise
            self.is_open = True
        return self

    def flush(self) -> None:
        if self.is_open:
            self.graph.flush()
            self.vectors.flush()

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        self.open()
        self.graph.remove_documents(doc_ids)
        self.vectors.delete_documents(doc_ids)

    def counts(self) -> IndexStats:
        self.open()
        totals = self.graph.stats()
        totals.vector_points = self.vectors.count()
        return totals

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.close(quiet=exc_type is not None)  # the block's own error is the one to report

    def close(self, *, quiet: bool = False) -> None:
        """Close both (the second even when the first fails); ``quiet`` while another error is on its way."""
        if not self.is_open:
            return
        self.is_open = False
        errors = []
        for sink in (self.graph, self.vectors):
            try:
                sink.close()
            except Exception as exc:
                errors.append(exc)
        if errors and not quiet:
            raise errors[0]


@dataclass(slots=True)
class RemoveReport:
    out_dir: str
    files: list[str] = field(default_factory=list)  # absolute paths of the files removed from the index
    documents: int = 0
    totals: IndexStats | None = None  # after the removal

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "files": self.files, "documents": self.documents,
                "totals": self.totals.to_dict() if self.totals is not None else None}


class Index:
    """The index under ``settings.out_dir``: its state, journal, lock, manifest and stores.

    >>> index = Index.open_existing(Settings(out_dir=".kgbuild"))   # reading: the stores it was built with
    >>> index.stats().entities
    >>> with index.stores() as stores: hits = stores.vectors.search(vector, None, 10)

    ``graph_sink`` and ``vector_sink`` replace the stores the settings name (tests, embedding kgbuild).
    """

    def __init__(self, settings: Settings, *, graph_sink: GraphSink | None = None, vector_sink: VectorSink | None = None):
        self.settings = settings
        self.out_dir = Path(settings.out_dir)
        self._state: IngestState | None = None
        self._graph_sink = graph_sink
        self._vector_sink = vector_sink

    @classmethod
    def open_existing(cls, settings: Settings, *, graph_sink: GraphSink | None = None,
                      vector_sink: VectorSink | None = None) -> Index:
        """An index that ``kgbuild ingest`` built, with the stores its manifest records (unless the settings
        name others); ``IndexNotFoundError`` when there is none."""
        index = cls(settings, graph_sink=graph_sink, vector_sink=vector_sink)
        if not index.exists:
            raise IndexNotFoundError(f"no kgbuild index in {settings.out_dir}: run `kgbuild ingest PATH --out {settings.out_dir}` first")
        index.settings = index.reopening_settings(settings)
        index.check_credentials()
        return index

    def reopening_settings(self, settings: Settings) -> Settings:
        m = self.manifest
        return settings_reopening(settings, m.graph.to_dict() if m.graph else None, m.vectors.to_dict() if m.vectors else None)

    @property
    def state(self) -> IngestState:
        """The ingest state as last loaded (``writing()`` reloads it under the lock)."""
        if self._state is None:
            self._state = IngestState.load(self.out_dir)
        return self._state

    @property
    def exists(self) -> bool:
        return self.state.exists and bool(self.state.manifest)

    @property
    def manifest(self) -> Manifest:
        return self.state.manifest

    @property
    def overrides_path(self) -> Path:
        return overrides_path(self.out_dir)

    def overrides(self) -> ResolutionOverrides:
        """The index's resolution overrides (resolution.yaml), validated; empty when there is no file."""
        return load_overrides(self.out_dir)

    # -- stores ----------------------------------------------------------------------------------

    def graph_sink(self) -> GraphSink:
        return self._graph_sink if self._graph_sink is not None else make_graph_sink(self.settings)

    def vector_sink(self) -> VectorSink:
        if self._vector_sink is not None:
            return self._vector_sink
        return make_vector_sink(self.settings, self.manifest.classification_tasks)

    def new_stores(self, dimension: Callable[[], int | None] | int | None = None, *,
                   classification_tasks: Sequence[str] | None = None) -> Stores:
        """Both stores, not yet open (``Stores.open`` on first use). Writers pass the embedding dimension."""
        vectors = self._vector_sink
        if vectors is None:
            tasks = self.manifest.classification_tasks if classification_tasks is None else classification_tasks
            vectors = make_vector_sink(self.settings, tasks)
        return Stores(self.graph_sink(), vectors, dimension)

    def stores(self, dimension: int | None = None) -> Stores:
        """Both stores, opened now; ``with index.stores() as stores:`` closes them after the block."""
        return self.new_stores(dimension).open()

    def check_credentials(self) -> None:
        """Settings that can only fail later (a missing password), checked before anything is loaded."""
        if self._graph_sink is None:
            check = graph_backend(self.settings.graph).check
            if check is not None:
                check(self.settings)
        if self._vector_sink is None:
            check = vector_backend(self.settings.vector_backend).check
            if check is not None:
                check(self.settings)

    def check_reachable(self) -> None:
        """Connect to stores that are servers before any model loads: a wrong password or a server that is
        down stops a run in seconds, with one line naming the server."""
        if self._graph_sink is None and not graph_backend(self.settings.graph).embedded:
            sink = self.graph_sink()
            sink.open()
            sink.close()
        if self._vector_sink is None and not vector_backend(self.settings.vector_backend).embedded:
            self.vector_sink().exists()

    # -- writing: lock, manifest, journal, checkpoints ------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[Journal]:
        """Hold the index's lock for the block, with the state as it is on disk and its journal."""
        with IndexLock(self.out_dir):
            self._state = IngestState.load(self.out_dir)
            yield Journal(self.out_dir)

    def store_records(self) -> tuple[StoreRecord, StoreRecord]:
        graph = graph_backend(self.settings.graph)
        vectors = vector_backend(self.settings.vector_backend)
        return (StoreRecord(graph.name, store_location(self.settings, graph.location_settings), graph.describe(self.settings)),
                StoreRecord(vectors.name, store_location(self.settings, vectors.location_settings), vectors.describe(self.settings)))

    def check_same_stores(self) -> None:
        """Graph and vectors of one index stay together: refuse to split them across stores."""
        graph, vectors = self.store_records()
        for what, built_with, now, flags in (
            ("vectors", self.manifest.vectors, vectors, "--qdrant-url and --collection"),
            ("graph", self.manifest.graph, graph, "--graph, --neo4j-uri and --neo4j-database"),
        ):
            if built_with is not None and (built_with.kind, built_with.location) != (now.kind, now.location):
                raise ConfigError(
                    f"{self.out_dir} keeps its {what} in {built_with.description}, not in {now.description};"
                    f" pass the same {flags}, or use another --out"
                )

    def record_build(self, *, schema: Any, model: str, embedding_model: str, extraction: dict[str, Any] | None = None) -> None:
        """Write what the index is built with into the manifest (saved with the next checkpoint)."""
        m = self.manifest
        m.kgbuild_version = __version__
        m.schema_definition = schema.model_dump(mode="json")
        m.schema_name, m.schema_version, m.schema_fingerprint = schema.name, schema.version, schema.fingerprint
        m.model = model or m.model
        if extraction is not None:
            m.extraction = extraction
        m.embedding_model = embedding_model
        m.graph, m.vectors = self.store_records()

    def record_totals(self, totals: IndexStats) -> None:
        """The counts of a checkpoint, with what the index is built with, for ``stats`` to read back."""
        m = self.manifest
        totals.schema_name, totals.schema_version = m.schema_name, m.schema_label
        totals.model, totals.embedding_model, totals.kgbuild_version = m.model, m.embedding_model, __version__
        self.state.totals = totals.to_dict()

    def recover(self, stores: Stores, journal: Journal) -> list[str]:
        """Undo what an interrupted run wrote after its last checkpoint; the documents removed, whose files
        the state now has read again (see kgbuild.state)."""
        if not journal.doc_ids:
            return []
        doc_ids = sorted(journal.doc_ids)
        stores.remove_documents(doc_ids)
        self.state.forget_file_hash(set(doc_ids))
        self.checkpoint(stores, journal)
        return doc_ids

    def checkpoint(self, stores: Stores, journal: Journal) -> None:
        """Graph and vectors durable first, then the state that vouches for them, then the journal cleared."""
        stores.flush()
        self.state.save()
        journal.clear()

    def refresh_retrieval_graph(self, stores: Stores, embedder: Any = None,
                                written: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> Any:
        """Bring ``<out>/retrieval/`` (the graph channel's sparse chunk+entity matrix, entity-name vectors, the
        chunk payloads and BM25 index) up to date with the stores, where the state changed since it was built;
        returns the ``RetrievalGraph`` made, or None when the stored one still describes the state.

        Called at the end of each ingest that changed anything (under the lock). ``written``: the chunk payloads
        of every document this run wrote (doc id -> payloads); where they account for every change, the stored
        graph is updated with them (``update_retrieval_graph``: only the changed documents' chunks are read and
        normalised), else (a first ingest, a run after a crash, ``kgbuild remove``) built from the stores. Either
        way it equals a fresh build. Names already embedded are reused from the stored vectors, so only new
        entity names are embedded (``embedder``: the index's; None leaves synonym edges and embedding seeds out).
        """
        from kgbuild.retrieve.graph_matrix import (
            RetrievalGraph, build_retrieval_graph, document_signatures, extraction_signature, retrieval_dir, rows_staging,
            same_documents, state_chunk_ids, state_signature, update_retrieval_graph,
        )
        folder = retrieval_dir(self.out_dir)
        stored = RetrievalGraph.stored_signature(folder)
        if not stores.is_open and same_documents(stored, state_signature(self.state, 0)):
            return None  # this run wrote nothing, and the documents are those the graph describes
        stores.open()
        points = stores.vectors.count()
        signature = state_signature(self.state, points)
        if stored == signature:
            return None
        data = stores.graph.entity_graph(mentions=False)  # the mention pairs come with the chunk payloads
        graph = None
        rows = rows_staging(folder)  # the chunk rows are written here as they are read, then moved in by save()
        try:
            if written is not None:
                graph = update_retrieval_graph(folder, data, written, document_signatures(self.state),
                                               extraction_signature(self.state), points, embedder=embedder,
                                               chunk_ids=state_chunk_ids(self.state), signature=signature, rows_folder=rows)
            if graph is None:  # the payloads a page at a time (kgbuild.retrieve.chunk_rows)
                graph = build_retrieval_graph(data, embedder=embedder, chunk_ids=state_chunk_ids(self.state),
                                              signature=signature, reuse_from=folder,
                                              payload_pages=stores.vectors.payload_pages(), rows_folder=rows)
            graph.save(folder, state=self.state)  # with the chunk table and the BM25 index
        finally:
            shutil.rmtree(rows, ignore_errors=True)
        return graph

    # -- the commands ------------------------------------------------------------------------------

    def remove(self, paths: Sequence[str | Path]) -> RemoveReport:
        """Remove ingested files (a folder: every ingested file under it) from the graph, the vectors and the state.

        The files on disk are left alone. Every path must name something in the index; nothing is removed otherwise.
        """
        from kgbuild.paths import match_indexed_files

        with self.writing() as journal:
            matched: dict[str, tuple[str, str]] = {}  # absolute path -> (root, rel)
            for given in paths:
                found = match_indexed_files(self.state, given)
                if not found:
                    raise ConfigError(f"{given}: not in the index at {self.out_dir} (give an absolute path, a path relative to"
                                      " the current directory, or the path as stored; see `kgbuild stats`)")
                matched.update({f.absolute: (f.root, f.rel) for f in found})
            removed = {d for root, rel in matched.values() for d in self.state.roots[root][rel].documents}
            doc_ids = sorted(removed | journal.doc_ids)
            with self.stores() as stores:
                journal.record(doc_ids)
                stores.remove_documents(doc_ids)
                self.state.forget_file_hash(journal.doc_ids)  # an interrupted run's documents: read them again
                for root, rel in matched.values():
                    del self.state.roots[root][rel]
                totals = stores.counts()
                from kgbuild.communities import refresh_after_removal

                refresh_after_removal(self, stores)  # communities of what is left (payloads, Community nodes)
                stores.flush()
            # the counts change; what the index was built with (the string fields) does not
            self.state.totals.update({k: v for k, v in totals.to_dict().items() if not isinstance(v, str)})
            self.state.save()
            journal.clear()
        return RemoveReport(str(self.out_dir), sorted(matched), len(removed), IndexStats(**self.state.totals))

    def stats(self, *, recount: bool = False) -> IndexStats:
        """Documents, chunks, mentions, entities and relations by type, vector points, and build provenance.

        The graph counts are those the last ingest (or ``remove``) recorded, where the state shows that they
        still describe it (BENCHMARKS.md, Q1: reading them costs milliseconds, counting a large graph seconds);
        otherwise, or with ``recount``, the graph store is counted. Vector points are always counted.
        """
        recorded = None if recount else self.recorded_graph_counts()
        if recorded is not None:
            result = IndexStats(**recorded)
        else:
            graph = self.graph_sink()
            graph.open()
            try:
                result = graph.stats()
            finally:
                graph.close()  # nothing was written: writes nothing
        vectors = self.vector_sink()
        vectors.open()
        try:
            result.vector_points = vectors.count()
        finally:
            vectors.close()
        m = self.manifest
        result.schema_name, result.schema_version = m.schema_name, m.schema_label
        result.model, result.embedding_model, result.kgbuild_version = m.model, m.embedding_model, m.kgbuild_version
        return result

    def recorded_graph_counts(self) -> dict[str, Any] | None:
        """The graph counts the last ingest saved, where they still describe the state; else None."""
        totals = self.state.totals
        if not totals or any(key not in totals for key in _COUNTS):
            return None
        if (self.out_dir / JOURNAL_FILE).exists():  # an interrupted write: the stores may hold more
            return None
        documents = self.state.all_documents()
        if totals["documents"] != len(documents) or totals["chunks"] != sum(d.chunks for d in documents.values()):
            return None  # written since (an interrupted run's checkpoints, or a LlamaIndex writer with no file records)
        return {key: totals[key] for key in _COUNTS}

    def verify(self) -> Any:
        """Compare the graph, the vectors and the state; checksums of both stores (``kgbuild verify``)."""
        from kgbuild.verify import VerifyReport, collection_checksum, compare_index, graph_checksum

        report = VerifyReport(out_dir=str(self.out_dir), documents=len(self.state.all_documents()))
        with self.stores() as stores:
            graph = stores.graph.export()
            points = stores.vectors.export().points
        report.graph_documents = len(graph.documents)
        report.vector_points = len(points)
        report.graph_checksum = graph_checksum(graph)
        report.collection_checksum = collection_checksum(points)
        report.problems = compare_index(self.state, graph, points)
        totals = self.state.totals
        if totals and totals.get("vector_points") is not None and totals.get("vector_points") != len(points) and not report.problems:
            report.problems.append(f"state totals record {totals['vector_points']} vector points, the collection holds {len(points)}")
        return report


def stats(settings: Settings | None = None, *, recount: bool = False) -> IndexStats:
    """``kgbuild stats``: what the index under ``settings.out_dir`` holds (see ``Index.stats``)."""
    return Index.open_existing(settings or Settings()).stats(recount=recount)


def remove(paths: Sequence[str | Path], settings: Settings | None = None) -> RemoveReport:
    """``kgbuild remove``: see ``Index.remove``."""
    return Index.open_existing(settings or Settings()).remove(paths)


def verify(settings: Settings | None = None) -> Any:
    """``kgbuild verify``: see ``Index.verify``."""
    return Index.open_existing(settings or Settings()).verify()
