"""Resolution overrides: the merges and splits a user pins in the index folder's ``resolution.yaml``.

::

    version: 1
    merge:            # each pair is one entity: what resolves to the first joins the second
      - [PERSON:Blair, PERSON:Tony Blair]
    never_merge:      # each pair stays two entities, whatever the resolution rules say
      - [PERSON:Jordan, PERSON:Michael Jordan]
      - [LOCATION:U.S., LOCATION:United States]

Names are ``TYPE:NAME`` and are read as ``--entity`` filters are (``kgbuild.reconcile.entity_key``:
"Mr Blair" is the key of "Blair", "U.S." that of "United States"). Reconciliation applies the file as
its last step (``resolve_mentions(..., overrides=...)``), one mention at a time, from the mention's own
name and the entity the rules gave it, so the result still depends on nothing but the mention's document
and the file, and ingesting again equals a fresh ingest:

- ``never_merge [A, B]``: a mention that the rules put in B's entity but whose name is A's (its normalised
  surface form, a person's without titles, or its key when A and B have different keys) keeps its own
  name: a document-level link ("Jordan" -> "Michael Jordan") is dropped, and where A and B share a key (an
  alias: "U.S." and "United States"), the mention keeps its normalised surface form as its key. Only the
  names a pair names are kept apart: "Mr Jordan" goes with "Jordan", "Michael" still joins "Michael Jordan".
- ``merge [A, B]``: every mention whose entity is A's (after the rules and ``never_merge``) joins B's. Pairs
  chain ([A, B], [B, C]: all three are one); the entity takes the key of a name that is only ever on the
  right of a pair (the alphabetically first key if there are several), so with one pair it is B's.

The file is validated on load, with one-line errors that name the line and the field
(``OverridesError``). ``kgbuild ingest`` records its fingerprint with the extraction fingerprint
(``kgbuild.plan``), so a changed file re-processes the documents on the next ingest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Iterable

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator

from kgbuild.errors import ConfigError
from kgbuild.names import normalize_name, strip_titles
from kgbuild.resolution import PERSON, CanonicalName, Link, type_family

OVERRIDES_FILE = "resolution.yaml"
OVERRIDES_VERSION = 1
OVERRIDE_RULE = "override"  # the rule a merge of the file writes on the mentions it moved


class OverridesError(ConfigError):
    """The override file is invalid; the message names the file, the line and the field."""


def _check_name(value: str) -> str:
    entity_type, sep, name = value.partition(":")
    if not sep or not entity_type.strip() or not name.strip():
        raise ValueError(f"{value!r} must look like TYPE:NAME, for example PERSON:Tony Blair")
    return f"{entity_type.strip()}:{name.strip()}"


NameText = Annotated[str, AfterValidator(_check_name)]


class _OverridesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    merge: list[tuple[NameText, NameText]] = []
    never_merge: list[tuple[NameText, NameText]] = []

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != OVERRIDES_VERSION:
            raise ValueError(f"version {value} is not one this kgbuild reads (it reads version {OVERRIDES_VERSION})")
        return value

    @field_validator("merge", "never_merge", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


@dataclass(frozen=True, slots=True)
class NameRef:
    """One ``TYPE:NAME`` of the file: as written, its entity key and its normalised surface form."""

    type: str
    name: str
    key: str  # the entity key without its type ("blair" for "Mr Blair")
    surface: str  # normalize_name(name): what the mention itself says ("u s" for "U.S.")

    @classmethod
    def parse(cls, value: str) -> NameRef:
        from kgbuild.reconcile import parse_entity_filter

        entity_type, key = parse_entity_filter(value)
        name = value.partition(":")[2].strip()
        return cls(entity_type, name, key.partition(":")[2], normalize_name(name))

    @property
    def text(self) -> str:
        return f"{self.type}:{self.name}"

    @property
    def entity_key(self) -> str:
        return f"{self.type}:{self.key}"


@dataclass(frozen=True, slots=True)
class Pinned:
    """What the overrides did to one mention: its name and link as they now stand, its key, and the
    name it was merged into (None: no merge moved it)."""

    name: CanonicalName
    link: Link | None
    key: str
    merged_into: str | None = None


@dataclass(frozen=True)
class ResolutionOverrides:
    """The validated file (``load_overrides``), ready for reconciliation: ``bool(overrides)`` is False when it
    pins nothing."""

    merge: tuple[tuple[NameRef, NameRef], ...] = ()
    never_merge: tuple[tuple[NameRef, NameRef], ...] = ()
    source: str = OVERRIDES_FILE
    # ("merge" or "never_merge", index) -> where the pair is written ("resolution.yaml:4"), for errors
    places: dict[tuple[str, int], str] = field(default_factory=dict, compare=False, repr=False)
    # (type, key) -> (the merged entity's key, the name it is written with in the file)
    _merge_into: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, compare=False, repr=False)
    # (type, key of B) -> the pairs (A, B) that keep A's mentions out of B's entity
    _apart: dict[tuple[str, str], list[tuple[NameRef, NameRef]]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._merge_into.update(_merge_targets(self.merge))
        for a, b in self.never_merge:
            self._apart.setdefault((b.type, b.key), []).append((a, b))
            self._apart.setdefault((a.type, a.key), []).append((b, a))

    def __bool__(self) -> bool:
        return bool(self.merge or self.never_merge)

    @classmethod
    def from_pairs(cls, merge: Iterable[tuple[str, str]] = (), never_merge: Iterable[tuple[str, str]] = (),
                   source: str = OVERRIDES_FILE) -> ResolutionOverrides:
        """``ResolutionOverrides.from_pairs(merge=[("PERSON:Blair", "PERSON:Tony Blair")])``; checked as the file is."""
        data = {"version": OVERRIDES_VERSION, "merge": [list(p) for p in merge], "never_merge": [list(p) for p in never_merge]}
        return _validated(data, source, None)

    # -- reconciliation's last step --------------------------------------------------------------

    def decide(self, entity_type: str, surface: str, name: CanonicalName, link: Link | None, key: str) -> Pinned | None:
        """The mention ``surface`` of ``entity_type``, whose own key is ``name.key`` and whose key after the rules
        is ``key``: where the overrides put it, or None when they leave it alone."""
        pinned: Pinned | None = None
        for other, own in self._apart.get((entity_type, key), ()):
            raw = normalize_name(surface)
            said = (raw, strip_titles(raw)) if type_family(entity_type) == PERSON else (raw,)  # "Mr Jordan" says "Jordan"
            if other.surface in said or (name.key == other.key and other.key != own.key):
                if name.key != own.key:  # the rules' link took it there: drop the link
                    pinned = Pinned(name, None, name.key)
                else:  # its own name's rule (an alias) did: keep the name as written
                    pinned = Pinned(CanonicalName(raw), None, raw)
                key = pinned.key
                break
        target = self._merge_into.get((entity_type, key))
        if target is not None and target[0] != key:
            base = pinned or Pinned(name, link, key)
            pinned = replace(base, key=target[0], merged_into=target[1])
        return pinned

    # -- the file --------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str | None:
        """What changes resolution, hashed (comments, layout and the order of pairs do not); None when empty."""
        if not self:
            return None
        content = {"merge": sorted([a.text, b.text] for a, b in self.merge),
                   "never_merge": sorted(sorted([a.text, b.text]) for a, b in self.never_merge)}
        return "sha256:" + hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()

    def with_merge(self, a: str, b: str) -> ResolutionOverrides:
        """A copy with ``[a, b]`` in ``merge`` (and out of ``never_merge``)."""
        return self._edited(merge=[*self._texts(self.merge), (a, b)],
                            never_merge=[p for p in self._texts(self.never_merge) if not _same_pair(p, (a, b))])

    def with_never_merge(self, a: str, b: str) -> ResolutionOverrides:
        """A copy with ``[a, b]`` in ``never_merge`` (and out of ``merge``)."""
        return self._edited(merge=[p for p in self._texts(self.merge) if not _same_pair(p, (a, b))],
                            never_merge=[*self._texts(self.never_merge), (a, b)])

    def _edited(self, *, merge: list[tuple[str, str]], never_merge: list[tuple[str, str]]) -> ResolutionOverrides:
        return ResolutionOverrides.from_pairs(list(dict.fromkeys(merge)), list(dict.fromkeys(never_merge)), self.source)

    @staticmethod
    def _texts(pairs: Iterable[tuple[NameRef, NameRef]]) -> list[tuple[str, str]]:
        return [(a.text, b.text) for a, b in pairs]

    def to_yaml(self) -> str:
        def pairs(items: tuple[tuple[NameRef, NameRef], ...]) -> str:
            return "".join(f"  - [{_quoted(a.text)}, {_quoted(b.text)}]\n" for a, b in items) if items else ""

        return (
            "# kgbuild resolution overrides: applied at every `kgbuild ingest` (see `kgbuild entities --help`)\n"
            f"version: {OVERRIDES_VERSION}\n"
            "# each pair is one entity: what resolves to the first name joins the second\n"
            + ("merge:\n" + pairs(self.merge) if self.merge else "merge: []\n")
            + "# each pair stays two entities, whatever the resolution rules say\n"
            + ("never_merge:\n" + pairs(self.never_merge) if self.never_merge else "never_merge: []\n")
        )

    def check_types(self, entity_types: Iterable[str], schema_name: str = "the schema") -> None:
        """Every pair names a type of ``entity_types`` (the schema's): a misspelt type would match nothing."""
        known = set(entity_types)
        for kind in ("merge", "never_merge"):
            for i, (a, _) in enumerate(getattr(self, kind)):
                if a.type not in known:
                    where = self.places.get((kind, i), self.source)
                    raise OverridesError(f"{where}: {kind}[{i}]: {a.type} is not an entity type of {schema_name}"
                                         f" ({', '.join(sorted(known))})")

    def pinned_for(self, entity_key: str) -> list[str]:
        """The file's pairs that name ``entity_key`` ("TYPE:key"), in words, for ``kgbuild entities show``."""
        found = [f"merge {a.text} -> {b.text}" for a, b in self.merge if entity_key in (a.entity_key, b.entity_key)]
        found += [f"never_merge {a.text} / {b.text}" for a, b in self.never_merge
                  if entity_key in (a.entity_key, b.entity_key)]
        return found

    def merged_key(self, entity_key: str) -> str:
        """The key an entity key ends up with after the file's merges: ``"PERSON:blair"`` -> ``"PERSON:tony blair"``."""
        entity_type, _, key = entity_key.partition(":")
        target = self._merge_into.get((entity_type, key))
        return f"{entity_type}:{target[0]}" if target is not None else entity_key


def _quoted(text: str) -> str:
    """A name as a YAML flow scalar: plain where YAML reads it back unchanged, else double-quoted."""
    plain = yaml.safe_dump([text], default_flow_style=True, allow_unicode=True, width=10_000).strip()[1:-1]
    return plain


def _same_pair(p: tuple[str, str], q: tuple[str, str]) -> bool:
    return {NameRef.parse(p[0]).entity_key, NameRef.parse(p[1]).entity_key} == {
        NameRef.parse(q[0]).entity_key, NameRef.parse(q[1]).entity_key}


def _merge_targets(pairs: Iterable[tuple[NameRef, NameRef]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, key) -> (key of its merged entity, the name written for that key), over chained pairs."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    written: dict[tuple[str, str], set[str]] = {}
    on_left: set[tuple[str, str]] = set()
    pairs = list(pairs)
    for a, b in pairs:
        ka, kb = (a.type, a.key), (b.type, b.key)
        written.setdefault(ka, set()).add(a.name)
        written.setdefault(kb, set()).add(b.name)
        if ka != kb:
            on_left.add(ka)
        parent[find(ka)] = find(kb)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for member in list(parent):
        groups.setdefault(find(member), []).append(member)
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for members in groups.values():
        targets = sorted(m for m in members if m not in on_left) or sorted(members)
        chosen = targets[0]
        name = min(written[chosen])
        for member in members:
            out[member] = (chosen[1], name)
    return out


# -- loading -------------------------------------------------------------------------------------


def overrides_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / OVERRIDES_FILE


def load_overrides(out_dir: str | Path) -> ResolutionOverrides:
    """The override file of the index in ``out_dir``, validated; an empty one when there is none."""
    path = overrides_path(out_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ResolutionOverrides(source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise OverridesError(f"{path}: cannot be read: {exc}") from None
    return parse_overrides(text, str(path))


def save_overrides(overrides: ResolutionOverrides, out_dir: str | Path) -> Path:
    """Write the file (atomically); comments of an earlier version are not kept."""
    from kgbuild.state import write_text_atomic

    path = overrides_path(out_dir)
    write_text_atomic(path, [overrides.to_yaml()], prefix=".resolution-")
    return path


def parse_overrides(text: str, source: str = OVERRIDES_FILE) -> ResolutionOverrides:
    """The override file's text, validated: ``OverridesError`` names the line and the field of the first problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OverridesError(f"{source}{where}: invalid YAML: {problem}") from None
    if data is None:
        raise OverridesError(f"{source}: empty; it needs at least `version: {OVERRIDES_VERSION}`")
    if not isinstance(data, dict):
        raise OverridesError(f"{source}:1: must be a mapping with version, merge and never_merge")
    return _validated(data, source, root)


def _validated(data: dict[str, Any], source: str, root: Any) -> ResolutionOverrides:
    """``data`` checked field by field, then pair by pair; ``root`` (the YAML nodes, if any) gives the lines."""
    try:
        parsed = _OverridesFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field (the fields are version, merge and never_merge)"
        elif loc == ("version",) and first["type"] == "missing":
            message = f"missing (write `version: {OVERRIDES_VERSION}` at the top)"
        elif loc[0] in ("merge", "never_merge") and len(loc) >= 2 and first["type"] != "value_error":
            loc = loc[:2]
            message = "each entry must be a pair of names: [TYPE:NAME, TYPE:NAME]"
        more = len(exc.errors()) - 1
        raise OverridesError(f"{_where(source, root, loc)}: {_field(loc)}: {message}"
                             + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")) from None
    merge = _pairs(parsed.merge, "merge", source, root)
    never = _pairs(parsed.never_merge, "never_merge", source, root)
    places = {(kind, i): _where(source, root, (kind, i)) for kind, pairs in (("merge", merge), ("never_merge", never))
              for i in range(len(pairs))}
    overrides = ResolutionOverrides(tuple(merge), tuple(never), source, places)
    _check_consistent(overrides, source, root)
    return overrides


def _where(source: str, root: Any, loc: tuple) -> str:
    return f"{source}:{_line_of(root, loc)}" if root is not None else source


def _pairs(raw: list[tuple[str, str]], name: str, source: str, root: Any) -> list[tuple[NameRef, NameRef]]:
    pairs = []
    for i, (a_text, b_text) in enumerate(raw):
        a, b = NameRef.parse(a_text), NameRef.parse(b_text)
        where = f"{_where(source, root, (name, i))}: {name}[{i}]"
        if a.type != b.type:
            raise OverridesError(f"{where}: {a.text} and {b.text} have different types; a pair names two entities of one type")
        if (a.key, a.surface) == (b.key, b.surface):
            raise OverridesError(f"{where}: {a.text} and {b.text} are the same name")
        pairs.append((a, b))
    return pairs


def _check_consistent(overrides: ResolutionOverrides, source: str, root: Any) -> None:
    merged = overrides._merge_into
    for i, (a, b) in enumerate(overrides.never_merge):
        if a.key == b.key:
            continue  # two spellings of one key: kept apart by what the mentions say, whatever merges keys
        ta, tb = merged.get((a.type, a.key)), merged.get((b.type, b.key))
        if ta is not None and tb is not None and ta[0] == tb[0]:
            raise OverridesError(f"{_where(source, root, ('never_merge', i))}: never_merge[{i}]: {a.text} and {b.text}"
                                 " are also merged (under merge); keep the pair in one list only")


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(root: Any, loc: tuple) -> int:
    """The line (1-based) of the YAML node at ``loc`` (keys and list indexes), or of the nearest one above it."""
    node, line = root, 1
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line
