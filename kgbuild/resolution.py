"""Entity resolution: which names of the mentions a reader takes for the same entity.

Three layers, each deterministic and independent of the order mentions and documents come in:

1. **Each mention on its own** (``canonical_key``): titles before a person's name go ("President
   Blair" is "Blair"; "Mr Blair" and "Mrs Blair" keep their gender, so they are two people), and a
   place's other names go to its canonical one through the alias table ("U.S.", "America" -> "United
   States"; "Kenyan" -> "Kenya"; "Calif." -> "California").
2. **The names of one document together** (``resolve_document``): a short name joins the one full
   name of the same type in the document that it abbreviates: a person's surname or first name
   ("Blair" -> "Tony Blair"), a name without its middle name or with initials ("Gerald Ford" ->
   "Gerald R. Ford"), an organisation's or place's head word ("Heat" -> "Miami Heat"), an
   organisation's first words ("Goldman" -> "Goldman Sachs"), an acronym ("AP" -> "Associated
   Press"), and an acronym defined in parentheses right after its name. When two full names would
   do ("Brown" with Gordon Brown and Chris Brown), the short name stays on its own.
3. **Across documents** (``cross_document_links`` with ``ResolutionRules.cross_document``): a surname or
   an acronym of three letters or more that its own document left on its own ("Blair" in an article that
   never says "Tony Blair") joins the one full name of its type, in the whole input, that it abbreviates,
   when the two documents have another, not too common, entity in common; with two full names ("Gordon
   Brown" and "Chris Brown" in other articles) it stays on its own. Only full names are joined to, so no
   entity grows by a chain of short names. This layer reads only a summary of each document's own
   resolution (``DocumentResolution.summary``): ``resolve_names`` builds the summaries of its input, and
   ingest keeps them per document and finds the links over its whole index after each run
   (``kgbuild.corpus_links``), then hands them back as ``external_links``: one implementation for both.

Every rule can be switched off (``ResolutionRules``), and every merge says which rule made it and on
what evidence (``Merge``). Cost is linear: candidates are found by exact lookups of a name's words
(its prefixes, suffixes, initials), never by comparing all pairs.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from itertools import product
from typing import Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

from kgbuild.names import (
    FUNCTION_WORDS, GENERATIONS, acronym_letters, fold_key, fullness, gendered_key, hyphen_joins, name_words,
    normalize_name, split_gender, strip_person_titles,
)
from kgbuild.types import Mention

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
# words before a place's head that make it another place: "South Sudan" is not "Sudan", "New York" not "York",
# "Camp Caves" not the town of The Caves, "Gmina Wielbark" (the district) not the village of Wielbark
_PLACE_QUALIFIERS = frozenset(
    {"north", "south", "east", "west", "northern", "southern", "eastern", "western", "central", "northeast",
     "northwest", "southeast", "southwest", "new", "old", "upper", "lower", "greater", "little", "great",
     "mount", "mt", "monte", "mont", "lake", "lago", "lac", "cape", "cabo", "port", "puerto", "porto", "fort",
     "camp", "county", "gmina", "bad", "saint", "st", "sankt", "san", "santa", "los", "las", "el", "la", "le"}
)
_DEFINITION_GAP = re.compile(r"\s*[(\[]\s*")
# words after an organisation's name that say what kind of organisation it is and nothing more: "Interscope
# Records" is Interscope, "Butler University" Butler. Not for places: "Albany County", "Maui County", "Kermanshah
# Province" and "Guayas River" are other places than Albany, Maui, Kermanshah and Guayas (the dev set's gold); nor
# "Group", "Holdings", "Television", "Music": "Beijing Jinyu Group" and "Warner Bros. Television" are companies
# of their own.
_DESIGNATORS = frozenset({"records", "university", "college", "hotel", "club", "fc", "band", "airlines", "airways"})

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
    "designator": "name without its designator",
    "short_name": "short name",
    "acronym": "acronym",
    "acronym_definition": "acronym defined in parentheses",
    "cross_document": "across documents",
}


_RULE_ORDER = tuple(RULE_TEXT)


@dataclass(frozen=True)
class ResolutionRules:
    """Which resolution rules run; each can be switched off on its own (the benchmark's ablation).

    >>> ResolutionRules(surname=False).enabled("surname")
    False
    """

    accents: bool = True  # "Durán" is "Duran" (Latin letters; every type but values)
    titles: bool = True  # "Mr Blair", "President Blair" -> "Blair" (person types; "Mr" and "Mrs" keep a gender)
    aliases: bool = True  # "U.S.", "America" -> "United States", "Calif." -> "California" (place types)
    demonyms: bool = True  # "Kenyan" -> "Kenya", "British" -> "United Kingdom" (place types)
    surname: bool = True  # "Blair" -> "Tony Blair"
    first_name: bool = True  # "Tony" -> "Tony Blair"
    name_variant: bool = True  # "Gerald Ford" -> "Gerald R. Ford", "J. Smith" -> "John Smith"
    head_word: bool = True  # "Heat" -> "Miami Heat" (organisations and places)
    designator: bool = True  # "Interscope" -> "Interscope Records", "Butler" -> "Butler University" (organisations)
    short_name: bool = False  # "Goldman" -> "Goldman Sachs" (organisations); off: "Samsung" is not "Samsung Electronics"
    acronym: bool = True  # "AP" -> "Associated Press", when the document has one such name
    acronym_definition: bool = True  # "Associated Press (AP)": needs the document's text
    cross_document: bool = True  # "Blair", "NATO" alone in a document -> the one full name of the whole input
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
    rule: str | None = None  # "titles", "accents", "aliases" or "demonyms"
    name: str | None = None  # the canonical name an alias led to ("United States")
    gender: str | None = None  # "m" or "f" where a title says so ("Mrs Obama", "Sir Elton John")
    known: bool = False  # the alias table knows this place: it is a name in its own right, not a short form


class AliasLookup(Protocol):
    def find(self, surface: str) -> tuple[str, bool] | None: ...


def canonical_key(entity_type: str, surface: str, rules: ResolutionRules, aliases: AliasLookup | None) -> CanonicalName:
    """The key one mention has on its own: ``canonical_key("LOCATION", "U.S.", ...).key == "united states"``.

    A person's titles go ("President Obama" -> "obama"), but a gendered one before a lone surname stays in
    the key as a mark ("Mr Obama" -> "obama (m)", "Mrs Obama" -> "obama (f)"), so two people of one name meet
    only through a full name that fits them.
    """
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
                return CanonicalName(canonical_key_, rule if canonical_key_ != _folded(key, rules) else None, canonical,
                                     known=True)
    rule = gender = None
    if family == PERSON and rules.titles:
        bare, gender = strip_person_titles(key)
        if bare != key:
            if gender is not None and " " not in bare:
                key = gendered_key(bare, gender)  # not "titles": the title's gender is kept
            else:
                key, rule = bare, "titles"
    folded = _folded(key, rules)
    if folded != key and rule is None:
        rule = "accents"
    return CanonicalName(folded, rule, None, gender)


def _folded(key: str, rules: ResolutionRules) -> str:
    return fold_key(key) if rules.accents else key


# -- one document ------------------------------------------------------------------------------------


class NameSpan(NamedTuple):
    """One mention span of a document after the type vote and the per-mention rules."""

    start: int
    end: int
    type: str
    surface: str
    key: str
    known: bool = False  # the alias table knows this place: it is a name in its own right, not a short form
    gender: str | None = None  # from a gendered title


class _Static(NamedTuple):
    """What a (type, key) is on its own, the same in every document: worked out once per run."""

    family: str
    words: tuple[str, ...]
    generation: str | None
    letters: int
    gender: str | None  # the gender mark of the key ("obama (f)")
    content: int  # words that are not function words
    index_keys: tuple[tuple, ...]  # where short names of it look it up (its first and last words, ...)
    lookup_keys: tuple[tuple, ...]  # where it looks up the full names it may abbreviate
    acronym_keys: tuple[tuple[str, str], ...]  # (type, acronym) for each acronym it may have


class NameBook:
    """The per-(type, key) facts that do not depend on the document, shared by every document of a run."""

    __slots__ = ("rules", "statics", "_initialisms")

    def __init__(self, rules: ResolutionRules) -> None:
        self.rules = rules
        self.statics: dict[tuple[str, str], _Static] = {}  # (type, key) -> its facts
        self._initialisms: dict[tuple[str, ...], frozenset[str]] = {}

    def static(self, entity_type: str, key: str) -> _Static:
        ident = (entity_type, key)
        found = self.statics.get(ident)
        if found is None:
            family = self.rules.family(entity_type)
            bare, gender = split_gender(key)
            words = name_words(bare)
            generation = None
            if family == PERSON and len(words) >= 2 and words[-1] in GENERATIONS:
                words, generation = words[:-1], words[-1]
            letters = sum(map(str.isalnum, bare))
            content = sum(w not in FUNCTION_WORDS for w in words)
            first_last = ((entity_type, "first-last", words[0][0], words[-1]),) \
                if family == PERSON and len(words) >= 2 else ()
            index_keys = tuple(
                (entity_type, "affix", part) for i in range(1, len(words)) for part in (words[:i], words[i:])
            ) + first_last
            acronym_keys = tuple((entity_type, a) for a in self.initialisms(words)) \
                if self.rules.acronym and content >= 2 else ()
            found = self.statics[ident] = _Static(family, words, generation, letters, gender, content, index_keys,
                                                  ((entity_type, "affix", words), *first_last), acronym_keys)
        return found

    def initialisms(self, words: tuple[str, ...]) -> frozenset[str]:
        found = self._initialisms.get(words)
        if found is None:
            found = self._initialisms[words] = frozenset(a for a in initialisms(words) if len(a) >= 2)
        return found


class _Name:
    """A name of one document: its static facts and what the document's surface forms add."""

    __slots__ = ("type", "key", "static", "family", "words", "generation", "letters", "content", "surface",
                 "acronym", "known", "gender", "joins")

    def __init__(self, entity_type: str, key: str, static: _Static, surface: str, acronym: str | None, known: bool,
                 gender: str | None, joins: frozenset[int]) -> None:
        self.type, self.key, self.static = entity_type, key, static
        self.family, self.words, self.generation, self.letters = static.family, static.words, static.generation, \
            static.letters
        self.content = static.content
        self.surface, self.acronym, self.known, self.gender, self.joins = surface, acronym, known, gender, joins

    @property
    def ident(self) -> tuple[str, str]:
        return self.type, self.key

    def stands_for_another_document(self) -> bool:
        """A short form that a full name of another document may explain: a person's surname alone (with or
        without a title: "Blair", "Mr Blair"), or an acronym of three letters or more ("NATO").

        First names and head words are left out: among 500 unrelated Wikipedia articles (the dev set), 15 of
        the 17 first names ("Andrew" -> "Andrew Wyeth") and 10 of the 13 head words ("State" -> "Sangamon
        State") that the one fitting full name of another article would have taken were someone else; so were
        the two-letter acronyms ("CW" -> "CNN Worldwide").
        """
        if self.family == VALUE:
            return False
        if self.acronym is not None:
            return len(self.acronym) >= 3
        return self.family == PERSON and len(self.words) == 1


@dataclass(frozen=True, slots=True)
class Link:
    """A short name of a document and the full name it resolved to."""

    root_key: str
    rule: str
    alias: str  # the short name's surface form
    name: str  # the full name's surface form


_NO_JOINS: frozenset[int] = frozenset()


def _make_name(entity_type: str, key: str, static: _Static, spans: list[NameSpan]) -> _Name:
    words = static.words
    if len(spans) == 1:  # most names of a document: no tally to keep
        span = spans[0]
        surface = span.surface
        acronym = acronym_letters(surface)
        if acronym is not None and len(words) > 1 and acronym != "".join(words):
            acronym = None
        return _Name(entity_type, key, static, surface, acronym, span.known, static.gender or span.gender,
                     hyphen_joins(surface) if len(words) > 1 else _NO_JOINS)
    else:
        counts: dict[str, int] = {}
        for span in spans:
            counts[span.surface] = counts.get(span.surface, 0) + 1
        surface = min(counts, key=lambda s: (fullness(s), -counts[s], -len(s), s))  # as the entity is named
        acronym = next((a for a in sorted(acronym_letters(s) or "" for s in counts) if a), None)
        known = any(span.known for span in spans)
        genders = {span.gender for span in spans} - {None}
        joins = frozenset().union(*map(hyphen_joins, counts)) if len(words) > 1 else _NO_JOINS
    if acronym is not None and len(words) > 1 and acronym != "".join(words):
        acronym = None  # "U.S. Steel": an acronym inside a longer name is not the whole name
    gender = static.gender or (genders.pop() if len(genders) == 1 else None)
    return _Name(entity_type, key, static, surface, acronym, known, gender, joins)


def _initial_of(short: str, full: str) -> bool:
    return short == full or (len(short) == 1 and full.startswith(short))


def _person_rule(short: _Name, full: _Name, rules: ResolutionRules) -> str | None:
    """The rule by which a person's name ``short`` abbreviates ``full``, if any."""
    if short.generation and short.generation != full.generation:
        return None
    if full.generation and not short.generation and len(short.words) > 1:
        return None  # "Paul Desmarais" may be the father of "Paul Desmarais Jr."
    if short.gender is not None and full.gender is not None and short.gender != full.gender:
        return None  # "Mrs Obama" is not "Mr Barack Obama"
    s, f = short.words, full.words
    if len(f) < 2:
        return None
    if len(s) < len(f):
        if rules.surname and f[-len(s):] == s and len(f) - len(s) not in full.joins:
            return "surname"  # but "Lyon" is not "Elizabeth Bowes-Lyon"
        if rules.first_name and f[: len(s)] == s and len(s) not in full.joins:
            return "first_name"  # nor "Jean" "Jean-Pierre Raffarin"
    if rules.name_variant and len(s) >= 2 and s[-1] == f[-1] and _initial_of(s[0], f[0]):
        if len(s) == 2 or (len(s) == len(f) and all(_initial_of(a, b) for a, b in zip(s[1:-1], f[1:-1]))):
            return "name_variant" if s != f else None
    return None


def _other_rule(short: _Name, full: _Name, rules: ResolutionRules) -> str | None:
    """Head words and short names of organisations and places. Never across a function word: the "Brandenburg"
    of "Margraviate of Brandenburg" and the "Catholic Church" of "Catholic Church in the Maldives" are other
    entities; nor across a hyphen ("Prussia" is not "Brandenburg-Prussia"); nor for an acronym ("CNN" is not
    "CNN Worldwide", nor "BBC" "Children's BBC")."""
    s, f = short.words, full.words
    if len(s) >= len(f) or short.acronym is not None:
        return None
    if rules.head_word and f[-len(s):] == s and f[-len(s) - 1] not in FUNCTION_WORDS \
            and len(f) - len(s) not in full.joins:
        if short.family == PLACE and (short.known or _PLACE_QUALIFIERS & set(f[: -len(s)])):
            return None
        return "head_word"
    if rules.designator and short.family == ORGANIZATION and f[: len(s)] == s and len(s) not in full.joins \
            and all(w in _DESIGNATORS for w in f[len(s):]):
        return "designator"
    if rules.short_name and short.family == ORGANIZATION and f[: len(s)] == s and f[len(s)] not in FUNCTION_WORDS \
            and len(s) not in full.joins:
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


class CrossLink(NamedTuple):
    """A short name's link to the full name of another document: the full name's key and its surface form."""

    root_key: str
    name: str


@dataclass(slots=True)
class DocumentResolution:
    """One document's names, the links among them, and the short names that two full names fit."""

    names: dict[tuple[str, str], _Name]
    links: dict[tuple[str, str], Link]
    ambiguous: set[tuple[str, str]] = field(default_factory=set)

    def root(self, ident: tuple[str, str]) -> tuple[str, str]:
        link = self.links.get(ident)
        return (ident[0], link.root_key) if link is not None else ident

    def summary(self) -> list[list]:
        """What ``cross_document_links`` reads of this document, as JSON-ready lists (one per name): type, key,
        surface, acronym, gender, hyphen positions, known place, the key of its root (None: its own), ambiguous.
        Ingest keeps it per document, so that links across documents never need the document again."""
        links, ambiguous = self.links, self.ambiguous
        out = []
        for ident, name in sorted(self.names.items()):
            link = links.get(ident)
            out.append([name.type, name.key, name.surface, name.acronym, name.gender, sorted(name.joins),
                        int(name.known), None if link is None else link.root_key, int(ident in ambiguous)])
        return out

    @classmethod
    def from_summary(cls, summary: Sequence[Sequence], book: NameBook) -> DocumentResolution:
        """The document as ``summary()`` kept it: enough for ``cross_document_links`` (links carry only roots)."""
        names: dict[tuple[str, str], _Name] = {}
        links: dict[tuple[str, str], Link] = {}
        ambiguous: set[tuple[str, str]] = set()
        for entity_type, key, surface, acronym, gender, joins, known, root_key, is_ambiguous in summary:
            ident = (entity_type, key)
            names[ident] = _Name(entity_type, key, book.static(entity_type, key), surface, acronym, bool(known), gender,
                                 frozenset(joins) if joins else _NO_JOINS)
            if root_key is not None:
                links[ident] = Link(root_key, "", "", "")
            if is_ambiguous:
                ambiguous.add(ident)
        return cls(names, links, ambiguous)


_AMBIGUOUS = ("", "")


def resolve_document(
    doc_id: str, spans: Iterable[NameSpan], rules: ResolutionRules, text: str | None = None
) -> dict[tuple[str, str], Link]:
    """The short names of one document and the full names they resolve to, by (type, key).

    A name that no rule links, or that two full names would fit, is not in the result. ``text`` (the
    document's text) lets an acronym defined in parentheses after its name join it.
    """
    return _resolve_document(spans, rules, text, NameBook(rules)).links


def _resolve_document(spans: Iterable[NameSpan], rules: ResolutionRules, text: str | None,
                      book: NameBook) -> DocumentResolution:
    spans = list(spans)
    by_name: dict[tuple[str, str], list[NameSpan]] = {}
    for span in spans:
        by_name.setdefault((span.type, span.key), []).append(span)
    names: dict[tuple[str, str], _Name] = {}
    statics = book.statics
    for ident, group in by_name.items():
        static = statics.get(ident) or book.static(*ident)
        if static.family != VALUE:
            names[ident] = _make_name(ident[0], ident[1], static, group)
    if not names:
        return DocumentResolution(names, {})

    # the full names, found by the words a short name would share with them
    index: dict[tuple, list[tuple[str, str]]] = {}
    acronym_index: dict[tuple[str, str], list[tuple[str, str]]] = {}
    regnal: set[tuple[str, tuple[str, ...]]] = set()  # "Carol II": a plain "Carol" may be this Carol too
    gendered: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (type, "obama") -> "obama (m)", "obama (f)"
    for ident, name in names.items():
        static = name.static
        _file_under(index, static.index_keys, ident)
        if static.acronym_keys and name.acronym is None:
            _file_under(acronym_index, static.acronym_keys, ident)
        if name.family == PERSON and len(name.words) == 1:
            if name.generation:
                regnal.add((name.type, name.words))
            bare, gender = split_gender(name.key)
            if gender is not None:
                gendered.setdefault((name.type, bare), []).append(ident)

    # each name's top (a full name inside no other), or _AMBIGUOUS; the fullest first, so that a name's
    # containers are settled before it
    top: dict[tuple[str, str], tuple[str, str]] = {}
    rule_of: dict[tuple[str, str], str] = {}
    for _, ident in sorted([(-name.letters, ident) for ident, name in names.items()]):
        name = names[ident]
        tops: set[tuple[str, str]] = set()
        rules_found: list[str] = []
        for lookup in name.static.lookup_keys:
            for candidate in index.get(lookup, ()):
                if candidate == ident:
                    continue
                rule = _containment_rule(name, names[candidate], rules)
                if rule is None:
                    continue
                target = top[candidate]
                if name.gender is not None and target != _AMBIGUOUS and names[target].gender not in (None, name.gender):
                    continue
                tops.add(target)
                rules_found.append(rule)
        if tops and not name.generation and (name.type, name.words) in regnal:
            tops.add(_AMBIGUOUS)  # "Carol" beside "Carol II" and "Michael I. Carol": which Carol is unclear
        if not tops:
            top[ident] = ident
        elif len(tops) == 1 and _AMBIGUOUS not in tops:
            top[ident] = next(iter(tops))
            rule_of[ident] = min(rules_found, key=_RULE_ORDER.index)
        else:
            top[ident] = _AMBIGUOUS

    if gendered:
        _settle_genders(names, gendered, top, rule_of)

    # acronyms: defined in parentheses, or the one name of the document that they abbreviate
    targets: dict[tuple[str, str], tuple[tuple[str, str], str]] = {}
    ambiguous = {ident for ident, target in top.items() if target == _AMBIGUOUS}
    defined = _definitions(spans, text) if (rules.acronym_definition and text) else {}
    for ident, name in names.items():
        if name.acronym is None:
            continue
        choices: set[tuple[str, str]] = set()
        rule = "acronym_definition"
        for full in defined.get(ident, ()):
            if full in names:
                choices.add(top[full] if top[full] != _AMBIGUOUS else full)
        if not choices and rules.acronym:
            rule = "acronym"
            for full in acronym_index.get((name.type, name.acronym), ()):
                if full != ident:
                    choices.add(top[full] if top[full] != _AMBIGUOUS else full)
        if len(choices) > 1:
            ambiguous.add(ident)
        elif len(choices) == 1:
            own = top[ident] if ident in rule_of else None
            target = next(iter(choices))
            if own is not None and own != target:
                top[ident] = _AMBIGUOUS  # "AP" as an acronym and as a short name of two different names
                ambiguous.add(ident)
                continue
            targets[ident] = (target, rule)
    for ident, target in top.items():
        if ident in rule_of and target != _AMBIGUOUS and ident not in targets:
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
    return DocumentResolution(names, links, ambiguous)


def _file_under(index: dict, lookups: tuple[tuple, ...], ident: tuple[str, str]) -> None:
    for lookup in lookups:
        found = index.get(lookup)
        if found is None:
            index[lookup] = [ident]
        else:
            found.append(ident)


def _settle_genders(
    names: dict[tuple[str, str], _Name],
    gendered: dict[tuple[str, str], list[tuple[str, str]]],
    top: dict[tuple[str, str], tuple[str, str]],
    rule_of: dict[tuple[str, str], str],
) -> None:
    """"Mr Obama" and "Mrs Obama" never meet: when both would join one full name whose gender the document
    does not give, neither joins it. A plain "Obama" left on its own joins the one gendered form of it that
    is left on its own too ("Obama" and "Mr Obama" with no Barack Obama or two of them)."""
    claims: dict[tuple[str, str], set[str]] = {}
    for variants in gendered.values():
        for ident in variants:
            if ident in rule_of:
                claims.setdefault(top[ident], set()).add(names[ident].gender)  # type: ignore[arg-type]
    for variants in gendered.values():
        for ident in variants:
            target = top[ident]
            if ident in rule_of and len(claims[target]) > 1 and names[target].gender is None:
                top[ident] = _AMBIGUOUS
                del rule_of[ident]
    for (entity_type, bare), variants in gendered.items():
        plain = (entity_type, bare)
        if len(variants) == 1 and plain in names and plain not in rule_of and variants[0] not in rule_of:
            top[plain] = variants[0]
            rule_of[plain] = "titles"


# -- across documents ----------------------------------------------------------------------------------


def _one_gender(genders: set[str] | None) -> str | None:
    return next(iter(genders)) if genders and len(genders) == 1 else None


def cross_document_links(docs: Mapping[str, DocumentResolution], rules: ResolutionRules,
                          book: NameBook) -> dict[str, dict[tuple[str, str], CrossLink]]:
    """Each surname or acronym that its document left on its own, joined to the one full name of the whole input
    that it abbreviates: doc id -> (type, key) -> ``CrossLink``. Reads only what ``DocumentResolution.summary``
    keeps, so ingest runs it over the summaries of a whole index (``kgbuild.corpus_links``); ``apply_cross_links``
    adds the links to a document.

    A join needs evidence beyond the name: the short name's document and a document that names the full
    name share another entity ("Blair" beside "Labour" here, "Tony Blair" beside "Labour" there) that is
    in at most a tenth of the documents (or in three). Never to another short name (no chains), never to
    an entity its own document holds (that document kept them apart), never two entities of one document
    to the same full name (the document kept those apart too), and never "Mr Obama" here and "Mrs Obama"
    there to one full name whose gender no document gives.
    """

    by_word: dict[tuple[str, str], dict[str, set[str]]] = {}  # (type, last word) -> full key -> roots
    by_letters: dict[tuple[str, str], dict[str, set[str]]] = {}  # (type, initialism) -> full key -> roots
    joins_of: dict[tuple[str, str], frozenset[int]] = {}  # a full name's hyphens, in any document
    genders: dict[tuple[str, str], set[str]] = {}  # root -> the genders its documents give it ("Mr Obama" in it)
    surfaces: dict[tuple[str, str], str] = {}  # full root -> its fullest surface form in any document
    docs_of: dict[tuple[str, str], set[str]] = {}  # root -> the documents that hold it
    loose: list[tuple[str, _Name]] = []

    def enter(table: dict[tuple[str, str], dict[str, set[str]]], lookup: tuple[str, str], key: str, root: str) -> None:
        fulls_there = table.get(lookup)
        if fulls_there is None:
            table[lookup] = {key: {root}}
            return
        roots = fulls_there.get(key)
        if roots is None:
            fulls_there[key] = {root}
        else:
            roots.add(root)

    for doc_id, doc in docs.items():
        links, ambiguous = doc.links, doc.ambiguous
        for ident, name in doc.names.items():
            if ident not in links and ident not in ambiguous and name.stands_for_another_document():
                loose.append((doc_id, name))
    if not loose:
        return {}
    wanted_words = {(short.type, short.words[0]) for _, short in loose if short.acronym is None}
    wanted_letters = {(short.type, short.acronym) for _, short in loose if short.acronym is not None}

    for doc_id, doc in docs.items():
        links = doc.links
        for ident, name in doc.names.items():
            link = links.get(ident)
            root = ident if link is None else (ident[0], link.root_key)
            holders = docs_of.get(root)
            if holders is None:
                docs_of[root] = {doc_id}
            else:
                holders.add(doc_id)
            full = len(name.words) > 1 and name.acronym is None
            if full:
                lookup = (ident[0], name.words[-1])
                if lookup in wanted_words:
                    enter(by_word, lookup, ident[1], root[1])
                for lookup in name.static.acronym_keys:
                    if lookup in wanted_letters and len(lookup[1]) >= 3:
                        enter(by_letters, lookup, ident[1], root[1])
                if name.joins:
                    joins_of[ident] = joins_of.get(ident, frozenset()) | name.joins
                if link is None:
                    best = surfaces.get(ident)
                    if best is None or best != name.surface and (fullness(name.surface), name.surface) < (
                            fullness(best), best):
                        surfaces[ident] = name.surface
            if name.gender is not None and (full or link is not None):
                genders.setdefault(root, set()).add(name.gender)

    surname_rules = replace(rules, first_name=False)
    fulls: dict[tuple[str, str], _Name] = {}

    def full_name(entity_type: str, key: str) -> _Name:
        found = fulls.get((entity_type, key))
        if found is None:  # as every document sees it: its hyphens from all of them, no gender of its own
            static = book.static(entity_type, key)
            found = fulls[(entity_type, key)] = _Name(entity_type, key, static, key, None, False, None,
                                                      joins_of.get((entity_type, key), frozenset()))
        return found

    def candidates(short: _Name) -> set[str]:
        found: set[str] = set()
        if short.acronym is None:
            fitting = (roots for full_key, roots in by_word.get((short.type, short.words[0]), {}).items()
                       if _containment_rule(short, full_name(short.type, full_key), surname_rules) is not None)
        else:
            fitting = iter(by_letters.get((short.type, short.acronym), {}).values() if rules.acronym else ())
        for roots in fitting:
            for root in roots:
                if (short.type, root) in surfaces and (
                        short.gender is None or _one_gender(genders.get((short.type, root))) in (None, short.gender)):
                    found.add(root)
            if len(found) > 1:
                break
        return found

    decided: dict[tuple, str | None] = {}
    by_doc: dict[str, list[tuple[_Name, tuple[str, str]]]] = {}
    for doc_id, short in loose:
        memo = (short.ident, short.acronym)
        if memo not in decided:
            found = candidates(short)
            decided[memo] = next(iter(found)) if len(found) == 1 else None
        root_key = decided[memo]
        if root_key is not None:
            by_doc.setdefault(doc_id, []).append((short, (short.type, root_key)))

    # the guards, then the evidence: an entity in common that is not in every other document (the United
    # States is in a third of the dev set's articles, and says nothing about whose "Blake" this is)
    rare = max(3, len(docs) // 10)
    claims: dict[tuple[str, str], set[str]] = {}
    kept: list[tuple[str, _Name, tuple[str, str]]] = []
    for doc_id, pairs in by_doc.items():
        doc = docs[doc_id]
        own = {doc.root(ident) for ident in doc.names}
        counts: dict[tuple[str, str], int] = {}
        for _, root in pairs:
            counts[root] = counts.get(root, 0) + 1
        for short, root in pairs:
            if root in own or counts[root] > 1:
                continue
            where = docs_of[root]
            if not any(len(docs_of[other]) <= rare and not docs_of[other].isdisjoint(where)
                       for other in own if other != short.ident):
                continue  # nothing else in common: "White" of an architects' firm is not the footballer Danny White
            kept.append((doc_id, short, root))
            if short.gender is not None:
                claims.setdefault(root, set()).add(short.gender)
    found: dict[str, dict[tuple[str, str], CrossLink]] = {}
    for doc_id, short, root in kept:
        if short.gender is not None and len(claims[root]) > 1 and _one_gender(genders.get(root)) is None:
            continue  # "Mr Obama" here and "Mrs Obama" there, and only one Obama with a first name
        found.setdefault(doc_id, {})[short.ident] = CrossLink(root[1], surfaces[root])
    return found


def apply_cross_links(doc: DocumentResolution, links: Mapping[tuple[str, str], CrossLink]) -> dict[tuple[str, str], CrossLink]:
    """Add links across documents to one document's own: the short name joins the full name, and the names of
    the document that had joined the short name follow it. A link for a name the document does not leave on its
    own is not applied; returns those applied (all of them, for the links ``cross_document_links`` found)."""
    applied: dict[tuple[str, str], CrossLink] = {}
    for ident, cross in sorted(links.items()):
        name = doc.names.get(ident)
        if name is None or ident in doc.links or ident in doc.ambiguous or not name.stands_for_another_document():
            continue
        for member, link in list(doc.links.items()):
            if member[0] == ident[0] and link.root_key == ident[1]:
                doc.links[member] = Link(cross.root_key, link.rule, link.alias, link.name)
        applied[ident] = cross
    for ident, cross in applied.items():
        doc.links[ident] = Link(cross.root_key, "cross_document", doc.names[ident].surface, cross.name)
    return applied


# -- all mentions -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class ResolvedNames:
    """What ``resolve_names`` found: each span's type, each (type, surface)'s canonical name, and per
    document the links of its names (by (type, key)) to the key of the entity they belong to."""

    span_type: dict[tuple[str, int, int], str]  # (doc id, start, end) -> the type that won the vote
    canonical: dict[tuple[str, str], CanonicalName]  # (type, surface) -> its name on its own
    links: dict[str, dict[tuple[str, str], Link]]  # doc id -> (type, key) -> link; a name not linked is its own
    # doc id -> DocumentResolution.summary(), before any link across documents (when asked for)
    summaries: dict[str, list[list]] = field(default_factory=dict)
    cross_links: dict[str, dict[tuple[str, str], CrossLink]] = field(default_factory=dict)  # applied, by doc id


def resolve_names(
    mentions: Sequence[Mention],
    rules: ResolutionRules,
    aliases: AliasLookup | None,
    texts: Mapping[str, str] | None = None,
    *,
    external_links: Mapping[str, Mapping[tuple[str, str], CrossLink]] | None = None,
    summaries: bool = False,
) -> ResolvedNames:
    """The three layers over a list of mentions: the type vote at each span (confidence-weighted), each
    mention's canonical name, each document's links, and the links across documents when
    ``rules.cross_document`` is on and the mentions come from several documents.

    ``external_links`` (doc id -> links) are links across documents found elsewhere (ingest finds them over
    the summaries of its whole index, ``kgbuild.corpus_links``), added to each document's own as the third
    layer would add them; ``summaries`` asks for each document's summary (``DocumentResolution.summary``).
    """
    with collector_paused():
        return _resolve_names(mentions, rules, aliases, texts, external_links, summaries)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block (or, as ``@collector_paused()``, a function), then back as
    it was. Resolution builds millions of small objects and frees none of them in cycles; the collector would
    walk the whole growing heap again and again (a quarter of the time at a million mentions)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _resolve_names(
    mentions: Sequence[Mention],
    rules: ResolutionRules,
    aliases: AliasLookup | None,
    texts: Mapping[str, str] | None,
    external_links: Mapping[str, Mapping[tuple[str, str], CrossLink]] | None = None,
    want_summaries: bool = False,
) -> ResolvedNames:
    votes: dict[tuple[str, int, int], dict[str, float]] = {}
    for m in mentions:
        span = (m.doc_id, m.start, m.end)
        tally = votes.get(span)
        if tally is None:
            votes[span] = {m.label: m.confidence}
        else:
            tally[m.label] = tally.get(m.label, 0.0) + m.confidence
    span_type = {
        span: next(iter(tally)) if len(tally) == 1 else min(tally, key=lambda label: (-tally[label], label))
        for span, tally in votes.items()
    }

    canonical: dict[tuple[str, str], CanonicalName] = {}
    doc_spans: dict[str, dict[tuple[int, int], NameSpan]] = {}
    for m in mentions:
        winning_type = span_type[(m.doc_id, m.start, m.end)]
        name = canonical.get((winning_type, m.text))
        if name is None:
            name = canonical[(winning_type, m.text)] = canonical_key(winning_type, m.text, rules, aliases)
        if m.label == winning_type:
            spans = doc_spans.get(m.doc_id)
            if spans is None:
                spans = doc_spans[m.doc_id] = {}
            if (m.start, m.end) not in spans:
                spans[(m.start, m.end)] = NameSpan(m.start, m.end, winning_type, m.text, name.key, name.known,
                                                   name.gender)
    book = NameBook(rules)
    docs = {
        doc_id: _resolve_document(spans.values(), rules, texts.get(doc_id) if texts else None, book)
        for doc_id, spans in doc_spans.items()
    }
    summaries = {doc_id: doc.summary() for doc_id, doc in docs.items()} if want_summaries else {}
    found = cross_document_links(docs, rules, book) if rules.cross_document and len(docs) > 1 else {}
    if external_links:
        found = {**found, **{doc_id: dict(links) for doc_id, links in external_links.items() if links}}
    applied = {}
    for doc_id, links in found.items():
        doc = docs.get(doc_id)
        if doc is not None:
            applied[doc_id] = apply_cross_links(doc, links)
    return ResolvedNames(span_type, canonical, {doc_id: doc.links for doc_id, doc in docs.items()}, summaries, applied)
