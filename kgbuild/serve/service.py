"""The long-lived reader behind ``kgbuild serve``: one index, held open, swapped when an ingest commits.

``IndexService`` answers queries, entity and document look-ups from a ``Generation``: one committed
state of the index, frozen in a snapshot (``kgbuild.serve.snapshot``), with its stores, retrievers,
entities and chunk table opened once. A watcher thread compares the index's signature (state, retrieval
graph, resolution overrides) every ``poll_seconds``; when an ingest has committed a new state and the
index is quiet again, it opens the next generation beside the current one and swaps it in with one
assignment. Requests hold a lease on the generation they started with, so a swap never changes an
answer half-way, and the old generation is closed (its snapshot deleted) when its last request ends.

Everything is the library's: ``HybridRetriever`` and ``VectorSearcher`` answer queries, ``build_filter``
validates filters against the schema, ``entity_filter_keys`` / ``find_entity`` / ``explain_mentions`` resolve
and explain entities, ``Index.stats`` counts.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kgbuild.errors import ConfigError, KgbuildError, TransientError
from kgbuild.serve import models as m
from kgbuild.serve.snapshot import SNAPSHOT_DIR, NotReady, index_signature, lock_held, remove_stale_snapshots, take_snapshot
from kgbuild.settings import Settings
from kgbuild.types import Entity, QueryHit, VectorFilter

log = logging.getLogger("kgbuild.serve")

MENTION_LIMIT = 50  # mentions listed per entity (the total is given)
NEIGHBOUR_LIMIT = 200  # entities returned by a neighbourhood


class IndexUnavailable(TransientError):
    """No committed state of the index can be served yet (HTTP 503): none exists, a first ingest is writing it,
    or an interrupted ingest left it to be recovered."""


class FieldError(ConfigError):
    """A request field has a bad value (HTTP 400); ``field`` names it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


class NotFound(KgbuildError):
    """No such entity or document (HTTP 404); ``candidates`` are close names that exist."""

    def __init__(self, message: str, candidates: Sequence[str] = ()):
        super().__init__(message)
        self.candidates = list(candidates)


@dataclass
class ServeLimits:
    max_k: int = 100
    max_text_chars: int = 2000
    max_hops: int = 3


# -- one committed state -----------------------------------------------------------------------------


