"""The embedded vector sink: Qdrant's own in-process engine (``qdrant-edge-py``), an EdgeShard on disk.

Vectors are stored in float32 with an int8 scalar-quantized copy; queries scan the
quantized vectors and rescore with the originals (oversampling 3), which measured
exact recall@10 with filtered p50 in milliseconds at 100k points on 2 cores
(see ../shared/MACHINE.md). No HNSW graph is built: it needs a blocking optimize()
and gave poor recall in that measurement.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from kgbuild.errors import SinkError
from kgbuild.connectors.qdrant_filter import (
    add_chunk_communities, export_of, group_by_communities, payloads_of, to_qdrant_filter,
)
from kgbuild.ids import point_id
from kgbuild.memory import release_mapped_pages
from kgbuild.types import COMMUNITIES_FIELD, ChunkPoint, VectorExport, VectorFilter, VectorHit
from kgbuild.write import FILTERED_FIELDS, keyword_fields

UPSERT_BATCH = 5000
# payload updates between two releases of the shard's mapped pages (``set_chunk_communities``): one update rewrites a
# few chunks, and 5,000 chunks' worth left ~30 MiB of written pages resident at the end of a 10,000-chunk ingest
RELEASE_EVERY = 500

# The engine locks a shard's folder against a second handle, even in the same process. Sinks on
# the same folder in one process share one handle (two retrievers on one index, a retriever held
# open during an ingest); the last close() closes it. Other processes still get the clear
# "in use" error.
_SHARED: dict[str, tuple[Any, int]] = {}
_SHARED_LOCK = threading.Lock()


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


class QdrantEdgeVectorSink:
    def __init__(self, path: str | Path, *, classification_tasks: Sequence[str] = ()):
        self.path = Path(path)
        self.classification_tasks = list(classification_tasks)
        self._shard: Any = None

    # -- lifecycle -------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def open(self, dimension: int | None = None) -> None:
        if self._shard is not None:
            return
        key = str(self.path.resolve())
        with _SHARED_LOCK:
            if key in _SHARED:
                shard, users = _SHARED[key]
                _SHARED[key] = (shard, users + 1)
                self._shard = shard
            else:
                self._open_shard(dimension)
                _SHARED[key] = (self._shard, 1)
        self._ensure_indexes()

    def _open_shard(self, dimension: int | None) -> None:
        q = _edge()
        config = None
        if dimension is not None:
            config = q.EdgeConfig(
                vectors=q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine),
                quantization_config=q.ScalarQuantizationConfig(type=q.ScalarType.Int8, quantile=0.99, always_ram=True),
            )
        try:
            if self.exists():
                # with a config, the engine checks that the stored vectors have the same size
                self._shard = q.EdgeShard.load(str(self.path), config) if config else q.EdgeShard.load(str(self.path))
                release_mapped_pages(self.path)  # loading reads every segment through its mapping: see flush()
            else:
                if config is None:
                    raise SinkError(f"no vector index at {self.path}: run `kgbuild ingest` first")
                self.path.mkdir(parents=True, exist_ok=True)
                self._shard = q.EdgeShard.create(str(self.path), config)
        except SinkError:
            raise
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise SinkError(
                    f"the vector index at {self.path} is in use by another kgbuild process; wait for it to finish"
                ) from None
            if "ncompatible" in str(exc):
                raise SinkError(
                    f"the vector index at {self.path} was built with another embedding size than {dimension}"
                    f" ({exc}); use the embedding model it was built with, or another --out"
                ) from None
            raise SinkError(f"cannot open the vector index at {self.path}: {exc}") from None

    def _ensure_indexes(self) -> None:
        """Keyword indexes on the fields kgbuild filters on (``FILTERED_FIELDS``), not on every keyword field as on a
        server: the engine holds them in memory. Filtering on another field still works, by reading payloads."""
        q = _edge()
        existing = set(self._shard.info().payload_schema)
        for field in [*keyword_fields(self.classification_tasks, FILTERED_FIELDS), COMMUNITIES_FIELD]:
            if field not in existing:
                self._shard.update(q.UpdateOperation.create_field_index(field, q.PayloadSchemaType.Keyword))

    def _s(self) -> Any:
        if self._shard is None:
            self.open()
        return self._shard

    def flush(self) -> None:
        """Durable on disk. Here and after each upsert, the pages of the shard's memory-mapped files (segments,
        write-ahead log) are let go of (``release_mapped_pages``): the engine keeps every page it wrote resident
        until the shard closes, ~6 MiB per 1,000 chunks over a run (BENCHMARKS.md, scale-out); they are in the page
        cache, written back by the kernel, and read again from the files when needed."""
        if self._shard is not None:
            self._shard.flush()
            release_mapped_pages(self.path)

    def close(self) -> None:
        if self._shard is None:
            return
        shard, self._shard = self._shard, None
        key = str(self.path.resolve())
        with _SHARED_LOCK:
            _, users = _SHARED.get(key, (shard, 1))
            if users > 1:
                _SHARED[key] = (shard, users - 1)
                shard.flush()
                return
            _SHARED.pop(key, None)
        shard.close()

    # -- writing -----------------------------------------------------------------------

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        q = _edge()
        shard = self._s()
        for i in range(0, len(points), UPSERT_BATCH):
            batch = []
            for p in points[i : i + UPSERT_BATCH]:
                try:
                    batch.append(q.Point(p.id, p.vector, p.payload))
                except TypeError as exc:  # the engine takes only JSON-encodable, valid-Unicode payloads
                    raise SinkError(f"chunk {p.chunk_id}: the vector index cannot store its payload ({exc})") from None
            shard.update(q.UpdateOperation.upsert_points(batch))
        release_mapped_pages(self.path)  # see flush()

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        q = _edge()
        condition = q.FieldCondition(key="doc_id", match=q.MatchAny(any=list(doc_ids)))
        self._s().update(q.UpdateOperation.delete_points_by_filter(q.Filter(must=[condition])))

    def set_chunk_communities(self, communities: Mapping[str, Sequence[str]]) -> None:
        q = _edge()
        shard = self._s()
        by_value = group_by_communities(communities)
        since_release = 0
        step = min(UPSERT_BATCH, RELEASE_EVERY)
        for value, chunks in sorted(by_value.items()):
            for i in range(0, len(chunks), step):
                ids = [point_id(c) for c in chunks[i : i + step]]
                held = [r.id for r in shard.retrieve(ids, with_payload=False, with_vector=False)]
                if held:
                    shard.update(q.UpdateOperation.set_payload(held, {COMMUNITIES_FIELD: list(value)}))
                since_release += len(ids)
                if since_release >= RELEASE_EVERY:  # each payload rewritten went through the mapped files: see flush()
                    release_mapped_pages(self.path)
                    since_release = 0
        release_mapped_pages(self.path)

    # -- reading -----------------------------------------------------------------------

    def count(self) -> int:
        return int(self._s().count(_edge().CountRequest(exact=True)))

    def search(self, vector: Sequence[float], query_filter: VectorFilter | None, limit: int) -> list[VectorHit]:
        q = _edge()
        request = q.QueryRequest(
            limit=limit,
            query=q.Query.Nearest(list(vector)),
            filter=to_qdrant_filter(q, query_filter),
            with_payload=True,
            params=q.SearchParams(quantization=q.QuantizationSearchParams(rescore=True, oversampling=3.0)),
        )
        return [VectorHit(str(p.id), float(p.score), dict(p.payload or {})) for p in self._s().query(request)]

    def chunk_communities(self, batch_size: int = 5000) -> dict[str, list[str]]:
        q = _edge()
        out: dict[str, list[str]] = {}
        offset = None
        fields = q.PayloadSelector.Include(["chunk_id", COMMUNITIES_FIELD])
        while True:
            records, offset = self._s().scroll(q.ScrollRequest(offset=offset, limit=batch_size, with_payload=fields))
            add_chunk_communities(records, out)
            release_mapped_pages(self.path)  # each page read went through the mapped segments: see flush()
            if offset is None:
                return out

    def _records(self, batch_size: int) -> Iterator[list[Any]]:
        q = _edge()
        offset = None
        while True:
            records, offset = self._s().scroll(q.ScrollRequest(offset=offset, limit=batch_size, with_payload=True))
            release_mapped_pages(self.path)  # each page read went through the mapped segments: see flush()
            yield records
            if offset is None:
                return

    def payload_pages(self, batch_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        return payloads_of(self._records(batch_size))

    def export(self, batch_size: int = 1000) -> VectorExport:
        """Every point's payload by point id (for checks, exports and checksums)."""
        return export_of(self._records(batch_size))
