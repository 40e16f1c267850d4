"""Seeds of the graph channel, found without a model: the entities a query names.

``SeedMatcher`` holds every canonical name and alias of the retrieval graph's entities, normalised as
reconciliation normalises them (``normalize_name``), in one Aho-Corasick automaton (pyahocorasick).
The query's words, normalised the same way and joined by single spaces, are scanned once: a name
matches only on word boundaries (each pattern is `` name `` with its spaces), so "Robert Young" can
never match an entity "obe", and the longest match wins where two overlap.

- exact (the key's name or the canonical name) weighs 1.0, alias 0.95;
- one word alone seeds only when the query writes it in capitals (an acronym: "HP"), or when it is at
  least three characters, not a stop word, the entity's name is a proper name (a capital or a digit in
  the name as written: "Oslo", "2011") and the query writes it as one (unless the whole query is in
  lower case): "what year" never seeds an entity "year", "the director" never a company "Director";
- fuzzy (rapidfuzz ``fuzz.ratio`` of at least ``min_fuzzy_score``, 92 of 100) only for names of two or
  more words, against runs of capitalised query words that matched nothing exactly, with the same
  number of words and each word starting with the same letter: "Norvik Systms" finds "Norvik Systems",
  "Dandy Warhols" never becomes "Andy Warhol".

Seeds by embedding similarity (the query vector against the stored entity-name vectors) and the
down-weighting of frequent entities are the channel's (``kgbuild.retrieve.ppr``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kgbuild.reconcile import normalize_name
from kgbuild.retrieve.entities import ALIAS, EXACT, QUERY_STOPWORDS, query_words
from kgbuild.retrieve.graph_matrix import EntityNode

MIN_FUZZY_SCORE = 92.0
_ALIAS, _PROPER = 1, 2  # flags of a (name, entity) pair
_MIN_SINGLE_WORD = 3
_MAX_FUZZY_WORDS = 4


@dataclass(frozen=True, slots=True)
class Seed:
    index: int  # entity index in the retrieval graph
    key: str
    mention: str  # the query's text that named it ("" for an embedding seed)
    how: str  # exact | alias | fuzzy | embedding | model
    weight: float  # match quality, 0..1 (before the channel's specificity)


def _no_values(data: bytes) -> None:  # pragma: no cover - an integer automaton stores no objects
    return None


def _proper(surface: str) -> bool:
    return any(ch.isupper() or ch.isdigit() for ch in surface)


class SeedMatcher:
    """
    >>> matcher = SeedMatcher(graph.entities)
    >>> [s.key for s in matcher.find("What does Tim Cook's company sell?")]
    ['PERSON:tim cook']
    """

    def __init__(self, entities: Sequence[EntityNode], *, min_fuzzy_score: float = MIN_FUZZY_SCORE, fuzzy: bool = True,
                 _stored: tuple[Any, list[str], np.ndarray, np.ndarray, np.ndarray] | None = None):
        import ahocorasick

        self.entities = entities
        self.min_fuzzy_score = min_fuzzy_score
        self.fuzzy = fuzzy
        self._fuzzy: dict[tuple[int, str], list[str]] | None = None  # built on first use
        if _stored is not None:
            self._automaton, self._names, self._ptr, self._targets, self._flags = _stored
            return
        # name -> {entity index: flags}; exact before alias for the same entity
        by_name: dict[str, dict[int, int]] = {}
        for i, e in enumerate(entities):
            proper = _PROPER if _proper(e.name) else 0
            for name in sorted({e.key.split(":", 1)[-1], normalize_name(e.name)}):
                if name:
                    by_name.setdefault(name, {}).setdefault(i, proper)
            for alias in e.aliases:
                name = normalize_name(alias)
                if name:
                    by_name.setdefault(name, {}).setdefault(i, _ALIAS | (_PROPER if _proper(alias) else 0))
        # the automaton stores a name's number; its entities are a CSR row of (entity index, flags)
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        self._names = sorted(by_name)
        ptr, targets, flags = [0], [], []
        for n, name in enumerate(self._names):
            self._automaton.add_word(f" {name} ", n)
            for index, flag in sorted(by_name[name].items()):
                targets.append(index)
                flags.append(flag)
            ptr.append(len(targets))
        self._ptr = np.array(ptr, dtype=np.int64)
        self._targets = np.array(targets, dtype=np.int32)
        self._flags = np.array(flags, dtype=np.uint8)
        if self._names:
            self._automaton.make_automaton()

    def save(self, folder: Path) -> None:
        """The automaton (pyahocorasick's own format, integers only) and its names and targets."""
        if self._names:
            self._automaton.save(str(folder / "seed_names.automaton"))
        (folder / "seed_names.json").write_text(json.dumps(self._names, ensure_ascii=False), encoding="utf-8")
        np.savez(folder / "seed_targets.npz", ptr=self._ptr, targets=self._targets, flags=self._flags)

    @classmethod
    def load(cls, folder: Path, entities: Sequence[EntityNode], **options: Any) -> SeedMatcher | None:
        import ahocorasick

        if not (folder / "seed_targets.npz").exists():
            return None
        names = json.loads((folder / "seed_names.json").read_text(encoding="utf-8"))
        automaton = ahocorasick.load(str(folder / "seed_names.automaton"), _no_values) if names else \
            ahocorasick.Automaton(ahocorasick.STORE_INTS)
        with np.load(folder / "seed_targets.npz") as z:
            stored = (automaton, names, z["ptr"], z["targets"], z["flags"])
        return cls(entities, _stored=stored, **options)

    def _targets_of(self, n: int) -> list[tuple[int, str, bool]]:
        """(entity index, exact | alias, proper) of name number ``n``."""
        lo, hi = int(self._ptr[n]), int(self._ptr[n + 1])
        return [(int(self._targets[j]), "alias" if self._flags[j] & _ALIAS else "exact", bool(self._flags[j] & _PROPER))
                for j in range(lo, hi)]

    def find(self, text: str) -> list[Seed]:
        """The entities ``text`` names, best match per entity, strongest first."""
        words = query_words(text)
        if not words or not self._names:
            return []
        found: list[tuple[int, int, str, list]] = []  # (first word, last word + 1, name, targets)
        variants = [[w.text for w in words]]
        if any(w.bare for w in words):
            variants.append([w.bare or w.text for w in words])
        for tokens in variants:
            line = " " + " ".join(tokens) + " "
            word_at: dict[int, int] = {}
            pos = 1
            for i, token in enumerate(tokens):
                word_at[pos - 1] = i  # the space before word i
                pos += len(token) + 1
            word_at[len(line) - 1] = len(tokens)
            for end, n in self._automaton.iter(line):
                name = self._names[n]
                targets = self._targets_of(n)
                start = end - len(name) - 1
                first, last = word_at.get(start), word_at.get(end)
                if first is not None and last is not None and last > first:
                    found.append((first, last, name, targets))
        # longest first, then leftmost; no overlaps
        found.sort(key=lambda f: (-(f[1] - f[0]), f[0], f[2]))
        taken = [False] * len(words)
        best: dict[int, Seed] = {}
        lower_case_query = not any(ch.isupper() for ch in text)
        for first, last, name, targets in found:
            if any(taken[first:last]):
                continue
            if last - first == 1 and not words[first].acronym:
                # one word alone: a proper name of three letters or more, never a stop word, written as a name
                # (a capital or a digit) unless the whole query is in lower case
                written = _proper(text[words[first].start:words[first].end]) or lower_case_query
                seeds_alone = len(name) >= _MIN_SINGLE_WORD and name not in QUERY_STOPWORDS and written
                targets = [t for t in targets if seeds_alone and t[2]]
            if not targets:
                continue
            for i in range(first, last):
                taken[i] = True
            mention = text[words[first].start:words[last - 1].end]
            for index, how, _ in targets:
                weight = EXACT if how == "exact" else ALIAS
                if index not in best or best[index].weight < weight:
                    best[index] = Seed(index, self.entities[index].key, mention, how, weight)
        if self.fuzzy:
            for seed in self._fuzzy_seeds(text, words, taken):
                if seed.index not in best:
                    best[seed.index] = seed
        return sorted(best.values(), key=lambda s: (-s.weight, s.key))

    def _fuzzy_buckets(self) -> dict[tuple[int, str], list[str]]:
        """Names of 2 to 4 words by (word count, initials): the fuzzy candidates."""
        if self._fuzzy is None:
            self._fuzzy = {}
            for name in self._names:
                words = name.split(" ")
                if 2 <= len(words) <= _MAX_FUZZY_WORDS:
                    self._fuzzy.setdefault((len(words), "".join(w[:1] for w in words)), []).append(name)
        return self._fuzzy

    def _index_of(self, name: str) -> int:
        return int(self._automaton.get(f" {name} "))

    def _fuzzy_seeds(self, text: str, words: list, taken: list[bool]) -> list[Seed]:
        """Runs of capitalised, unmatched query words against names of as many words, strictly."""
        from rapidfuzz import fuzz, process

        runs: list[list[int]] = []
        current: list[int] = []
        for i, w in enumerate(words):
            if not taken[i] and text[w.start:w.start + 1].isupper() and w.text not in QUERY_STOPWORDS:
                current.append(i)
            else:
                if len(current) >= 2:
                    runs.append(current)
                current = []
        if len(current) >= 2:
            runs.append(current)
        seeds: list[Seed] = []
        for run in runs:
            n = min(len(run), _MAX_FUZZY_WORDS)
            while n >= 2:
                for s in range(0, len(run) - n + 1):
                    gram = [words[i] for i in run[s:s + n]]
                    query = " ".join(w.bare or w.text for w in gram)
                    bucket = self._fuzzy_buckets().get((n, "".join(w.text[:1] for w in gram)))
                    if not bucket:
                        continue
                    best = process.extractOne(query, bucket, scorer=fuzz.ratio, score_cutoff=self.min_fuzzy_score)
                    if best is None:
                        continue
                    mention = text[gram[0].start:gram[-1].end]
                    for index, _, _ in self._targets_of(self._index_of(best[0])):
                        seeds.append(Seed(index, self.entities[index].key, mention, "fuzzy", round(0.9 * best[1] / 100.0, 4)))
                n -= 1
        return seeds
