"""Metadata-filtered vector queries over an index built by ``kgbuild ingest``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from kgbuild.embed import Embedder, SentenceTransformerEmbedder
from kgbuild.errors import ConfigError, IndexNotFoundError
from kgbuild.reconcile import parse_entity_filter
from kgbuild.settings import Settings
from kgbuild.state import IngestState
from kgbuild.stores import make_vector_sink, settings_for_index
from kgbuild.types import EntityRef, QueryHit
from kgbuild.write import VectorFilter, VectorHit, VectorSink


def load_manifest(out_dir: str | Path) -> IngestState:
    state = IngestState.load(out_dir)
    if not state.exists or not state.manifest:
        raise IndexNotFoundError(f"no kgbuild index in {out_dir}: run `kgbuild ingest PATH --out {out_dir}` first")
    return state


def build_filter(
    manifest: Mapping,
    *,
    entities: Sequence[str] = (),
    types: Sequence[str] = (),
    classes: Sequence[str] | Mapping[str, str] = (),
    docs: Sequence[str] = (),
    doc_ids: Sequence[str] = (),
) -> VectorFilter:
    """Validate filters against the schema the index was built with, and normalise entity names."""
    schema = manifest.get("schema_definition", {})
    known_types = set(schema.get("entities", {}))
    known_tasks = schema.get("classifications", {})
    keys = []
    for value in entities:
        try:
            entity_type, key = parse_entity_filter(value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        canonical = _check_type(entity_type, known_types, f"--entity {value}")
        keys.append(canonical + key[len(entity_type):])
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
    return VectorFilter(tuple(keys), tuple(types), tuple(pairs), tuple(_normalise_path(d) for d in docs), tuple(doc_ids))


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
    )


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
) -> list[QueryHit]:
    """Ranked chunks for a text, restricted by metadata filters.

    Where ``settings.out_dir`` holds no kgbuild index but a Qdrant collection is named (``--qdrant-url``
    or ``vector_sink``), the collection is read on its own, for example one written by LlamaIndex.

    >>> query("new headset", entities=["COMPANY:apple inc."], classes=["document_type=product_announcement"])
    """
    settings = settings or Settings()
    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    state = IngestState.load(settings.out_dir)
    if state.exists and state.manifest:
        manifest = state.manifest
    elif vector_sink is not None or settings.qdrant_url:
        manifest = {}
    else:
        manifest = load_manifest(settings.out_dir).manifest
    settings = settings_for_index(settings, manifest)
    if query_filter is None:
        query_filter = build_filter(manifest, entities=entities, types=types, classes=classes, docs=docs)
    embedder = embedder or SentenceTransformerEmbedder(manifest.get("embedding_model") or settings.embedding_model)
    tasks = list(manifest.get("schema_definition", {}).get("classifications", {}))
    sink = vector_sink or make_vector_sink(settings, tasks)
    sink.open(None)
    try:
        vector = embedder.embed([text])[0]
        hits = sink.search(vector, query_filter, k)
    finally:
        sink.close()
    return [hit_from_payload(h, query_filter.entity_keys) for h in hits]
