"""Entity resolution quality: B³ precision, recall and F1 of ``kgbuild.reconcile.reconcile_mentions``.

    python -m bench.resolution [--no-write] [--json]

Scored on gold mentions (the extractor is not part of it), on two sets:

- ``../shared/devsets/redocred-dev-clusters.jsonl``: 500 Wikipedia documents with gold clusters within
  each document (README beside it); skipped when absent. Entities are scored per document, as its
  gold is.
- ``bench/data/resolution-news.md``: the project's own news-style articles, with gold clusters across
  documents (countries and their aliases and demonyms, people by surname across articles, acronyms,
  two Browns, Jordan the country and the player). Written as marked-up text (see ``parse_marked``).

Each set is scored with every rule on, with each rule off in turn (an ablation: "without
cross_document" is each document on its own, as ingest's per-batch reconcile resolves it before its
links across documents are added), and with every rule off
(the baseline: grouping by type and normalised name). Writes the tables to BENCHMARKS.md (section
"resolution").
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Hashable, Iterable, Sequence

from bench.common import REPO, SHARED, git_revision, machine, write_section

DEVSET = SHARED / "devsets" / "redocred-dev-clusters.jsonl"
NEWS = REPO / "bench" / "data" / "resolution-news.md"
TARGETS = {"redocred": (0.985, 0.99), "news": (0.95, 0.97)}  # (F1, precision) targets of issue 14
NOTES = [
    "Re-DocRED mostly keeps a demonym apart from its country: of the 286 demonym mentions (\"Canadian\") whose"
    " document also names the country, 89 are in the country's gold entity and 197 are not; issue 14 asks for them"
    " to be one entity, so the demonyms rule costs 1.3 points of precision on the dev set (of the 2.4 it loses in"
    " all; most of the rest are gold splits of one name, \"Taylor Swift\" / \"Swift\") and gives 10 points of"
    " recall on the news set.",
    "The dev-set target (F1 >= 0.985 at precision >= 0.99) is out of reach of name rules on this set: of the 5.4"
    " points of B3 recall still missing, 2.8 are gold entities whose names share no word at all (translations,"
    " former names, nicknames: \"Kristiania\" / \"Oslo\", \"Siam\" / \"Thailand\"), 0.5 are years inside full"
    " dates (the gold puts \"1971\" in \"February 2 , 1971\"; values are never resolved, on purpose), and the"
    " rest are mostly short names that two full names of the article fit (\"Alger\" beside Ross Patterson and"
    " Harry Alger), kept apart as issue 14 asks; on the precision side, the gold keeps apart demonyms the issue"
    " asks to merge (1.3 points) and splits names a reader joins (\"76ers\" / \"Philadelphia 76ers\").",
    "designator joins an organisation's name to the same name followed only by a word for its kind"
    " (\"Interscope\" / \"Interscope Records\", \"Butler\" / \"Butler University\"): on the dev set 7 right"
    " joins, 1 wrong. It stays off for places, where the same test made 23 wrong joins for 8 right ones:"
    " \"Albany\" is not \"Albany County\", nor \"Guayas\" the \"Guayas River\".",
    "Most of the dev set's remaining splits are not short forms a rule could read: translations and former names"
    " (\"Kristiania\" / \"Oslo\"), nicknames, spelling variants, and short names that two full names of the"
    " document fit (\"Piccard\" among five Piccards), which stay apart on purpose.",
    "cross_document cannot change the dev set's figures: its gold is within documents, and the rule never joins"
    " two entities of one document. Run over the dev set's 500 unrelated articles it makes one join (\"Mary\" ->"
    " \"Virgin Mary\", right); without its two limits (only surnames and acronyms of 3+ letters; another entity"
    " in common held by at most a tenth of the documents) it made 42, mostly wrong (\"Andrew\" -> \"Andrew"
    " Wyeth\", \"State\" -> \"Sangamon State\", \"White\" of McKim, Mead and White -> \"Danny White\").",
    "Ingest applies cross_document too (kgbuild.corpus_links): after each run it finds the links over the"
    " resolution summaries of the whole index with the same code as reconcile_mentions and rewrites only the"
    " documents whose links changed, from their cached extraction, so an index holds the joins these figures"
    " count, whatever its batches and updates.",
    "On the news set, cross_document joins \"Blair\", \"Putin\" and \"Kipchoge\" alone in an article to the full"
    " names of others; \"Macron\" stays alone (its article shares no other entity with the one that names"
    " Emmanuel Macron). \"Mr Obama\" and \"Mrs Obama\" are no longer merged; with both Barack and Michelle Obama"
    " in the article and nothing that says which is which, they and \"Obama\" stay on their own.",
]


@dataclass(frozen=True)
class GoldMention:
    doc_id: str
    start: int
    end: int
    text: str
    type: str
    cluster: str


@dataclass
class GoldSet:
    name: str
    texts: dict[str, str]  # doc id -> text
    mentions: list[GoldMention]
    scope: str  # "document": gold clusters never cross documents; "corpus": they may


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float


def b_cubed(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> Score:
    """B³ (Bagga and Baldwin, 1998) of a clustering: item i's precision is the share of its predicted
    cluster that is in its gold cluster, its recall the share of its gold cluster that is in its
    predicted cluster; both are averaged over the items.

    >>> b_cubed(["a", "a", "b"], [1, 1, 1]).precision  # (2/3 + 2/3 + 1/3) / 3
    0.5555555555555556
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted labels must be given for the same items")
    if not gold:
        return Score(1.0, 1.0, 1.0)
    both = Counter(zip(gold, predicted))
    gold_size, predicted_size = Counter(gold), Counter(predicted)
    precision = sum(n * n / predicted_size[p] for (_, p), n in both.items()) / len(gold)
    recall = sum(n * n / gold_size[g] for (g, _), n in both.items()) / len(gold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1)


