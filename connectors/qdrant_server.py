"""The server vector sink: a Qdrant collection reached through qdrant-client (``--qdrant-url``).

The API key is read from the environment by the caller and handed over; it is never
stored in settings, logged or shown. Tests run this sink against qdrant-client's
local mode (``location=":memory:"`` or ``path=``), which speaks the same API.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, Mapping, Sequence

from kgbuild.errors import SinkError, TransientError
from kgbuild.connectors.qdrant_filter import (
    add_chunk_communities, export_of, group_by_communities, payloads_of, to_qdrant_filter,
)
from kgbuild.ids import point_id
from kgbuild.types import COMMUNITIES_FIELD, ChunkPoint, VectorExport, VectorFilter, VectorHit
from kgbuild.write import keyword_fields

UPSERT_BATCH = 512
UPSERT_STREAMS = 4  # batches in flight at once to a server (Qdrant's advice for bulk loads: parallel upload streams)


class QdrantServerVectorSink:
    def __init__(
        self,
        collection: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        location: str | None = None,
        classification_tasks: Sequence[str] = (),
        retry_seconds: float = 30.0,
        upsert_streams: int = UPSERT_STREAMS,
    ):
        if sum(x is not None for x in (url, path, location)) != 1:
            raise ValueError("give exactly one of url, path or location")
        self.collection = collection
        self._url, self._path, self._location = url, path, location
        self._api_key = api_key
        self.classification_tasks = list(classification_tasks)
        self._client: Any = None
        self.retry_seconds = retry_seconds
        # local mode (tests, ``path=``) is not safe for concurrent upserts: one stream there
        self.upsert_streams = max(1, upsert_streams) if url else 1
        self._vector_name: str | None = None  # None: the collection has one unnamed vector

    def __repr__(self) -> str:  # never show the key
        target = self._url or self._path or self._location
        return f"QdrantServerVectorSink(collection={self.collection!r}, target={target!r})"

    @property
    def target(self) -> str:
        return str(self._url or self._path or self._location)

    def _connect(self) -> Any:
        if self._client is None:
            from qdrant_client import QdrantClient

            try:
                if self._url:
                    self._client = QdrantClient(url=self._url, api_key=self._api_key, timeout=30)
                elif self._path:
                    self._client = QdrantClient(path=self._path)
                else:
                    self._client = QdrantClient(location=self._location)
            except RuntimeError as exc:  # local mode: folder locked by another process
                raise SinkError(f"cannot open Qdrant storage at {self.target}: {exc}") from None
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; a server that does not answer is retried with exponential backoff
        (tenacity) for up to ``retry_seconds``, then surfaces as TransientError. Every call is
        idempotent (upserts by id, deletes by filter), so running one twice is harmless."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_delay(self.retry_seconds),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )
        return retrying(self._call_once, what, fn, *args, **kwargs)

    def _call_once(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

            if isinstance(exc, ResponseHandlingException) or (
                isinstance(exc, UnexpectedResponse) and exc.status_code in (429, 502, 503, 504)
            ):
                raise TransientError(
                    f"Qdrant at {self.target} did not answer while trying to {what}"
                    f" (retried for {self.retry_seconds:g} s): {exc}"
                ) from None
            if isinstance(exc, UnexpectedResponse):
                raise SinkError(f"Qdrant at {self.target} refused to {what}: {exc}") from None
            raise

    def exists(self) -> bool:
        client = self._connect()
        return bool(self._call("look up the collection", client.collection_exists, self.collection))

    def open(self, dimension: int | None = None) -> None:
        from qdrant_client import models

        client = self._connect()
        size = None
        if not self._call("look up the collection", client.collection_exists, self.collection):
            if dimension is None:
                raise SinkError(f"no collection '{self.collection}' at {self.target}: run `kgbuild ingest` first")
            self._call(
                "create the collection",
                client.create_collection,
                self.collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            )
        else:
            info = self._call("read the collection", client.get_collection, self.collection)
            vectors = info.config.params.vectors
            if isinstance(vectors, dict) and vectors:
                # a collection made by another writer (LlamaIndex's QdrantVectorStore names its vector
                # "text-dense"): read and write its one dense vector by name
                self._vector_name = "" if "" in vectors else sorted(vectors)[0]
                vectors = vectors[self._vector_name]
            size = getattr(vectors, "size", None)
        if dimension is not None and size is not None and size != dimension:
            raise SinkError(
                f"collection '{self.collection}' at {self.target} holds {size}-dimensional vectors, but the"
                f" embedding model gives {dimension}; use the embedding model it was built with, or another --collection"
            )
        with warnings.catch_warnings():
            # qdrant-client's local mode (tests) warns that it ignores payload indexes; a server uses them
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field in [*keyword_fields(self.classification_tasks), COMMUNITIES_FIELD]:
                self._call(
                    "create a payload index",
                    client.create_payload_index,
                    self.collection,
                    field_name=field,
                    field_schema=models.PayloadSchemaType.KEYWORD,
                )

    def flush(self) -> None:
        """Upserts wait for the server's acknowledgement: nothing is buffered here."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Batches of ``UPSERT_BATCH`` points, up to ``upsert_streams`` of them in flight at once, each retried on
        its own and acknowledged (``wait=True``) before this returns; the first failure is raised."""
        from concurrent.futures import ThreadPoolExecutor

        from qdrant_client import models

        client = self._connect()
        batches = range(0, len(points), UPSERT_BATCH)

        def send(start: int) -> None:
            batch = [models.PointStruct(id=p.id, vector=self._vector(p.vector), payload=p.payload)
                     for p in points[start : start + UPSERT_BATCH]]
            self._call("upsert points", client.upsert, self.collection, points=batch, wait=True)

        if self.upsert_streams == 1 or len(batches) < 2:
            for batch in batches:
                send(batch)
            return
        with ThreadPoolExecutor(max_workers=min(self.upsert_streams, len(batches))) as pool:
            for done in [pool.submit(send, batch) for batch in batches]:
                done.result()

    def _vector(self, vector: Sequence[float]) -> Any:
        return {self._vector_name: list(vector)} if self._vector_name else list(vector)

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        from qdrant_client import models

        selector = models.FilterSelector(
            filter=models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))])
        )
        self._call("delete points", self._connect().delete, self.collection, points_selector=selector, wait=True)

    def set_chunk_communities(self, communities: Mapping[str, Sequence[str]]) -> None:
        client = self._connect()
        for value, chunks in sorted(group_by_communities(communities).items()):
            for i in range(0, len(chunks), UPSERT_BATCH):
                ids = [point_id(c) for c in chunks[i : i + UPSERT_BATCH]]
                held = [r.id for r in self._call("retrieve points", client.retrieve, self.collection, ids=ids,
                                                 with_payload=False, with_vectors=False)]
                if held:
                    self._call("set payloads", client.set_payload, self.collection, payload={COMMUNITIES_FIELD: list(value)},
                               points=held, wait=True)

    def count(self) -> int:
        return int(self._call("count points", self._connect().count, self.collection, exact=True).count)

    def search(self, vector: Sequence[float], query_filter: VectorFilter | None, limit: int) -> list[VectorHit]:
        from qdrant_client import models

        response = self._call(
            "query",
            self._connect().query_points,
            self.collection,
            query=list(vector),
            using=self._vector_name or None,
            query_filter=to_qdrant_filter(models, query_filter),
            limit=limit,
            with_payload=True,
        )
        return [VectorHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def chunk_communities(self, batch_size: int = 2000) -> dict[str, list[str]]:
        client = self._connect()
        out: dict[str, list[str]] = {}
        offset = None
        while True:
            records, offset = self._call("scroll", client.scroll, self.collection, limit=batch_size, offset=offset,
                                         with_payload=["chunk_id", COMMUNITIES_FIELD])
            add_chunk_communities(records, out)
            if offset is None:
                return out

    def _records(self, batch_size: int) -> Iterator[list[Any]]:
        client = self._connect()
        offset = None
        while True:
            records, offset = self._call(
                "scroll", client.scroll, self.collection, limit=batch_size, offset=offset, with_payload=True
            )
            yield records
            if offset is None:
                return

    def payload_pages(self, batch_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        return payloads_of(self._records(batch_size))

    def export(self, batch_size: int = 1000) -> VectorExport:
        """Every point's payload by point id (for checks, exports and checksums)."""
        return export_of(self._records(batch_size))
