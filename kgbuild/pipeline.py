"""The one place that wires the stages: read -> chunk -> extract -> reconcile -> write.

Documents stream from the walker; those whose content hash is already in the state
are skipped before any model is loaded. New and changed documents are chunked and
gathered until ``write_batch_chunks`` chunks are pending, then extracted in batches,
reconciled, embedded and written, so memory stays bounded by one write batch.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from kgbuild import __version__
from kgbuild.chunk import TokenChunker
from kgbuild.embed import Embedder, SentenceTransformerEmbedder
from kgbuild.errors import ConfigError, DocumentError, KgbuildError
from kgbuild.extract.base import Extractor, RawExtraction, aggregate_classifications, link_extraction
from kgbuild.ids import file_hash
from kgbuild.read import ReadOptions, read_file, walk_files
from kgbuild.read.walk import SUPPORTED_SUFFIXES
from kgbuild.reconcile import reconcile
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.settings import Settings
from kgbuild.faults import crash_point
from kgbuild.index import Index
from kgbuild.sinks import GraphSink, VectorSink
from kgbuild.state import DocumentState, FileState
from kgbuild.types import Chunk, ChunkExtraction, Document, ExtractedDocument, GraphBatch, IndexStats, IngestReport, SkippedFile, SourceFile
from kgbuild.write import build_chunk_points

def release_heap() -> None:
    """Give freed memory back to the OS (glibc keeps it otherwise: measured 0.5 GB per write batch)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - present in glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


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


@dataclass(slots=True)
class _PendingFile:
    """A new or changed file whose documents are on their way through the stages."""

    file: SourceFile
    hash: str
    previous: dict[str, DocumentState]  # what the state knew of this file's documents
    reusable: dict[str, DocumentState] = field(default_factory=dict)  # earlier documents valid under this fingerprint
    written: dict[str, DocumentState] = field(default_factory=dict)  # extracted and written in this run
    kept: dict[str, DocumentState] = field(default_factory=dict)  # unchanged records of a changed file
    failed: set[str] = field(default_factory=set)  # documents the model could not process
    waiting: int = 0  # documents read but not yet written
    read_complete: bool = False

    @property
    def complete(self) -> bool:
        return self.read_complete and self.waiting == 0


@dataclass(slots=True)
class _ToRead:
    pending: _PendingFile
    previous_fingerprint: str | None  # the extraction fingerprint the file was last written under


@dataclass(slots=True)
class _PreparedFile:
    """A pending file read and chunked ahead (to count the chunks), or only counted when too large to keep."""

    pending: _PendingFile
    documents: list[tuple[Document, list[Chunk]]] | None  # None: read it again when its turn comes
    skipped: list[SkippedFile]
    kept: dict[str, DocumentState]
    error: DocumentError | None = None
    chunks: int = 0
    characters: int = 0


# Chunk text kept in memory between counting and extracting; beyond it files are read a second time.
PREPARED_TEXT_BUDGET = 64 * 1024 * 1024


def extraction_fingerprint_parts(settings: Settings, schema: ExtractionSchema, model_fingerprint: str, embedder_name: str) -> dict[str, Any]:
    """Everything that changes what extraction writes; a file extracted under other parts is extracted again."""
    return {
        "schema": schema.fingerprint,
        "model": model_fingerprint,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "embedding_model": embedder_name,
        "precision": settings.precision,
        "reader": [settings.text_field, settings.id_field, settings.title_field, settings.csv_text_column],
    }


def extraction_fingerprint(settings: Settings, schema: ExtractionSchema, model_fingerprint: str, embedder_name: str) -> str:
    parts = extraction_fingerprint_parts(settings, schema, model_fingerprint, embedder_name)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def describe_fingerprint_change(before: dict[str, Any], now: dict[str, Any]) -> str:
    """Why files are extracted again, in words: which parts of the extraction fingerprint changed."""
    if not before:
        return "the index was built by an earlier kgbuild that did not record its extraction settings"
    changes = []
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            changes.append(f"{key.replace('_', ' ')} {_shown(before.get(key))} -> {_shown(now.get(key))}")
    return "; ".join(changes) or "extraction settings changed"


