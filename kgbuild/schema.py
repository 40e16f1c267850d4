"""Extraction schemas: YAML files validated on load, with errors that name the file and the key.

A schema declares entity types (with descriptions), relation types (with the
entity types allowed at each end), classification tasks and optional structures.
It is enforced during extraction: only declared labels are asked of the model,
and relations whose ends have the wrong types are dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kgbuild.errors import SchemaError

# Labels become Neo4j labels and relationship types and Qdrant payload values, so only
# plain identifiers are allowed: nothing that needs quoting, nothing that could inject.
LABEL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
DEFAULT_SCHEMA = "business-news"


def _check_label(value: str, what: str) -> str:
    if not isinstance(value, str) or not LABEL_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a safe identifier (a letter, then letters, digits or '_', at most 64)"
        )
    return value


def _check_unique(labels: list[str], what: str) -> None:
    seen: dict[str, str] = {}
    for label in labels:
        folded = label.casefold()
        if folded in seen:
            raise ValueError(f"duplicate {what} {label!r} (same as {seen[folded]!r} ignoring case)")
        seen[folded] = label


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Threshold = Field(default=None, ge=0.0, le=1.0)


class EntityType(_Strict):
    description: str = ""
    threshold: float | None = Threshold
    prompt: str | None = None  # the words shown to the model; default: the label in lower case


class RelationType(_Strict):
    description: str = ""
    source: list[str] = Field(min_length=1)
    target: list[str] = Field(min_length=1)
    threshold: float | None = Threshold
    prompt: str | None = None
    # constraints for constrained relation decoding (kgbuild.extract.constrained); plain decoding ignores them
    symmetric: bool = False  # A r B means B r A (spouse, sibling); source and target must list the same types
    inverse_of: str | None = None  # the relation that says the same thing the other way round (PARENT_OF / CHILD_OF)
    max_per_head: int | None = Field(default=None, ge=1)  # at most this many per head entity (CEO_OF: 1)


class ClassificationTask(_Strict):
    labels: dict[str, str | None] = Field(min_length=1)  # label -> description (empty or null for none)
    multi_label: bool = False
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    description: str = ""

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            names = [str(v) for v in value]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"duplicate classification label {repeated[0]!r}")
            return {n: "" for n in names}
        return value

    @field_validator("labels")
    @classmethod
    def _safe_labels(cls, value: dict[str, str | None]) -> dict[str, str]:
        for label in value:
            _check_label(label, "classification label")
        _check_unique(list(value), "classification label")
        return {k: (v or "") for k, v in value.items()}


class StructureField(_Strict):
    description: str = ""
    type: Literal["str", "list"] = "str"
    choices: list[str] | None = None
    threshold: float | None = Threshold


class StructureType(_Strict):
    description: str = ""
    fields: dict[str, StructureField] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _safe_fields(cls, value: dict[str, StructureField]) -> dict[str, StructureField]:
        for name in value:
            _check_label(name, "structure field")
        return value


class ExtractionSchema(_Strict):
    name: str
    version: str = "1"
    description: str = ""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    entities: dict[str, EntityType] = Field(default_factory=dict)
    relations: dict[str, RelationType] = Field(default_factory=dict)
    classifications: dict[str, ClassificationTask] = Field(default_factory=dict)
    structures: dict[str, StructureType] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("entities", "relations", "classifications", "structures", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _check_names(self) -> ExtractionSchema:
        for key, kind, labels in (
            ("entities", "entity type", list(self.entities)),
            ("relations", "relation type", list(self.relations)),
            ("classifications", "classification task", list(self.classifications)),
            ("structures", "structure", list(self.structures)),
        ):
            try:
                for label in labels:
                    _check_label(label, kind)
                _check_unique(labels, kind)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        if not self.entities and not self.classifications and not self.structures:
            raise ValueError("the schema declares no entities, classifications or structures: nothing to extract")
        for rel_name, rel in self.relations.items():
            for end in ("source", "target"):
                for entity_type in getattr(rel, end):
                    if entity_type not in self.entities:
                        raise ValueError(
                            f"relations.{rel_name}.{end}: unknown entity type {entity_type!r}"
                            f" (defined: {', '.join(self.entities) or 'none'})"
                        )
        for rel_name, rel in self.relations.items():
            _check_relation_constraints(rel_name, rel, self.relations)
        prompts: dict[str, str] = {}
        for kind, items in (("entities", self.entities), ("relations", self.relations)):
            for label, item in items.items():
                prompt = item.prompt or default_prompt(label)
                if prompt in prompts:
                    raise ValueError(f"{kind}.{label}: prompt {prompt!r} is also used by {prompts[prompt]}")
                prompts[prompt] = f"{kind}.{label}"
        return self

    # -- derived views -------------------------------------------------------

    def entity_threshold(self, label: str) -> float:
        own = self.entities[label].threshold
        return self.threshold if own is None else own

    def relation_threshold(self, label: str) -> float:
        own = self.relations[label].threshold
        return self.threshold if own is None else own

    def entity_prompts(self) -> dict[str, str]:
        """Model prompt -> schema label for entity types."""
        return {(t.prompt or default_prompt(label)): label for label, t in self.entities.items()}

    def relation_prompts(self) -> dict[str, str]:
        return {(t.prompt or default_prompt(label)): label for label, t in self.relations.items()}

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that changes extraction output."""
        dumped = self.model_dump(mode="json")
        # the relation constraints came later: left at their defaults they are not part of it, so a schema that
        # sets none keeps the fingerprint it had and its index is not extracted again on upgrade
        for relation in (dumped.get("relations") or {}).values():
            for key, default in _CONSTRAINT_DEFAULTS.items():
                if relation.get(key, default) == default:
                    relation.pop(key, None)
        canonical = json.dumps(dumped, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def with_threshold(self, threshold: float | None) -> ExtractionSchema:
        if threshold is None:
            return self
        if not 0.0 <= threshold <= 1.0:
            raise SchemaError(f"threshold must be between 0 and 1, got {threshold}")
        return self.model_copy(update={"threshold": threshold})


_CONSTRAINT_DEFAULTS = {"symmetric": False, "inverse_of": None, "max_per_head": None}


def _check_relation_constraints(name: str, rel: RelationType, relations: dict[str, RelationType]) -> None:
    """``symmetric`` and ``inverse_of`` must describe a relation that can hold both ways round."""
    if rel.symmetric and rel.inverse_of:
        raise ValueError(f"relations.{name}: symmetric and inverse_of exclude each other (a symmetric relation is its own inverse)")
    if rel.symmetric and set(rel.source) != set(rel.target):
        raise ValueError(f"relations.{name}.symmetric: source {rel.source} and target {rel.target} must list the same"
                         " entity types (B r A must be allowed wherever A r B is)")
    if rel.inverse_of is None:
        return
    other = relations.get(rel.inverse_of)
    if other is None:
        raise ValueError(f"relations.{name}.inverse_of: unknown relation type {rel.inverse_of!r}"
                         f" (defined: {', '.join(relations)})")
    if rel.inverse_of == name:
        raise ValueError(f"relations.{name}.inverse_of: a relation cannot be its own inverse (use symmetric: true)")
    if set(rel.source) != set(other.target) or set(rel.target) != set(other.source):
        raise ValueError(f"relations.{name}.inverse_of: {name} goes {rel.source} -> {rel.target}, so its inverse"
                         f" {rel.inverse_of} must go {rel.target} -> {rel.source}, not {other.source} -> {other.target}")
    if other.inverse_of not in (None, name):
        raise ValueError(f"relations.{name}.inverse_of: {rel.inverse_of} declares inverse_of {other.inverse_of!r}, not {name!r}")


def default_prompt(label: str) -> str:
    """COMPANY -> "company", CEO_OF -> "ceo_of": the lower-case form GLiNER2 models are trained on."""
    return label.lower()


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a schema must not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise SchemaError(f"a key must be a plain name, not {type(key).__name__}, at line {key_node.start_mark.line + 1}")
        if key in mapping:
            raise SchemaError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {location}: {message}")
    return "\n".join(lines)


def parse_schema(text: str, source: str = "<schema>") -> ExtractionSchema:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except SchemaError as exc:
        raise SchemaError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SchemaError(f"{source}: invalid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise SchemaError(f"{source}: invalid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{source}: the top level must be a mapping with name, entities, relations, ...")
    try:
        return ExtractionSchema.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(_format_validation_error(source, exc)) from None


def bundled_schema_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("kgbuild.schemas").iterdir() if p.name.endswith(".yaml"))


def resolve_schema_path(name_or_path: str | Path | None) -> tuple[str, str]:
    """Return (source name, YAML text) for a file path or the name of a bundled schema."""
    name_or_path = name_or_path or DEFAULT_SCHEMA
    path = Path(name_or_path)
    if path.exists():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"{path}: cannot read schema: {exc}") from None
    # a bare name, or schemas/<name>.yaml run from outside the repository, means a bundled schema
    bare = len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "schemas")
    bundled = resources.files("kgbuild.schemas").joinpath(f"{path.name.removesuffix('.yaml')}.yaml")
    if not bare:
        raise SchemaError(f"{name_or_path}: schema file not found")
    if bundled.is_file():
        return f"schemas/{bundled.name}", bundled.read_text(encoding="utf-8")
    raise SchemaError(
        f"{name_or_path}: no such schema file, and no bundled schema of that name"
        f" (bundled: {', '.join(bundled_schema_names())})"
    )


def load_schema(name_or_path: str | Path | None = None) -> ExtractionSchema:
    """Load and validate a schema: ``load_schema("schemas/business-news.yaml")`` or ``load_schema("business-news")``."""
    source, text = resolve_schema_path(name_or_path)
    return parse_schema(text, source)
