"""The one place that wires the stages: read -> chunk -> extract -> reconcile -> write.

A run reads top to bottom:

1. **plan** (``kgbuild.plan``): walk and hash the folder and diff it against the state; files whose
   content hash and extraction fingerprint are already there are skipped before any model loads.
2. **stream batches**: new and changed files are read and chunked (counted ahead, so the progress
   total is right from the start) and their documents gathered into write batches of
   ``write_batch_chunks`` chunks, so memory stays bounded by one batch.
3. **process a batch**: extract (``kgbuild.extract.runner``, one bad chunk never stops the corpus),
   reconcile (with the index's resolution overrides, ``kgbuild.overrides``), embed, write graph and
   vectors; it returns what it wrote.
4. **commit**: files whose documents are all written are recorded in the state
   (``kgbuild.inflight``), and the state is checkpointed every ``checkpoint_seconds``.
5. **link across documents** (``kgbuild.corpus_links``): over the resolution summaries of the whole index,
   the short names that a full name of another document explains; documents whose links changed are
   resolved and written again from their cached extraction (``kgbuild.extract.cache``), no model pass.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from kgbuild.chunk import TokenChunker
from kgbuild.corpus_links import Links, documents_digest, index_links, links_from_record, links_record
from kgbuild.embed import Embedder
from kgbuild.errors import ConfigError, DocumentError
from kgbuild.extract.base import Extractor, aggregate_classifications
from kgbuild.extract.cache import ExtractionCache
from kgbuild.extract.runner import extract_chunks
from kgbuild.extract.runtime import build_embedder, build_extractor
from kgbuild.memory import release_heap, settled
from kgbuild.names import clear_caches as clear_name_caches
from kgbuild.hooks import reached
from kgbuild.index import Index
from kgbuild.inflight import DocumentInFlight, FilesInFlight
from kgbuild.overrides import ResolutionOverrides
from kgbuild.plan import (ChangedFile, IngestPlan, describe_fingerprint_change, extraction_fingerprint,
                          extraction_fingerprint_parts, plan_ingest)
from kgbuild.read import ReadOptions, read_file
from kgbuild.read.walk import SUPPORTED_SUFFIXES
from kgbuild.reconcile import BatchReconciliation, reconcile_batch
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.settings import Settings
from kgbuild.sinks import GraphSink, VectorSink
from kgbuild.state import DocumentState, FileState
from kgbuild.timing import Interval, StageTimer
from kgbuild.types import (
    Chunk, ChunkExtraction, Document, ExtractedDocument, GraphBatch, IndexStats, IngestReport, SkippedFile, SourceFile,
)
from kgbuild.write import build_chunk_points


class ProgressListener(Protocol):
    """What the pipeline tells a progress display. The library itself never prints.

    Phases come in order: ``"scanning"`` (walking and hashing), ``"loading model"``, ``"chunking"``
    (the total number of chunks is counted ahead), ``"extracting"``. ``on_chunks_added`` grows the
    total while chunking; ``on_chunks_done`` advances it while extracting.
    """

    def on_phase(self, phase: str) -> None: ...

    def on_chunks_added(self, count: int) -> None: ...

    def on_chunks_done(self, count: int) -> None: ...

    def on_file(self, rel_path: str) -> None: ...


class _Silent:
    def on_phase(self, phase: str) -> None:
        pass

    def on_chunks_added(self, count: int) -> None:
        pass

    def on_chunks_done(self, count: int) -> None:
        pass

    def on_file(self, rel_path: str) -> None:
        pass


# Chunk text kept in memory between counting and extracting; beyond it files are read a second time. Small and fixed,
# so that what a run holds does not grow with the corpus: at 64 MiB of text, a 10,000-chunk corpus stayed whole in
# memory through the write loop (+43 MiB of documents and chunks against a 1,000-chunk one, BENCHMARKS.md scale-out),
# while reading and chunking again costs a few per cent of an extraction.
PREPARED_TEXT_BUDGET = 2 * 1024 * 1024
WRITTEN_LIMIT = 20_000  # chunk payloads a run keeps to update the retrieval graph with (IngestPipeline.written)


@dataclass(frozen=True, slots=True)
class _Extraction:
    """Who extracts, resolved once per run: the model's location and the extraction fingerprint."""

    model: str
    parts: dict[str, Any]
    fingerprint: str


