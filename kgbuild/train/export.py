"""``kgbuild labels export``: what an index extracted, as labelled examples in gliner2's training format.

Read from the index's extraction cache (``<out>/extractions.sqlite``, ``kgbuild.extract.cache``), the model's
own output for each document as ingest kept it: mention spans with their types, relations with their ends'
spans, and the document's classifications, in the schema the index was built with (its manifest). Open the
file in an annotation tool, correct it, and feed it back to ``kgbuild train``; or score another model against
it with ``kgbuild eval``. One record per document (``per_chunk``: per chunk, texts the size the model reads,
better for training on long documents). Each record keeps the document's path as ``id``.

>>> report = export_labels(Settings(out_dir=".kgbuild"), "labels.jsonl", docs=["press/"])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from kgbuild.errors import ConfigError, IndexNotFoundError
from kgbuild.extract.cache import ExtractionCache
from kgbuild.schema import ExtractionSchema, parse_schema
from kgbuild.settings import Settings
from kgbuild.state import IngestState
from kgbuild.train.gold import GoldClassification, GoldExample, GoldRelation, GoldSpan, write_jsonl
from kgbuild.types import ChunkExtraction, ExtractedDocument


@dataclass(slots=True)
class ExportReport:
    out_file: str
    records: int = 0
    documents: int = 0
    entities: int = 0
    relations: int = 0
    missing: list[str] = field(default_factory=list)  # documents the cache has no extraction for (their paths)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("out_file", "records", "documents", "entities", "relations", "missing")}


def export_labels(settings: Settings, out_file: str | Path, *, docs: Sequence[str] = (),
                  per_chunk: bool = False) -> ExportReport:
    """Write the index's extractions (all documents, or those ``docs`` names) to ``out_file`` as gliner2 JSONL."""
    from kgbuild.paths import resolve_document_filters

    state = IngestState.load(settings.out_dir)
    if not state.exists or not state.manifest:
        raise IndexNotFoundError(f"no kgbuild index in {settings.out_dir}: run `kgbuild ingest PATH --out {settings.out_dir}` first")
    definition = state.manifest.schema_definition
    if not definition:
        raise ConfigError(f"{settings.out_dir}: the index does not record its schema; ingest it again with this kgbuild")
    schema = parse_schema(json.dumps(definition), f"{settings.out_dir} (the index's schema)")
    wanted = resolve_document_filters(state, docs) if docs else []
    cache = ExtractionCache(settings.out_dir)
    report = ExportReport(str(out_file))
    try:
        examples = list(_examples(state, cache, schema, wanted, per_chunk, report))
    finally:
        cache.close()
    report.records = write_jsonl((e.to_record() for e in examples), out_file)
    return report


def _selected(path: str, wanted: Sequence[str]) -> bool:
    if not wanted:
        return True
    file = path.partition("#")[0]
    return any(w == path or w == file for w in wanted)


def _examples(state: IngestState, cache: ExtractionCache, schema: ExtractionSchema, wanted: Sequence[str],
              per_chunk: bool, report: ExportReport) -> Iterator[GoldExample]:
    for files in state.roots.values():
        for rel in sorted(files):
            record = files[rel]
            for doc_id, doc in sorted(record.documents.items(), key=lambda item: item[1].path):
                if not _selected(doc.path, wanted):
                    continue
                extracted = cache.extracted(doc_id, doc.content_hash, record.fingerprint)
                if extracted is None:
                    report.missing.append(doc.path)
                    continue
                report.documents += 1
                for example in (_chunk_examples(extracted, schema) if per_chunk else [_document_example(extracted, schema)]):
                    report.entities += len(example.entities)
                    report.relations += len(example.relations)
                    yield example


def _document_example(extracted: ExtractedDocument, schema: ExtractionSchema) -> GoldExample:
    example = _example(extracted.document.text, extracted.extractions, 0, schema, extracted.document.path)
    example.classifications = _classifications(extracted.classifications, schema)
    return example


def _chunk_examples(extracted: ExtractedDocument, schema: ExtractionSchema) -> list[GoldExample]:
    examples = []
    for extraction in extracted.extractions:
        chunk = extraction.chunk
        example = _example(chunk.text, [extraction], chunk.start, schema, f"{extracted.document.path}@{chunk.position}")
        example.classifications = _classifications(extraction.classifications, schema)
        examples.append(example)
    return examples


def _example(text: str, extractions: Sequence[ChunkExtraction], offset: int, schema: ExtractionSchema,
             ident: str) -> GoldExample:
    spans: dict[tuple[str, int, int], GoldSpan] = {}
    relations: dict[tuple, GoldRelation] = {}

    def span(label: str, start: int, end: int) -> GoldSpan:
        return GoldSpan(label, text[start - offset : end - offset], start - offset, end - offset)

    for extraction in extractions:
        for m in extraction.mentions:
            spans.setdefault((m.label, m.start, m.end), span(m.label, m.start, m.end))
        for r in extraction.relations:
            head, tail = span("", r.head.start, r.head.end), span("", r.tail.start, r.tail.end)
            relations.setdefault((r.label, head.start, head.end, tail.start, tail.end), GoldRelation(r.label, head, tail))
    return GoldExample(text=text, entities=sorted(spans.values(), key=lambda s: (s.start, s.end, s.label)),
                       entity_types=set(schema.entities), relations=list(relations.values()), extra={"id": ident})


def _classifications(scores: dict, schema: ExtractionSchema) -> list[GoldClassification]:
    result = []
    for task, given in scores.items():
        spec = schema.classifications.get(task)
        if spec is not None and given:
            result.append(GoldClassification(task, tuple(spec.labels), tuple(s.label for s in given), spec.multi_label))
    return result
