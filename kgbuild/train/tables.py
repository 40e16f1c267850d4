"""The tables ``kgbuild eval`` and ``kgbuild train`` show (rich ``Table`` objects; the CLI prints them)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from kgbuild.train.evaluate import EvalReport
from kgbuild.train.metrics import Scores, TaskScores

TASKS = (("entities", "entities (exact)"), ("entities_partial", "entities (overlap)"), ("relations", "relations"),
         ("classifications", "classifications"))


def _used(scores: Scores) -> list[tuple[str, str, TaskScores]]:
    return [(key, name, getattr(scores, key)) for key, name in TASKS
            if getattr(scores, key).per_label]


def summary_table(report: EvalReport) -> Table:
    adapter = f" + adapter {report.adapter}" if report.adapter else ""
    table = Table("task", "precision", "recall", "F1", "macro F1", "gold", "predicted",
                  title=f"kgbuild eval {report.source}: {report.scores.examples} examples, model {report.model}{adapter},"
                        f" {report.relation_decoding} relation decoding",
                  title_justify="left")
    for _, name, task in _used(report.scores):
        micro = task.micro
        table.add_row(name, f"{micro.precision:.3f}", f"{micro.recall:.3f}", f"[bold]{micro.f1:.3f}[/]",
                      f"{task.macro['f1']:.3f}", str(micro.tp + micro.fn), str(micro.tp + micro.fp))
    return table


def per_label_table(scores: Scores) -> Table:
    table = Table("task", "label", "precision", "recall", "F1", "gold", "predicted", title="per label", title_justify="left")
    for key, name, task in _used(scores):
        if key == "entities_partial":
            continue
        for label, s in sorted(task.per_label.items()):
            table.add_row(name, Text(label), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}",
                          str(s.tp + s.fn), str(s.tp + s.fp))
    return table


def errors_table(scores: Scores, top: int = 10) -> Table | None:
    common = scores.errors.most_common(top)
    if not common:
        return None
    table = Table("count", "task", "error", "gold", "predicted", "example", title="commonest errors", title_justify="left")
    for error, count, example in common:
        table.add_row(str(count), error.task, error.kind, Text(error.gold or "-"), Text(error.predicted or "-"),
                      Text(example[:90]))
    return table


def before_after_table(before: EvalReport, after: EvalReport, compared_on: str) -> Table:
    table = Table("task", "before P", "before R", "before F1", "after P", "after R", "after F1", "F1 change",
                  title=f"before and after training, on the {compared_on} ({after.scores.examples})", title_justify="left")
    for key, name in TASKS:
        b, a = getattr(before.scores, key), getattr(after.scores, key)
        if not b.per_label and not a.per_label:
            continue
        mb, ma = b.micro, a.micro
        change = ma.f1 - mb.f1
        style = "green" if change > 0 else ("red" if change < 0 else "")
        table.add_row(name, f"{mb.precision:.3f}", f"{mb.recall:.3f}", f"{mb.f1:.3f}", f"{ma.precision:.3f}",
                      f"{ma.recall:.3f}", f"[bold]{ma.f1:.3f}[/]", Text(f"{change:+.3f}", style=style))
    return table
