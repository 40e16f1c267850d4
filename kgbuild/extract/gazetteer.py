"""A deterministic dictionary extractor behind the same interface as the GLiNER2 adapter.

It finds listed names (case-insensitive, whole words), emits listed relation triples
when both ends occur in a chunk, and assigns classification labels by keywords. It
needs no model, so tests and scaling benchmarks use it where model quality is beside
the point.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from kgbuild.chunk import WhitespaceCounter
from kgbuild.extract.base import RawExtraction, RawRelation, RawSpan
from kgbuild.schema import ExtractionSchema
from kgbuild.types import LabelScore


class GazetteerExtractor:
    """
    >>> extractor = GazetteerExtractor(schema, entities={"COMPANY": ["Apple Inc."], "PERSON": ["Tim Cook"]},
    ...                                relations=[("Tim Cook", "CEO_OF", "Apple Inc.")])
    """

    def __init__(
        self,
        schema: ExtractionSchema,
        entities: Mapping[str, Sequence[str]],
        relations: Sequence[tuple[str, str, str]] = (),
        classes: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        *,
        confidence: float = 0.9,
        max_tokens: int = 512,
        name: str = "gazetteer",
    ):
        self.schema = schema
        self._name = name
        self.confidence = confidence
        self._max_tokens = max_tokens
        self.calls = 0  # extract() calls, so tests can prove that no model work happened
        # one alternation per label, longest names first: the longest match wins and matches never overlap
        self._patterns = [
            (label, _names_pattern(surfaces)) for label, surfaces in entities.items() if surfaces
        ]
        # one pattern per name, searched once per text whatever the relations that name it
        by_name = {name: _names_pattern([name]) for h, _, t in relations for name in (h, t)}
        self._relations = [(by_name[h], label, by_name[t]) for h, label, t in relations]
        self._classes = {
            task: {label: [k.casefold() for k in keywords] for label, keywords in labels.items()}
            for task, labels in (classes or {}).items()
        }

    @property
    def name(self) -> str:
        return self._name

    def token_counter(self) -> WhitespaceCounter:
        return WhitespaceCounter()

    def max_text_tokens(self) -> int:
        return self._max_tokens

    def extract(self, texts: Sequence[str]) -> list[RawExtraction]:
        self.calls += 1
        return [self._extract_one(text) for text in texts]

    def _extract_one(self, text: str) -> RawExtraction:
        raw = RawExtraction()
        for label, pattern in self._patterns:
            for match in pattern.finditer(text):
                raw.entities.append(RawSpan(label, match.group(), match.start(), match.end(), self.confidence))
        found: dict[re.Pattern[str], re.Match[str] | None] = {}

        def search(pattern: re.Pattern[str]) -> re.Match[str] | None:
            if pattern not in found:
                found[pattern] = pattern.search(text)
            return found[pattern]

        for head_pattern, label, tail_pattern in self._relations:
            head = search(head_pattern)
            tail = search(tail_pattern) if head else None
            if head and tail:
                raw.relations.append(
                    RawRelation(
                        label,
                        RawSpan("", head.group(), head.start(), head.end(), self.confidence),
                        RawSpan("", tail.group(), tail.start(), tail.end(), self.confidence),
                    )
                )
        folded = text.casefold()
        for task, labels in self._classes.items():
            hits = [
                LabelScore(label, self.confidence)
                for label, keywords in labels.items()
                if any(k in folded for k in keywords)
            ]
            if hits:
                raw.classifications[task] = hits
        return raw


def _names_pattern(names: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=lambda n: (-len(n), n)))
    return re.compile(r"(?<!\w)(?:" + alternatives + r")(?!\w)", re.IGNORECASE)
