"""Labelled data from the tools people label with, in gliner2's JSONL training format (``kgbuild.train.gold``).

- ``labelstudio``: a Label Studio JSON export (a list of tasks; ``labels`` spans, ``relation`` links and
  ``choices`` of each task's first annotation that was not cancelled).
- ``doccano``: a doccano JSONL export: sequence labelling (``"label": [[start, end, "TYPE"], ...]``), relation
  extraction (``"entities"`` with ``start_offset``/``end_offset`` and ``"relations"`` with ``from_id``/``to_id``/
  ``type``), or text classification (``"label": ["positive"]``, put under ``classification_task``).
- ``conll``: CoNLL-style token-per-line files, the tag in the last column (BIO, IOB1 or BIOES), a blank line
  between sentences, ``-DOCSTART-`` lines skipped; each sentence becomes one example, its tokens joined by spaces.
- ``redocred``: Re-DocRED windows (``text``, ``entities`` as ``[start, end, type, text]``, ``clusters`` of names,
  ``relations`` as ``[type, head cluster, tail cluster]``): relations name each entity by its first name, and the
  clusters become the record's ``coreference``.

``label_map`` renames labels on the way (``{"PER": "PERSON"}``); the result is checked against a schema by
``load_gold`` when it is read, or by ``convert_labels`` when one is given.

>>> records = convert_file("export.json", "labelstudio")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from kgbuild.errors import KgbuildError
from kgbuild.train.gold import GoldDataError, parse_record, read_jsonl, write_jsonl

FORMATS = ("labelstudio", "doccano", "conll", "redocred")


class ConvertError(KgbuildError):
    """A file that is not in the format it was said to be in."""


def _span(text: str, start: int, end: int) -> dict[str, Any]:
    return {"text": text[start:end], "start": start, "end": end}


def _record(text: str, entities: dict[str, list], relations: list | None = None,
            classifications: list | None = None, **extra: Any) -> dict[str, Any]:
    output: dict[str, Any] = {"entities": entities}
    if relations:
        output["relations"] = relations
    if classifications:
        output["classifications"] = classifications
    return {"input": text, "output": output, **{k: v for k, v in extra.items() if v not in (None, [], {})}}


def _classification(task: str, labels: list[str]) -> dict[str, Any]:
    return {"task": task, "labels": list(labels), "true_label": list(labels)}


# -- Label Studio ---------------------------------------------------------------------------------------------


def from_labelstudio(path: Path, label: Callable[[str], str], *, text_field: str = "text",
                     classification_task: str | None = None) -> Iterator[dict[str, Any]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConvertError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ConvertError(f"{path}: a Label Studio JSON export is a list of tasks")
    for number, task in enumerate(tasks, 1):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise ConvertError(f"{path}: task {number}: no data object (is this a Label Studio JSON export?)")
        text = data.get(text_field)
        if not isinstance(text, str):
            text = next((v for v in data.values() if isinstance(v, str)), None)
        if text is None:
            raise ConvertError(f"{path}: task {number}: data has no text field {text_field!r}")
        annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        results = annotations[0].get("result", []) if annotations else []
        entities: dict[str, list] = {}
        spans: dict[str, dict] = {}
        relations, classifications = [], []
        for result in results:
            value = result.get("value") or {}
            kind = result.get("type")
            if kind in ("labels", "hypertextlabels") and "start" in value and "end" in value:
                start, end = int(value["start"]), int(value["end"])
                for name in value.get(kind) or value.get("labels") or []:
                    span = _span(text, start, end)
                    entities.setdefault(label(name), []).append(span)
                    spans[str(result.get("id"))] = span
            elif kind == "choices":
                task_name = classification_task or result.get("from_name") or "label"
                classifications.append(_classification(task_name, [label(c) for c in value.get("choices", [])]))
        for result in results:
            if result.get("type") == "relation":
                head, tail = spans.get(str(result.get("from_id"))), spans.get(str(result.get("to_id")))
                if head is None or tail is None:
                    continue
                if result.get("direction") == "left":
                    head, tail = tail, head
                for name in result.get("labels") or []:
                    relations.append({label(name): {"head": head, "tail": tail}})
        yield _record(text, entities, relations, classifications, id=task.get("id"))


# -- doccano --------------------------------------------------------------------------------------------------


def from_doccano(path: Path, label: Callable[[str], str], *, text_field: str = "text",
                 classification_task: str | None = None) -> Iterator[dict[str, Any]]:
    for number, value, problem in read_jsonl(path):
        if problem or not isinstance(value, dict) or not isinstance(value.get(text_field), str):
            raise ConvertError(f"{path}:{number}: not a doccano JSONL record with a {text_field!r} field"
                               + (f" ({problem})" if problem else ""))
        text = value[text_field]
        entities: dict[str, list] = {}
        relations, classifications = [], []
        by_id: dict[Any, dict] = {}
        for item in value.get("entities") or []:  # relation extraction export
            span = _span(text, int(item["start_offset"]), int(item["end_offset"]))
            entities.setdefault(label(item["label"]), []).append(span)
            by_id[item.get("id")] = span
        for item in value.get("relations") or []:
            head, tail = by_id.get(item.get("from_id")), by_id.get(item.get("to_id"))
            if head is not None and tail is not None:
                relations.append({label(item["type"]): {"head": head, "tail": tail}})
        labels = value.get("label", value.get("labels")) or []
        spans = [x for x in labels if isinstance(x, (list, tuple)) and len(x) == 3]
        for start, end, name in spans:
            entities.setdefault(label(name), []).append(_span(text, int(start), int(end)))
        names = [x for x in labels if isinstance(x, str)]
        if names:
            if not classification_task:
                raise ConvertError(f"{path}:{number}: text classification labels {names}: say which task they"
                                   " belong to (--task NAME)")
            classifications.append(_classification(classification_task, [label(n) for n in names]))
        yield _record(text, entities, relations, classifications, id=value.get("id"))


# -- CoNLL BIO ------------------------------------------------------------------------------------------------


def from_conll(path: Path, label: Callable[[str], str], **_: Any) -> Iterator[dict[str, Any]]:
    sentence: list[tuple[str, str]] = []
    first_line = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines + [""], 1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if sentence:
                yield _conll_sentence(sentence, label, path, first_line)
            sentence = []
            continue
        if len(columns) < 2:
            raise ConvertError(f"{path}:{number}: a CoNLL line is a token and its tag (BIO), got {line!r}")
        if not sentence:
            first_line = number
        sentence.append((columns[0], columns[-1]))


def _conll_sentence(tokens: list[tuple[str, str]], label: Callable[[str], str], path: Path,
                    line: int) -> dict[str, Any]:
    text, starts = "", []
    for token, _ in tokens:
        text += (" " if text else "")
        starts.append(len(text))
        text += token
    entities: dict[str, list] = {}
    current: tuple[str, int, int] | None = None  # type, start, end

    def close() -> None:
        if current is not None:
            entities.setdefault(label(current[0]), []).append(_span(text, current[1], current[2]))

    for (token, tag), start in zip(tokens, starts):
        end = start + len(token)
        prefix, _, kind = tag.partition("-")
        if tag != "O" and (prefix not in ("B", "I", "E", "S") or not kind):
            raise ConvertError(f"{path}:{line}: tag {tag!r} is not O, B-TYPE, I-TYPE, E-TYPE or S-TYPE")
        if tag == "O":
            close()
            current = None
        elif prefix in ("B", "S") or current is None or current[0] != kind:
            close()
            current = (kind, start, end)
        else:  # I- or E- continuing the entity
            current = (kind, current[1], end)
        if prefix in ("S", "E"):
            close()
            current = None
    close()
    return _record(text, entities)


# -- Re-DocRED windows ----------------------------------------------------------------------------------------


def from_redocred(path: Path, label: Callable[[str], str], *, classification_task: str | None = None,
                  **_: Any) -> Iterator[dict[str, Any]]:
    for number, value, problem in read_jsonl(path):
        if problem or not isinstance(value, dict) or "clusters" not in value or "text" not in value:
            raise ConvertError(f"{path}:{number}: not a Re-DocRED window (text, entities, clusters, relations)")
        text = value["text"]
        entities: dict[str, list] = {}
        for start, end, name, _surface in value.get("entities", []):
            entities.setdefault(label(name), []).append(_span(text, int(start), int(end)))
        clusters = {str(k): [n for n in names if n] for k, names in value["clusters"].items()}
        relations = []
        for name, head, tail in value.get("relations", []):
            if clusters.get(str(head)) and clusters.get(str(tail)):
                relations.append({label(name): {"head": clusters[str(head)][0], "tail": clusters[str(tail)][0]}})
        classifications = ([_classification(classification_task, [value["subject"]])]
                           if classification_task and value.get("subject") else [])
        yield _record(text, entities, relations, classifications, title=value.get("title"),
                      coreference=[names for names in clusters.values() if len(names) > 1])


def parse_label_map(items: list[str]) -> dict[str, str]:
    """``["PER=PERSON", "ORG=COMPANY"]`` -> ``{"PER": "PERSON", "ORG": "COMPANY"}``."""
    mapping = {}
    for item in items:
        before, eq, after = item.partition("=")
        if not eq or not before.strip() or not after.strip():
            raise ConvertError(f"--map {item!r}: write it as FROM=TO")
        mapping[before.strip()] = after.strip()
    return mapping


CONVERTERS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "labelstudio": from_labelstudio, "doccano": from_doccano, "conll": from_conll, "redocred": from_redocred,
}


def convert_file(path: str | Path, fmt: str, *, label_map: Mapping[str, str] | None = None,
                 text_field: str = "text", classification_task: str | None = None) -> list[dict[str, Any]]:
    """The records of an exported file, in gliner2's training format."""
    if fmt not in CONVERTERS:
        raise ConvertError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    mapping = dict(label_map or {})
    try:
        return list(CONVERTERS[fmt](path, lambda name: mapping.get(name, name), text_field=text_field,
                                    classification_task=classification_task))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConvertError(f"{path}: not a {fmt} file as expected ({type(exc).__name__}: {exc})") from None


def convert_labels(path: str | Path, fmt: str, out: str | Path, *, schema: Any = None,
                   label_map: Mapping[str, str] | None = None, text_field: str = "text",
                   classification_task: str | None = None) -> int:
    """Convert ``path`` and write gliner2 JSONL to ``out``; with a schema, check every record first (nothing is
    written if one fails). Returns how many records were written."""
    records = convert_file(path, fmt, label_map=label_map, text_field=text_field,
                           classification_task=classification_task)
    if schema is not None:
        problems = []
        for number, record in enumerate(records, 1):
            _, found = parse_record(record, schema, line=number)
            problems.extend(f"{path} record {number}: {p}" for p in found)
        if problems:
            raise GoldDataError(str(path), problems)
    return write_jsonl(records, out)
