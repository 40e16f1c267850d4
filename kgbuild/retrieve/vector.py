"""Metadata-filtered vector queries over an index built by ``kgbuild ingest``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

from kgbuild.embed import Embedder, query_embedder
from kgbuild.errors import ConfigError
from kgbuild.index import Index
from kgbuild.settings import Settings
from kgbuild.sinks import VectorSink
from kgbuild.state import IngestState, Manifest
from kgbuild.types import COMMUNITIES_FIELD, HEADER_SEPARATOR, EntityRef, QueryHit, VectorFilter, VectorHit


def build_filter(
    manifest: Manifest,
    *,
    entities: Sequence[str] = (),
    types: Sequence[str] = (),
    classes: Sequence[str] | Mapping[str, str] = (),
    docs: Sequence[str] = (),
    doc_ids: Sequence[str] = (),
    resolve_entity: Callable[[str], Sequence[str]] | None = None,
    communities: Sequence[str] = (),
    resolve_community: Callable[[str], str] | None = None,
) -> VectorFilter:
    """Validate filters against the schema the index was built with, and normalise entity names.

    ``resolve_entity`` (``kgbuild.entities.EntityKeyResolver`` of the index) turns an entity value into the
    keys it stands for in the index ("PERSON:Blair" -> Tony Blair's); a value with several keys matches a
    chunk that has any of them. ``communities``: community ids, any of them (``kgbuild communities`` lists
    them); ``resolve_community`` (``kgbuild.communities.community_resolver``) checks each and gives its stored
    spelling, or raises an error naming the value."""
    schema = manifest.schema_definition
    known_types = set(schema.get("entities", {}))
    known_tasks = schema.get("classifications", {})
    keys: list[str] = []
    any_of: list[tuple[str, ...]] = []
    if entities:  # reconcile imports the extraction and chunking stages: only where an entity name is normalised
        from kgbuild.reconcile import parse_entity_filter
    for value in entities:
        try:
            entity_type, key = parse_entity_filter(value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        canonical = _check_type(entity_type, known_types, f"--entity {value}")
        key = canonical + key[len(entity_type):]
        found = tuple(resolve_entity(canonical + ":" + value.partition(":")[2])) if resolve_entity else (key,)
        if len(found) > 1:
            any_of.append(found)
        else:
            keys.extend(found or (key,))
    types = [_check_type(t, known_types, f"--type {t}") for t in types]
    pairs: list[tuple[str, str]] = []
    items = classes.items() if isinstance(classes, Mapping) else [_split_class(c) for c in classes]
    for task, label in items:
        if known_tasks and task not in known_tasks:
            raise ConfigError(f"--class {task}={label}: unknown classification task {task!r} (known: {', '.join(known_tasks)})")
        labels = known_tasks.get(task, {}).get("labels", {})
        if labels and label not in labels:
            raise ConfigError(f"--class {task}={label}: unknown label {label!r} (known: {', '.join(labels)})")
        pairs.append((task, label))
    found_communities = tuple(dict.fromkeys(resolve_community(c) if resolve_community else c.strip() for c in communities))
    return VectorFilter(tuple(keys), tuple(types), tuple(pairs), tuple(_normalise_path(d) for d in docs), tuple(doc_ids),
                        tuple(any_of), found_communities)


def _check_type(entity_type: str, known: set[str], what: str) -> str:
    """The schema's spelling of an entity type, matched without regard to case."""
    if not known:
        return entity_type
    by_fold = {k.casefold(): k for k in known}
    if entity_type.casefold() not in by_fold:
        raise ConfigError(f"{what}: unknown entity type {entity_type!r} (known: {', '.join(sorted(known))})")
    return by_fold[entity_type.casefold()]


def _split_class(value: str) -> tuple[str, str]:
    task, sep, label = value.partition("=")
    if not sep or not task or not label:
        raise ConfigError(f"class filter {value!r} must look like TASK=LABEL, for example document_type=earnings_report")
    return task.strip(), label.strip()


def _normalise_path(value: str) -> str:
    return Path(value).as_posix().removeprefix("./")


def payload_text(payload: Mapping) -> str:
    """The chunk text of a point: kgbuild's ``text``, or the text inside a LlamaIndex ``_node_content``."""
    if payload.get("text"):
        return str(payload["text"])
    try:
        return str(json.loads(payload.get("_node_content") or "{}").get("text", ""))
    except (TypeError, ValueError):
        return ""


def indexed_text(payload: Mapping) -> str:
    """What BM25 indexes of a point: the chunk's header (its document's title) and its text, as it was embedded."""
    header = payload.get("header")
    text = payload_text(payload)
    return f"{header}{HEADER_SEPARATOR}{text}" if header else text


def hit_from_payload(hit: VectorHit, matched_keys: Sequence[str] = ()) -> QueryHit:
    p = hit.payload
    refs = [
        EntityRef(id=i, key=k, name=n, type=k.split(":", 1)[0])
        for i, k, n in zip(p.get("entity_ids", []), p.get("entity_keys", []), p.get("entity_names", []))
    ]
    matched = [k for k in p.get("entity_keys", []) if k in set(matched_keys)]
    refs.sort(key=lambda r: r.key not in matched)
    classes: dict[str, list[str]] = {}
    for source in ("doc_class", "class"):
        for task, labels in (p.get(source) or {}).items():
            classes.setdefault(task, [])
            classes[task].extend(label for label in labels if label not in classes[task])
    return QueryHit(
        chunk_id=p.get("chunk_id") or hit.point_id,
        doc_id=p.get("doc_id", ""),
        path=p.get("path") or p.get("file_path") or p.get("doc_id", ""),
        title=p.get("title", ""),
        start=int(p.get("start", 0)),
        end=int(p.get("end", 0)),
        score=round(hit.score, 6),
        text=payload_text(p),
        entities=refs,
        matched_entities=matched,
        classes=classes,
        communities=list(p.get(COMMUNITIES_FIELD) or []),
    )


class VectorSearcher:
    """Metadata-filtered vector queries that keep the vector store open between them.

    Opening the embedded store costs 0.4–0.8 s at 10k–100k chunks (BENCHMARKS.md, P6), far more than a
    query; hold a searcher for as long as you query. An embedded store admits one process at a time:
    close the searcher before ``kgbuild ingest`` writes to the same index.

    >>> with VectorSearcher(Settings(out_dir=".kgbuild")) as searcher:
    ...     hits = searcher.query("new headset", entities=["COMPANY:apple inc."])
    """

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None,
                 vector_sink: VectorSink | None = None):
        self.settings = settings or Settings()
        self._embedder = embedder
        self._given_sink = vector_sink
        self._sink: VectorSink | None = None
        self.manifest = Manifest()
        self.state: IngestState | None = None
        self.resolve_entity: Callable[[str], list[str]] | None = None  # set where the index has a graph
        self.resolve_community: Callable[[str], str] | None = None  # set where there is an index

    def open(self) -> VectorSearcher:
        if self._sink is not None:
            return self
        index = Index(self.settings, vector_sink=self._given_sink)
        if not index.exists and (self._given_sink is not None or self.settings.qdrant_url):
            pass  # no kgbuild index here, but a named collection: read it on its own (one written by LlamaIndex, say)
        else:
            index = Index.open_existing(self.settings, vector_sink=self._given_sink)
            from kgbuild.entities import EntityKeyResolver

            self.resolve_entity = EntityKeyResolver(index)
            from kgbuild.communities import community_resolver

            self.resolve_community = community_resolver(index.out_dir)
        self.state, self.manifest, self.settings = index.state, index.manifest, index.settings
        if self._embedder is None:
            self._embedder = query_embedder(self.manifest.embedding_model or self.settings.embedding_model)
        sink = index.vector_sink()
        sink.open()
        self._sink = sink
        return self

    def close(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def __enter__(self) -> VectorSearcher:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a searcher dropped without close() must not keep the store locked
        try:
            self.close()
        except Exception:
            pass

    def query(
        self,
        text: str,
        *,
        entities: Sequence[str] = (),
        types: Sequence[str] = (),
        classes: Sequence[str] | Mapping[str, str] = (),
        docs: Sequence[str] = (),
        k: int = 10,
        query_filter: VectorFilter | None = None,
        communities: Sequence[str] = (),
    ) -> list[QueryHit]:
        if k < 1:
            raise ConfigError(f"-k must be at least 1, got {k}")
        self.open()
        if query_filter is None:
            from kgbuild.paths import documents_as_stored

            docs = documents_as_stored(self.state, docs)
            query_filter = build_filter(self.manifest, entities=entities, types=types, classes=classes, docs=docs,
                                        resolve_entity=self.resolve_entity, communities=communities,
                                        resolve_community=self.resolve_community)
        assert self._embedder is not None and self._sink is not None
        vector = self._embedder.embed([text])[0]
        hits = self._sink.search(vector, query_filter, k)
        return [hit_from_payload(h, query_filter.all_entity_keys) for h in hits]


def query(
    text: str,
    settings: Settings | None = None,
    *,
    entities: Sequence[str] = (),
    types: Sequence[str] = (),
    classes: Sequence[str] | Mapping[str, str] = (),
    docs: Sequence[str] = (),
    k: int = 10,
    embedder: Embedder | None = None,
    vector_sink: VectorSink | None = None,
    query_filter: VectorFilter | None = None,
    communities: Sequence[str] = (),
) -> list[QueryHit]:
    """Ranked chunks for a text, restricted by metadata filters: one query, the store opened and closed around it.

    Where ``settings.out_dir`` holds no kgbuild index but a Qdrant collection is named (``--qdrant-url``
    or ``vector_sink``), the collection is read on its own, for example one written by LlamaIndex.
    For many queries, hold a ``VectorSearcher``.

    >>> query("new headset", entities=["COMPANY:apple inc."], classes=["document_type=product_announcement"])
    """
    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    with VectorSearcher(settings, embedder=embedder, vector_sink=vector_sink) as searcher:
        return searcher.query(text, entities=entities, types=types, classes=classes, docs=docs, k=k,
                              query_filter=query_filter, communities=communities)
