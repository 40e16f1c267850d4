"""Entity resolution inside one document: which of its names a reader takes for the same entity.

Two layers, both of which look at one document only, so an entity's id (a hash of its type and the
key of its fullest name) never depends on which other documents were ingested, or in what order:

1. **Each mention on its own** (``canonical_key``): titles before a person's name go ("Mr Blair" is
   "Blair"), and a place's other names go to its canonical one through the alias table ("U.S.",
   "America" -> "United States"; "Kenyan" -> "Kenya"; "Calif." -> "California").
2. **The names of one document together** (``resolve_document``): a short name joins the one full
   name of the same type in the document that it abbreviates: a person's surname or first name
   ("Blair" -> "Tony Blair"), a name without its middle name or with initials ("Gerald Ford" ->
   "Gerald R. Ford"), an organisation's or place's head word ("Heat" -> "Miami Heat"), an
   organisation's first words ("Goldman" -> "Goldman Sachs"), an acronym ("AP" -> "Associated
   Press"), and an acronym defined in parentheses right after its name. When two full names would
   do ("Brown" with Gordon Brown and Chris Brown), the short name stays on its own.

Every rule can be switched off (``ResolutionRules``), and every merge says which rule made it and on
what evidence (``Merge``). Cost is linear: candidates are found by exact lookups of a name's words
(its prefixes, suffixes, initials), never by comparing all pairs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from itertools import product
from typing import Iterable, Mapping, Protocol

from kgbuild.names import (
    FUNCTION_WORDS, GENERATIONS, acronym_letters, fold_key, fullness, name_words, normalize_name, strip_titles,
)

PERSON, ORGANIZATION, PLACE, VALUE, OTHER = "person", "organization", "place", "value", "other"
FAMILIES = (PERSON, ORGANIZATION, PLACE, VALUE, OTHER)

# Type names of the bundled schemas, of common NER tag sets and of the dev set, by family. A type not
# named here is OTHER (acronyms only); ResolutionRules(families={"CEO": "person"}) adds more.
_FAMILY_WORDS = {
    PERSON: {"PERSON", "PER", "PERSONS", "PEOPLE", "HUMAN", "INDIVIDUAL", "AUTHOR", "ARTIST", "ATHLETE", "ACTOR",
             "POLITICIAN", "CEO", "EXECUTIVE", "FOUNDER", "PLAYER", "SCIENTIST", "WRITER", "MUSICIAN", "JOURNALIST"},
    ORGANIZATION: {"ORGANIZATION", "ORGANISATION", "ORG", "COMPANY", "CORPORATION", "BUSINESS", "FIRM",
                   "INSTITUTION", "AGENCY", "TEAM", "CLUB", "BAND", "PARTY", "UNIVERSITY", "SCHOOL",
                   "GOVERNMENT", "MINISTRY", "BANK", "NGO", "PUBLISHER", "NEWSPAPER", "EMPLOYER", "COMPETITOR"},
    PLACE: {"LOCATION", "LOC", "GPE", "PLACE", "COUNTRY", "CITY", "REGION", "STATE", "PROVINCE", "NORP",
            "NATIONALITY", "CONTINENT", "TOWN", "DISTRICT"},
    VALUE: {"DATE", "TIME", "MONEY", "NUMBER", "PERCENT", "PERCENTAGE", "QUANTITY", "CARDINAL", "ORDINAL",
            "DURATION", "PRICE", "AMOUNT", "AGE", "YEAR", "MEASURE", "VALUE"},
}
# words before a place's head that make it another place: "South Sudan" is not "Sudan", nor "New York" "York"
_PLACE_QUALIFIERS = frozenset(
    {"north", "south", "east", "west", "northern", "southern", "eastern", "western", "central", "northeast",
     "northwest", "southeast", "southwest", "new", "old", "upper", "lower", "greater", "little", "great",
     "mount", "mt", "lake", "port", "fort", "saint", "st", "san", "santa", "los", "las", "el", "la", "le"}
)
_DEFINITION_GAP = re.compile(r"\s*[(\[]\s*")

# how each rule reads in an explanation ("surname: Blair -> Tony Blair")
RULE_TEXT = {
    "titles": "title",
    "accents": "accents",
    "aliases": "alias",
    "demonyms": "demonym",
    "surname": "surname",
    "first_name": "first name",
    "name_variant": "shorter form",
    "head_word": "head word",
    "short_name": "short name",
    "acronym": "acronym",
    "acronym_definition": "acronym defined in parentheses",
}


_RULE_ORDER = tuple(RULE_TEXT)


@dataclass(frozen=True)
class ResolutionRules:
    """Which resolution rules run; each can be switched off on its own (the benchmark's ablation).

    >>> ResolutionRules(surname=False).enabled("surname")
    False
    """

    accents: bool = True  # "Durán" is "Duran" (Latin letters; every type but values)
    titles: bool = True  # "Mr Blair", "President Blair" -> "Blair" (person types)
    aliases: bool = True  # "U.S.", "America" -> "United States", "Calif." -> "California" (place types)
    demonyms: bool = True  # "Kenyan" -> "Kenya", "British" -> "United Kingdom" (place types)
    surname: bool = True  # "Blair" -> "Tony Blair"
    first_name: bool = True  # "Tony" -> "Tony Blair"
    name_variant: bool = True  # "Gerald Ford" -> "Gerald R. Ford", "J. Smith" -> "John Smith"
    head_word: bool = True  # "Heat" -> "Miami Heat" (organisations and places)
    short_name: bool = False  # "Goldman" -> "Goldman Sachs" (organisations); off: "Samsung" is not "Samsung Electronics"
    acronym: bool = True  # "AP" -> "Associated Press", when the document has one such name
    acronym_definition: bool = True  # "Associated Press (AP)": needs the document's text
    families: Mapping[str, str] = field(default_factory=dict)  # entity type -> family, over the defaults

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.type in ("bool", bool))

    @classmethod
    def none(cls) -> "ResolutionRules":
        """Every rule off: grouping by type and normalised name only."""
        return cls(**{name: False for name in cls.names()})

    def without(self, rule: str) -> "ResolutionRules":
        if rule not in self.names():
            raise ValueError(f"unknown resolution rule {rule!r}; the rules are {', '.join(self.names())}")
        return replace(self, **{rule: False})

    def enabled(self, rule: str) -> bool:
        return bool(getattr(self, rule))

    def family(self, entity_type: str) -> str:
        """``family("COMPANY") == "organization"``: what kind of name a type holds decides which rules apply."""
        given = self.families.get(entity_type)
        if given is not None:
            if given not in FAMILIES:
                raise ValueError(f"family {given!r} of type {entity_type!r} must be one of {', '.join(FAMILIES)}")
            return given
        return type_family(entity_type)


@lru_cache(maxsize=1024)
def type_family(entity_type: str) -> str:
    """The family of a type by its name: ``type_family("PERSON") == "person"``, ``type_family("GENE") == "other"``."""
    words = set(re.split(r"[^A-Z]+", entity_type.upper())) - {""}
    for family, names in _FAMILY_WORDS.items():
        if entity_type.upper() in names or words & names:
            return family
    return OTHER


@dataclass(frozen=True, order=True)
class Merge:
    """Why one name joined an entity: ``str(m) == "surname: Blair -> Tony Blair (doc_x)"``."""

    rule: str  # a ResolutionRules field name
    alias: str  # the name that joined ("Blair", "U.S.")
    name: str  # the name it joined ("Tony Blair", "United States")
    doc_ids: tuple[str, ...]  # where (sorted)

    def __str__(self) -> str:
        docs = ", ".join(self.doc_ids[:3]) + (f" +{len(self.doc_ids) - 3}" if len(self.doc_ids) > 3 else "")
        return f"{RULE_TEXT.get(self.rule, self.rule)}: {self.alias} -> {self.name} ({docs})"


@dataclass(frozen=True, slots=True)
class CanonicalName:
    """A mention's name after the per-mention rules: its key, and the rule that changed it (if any)."""

    key: str
    rule: str | None = None  # "titles" or "aliases"
    name: str | None = None  # the canonical name an alias led to ("United States")


class AliasLookup(Protocol):
    def find(self, surface: str) -> tuple[str, bool] | None: ...


def canonical_key(entity_type: str, surface: str, rules: ResolutionRules, aliases: AliasLookup | None) -> CanonicalName:
    """The key one mention has on its own: ``canonical_key("LOCATION", "U.S.", ...).key == "united states"``."""
    key = normalize_name(surface)
    family = rules.family(entity_type)
    if family == VALUE:
        return CanonicalName(key)
    if family == PLACE and (rules.aliases or rules.demonyms) and aliases is not None:
        found = aliases.find(surface)
        if found is not None:
            canonical, demonym = found
            rule = "demonyms" if demonym else "aliases"
            if rules.enabled(rule):
                canonical_key_ = _folded(normalize_name(canonical), rules)
                return CanonicalName(canonical_key_, rule if canonical_key_ != _folded(key, rules) else None, canonical)
    rule = None
    if family == PERSON and rules.titles:
        stripped = strip_titles(key)
        if stripped != key:
            key, rule = stripped, "titles"
    folded = _folded(key, rules)
    if folded != key and rule is None:
        rule = "accents"
    return CanonicalName(folded, rule, None)


def _folded(key: str, rules: ResolutionRules) -> str:
    return fold_key(key) if rules.accents else key


# -- one document ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameSpan:
    """One mention span of a document after the type vote and the per-mention rules."""

    start: int
    end: int
    type: str
    surface: str
    key: str
    known: bool = False  # the alias table knows this place: it is a name in its own right, not a short form


@dataclass(slots=True)
class _Name:
    type: str
    key: str
    family: str
    words: tuple[str, ...]
    generation: str | None
    letters: int
    surface: str  # the most frequent surface form, for explanations
    acronym: str | None  # the letters, where the name is written as an acronym
    known: bool


@dataclass(frozen=True, slots=True)
class Link:
    """A short name of a document and the full name it resolved to."""

    root_key: str
    rule: str
    alias: str  # the short name's surface form
    name: str  # the full name's surface form


def _make_name(entity_type: str, key: str, family: str, spans: list[NameSpan]) -> _Name:
    words = name_words(key)
    generation = None
    if family == PERSON and len(words) >= 2 and words[-1] in GENERATIONS:
        words, generation = words[:-1], words[-1]
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.surface] = counts.get(span.surface, 0) + 1
    surface = min(counts, key=lambda s: (fullness(s), -counts[s], -len(s), s))  # as the entity is named
    acronym = next((a for a in sorted(acronym_letters(s) or "" for s in counts) if a), None)
    if acronym is not None and len(words) > 1 and acronym != "".join(words):
        acronym = None  # "U.S. Steel": an acronym inside a longer name is not the whole name
    return _Name(entity_type, key, family, words, generation, sum(ch.isalnum() for ch in key), surface, acronym,
                 any(s.known for s in spans))