def load_jsonl(path: Path, name: str) -> GoldSet:
    """The dev set's format: one document a line, ``{"id", "text", "mentions": [{start, end, text, type, cluster}]}``."""
    texts: dict[str, str] = {}
    mentions: list[GoldMention] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        texts[doc["id"]] = doc["text"]
        seen: set[tuple[int, int, str]] = set()
        for m in doc["mentions"]:
            if (m["start"], m["end"], m["type"]) in seen:  # a span annotated twice is one mention
                continue
            seen.add((m["start"], m["end"], m["type"]))
            mentions.append(GoldMention(doc["id"], m["start"], m["end"], m["text"], m["type"], f"{doc['id']}/{m['cluster']}"))
    return GoldSet(name, texts, mentions, "document")


_MARK = re.compile(r"\[([^\[\]]+)\]\(([A-Z_]+):([\w.-]+)\)")


def parse_marked(source: str, name: str = "news") -> GoldSet:
    """Articles written as Markdown: ``## doc_id`` starts one, and ``[Tony Blair](PERSON:tony_blair)``
    marks a mention with its type and gold cluster (clusters are shared across the articles).

    >>> s = parse_marked("## a\\n[Mr Blair](PERSON:blair) met [AP](ORGANIZATION:ap).\\n")
    >>> s.texts["a"], [(m.text, m.cluster) for m in s.mentions]
    ('Mr Blair met AP.', [('Mr Blair', 'blair'), ('AP', 'ap')])
    """
    texts: dict[str, str] = {}
    mentions: list[GoldMention] = []
    for block in re.split(r"^## ", source, flags=re.MULTILINE)[1:]:
        header, _, body = block.partition("\n")
        doc_id = header.strip()
        if doc_id in texts:
            raise ValueError(f"{name}: article {doc_id!r} appears twice")
        out: list[str] = []
        length = 0
        position = 0
        body = " ".join(body.split())
        for match in _MARK.finditer(body):
            plain = body[position : match.start()]
            out.append(plain)
            length += len(plain)
            surface, entity_type, cluster = match.groups()
            mentions.append(GoldMention(doc_id, length, length + len(surface), surface, entity_type, cluster))
            out.append(surface)
            length += len(surface)
            position = match.end()
        out.append(body[position:])
        texts[doc_id] = "".join(out)
    return GoldSet(name, texts, mentions, "corpus")


def _as_mentions(gold: GoldSet) -> list:
    from kgbuild.ids import mention_id
    from kgbuild.types import Mention

    out = []
    for m in gold.mentions:
        chunk = f"{m.doc_id}:00000"
        out.append(Mention(mention_id(chunk, m.type, m.start, m.end), m.doc_id, chunk, m.type, m.text, m.start, m.end, 1.0))
    return out