@dataclass(slots=True)
class ReadDocument:
    """A document read and chunked; with the engine ``ray``, also extracted and embedded already."""

    document: Document
    chunks: list[Chunk]
    results: list[ChunkExtraction | str] | None = None  # per chunk: its extraction, or why the model failed on it
    vectors: list[Any] | None = None  # per chunk: its embedding


@dataclass(slots=True)
class ReadFile:
    """A changed file read and chunked (ahead, to count its chunks), or only counted when too large to keep."""

    changed: ChangedFile
    documents: Iterable[ReadDocument] | None  # None: read it again when its turn comes
    skipped: list[SkippedFile]
    kept: dict[str, DocumentState]  # records whose content did not change
    error: DocumentError | None = None
    chunks: int = 0
    characters: int = 0


def read_and_chunk(changed: ChangedFile, options: ReadOptions, chunk: Callable[[Document], list[Chunk]],
                   recovered: set[str]) -> ReadFile:
    """A changed file's new and changed documents, chunked; its unchanged records are kept as they are (a
    record recovered from an interrupted run is read again). A file that cannot be read carries its error."""
    item = ReadFile(changed, [], [], {})
    documents: list[ReadDocument] = []
    try:
        for read in read_file(changed.file, options):
            if isinstance(read, SkippedFile):
                item.skipped.append(read)
                continue
            old = changed.reusable.get(read.id)
            if old is not None and old.content_hash == read.content_hash and read.id not in recovered:
                item.kept[read.id] = old
                continue
            chunks = chunk(read)
            documents.append(ReadDocument(read, chunks))
            item.chunks += len(chunks)
            item.characters += sum(len(c.text) for c in chunks)
    except DocumentError as exc:
        item.error = exc
        documents, item.chunks = [], 0
    item.documents = documents
    return item


@dataclass(slots=True)
class BatchResult:
    """What one write batch did: documents written to graph and vectors, those the model failed on, and counts."""

    written: list[DocumentInFlight] = field(default_factory=list)
    failed: list[DocumentInFlight] = field(default_factory=list)
    chunks: int = 0
    mentions: int = 0
    relations_kept: int = 0
    classifications: int = 0
    entities: Iterable[str] = ()  # ids of the canonical entities written
    dropped: Counter[str] = field(default_factory=Counter)  # relations dropped, by reason
    cross_links: dict[str, list[list[str]]] = field(default_factory=dict)  # doc id -> links across documents written


class _RunTotals:
    """The report's running totals over the batches of a run."""

    def __init__(self, report: IngestReport):
        self.report = report
        self.entities: set[str] = set()
        self.dropped: Counter[str] = Counter()

    def add(self, result: BatchResult) -> None:
        report = self.report
        report.documents_read += len(result.written)
        report.chunks += result.chunks
        report.mentions += result.mentions
        report.relations_kept += result.relations_kept
        report.classifications += result.classifications
        self.entities.update(result.entities)
        report.entities = len(self.entities)
        self.dropped.update(result.dropped)
        report.relations_dropped = dict(sorted(self.dropped.items()))


class IngestPipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        schema: ExtractionSchema | None = None,
        extractor: Extractor | None = None,
        embedder: Embedder | None = None,
        graph_sink: GraphSink | None = None,
        vector_sink: VectorSink | None = None,
        progress: ProgressListener | None = None,
    ):
        self.settings = settings
        self.schema = (schema or load_schema(settings.schema_path)).with_threshold(settings.threshold)
        self.extractor = extractor or build_extractor(settings, self.schema)
        self.embedder = embedder or build_embedder(settings)
        self.index = Index(settings, graph_sink=graph_sink, vector_sink=vector_sink)
        self.stores = self.index.new_stores(self._embedding_dimension, classification_tasks=list(self.schema.classifications))
        self.progress = progress or _Silent()
        self.read_options = ReadOptions(
            text_field=settings.text_field,
            id_field=settings.id_field,
            title_field=settings.title_field,
            csv_text_column=settings.csv_text_column,
        )
        self._chunker: TokenChunker | None = None  # built on first use: it loads the model's tokenizer
        self.timer = StageTimer()  # the run's, from run() on
        self.overrides = ResolutionOverrides()  # the index's resolution.yaml, read by run() under the lock
        self.cache = ExtractionCache(settings.out_dir)  # what the model found per document (opened on first use)
        self.fingerprint = ""  # the run's extraction fingerprint, from run() on
        self.relinked = 0  # documents the run wrote again for their links across documents
        # the chunk payloads this run wrote, per document: what the retrieval graph is updated with at the end
        # (``Index.refresh_retrieval_graph``); None where there is no stored graph to update, or the run wrote
        # more than WRITTEN_LIMIT chunks (a build from the stores then costs about as much, in bounded memory)
        self.written: dict[str, list[dict[str, Any]]] | None = None
        self._written_chunks = 0

    def _phase(self, phase: str) -> None:
        on_phase = getattr(self.progress, "on_phase", None)  # listeners written before phases existed lack it
        if on_phase is not None:
            on_phase(phase)

    # -- the run ---------------------------------------------------------------------------

    def run(self, path: str | Path) -> IngestReport:
        started = time.perf_counter()
        root_path = Path(path)
        if not root_path.exists():
            raise ConfigError(f"{path}: no such file or directory")
        root = str(root_path.resolve())
        out_dir = Path(self.settings.out_dir)
        if self.settings.engine == "ray":
            from kgbuild.ray_engine import require_ray

            require_ray()  # before the lock and the model: one line saying how to install it
        self.index.check_credentials()
        with self.index.writing() as journal:
            self.index.check_same_stores()
            # the run's context, for every step below: what it journals, reports and times
            self.journal = journal
            self.report = IngestReport(root=root, out_dir=str(out_dir))
            from kgbuild.retrieve.graph_matrix import DOCUMENTS, retrieval_dir

            self.written = {} if (retrieval_dir(out_dir) / DOCUMENTS).exists() else None
            self.timer = StageTimer(self.report.stage_seconds)
            self.checkpoints = Interval(self.settings.checkpoint_seconds)
            try:
                indexed = self._run_locked(root, root_path, out_dir)
            except BaseException:
                self.stores.close(quiet=True)  # the error that stopped the run is the one to report
                raise
            finally:
                self.cache.close()
            self.stores.close(quiet=not indexed)
            self.report.elapsed_s = time.perf_counter() - started
            if indexed:
                self.report.model_runtime = dict(getattr(self.extractor, "runtime", None) or {})  # optional for extractors
            return self.report

    def _run_locked(self, root: str, root_path: Path, out_dir: Path) -> bool:
        """Plan, stream batches, process and commit each; False when there was nothing to index and no index is left."""
        state = self.index.state
        self.overrides = self.index.overrides()  # a bad file stops the run here, before any model loads
        self.overrides.check_types(self.schema.entities, f"schema {self.schema.name}")
        self._phase("scanning")
        with self.timer("connect"):
            self.index.check_reachable()
        extraction = self._resolve_model()
        self.fingerprint = extraction.fingerprint
        previous_extraction, previous_model = state.manifest.extraction, state.manifest.model
        # the state vouches for its stores from the first checkpoint on
        self.index.record_build(schema=self.schema, model=extraction.model, embedding_model=self.embedder.name,
                                extraction=extraction.parts)
        recovered = self._recover()

        plan = self._plan(root, root_path, out_dir, extraction.fingerprint)
        if plan.empty:
            self.report.warnings.append(
                f"no documents found in {root} (kgbuild reads {' '.join(sorted(SUPPORTED_SUFFIXES))}); nothing was indexed"
            )
            if not state.exists:  # leave no empty index behind
                state.roots.pop(root, None)
                return False
        if plan.reextracted(extraction.fingerprint):
            self.report.reextraction_reason = describe_fingerprint_change(previous_extraction, extraction.parts,
                                                                          (previous_model or "", extraction.model))

        self._write_batches(root, plan, recovered)
        self._keep_unreadable(plan)
        if self.settings.prune:
            self._prune(root, plan.removed)
        self._link_across_documents()
        clear_name_caches()  # resolution is over
        release_heap()  # what the links pass held, before the end-of-run builds
        self._finish()
        return True

    def _write_batches(self, root: str, plan: IngestPlan, recovered: set[str]) -> None:
        """Read, extract, resolve and write the changed files a batch at a time, committing each. A method of its
        own so that the last batch (its documents, chunks and mentions) is not held through the end-of-run builds."""
        files = FilesInFlight(self.fingerprint)
        totals = _RunTotals(self.report)
        if self.settings.engine == "ray" and plan.changed:
            from kgbuild.ray_engine import RayExtraction

            read_files = RayExtraction(self).read_files(plan.changed, recovered)
        else:
            read_files = self._read_files(plan.changed, recovered)
        for batch in self._stream_batches(read_files, files):
            result = self._process_batch(batch)
            totals.add(result)
            self._commit(root, files, result)

    def _embedding_dimension(self) -> int:
        with self.timer("load models"):
            return self.embedder.dimension  # loads the embedding model

    def _resolve_model(self) -> _Extraction:
        """The model's identity (not the model): resolved path and content fingerprint, or hub id and revision."""
        checkpoint = getattr(self.extractor, "checkpoint", None)
        model, model_fingerprint = self.extractor.name, self.extractor.name
        if callable(checkpoint):
            manifest = self.index.state.manifest
            known = manifest.model_file_hashes
            with self.timer("load models"):
                identity = checkpoint(known)
            model, model_fingerprint = identity.location, identity.fingerprint
            manifest.model_file_hashes = {k: v for k, v in known.items() if k.startswith(identity.load_from.rstrip("/") + "/")}
        check_embedder = getattr(self.embedder, "check_available", None)  # optional for embedders
        if callable(check_embedder):
            check_embedder()
        overrides = self.overrides.fingerprint
        parts = extraction_fingerprint_parts(self.settings, self.schema, model_fingerprint, self.embedder.name, overrides)
        fingerprint = extraction_fingerprint(self.settings, self.schema, model_fingerprint, self.embedder.name, overrides)
        return _Extraction(model, parts, fingerprint)

    def _recover(self) -> set[str]:
        """Undo what an interrupted run wrote after its last checkpoint (see kgbuild.state); returns the documents to read again."""
        recovered = self.index.recover(self.stores, self.journal)
        if recovered:
            self.report.documents_recovered = len(recovered)
            self.index.state.cross_document = ""
            self.checkpoints.restart()
        return set(recovered)

    # -- 1. plan ---------------------------------------------------------------------------

    def _plan(self, root: str, root_path: Path, out_dir: Path, fingerprint: str) -> IngestPlan:
        plan = plan_ingest(root_path, self.index.state.files(root), fingerprint,
                           exclude=[out_dir.resolve()], on_file=self.progress.on_file)
        self.report.files_seen += plan.files_seen
        self.report.skipped.extend(plan.skipped)
        self.report.documents_unchanged += plan.documents_unchanged
        return plan

    # -- 2. stream batches -----------------------------------------------------------------

    def _stream_batches(self, read_files: Iterable[ReadFile], files: FilesInFlight) -> Iterator[list[DocumentInFlight]]:
        """The changed files' documents, read and chunked, in write batches of ``write_batch_chunks`` chunks.

        A batch may be empty: a file with nothing to extract (its records unchanged, or removed) is
        complete as soon as it is read, and an empty batch commits it at once. The last batch, full
        or not, comes at the end.
        """
        batch: list[DocumentInFlight] = []
        batch_chunks = 0
        for item in read_files:
            self.report.skipped.extend(item.skipped)
            if item.error is not None:
                # the state keeps vouching for the file's earlier version
                self.report.skipped.append(SkippedFile(item.changed.file.rel_path, item.error.reason))
                continue
            self.report.documents_unchanged += len(item.kept)
            file = files.open(item.changed, item.kept)
            for read in item.documents or ():
                batch.append(files.queue(file, read.document, read.chunks, read.results, read.vectors))
                batch_chunks += len(read.chunks)
                if batch_chunks >= self.settings.write_batch_chunks:
                    yield batch
                    batch, batch_chunks = [], 0
            if files.read_complete(file):
                yield []
        yield batch

    def _read_files(self, changed: list[ChangedFile], recovered: set[str]) -> Iterator[ReadFile]:
        """The changed files read and chunked, in order; a file only counted ahead is read again at its turn."""
        read_ahead = deque(self._read_ahead(changed, recovered) if changed else [])
        self._phase("extracting")
        while read_ahead:
            item = read_ahead.popleft()  # not held past its turn: its documents go once they are written
            yield self._read_and_chunk(item.changed, recovered) if item.documents is None else item

    def _read_ahead(self, changed: list[ChangedFile], recovered: set[str]) -> list[ReadFile]:
        """Read and chunk every changed file ahead of extraction, so the progress total is right from the start.

        Chunks are kept for extraction up to ``PREPARED_TEXT_BUDGET`` characters; later files are only
        counted here and read again when their turn comes (reading is cheap next to the model).
        """
        self._phase("loading model")
        self._ensure_chunker()
        self._phase("chunking")
        read_ahead = []
        budget = PREPARED_TEXT_BUDGET
        for file in changed:
            item = self._read_and_chunk(file, recovered)
            self.progress.on_chunks_added(item.chunks)
            if item.documents is not None:
                if item.characters <= budget:
                    budget -= item.characters
                else:
                    item.documents = None
            read_ahead.append(item)
        return read_ahead

    def _read_and_chunk(self, changed: ChangedFile, recovered: set[str]) -> ReadFile:
        return read_and_chunk(changed, self.read_options, self._chunk, recovered)

    def _ensure_chunker(self) -> TokenChunker:
        if self._chunker is None:
            with self.timer("load models"):  # the chunker counts tokens with the model's own tokenizer
                budget = min(self.settings.chunk_size, self.extractor.max_text_tokens())
                overlap = min(self.settings.chunk_overlap, budget // 2)
                self._chunker = TokenChunker(self.extractor.token_counter(), budget, overlap,
                                             headers=self.settings.title_header)
        return self._chunker

    def _chunk(self, document: Document) -> list[Chunk]:
        chunker = self._ensure_chunker()
        with self.timer("chunk"):
            return chunker.chunk(document)

    # -- 3. process a batch: extract -> reconcile -> embed -> write ----------------------------

    def _process_batch(self, batch: list[DocumentInFlight]) -> BatchResult:
        """Extract, reconcile, embed and write one batch; returns what it wrote and what the model failed on."""
        extracted, written, failed = self._extract(batch)
        if not extracted:
            return BatchResult(failed=failed)
        # a document written before keeps the links across documents it had, where they still fit it: the
        # common case then needs no second write in the links pass, which corrects the others
        known = {}
        for item in written:
            previous = item.file.changed.previous.get(item.document.id)
            if previous is not None and previous.cross_links:
                known[item.document.id] = links_from_record(previous.cross_links)
        # the engine ray embeds beside the model; the local engine embeds here, what was extracted
        vectors = [v for item in written for v in item.vectors] if all(item.vectors is not None for item in written) else None
        resolved = self._resolve_and_write(extracted, known or None, cache=True, vectors=vectors)
        reconciliation, extractions = resolved.reconciliation, [e for d in extracted for e in d.extractions]
        dropped: Counter[str] = Counter()
        for e in extractions:
            dropped.update(e.dropped_relations)
        dropped.update(resolved.dropped)
        return BatchResult(
            written,
            failed,
            chunks=len(extractions),
            mentions=len({(m.doc_id, m.start, m.end) for e in extractions for m in e.mentions}),
            relations_kept=sum(r.count for r in reconciliation.relations),
            classifications=sum(len(s) for e in extractions for s in e.classifications.values()),
            entities=reconciliation.entities.keys(),
            dropped=dropped,
            cross_links={doc_id: links_record(links) for doc_id, links in resolved.cross_links.items() if links},
        )

    def _resolve_and_write(self, extracted: list[ExtractedDocument], external_links: dict[str, Links] | None = None,
                           *, cache: bool = False, vectors: list[Any] | None = None) -> BatchReconciliation:
        """Reconcile (with the links across documents given, if any), embed and write extracted documents;
        ``cache`` keeps the model's output and each document's resolution summary first (kgbuild.extract.cache);
        ``vectors``: the chunks' embeddings where made already, in the documents' chunk order."""
        extractions = [e for d in extracted for e in d.extractions]
        with self.timer("reconcile"):
            # the document texts let resolution read acronyms defined in parentheses: "Associated Press (AP)"
            texts = {d.document.id: d.document.text for d in extracted}
            resolved = reconcile_batch([m for e in extractions for m in e.mentions],
                                       [r for e in extractions for r in e.relations], self.schema, texts=texts,
                                       overrides=self.overrides or None, external_links=external_links)
        if cache:
            with self.timer("cache"):
                self.cache.put((d, self.fingerprint, resolved.summaries.get(d.document.id)) for d in extracted)
        reconciliation = resolved.reconciliation
        graph = GraphBatch(extracted, reconciliation.entities, reconciliation.mention_entity, reconciliation.relations,
                           reconciliation.mention_reasons)

        self.stores.open()
        if vectors is None:
            with self.timer("embed"):
                vectors = self.embedder.embed([e.chunk.contextual_text for e in extractions])
        self._write(graph, vectors)
        return resolved

    def _extract(self, batch: list[DocumentInFlight]) -> tuple[list[ExtractedDocument], list[DocumentInFlight], list[DocumentInFlight]]:
        """The batch's documents extracted (and those documents), and those the model failed on.

        One document the model chokes on never stops the corpus: it is reported, and read again next run.
        """
        fresh = iter(extract_chunks(self.extractor, self.schema, [c for item in batch if item.results is None for c in item.chunks],
                                    window=self.settings.batch_size * 4, timer=self.timer, on_done=self.progress.on_chunks_done))
        extracted: list[ExtractedDocument] = []
        written: list[DocumentInFlight] = []
        failed: list[DocumentInFlight] = []
        for item in batch:
            doc_results = item.results if item.results is not None else [next(fresh) for _ in item.chunks]
            failure = next((r for r in doc_results if isinstance(r, str)), None)
            if failure is not None:
                self.report.skipped.append(SkippedFile(item.document.path, f"extraction failed: {failure}"))
                failed.append(item)
                continue
            extractions = [r for r in doc_results if not isinstance(r, str)]
            extracted.append(ExtractedDocument(item.document, item.chunks, extractions,
                                               aggregate_classifications(extractions, self.schema)))
            written.append(item)
        return extracted, written, failed

    def _write(self, graph: GraphBatch, vectors: list[list[float]]) -> None:
        """Journal the documents, then graph, then vectors (the hook points mark each write durable)."""
        doc_ids = [d.document.id for d in graph.documents]
        self.index.state.cross_document = ""  # links across documents are to be checked again
        self.journal.record(doc_ids)
        with self.timer("graph write"):
            self.stores.graph.write(graph)
        reached("graph-written")
        with self.timer("vector write"):
            # a changed document may now have fewer chunks: drop all of its old points first
            self.stores.vectors.delete_documents(doc_ids)
            points = build_chunk_points(graph, vectors)
            self.stores.vectors.upsert(points)
        reached("vectors-written")
        if self.written is not None:
            by_document: dict[str, list[dict[str, Any]]] = {}
            for point in points:
                by_document.setdefault(str(point.payload["doc_id"]), []).append(point.payload)
            self.written.update(by_document)  # a document written again (links across documents): its last payloads
            self._written_chunks += len(points)
            if self._written_chunks > WRITTEN_LIMIT:
                self.written = None

    # -- 4. commit -------------------------------------------------------------------------

    def _commit(self, root: str, files: FilesInFlight, result: BatchResult) -> None:
        """Record in the state every file whose documents are all through; remove the records it lost."""
        files.settle(result.written, result.failed, result.cross_links)
        records = self.index.state.files(root)
        for finished in files.finish():
            self._remove_documents(finished.removed)
            records[finished.rel_path] = finished.record
        if result.written:
            release_heap()
            if self.checkpoints.due():
                self._checkpoint()

    def _keep_unreadable(self, plan: IngestPlan) -> None:
        kept = plan.kept_unreadable
        if kept:
            unreadable = plan.unreadable
            self.report.documents_kept_unreadable = sum(len(plan.known[rel].documents) for rel in kept)
            self.report.warnings.append(
                f"kept {self.report.documents_kept_unreadable} indexed document(s) under paths that could not be read"
                f" this time ({', '.join(sorted(unreadable)[:3])}{', ...' if len(unreadable) > 3 else ''});"
                " they are removed only once their files are gone"
            )

    def _prune(self, root: str, gone: list[str]) -> None:
        files = self.index.state.files(root)
        self._remove_documents(sorted(d for rel in gone for d in files[rel].documents))
        for rel in gone:
            del files[rel]

    def _remove_documents(self, doc_ids: list[str]) -> None:
        if not doc_ids:
            return
        self.stores.open()
        self.index.state.cross_document = ""
        self.journal.record(doc_ids)
        self.stores.remove_documents(doc_ids)
        self.cache.delete(doc_ids)
        self.report.documents_removed += len(doc_ids)

    # -- 5. link across documents ----------------------------------------------------------

    def _link_across_documents(self) -> None:
        """Bring every document's links across documents up to date with the whole index (kgbuild.corpus_links):
        find them over the resolution summaries of all documents, and write again the documents whose links
        are not those they were written with. Skipped when nothing was written since the last time."""
        state = self.index.state
        where: dict[str, tuple[str, str, FileState, DocumentState]] = {}
        for root, files in state.roots.items():
            for rel, record in files.items():
                for doc_id, doc in record.documents.items():
                    where[doc_id] = (root, rel, record, doc)
        wanted = {doc_id: (doc.content_hash, record.fingerprint) for doc_id, (_, _, record, doc) in where.items()}
        digest = documents_digest((doc_id, *made) for doc_id, made in wanted.items())
        if state.cross_document == digest:
            return
        with self.timer("link documents"):
            kept = self.cache.summary_ids(wanted)
        missing = [doc_id for doc_id in sorted(where) if doc_id not in kept]
        again: dict[str, list | None] = {}
        if missing:  # an index built before the cache: its documents go through the model once more
            self._extract_again(missing, where, again)
            if again:
                self.report.warnings.append(
                    f"{len(again)} indexed document(s) had no kept extraction (an index built by an earlier kgbuild, or"
                    " an interrupted run): extracted again, once, to link their names across documents")
        with self.timer("link documents"):
            # the summaries read one at a time from the cache: what stays is each document's names, not its summary
            summaries = chain(((doc_id, summary) for doc_id, summary in self.cache.iter_summaries(wanted)
                               if doc_id not in again), again.items())
            links = settled(lambda: index_links(summaries))  # not left scattered over the pass's arenas
            stale = [doc_id for doc_id in sorted(kept | set(again))
                     if links_record(links.get(doc_id)) != where[doc_id][3].cross_links]
        batch: list[str] = []
        chunks = 0
        for doc_id in stale:
            batch.append(doc_id)
            chunks += where[doc_id][3].chunks
            if chunks >= self.settings.write_batch_chunks or doc_id == stale[-1]:
                self._relink(batch, where, wanted, links)
                batch, chunks = [], 0
        self.cache.prune(set(where))
        state.cross_document = digest

    def _relink(self, doc_ids: list[str], where: dict[str, tuple[str, str, FileState, DocumentState]],
                wanted: dict[str, tuple[str, str]], links: dict[str, Links]) -> None:
        """Write documents again with their links across documents, from the model's output kept for them."""
        documents = []
        for doc_id in doc_ids:
            document = self.cache.extracted(doc_id, *wanted[doc_id])
            if document is None:  # a summary without its extraction (metadata JSON cannot hold): extract it again
                again = self._extract_again([doc_id], where, {})
                document = again.get(doc_id) or self.cache.extracted(doc_id, *wanted[doc_id])
            if document is None:
                self.report.warnings.append(f"{where[doc_id][3].path}: could not be linked to other documents"
                                            " (its extraction is not kept and it could not be read again)")
                continue
            documents.append(document)
        if not documents:
            return
        reached("relink")  # a point of kgbuild.hooks: links across documents about to be written
        resolved = self._resolve_and_write(documents, {d.document.id: links.get(d.document.id, {}) for d in documents})
        for document in documents:
            doc_id = document.document.id
            where[doc_id][3].cross_links = links_record(resolved.cross_links.get(doc_id))
        self.relinked += len(documents)
        if self.checkpoints.due():
            self._checkpoint()

    def _extract_again(self, doc_ids: list[str], where: dict[str, tuple[str, str, FileState, DocumentState]],
                       summaries: dict[str, list | None]) -> dict[str, ExtractedDocument]:
        """Documents the extraction cache lacks: read from their files and extracted again, in write batches, their
        summaries added to ``summaries`` and the cache; returns those the cache could not keep. A document whose
        file no longer holds it as the state records it is left out, with a warning."""
        by_file: dict[tuple[str, str], set[str]] = {}
        for doc_id in doc_ids:
            root, rel, record, _ = where[doc_id]
            if record.fingerprint == self.fingerprint:  # extracted under other settings: the model would differ
                by_file.setdefault((root, rel), set()).add(doc_id)
        uncached: dict[str, ExtractedDocument] = {}
        queued: list[DocumentInFlight] = []
        for n, ((root, rel), wanted) in enumerate(sorted(by_file.items())):
            record = where[next(iter(wanted))][2]
            path = root if Path(root).is_file() else str(Path(root) / rel)
            try:
                for read in read_file(SourceFile(path, rel, record.size, record.mtime), self.read_options):
                    if isinstance(read, Document) and read.id in wanted \
                            and read.content_hash == where[read.id][3].content_hash:
                        queued.append(DocumentInFlight(None, read, self._chunk(read)))  # type: ignore[arg-type]
            except (DocumentError, OSError):
                pass
            if queued and (n == len(by_file) - 1
                           or sum(len(item.chunks) for item in queued) >= self.settings.write_batch_chunks):
                uncached.update(self._summarize_again(queued, summaries))
                queued = []
        left = [doc_id for doc_id in doc_ids if doc_id not in summaries]
        if left:
            self.report.warnings.append(
                f"{len(left)} indexed document(s) could not be read again to link them to other documents"
                f" ({', '.join(where[d][3].path for d in left[:3])}{', ...' if len(left) > 3 else ''});"
                " ingest their files again to include them")
        return uncached

    def _summarize_again(self, queued: list[DocumentInFlight], summaries: dict[str, list | None]) -> dict[str, ExtractedDocument]:
        self.progress.on_chunks_added(sum(len(item.chunks) for item in queued))
        extracted, _, _ = self._extract(queued)
        if not extracted:
            return {}
        with self.timer("reconcile"):
            resolved = reconcile_batch([m for d in extracted for e in d.extractions for m in e.mentions], [],
                                       self.schema, texts={d.document.id: d.document.text for d in extracted})
        for d in extracted:
            summaries[d.document.id] = resolved.summaries.get(d.document.id)
        with self.timer("cache"):
            summary_only = set(self.cache.put((d, self.fingerprint, summaries[d.document.id]) for d in extracted))
        return {d.document.id: d for d in extracted if d.document.id in summary_only}

    def _checkpoint(self) -> None:
        """Graph and vectors durable first, then the state that vouches for them."""
        with self.timer("checkpoint"):
            self.index.checkpoint(self.stores, self.journal)
        self.checkpoints.restart()

    def _refresh_retrieval_graph(self) -> Any:
        graph = self.index.refresh_retrieval_graph(self.stores, self.embedder, self.written)
        release_heap()
        return graph

    def _finish(self) -> None:
        report = self.report
        stores_changed = report.documents_recovered or report.documents_read or report.documents_removed or self.relinked
        from kgbuild.communities import refresh_communities

        # the graph channel's matrix where the state changed, then the communities where it changed or the run wrote
        # chunks again; the graph is made by them, not held here, so that they can let it go once built from it
        refresh_communities(self.index, self.stores, self._refresh_retrieval_graph, embedder=self.embedder,
                            rewritten=bool(stores_changed))
        if stores_changed or not self.index.state.totals:
            self.index.record_totals(self.stores.counts())
        self._checkpoint()
        report.totals = IndexStats(**self.index.state.totals)


def ingest(
    path: str | Path,
    settings: Settings | None = None,
    *,
    extractor: Extractor | None = None,
    embedder: Embedder | None = None,
    graph_sink: GraphSink | None = None,
    vector_sink: VectorSink | None = None,
    progress: ProgressListener | None = None,
) -> IngestReport:
    """Ingest a folder (or one file) into the graph and the vector index under ``settings.out_dir``.

    >>> report = ingest("./corpus", Settings(model="./my-gliner2"))
    >>> report.documents_read, report.chunks, report.entities
    """
    pipeline = IngestPipeline(
        settings or Settings(),
        extractor=extractor,
        embedder=embedder,
        graph_sink=graph_sink,
        vector_sink=vector_sink,
        progress=progress,
    )
    return pipeline.run(path)