class Generation:
    """One committed state of the index, open for reading (see the module doc). Built by ``open()``."""

    def __init__(self, number: int, folder: Path, signature: Any, settings: Settings, embedder: Any,
                 vector_sink: Callable[[], Any] | None = None):
        self.number = number
        self._make_vector_sink = vector_sink  # tests, embedding kgbuild: a store the settings cannot name
        self._own_vector: Any = None
        self.folder = folder
        self.signature = signature
        self.settings = settings.model_copy(update={"out_dir": folder})
        self.embedder = embedder
        self.loaded_at = 0.0
        self.users = 0
        self.retired = False
        self.closed = False
        self._hybrid_lock = threading.Lock()  # HybridRetriever keeps per-query state on itself
        self._graph_lock = threading.Lock()  # a NetworkX graph is loaded on its first full read
        self._adjacency: dict[str, list[tuple[str, str, str]]] | None = None
        self._entities: dict[str, Entity] | None = None
        self._stats: Any = None
        self.retriever: Any = None
        self.searcher: Any = None
        self.graph: Any = None

    def open(self) -> Generation:
        from kgbuild.entities import entity_filter_keys
        from kgbuild.index import Index
        from kgbuild.retrieve.chunk_table import ChunkTable
        from kgbuild.retrieve.graph_matrix import retrieval_dir
        from kgbuild.retrieve.hybrid import HybridRetriever
        from kgbuild.retrieve.vector import VectorSearcher

        try:
            shared = None
            if self._make_vector_sink is not None:
                self._own_vector = self._make_vector_sink()
                self._own_vector.open()
                shared = _Held(self._own_vector)
            self.index = Index.open_existing(self.settings, vector_sink=shared)
            self.settings = self.index.settings
            self.state, self.manifest = self.index.state, self.index.manifest
            self.live_vectors = not _backend_embedded("vector", self.manifest.vectors.kind if self.manifest.vectors else "")
            self.live_graph = not _backend_embedded("graph", self.manifest.graph.kind if self.manifest.graph else "")
            self.graph = self.index.graph_sink()
            self.graph.open()
            self.overrides = self.index.overrides()
            # all channels open; a request chooses among them (HybridRetriever.enabled, under _hybrid_lock)
            self.retriever = HybridRetriever(self.settings, embedder=self.embedder, vector_sink=shared).open()
            named = self._named_entities()

            def resolve(value: str) -> list[str]:
                return entity_filter_keys(named() if callable(named) else named, value, self.overrides)

            self.resolve_entity = resolve
            self.retriever.resolve_entity = resolve
            # a second sink on the same shard shares its handle (kgbuild.connectors.qdrant_edge)
            self.searcher = VectorSearcher(self.settings, embedder=self.embedder, vector_sink=shared).open()
            self.searcher.resolve_entity = resolve
            self.chunks = ChunkTable.open(retrieval_dir(self.folder))
            self.documents = self.state.all_documents()
            self.by_path = {doc.path: doc_id for doc_id, doc in self.documents.items()}
            self._warm_up()
        except BaseException:
            self.close()
            raise
        self.loaded_at = time.time()
        return self

    @property
    def entities(self) -> dict[str, Entity]:
        """Every entity of the graph store with its counts (``GraphSink.entities()``), read on first use: on NetworkX
        that parses the whole graph file (7 s and some hundred MB at 10k chunks), which a query needs not wait for."""
        with self._graph_lock:
            if self._entities is None:
                self._entities = self.graph.entities()
            return self._entities

    def preload(self) -> None:
        try:
            if not self.closed:
                self.entities  # noqa: B018  (read now, kept)
                release_freed_memory()  # what parsing the graph file left
        except Exception as exc:  # closed meanwhile, say: the first request that needs them reads them again
            log.debug("preloading the entities of generation %d: %s", self.number, exc)

    def _named_entities(self) -> Any:
        """What ``--entity`` filters are resolved against: the retrieval graph's entities (names, aliases; in memory
        already), as the retriever's own entity matcher takes them; the graph store's where there is no such graph."""
        channel = self.retriever.graph_channel
        if channel is None:
            return lambda: self.entities
        from kgbuild.retrieve.graph_matrix import TITLE

        return {e.id: Entity(e.id, e.type, e.key, e.name, list(e.aliases), e.df, e.confidence)
                for e in channel.graph.entities if e.type != TITLE}

    def _warm_up(self) -> None:
        """The query model, the channels' lazy imports and caches load here, not in the first request."""
        try:
            self.retriever.retrieve("warm up", k=1)
            self.searcher.query("warm up", k=1)
        except Exception as exc:  # an empty index, say: the requests will say what is wrong
            log.debug("warming up generation %d: %s", self.number, exc)

    def describe(self) -> m.GenerationModel:
        return m.GenerationModel(number=self.number, loaded_at=round(self.loaded_at, 3), documents=len(self.documents),
                                 chunks=sum(d.chunks for d in self.documents.values()))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for closing in (self.retriever, self.searcher, self.graph, self._own_vector):
            if closing is not None:
                try:
                    closing.close()
                except Exception as exc:  # the others still close
                    log.warning("closing generation %d: %s", self.number, exc)
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
        release_freed_memory()

    # -- reads that need the graph store -------------------------------------------------------------

    def graph_call(self, read: Callable[[Any], Any]) -> Any:
        with self._graph_lock:
            return read(self.graph)

    def adjacency(self) -> dict[str, list[tuple[str, str, str]]]:
        """entity id -> [(label, other entity id, "out"|"in")], from the graph store's relation edges (once)."""
        with self._graph_lock:
            if self._adjacency is None:
                adjacency: dict[str, list[tuple[str, str, str]]] = {}
                for head, label, tail in self.graph.entity_graph().relations:
                    adjacency.setdefault(head, []).append((label, tail, "out"))
                    adjacency.setdefault(tail, []).append((label, head, "in"))
                self._adjacency = adjacency
            return self._adjacency

    def stats(self) -> Any:
        with self._graph_lock:
            if self._stats is None:
                self._stats = self.index.stats()
            return self._stats


