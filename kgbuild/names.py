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
                "coach", "herr", "frau", "mme", "mlle",
            )
        ),
        key=lambda words: (-len(words), words),
    )
)
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


def normalize_name(text: str) -> str:
    """The matching key of a surface form: ``normalize_name("APPLE, Inc.") == "apple"``."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = _APOSTROPHES.sub("", folded)
    folded = _DIGIT_COMMA.sub("", folded)
    chars = []
    for i, ch in enumerate(folded):
        if unicodedata.category(ch).startswith("P"):
            # keep a decimal point between digits ("3.5"), drop every other punctuation mark
            keep = ch == "." and 0 < i < len(folded) - 1 and folded[i - 1].isdigit() and folded[i + 1].isdigit()
            chars.append(ch if keep else " ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            chars.append(" ")
        else:
            chars.append(ch)
    words = _WHITESPACE.sub(" ", "".join(chars)).strip().split(" ")
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in CORPORATE_SUFFIXES:
        words = words[:-1]
    key = " ".join(w for w in words if w)
    return key or _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def strip_titles(key: str) -> str:
    """A normalised person name without the titles before it: ``strip_titles("prime minister tony blair")
    == "tony blair"``; a name that is only a title stays as it is."""
    words = key.split(" ")
    changed = True
    while changed:
        changed = False
        for title in TITLES:
            if len(words) > len(title) and tuple(words[: len(title)]) == title:
                words = words[len(title):]
                changed = True
                break
    return " ".join(words)


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


def name_words(key: str) -> tuple[str, ...]:
    """The words of a normalised name, accents folded: what the resolution rules compare."""
    return tuple(fold(w) for w in key.split(" ") if w)


def drop_possessive(text: str) -> str:
    """``"Blair's"`` -> ``"Blair"``: a possessive is the same name."""
    return _POSSESSIVE.sub("", text) if len(text) > 3 else text


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


@lru_cache(maxsize=1 << 16)
def fullness(text: str) -> tuple[int, bool]:
    """How much of a name a surface form spells out, as a sort key (smaller: fuller): minus the letters of
    its key without titles, then whether it has a title.

    ``fullness("Tony Blair") < fullness("Prime Minister Tony Blair") < fullness("Mr Blair") == fullness("Blair")``
    but for the title; an entity is named by its fullest surface form, so "Associated Press" names the entity
    that "AP" also mentions.
    """
    key = normalize_name(text)
    bare = strip_titles(key)
    return -sum(ch.isalnum() for ch in bare), bare != key