def _initial_of(short: str, full: str) -> bool:
    return short == full or (len(short) == 1 and full.startswith(short))


def _person_rule(short: _Name, full: _Name, rules: ResolutionRules) -> str | None:
    """The rule by which a person's name ``short`` abbreviates ``full``, if any."""
    if short.generation and short.generation != full.generation:
        return None
    if full.generation and not short.generation and len(short.words) > 1:
        return None  # "Paul Desmarais" may be the father of "Paul Desmarais Jr."
    s, f = short.words, full.words
    if len(f) < 2:
        return None
    if len(s) < len(f):
        if rules.surname and f[-len(s):] == s:
            return "surname"
        if rules.first_name and f[: len(s)] == s:
            return "first_name"
    if rules.name_variant and len(s) >= 2 and s[-1] == f[-1] and _initial_of(s[0], f[0]):
        if len(s) == 2 or (len(s) == len(f) and all(_initial_of(a, b) for a, b in zip(s[1:-1], f[1:-1]))):
            return "name_variant" if s != f else None
    return None


def _other_rule(short: _Name, full: _Name, rules: ResolutionRules) -> str | None:
    """Head words and short names of organisations and places. Never across a function word: the "Brandenburg"
    of "Margraviate of Brandenburg" and the "Catholic Church" of "Catholic Church in the Maldives" are other
    entities; nor for an acronym ("CNN" is not "CNN Worldwide", nor "BBC" "Children's BBC")."""
    s, f = short.words, full.words
    if len(s) >= len(f) or short.acronym is not None:
        return None
    if rules.head_word and f[-len(s):] == s and f[-len(s) - 1] not in FUNCTION_WORDS:
        if short.family == PLACE and (short.known or _PLACE_QUALIFIERS & set(f[: -len(s)])):
            return None
        return "head_word"
    if rules.short_name and short.family == ORGANIZATION and f[: len(s)] == s and f[len(s)] not in FUNCTION_WORDS:
        return "short_name"
    return None


