"""``kgbuild entities``: find an entity, say why its names are one entity, and pin merges and splits.

Every mention in the graph carries the resolution rule that put it in its entity and the name it joined
(``kgbuild.types.ResolutionReason``), so an entity's explanation is read from the mentions it has now,
like its aliases: removing the document that justified a merge removes its explanation too.

>>> report = show_entity("PERSON:Blair", Settings(out_dir=".kgbuild"))
>>> [(r.alias, r.rule, r.via) for r in report.reasons]
[('Tony Blair', 'exact', ''), ('Blair', 'surname', 'Tony Blair')]

Reads go through the graph store's Protocol (``GraphSink.entities()`` and ``entity_mentions()``) of the
index that ``Index.open_existing`` reopens; the document paths come from the index's state. ``pin_merge``
and ``pin_split`` edit the index's override file (``kgbuild.overrides``), which the next ingest applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from kgbuild.errors import ConfigError, KgbuildError
from kgbuild.index import Index
from kgbuild.overrides import OVERRIDE_RULE, NameRef, ResolutionOverrides, load_overrides, save_overrides
from kgbuild.settings import Settings
from kgbuild.types import RULE_EXACT, RULE_UNRECORDED, Entity, MentionRecord

CANDIDATES = 5  # close names listed when nothing matches
CANDIDATE_SCORE = 70  # rapidfuzz WRatio, 0-100: below it a name is not close


class EntityNotFoundError(KgbuildError):
    """No entity has the name asked for; ``candidates`` are the close ones (best first)."""

    def __init__(self, message: str, candidates: list[Entity]):
        super().__init__(message)
        self.candidates = candidates


@dataclass(frozen=True, slots=True)
class AliasReason:
    """One way an entity's mentions are written, and why they are in it: every mention with this surface
    form, rule and evidence."""

    alias: str  # the surface form ("Mr Blair")
    rule: str  # ResolutionReason.rule: "exact", "surname", "titles+surname", "override"; "" when not recorded
    via: str  # the name it joined ("Tony Blair")
    mentions: int  # distinct spans
    documents: list[str]  # their paths

    def describe(self) -> str:
        """In words: ``"title + surname -> Tony Blair"``, ``"same name"``, ``"not recorded"``."""
        return describe_rule(self.rule, self.via)


@dataclass(frozen=True, slots=True)
class EntityDocument:
    doc_id: str
    path: str
    mentions: int  # distinct spans of the entity in it


@dataclass(slots=True)
class EntityReport:
    """What ``kgbuild entities show`` prints about one entity."""

    entity: Entity
    matched: str  # how the name asked for found it: "key", "alias" or "merge" (through resolution.yaml)
    reasons: list[AliasReason] = field(default_factory=list)
    documents: list[EntityDocument] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)  # the override file's pairs that name it
    overrides_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["entity"] = asdict(self.entity)
        for reason, data in zip(self.reasons, out["reasons"]):
            data["explanation"] = reason.describe()
        return out


def describe_rule(rule: str, via: str) -> str:
    """``describe_rule("titles+surname", "Tony Blair") == "title + surname -> Tony Blair"``."""
    from kgbuild.resolution import RULE_TEXT

    if rule == RULE_UNRECORDED:
        return "not recorded (written before kgbuild kept resolution reasons)"
    if rule == RULE_EXACT:
        return "same name"
    words = [("override (resolution.yaml)" if r == OVERRIDE_RULE else RULE_TEXT.get(r, r)) for r in rule.split("+")]
    return " + ".join(words) + (f" -> {via}" if via else "")


# -- finding an entity ---------------------------------------------------------------------------


def find_entity(entities: Mapping[str, Entity], value: str, overrides: ResolutionOverrides | None = None) -> tuple[Entity, str]:
    """The entity ``value`` ("TYPE:NAME") names, and how it was found: by key (normalised as ``--entity``
    filters are), through the override file's merges, or as the name or an alias of exactly one entity.

    Raises ``EntityNotFoundError`` (with close candidates) when nothing matches, ``ConfigError`` when the
    value is malformed or names an alias of several entities.
    """
    entity_type, key = _parse(entities, value)
    by_key = {e.key: e for e in entities.values()}
    if key in by_key:
        return by_key[key], "key"
    merged = overrides.merged_key(key) if overrides else key
    if merged in by_key:
        return by_key[merged], "merge"
    written = _keys_of_names(entity_type)
    matches = sorted((e for e in entities.values() if e.type == entity_type and key in written(e)),
                     key=lambda e: (-e.mention_count, e.key))
    if len(matches) == 1:
        return matches[0], "alias"
    if matches:
        raise ConfigError(f"{value} is a name of {len(matches)} entities: {_listed(matches)}; name one by its key")
    candidates = close_candidates(entities.values(), entity_type, value.partition(":")[2].strip())
    close = f"; close: {_listed(candidates)}" if candidates else f"; `kgbuild entities list --type {entity_type}` lists them"
    raise EntityNotFoundError(f"no entity {value}{close}", candidates)


def entity_filter_keys(entities: Mapping[str, Entity], value: str,
                       overrides: ResolutionOverrides | None = None) -> list[str]:
    """The entity keys an ``--entity TYPE:NAME`` filter stands for, resolved as ingest resolves names, so
    ``PERSON:Blair`` finds the chunks of "Tony Blair":

    - the entity with that key ("PERSON:blair", if "Blair" stood alone somewhere);
    - where the override file merges it, the entity it merges into;
    - every entity that has the name among its aliases (its mentions were written so: "Blair" in an
      article about Tony Blair);
    - when none of these exists, the one full name of the index that the name abbreviates (surname, first
      name, head word, acronym: the rules of ``kgbuild.resolution``); two that fit ("Blair": Tony and
      Cherie) give none.

    Nothing found leaves the key as given (the filter then matches nothing). ``ConfigError`` on a malformed
    value.
    """
    from kgbuild.names import split_gender
    entity_type, key = _parse(entities, value)
    by_key = {e.key: e for e in entities.values()}
    found = [key] if key in by_key else []
    merged = overrides.merged_key(key) if overrides else key
    if merged != key and merged in by_key:
        found.append(merged)
    written = _keys_of_names(entity_type)
    bare = key.partition(":")[2]
    if split_gender(bare)[1] is None:  # "Blair" is also each "Mr Blair" (key "blair (m)"); "Mrs Blair" is not "Mr Blair"
        def fits(e: Entity) -> bool:
            return any(split_gender(k.partition(":")[2])[0] == bare for k in written(e))
    else:
        def fits(e: Entity) -> bool:
            return key in written(e)
    found += sorted(e.key for e in entities.values() if e.type == entity_type and e.key not in found and fits(e))
    if not found:
        full = abbreviated_entity(entities, entity_type, value.partition(":")[2].strip())
        if full is not None:
            found.append(full.key)
    return found or [key]


class EntityKeyResolver:
    """``--entity`` values -> the entity keys they stand for in one index (``entity_filter_keys``); the index's
    entities are read once, on first use, so a query without entity filters never reads the graph."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._entities: Mapping[str, Entity] | None = None
        self._overrides: ResolutionOverrides | None = None

    def __call__(self, value: str) -> list[str]:
        if self._entities is None:
            graph = self.index.graph_sink()
            graph.open()
            try:
                self._entities = graph.entities()
            finally:
                graph.close()
            self._overrides = self.index.overrides()
        return entity_filter_keys(self._entities, value, self._overrides)


