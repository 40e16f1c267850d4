"""Match the entity mentions of a query to the index's canonical entities.

The same normalisation as reconciliation first (``normalize_name``: ``"APPLE, Inc."`` finds
``COMPANY:apple``), then the entity's recorded aliases, then fuzzy matching with rapidfuzz
(``fuzz.WRatio`` on normalised names, at least ``min_fuzzy_score`` out of 100) for typos and
partial names. A match of the mention's own type is preferred; where the query's extractor gave
another type, an exact name match of any type still counts, at a lower weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from kgbuild.reconcile import normalize_name
from kgbuild.retrieve.graph import GraphEntity

EXACT, ALIAS, OTHER_TYPE = 1.0, 0.95, 0.8


@dataclass(frozen=True, slots=True)
class EntityMatch:
    mention: str  # the query's surface form
    mention_type: str
    entity: GraphEntity
    how: str  # exact | alias | fuzzy | other-type
    weight: float  # 0..1, seeds the graph expansion


class EntityMatcher:
    """
    >>> matcher = EntityMatcher(graph.entities)
    >>> matcher.match("Acme Corporation", "COMPANY").entity.key
    'COMPANY:acme'
    """

    def __init__(self, entities: Mapping[str, GraphEntity], *, min_fuzzy_score: float = 88.0):
        self.min_fuzzy_score = min_fuzzy_score
        self._by_key: dict[str, GraphEntity] = {}
        self._by_name: dict[str, list[GraphEntity]] = {}  # normalised name or alias -> entities of any type
        self._names_by_type: dict[str, dict[str, GraphEntity]] = {}
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
