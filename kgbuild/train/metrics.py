"""Precision, recall and F1 of predictions against labelled examples, and the commonest errors.

Entities: *exact* is span and type equal; *partial* counts a prediction that overlaps a gold mention of the same
type (one to one). A gold mention given by its surface only is matched by type and text (case-insensitive),
each distinct surface once. Relations are (head, type, tail), with head and tail compared by their text
(case- and space-insensitive, as gliner2's relation format names them), names in one ``coreference`` group
being the same entity; each distinct triple counts once per example. Classifications: each (task, label)
given or predicted per example.

Per label, micro (pooled counts) and macro (mean over the labels that occur in the gold or the predictions).
The error summary sorts what went wrong, with one example each: *wrong type* (the span was found with another
type), *boundary* (an overlapping span of the right type), *boundary and type*, *missed*, *spurious*; for
relations *wrong type*, *reversed*, *missed*, *spurious*; for classifications *wrong label*.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from kgbuild.train.gold import GoldExample, GoldRelation, GoldSpan


@dataclass(slots=True)
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def add(self, other: PRF) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    def to_dict(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass(slots=True)
class TaskScores:
    """Scores of one task (entities, relations, ...): per label, pooled (micro) and averaged (macro)."""

    per_label: dict[str, PRF] = field(default_factory=dict)

    def count(self, label: str, tp: int = 0, fp: int = 0, fn: int = 0) -> None:
        self.per_label.setdefault(label, PRF()).add(PRF(tp, fp, fn))

    def count_exact(self, gold: Iterable[tuple], predicted: Iterable[tuple]) -> None:
        """Exact matches of keys whose first element is the label: shared ones are true positives, the rest of the
        predicted false positives, the rest of the gold false negatives."""
        gold, predicted = set(gold), set(predicted)
        for key in gold & predicted:
            self.count(key[0], tp=1)
        for key in predicted - gold:
            self.count(key[0], fp=1)
        for key in gold - predicted:
            self.count(key[0], fn=1)

    @property
    def micro(self) -> PRF:
        total = PRF()
        for scores in self.per_label.values():
            total.add(scores)
        return total

    @property
    def macro(self) -> dict[str, float]:
        labels = [s for s in self.per_label.values() if s.tp + s.fp + s.fn]
        if not labels:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        return {name: round(sum(getattr(s, name) for s in labels) / len(labels), 4)
                for name in ("precision", "recall", "f1")}

    def to_dict(self) -> dict[str, Any]:
        return {"micro": self.micro.to_dict(), "macro": self.macro,
                "per_label": {label: s.to_dict() for label, s in sorted(self.per_label.items())}}


@dataclass(frozen=True, slots=True)
class ErrorKind:
    task: str  # entities, relations, classifications
    kind: str  # wrong type, boundary, boundary and type, missed, spurious, reversed, wrong label
    gold: str  # the gold label ("" for spurious)
    predicted: str  # the predicted label ("" for missed)


@dataclass(slots=True)
class ErrorSummary:
    counts: Counter[ErrorKind] = field(default_factory=Counter)
    examples: dict[ErrorKind, str] = field(default_factory=dict)

    def add(self, error: ErrorKind, example: str) -> None:
        self.counts[error] += 1
        self.examples.setdefault(error, example)

    def most_common(self, n: int = 10) -> list[tuple[ErrorKind, int, str]]:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0].task, item[0].kind, item[0].gold,
                                                                 item[0].predicted))
        return [(error, count, self.examples[error]) for error, count in ranked[:n]]


@dataclass(slots=True)
class Prediction:
    """What a model found in one example's text (schema labels, offsets into the text)."""

    entities: list[GoldSpan] = field(default_factory=list)
    relations: list[GoldRelation] = field(default_factory=list)
    classifications: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class Scores:
    entities: TaskScores = field(default_factory=TaskScores)
    entities_partial: TaskScores = field(default_factory=TaskScores)
    relations: TaskScores = field(default_factory=TaskScores)
    classifications: TaskScores = field(default_factory=TaskScores)
    errors: ErrorSummary = field(default_factory=ErrorSummary)
    examples: int = 0

    def to_dict(self, top_errors: int = 10) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "entities": self.entities.to_dict(),
            "entities_partial": self.entities_partial.to_dict(),
            "relations": self.relations.to_dict(),
            "classifications": self.classifications.to_dict(),
            "errors": [{"task": e.task, "kind": e.kind, "gold": e.gold, "predicted": e.predicted, "count": n,
                        "example": example} for e, n, example in self.errors.most_common(top_errors)],
        }


def score(examples: Sequence[GoldExample], predictions: Sequence[Prediction]) -> Scores:
    """Score predictions (one per example, in order) against the examples.

    >>> score([gold], [Prediction(entities=[GoldSpan("PERSON", "Tim Cook", 0, 8)])]).entities.micro.f1
    1.0
    """
    if len(examples) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    scores = Scores(examples=len(examples))
    for example, prediction in zip(examples, predictions):
        _score_entities(example, prediction, scores)
        _score_relations(example, prediction, scores)
        _score_classifications(example, prediction, scores)
    return scores


def normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _snippet(text: str, start: int | None = None, end: int | None = None, width: int = 40) -> str:
    if start is None or end is None:
        return text[: 2 * width].replace("\n", " ")
    left, right = max(0, start - width), min(len(text), end + width)
    return (("…" if left else "") + text[left:start] + "[" + text[start:end] + "]" + text[end:right]
            + ("…" if right < len(text) else "")).replace("\n", " ")


def _overlaps(a: GoldSpan, b: GoldSpan) -> bool:
    return a.start < b.end and b.start < a.end  # type: ignore[operator]


