"""Cheap, deterministic stand-ins for the models, for benchmarks where model quality is beside the point.

``PatternExtractor`` produces output of realistic volume for the business-news schema, so that
reconciliation, the graph and the vector writes do real work; ``HashEmbedder`` gives 384-dim unit
vectors, as all-MiniLM-L6-v2 does. Both are pure functions of their input: the same text gives the
same output in every process (no ``hash()``, which is salted per process).

    >>> ingest("corpus/", settings, extractor=PatternExtractor(load_schema("business-news")), embedder=HashEmbedder())
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

from kgbuild.chunk import WhitespaceCounter
from kgbuild.extract.base import RawExtraction, RawRelation, RawSpan
from kgbuild.schema import ExtractionSchema
from kgbuild.types import LabelScore

# What the real base checkpoint gets for text next to the business-news prompt.
BASE_MODEL_TEXT_TOKENS = 236

# Capitalised words, joined by spaces or by a lower-case particle: "Adalbert II of Tuscany", "Boso the Elder".
_WORD = r"[A-ZÀ-ÖØ-Þ](?:[\w&'’-]*\w)?"
_NAME = re.compile(rf"(?<!\w){_WORD}(?:(?: (?:of|de|del|der|la|le|van|von|the))? {_WORD})*")
_YEAR = re.compile(r"(?<![\w.,])(?:1[0-9]{3}|20[0-9]{2})(?![\w,])")
_MONEY = re.compile(r"[$€£]\d[\d,.]*(?: (?:million|billion))?")
# Capitalised only because they start a sentence: never a name on their own, and dropped from the front of one.
_FUNCTION_WORDS = frozenset(
    "a an and as at after although before but by during for from he her his however i in it its many most "
    "of on or she some that the their there these they this those to we when while with".split()
)
# The types a name can get; DATE and MONEY come from their own patterns.
_NAME_TYPES = ("COMPANY", "PERSON", "PRODUCT", "LOCATION")


def stable_hash(*parts: str) -> int:
    """A 64-bit hash that is the same in every process."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


class PatternExtractor:
    """A fake GLiNER2 for the business-news schema: names, years and amounts found by patterns.

    Each capitalised word sequence is an entity whose type is a stable hash of its folded text,
    so a name gets the same type in every document; one span in eight also gets a second type at
    lower confidence, as a real model sometimes does, so the type vote has work. Confidence varies
    with the position (some spans fall below the schema threshold). Consecutive entities are
    related when the schema allows their types, and each chunk gets one ``document_type`` label.
    On Wikipedia passages (two names in five kept) this gives about 18 mentions and 4 relations per
    236-word chunk.
    """

    def __init__(self, schema: ExtractionSchema, *, max_tokens: int = BASE_MODEL_TEXT_TOKENS, name: str = "fake-patterns"):
        self.schema = schema
        self._name = name
        self._max_tokens = max_tokens
        # (head type, tail type) -> the relation labels the schema allows between them
        self._allowed: dict[tuple[str, str], list[str]] = {}
        for label, spec in schema.relations.items():
            for source in spec.source:
                for target in spec.target:
                    self._allowed.setdefault((source, target), []).append(label)
        self._related_types = {t for source, target in self._allowed for t in (source, target)}
        self._classes = {task: sorted(spec.labels) for task, spec in schema.classifications.items()}

    @property
    def name(self) -> str:
        return self._name

    def token_counter(self) -> WhitespaceCounter:
        return WhitespaceCounter()

    def max_text_tokens(self) -> int:
        return self._max_tokens

    def extract(self, texts: Sequence[str]) -> list[RawExtraction]:
        return [self._extract_one(text) for text in texts]

    def _extract_one(self, text: str) -> RawExtraction:
        raw = RawExtraction()
        spans: list[RawSpan] = []  # one per entity, in text order: the candidates for relations
        for start, end, surface in _names(text):
            h = stable_hash(surface.casefold())
            if h % 5 >= 2:  # Wikipedia is dense with names: keep two in five, about what a model finds in news
                continue
            kind = h % len(_NAME_TYPES)
            span = RawSpan(_NAME_TYPES[kind], surface, start, end, _confidence(surface, start))
            spans.append(span)
            raw.entities.append(span)
            if (h >> 8) % 8 == 0:  # a second type for the same span
                other = _NAME_TYPES[(kind + 1 + (h >> 16) % (len(_NAME_TYPES) - 1)) % len(_NAME_TYPES)]
                raw.entities.append(RawSpan(other, surface, start, end, span.confidence * 0.8))
        for pattern, label in ((_YEAR, "DATE"), (_MONEY, "MONEY")):
            for match in pattern.finditer(text):
                span = RawSpan(label, match.group(), match.start(), match.end(), _confidence(match.group(), match.start()))
                spans.append(span)
                raw.entities.append(span)
        # neighbours among the entities a relation can join (a year between two names does not part them)
        spans = sorted((s for s in spans if s.label in self._related_types), key=lambda s: s.start)
        for head, tail in zip(spans, spans[1:]):
            labels = self._allowed.get((head.label, tail.label))
            if labels:
                label = labels[stable_hash(head.text, tail.text) % len(labels)]
                raw.relations.append(RawRelation(label, head, tail))
        for task, labels in self._classes.items():
            h = stable_hash(task, text)
            raw.classifications[task] = [LabelScore(labels[h % len(labels)], 0.5 + (h >> 8) % 46 / 100)]
        return raw


def _names(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _NAME.finditer(text):
        start, surface = match.start(), match.group()
        first, _, rest = surface.partition(" ")
        while first.casefold() in _FUNCTION_WORDS:
            if not rest:
                break
            start += len(first) + 1
            surface = rest
            first, _, rest = surface.partition(" ")
        if surface.casefold() in _FUNCTION_WORDS:
            continue
        found.append((start, start + len(surface), surface))
    return found


def _confidence(surface: str, start: int) -> float:
    """0.40 to 0.99: about one span in six falls below the business-news threshold of 0.5."""
    return 0.40 + stable_hash(surface, str(start)) % 60 / 100


class HashEmbedder:
    """Unit vectors seeded by a hash of the text: 384 dimensions by default, as all-MiniLM-L6-v2."""

    def __init__(self, dimension: int = 384):
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"fake-hash-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = np.stack(
            [np.random.default_rng(stable_hash(text)).standard_normal(self._dimension, dtype=np.float32) for text in texts]
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.tolist()
