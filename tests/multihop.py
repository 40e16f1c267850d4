"""The project's multi-hop retrieval set (bench/data/multihop), and a gazetteer extractor for it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MULTIHOP = Path(__file__).resolve().parents[1] / "bench" / "data" / "multihop"


def questions() -> list[dict]:
    return json.loads((MULTIHOP / "qa.json").read_text(encoding="utf-8"))["questions"]


def gazetteer(schema):
    from kgbuild.extract.gazetteer import GazetteerExtractor

    data = json.loads((MULTIHOP / "gazetteer.json").read_text(encoding="utf-8"))
    return GazetteerExtractor(schema, data["entities"], [tuple(r) for r in data["relations"]], name="gazetteer-multihop")


def corpus_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(MULTIHOP / "corpus.jsonl", root / "corpus.jsonl")
    return root


def passage(hit) -> str:
    """``corpus.jsonl#p02`` -> ``p02``."""
    return hit.path.rsplit("#", 1)[-1]
