"""``kgbuild eval``: run a model over labelled texts exactly as ``ingest`` would, and score what it finds.

Each text is chunked with the model's tokenizer into the windows ingest uses, extracted with the same
extractor and schema checks (``kgbuild.extract``), and put back together in the text's offsets: mentions found
in two overlapping windows count once, relations once per (head, type, tail), classifications aggregated over
the windows as ingest does for a document. So the figures are those of the graph ingest would write.

>>> report = evaluate("gold.jsonl", schema="business-news", model="./my-gliner2")
>>> report.scores.entities.micro.f1
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from kgbuild.extract.base import Extractor, aggregate_classifications
from kgbuild.extract.runner import extract_chunks
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.settings import DEFAULT_MODEL
from kgbuild.timing import StageTimer
from kgbuild.train.gold import GoldExample, GoldRelation, GoldSpan, load_gold
from kgbuild.train.metrics import Prediction, Scores, score
from kgbuild.types import ChunkExtraction, Document

DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_OVERLAP = 32


@dataclass(slots=True)
class EvalReport:
    source: str
    model: str
    schema: str
    relation_decoding: str
    scores: Scores
    seconds: float
    adapter: str | None = None
    failed: list[str] = field(default_factory=list)  # "example N: why the model failed on it"

    @property
    def examples_per_second(self) -> float:
        return self.scores.examples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, top_errors: int = 10) -> dict[str, Any]:
        return {"source": self.source, "model": self.model, "adapter": self.adapter, "schema": self.schema,
                "relation_decoding": self.relation_decoding, "seconds": round(self.seconds, 2),
                "failed": self.failed, **self.scores.to_dict(top_errors)}


def build_eval_extractor(schema: ExtractionSchema, model: str | Any, *, adapter: str | None = None,
                         relation_decoding: str | None = None, device: str = "auto", batch_size: int = 8,
                         precision: str = "auto", fast_attention: bool = True) -> Extractor:
    from kgbuild.extract.gliner import DEFAULT_RELATION_DECODING, GLiNER2Extractor

    return GLiNER2Extractor(schema, model, device=device, batch_size=batch_size, adapter=adapter, precision=precision,
                            relation_decoding=relation_decoding or DEFAULT_RELATION_DECODING,
                            fast_attention=fast_attention)


def predict(examples: Sequence[GoldExample], schema: ExtractionSchema, extractor: Extractor, *,
            chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
            on_done: Callable[[int], None] | None = None) -> tuple[list[Prediction], list[str]]:
    """One ``Prediction`` per example, and the examples the model failed on (their prediction is empty)."""
    from kgbuild.chunk import TokenChunker

    budget = min(chunk_size, extractor.max_text_tokens())
    chunker = TokenChunker(extractor.token_counter(), budget, min(chunk_overlap, budget // 2))
    documents = [Document(f"example-{i}", f"example-{i}", "", "", e.text, 0.0, "") for i, e in enumerate(examples)]
    chunked = [chunker.chunk(doc) for doc in documents]
    ends = list(itertools.accumulate(len(chunks) for chunks in chunked))  # chunks done when each example is
    state = {"chunks": 0, "examples": 0}

    def advanced(count: int) -> None:
        state["chunks"] += count
        while state["examples"] < len(ends) and ends[state["examples"]] <= state["chunks"]:
            state["examples"] += 1
            if on_done:
                on_done(1)

    flat = [chunk for chunks in chunked for chunk in chunks]
    results = extract_chunks(extractor, schema, flat, window=64, timer=StageTimer(), on_done=advanced)
    predictions, failed, at = [], [], 0
    for i, chunks in enumerate(chunked):
        mine = results[at : at + len(chunks)]
        at += len(chunks)
        errors = [r for r in mine if isinstance(r, str)]
        if errors:
            failed.append(f"example {examples[i].line or i + 1}: {errors[0]}")
        predictions.append(_prediction([r for r in mine if not isinstance(r, str)], schema))
    advanced(0)  # examples at the end without a chunk
    return predictions, failed


def _prediction(extractions: list[ChunkExtraction], schema: ExtractionSchema) -> Prediction:
    entities: dict[tuple[str, int, int], GoldSpan] = {}
    relations: dict[tuple, GoldRelation] = {}
    for extraction in extractions:
        for m in extraction.mentions:
            entities.setdefault((m.label, m.start, m.end), GoldSpan(m.label, m.text, m.start, m.end))
        for r in extraction.relations:
            head = GoldSpan(r.head.label, r.head.text, r.head.start, r.head.end)
            tail = GoldSpan(r.tail.label, r.tail.text, r.tail.start, r.tail.end)
            relations.setdefault((r.label, head.start, head.end, tail.start, tail.end), GoldRelation(r.label, head, tail))
    classes = aggregate_classifications(extractions, schema) if extractions else {}
    return Prediction(
        entities=sorted(entities.values(), key=lambda s: (s.start, s.end, s.label)),
        relations=list(relations.values()),
        classifications={task: tuple(s.label for s in scores) for task, scores in classes.items()},
    )


def evaluate(gold: str | Path | Sequence[GoldExample], schema: str | ExtractionSchema = "business-news",
             model: str | Any = DEFAULT_MODEL, *, adapter: str | None = None, relation_decoding: str | None = None,
             device: str = "auto", batch_size: int = 8, threshold: float | None = None, limit: int | None = None,
             chunk_size: int = DEFAULT_CHUNK_SIZE, extractor: Extractor | None = None,
             on_done: Callable[[int], None] | None = None) -> EvalReport:
    """Precision, recall and F1 of ``model`` (a checkpoint directory, hub id or loaded GLiNER2) on labelled examples.

    ``gold`` is a gliner2-format JSONL file (checked first: ``GoldDataError`` lists every problem) or examples
    in memory. ``extractor`` reuses a loaded extractor (``model``, ``adapter`` and the decoding are then its).
    """
    loaded = schema if isinstance(schema, ExtractionSchema) else load_schema(schema)
    loaded = loaded.with_threshold(threshold)
    if isinstance(gold, (str, Path)):
        examples, source = load_gold(gold, loaded, limit=limit), str(gold)
    else:
        examples, source = list(gold)[:limit] if limit else list(gold), "<examples>"
    if extractor is None:
        extractor = build_eval_extractor(loaded, model, adapter=adapter, relation_decoding=relation_decoding,
                                         device=device, batch_size=batch_size)
    started = time.perf_counter()
    checkpoint = getattr(extractor, "checkpoint", None)
    model_name = checkpoint().location if callable(checkpoint) else extractor.name
    predictions, failed = predict(examples, loaded, extractor, chunk_size=chunk_size, on_done=on_done)
    return EvalReport(
        source=source, model=model_name, schema=f"{loaded.name} {loaded.version}",
        relation_decoding=getattr(extractor, "relation_decoding", "plain"), scores=score(examples, predictions),
        seconds=time.perf_counter() - started, adapter=getattr(extractor, "adapter", None), failed=failed)
