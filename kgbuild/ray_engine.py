"""The engine ``ray`` (``kgbuild ingest DIR --engine ray``): reading, chunking, extraction and embedding on a
Ray cluster, on Ray Data; resolution and writing stay in this process.

One streaming dataset per run::

    changed files -> flat_map(read and chunk)          parallel tasks, one file each
                  -> map_batches(_ModelActor)          a pool of actors, each holding the models once
                  -> iter_rows()                        back here, in reading order

Each file becomes a row stream: one file row (what reading found: records kept, skipped, an error), then
per new or changed document a document row and one row per chunk. The actors extract and embed the chunk
rows in batches of ``batch_size * 4`` (the window of the local engine) and pass the other rows through.
The order is preserved, so this process gets the files, documents and chunks in the order the local
engine reads them, and builds the same write batches from them (``IngestPipeline._stream_batches``):
the lock, the journal, checkpoints, crash recovery and the links across documents keep their meaning,
and the index is the one a local run makes (tests/test_ray_engine.py compares them).

The actors get the run's extractor and embedder as pickles without their loaded models (each loads its
own, once): a model given as a directory must be at the same path on every node.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterator

from kgbuild.errors import ConfigError, KgbuildError

if TYPE_CHECKING:
    from kgbuild.pipeline import IngestPipeline, ReadFile
    from kgbuild.plan import ChangedFile

FILE_ROW, DOCUMENT_ROW, CHUNK_ROW = 0, 1, 2
INSTALL_HINT = "--engine ray needs Ray: pip install 'kgbuild[ray]' (or uv sync --extra ray)"


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def start_ray(address: str | None, actors: int | None) -> Any:
    """Join the cluster at ``address``, or start a Ray on this machine; an initialised Ray is used as it is.

    A local Ray gets at least one CPU more than the actors take, so reading tasks are never starved by
    the actors, and the driver's ``sys.path`` (so the workers import what this process imports).
    """
    ray = require_ray()
    if not ray.is_initialized():
        options: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = max(os.cpu_count() or 1, (actors or 1) + 1)
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            # a Ray of this process only: its token set-up notice is not the user's to act on
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        try:
            ray.init(**options)
        except ConnectionError as exc:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else (
                "; a cluster with token authentication (Ray's default) also needs RAY_AUTH_MODE=token and its token"
                " (~/.ray/auth_token or RAY_AUTH_TOKEN) here")
            raise ConfigError(f"Ray cluster at {address}: cannot connect ({exc}){hint}") from None
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # the writer needs the reading order
    context.enable_progress_bars = False  # kgbuild shows its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # "progress bars disabled" and the like: kgbuild reports
    return ray


def cluster_resources(ray: Any) -> tuple[int, float, int]:
    """(alive nodes, CPUs, GPUs) of the cluster."""
    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return nodes, float(resources.get("CPU", 0)), int(resources.get("GPU", 0))


def actor_plan(requested: int | None, cpus: float, gpus: int, device: str) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor): one actor per GPU where the cluster has GPUs (and the
    device is not ``cpu``), else one per 2 CPUs; ``requested`` overrides the count."""
    if gpus and device != "cpu":
        return requested or gpus, 1.0, 1.0
    return requested or max(1, int(cpus) // 2), 1.0, 0.0


def shared_store_warning(nodes: int, settings: Any) -> str | None:
    """What to say when a cluster of several machines writes into embedded stores (kgbuild.registry)."""
    from kgbuild.registry import graph_backend, vector_backend

    embedded = [what for what, backend in (("the graph", graph_backend(settings.graph)),
                                           ("the vectors", vector_backend(settings.vector_backend))) if backend.embedded]
    if nodes <= 1 or not embedded:
        return None
    return (f"a Ray cluster of {nodes} nodes, and {' and '.join(embedded)} in embedded stores: they are written on this"
            " machine only, by this process; the embedded stores are for one machine, use --graph neo4j and a Qdrant"
            " server (--qdrant-url) for many")


class RayExtraction:
    """The changed files of one run, read, chunked, extracted and embedded on Ray, handed back in reading order."""

    def __init__(self, pipeline: IngestPipeline):
        self.pipeline = pipeline
        settings = pipeline.settings
        self.ray = start_ray(settings.ray_address, settings.ray_actors)
        nodes, cpus, gpus = cluster_resources(self.ray)
        self.actors, self.actor_cpus, self.actor_gpus = actor_plan(settings.ray_actors, cpus, gpus, settings.device)
        warning = shared_store_warning(nodes, settings)
        if warning:
            pipeline.report.warnings.append(warning)

    def read_files(self, changed: list[ChangedFile], recovered: set[str]) -> Iterator[ReadFile]:
        """The changed files in order, each with its documents (extracted and embedded) as they come back."""
        self.pipeline._phase("loading model")  # the driver's chunker: the model's own tokenizer
        rows = self._rows(changed, recovered)
        self.pipeline._phase("extracting")
        try:
            for number, changed_file in enumerate(changed):
                kind, file_number, blob = next(rows)
                if kind != FILE_ROW or file_number != number:
                    raise KgbuildError(f"Ray returned rows out of order at file {changed_file.file.rel_path}")
                item, documents = pickle.loads(blob)
                item.changed = changed_file  # the driver's own (the pickled copy carried the same)
                item.documents = self._documents(rows, documents)
                yield item
            if next(rows, None) is not None:
                raise KgbuildError("Ray returned more rows than the files read")
        finally:
            # ends the dataset's execution now, while Ray runs, not whenever the iterator is collected
            rows.close()

    def _documents(self, rows: Iterator[tuple[int, int, bytes]], count: int) -> Iterator[Any]:
        from kgbuild.pipeline import ReadDocument

        progress = self.pipeline.progress
        for _ in range(count):
            kind, _, blob = next(rows)
            if kind != DOCUMENT_ROW:
                raise KgbuildError("Ray returned a chunk where a document was expected")
            document, chunk_count = pickle.loads(blob)
            progress.on_chunks_added(chunk_count)
            read = ReadDocument(document, [], [], [])
            for _ in range(chunk_count):
                kind, _, blob = next(rows)
                chunk, result, vector = pickle.loads(blob)
                read.chunks.append(chunk)
                read.results.append(result)
                read.vectors.append(vector)
            progress.on_chunks_done(chunk_count)
            yield read

    def _rows(self, changed: list[ChangedFile], recovered: set[str]) -> Iterator[tuple[int, int, bytes]]:
        ray = self.ray
        pipeline = self.pipeline
        settings = pipeline.settings
        reader = _FileReader(pipeline.read_options, pipeline._ensure_chunker(), recovered)
        # by value where they are defined in a script (cloudpickle), without their loaded models (their __getstate__)
        models = ray.cloudpickle.dumps((pipeline.extractor, pipeline.embedder, pipeline.schema))
        source = ray.data.from_items([{"file": n, "changed": pickle.dumps(c)} for n, c in enumerate(changed)],
                                     override_num_blocks=max(1, min(len(changed), 4 * self.actors + 4)))
        with warnings.catch_warnings():  # max_restarts has no named parameter in Ray 2.60; it warns of the generic form
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            dataset = source.flat_map(reader, num_cpus=1).map_batches(
                _ModelActor, fn_constructor_args=(models, settings.batch_size * 4),
                batch_size=settings.batch_size * 4, compute=ray.data.ActorPoolStrategy(size=self.actors),
                num_cpus=self.actor_cpus, num_gpus=self.actor_gpus, batch_format="numpy",
                max_restarts=0)  # a failing actor is the run's error (restarting it would load the models again)
        iterator = iter(dataset.iter_rows())
        try:
            while True:
                with pipeline.timer("ray (read, extract, embed)"):
                    row = next(iterator, None)
                if row is None:
                    return
                yield int(row["kind"]), int(row["file"]), bytes(row["blob"])
        except Exception as exc:
            cause = _kgbuild_cause(exc)
            if cause is not None:
                raise cause from None
            raise
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


class _FileReader:
    """Reads and chunks one changed file in a Ray task: its file row, then its document and chunk rows."""

    def __init__(self, options: Any, chunker: Any, recovered: set[str]):
        self.options, self.chunker, self.recovered = options, chunker, recovered

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        from kgbuild.pipeline import read_and_chunk

        number = int(row["file"])
        item = read_and_chunk(pickle.loads(row["changed"]), self.options, self.chunker.chunk, self.recovered)
        documents = list(item.documents or ())
        item.documents = None
        rows = [{"kind": FILE_ROW, "file": number, "blob": pickle.dumps((item, len(documents)))}]
        for read in documents:
            rows.append({"kind": DOCUMENT_ROW, "file": number, "blob": pickle.dumps((read.document, len(read.chunks)))})
            rows.extend({"kind": CHUNK_ROW, "file": number, "blob": pickle.dumps(chunk)} for chunk in read.chunks)
        return rows


class _ModelActor:
    """A Ray actor holding the extractor and the embedder: extracts and embeds the chunk rows of each batch
    (``kgbuild.extract.runner``: one bad chunk never stops the batch), passes the other rows through."""

    def __init__(self, models: bytes, window: int):
        self.extractor, self.embedder, self.schema = pickle.loads(models)
        self.window = window

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from kgbuild.extract.runner import extract_chunks
        from kgbuild.timing import StageTimer

        kinds, blobs = batch["kind"], list(batch["blob"])
        at = [n for n, kind in enumerate(kinds) if kind == CHUNK_ROW]
        chunks = [pickle.loads(blobs[n]) for n in at]
        if chunks:
            results = extract_chunks(self.extractor, self.schema, chunks, window=self.window, timer=StageTimer(),
                                     on_done=lambda _: None)
            vectors = self.embedder.embed([c.contextual_text for c in chunks])
            for n, chunk, result, vector in zip(at, chunks, results, vectors):
                blobs[n] = pickle.dumps((chunk, result, vector))
        out = np.empty(len(blobs), dtype=object)
        out[:] = blobs
        return {"kind": kinds, "file": batch["file"], "blob": out}


def _kgbuild_cause(exc: BaseException) -> KgbuildError | None:
    """The kgbuild error (a model that cannot load, ...) an actor or task raised, out of Ray's wrappers."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, KgbuildError):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None
