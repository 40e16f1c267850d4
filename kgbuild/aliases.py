"""Other names of places: "U.S.", "USA" and "America" for the United States, "Kenyan" for Kenya, "Calif." for California.

The built-in table comes from two kept libraries rather than a list written here: ``countryinfo``
(every country's name, alternative spellings, ISO codes and demonym) and ``us`` (the US states with
their AP-style abbreviations). A handful of everyday names that neither holds ("America", "Britain")
are added in ``COMMON_ALIASES`` and ``COMMON_DEMONYMS``. Users extend it with a mapping of their own::

    >>> AliasTable.default().extended({"Big Apple": "New York City"}).lookup("the Big Apple")
    'New York City'

Lookups are per surface form, so the table canonicalises each mention on its own: two documents
that say "U.S." and "United States" meet on the same entity without seeing each other.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Iterable, Mapping

from kgbuild.names import normalize_name

# everyday names that the libraries do not carry
COMMON_ALIASES = {"America": "United States", "the States": "United States", "Britain": "United Kingdom"}
COMMON_DEMONYMS = {"Briton": "United Kingdom", "Britons": "United Kingdom"}
# a claimant wins a contested alias when it is this many times more populous than the next ("American":
# the United States, not the Northern Mariana Islands); closer contests ("Korean", "Congolese") stay unresolved
_POPULATION_MARGIN = 50
# country codes that are also English words written in capitals in headlines ("IT", "CAN", "AND")
_WORD_CODES = frozenset({"am", "as", "at", "be", "by", "do", "in", "is", "it", "me", "my", "no", "so", "to", "and", "are", "can", "per"})


def _code(surface: str) -> str | None:
    """A short all-capitals code as written ("US", "U.S.A.", "UK"), matched case-sensitively."""
    words = surface.split()
    if len(words) > 1 and words[0].casefold() == "the":  # "the UK", "the U.S."
        surface = " ".join(words[1:])
    compact = surface.replace(".", "").replace(" ", "")
    return compact if 2 <= len(compact) <= 3 and compact.isalpha() and compact.isupper() else None


class AliasTable:
    """Surface forms of places -> the place's canonical name (``lookup("U.S.") == "United States"``).

    Names match by their normalised key (case, punctuation and a leading "the" do not matter); short
    all-capital codes ("US", "UK") match only in capitals, so the pronoun "us" is no alias.
    """

    __slots__ = ("_names", "_codes", "_demonyms")

    def __init__(
        self,
        names: Mapping[str, str] | None = None,
        codes: Mapping[str, str] | None = None,
        demonyms: Iterable[str] = (),
    ) -> None:
        self._names: dict[str, str] = dict(names or {})  # normalised surface -> canonical name
        self._codes: dict[str, str] = dict(codes or {})  # CODE -> canonical name
        self._demonyms: frozenset[str] = frozenset(demonyms)  # the normalised surfaces that are demonyms

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> "AliasTable":
        """A table of the given pairs only: ``{"Big Apple": "New York City"}``."""
        return cls().extended(mapping)

    @staticmethod
    def default() -> "AliasTable":
        """Countries, their alternative names and demonyms, and US states with their abbreviations."""
        return _builtin()

    def extended(self, mapping: Mapping[str, str]) -> "AliasTable":
        """This table plus the user's pairs (surface -> canonical name), which win over built-in ones."""
        table = AliasTable(self._names, self._codes, self._demonyms)
        for surface, canonical in sorted(mapping.items()):
            if not surface.strip() or not canonical.strip():
                raise ValueError(f"alias {surface!r} -> {canonical!r}: both sides need a name")
            code = _code(surface)
            if code is not None:
                table._codes[code] = canonical
            else:
                table._names[normalize_name(surface)] = canonical
                table._demonyms = table._demonyms - {normalize_name(surface)}
            # the canonical name is a name of itself, so "New York City" and "the Big Apple" meet
            table._names.setdefault(normalize_name(canonical), canonical)
        return table

    def lookup(self, surface: str) -> str | None:
        """The canonical name of a surface form, or None when the table does not know it."""
        found = self.find(surface)
        return found[0] if found is not None else None

    def find(self, surface: str) -> tuple[str, bool] | None:
        """(canonical name, whether the surface is a demonym: "Kenyan"), or None when the table does not know it."""
        code = _code(surface)
        if code is not None and code in self._codes:
            return self._codes[code], False
        key = normalize_name(surface)
        canonical = self._names.get(key)
        return (canonical, key in self._demonyms) if canonical is not None else None

    def __len__(self) -> int:
        return len(self._names) + len(self._codes)


def _country_records() -> list[dict]:
    """Every country's record from countryinfo, whichever of its two APIs is installed."""
    try:
        from countryinfo import all_countries  # 1.x (Python >= 3.11)
    except ImportError:  # 0.1.x
        from countryinfo import CountryInfo

        return list(CountryInfo().all().values())
    return [country.info() for country in all_countries()]


