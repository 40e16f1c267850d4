"""An index's whole content (graph export and vector points) for tests that compare two indexes."""

from __future__ import annotations

from kgbuild.index import Index
from kgbuild.settings import Settings
from kgbuild.verify import canonical_export, collection_checksum, graph_checksum


def snapshot(settings: Settings) -> dict:
    """The index's whole content: graph export and vector points, with their checksums."""
    with Index.open_existing(settings).stores() as stores:
        export = stores.graph.export()
        points = stores.vectors.export().points
    assert export.problems == []
    return {"graph": canonical_export(export), "points": points,
            "graph_checksum": graph_checksum(export), "collection_checksum": collection_checksum(points)}


def assert_same_index(got: dict, want: dict) -> None:
    for part in ("documents", "chunks", "entities", "mentions", "has_chunk", "next_chunk", "relations"):
        assert got["graph"][part] == want["graph"][part], part
    assert got["points"].keys() == want["points"].keys()
    for pid, payload in want["points"].items():
        differs = {k: (got["points"][pid].get(k), v) for k, v in payload.items() if got["points"][pid].get(k) != v}
        assert not differs, f"point {pid} ({payload['path']}): {differs}"
    assert (got["graph_checksum"], got["collection_checksum"]) == (want["graph_checksum"], want["collection_checksum"])
