"""What a name is made of: its matching key, its words, its titles, whether it is an acronym.

Pure string functions shared by reconciliation (``kgbuild.reconcile``) and entity resolution
(``kgbuild.resolution``); nothing here knows about documents or types.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

CORPORATE_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "ltd", "limited", "corp", "corporation", "llc", "plc", "gmbh",
        "ag", "sa", "nv", "bv", "oyj", "spa", "pty", "llp", "kk", "co",
    }
)
# Honorifics and offices that stand before a person's name; "Prime Minister" is two words, so titles are
# matched as word sequences, longest first. A title alone ("the President") is left as it is.
TITLES = tuple(
    sorted(
        (
            tuple(t.split())
            for t in (
                "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "dame", "lord", "lady",
                "president", "vice president", "prime minister", "deputy prime minister", "chancellor",
                "minister", "foreign minister", "finance minister", "secretary", "secretary of state",
                "sen", "senator", "rep", "representative", "congressman", "congresswoman", "gov", "governor",
                "mayor", "judge", "justice", "chief justice", "gen", "general", "col", "colonel", "capt",
                "captain", "lt", "lieutenant", "sgt", "sergeant", "maj", "major", "adm", "admiral", "cmdr",
                "commander", "rev", "reverend", "fr", "father", "pope", "rabbi", "imam", "sheikh", "king",
                "queen", "prince", "princess", "emperor", "empress", "chairman", "chairwoman", "ceo",
                "coach", "herr", "frau", "mme", "mlle", "mister", "madam", "madame", "monsieur", "senor", "señor",
                "senora", "señora", "signor", "signora",
            )
        ),
        key=lambda words: (-len(words), words),
    )
)
_TITLES_BY_FIRST_WORD: dict[str, tuple[tuple[str, ...], ...]] = {}
for _title in TITLES:  # in TITLES' order, so the longest title that fits is still tried first
    _TITLES_BY_FIRST_WORD[_title[0]] = (*_TITLES_BY_FIRST_WORD.get(_title[0], ()), _title)
# Honorifics that say whether the person is a man or a woman: "Mr Obama" and "Mrs Obama" are two people.
# Offices ("President") and royal titles ("Queen", before a given name) say nothing that keeps two people of one
# surname apart, so they are stripped without a gender.
MALE_TITLES = frozenset({"mr", "mister", "sir", "lord", "herr", "monsieur", "senor", "señor", "signor", "congressman"})
FEMALE_TITLES = frozenset({"mrs", "ms", "miss", "dame", "lady", "madam", "madame", "mme", "mlle", "frau", "senora",
                           "señora", "signora", "congresswoman"})
_GENDER_MARKS = {"m": " (m)", "f": " (f)"}
# generational suffixes and regnal numbers: "Paul Desmarais Jr." is not "Paul Desmarais", nor "Elizabeth II" any Elizabeth
GENERATIONS = frozenset({"jr", "sr", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii",
                         "xiv", "xv", "xvi"})
# words an acronym may leave out ("Council on Foreign Relations" -> CFR) or keep ("League of Legends" -> LoL)
FUNCTION_WORDS = frozenset(
    {"of", "the", "and", "for", "on", "in", "to", "at", "by", "a", "an", "de", "del", "der", "des", "di", "du",
     "da", "la", "le", "les", "el", "y", "e", "et", "und", "für"}
)
_APOSTROPHES = re.compile(r"['’`´]")
_POSSESSIVE = re.compile(r"['’]s?$")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_WHITESPACE = re.compile(r"\s+")
_ACRONYM_DROPS = re.compile(r"[.\s&'’-]")


class _Separators(dict):
    """``str.translate`` table: punctuation (but the full stop) and control characters become spaces, every
    other character stays; filled in as characters are first met, so each is classified once."""

    def __missing__(self, code: int) -> int | str:
        ch = chr(code)
        category = unicodedata.category(ch)
        value: int | str = " " if (category[0] == "P" and ch != ".") or category in ("Cc", "Cf") else code
        self[code] = value
        return value


_SEPARATORS = _Separators()
_LONE_DOT = re.compile(r"(?<!\d)\.|\.(?!\d)")  # a full stop that is not a decimal point ("3.5")


@lru_cache(maxsize=1 << 18)
def normalize_name(text: str) -> str:
    """The matching key of a surface form: ``normalize_name("APPLE, Inc.") == "apple"``."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = _APOSTROPHES.sub("", folded)
    folded = _DIGIT_COMMA.sub("", folded)
    folded = folded.translate(_SEPARATORS)
    if "." in folded:
        folded = _LONE_DOT.sub(" ", folded)
    words = folded.split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in CORPORATE_SUFFIXES:
        words = words[:-1]
    key = " ".join(words)
    return key or _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def strip_titles(key: str) -> str:
    """A normalised person name without the titles before it: ``strip_titles("prime minister tony blair")
    == "tony blair"``; a name that is only a title stays as it is."""
    return _strip_titles(key)[0]


def strip_person_titles(key: str) -> tuple[str, str | None]:
    """A normalised person name without its titles, and the gender a removed honorific gives (``"m"``,
    ``"f"``, or None): ``strip_person_titles("mrs obama") == ("obama", "f")``."""
    bare, removed = _strip_titles(key)
    genders = {"m" if title in MALE_TITLES else "f" for title in removed if title in MALE_TITLES or title in FEMALE_TITLES}
    return bare, (genders.pop() if len(genders) == 1 else None)