def _country_claims() -> tuple[list[tuple[str, str, bool, int, bool]], list[tuple[str, str]]]:
    """(surface, canonical, has ISO code, population, is a demonym) name claims and (CODE, canonical) code claims."""
    records = [r for r in _country_records() if r.get("name")]
    # a country recorded twice under one ISO code (Burma and Myanmar) is one country, named by its
    # authoritative record (the one with the numeric code), the more complete one on a tie
    by_code: defaultdict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_code[(record.get("ISO") or {}).get("alpha2") or record["name"]].append(record)
    groups: list[list[dict]] = []
    for group in by_code.values():
        main = min(group, key=lambda r: (not (r.get("ISO") or {}).get("numeric"), not r.get("demonym"),
                                          -int(r.get("population") or 0), r["name"]))
        spellings = {s.casefold() for s in main.get("altSpellings") or []}
        same = [main]
        for record in group:
            if record is main:
                continue
            if record["name"].casefold() in spellings or main["name"].casefold() in {
                s.casefold() for s in record.get("altSpellings") or []
            }:
                same.append(record)
            else:  # Wales shares the United Kingdom's code but is a place of its own
                groups.append([{**record, "ISO": {}}])
        groups.append(same)
    names: list[tuple[str, str, bool, int, bool]] = []
    codes: list[tuple[str, str]] = []
    for group in groups:
        main = group[0]
        canonical = main["name"]
        has_iso = bool((main.get("ISO") or {}).get("alpha2"))
        population = max(int(r.get("population") or 0) for r in group)
        surfaces: list[tuple[str, bool]] = []
        for record in group:
            iso = record.get("ISO") or {}
            surfaces += [(s, False) for s in (record["name"], *(record.get("altSpellings") or []),
                                                iso.get("alpha2") or "", iso.get("alpha3") or "")]
            demonym = record.get("demonym")
            if demonym:
                surfaces.append((demonym, True))
                if demonym.endswith(("an", "i")):  # Americans, Kenyans, Israelis
                    surfaces.append((demonym + "s", True))
        for surface, demonym in surfaces:
            if not surface:
                continue
            code = _code(surface)
            if code is None:
                names.append((surface, canonical, has_iso, population, demonym))
            elif code.casefold() not in _WORD_CODES:
                codes.append((code, canonical))
    return names, codes


def _us_states() -> list[tuple[str, str, str]]:
    """(name, AP abbreviation or "", postal code) of every US state and territory."""
    import us

    return [(s.name, s.ap_abbr or "", s.abbr) for s in [*us.states.STATES_AND_TERRITORIES, us.states.DC]]


def _settle(claims: Iterable[tuple[str, str, bool, int, bool]]) -> tuple[dict[str, str], set[str]]:
    """One canonical name per key (a contested key goes to a clear winner or to nobody), and the keys that
    are demonyms."""
    by_key: defaultdict[str, dict[str, tuple[bool, int]]] = defaultdict(dict)
    demonyms: set[str] = set()
    for surface, canonical, has_iso, population, demonym in claims:
        key = normalize_name(surface)
        previous = by_key[key].get(canonical, (False, 0))
        by_key[key][canonical] = (previous[0] or has_iso, max(previous[1], population))
        if demonym and key != normalize_name(canonical):
            demonyms.add(key)
    settled: dict[str, str] = {}
    for key, claimants in by_key.items():
        names = {normalize_name(c) for c in claimants}
        if len(names) == 1:
            settled[key] = min(claimants)
            continue
        ranked = sorted(claimants.items(), key=lambda item: (not item[1][0], -item[1][1], item[0]))
        (best, (best_iso, best_pop)), (_, (next_iso, next_pop)) = ranked[0], ranked[1]
        if (best_iso and not next_iso) or best_pop >= _POPULATION_MARGIN * max(next_pop, 1):
            settled[key] = best
    return settled, demonyms & settled.keys()


@lru_cache(maxsize=1)
def _builtin() -> AliasTable:
    country_names, country_codes = _country_claims()
    states = _us_states()
    state_names = [(surface, name, True, 0, False) for name, ap, _ in states for surface in (name, ap) if surface]
    common = [(surface, canonical, True, 10**12, False) for surface, canonical in COMMON_ALIASES.items()]
    common += [(surface, canonical, True, 10**12, True) for surface, canonical in COMMON_DEMONYMS.items()]
    names, demonyms = _settle([*country_names, *state_names, *common])
    # a code that two places claim ("CA": Canada, and California's postal code) is no alias of either
    code_claims: defaultdict[str, set[str]] = defaultdict(set)
    for code, canonical in [*country_codes, *((postal, name) for name, _, postal in states)]:
        code_claims[code].add(canonical)
    codes = {code: next(iter(c)) for code, c in code_claims.items() if len(c) == 1}
    return AliasTable(names, codes, demonyms)
