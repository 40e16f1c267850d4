"""Match a query to the index's canonical entities.

Two ways, both ending in ``EntityMatch`` seeds for the graph channel:

- ``EntityNameIndex`` (the default, no model): the query's words looked up in a dictionary of the
  entities' normalised names and aliases, longest match first.
- ``EntityMatcher`` (``query_model=True``): matches the mentions a query extractor (GLiNER2) found.

``EntityMatcher`` uses the same normalisation as reconciliation first (``normalize_name``: ``"APPLE, Inc."`` finds
``COMPANY:apple``), then the entity's recorded aliases, then fuzzy matching with rapidfuzz
(``fuzz.WRatio`` on normalised names, at least ``min_fuzzy_score`` out of 100) for typos and
partial names. A match of the mention's own type is preferred; where the query's extractor gave
another type, an exact name match of any type still counts, at a lower weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from kgbuild.reconcile import normalize_name
from kgbuild.types import Entity

EXACT, ALIAS, OTHER_TYPE = 1.0, 0.95, 0.8


@dataclass(frozen=True, slots=True)
class EntityMatch:
    mention: str  # the query's surface form
    mention_type: str
    entity: Entity
    how: str  # exact | alias | fuzzy | other-type
    weight: float  # 0..1, seeds the graph expansion


class EntityMatcher:
    """
    >>> matcher = EntityMatcher(graph.entities)
    >>> matcher.match("Acme Corporation", "COMPANY").entity.key
    'COMPANY:acme'
    """

    def __init__(self, entities: Mapping[str, Entity], *, min_fuzzy_score: float = 88.0):
        self.min_fuzzy_score = min_fuzzy_score
        self._by_key: dict[str, Entity] = {}
        self._by_name: dict[str, list[Entity]] = {}  # normalised name or alias -> entities of any type
        self._names_by_type: dict[str, dict[str, Entity]] = {}
        for entity in sorted(entities.values(), key=lambda e: e.id):
            self._by_key[entity.key] = entity
            names = {entity.key.split(":", 1)[-1], normalize_name(entity.name), *(normalize_name(a) for a in entity.aliases)}
            for name in names:
                self._by_name.setdefault(name, []).append(entity)
                self._names_by_type.setdefault(entity.type, {}).setdefault(name, entity)

    def match(self, text: str, entity_type: str) -> EntityMatch | None:
        name = normalize_name(text)
        entity = self._by_key.get(f"{entity_type}:{name}")
        if entity is not None:
            return EntityMatch(text, entity_type, entity, "exact", EXACT)
        same_type = [e for e in self._by_name.get(name, []) if e.type == entity_type]
        if same_type:
            return EntityMatch(text, entity_type, same_type[0], "alias", ALIAS)
        candidates = self._names_by_type.get(entity_type, {})
        if candidates and len(name) >= 3:
            from rapidfuzz import fuzz, process, utils

            best = process.extractOne(name, list(candidates), scorer=fuzz.WRatio, processor=utils.default_process,
                                      score_cutoff=self.min_fuzzy_score)
            if best is not None:
                return EntityMatch(text, entity_type, candidates[best[0]], "fuzzy", round(best[1] / 100.0, 4))
        other = self._by_name.get(name, [])
        if other:
            return EntityMatch(text, entity_type, other[0], "other-type", OTHER_TYPE)
        return None

    def match_all(self, mentions: Iterable[tuple[str, str]]) -> list[EntityMatch]:
        """Best match per canonical entity for ``(text, type)`` mentions, strongest first."""
        best: dict[str, EntityMatch] = {}
        for text, entity_type in mentions:
            found = self.match(text, entity_type)
            if found is not None and (found.entity.id not in best or best[found.entity.id].weight < found.weight):
                best[found.entity.id] = found
        return sorted(best.values(), key=lambda m: (-m.weight, m.entity.key))


# English function words that never seed the graph alone, however an entity is named. Written out
# rather than taken from bm25s (``STOPWORDS_EN``, Lucene's 33 words): that list lacks the question
# words every query starts with ("what", "which", "who", "does"), and importing bm25s costs 0.4 s
# where the BM25 channel is off.
QUERY_STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be been before being below between
    both but by can could did do does doing done down during each few for from further had has have having
    he her here hers him his how i if in into is it its itself just made make makes many me more most much
    my no nor not now of off on once only or other our ours out over own same she should so some such than
    that the their theirs them then there these they this those through to too under until up very was we
    were what when where which while who whom whose why will with would you your yours
    """.split()
)
_TOKEN = re.compile(r"\S+")
_POSSESSIVE = re.compile(r"['’`´][sS]?(?=\W*$)")  # "Cook's", "Reyes'" -> "Cook", "Reyes"
_MIN_SINGLE_WORD = 3