class _Held:
    """A vector sink the generation opened and will close: lent to the retrievers and ``Index.stats``, whose
    ``open()`` and ``close()`` leave it as it is."""

    def __init__(self, sink: Any):
        self._sink = sink

    def open(self, dimension: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


def release_freed_memory() -> None:
    """Collect, then give the heap that a closed generation (or a parse) freed back to the system. glibc keeps freed
    memory in its arenas otherwise: measured at 10k chunks, each swap left the server 70-90 MB larger, reload after
    reload; with the trim it levels off after the first. Nothing happens where there is no glibc."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: libc's where it is glibc
    except (OSError, AttributeError):
        pass


def _backend_embedded(kind: str, name: str) -> bool:
    from kgbuild.registry import graph_backend, vector_backend

    if not name:
        return True
    try:
        return (graph_backend if kind == "graph" else vector_backend)(name).embedded
    except KgbuildError:
        return True


# -- the service ---------------------------------------------------------------------------------------


@dataclass
class ServiceStatus:
    reason: str = ""  # why no generation can be served, when none is
    writing: bool = False
    last_error: str = ""
    reloads: int = 0
    reload_seconds: deque = field(default_factory=lambda: deque(maxlen=20))


class IndexService:
    """Serves one index folder (``settings.out_dir``) read-only; see the module doc.

    >>> with IndexService(Settings(out_dir=".kgbuild")) as service:
    ...     service.query(m.QueryRequest(text="new headsets", hybrid=True)).hits[0].path
    """

    def __init__(self, settings: Settings, *, limits: ServeLimits | None = None, poll_seconds: float = 0.5,
                 embedder: Any = None, snapshot_root: Path | None = None, vector_sink: Callable[[], Any] | None = None):
        self.settings = settings
        self.out_dir = Path(settings.out_dir).absolute()
        self.limits = limits or ServeLimits()
        self.poll_seconds = poll_seconds
        self._embedder = embedder  # None: the index's query embedder, made on the first generation
        self._embedder_name = ""
        self.snapshot_root = snapshot_root
        self._vector_sink = vector_sink  # makes each generation's vector store, where the settings cannot name it
        self._current: Generation | None = None
        self._lock = threading.Lock()  # the current generation, leases
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._attempts = 0  # snapshots taken or tried: each gets a folder name of its own
        self._name = secrets.token_hex(3)  # snapshot folders of two services in one process never meet
        self._journal: tuple[Any, frozenset[str]] = (None, frozenset())
        self.status = ServiceStatus()
        self.communities_filter = "communities" in inspect.signature(_build_filter()).parameters

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> IndexService:
        """Open the first generation where the index can be read now (else answer 503 until it can), and start
        the watcher. Errors that no wait can cure (a missing Neo4j password, an unreadable state) raise here."""
        remove_stale_snapshots(self.out_dir)
        if wait:
            self.refresh(raise_errors=True)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="kgbuild-serve-watcher", daemon=True)
            self._watcher.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            self._retire(current)
        with contextlib.suppress(OSError):  # the snapshots' folder, once no other server has one in it
            (self.snapshot_root or self.out_dir / SNAPSHOT_DIR).rmdir()

    def __enter__(self) -> IndexService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # never let the watcher die; the error is in the status
                log.exception("reloading %s", self.out_dir)

    def refresh(self, *, raise_errors: bool = False) -> bool:
        """Swap in the index's newest committed state where it changed and can be read; True when swapped."""
        with self._refresh_lock:
            signature = index_signature(self.out_dir)
            current = self._current
            if current is not None and signature == current.signature:
                self.status.writing = lock_held(self.out_dir)
                return False
            if signature is None and current is not None:  # the index was deleted: nothing left to serve
                self._swap(None)
                self.status.reason = f"no kgbuild index in {self.out_dir} any more"
            started = time.perf_counter()
            self._attempts += 1
            name = f"{os.getpid()}-{self._name}-{self._attempts}"
            try:
                snapshot = take_snapshot(self.out_dir, name, self.snapshot_root)
            except NotReady as exc:
                self.status.writing = exc.writing
                if self._current is None:
                    self.status.reason = exc.reason
                return False
            except OSError as exc:
                if self.snapshot_root is None and not os.access(self.out_dir, os.W_OK):
                    import tempfile

                    self.snapshot_root = Path(tempfile.mkdtemp(prefix="kgbuild-serve-"))
                    log.warning("%s is not writable: snapshots go to %s", self.out_dir, self.snapshot_root)
                    return False
                return self._failed(f"taking a snapshot of {self.out_dir}: {exc}", raise_errors)
            try:
                generation = Generation(self.status.reloads + 1, snapshot.folder, snapshot.signature, self.settings,
                                        self._embedder_for(snapshot.folder), self._vector_sink).open()
            except Exception as exc:
                import shutil

                shutil.rmtree(snapshot.folder, ignore_errors=True)
                return self._failed(str(exc) if isinstance(exc, KgbuildError) else f"{type(exc).__name__}: {exc}",
                                    raise_errors, exc)
            self._swap(generation)
            # the entity look-ups' data, read beside the requests (they wait for it only if they need it first)
            threading.Thread(target=generation.preload, name="kgbuild-serve-entities", daemon=True).start()
            self.status.writing = False
            self.status.reason = self.status.last_error = ""
            self.status.reloads += 1
            seconds = time.perf_counter() - started
            self.status.reload_seconds.append(seconds)
            log.info("serving %s as of generation %d (%d documents; snapshot %.2f s, %.1f MB copied; open %.2f s)",
                     self.out_dir, generation.number, len(generation.documents), snapshot.seconds,
                     snapshot.copied_bytes / 1e6, seconds - snapshot.seconds)
            return True

    def _failed(self, message: str, raise_errors: bool, exc: BaseException | None = None) -> bool:
        self.status.last_error = message
        if self._current is None:
            self.status.reason = f"the index at {self.out_dir} cannot be opened: {message}"
        log.error("cannot open %s: %s", self.out_dir, message)
        if raise_errors:
            if isinstance(exc, KgbuildError):
                raise exc
            raise KgbuildError(message) from exc
        return False

    def _embedder_for(self, folder: Path) -> Any:
        """The query embedder, made once and kept across generations while the index's embedding model stays."""
        from kgbuild.embed import query_embedder
        from kgbuild.state import IngestState

        name = IngestState.load(folder).manifest.embedding_model or self.settings.embedding_model
        if self._embedder is None or (self._embedder_name and name != self._embedder_name):
            self._embedder = query_embedder(name)
            self._embedder_name = name
        return self._embedder

    def _swap(self, generation: Generation | None) -> None:
        with self._lock:
            old, self._current = self._current, generation
        if old is not None:
            self._retire(old)

    def _retire(self, generation: Generation) -> None:
        with self._lock:
            generation.retired = True
            idle = generation.users == 0
        if idle:
            generation.close()

    @contextlib.contextmanager
    def generation(self) -> Iterator[Generation]:
        """A lease on the current generation for one request; ``IndexUnavailable`` (503) when there is none."""
        with self._lock:
            current = self._current
        if current is None:
            self.refresh()  # the first ingest may just have finished
        with self._lock:
            current = self._current
            if current is None:
                raise IndexUnavailable(self.status.reason or f"the index at {self.out_dir} is not open yet")
            current.users += 1
        try:
            yield current
        finally:
            with self._lock:
                current.users -= 1
                idle = current.retired and current.users == 0
            if idle:
                current.close()

    # -- answers --------------------------------------------------------------------------------

    def health(self) -> m.HealthResponse:
        current = self._current
        return m.HealthResponse(
            status="ok" if current is not None else "unavailable", index=str(self.out_dir),
            reason="" if current is not None else (self.status.reason or "not open yet"),
            ingest_running=lock_held(self.out_dir), generation=current.describe() if current is not None else None,
            last_reload_error=self.status.last_error, reloads=self.status.reloads)

    def query(self, request: m.QueryRequest) -> m.QueryResponse:
        from kgbuild.retrieve.hybrid import CHANNELS

        self._check_query(request)
        hybrid = request.hybrid or request.channels is not None
        channels = list(dict.fromkeys(request.channels)) if request.channels is not None else list(CHANNELS)
        if hybrid and not channels:
            raise FieldError("channels", "channels: name at least one channel (vector, graph, bm25)")
        started = time.perf_counter()
        with self.generation() as gen:
            query_filter = self._filter(gen, request)
            journaled = self._journaled() if gen.live_vectors else frozenset()
            limit = request.k + min(len(journaled), 50)
            weights: dict[str, float] = {}
            if hybrid:
                with gen._hybrid_lock:
                    gen.retriever.enabled = {c: c in channels for c in CHANNELS}
                    hits = gen.retriever.retrieve(request.text, k=limit, query_filter=query_filter)
                    weights = dict(gen.retriever.fusion_weights)
            else:
                hits = gen.searcher.query(request.text, k=limit, query_filter=query_filter)
            hits = [h for h in hits if h.doc_id not in journaled][: request.k]
            return m.QueryResponse(
                text=request.text, mode="hybrid" if hybrid else "vector", channels=channels if hybrid else ["vector"],
                k=request.k, took_ms=round(1000 * (time.perf_counter() - started), 2), fusion_weights=weights,
                generation=gen.describe(), hits=[hit_model(rank, hit) for rank, hit in enumerate(hits, 1)])

    def _check_query(self, request: m.QueryRequest) -> None:
        limits = self.limits
        if not request.text.strip():
            raise FieldError("text", "text: the query text is empty")
        if len(request.text) > limits.max_text_chars:
            raise FieldError("text", f"text: {len(request.text)} characters, more than the server's limit of {limits.max_text_chars}")
        if not 1 <= request.k <= limits.max_k:
            raise FieldError("k", f"k: must be from 1 to {limits.max_k} (the server's --max-k), got {request.k}")
        if request.community and not self.communities_filter:
            raise FieldError("community", f"community {', '.join(request.community)}: communities are not built for this"
                                          " index yet, so there is nothing to filter by (this kgbuild has no community filter)")

    def _filter(self, gen: Generation, request: m.QueryRequest) -> VectorFilter:
        """The request's filters, validated against the index's schema by ``build_filter``; a bad one is a 400
        naming its field."""
        from kgbuild.paths import documents_as_stored

        build_filter = _build_filter()
        fields: dict[str, tuple[str, Any]] = {"entity": ("entities", request.entity), "type": ("types", request.type),
                                              "class": ("classes", request.class_), "doc": ("docs", request.doc)}
        if request.community:
            fields["community"] = ("communities", request.community)
        arguments: dict[str, Any] = {}
        module = communities_module()
        if request.community and module is not None and "resolve_community" in inspect.signature(build_filter).parameters:
            arguments["resolve_community"] = module.community_resolver(gen.folder)
        for name, (argument, value) in fields.items():
            if not value:
                continue
            if name == "doc":
                try:
                    value = documents_as_stored(gen.state, value)
                except ConfigError as exc:
                    raise FieldError(name, _api_words(str(exc))) from None
            arguments[argument] = value
        try:
            return build_filter(gen.manifest, **arguments, resolve_entity=gen.resolve_entity)
        except ConfigError as exc:
            message = str(exc)
        resolvers = {k: v for k, v in arguments.items() if k.startswith("resolve_")}
        for name, (argument, _) in fields.items():  # which field: each alone, to name it
            if argument in arguments:
                try:
                    build_filter(gen.manifest, **{argument: arguments[argument]}, **resolvers, resolve_entity=gen.resolve_entity)
                except ConfigError as exc:
                    raise FieldError(name, _api_words(str(exc))) from None
        raise FieldError("entity", _api_words(message))

    def _journaled(self) -> frozenset[str]:
        """Documents an ingest is writing to the live stores now (``journal.json``), read again when it changes."""
        from kgbuild.state import Journal

        path = self.out_dir / "journal.json"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return frozenset()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._journal[0] != key:
            try:
                self._journal = (key, frozenset(Journal(self.out_dir).doc_ids))
            except KgbuildError:
                return self._journal[1]
        return self._journal[1]

    def entity(self, value: str, *, mention_limit: int = MENTION_LIMIT) -> m.EntityResponse:
        """An entity by ``TYPE:NAME`` (key, name or alias, as ``kgbuild entities show`` finds it) or by id."""
        from kgbuild.entities import explain_mentions

        with self.generation() as gen:
            entity, matched = _find_entity(gen, value)
            mentions = gen.graph_call(lambda graph: graph.entity_mentions([entity.id]))
            if gen.live_graph:  # a graph server: leave out the documents an ingest is writing now
                journaled = self._journaled()
                mentions = [r for r in mentions if r["doc_id"] not in journaled]
            paths = {doc_id: doc.path for doc_id, doc in gen.documents.items()}
            reasons, documents = explain_mentions(mentions, paths)
            mentions = sorted(mentions, key=lambda r: (paths.get(r["doc_id"], r["doc_id"]), r["start"], r["end"]))
            listed, seen = [], set()
            for r in mentions:  # a span in two overlapping chunks is one mention
                if (r["doc_id"], r["start"], r["end"]) in seen:
                    continue
                seen.add((r["doc_id"], r["start"], r["end"]))
                listed.append(m.MentionModel(doc_id=r["doc_id"], path=paths.get(r["doc_id"], r["doc_id"]),
                                             chunk_id=r["chunk_id"], start=r["start"], end=r["end"], text=r["text"],
                                             confidence=round(float(r["confidence"]), 4), rule=r["rule"], via=r["via"]))
            return m.EntityResponse(
                entity=entity_model(entity), matched=matched,
                why_merged=[m.AliasReasonModel(alias=r.alias, rule=r.rule, via=r.via, explanation=r.describe(),
                                               mentions=r.mentions, documents=r.documents) for r in reasons],
                documents=[m.EntityDocumentModel(doc_id=d.doc_id, path=d.path, mentions=d.mentions) for d in documents],
                mentions=listed[:mention_limit], mentions_total=len(listed), pinned=gen.overrides.pinned_for(entity.key),
                generation=gen.describe())

    def neighbourhood(self, value: str, hops: int = 1) -> m.NeighbourhoodResponse:
        """The entities within ``hops`` relation steps of one (by id or ``TYPE:NAME``), and the relations among them."""
        if not 1 <= hops <= self.limits.max_hops:
            raise FieldError("hops", f"hops: must be from 1 to {self.limits.max_hops}, got {hops}")
        with self.generation() as gen:
            centre, _ = _find_entity(gen, value)
            adjacency = gen.adjacency()
            distance = {centre.id: 0}
            frontier = [centre.id]
            truncated = False
            for step in range(1, hops + 1):
                following = []
                for node in frontier:
                    for _, other, _ in sorted(adjacency.get(node, ())):
                        if other not in distance:
                            if len(distance) > NEIGHBOUR_LIMIT:
                                truncated = True
                                break
                            distance[other] = step
                            following.append(other)
                frontier = following
            relations = sorted({(head, label, tail) for node in distance for label, other, way in adjacency.get(node, ())
                                if other in distance for head, tail in [(node, other) if way == "out" else (other, node)]})
            known = gen.entities
            return m.NeighbourhoodResponse(
                entity=entity_model(centre), hops=hops,
                neighbours=[m.NeighbourModel(entity=entity_model(known[i]), hops=d)
                            for i, d in sorted(distance.items(), key=lambda item: (item[1], -known[item[0]].mention_count
                                                                                   if item[0] in known else 0, item[0]))
                            if d > 0 and i in known],
                relations=[m.RelationEdgeModel(head=known[h].key if h in known else h, label=label,
                                               tail=known[t].key if t in known else t, head_id=h, tail_id=t)
                           for h, label, t in relations],
                truncated=truncated, generation=gen.describe())

    def document(self, value: str) -> m.DocumentResponse:
        """A document by id or by its path as stored in the index, with its chunks."""
        with self.generation() as gen:
            doc_id = value if value in gen.documents else gen.by_path.get(value)
            if doc_id is None:
                from rapidfuzz import process

                close = [path for path, _, _ in process.extract(value, list(gen.by_path), limit=3, score_cutoff=60)]
                raise NotFound(f"no document {value!r} in the index (give its id or its path as stored, e.g. as a query"
                               " hit's `path`)", close)
            doc = gen.documents[doc_id]
            from kgbuild.ids import chunk_id

            payloads = []
            for position in range(doc.chunks):
                payload = gen.chunks.get(chunk_id(doc_id, position)) if gen.chunks is not None else None
                if payload is not None:
                    payloads.append(payload)
            first = payloads[0] if payloads else {}
            counts: dict[str, int] = {}
            for p in payloads:
                for key in p.get("entity_keys") or ():
                    counts[key] = counts.get(key, 0) + 1
            return m.DocumentResponse(
                doc_id=doc_id, path=doc.path, title=str(first.get("title", "")), content_hash=doc.content_hash,
                classes={t: list(v) for t, v in (first.get("doc_class") or {}).items()},
                entities=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
                chunks=[m.ChunkModel(chunk_id=str(p.get("chunk_id")), position=int(p.get("position", 0)), start=int(p.get("start", 0)),
                                     end=int(p.get("end", 0)), text=str(p.get("text", "")), entities=list(p.get("entity_keys") or ()),
                                     classes={t: list(v) for t, v in (p.get("class") or {}).items()}) for p in payloads],
                generation=gen.describe())

    def stats(self) -> m.StatsResponse:
        with self.generation() as gen:
            s = gen.stats()
            manifest = gen.manifest
            return m.StatsResponse(
                **{k: v for k, v in s.to_dict().items() if k in m.StatsResponse.model_fields},
                graph_store=manifest.graph.description if manifest.graph else "",
                vector_store=manifest.vectors.description if manifest.vectors else "",
                generation=gen.describe())

    def communities(self, level: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The index's communities at ``level`` (default the coarsest), largest first, without their member lists
        (``kgbuild.communities``, where that code and stored communities exist)."""
        module = communities_module()
        if module is None:
            raise NotFound("communities are not built for this index (this kgbuild has no kgbuild.communities)")
        with self.generation() as gen:
            found = module.load_communities(gen.settings)
            levels = list(found.levels)
            chosen = found.at_level(level if level is not None else (levels[0] if levels else 0))
        listed = []
        for community in sorted(chosen, key=lambda c: (-c.size, c.id))[:limit]:
            data = to_jsonable(community)
            for bulky in ("members", "chunks"):
                data.pop(bulky, None)
            data["size"] = community.size
            listed.append(data)
        return listed


def _find_entity(gen: Generation, value: str) -> tuple[Entity, str]:
    """The entity ``value`` names in a generation: its id, or ``TYPE:NAME`` as ``kgbuild entities show`` finds it."""
    from kgbuild.entities import EntityNotFoundError, find_entity

    if value in gen.entities:
        return gen.entities[value], "id"
    if ":" not in value:
        raise FieldError("name", f"{value!r}: name an entity as TYPE:NAME (for example PERSON:Tim Cook) or by its id")
    try:
        return find_entity(gen.entities, value, gen.overrides)
    except EntityNotFoundError as exc:
        raise NotFound(str(exc), [e.key for e in exc.candidates]) from None
    except ConfigError as exc:
        raise FieldError("name", str(exc)) from None


def communities_module() -> Any:
    """``kgbuild.communities`` where it exists and offers ``load_communities`` and ``community_resolver``, else None
    (communities are being built beside this module: nothing here needs them)."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec("kgbuild.communities") is None:
            return None
        module = importlib.import_module("kgbuild.communities")
    except Exception:  # a module being written beside this one: no communities today
        return None
    wanted = ("load_communities", "community_resolver")
    return module if all(callable(getattr(module, name, None)) for name in wanted) else None


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "to_dict"):
        return value.to_dict()
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _build_filter() -> Any:
    from kgbuild.retrieve.vector import build_filter

    return build_filter


def _api_words(message: str) -> str:
    """A filter error from the library names CLI flags (``--entity X: ...``); the API's fields have no dashes."""
    for flag in ("--entity ", "--type ", "--class ", "--doc ", "--community "):
        message = message.replace(flag, flag[2:])
    return message


# -- converters ------------------------------------------------------------------------------------------


def entity_model(e: Entity) -> m.EntityModel:
    aliases = dict(sorted(e.alias_counts.items(), key=lambda item: (-item[1], item[0]))) if e.alias_counts else dict.fromkeys(e.aliases, 0)
    return m.EntityModel(id=e.id, key=e.key, type=e.type, name=e.name, aliases=aliases, mention_count=e.mention_count,
                         confidence=round(float(e.confidence), 4))


def hit_model(rank: int, hit: QueryHit) -> m.HitModel:
    reasons = [m.ReasonModel(channel=r.channel, rank=r.rank, score=r.score, entity=r.entity, path=list(r.path))  # type: ignore[arg-type]
               for r in hit.reasons]
    return m.HitModel(
        rank=rank, chunk_id=hit.chunk_id, doc_id=hit.doc_id, path=hit.path, title=hit.title, start=hit.start, end=hit.end,
        score=hit.score, text=hit.text, entities=[m.EntityRefModel(id=e.id, key=e.key, name=e.name, type=e.type) for e in hit.entities],
        matched_entities=hit.matched_entities, classes=hit.classes, reasons=reasons, why=describe_reasons(hit))


def describe_reasons(hit: QueryHit) -> list[str]:
    """``["vector #2 (0.391)", "graph #1 (0.084): PERSON:mara lindqvist -> CEO_OF -> ..."]``, as ``kgbuild query``
    prints them; a vector query's hit: its cosine and the filters it matched."""
    if not hit.reasons:
        why = [f"vector similarity {hit.score:.3f}"]
        if hit.matched_entities:
            why.append("mentions " + ", ".join(hit.matched_entities))
        return why
    out = []
    for r in hit.reasons:
        text = f"{r.channel} #{r.rank} ({r.score:.3f})"
        if r.path:
            text += ": " + " -> ".join(r.path)
        out.append(text)
    return out

