"""Labelled examples: gliner2's JSONL training format, read and checked against a kgbuild schema.

One JSON object per line, as ``gliner2.training`` reads it::

    {"input": "Tim Cook runs Apple.",
     "output": {"entities": {"person": [{"text": "Tim Cook", "start": 0, "end": 8}], "company": ["Apple"]},
                "relations": [{"ceo_of": {"head": "Tim Cook", "tail": "Apple"}}],
                "classifications": [{"task": "sentiment", "labels": ["positive", "negative"], "true_label": ["positive"]}]}}

An entity is a span ``{"text", "start", "end"}`` (character offsets, end exclusive) or a bare surface string; a
type mapped to ``[]`` says the text has none of it. Labels may be the schema's labels (``PERSON``) or the prompts
the model reads (``person``). kgbuild adds one optional key beside ``input`` and ``output``, which gliner2
ignores: ``"coreference": [["Tim Cook", "Cook"], ...]``, names that refer to the same entity, so that a relation
found between other names of the same two entities counts as found (``kgbuild labels export`` writes it from
the index's entities; the Re-DocRED converter from its clusters).

``load_gold`` reads and checks a file and raises ``GoldDataError`` with one line per problem, each naming the
file, the line and the field: bad JSON, offsets outside the text, a span whose text is not what the offsets
cut, a surface not in the text, a label the schema does not declare, a true label that is not among the labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from kgbuild.errors import KgbuildError
from kgbuild.schema import ExtractionSchema, default_prompt

MAX_REPORTED = 20


class GoldDataError(KgbuildError):
    """Labelled data that cannot be used as it is; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: Sequence[str], total: int | None = None):
        self.problems = list(problems)
        total = len(self.problems) if total is None else total
        shown = "\n".join(self.problems[:MAX_REPORTED])
        more = f"\n... and {total - MAX_REPORTED} more" if total > MAX_REPORTED else ""
        super().__init__(f"{source}: {total} problem{'s' if total != 1 else ''} in the labelled data"
                         f" (nothing was run):\n{shown}{more}")


@dataclass(frozen=True, slots=True)
class GoldSpan:
    """An entity mention; ``start``/``end`` are None when the data gives only its surface."""

    label: str
    text: str
    start: int | None = None
    end: int | None = None

    @property
    def located(self) -> bool:
        return self.start is not None


@dataclass(frozen=True, slots=True)
class GoldRelation:
    label: str
    head: GoldSpan  # label "" : a relation's ends carry no entity type in gliner2's format
    tail: GoldSpan


@dataclass(frozen=True, slots=True)
class GoldClassification:
    task: str
    labels: tuple[str, ...]
    true_labels: tuple[str, ...]
    multi_label: bool = False


@dataclass(slots=True)
class GoldExample:
    """One labelled text, with schema labels; ``line`` is where it was in its file (1-based, 0 when made in memory)."""

    text: str
    entities: list[GoldSpan] = field(default_factory=list)
    entity_types: set[str] = field(default_factory=set)  # the types this example labels (with [] for none)
    relations: list[GoldRelation] = field(default_factory=list)
    classifications: list[GoldClassification] = field(default_factory=list)
    coreference: list[list[str]] = field(default_factory=list)
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level keys (an id, a title), kept on the way out

    def to_record(self, schema: ExtractionSchema | None = None) -> dict[str, Any]:
        """The gliner2 training record; with a schema, labels become its prompts and every entity type of the
        schema is listed (with [] where the text has none), with its description, as the model reads them."""
        entity_prompt = _prompts(schema.entities) if schema else {}
        relation_prompt = _prompts(schema.relations) if schema else {}
        entities: dict[str, list[Any]] = {}
        types = list(schema.entities) if schema else sorted(self.entity_types | {e.label for e in self.entities})
        for label in types:
            entities[entity_prompt.get(label, label)] = []
        for span in self.entities:
            entities.setdefault(entity_prompt.get(span.label, span.label), []).append(_span_value(span))
        output: dict[str, Any] = {"entities": entities}
        if schema:
            described = {entity_prompt[k]: v.description for k, v in schema.entities.items() if v.description}
            if described:
                output["entity_descriptions"] = described
        if self.relations:
            output["relations"] = [{relation_prompt.get(r.label, r.label): {"head": _span_value(r.head),
                                                                              "tail": _span_value(r.tail)}}
                                   for r in self.relations]
        if self.classifications:
            output["classifications"] = [
                {"task": c.task, "labels": list(c.labels), "true_label": list(c.true_labels),
                 **({"multi_label": True} if c.multi_label else {})} for c in self.classifications]
        record: dict[str, Any] = {"input": self.text, "output": output}
        if self.coreference:
            record["coreference"] = [list(group) for group in self.coreference]
        record.update(self.extra)
        return record