def gendered_key(bare: str, gender: str) -> str:
    """The key of a name that is one word after a gendered title: ``gendered_key("obama", "f") == "obama (f)"``.

    Normalised names never hold parentheses, so the mark cannot meet a real name; "Mr Obama" and "Mrs Obama"
    get two keys, and so two entities unless a full name takes them in.
    """
    return bare + _GENDER_MARKS[gender]


def split_gender(key: str) -> tuple[str, str | None]:
    """``split_gender("obama (f)") == ("obama", "f")``; a key without the mark has no gender."""
    if key.endswith(")") and key[-4:-3] == " " and key[-3:] in ("(m)", "(f)"):
        return key[:-4], key[-2]
    return key, None


def _strip_titles(key: str) -> tuple[str, tuple[str, ...]]:
    """The name without its titles, and the titles removed (each as its normalised words)."""
    words = key.split(" ")
    if words[0] not in _TITLES_BY_FIRST_WORD:
        return key, ()
    removed: list[str] = []
    found = True
    while found:
        found = False
        for title in _TITLES_BY_FIRST_WORD.get(words[0], ()):
            if len(words) > len(title) and tuple(words[: len(title)]) == title:
                words = words[len(title):]
                removed.append(" ".join(title))
                found = True
                break
    return " ".join(words), tuple(removed)


@lru_cache(maxsize=1 << 16)
def fold(word: str) -> str:
    """A word without the accents of Latin letters (``fold("durán") == "duran"``); other scripts keep theirs
    (a Japanese voicing mark changes the word)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", word):
        if unicodedata.combining(ch) and out and _is_latin(out[-1]):
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _is_latin(ch: str) -> bool:
    return ch < "\u0250" or "\u1e00" <= ch <= "\u1eff"


def fold_key(key: str) -> str:
    """A normalised name with its Latin letters' accents folded: ``fold_key("níkos aliágas") == "nikos aliagas"``."""
    return " ".join(fold(w) for w in key.split(" "))


@lru_cache(maxsize=1 << 18)
def name_words(key: str) -> tuple[str, ...]:
    """The words of a normalised name, accents folded: what the resolution rules compare."""
    return tuple(fold(w) for w in key.split(" ") if w)


_HYPHEN = re.compile(r"\s*[-‐‑‒–]\s*")


@lru_cache(maxsize=1 << 16)
def hyphen_joins(surface: str) -> frozenset[int]:
    """The positions, among the words of the surface's key, of words a hyphen joins to the word before:
    ``hyphen_joins("Brandenburg-Prussia") == {1}``. "Prussia" is not a short form of "Brandenburg-Prussia",
    nor "Jean" of "Jean-Pierre Raffarin"."""
    if not _HYPHEN.search(surface):
        return frozenset()
    counts = [len(name_words(normalize_name(part))) if any(ch.isalnum() for ch in part) else 0
              for part in _HYPHEN.split(surface)]
    if sum(counts) != len(name_words(normalize_name(surface))):
        return frozenset()  # a leading "the" or a suffix went: the parts no longer line up with the words
    joins, position = set(), 0
    for count in counts:
        if count and position:
            joins.add(position)
        position += count
    return frozenset(joins)


def drop_possessive(text: str) -> str:
    """``"Blair's"`` -> ``"Blair"``: a possessive is the same name."""
    return _POSSESSIVE.sub("", text) if len(text) > 3 else text


@lru_cache(maxsize=1 << 18)
def acronym_letters(text: str) -> str | None:
    """The letters of an acronym or initialism as written (``"U.S."`` -> ``"us"``, ``"AP"`` -> ``"ap"``,
    ``"DoD"`` -> ``"dod"``), or None for a word that is not one (``"Apple"``, ``"A"``)."""
    compact = _ACRONYM_DROPS.sub("", unicodedata.normalize("NFKC", text))
    if not 2 <= len(compact) <= 12 or not compact.isalnum() or not compact[0].isalpha():
        return None
    upper = sum(ch.isupper() for ch in compact)
    lower = sum(ch.islower() for ch in compact)
    if upper < 2 or lower > upper or not compact[0].isupper():
        return None
    return compact.casefold()


@lru_cache(maxsize=1 << 18)
def fullness(text: str) -> tuple[int, bool]:
    """How much of a name a surface form spells out, as a sort key (smaller: fuller): minus the letters of
    its key without titles, then whether it has a title.

    ``fullness("Tony Blair") < fullness("Prime Minister Tony Blair") < fullness("Mr Blair") == fullness("Blair")``
    but for the title; an entity is named by its fullest surface form, so "Associated Press" names the entity
    that "AP" also mentions.
    """
    key = normalize_name(text)
    bare = strip_titles(key)
    return -sum(map(str.isalnum, bare)), bare != key


def clear_caches() -> None:
    """Empty the caches of the functions above. They hold every name a run resolved (14 MiB at 10,000 chunks);
    emptied once resolution is over, their slots are reused by what the end of an ingest builds instead of that
    growing the heap further (BENCHMARKS.md, scale-out memory)."""
    for cached in (normalize_name, fold, name_words, hyphen_joins, acronym_letters, fullness):
        cached.cache_clear()
