"""Check that an index's graph, vectors and state agree, and fingerprint their content.

Every graph sink exports its whole content in one store-independent form
(``GraphSink.export()`` -> ``kgbuild.types.GraphExport``) and every vector sink its points
(``VectorSink.export()``). :func:`graph_checksum` and :func:`collection_checksum` hash those
exports in a canonical order, so two indexes hold the same content exactly when their checksums
are equal, whichever store holds them and in whatever order it was written.
:func:`compare_index` compares the three parts of an index (``Index.verify``, ``kgbuild verify``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kgbuild.ids import point_id
from kgbuild.state import IngestState
from kgbuild.types import GraphExport

EXPORT_LISTS = ("mentions", "has_chunk", "next_chunk", "relations")


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False)


def canonical_export(export: GraphExport | dict[str, Any]) -> dict[str, Any]:
    """The export as plain data with every list in a fixed order (evidence and aliases too), so equal content
    compares equal; a canonical export given again comes back unchanged."""
    data = export.to_dict() if isinstance(export, GraphExport) else export
    out = json.loads(json.dumps(data, ensure_ascii=False))  # plain dicts and lists
    for entity in out["entities"].values():
        entity["aliases"] = sorted(entity["aliases"])
    for relation in out["relations"]:
        relation["evidence"] = sorted(relation["evidence"], key=_key)
    for name in (*EXPORT_LISTS, "problems"):
        out[name] = sorted(out.get(name, []), key=_key)
    return out


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def graph_checksum(export: GraphExport | dict[str, Any]) -> str:
    return _digest(canonical_export(export))


def collection_checksum(points: dict[str, dict[str, Any]]) -> str:
    """Hash of every point id and payload (vectors are a function of the chunk text, which is in the payload)."""
    return _digest(points)


@dataclass(slots=True)
class VerifyReport:
    out_dir: str
    documents: int = 0  # documents the state vouches for
    graph_documents: int = 0
    vector_points: int = 0
    graph_checksum: str = ""
    collection_checksum: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "ok": self.ok, "documents": self.documents, "graph_documents": self.graph_documents,
                "vector_points": self.vector_points, "graph_checksum": self.graph_checksum,
                "collection_checksum": self.collection_checksum, "problems": list(self.problems)}


def _some(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def compare_index(state: IngestState, graph: GraphExport, points: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between what the state vouches for, the graph and the vector points."""
    problems = [f"graph: {p}" for p in graph.problems]
    vouched = state.all_documents()
    in_graph = set(graph.documents)
    chunks_by_doc: Counter[str] = Counter(c["doc_id"] for c in graph.chunks.values())
    points_by_doc: Counter[str] = Counter(p.get("doc_id", "") for p in points.values())

    for what, missing in (("the graph", sorted(set(vouched) - in_graph)), ("the vectors", sorted(set(vouched) - set(points_by_doc)))):
        docs = [d for d in missing if vouched[d].chunks > 0]
        if docs:
            problems.append(f"{len(docs)} document(s) in the state are missing from {what}: "
                            + _some([vouched[d].path for d in docs]))
    for what, extra in (("the graph", sorted(in_graph - set(vouched))), ("the vectors", sorted(set(points_by_doc) - set(vouched)))):
        if extra:
            names = [graph.documents.get(d, {}).get("path") or d for d in extra]
            problems.append(f"{len(extra)} document(s) in {what} are not in the state (left by an interrupted run?): "
                            + _some(names))
    for doc_id, doc in sorted(vouched.items()):
        in_g, in_v = chunks_by_doc.get(doc_id, 0), points_by_doc.get(doc_id, 0)
        if doc_id in in_graph and in_g != doc.chunks:
            problems.append(f"{doc.path}: the state records {doc.chunks} chunk(s), the graph holds {in_g}")
        if doc_id in points_by_doc and in_v != doc.chunks:
            problems.append(f"{doc.path}: the state records {doc.chunks} chunk(s), the vectors hold {in_v}")
        if doc_id in in_graph and graph.documents[doc_id]["content_hash"] != doc.content_hash:
            problems.append(f"{doc.path}: the graph holds another version of the document than the state records")

    expected_points = {point_id(c): c for c in graph.chunks}
    stray = sorted(pid for pid, p in points.items() if p.get("doc_id") in in_graph and pid not in expected_points)
    if stray:
        problems.append(f"{len(stray)} vector point(s) belong to no chunk of the graph: " + _some(stray))
    for pid, chunk in sorted(expected_points.items()):
        payload = points.get(pid)
        if payload is not None and payload.get("text") != graph.chunks[chunk]["text"]:
            problems.append(f"chunk {chunk}: the vector payload's text differs from the graph's")

    mention_count: Counter[str] = Counter(m["entity_id"] for m in graph.mentions)
    orphans = sorted(e for e in graph.entities if mention_count[e] == 0)
    if orphans:
        problems.append(f"{len(orphans)} entit(y/ies) with no mention left: " + _some(orphans))
    dangling = sorted(m["id"] for m in graph.mentions if m["entity_id"] not in graph.entities or m["chunk_id"] not in graph.chunks)
    if dangling:
        problems.append(f"{len(dangling)} mention(s) point at missing chunks or entities: " + _some(dangling))
    stale = sorted(r["id"] for r in graph.relations if any(e["chunk_id"] not in graph.chunks for e in r["evidence"]))
    if stale:
        problems.append(f"{len(stale)} relation(s) keep evidence from chunks that no longer exist: " + _some(stale))
    return problems
