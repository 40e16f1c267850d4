"""Plain-data records shared by the graph sinks, so NetworkX and Neo4j store the same values."""

from __future__ import annotations

from typing import Any


def scores_record(classifications: dict) -> dict[str, list[dict[str, Any]]]:
    return {
        task: [{"label": s.label, "confidence": round(s.confidence, 6)} for s in scores]
        for task, scores in classifications.items()
    }


def evidence_record(e: Any) -> dict[str, Any]:
    return {
        "doc_id": e.doc_id,
        "chunk_id": e.chunk_id,
        "head_start": e.head_start,
        "head_end": e.head_end,
        "tail_start": e.tail_start,
        "tail_end": e.tail_end,
        "confidence": e.confidence,
    }


def merge_evidence(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = {(e["doc_id"], e["head_start"], e["head_end"], e["tail_start"], e["tail_end"]): e for e in old}
    for e in new:
        key = (e["doc_id"], e["head_start"], e["head_end"], e["tail_start"], e["tail_end"])
        if key not in merged or merged[key]["confidence"] < e["confidence"]:
            merged[key] = e
    return sorted(merged.values(), key=lambda e: (e["doc_id"], e["head_start"], e["tail_start"], e["chunk_id"]))