def _score_entities(example: GoldExample, prediction: Prediction, scores: Scores) -> None:
    text = example.text
    # types the example labels: a prediction of another type is neither right nor wrong here
    types = example.entity_types | {g.label for g in example.entities}
    predicted = [p for p in prediction.entities if p.label in types]
    if not all(g.located for g in example.entities):
        _score_entity_surfaces(example, predicted, scores)
        return
    gold = {(g.label, g.start, g.end): g for g in example.entities}
    pred = {(p.label, p.start, p.end): p for p in predicted}
    scores.entities.count_exact(gold, pred)

    # partial: one to one, same type, overlapping (exact matches first)
    used: set[tuple] = set()
    for key, p in sorted(pred.items(), key=lambda item: (item[0] not in gold, item[0][1], item[0][2])):
        match = key if key in gold and key not in used else next(
            (k for k, g in gold.items() if k not in used and g.label == p.label and _overlaps(g, p)), None)
        if match is None:
            scores.entities_partial.count(p.label, fp=1)
        else:
            used.add(match)
            scores.entities_partial.count(p.label, tp=1)
    for key in gold.keys() - used:
        scores.entities_partial.count(key[0], fn=1)

    # errors
    for key in pred.keys() - gold.keys():
        p = pred[key]
        same_span = [g for g in gold.values() if (g.start, g.end) == (p.start, p.end)]
        overlapping = [g for g in gold.values() if _overlaps(g, p)]
        if same_span:
            kind, g = "wrong type", same_span[0]
        elif any(g.label == p.label for g in overlapping):
            kind, g = "boundary", next(g for g in overlapping if g.label == p.label)
        elif overlapping:
            kind, g = "boundary and type", overlapping[0]
        else:
            scores.errors.add(ErrorKind("entities", "spurious", "", p.label), _snippet(text, p.start, p.end))
            continue
        scores.errors.add(ErrorKind("entities", kind, g.label, p.label),
                          f"{_snippet(text, p.start, p.end)} (gold {g.text!r})")
    for key in gold.keys() - pred.keys():
        g = gold[key]
        if not any(_overlaps(g, p) for p in pred.values()):
            scores.errors.add(ErrorKind("entities", "missed", g.label, ""), _snippet(text, g.start, g.end))


def _score_entity_surfaces(example: GoldExample, predicted: list[GoldSpan], scores: Scores) -> None:
    gold = {(g.label, normalise(g.text)) for g in example.entities}
    pred = {(p.label, normalise(p.text)) for p in predicted}
    for task in (scores.entities, scores.entities_partial):
        task.count_exact(gold, pred)
    gold_types: dict[str, set[str]] = {}
    for label, surface in gold:
        gold_types.setdefault(surface, set()).add(label)
    for label, surface in sorted(pred - gold):
        if surface in gold_types:
            other = sorted(gold_types[surface])[0]
            scores.errors.add(ErrorKind("entities", "wrong type", other, label), surface)
        else:
            scores.errors.add(ErrorKind("entities", "spurious", "", label), surface)
    pred_surfaces = {surface for _, surface in pred}
    for label, surface in sorted(gold - pred):
        if surface not in pred_surfaces:
            scores.errors.add(ErrorKind("entities", "missed", label, ""), surface)


def _score_relations(example: GoldExample, prediction: Prediction, scores: Scores) -> None:
    canonical: dict[str, str] = {}
    for group in example.coreference:
        names = [normalise(n) for n in group if n.strip()]
        for name in names:
            canonical.setdefault(name, names[0])

    def entity(span: GoldSpan) -> str:
        name = normalise(span.text)
        return canonical.get(name, name)

    gold = {(r.label, entity(r.head), entity(r.tail)): r for r in example.relations}
    pred: dict[tuple[str, str, str], GoldRelation] = {}
    for r in prediction.relations:
        pred.setdefault((r.label, entity(r.head), entity(r.tail)), r)
    scores.relations.count_exact(gold, pred)
    gold_pairs: dict[tuple[str, str], str] = {(h, t): label for label, h, t in gold}
    for key in sorted(pred.keys() - gold.keys()):
        label, head, tail = key
        r = pred[key]
        shown = f"{r.head.text} -{label}-> {r.tail.text}"
        if (head, tail) in gold_pairs:
            scores.errors.add(ErrorKind("relations", "wrong type", gold_pairs[(head, tail)], label), shown)
        elif (label, tail, head) in gold:
            scores.errors.add(ErrorKind("relations", "reversed", label, label), shown)
        else:
            scores.errors.add(ErrorKind("relations", "spurious", "", label), shown)
    pred_pairs = {(h, t) for _, h, t in pred} | {(t, h) for _, h, t in pred}
    for key in sorted(gold.keys() - pred.keys()):
        label, head, tail = key
        if (head, tail) not in pred_pairs:
            r = gold[key]
            scores.errors.add(ErrorKind("relations", "missed", label, ""), f"{r.head.text} -{label}-> {r.tail.text}")


def _score_classifications(example: GoldExample, prediction: Prediction, scores: Scores) -> None:
    for gold in example.classifications:
        true = set(gold.true_labels)
        got = set(prediction.classifications.get(gold.task, ()))
        for label in true & got:
            scores.classifications.count(f"{gold.task}={label}", tp=1)
        for label in got - true:
            scores.classifications.count(f"{gold.task}={label}", fp=1)
        for label in true - got:
            scores.classifications.count(f"{gold.task}={label}", fn=1)
        if true != got:
            wrong = ErrorKind("classifications", "wrong label", f"{gold.task}={','.join(sorted(true))}",
                              f"{gold.task}={','.join(sorted(got)) or '(none)'}")
            scores.errors.add(wrong, _snippet(example.text))