def _shown(value: Any) -> str:
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19]
    return json.dumps(value) if not isinstance(value, str) else value


def build_extractor(settings: Settings, schema: ExtractionSchema) -> Extractor:
    from kgbuild.extract.gliner import GLiNER2Extractor

    return GLiNER2Extractor(
        schema,
        settings.model,
        device=settings.device,
        batch_size=settings.batch_size,
        torch_threads=settings.torch_threads,
        precision=settings.precision,
        fast_attention=settings.fast_attention,
    )


def build_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(settings.embedding_model, device=settings.device, batch_size=settings.embedding_batch_size)


def _under(rel_path: str, skipped_path: str) -> bool:
    """Is ``rel_path`` at or below ``skipped_path`` (a walk entry that could not be read)?"""
    return skipped_path in (".", "") or rel_path == skipped_path or rel_path.startswith(skipped_path.rstrip("/") + "/")


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
        self.fingerprint = ""  # known once the run has resolved the model (run())
        self.fingerprint_parts: dict[str, Any] = {}
        self.model_name = self.extractor.name
        self._chunker: TokenChunker | None = None
        self._vectors_touched = False
        self._queue: list[tuple[_PendingFile, Document, list[Chunk]]] = []  # documents awaiting extraction
        self._open_files: list[_PendingFile] = []  # files not yet recorded in the state
        self._pending_chunks = 0
        self._entities_seen: set[str] = set()
        self._dropped: Counter[str] = Counter()
        self._last_checkpoint = time.monotonic()
        self._recovered: set[str] = set()

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        """Adds the block's wall time to the report's per-stage seconds (the ingest summary's profile)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            stages = self.report.stage_seconds
            stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - started

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
        self.index.check_credentials()
        with self.index.writing() as journal:
            self.journal = journal
            return self._run_locked(root, root_path, out_dir, started)

    def _embedding_dimension(self) -> int:
        with self._timed("load models"):
            return self.embedder.dimension  # loads the embedding model

    def _resolve_model(self) -> None:
        """The model's identity (not the model): resolved path and content fingerprint, or hub id and revision."""
        checkpoint = getattr(self.extractor, "checkpoint", None)
        model_fingerprint = self.extractor.name
        if callable(checkpoint):
            known = self.state.manifest.model_file_hashes
            with self._timed("load models"):
                identity = checkpoint(known)
            self.model_name = identity.location
            model_fingerprint = identity.fingerprint
            self.state.manifest.model_file_hashes = {k: v for k, v in known.items()
                                                     if k.startswith(identity.load_from.rstrip("/") + "/")}
        self.fingerprint_parts = extraction_fingerprint_parts(self.settings, self.schema, model_fingerprint, self.embedder.name)
        self.fingerprint = extraction_fingerprint(self.settings, self.schema, model_fingerprint, self.embedder.name)

    def _run_locked(self, root: str, root_path: Path, out_dir: Path, started: float) -> IngestReport:
        self.state = self.index.state
        self.index.check_same_stores()
        self.report = IngestReport(root=root, out_dir=str(out_dir))
        try:
            self._phase("scanning")
            with self._timed("connect"):
                self.index.check_reachable()
            self._resolve_model()
            previous_extraction = self.state.manifest.extraction
            self.index.record_build(schema=self.schema, model=self.model_name, embedding_model=self.embedder.name,
                                    extraction=self.fingerprint_parts)  # the state vouches for its stores from the first checkpoint on  # the state vouches for its stores from the first checkpoint on
            self._recover()
            known = self.state.files(root)
            to_read, seen, unreadable = self._scan(root_path, out_dir, known)
            if not seen and not known:
                self.report.warnings.append(
                    f"no documents found in {root} (kgbuild reads {' '.join(sorted(SUPPORTED_SUFFIXES))});"
                    " nothing was indexed"
                )
                if not self.state.exists:  # leave no empty index behind
                    self.state.roots.pop(root, None)
                    self.stores.close(quiet=True)
                    self.report.elapsed_s = time.perf_counter() - started
                    return self.report
            if any(t.previous_fingerprint not in (None, self.fingerprint) for t in to_read):
                self.report.reextraction_reason = describe_fingerprint_change(previous_extraction, self.fingerprint_parts)
            prepared = self._prepare([t.pending for t in to_read]) if to_read else []
            self._phase("extracting")
            for item in prepared:
                self._enqueue(root, item)
            self._flush(root)
            gone = [rel for rel in known if rel not in seen]
            kept = [rel for rel in gone if any(_under(rel, skipped) for skipped in unreadable)]
            if kept:
                self.report.documents_kept_unreadable = sum(len(known[rel].documents) for rel in kept)
                self.report.warnings.append(
                    f"kept {self.report.documents_kept_unreadable} indexed document(s) under paths that could not be read"
                    f" this time ({', '.join(sorted(unreadable)[:3])}{', ...' if len(unreadable) > 3 else ''});"
                    " they are removed only once their files are gone"
                )
            if self.settings.prune:
                self._prune(root, [rel for rel in gone if rel not in kept])
            self._finish(root)
        except BaseException:
            self.stores.close(quiet=True)  # the error that stopped the run is the one to report
            raise
        self.stores.close()
        self.report.elapsed_s = time.perf_counter() - started
        self.report.model_runtime = dict(getattr(self.extractor, "runtime", None) or {})  # optional for extractors
        return self.report

    def _scan(self, root_path: Path, out_dir: Path, known: dict[str, FileState]) -> tuple[list[_ToRead], set[str], list[str]]:
        """Walk and hash: which files are new or changed, which are present, which paths could not be read."""
        to_read: list[_ToRead] = []
        seen: set[str] = set()
        unreadable: list[str] = []
        for item in walk_files(root_path, exclude=[out_dir.resolve()]):
            self.report.files_seen += 1
            if isinstance(item, SkippedFile):
                self.report.skipped.append(item)
                unreadable.append(item.path)  # present but unreadable: keep what an earlier run ingested
                continue
            seen.add(item.rel_path)
            self.progress.on_file(item.rel_path)
            previous = known.get(item.rel_path)
            try:
                digest = file_hash(item.path)
            except OSError as exc:
                self.report.skipped.append(SkippedFile(item.rel_path, f"unreadable: {exc.strerror or exc}"))
                unreadable.append(item.rel_path)
                continue
            if previous is not None and previous.hash == digest and previous.fingerprint == self.fingerprint:
                self.report.documents_unchanged += len(previous.documents)
                continue
            pending = _PendingFile(file=item, hash=digest, previous=dict(previous.documents) if previous else {})
            if previous is not None and previous.fingerprint == self.fingerprint:
                pending.reusable = pending.previous
            to_read.append(_ToRead(pending, previous.fingerprint if previous else None))
        return to_read, seen, unreadable

    def _prepare(self, pendings: list[_PendingFile]) -> list[_PreparedFile]:
        """Read and chunk every new or changed file ahead of extraction, so the progress total is right from the start.

        Chunks are kept for extraction up to ``PREPARED_TEXT_BUDGET`` characters; later files are only
        counted here and read again when their turn comes (reading is cheap next to the model).
        """
        self._phase("loading model")
        self._ensure_chunker()
        self._phase("chunking")
        prepared = []
        budget = PREPARED_TEXT_BUDGET
        for pending in pendings:
            item = self._read_and_chunk(pending)
            self.progress.on_chunks_added(item.chunks)
            if item.documents is not None:
                if item.characters <= budget:
                    budget -= item.characters
                else:
                    item.documents = None
            prepared.append(item)
        return prepared

    def _read_and_chunk(self, pending: _PendingFile) -> _PreparedFile:
        item = _PreparedFile(pending, [], [], {})
        try:
            for read in read_file(pending.file, self.read_options):
                if isinstance(read, SkippedFile):
                    item.skipped.append(read)
                    continue
                old = pending.reusable.get(read.id)
                if old is not None and old.content_hash == read.content_hash and read.id not in self._recovered:
                    item.kept[read.id] = old
                    continue
                chunks = self._chunk(read)
                item.documents.append((read, chunks))
                item.chunks += len(chunks)
                item.characters += sum(len(c.text) for c in chunks)
        except DocumentError as exc:
            item.error = exc
            item.documents, item.chunks = [], 0
        return item

    def _enqueue(self, root: str, item: _PreparedFile) -> None:
        """Queue a prepared file's documents for extraction; flush whenever a write batch is full."""
        pending = item.pending
        if item.documents is None:  # counted ahead, not kept: read it again (the same result)
            item = self._read_and_chunk(pending)
        self.report.skipped.extend(item.skipped)
        if item.error is not None:
            # the state keeps vouching for the file's earlier version
            self.report.skipped.append(SkippedFile(pending.file.rel_path, item.error.reason))
            return
        pending.kept.update(item.kept)
        self.report.documents_unchanged += len(item.kept)
        if pending not in self._open_files:
            self._open_files.append(pending)
        for document, chunks in item.documents:
            self._queue.append((pending, document, chunks))
            pending.waiting += 1
            self._pending_chunks += len(chunks)
            if self._pending_chunks >= self.settings.write_batch_chunks:
                self._flush(root)
        pending.read_complete = True
        if pending.complete:  # nothing to extract (all records unchanged, or records removed)
            self._commit_files(root)

    def _recover(self) -> None:
        """Undo what an interrupted run wrote after its last checkpoint (see kgbuild.state)."""
        recovered = self.index.recover(self.stores, self.journal)
        if recovered:
            self._vectors_touched = True
            self._recovered = set(recovered)
            self.report.documents_recovered = len(recovered)
            self._last_checkpoint = time.monotonic()

    def _ensure_chunker(self) -> TokenChunker:
        if self._chunker is None:
            with self._timed("load models"):  # the chunker counts tokens with the model's own tokenizer
                budget = min(self.settings.chunk_size, self.extractor.max_text_tokens())
                overlap = min(self.settings.chunk_overlap, budget // 2)
                self._chunker = TokenChunker(self.extractor.token_counter(), budget, overlap)
        return self._chunker

    def _chunk(self, document: Document) -> list[Chunk]:
        chunker = self._ensure_chunker()
        with self._timed("chunk"):
            return chunker.chunk(document)

    # -- writing ---------------------------------------------------------------------------

    def _flush(self, root: str) -> None:
        if not self._queue:
            self._commit_files(root)
            return
        queue, self._queue, self._pending_chunks = self._queue, [], 0
        results = self._extract([chunk for _, _, doc_chunks in queue for chunk in doc_chunks])

        extracted: list[ExtractedDocument] = []
        written: list[tuple[_PendingFile, Document, list[Chunk]]] = []
        cursor = 0
        for entry in queue:
            pending, document, doc_chunks = entry
            doc_results = results[cursor : cursor + len(doc_chunks)]
            cursor += len(doc_chunks)
            failure = next((r for r in doc_results if isinstance(r, str)), None)
            if failure is not None:
                # one document the model chokes on never stops the corpus: report it, retry it next run
                self.report.skipped.append(SkippedFile(document.path, f"extraction failed: {failure}"))
                pending.failed.add(document.id)
                pending.waiting -= 1
                continue
            doc_extractions = [r for r in doc_results if not isinstance(r, str)]
            extracted.append(
                ExtractedDocument(document, doc_chunks, doc_extractions, aggregate_classifications(doc_extractions, self.schema))
            )
            written.append(entry)
        extractions = [e for d in extracted for e in d.extractions]
        chunks = [e.chunk for e in extractions]
        if not extracted:
            self._commit_files(root)
            return
        mentions = [m for e in extractions for m in e.mentions]
        relation_mentions = [r for e in extractions for r in e.relations]
        for e in extractions:
            self._dropped.update(e.dropped_relations)
        with self._timed("reconcile"):
            reconciliation, dropped = reconcile(mentions, relation_mentions, self.schema)
        self._dropped.update(dropped)
        batch = GraphBatch(extracted, reconciliation.entities, reconciliation.mention_entity, reconciliation.relations)

        self.stores.open()
        with self._timed("embed"):
            vectors = self.embedder.embed([c.text for c in chunks])
        doc_ids = [d.document.id for d in extracted]
        self.journal.record(doc_ids)
        with self._timed("graph write"):
            self.stores.graph.write(batch)
        crash_point("graph-written")
        with self._timed("vector write"):
            # a changed document may now have fewer chunks: drop all of its old points first
            self.stores.vectors.delete_documents(doc_ids)
            self.stores.vectors.upsert(build_chunk_points(batch, vectors))
        self._vectors_touched = True
        crash_point("vectors-written")

        report = self.report
        report.documents_read += len(extracted)
        report.chunks += len(chunks)
        report.mentions += len({(m.doc_id, m.start, m.end) for m in mentions})
        report.relations_kept += sum(r.count for r in reconciliation.relations)
        report.classifications += sum(len(s) for e in extractions for s in e.classifications.values())
        self._entities_seen.update(reconciliation.entities)
        report.entities = len(self._entities_seen)
        report.relations_dropped = dict(sorted(self._dropped.items()))

        for pending, document, doc_chunks in written:
            pending.written[document.id] = DocumentState(document.path, document.content_hash, len(doc_chunks))
            pending.waiting -= 1
        self._commit_files(root)
        release_heap()
        if time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_seconds:
            self._checkpoint()

    def _commit_files(self, root: str) -> None:
        """Record in the state every file whose documents are all written; remove records it lost."""
        files = self.state.files(root)
        still_open = []
        for pending in self._open_files:
            if not pending.complete:
                still_open.append(pending)
                continue
            gone = set(pending.previous) - set(pending.written) - set(pending.kept) - pending.failed
            self._remove_documents(sorted(gone))
            documents = {**pending.kept, **pending.written}
            # a file with a failed document is recorded without its hash, so the next run reads it again
            file_hash_ = "" if pending.failed else pending.hash
            files[pending.file.rel_path] = FileState(file_hash_, pending.file.size, pending.file.mtime, self.fingerprint, documents)
        self._open_files = still_open

    def _extract(self, chunks: list[Chunk]) -> list[ChunkExtraction | str]:
        """One result per chunk: its extraction, or why the model failed on it."""
        results: list[ChunkExtraction | str] = []
        step = max(self.settings.batch_size * 4, 1)
        for i in range(0, len(chunks), step):
            window = chunks[i : i + step]
            try:
                raws: list[RawExtraction | str] = list(self._extract_texts([c.text for c in window]))
            except KgbuildError:
                raise
            except Exception:
                # find the chunk that broke the batch; the others still count
                raws = [self._extract_one(c.text) for c in window]
            with self._timed("link"):
                results.extend(r if isinstance(r, str) else link_extraction(c, r, self.schema) for c, r in zip(window, raws))
            self.progress.on_chunks_done(len(window))
            release_heap()
            crash_point("extract")
        return results

    def _extract_texts(self, texts: list[str]) -> list[RawExtraction]:
        with self._timed("model"):
            raw = self.extractor.extract(texts)
        if len(raw) != len(texts):
            raise KgbuildError(f"extractor {self.extractor.name} returned {len(raw)} results for {len(texts)} texts")
        return raw

    def _extract_one(self, text: str) -> RawExtraction | str:
        try:
            return self._extract_texts([text])[0]
        except KgbuildError:
            raise
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"

    def _prune(self, root: str, gone: list[str]) -> None:
        files = self.state.files(root)
        self._remove_documents(sorted(d for rel in gone for d in files[rel].documents))
        for rel in gone:
            del files[rel]

    def _remove_documents(self, doc_ids: list[str]) -> None:
        if not doc_ids:
            return
        self.stores.open()
        self.journal.record(doc_ids)
        self.stores.remove_documents(doc_ids)
        self._vectors_touched = True
        self.report.documents_removed += len(doc_ids)

    def _checkpoint(self) -> None:
        """Graph and vectors durable first, then the state that vouches for them."""
        with self._timed("checkpoint"):
            self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        self.index.checkpoint(self.stores, self.journal)
        self._last_checkpoint = time.monotonic()

    def _finish(self, root: str) -> None:
        if self._vectors_touched or not self.state.totals:
            self.index.record_totals(self.stores.counts())
        self._checkpoint()
        self.report.totals = IndexStats(**self.state.totals)


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