def _prompts(items: dict[str, Any]) -> dict[str, str]:
    return {label: (spec.prompt or default_prompt(label)) for label, spec in items.items()}


def _span_value(span: GoldSpan) -> Any:
    return {"text": span.text, "start": span.start, "end": span.end} if span.located else span.text


# -- reading and checking -----------------------------------------------------------------------------------


class _LabelMap:
    """Gold labels -> schema labels: the label itself, its prompt, or the label in another case."""

    def __init__(self, items: dict[str, Any]):
        self.known = list(items)
        self.by_name: dict[str, str] = {}
        for label, spec in items.items():
            for name in (label, spec.prompt or default_prompt(label), label.casefold()):
                self.by_name.setdefault(name, label)

    def get(self, name: Any) -> str | None:
        if not isinstance(name, str):
            return None
        return self.by_name.get(name) or self.by_name.get(name.casefold())


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed value or None, problem or None) for each non-blank line."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise KgbuildError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line), None
                except json.JSONDecodeError as exc:
                    yield number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
        except UnicodeDecodeError:
            raise KgbuildError(f"{path}: not UTF-8 text") from None


def load_gold(path: str | Path, schema: ExtractionSchema, *, limit: int | None = None) -> list[GoldExample]:
    """Read and check a gliner2-format JSONL file against ``schema``; raises ``GoldDataError`` listing every problem.

    >>> examples = load_gold("gold.jsonl", load_schema("business-news"))
    """
    examples, problems = [], []
    for number, value, problem in read_jsonl(path):
        if limit is not None and len(examples) >= limit:
            break
        where = f"{path}:{number}"
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        example, found = parse_record(value, schema, line=number)
        problems.extend(f"{where}: {p}" for p in found)
        if example is not None and not found:
            examples.append(example)
    if problems:
        raise GoldDataError(str(path), problems)
    if not examples:
        raise GoldDataError(str(path), [f"{path}: no labelled examples in the file"])
    return examples


def check_examples(examples: Iterable[GoldExample], schema: ExtractionSchema, source: str = "<examples>") -> None:
    """Check examples made in memory (converted, exported) the way ``load_gold`` checks a file."""
    problems = []
    for i, example in enumerate(examples, 1):
        _, found = parse_record(example.to_record(), schema, line=example.line or i)
        problems.extend(f"{source}:{example.line or i}: {p}" for p in found)
    if problems:
        raise GoldDataError(source, problems)