def score(gold: GoldSet, rules=None, *, use_text: bool = True) -> Score:
    """B³ of ``reconcile_mentions`` with ``rules`` (None: the defaults, every rule on) on one gold set."""
    from kgbuild.reconcile import reconcile_mentions

    mentions = _as_mentions(gold)
    _, mention_entity = reconcile_mentions(mentions, rules=rules, texts=gold.texts if use_text else None)
    predicted: list[Hashable] = [mention_entity[m.id] for m in mentions]
    if gold.scope == "document":  # gold that never crosses documents: neither may the prediction
        predicted = [(m.doc_id, p) for m, p in zip(gold.mentions, predicted)]
    return b_cubed([m.cluster for m in gold.mentions], predicted)


def casefold_score(gold: GoldSet) -> Score:
    """The dev set README's reference: one entity per (document, type, casefolded name)."""
    scoped = (lambda m: m.doc_id) if gold.scope == "document" else (lambda m: "")
    return b_cubed([m.cluster for m in gold.mentions], [(scoped(m), m.type, m.text.casefold()) for m in gold.mentions])


def ablation(gold: GoldSet) -> list[tuple[str, Score]]:
    from kgbuild.resolution import ResolutionRules

    defaults = ResolutionRules()
    rows = [("all rules on by default", score(gold, defaults))]
    for rule in ResolutionRules.names():
        if defaults.enabled(rule):
            rows.append((f"without {rule}", score(gold, defaults.without(rule))))
        else:  # a rule that is off by default: what switching it on would do
            rows.append((f"with {rule} (off by default)", score(gold, replace(defaults, **{rule: True}))))
    rows.append(("baseline: no rules (type + normalised name)", score(gold, ResolutionRules.none())))
    rows.append(("reference: type + casefolded name", casefold_score(gold)))
    return rows


def load_sets() -> tuple[list[GoldSet], list[str]]:
    sets, skipped = [], []
    if DEVSET.exists():
        sets.append(load_jsonl(DEVSET, "redocred"))
    else:
        skipped.append(f"dev set {DEVSET} not found: skipped")
    sets.append(parse_marked(NEWS.read_text(encoding="utf-8"), "news"))
    return sets, skipped


def table(gold: GoldSet, rows: Iterable[tuple[str, Score]]) -> str:
    docs = len(gold.texts)
    clusters = len({m.cluster for m in gold.mentions})
    lines = [
        f"**{gold.name}**: {docs} documents, {len(gold.mentions):,} mentions, {clusters:,} gold entities "
        f"({'within documents' if gold.scope == 'document' else 'across documents'})",
        "",
        "| rules | B³ precision | B³ recall | B³ F1 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} |" for name, s in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.resolution", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args(argv)
    started = time.perf_counter()
    sets, skipped = load_sets()
    results = {gold.name: ablation(gold) for gold in sets}
    elapsed = time.perf_counter() - started
    if opts.json:
        print(json.dumps({name: {row: vars(s) for row, s in rows} for name, rows in results.items()}, indent=2))
    parts = [
        "## Entity resolution (B³ on gold mentions)",
        "",
        f"Command: `python -m bench.resolution` (git {git_revision()}, {time.strftime('%Y-%m-%d')}, {elapsed:.1f} s)  ",
        f"Machine: {machine()}",
        "",
        "`kgbuild.reconcile.reconcile_mentions` on the gold mentions of each set (types as annotated, document"
        " texts given for acronyms defined in parentheses). Each \"without\" row switches one rule of"
        " `ResolutionRules` off (\"without cross_document\": each document resolved on its own, as ingest's"
        " per-batch `reconcile` does before the links across documents are added); the baseline switches them all"
        " off.",
        "",
    ]
    for gold in sets:
        rows = results[gold.name]
        parts += [table(gold, rows), ""]
        f1_target, p_target = TARGETS.get(gold.name, (None, None))
        if f1_target is not None:
            best = rows[0][1]
            met = best.f1 >= f1_target and best.precision >= p_target
            where = "" if gold.name == "redocred" else " (the issue's target for its own news gold, here on ours)"
            parts += [f"- target F1 ≥ {f1_target} at precision ≥ {p_target}{where}: **{'met' if met else 'NOT met'}**", ""]
    parts += [f"- {line}" for line in [*NOTES, *skipped]]
    body = "\n".join(parts)
    print(body)
    if not opts.no_write:
        write_section("resolution", body)


if __name__ == "__main__":
    main()