def abbreviated_entity(entities: Mapping[str, Entity], entity_type: str, name: str) -> Entity | None:
    """The one entity of ``entity_type`` whose name ``name`` abbreviates, by the within-document rules read as
    if the whole index were one document: ``"Blair"`` -> Tony Blair, ``"NATO"`` -> North Atlantic Treaty
    Organization; ``None`` when no name or several fit."""
    from kgbuild.names import normalize_name
    from kgbuild.reconcile import entity_key, resolve_mentions
    from kgbuild.resolution import ResolutionRules
    from kgbuild.types import Mention

    short_key = entity_key(entity_type, name).partition(":")[2]
    words = set(short_key.split())
    letters = short_key.replace(".", "").replace(" ", "")
    if not words:
        return None
    # only names that could fit go in: a shared word, or initials that spell the acronym
    candidates = [e for e in entities.values() if e.type == entity_type and e.key.partition(":")[2] != short_key
                  and (words & set(e.key.partition(":")[2].split())
                       or "".join(w[:1] for w in normalize_name(e.name).split()) == letters)]
    if not candidates:
        return None
    mentions = [Mention(f"q{i}", "query", "query", entity_type, surface, 2 * i, 2 * i + 1, 1.0)
                for i, surface in enumerate([name, *(e.name for e in candidates)])]
    resolved = resolve_mentions(mentions, rules=ResolutionRules(cross_document=False))
    own = resolved.entities.get(resolved.mention_entity["q0"])
    if own is None or own.key.partition(":")[2] == short_key:
        return None
    by_key = {e.key: e for e in candidates}
    return by_key.get(own.key)