def parse_record(value: Any, schema: ExtractionSchema, *, line: int = 0) -> tuple[GoldExample | None, list[str]]:
    """One record as a ``GoldExample`` with schema labels, and its problems (one line each, naming the field)."""
    if not isinstance(value, dict):
        return None, [f"a record must be a JSON object with input and output, not {type(value).__name__}"]
    if "input" not in value and "text" in value:
        return None, ["input: missing (this looks like another format: convert it with kgbuild labels convert)"]
    text = value.get("input")
    if not isinstance(text, str) or not text.strip():
        return None, ["input: must be a non-empty string (the text)"]
    output = value.get("output")
    if not isinstance(output, dict):
        return None, ["output: missing or not an object (entities, relations, classifications)"]
    problems: list[str] = []
    example = GoldExample(text=text, line=line, extra={k: v for k, v in value.items()
                                                       if k not in ("input", "output", "coreference")})
    entity_map, relation_map = _LabelMap(schema.entities), _LabelMap(schema.relations)

    entities = output.get("entities", {})
    if not isinstance(entities, dict):
        problems.append("output.entities: must be an object mapping each entity type to a list")
        entities = {}
    for name, items in entities.items():
        label = entity_map.get(name)
        if label is None:
            problems.append(f"output.entities.{name}: unknown entity type (schema '{schema.name}' has:"
                            f" {', '.join(entity_map.known) or 'none'})")
            continue
        example.entity_types.add(label)
        if not isinstance(items, list):
            problems.append(f"output.entities.{name}: must be a list of spans or strings")
            continue
        for i, item in enumerate(items):
            span, problem = _parse_span(item, text, label)
            if problem:
                problems.append(f"output.entities.{name}[{i}]: {problem}")
            else:
                example.entities.append(span)

    relations = output.get("relations", [])
    if not isinstance(relations, list):
        problems.append("output.relations: must be a list of {relation: {head, tail}} objects")
        relations = []
    for i, item in enumerate(relations):
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(f"output.relations[{i}]: must be one {{relation: {{head, tail}}}} object")
            continue
        ((name, ends),) = item.items()
        label = relation_map.get(name)
        if label is None:
            problems.append(f"output.relations[{i}].{name}: unknown relation type (schema '{schema.name}' has:"
                            f" {', '.join(relation_map.known) or 'none'})")
            continue
        if not isinstance(ends, dict) or "head" not in ends or "tail" not in ends:
            problems.append(f"output.relations[{i}].{name}: must have head and tail")
            continue
        head, head_problem = _parse_span(ends["head"], text, "")
        tail, tail_problem = _parse_span(ends["tail"], text, "")
        for end, problem in (("head", head_problem), ("tail", tail_problem)):
            if problem:
                problems.append(f"output.relations[{i}].{name}.{end}: {problem}")
        if not head_problem and not tail_problem:
            example.relations.append(GoldRelation(label, head, tail))

    classifications = output.get("classifications", [])
    if not isinstance(classifications, list):
        problems.append("output.classifications: must be a list of {task, labels, true_label} objects")
        classifications = []
    for i, item in enumerate(classifications):
        parsed, problem = _parse_classification(item, schema)
        if problem:
            problems.append(f"output.classifications[{i}]: {problem}")
        else:
            example.classifications.append(parsed)

    coreference = value.get("coreference", [])
    if not isinstance(coreference, list) or not all(
            isinstance(group, list) and all(isinstance(n, str) for n in group) for group in coreference):
        problems.append("coreference: must be a list of lists of names")
    else:
        example.coreference = [list(group) for group in coreference]
    return example, problems


def _parse_span(item: Any, text: str, label: str) -> tuple[GoldSpan | None, str]:
    if isinstance(item, str):
        if not item.strip():
            return None, "empty surface"
        if item.casefold() not in text.casefold():
            return None, f"{item!r} is not in the text"
        return GoldSpan(label, item), ""
    if not isinstance(item, dict):
        return None, f"must be a string or a {{text, start, end}} span, not {type(item).__name__}"
    missing = [k for k in ("text", "start", "end") if k not in item]
    if missing:
        return None, f"span lacks {', '.join(missing)}"
    surface, start, end = item["text"], item["start"], item["end"]
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        return None, f"offsets must be integers, got start {start!r}, end {end!r}"
    if not 0 <= start < end <= len(text):
        return None, f"offsets [{start}, {end}) are outside the text (length {len(text)}) or empty"
    if text[start:end] != surface:
        return None, f"offsets [{start}, {end}) cut {text[start:end]!r} from the text, not {surface!r}"
    return GoldSpan(label, surface, start, end), ""


def _parse_classification(item: Any, schema: ExtractionSchema) -> tuple[GoldClassification | None, str]:
    if not isinstance(item, dict) or "task" not in item or "true_label" not in item:
        return None, "must be an object with task, labels and true_label"
    task = item["task"]
    spec = schema.classifications.get(task) if isinstance(task, str) else None
    if spec is None:
        return None, (f"task: unknown classification task {task!r} (schema '{schema.name}' has:"
                      f" {', '.join(schema.classifications) or 'none'})")
    true = item["true_label"]
    true_labels = [true] if isinstance(true, str) else true
    if not isinstance(true_labels, list) or not true_labels or not all(isinstance(x, str) for x in true_labels):
        return None, f"{task}.true_label: must be a label or a non-empty list of labels"
    labels = item.get("labels") or list(spec.labels)
    for label in true_labels:
        if label not in spec.labels:
            return None, f"{task}.true_label: {label!r} is not a label of the task (labels: {', '.join(spec.labels)})"
        if label not in labels:
            return None, f"{task}.true_label: {label!r} is not among the record's labels {labels}"
    unknown = [x for x in labels if x not in spec.labels]
    if unknown:
        return None, f"{task}.labels: {unknown[0]!r} is not a label of the task (labels: {', '.join(spec.labels)})"
    if len(true_labels) > 1 and not spec.multi_label:
        return None, f"{task}.true_label: {len(true_labels)} labels for a single-label task"
    return GoldClassification(task, tuple(labels), tuple(true_labels), spec.multi_label), ""


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write records one per line (UTF-8); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