@dataclass(frozen=True, slots=True)
class _Word:
    text: str  # normalised, as in an entity key
    start: int  # character span of the query token it came from
    end: int
    bare: str | None  # the normalised form without a possessive ending, where the token had one
    acronym: bool  # written in capitals in the query ("HP", "IBM")


def query_words(text: str) -> list[_Word]:
    """The query's words, normalised as reconciliation normalises names (``normalize_name`` per token)."""
    words: list[_Word] = []
    for token in _TOKEN.finditer(text):
        raw = token.group()
        if not any(ch.isalnum() for ch in raw):
            continue
        parts = normalize_name(raw).split(" ")
        stripped = _POSSESSIVE.sub("", raw)
        bare = normalize_name(stripped).split(" ")[-1] if stripped != raw and any(ch.isalnum() for ch in stripped) else None
        letters = [ch for ch in stripped if ch.isalnum()]
        acronym = len(letters) >= 2 and all(ch.isupper() or ch.isdigit() for ch in letters) and any(ch.isalpha() for ch in letters)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            words.append(_Word(part, token.start(), token.end(), bare if last and bare != part else None, acronym))
    return words


class EntityNameIndex:
    """The canonical entities by normalised name and alias, for finding them in a query without a model.

    A query's word n-grams (longest first, from the longest name's length down to one word) are looked
    up in a dict keyed by the normalised word sequence: ``len(words) x longest name`` lookups, no
    overlapping matches, the longest match winning. A name that several entities share (of several
    types) seeds all of them. A one-word match must be at least three characters and not a stop
    word, unless the query writes it in capitals (an acronym: "HP").

    >>> index = EntityNameIndex(graph.entities)
    >>> [m.entity.key for m in index.find("What does Tim Cook's company sell?")]
    ['PERSON:tim cook']
    """

    def __init__(self, entities: Mapping[str, Entity]):
        self._by_name: dict[str, dict[str, tuple[Entity, str]]] = {}  # name -> entity id -> (entity, how)
        for entity in sorted(entities.values(), key=lambda e: e.id):
            exact = {entity.key.split(":", 1)[-1], normalize_name(entity.name)}
            for name, how in [*((n, "exact") for n in sorted(exact)), *((normalize_name(a), "alias") for a in entity.aliases)]:
                if name:
                    self._by_name.setdefault(name, {}).setdefault(entity.id, (entity, how))
        self.longest = max((name.count(" ") + 1 for name in self._by_name), default=0)

    def find(self, text: str) -> list[EntityMatch]:
        """Best match per canonical entity named in ``text``, strongest first (as ``EntityMatcher.match_all``)."""
        words = query_words(text)
        best: dict[str, EntityMatch] = {}
        i = 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                gram = words[i:i + n]
                name, found = self._lookup(gram)
                if found and (n > 1 or gram[0].acronym or self._may_seed_alone(name)):
                    mention = text[gram[0].start:gram[-1].end]
                    for entity, how in found.values():
                        weight = EXACT if how == "exact" else ALIAS
                        if entity.id not in best or best[entity.id].weight < weight:
                            best[entity.id] = EntityMatch(mention, entity.type, entity, how, weight)
                    i += n
                    break
            else:
                i += 1
        return sorted(best.values(), key=lambda m: (-m.weight, m.entity.key))

    def _lookup(self, gram: list[_Word]) -> tuple[str, dict[str, tuple[Entity, str]] | None]:
        """The name the n-gram spells (its last word as written, else without a possessive) and its entities."""
        head = " ".join(w.text for w in gram[:-1])
        for last in (gram[-1].text, gram[-1].bare):
            if last:
                name = f"{head} {last}" if head else last
                found = self._by_name.get(name)
                if found:
                    return name, found
        return "", None

    @staticmethod
    def _may_seed_alone(name: str) -> bool:
        return len(name) >= _MIN_SINGLE_WORD and name not in QUERY_STOPWORDS
