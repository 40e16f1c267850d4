"""Build realistic ``GraphBatch`` objects from plain text, without any model.

The conformance suites describe a corpus as plain strings and tuples:

>>> batch = make_batch(
...     {"news/a.txt": "Apple Inc. CEO Tim Cook spoke.\\nApple makes the Vision Pro.\\n"},
...     mentions=[("news/a.txt", "COMPANY", "Apple Inc."), ("news/a.txt", "COMPANY", "Apple"),
...               ("news/a.txt", "PERSON", "Tim Cook"), ("news/a.txt", "PRODUCT", "Vision Pro")],
...     relations=[("news/a.txt", "Tim Cook", "CEO_OF", "Apple Inc."),
...                ("news/a.txt", "Apple", "MANUFACTURES", "Vision Pro")],
...     classes={"news/a.txt": {"document_type": "product_announcement"}},
... )

and get what the pipeline's ``_flush`` would have produced for that text: Documents
with ids from ``kgbuild.ids.document_id``, chunks that are exact slices of the text,
mentions at the real offsets of the surfaces, relation mentions linked to those
mentions, chunk and aggregated document classifications, and the reconciliation
(canonical entities, the mention map, canonical relations) of ``kgbuild.reconcile``.

Specs whose document path is not in ``docs`` are ignored, so one corpus-wide list of
mentions and relations can be reused to build a batch of any subset of documents.
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Iterable, Mapping, Sequence, Union

import numpy as np

from kgbuild.extract.base import aggregate_classifications
from kgbuild.ids import chunk_id, content_hash, document_id, mention_id
from kgbuild.reconcile import reconcile
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.types import (
    Chunk,
    ChunkExtraction,
    ChunkPoint,
    Document,
    ExtractedDocument,
    GraphBatch,
    LabelScore,
    Mention,
    RelationMention,
)
from kgbuild.write import build_chunk_points

DEFAULT_MENTION_CONFIDENCE = 0.9
DEFAULT_RELATION_CONFIDENCE = 0.8
DEFAULT_CLASS_CONFIDENCE = 0.9
MTIME = 1_700_000_000.0

# (doc_path, label, surface) or (doc_path, label, surface, confidence)
MentionSpec = Union[tuple[str, str, str], tuple[str, str, str, float]]
# (doc_path, head_surface, label, tail_surface) or (..., confidence)
RelationSpec = Union[tuple[str, str, str, str], tuple[str, str, str, str, float]]
# task -> label, or task -> [(label, confidence), ...]
ClassSpec = Mapping[str, Union[str, Sequence[tuple[str, float]]]]


@lru_cache(maxsize=None)
def business_schema() -> ExtractionSchema:
    return load_schema("business-news")


def doc_id(path: str) -> str:
    return document_id(path)


def make_document(path: str, text: str, title: str | None = None) -> Document:
    """A Document as the readers make it: ``"file.jsonl#3"`` is record 3 of ``file.jsonl``."""
    source_path = path.split("#", 1)[0]
    if title is None:
        first_line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
        title = first_line[:80] or PurePosixPath(source_path).stem
    fmt = PurePosixPath(source_path).suffix.lstrip(".") or "txt"
    return Document(
        id=document_id(path),
        path=path,
        source_path=source_path,
        title=title,
        text=text,
        mtime=MTIME,
        content_hash=content_hash(title, text),
        metadata={"format": fmt},
    )


def make_chunks(document: Document, chunk_lines: int | None = None, overlap_lines: int = 0) -> list[Chunk]:
    """Chunks of ``chunk_lines`` lines (default: half the lines, so at most two chunks).

    Consecutive chunks share ``overlap_lines`` lines. Every chunk is an exact slice:
    ``document.text[chunk.start:chunk.end] == chunk.text``.
    """
    text = document.text
    lines = text.splitlines(keepends=True) or [text]
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    per_chunk = chunk_lines if chunk_lines is not None else max(1, math.ceil(len(lines) / 2))
    if per_chunk <= overlap_lines:
        raise ValueError("chunk_lines must be larger than overlap_lines")
    chunks: list[Chunk] = []
    first = 0
    while True:
        last = min(first + per_chunk, len(lines))
        start, end = offsets[first], offsets[last]
        position = len(chunks)
        piece = text[start:end]
        chunks.append(
            Chunk(
                id=chunk_id(document.id, position),
                doc_id=document.id,
                position=position,
                start=start,
                end=end,
                text=piece,
                token_count=max(1, len(piece.split())),
            )
        )
        if last >= len(lines):
            return chunks
        first = last - overlap_lines


def find_spans(text: str, surface: str) -> list[tuple[int, int]]:
    """Every non-overlapping occurrence of ``surface`` that is not part of a longer word."""
    if not surface:
        raise ValueError("empty surface")
    pattern = re.compile(r"(?<!\w)" + re.escape(surface) + r"(?!\w)")
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def _doc_spans(text: str, specs: list[MentionSpec]) -> dict[int, list[tuple[int, int]]]:
    """Spans for each mention spec of one document; longer surfaces claim their text first.

    A shorter surface inside a longer one ("Apple" in "Apple Inc.") is not a separate
    mention, as an extraction model would not give both; the same surface under two
    labels (a type vote) keeps both.
    """
    claimed: list[tuple[int, int, str]] = []
    result: dict[int, list[tuple[int, int]]] = {}
    order = sorted(range(len(specs)), key=lambda i: (-len(specs[i][2]), i))
    for i in order:
        surface = specs[i][2]
        spans = find_spans(text, surface)
        if not spans:
            raise ValueError(f"{specs[i][0]}: surface {surface!r} not found in the text")
        kept = [
            (s, e) for s, e in spans if not any(s < ce and cs < e and other != surface for cs, ce, other in claimed)
        ]
        claimed.extend((s, e, surface) for s, e in kept)
        result[i] = kept
    return result


def _scores(spec: Union[str, Sequence[tuple[str, float]]]) -> list[LabelScore]:
    if isinstance(spec, str):
        return [LabelScore(spec, DEFAULT_CLASS_CONFIDENCE)]
    return sorted((LabelScore(label, float(c)) for label, c in spec), key=lambda s: (-s.confidence, s.label))


def make_batch(
    docs: Mapping[str, str],
    mentions: Iterable[MentionSpec] = (),
    relations: Iterable[RelationSpec] = (),
    classes: Mapping[Union[str, tuple[str, int]], ClassSpec] | None = None,
    *,
    chunk_lines: int | Mapping[str, int] | None = None,
    overlap_lines: int = 0,
    titles: Mapping[str, str] | None = None,
    schema: ExtractionSchema | None = None,
) -> GraphBatch:
    """One write batch of ``docs`` (path -> text), reconciled as the pipeline does.

    ``classes`` keys are a document path (every chunk of it gets the labels) or
    ``(path, chunk_position)``; document labels are aggregated from the chunks with
    ``aggregate_classifications``. ``chunk_lines`` is one number or path -> number.
    """
    schema = schema or business_schema()
    mentions = [m for m in mentions if m[0] in docs]
    relations = [r for r in relations if r[0] in docs]
    classes = classes or {}
    extracted: list[ExtractedDocument] = []
    all_mentions: list[Mention] = []
    all_relations: list[RelationMention] = []
    for path, text in docs.items():
        document = make_document(path, text, (titles or {}).get(path))
        lines = chunk_lines.get(path) if isinstance(chunk_lines, Mapping) else chunk_lines
        chunks = make_chunks(document, lines, overlap_lines)
        specs = [m for m in mentions if m[0] == path]
        for spec in specs:
            if spec[1] not in schema.entities:
                raise ValueError(f"{path}: entity label {spec[1]!r} is not in schema {schema.name}")
        spans = _doc_spans(text, specs)
        extractions: list[ChunkExtraction] = []
        for chunk in chunks:
            chunk_mentions: list[Mention] = []
            for i, spec in enumerate(specs):
                label, surface = spec[1], spec[2]
                confidence = float(spec[3]) if len(spec) > 3 else DEFAULT_MENTION_CONFIDENCE
                for start, end in spans[i]:
                    if chunk.start <= start and end <= chunk.end:
                        chunk_mentions.append(
                            Mention(
                                id=mention_id(chunk.id, label, start, end),
                                doc_id=document.id,
                                chunk_id=chunk.id,
                                label=label,
                                text=text[start:end],
                                start=start,
                                end=end,
                                confidence=confidence,
                            )
                        )
            chunk_mentions.sort(key=lambda m: (m.start, m.end, m.label))
            chunk_classes: dict[str, list[LabelScore]] = {}
            for key in (path, (path, chunk.position)):
                for task, spec in classes.get(key, {}).items():
                    chunk_classes[task] = _scores(spec)
            extractions.append(ChunkExtraction(chunk=chunk, mentions=chunk_mentions, classifications=chunk_classes))
        for spec in (r for r in relations if r[0] == path):
            _, head_surface, label, tail_surface = spec[:4]
            confidence = float(spec[4]) if len(spec) > 4 else DEFAULT_RELATION_CONFIDENCE
            relation_spec = schema.relations[label]
            found = False
            for extraction in extractions:
                heads = [m for m in extraction.mentions if m.text == head_surface and m.label in relation_spec.source]
                tails = [m for m in extraction.mentions if m.text == tail_surface and m.label in relation_spec.target]
                if not heads or not tails:
                    continue
                head, tail = min(
                    ((h, t) for h in heads for t in tails), key=lambda pair: (abs(pair[0].start - pair[1].start), pair[0].start)
                )
                extraction.relations.append(RelationMention(label, head, tail, confidence))
                found = True
            if not found:
                raise ValueError(f"{path}: no chunk holds both {head_surface!r} and {tail_surface!r} for {label}")
        for extraction in extractions:
            extraction.relations.sort(key=lambda r: (r.label, r.head.start, r.tail.start))
            all_mentions.extend(extraction.mentions)
            all_relations.extend(extraction.relations)
        extracted.append(
            ExtractedDocument(document, chunks, extractions, aggregate_classifications(extractions, schema))
        )
    reconciliation, _dropped = reconcile(all_mentions, all_relations, schema)
    return GraphBatch(extracted, reconciliation.entities, reconciliation.mention_entity, reconciliation.relations)


# -- vectors -------------------------------------------------------------------------------


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def fake_vector(text: str, dim: int = 16) -> list[float]:
    """A unit vector seeded by a hash of ``text``: the same text gives the same vector, run after run."""
    v = np.random.default_rng(_seed(text)).standard_normal(dim)
    v /= np.linalg.norm(v)
    return [float(x) for x in v]


def fake_vectors(texts: Sequence[str], dim: int = 16) -> list[list[float]]:
    return [fake_vector(t, dim) for t in texts]


def random_unit_vectors(n: int, dim: int, seed: int = 1234) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def chunk_texts(batch: GraphBatch) -> list[str]:
    """Chunk texts in the order ``build_chunk_points`` consumes vectors."""
    return [e.chunk.text for d in batch.documents for e in d.extractions]


def points_for(batch: GraphBatch, dim: int = 16) -> list[ChunkPoint]:
    """The vector points of a batch, with ``fake_vectors`` of chunk id + text (distinct per chunk)."""
    keys = [f"{e.chunk.id}\x1f{e.chunk.text}" for d in batch.documents for e in d.extractions]
    return build_chunk_points(batch, fake_vectors(keys, dim))


# -- a small business-news corpus shared by the suites --------------------------------------

APPLE = "news/apple.txt"
APPLE_V2 = APPLE  # a changed version of the same document (same path, same id)
SAMSUNG = "news/samsung.txt"
ACME = "news/acme.txt"
ACME_BIS = "news/acme-again.txt"
WIRE_1 = "feeds/wire.jsonl#1"  # two records of one JSONL file: path != source_path
WIRE_2 = "feeds/wire.jsonl#2"

TEXTS: dict[str, str] = {
    APPLE: (
        "Apple Inc. CEO Tim Cook unveiled the Vision Pro in Cupertino.\n"
        "Apple makes the Vision Pro, priced at $3,499.\n"
        "Apple competes with Samsung in the headset market.\n"
    ),
    SAMSUNG: (
        "Samsung Electronics announced the Galaxy XR headset in Seoul.\n"
        "Samsung competes with Apple, which makes the Vision Pro.\n"
        "The Galaxy XR costs $1,799.\n"
    ),
    ACME: "ACME Corp opened a rocket plant in Phoenix.\n",
    ACME_BIS: "Acme Corp. opened another plant in Austin.\n",
    WIRE_1: "Apple reported revenue of $94 billion.\nTim Cook thanked investors.\n",
    WIRE_2: "Globex Ltd. sued Acme Corp in Springfield.\n",
}

# The changed version of APPLE: one chunk instead of two; Tim Cook, $3,499 and the
# Apple->Samsung rivalry are gone, Cupertino stays, Jeff Williams is new.
APPLE_V2_TEXT = "Apple reported record revenue in Cupertino, and Jeff Williams will succeed as CEO of Apple.\n"

MENTIONS: list[MentionSpec] = [
    (APPLE, "COMPANY", "Apple Inc."),
    (APPLE, "COMPANY", "Apple"),
    (APPLE, "PERSON", "Tim Cook", 0.95),
    (APPLE, "PRODUCT", "Vision Pro", 0.85),
    (APPLE, "LOCATION", "Cupertino"),
    (APPLE, "MONEY", "$3,499"),
    (APPLE, "COMPANY", "Samsung", 0.8),
    (SAMSUNG, "COMPANY", "Samsung Electronics"),
    (SAMSUNG, "COMPANY", "Samsung", 0.7),
    (SAMSUNG, "PRODUCT", "Galaxy XR"),
    (SAMSUNG, "LOCATION", "Seoul"),
    (SAMSUNG, "COMPANY", "Apple", 0.75),
    (SAMSUNG, "PRODUCT", "Vision Pro", 0.8),
    (SAMSUNG, "MONEY", "$1,799"),
    (ACME, "COMPANY", "ACME Corp"),
    (ACME, "LOCATION", "Phoenix"),
    (ACME_BIS, "COMPANY", "Acme Corp."),
    (ACME_BIS, "LOCATION", "Austin"),
    (WIRE_1, "COMPANY", "Apple"),
    (WIRE_1, "MONEY", "$94 billion"),
    (WIRE_1, "PERSON", "Tim Cook"),
    (WIRE_2, "COMPANY", "Globex Ltd."),
    (WIRE_2, "COMPANY", "Acme Corp"),
    (WIRE_2, "LOCATION", "Springfield"),
]

APPLE_V2_MENTIONS: list[MentionSpec] = [
    (APPLE_V2, "COMPANY", "Apple"),
    (APPLE_V2, "LOCATION", "Cupertino"),
    (APPLE_V2, "PERSON", "Jeff Williams"),
]

RELATIONS: list[RelationSpec] = [
    (APPLE, "Tim Cook", "CEO_OF", "Apple Inc.", 0.9),
    (APPLE, "Apple", "MANUFACTURES", "Vision Pro", 0.85),
    (APPLE, "Vision Pro", "PRICED_AT", "$3,499"),
    (APPLE, "Apple", "COMPETES_WITH", "Samsung"),
    (SAMSUNG, "Samsung", "COMPETES_WITH", "Apple", 0.7),
    (SAMSUNG, "Apple", "MANUFACTURES", "Vision Pro", 0.75),
    (SAMSUNG, "Samsung Electronics", "MANUFACTURES", "Galaxy XR"),
    (SAMSUNG, "Galaxy XR", "PRICED_AT", "$1,799"),
    (WIRE_2, "Globex Ltd.", "COMPETES_WITH", "Acme Corp", 0.6),
]

APPLE_V2_RELATIONS: list[RelationSpec] = [
    (APPLE_V2, "Jeff Williams", "CEO_OF", "Apple"),
]

CLASSES: dict = {
    APPLE: {"document_type": "product_announcement"},
    (SAMSUNG, 0): {"document_type": [("product_announcement", 0.9)]},
    (SAMSUNG, 1): {"document_type": [("earnings_report", 0.6)]},
    WIRE_1: {"document_type": [("earnings_report", 0.8)]},
    (WIRE_2, 0): {"document_type": [("legal_filing", 0.7), ("earnings_report", 0.55)]},
}


def corpus_batch(*paths: str, **kwargs) -> GraphBatch:
    """A batch of some documents of the shared corpus (all of them when none are named)."""
    chosen = paths or tuple(TEXTS)
    return make_batch({p: TEXTS[p] for p in chosen}, MENTIONS, RELATIONS, CLASSES, **kwargs)


def apple_v2_batch() -> GraphBatch:
    return make_batch(
        {APPLE_V2: APPLE_V2_TEXT},
        APPLE_V2_MENTIONS,
        APPLE_V2_RELATIONS,
        {APPLE_V2: {"document_type": "earnings_report"}},
    )


# Entity surfaces that would break a store that splices names into queries or markup.
HOSTILE_SURFACES: list[str] = [
    "x}) DETACH DELETE n //",
    "MATCH (n) RETURN n",
    "Robert'); DROP TABLE entities;--",
    "`backtick` Holdings",
    'The "Quoted" Company',
    "$param",
    "Line\nBreak Industries",
    "Tab\tSeparated Foods",
    "{{curly}} Brands",
    "back\\slash Systems",
    "Ünïcødé 株式会社",
    "emoji 🚀 Labs",
]
HOSTILE_PATH = "weird/it's `odd` $dir/x}) DELETE.txt"
HOSTILE_TEXT = "Filing notes: " + "; ".join(f"{s} reported" for s in HOSTILE_SURFACES) + ".\n"
HOSTILE_MENTIONS: list[MentionSpec] = [(HOSTILE_PATH, "COMPANY", s) for s in HOSTILE_SURFACES]
HOSTILE_RELATIONS: list[RelationSpec] = [
    (HOSTILE_PATH, HOSTILE_SURFACES[0], "COMPETES_WITH", HOSTILE_SURFACES[5]),
    (HOSTILE_PATH, HOSTILE_SURFACES[6], "COMPETES_WITH", HOSTILE_SURFACES[3]),
]


def hostile_batch() -> GraphBatch:
    return make_batch(
        {HOSTILE_PATH: HOSTILE_TEXT}, HOSTILE_MENTIONS, HOSTILE_RELATIONS, chunk_lines=100, titles={HOSTILE_PATH: 'Title with `ticks`, "quotes" and $x'}
    )


# A JSONL record whose text held a "\ud800" escape: json.loads gives a lone surrogate,
# and the readers pass it through into the document text, title and chunk text.
ODD_PATH = "feeds/odd.jsonl#7"
ODD_TEXT = "Broken\ud800 Corp opened an office in Paris.\n"
ODD_MENTIONS: list[MentionSpec] = [(ODD_PATH, "LOCATION", "Paris")]