def _parse(entities: Mapping[str, Entity], value: str) -> tuple[str, str]:
    """``"person:Mr Blair"`` -> ``("PERSON", "PERSON:blair (m)")``: the type as the graph spells it and the key,
    normalised as ``--entity`` filters are; ``ConfigError`` on a malformed value."""
    from kgbuild.reconcile import parse_entity_filter

    try:
        entity_type, key = parse_entity_filter(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    entity_type = _known_type(entities.values(), entity_type)
    return entity_type, f"{entity_type}:{key.partition(':')[2]}"


def _known_type(entities: Iterable[Entity], entity_type: str) -> str:
    """The type as the graph spells it: ``person`` finds ``PERSON``."""
    types = {e.type for e in entities}
    if entity_type in types:
        return entity_type
    folded = {t.casefold(): t for t in sorted(types)}
    return folded.get(entity_type.casefold(), entity_type)


def _keys_of_names(entity_type: str):
    from kgbuild.reconcile import entity_key

    key_of = lru_cache(maxsize=None)(lambda name: entity_key(entity_type, name))
    return lambda e: {key_of(name) for name in (e.name, *e.aliases)}


def _listed(entities: Iterable[Entity]) -> str:
    return ", ".join(f"{e.key} ({e.name}, {e.mention_count} mention{'s' if e.mention_count != 1 else ''})" for e in entities)


def close_candidates(entities: Iterable[Entity], entity_type: str, name: str, limit: int = CANDIDATES) -> list[Entity]:
    """Entities whose name or an alias is close to ``name`` (rapidfuzz WRatio), those of ``entity_type`` first."""
    from rapidfuzz import fuzz, process, utils

    entities = list(entities)
    choices: dict[int, str] = {}
    owners: list[Entity] = []
    for entity in entities:
        for surface in dict.fromkeys((entity.name, *entity.aliases)):
            choices[len(owners)] = surface
            owners.append(entity)
    found = process.extract(name, choices, scorer=fuzz.WRatio, processor=utils.default_process,
                            score_cutoff=CANDIDATE_SCORE, limit=None)
    best: dict[str, tuple[float, Entity]] = {}
    for _, score, index in found:
        entity = owners[index]
        if entity.id not in best or best[entity.id][0] < score:
            best[entity.id] = (score, entity)
    ranked = sorted(best.values(), key=lambda item: (item[1].type != entity_type, -item[0], -item[1].mention_count, item[1].key))
    return [entity for _, entity in ranked[:limit]]


# -- explaining it -------------------------------------------------------------------------------


def explain_mentions(mentions: Iterable[MentionRecord], paths: Mapping[str, str]) -> tuple[list[AliasReason], list[EntityDocument]]:
    """An entity's mentions grouped by surface form, rule and evidence, and by document; a span written in
    two overlapping chunks counts once. ``paths`` maps document ids to paths (an id without one stands)."""
    spans: dict[tuple[str, str, str], set[tuple[str, int, int]]] = {}
    per_document: dict[str, set[tuple[int, int]]] = {}
    for m in mentions:
        spans.setdefault((m["text"], m["rule"], m["via"]), set()).add((m["doc_id"], m["start"], m["end"]))
        per_document.setdefault(m["doc_id"], set()).add((m["start"], m["end"]))
    reasons = [
        AliasReason(text, rule, via, len(found), sorted({paths.get(doc, doc) for doc, _, _ in found}))
        for (text, rule, via), found in spans.items()
    ]
    reasons.sort(key=lambda r: (r.rule != RULE_EXACT, -r.mentions, r.alias, r.rule))
    documents = sorted((EntityDocument(doc, paths.get(doc, doc), len(found)) for doc, found in per_document.items()),
                       key=lambda d: (-d.mentions, d.path))
    return reasons, documents


def show_entity(value: str, settings: Settings | None = None) -> EntityReport:
    """``kgbuild entities show TYPE:NAME``: the entity, how its names joined it, and where it is mentioned."""
    index = Index.open_existing(settings or Settings())
    overrides = index.overrides()
    graph = index.graph_sink()
    graph.open()
    try:
        entity, matched = find_entity(graph.entities(), value, overrides)
        mentions = graph.entity_mentions([entity.id])
    finally:
        graph.close()  # nothing was written: writes nothing
    paths = {doc_id: doc.path for doc_id, doc in index.state.all_documents().items()}
    reasons, documents = explain_mentions(mentions, paths)
    return EntityReport(entity, matched, reasons, documents, overrides.pinned_for(entity.key),
                        str(index.overrides_path) if overrides else "")


def list_entities(settings: Settings | None = None, *, entity_type: str | None = None, top: int | None = None) -> list[Entity]:
    """``kgbuild entities list``: entities by mention count (most first), of one type if given."""
    index = Index.open_existing(settings or Settings())
    graph = index.graph_sink()
    graph.open()
    try:
        entities = list(graph.entities().values())
    finally:
        graph.close()
    if entity_type is not None:
        wanted = _known_type(entities, entity_type)
        entities = [e for e in entities if e.type == wanted]
    entities.sort(key=lambda e: (-e.mention_count, e.key))
    return entities if top is None else entities[:top]


# -- pinning decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PinReport:
    path: str  # the override file written
    pair: tuple[str, str]
    kind: str  # "merge" or "never_merge"
    replaced: bool  # the same pair was in the other list, and left it


def pin_merge(a: str, b: str, settings: Settings | None = None) -> PinReport:
    """``kgbuild entities merge A B``: add ``[A, B]`` to the index's resolution.yaml (``merge``)."""
    return _pin("merge", a, b, settings or Settings())


def pin_split(a: str, b: str, settings: Settings | None = None) -> PinReport:
    """``kgbuild entities split A B``: add ``[A, B]`` to the index's resolution.yaml (``never_merge``)."""
    return _pin("never_merge", a, b, settings or Settings())


def _pin(kind: str, a: str, b: str, settings: Settings) -> PinReport:
    try:
        pair = (NameRef.parse(a).text, NameRef.parse(b).text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    out_dir = Path(settings.out_dir)
    before = load_overrides(out_dir)
    after = before.with_merge(*pair) if kind == "merge" else before.with_never_merge(*pair)
    other = "never_merge" if kind == "merge" else "merge"
    replaced = len(getattr(after, other)) < len(getattr(before, other))
    path = save_overrides(after, out_dir)
    return PinReport(str(path), pair, kind, replaced)
