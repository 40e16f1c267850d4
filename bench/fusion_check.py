"""Fusion for queries that name no document title: single-hop questions beside the multi-hop sets.

    python -m bench.fusion_check --index-dir DIR [--index-dir DIR2 ...]

Every question of the wikihop development set names a passage's title, so the fusion weights chosen there
(``CHANNEL_WEIGHTS``) are those of a query that names a title. This check makes single-hop questions that name
entities but no title from the first sentence of each indexed passage ("Teutberga was a queen of Lotharingia
by marriage to Lothair II." -> "Which one was a queen of Lotharingia by marriage to Lothair II?", gold: that
passage; the first 200, in id order, whose phrase names something capitalised and no word of the title), and
scores the hybrid retriever with several graph weights for such queries (``weights_without_title``), and each
channel alone. ``DIR`` is an index folder ``bench.retrieval_eval --index-dir`` prepared (its ``corpus/`` and
``index/``). The project's own multi-hop set (bench/data/multihop, gazetteer extractor) is scored with the
same weights. Prints the table; BENCHMARKS.md keeps it under "graph channel".
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

from bench.common import REPO

GRAPH_WEIGHTS = (4.0, 2.0, 1.5, 1.0, 0.5)
_PREDICATE = re.compile(r"\b(?:is|was) (an? |the )(.{12,90}?)[.,;(]")


def single_hop_questions(corpus: list[dict], limit: int = 200) -> list[dict]:
    questions = []
    for passage in sorted(corpus, key=lambda r: r["id"]):
        found = _PREDICATE.search(passage["text"].split(". ")[0])
        if not found or not re.search(r"\b[A-Z][a-z]+", found.group(2)):
            continue
        phrase = (found.group(1) + found.group(2)).strip()
        if any(word in phrase for word in passage["title"].split() if len(word) > 3):
            continue
        questions.append({"id": passage["id"], "question": f"Which one was {phrase}?", "gold": [passage["id"]]})
    return questions[:limit]


def recall(out_dir: Path, questions: list[dict], **options) -> tuple[float, float, float]:
    from kgbuild.retrieve.hybrid import HybridRetriever
    from kgbuild.settings import Settings

    totals = {2: 0.0, 5: 0.0, 10: 0.0}
    with HybridRetriever(Settings(out_dir=out_dir), **options) as retriever:
        for q in questions:
            ranked = list(dict.fromkeys(h.path.rpartition("#")[2] for h in retriever.retrieve(q["question"], k=10)))
            for k in totals:
                totals[k] += len(set(ranked[:k]) & set(q["gold"])) / len(q["gold"])
    return tuple(round(totals[k] / max(len(questions), 1), 3) for k in (2, 5, 10))


def rows(out_dir: Path, questions: list[dict], **common) -> dict[str, tuple]:
    from kgbuild.retrieve.hybrid import CHANNEL_WEIGHTS

    out = {
        "vector": recall(out_dir, questions, graph=False, bm25=False, **common),
        "BM25": recall(out_dir, questions, vector=False, graph=False, **common),
        "graph": recall(out_dir, questions, vector=False, bm25=False, **common),
    }
    for g in GRAPH_WEIGHTS:
        without = dict(CHANNEL_WEIGHTS) if g == CHANNEL_WEIGHTS["graph"] else {"vector": 1.0, "graph": g, "bm25": 1.0}
        out[f"hybrid, no-title weights {without}"] = recall(out_dir, questions, weights=CHANNEL_WEIGHTS,
                                                            weights_without_title=without, **common)
    return out


def project_set(work: Path) -> tuple[Path, list[dict], dict]:
    from bench.retrieval_eval import build_extractor, load_corpus, load_questions
    from kgbuild.embed import SentenceTransformerEmbedder
    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    data = REPO / "bench" / "data" / "multihop"
    _, extractor = build_extractor(data, "gazetteer")
    embedder = SentenceTransformerEmbedder(device="cpu")
    (work / "corpus").mkdir(parents=True)
    (work / "corpus" / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in load_corpus(data)), encoding="utf-8")
    ingest(work / "corpus", Settings(out_dir=work / "index"), extractor=extractor, embedder=embedder)
    return work / "index", load_questions(data), {"extractor": extractor, "embedder": embedder}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, action="append", default=[],
                        help="an index folder bench.retrieval_eval --index-dir prepared (repeatable)")
    args = parser.parse_args()
    for folder in args.index_dir:
        corpus = [json.loads(line) for line in (folder / "corpus" / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
        questions = single_hop_questions(corpus)
        print(f"## single-hop questions over {folder} ({len(questions)})")
        for name, figures in rows(folder / "index", questions).items():
            print(f"| {name} | {' / '.join(f'{x:.3f}' for x in figures)} |")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir, questions, common = project_set(Path(tmp))
        print(f"## bench/data/multihop ({len(questions)} questions)")
        for name, figures in rows(out_dir, questions, **common).items():
            print(f"| {name} | {' / '.join(f'{x:.3f}' for x in figures)} |")


if __name__ == "__main__":
    main()