def _containment_rule(short: _Name, full: _Name, rules: ResolutionRules) -> str | None:
    if full.letters <= short.letters or short.letters < 2 or full.acronym is not None:
        return None
    if short.family == PERSON:
        return _person_rule(short, full, rules)
    if short.family in (ORGANIZATION, PLACE):
        return _other_rule(short, full, rules)
    return None


def _containment_keys(name: _Name) -> Iterable[tuple]:
    """The lookup keys under which a full name is found by the short names it may have."""
    w = name.words
    for i in range(1, len(w)):
        yield ("affix", w[:i])
        yield ("affix", w[i:])
    if name.family == PERSON and len(w) >= 2:
        yield ("first-last", w[0][0], w[-1])


def _lookup_keys(name: _Name) -> Iterable[tuple]:
    w = name.words
    yield ("affix", w)
    if name.family == PERSON and len(w) >= 2:
        yield ("first-last", w[0][0], w[-1])


def initialisms(words: tuple[str, ...], limit: int = 64) -> set[str]:
    """The acronyms a name may have, each content word giving its initial, a number all its digits, and a
    function word its initial or nothing: ``"cfr" in initialisms(("council", "on", "foreign", "relations"))``."""
    options: list[tuple[str, ...]] = []
    for word in words:
        if word.isdigit():
            options.append((word,))
        elif word in FUNCTION_WORDS:
            options.append(("", word[0]))
        else:
            options.append((word[0],))
    out: set[str] = set()
    for combo in product(*options):
        out.add("".join(combo))
        if len(out) >= limit:
            break
    return out


def defines(acronym: str, long_form: str) -> bool:
    """Whether ``long_form`` spells ``acronym`` as Schwartz and Hearst (2003) check a definition in
    parentheses: the acronym's letters in order, the first at the start of a word of the long form.

    >>> defines("riaj", "Recording Industry Association of Japan")
    True
    """
    long_form = long_form.casefold()
    if not long_form or not acronym or long_form[0] != acronym[0]:
        return False
    li = len(long_form) - 1
    for si in range(len(acronym) - 1, -1, -1):
        c = acronym[si]
        while li >= 0 and (long_form[li] != c or (si == 0 and li > 0 and long_form[li - 1].isalnum())):
            li -= 1
        if li < 0:
            return False
        li -= 1
    return True


def _definitions(spans: list[NameSpan], text: str) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(type, acronym key) -> the (type, key) of the names it is defined for: "Associated Press (AP)"."""
    found: dict[tuple[str, str], set[tuple[str, str]]] = {}
    ordered = sorted(spans, key=lambda s: (s.start, s.end, s.type, s.key))
    for i, span in enumerate(ordered):
        for previous in reversed(ordered[max(0, i - 3) : i]):
            if previous.end > span.start or previous.type != span.type:
                continue
            if not _DEFINITION_GAP.fullmatch(text[previous.end : span.start]):
                continue
            for short, full in ((span, previous), (previous, span)):
                letters = acronym_letters(short.surface)
                if letters and len(full.key.split(" ")) >= 2 and acronym_letters(full.surface) is None \
                        and defines(letters, full.surface):
                    found.setdefault((short.type, short.key), set()).add((full.type, full.key))
    return found


def resolve_document(
    doc_id: str, spans: Iterable[NameSpan], rules: ResolutionRules, text: str | None = None
) -> dict[tuple[str, str], Link]:
    """The short names of one document and the full names they resolve to, by (type, key).

    A name that no rule links, or that two full names would fit, is not in the result. ``text`` (the
    document's text) lets an acronym defined in parentheses after its name join it.
    """
    spans = list(spans)
    by_name: dict[tuple[str, str], list[NameSpan]] = {}
    for span in spans:
        by_name.setdefault((span.type, span.key), []).append(span)
    names: dict[tuple[str, str], _Name] = {}
    for (entity_type, key), group in sorted(by_name.items()):
        family = rules.family(entity_type)
        if family != VALUE:
            names[(entity_type, key)] = _make_name(entity_type, key, family, group)
    if not names:
        return {}

    # the full names, found by the words a short name would share with them
    index: dict[tuple, list[tuple[str, str]]] = {}
    acronym_index: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for ident, name in names.items():
        for lookup in _containment_keys(name):
            index.setdefault((name.type, *lookup), []).append(ident)
        content = [w for w in name.words if w not in FUNCTION_WORDS]
        if rules.acronym and name.acronym is None and len(content) >= 2:
            for letters in initialisms(name.words):
                if len(letters) >= 2:
                    acronym_index.setdefault((name.type, letters), []).append(ident)

    # each name's top (a full name inside no other), or AMBIGUOUS; the fullest first, so that a name's
    # containers are settled before it
    ambiguous = ("", "")
    top: dict[tuple[str, str], tuple[str, str]] = {}
    rule_of: dict[tuple[str, str], str] = {}
    for ident in sorted(names, key=lambda i: (-names[i].letters, i)):
        name = names[ident]
        tops: set[tuple[str, str]] = set()
        rules_found: list[str] = []
        for lookup in _lookup_keys(name):
            for candidate in index.get((name.type, *lookup), ()):
                if candidate == ident:
                    continue
                rule = _containment_rule(name, names[candidate], rules)
                if rule is not None:
                    tops.add(top[candidate])
                    rules_found.append(rule)
        if not tops:
            top[ident] = ident
        elif len(tops) == 1 and ambiguous not in tops:
            top[ident] = next(iter(tops))
            rule_of[ident] = min(rules_found, key=_RULE_ORDER.index)
        else:
            top[ident] = ambiguous

    # acronyms: defined in parentheses, or the one name of the document that they abbreviate
    targets: dict[tuple[str, str], tuple[tuple[str, str], str]] = {}
    defined = _definitions(spans, text) if (rules.acronym_definition and text) else {}
    for ident, name in names.items():
        if name.acronym is None:
            continue
        choices: set[tuple[str, str]] = set()
        rule = "acronym_definition"
        for full in defined.get(ident, ()):
            if full in names:
                choices.add(top[full] if top[full] != ambiguous else full)
        if not choices and rules.acronym:
            rule = "acronym"
            for full in acronym_index.get((name.type, name.acronym), ()):
                if full != ident:
                    choices.add(top[full] if top[full] != ambiguous else full)
        if len(choices) == 1:
            own = top[ident] if ident in rule_of else None
            target = next(iter(choices))
            if own is not None and own != target:
                top[ident] = ambiguous  # "AP" as an acronym and as a short name of two different names
                continue
            targets[ident] = (target, rule)
    for ident, target in top.items():
        if ident in rule_of and target != ambiguous and ident not in targets:
            targets[ident] = (target, rule_of[ident])

    # follow links to the end: an acronym may point at a name that is itself a short form
    links: dict[tuple[str, str], Link] = {}
    for ident, (target, rule) in sorted(targets.items()):
        seen = {ident}
        while target in targets and target not in seen:
            seen.add(target)
            target = targets[target][0]
        if target == ident or target in targets:
            continue  # a cycle: leave these names apart
        links[ident] = Link(target[1], rule, names[ident].surface, names[target].surface)
    return links
