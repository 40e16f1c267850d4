"""What a community is, as stored in ``<out>/communities/`` and read by the CLI, retrieval and views.

    meta.json        format, the signature of the retrieval graph the communities were built from, parameters,
                     counts, the embedding model of the summary vectors
    communities.json every community (sorted by level, then id) with its summary
    chunks.json      chunk id -> its community ids (every level), the value of its vector payload field
    vectors.npy      one normalised embedding of each community's summary text, in the same order (may be absent)

Written to a sibling folder and renamed into place (``CommunityIndex.save``): a reader sees the old set or the new
one. ``communities.json`` and ``chunks.json`` are the same bytes for the same index (``tests/test_communities.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from kgbuild.errors import ConfigError
from kgbuild.folders import replace_folder, staging_folder
from kgbuild.types import CommunityRecord

FORMAT = 1
COMMUNITIES_DIR = "communities"


def communities_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / COMMUNITIES_DIR


@dataclass(frozen=True, slots=True)
class CommunityEntity:
    id: str
    key: str  # TYPE:normalised name
    type: str
    name: str
    weight: float  # weighted degree inside the community


@dataclass(frozen=True, slots=True)
class RepresentativeChunk:
    chunk_id: str
    doc_id: str
    path: str
    title: str
    score: float
    text: str  # the start of the chunk's text


@dataclass(slots=True)
class Community:
    """One community and its extractive summary (no LLM): its most central entities with their types, its key
    terms (c-TF-IDF against the other communities of its level), its most representative chunks, the
    classification labels of its documents, its documents, parent and children, and a title made of the first
    entities and terms."""

    id: str
    level: int
    title: str
    parent: str  # "" at level 0
    children: list[str]
    members: list[str]  # entity ids, sorted
    top_entities: list[CommunityEntity]
    top_terms: list[str]
    chunks: list[RepresentativeChunk]
    documents: list[tuple[str, str]]  # (doc id, path), most involved first
    labels: dict[str, dict[str, int]]  # classification task -> label -> documents with it
    chunk_count: int  # chunks assigned to it (see kgbuild.communities.build)

    @property
    def size(self) -> int:
        return len(self.members)

    def summary_text(self) -> str:
        """What global retrieval ranks the community by (BM25 and the summary's embedding)."""
        lines = [self.title, "; ".join(f"{e.name} ({e.type})" for e in self.top_entities), " ".join(self.top_terms)]
        lines += [" ".join(c.title.split()) for c in self.chunks if c.title]
        lines += [" ".join(c.text.split()) for c in self.chunks]
        return "\n".join(line for line in lines if line)

    def record(self) -> CommunityRecord:
        """The community as the graph stores hold it."""
        return CommunityRecord(self.id, self.level, self.title, self.parent, tuple(self.members),
                               tuple(f"{e.type}:{e.name}" for e in self.top_entities), tuple(self.top_terms),
                               self.summary_text())

    def context(self) -> dict[str, Any]:
        """A short description (hybrid retrieval's community context)."""
        return {"id": self.id, "level": self.level, "title": self.title,
                "top_entities": [f"{e.type}:{e.name}" for e in self.top_entities[:5]], "top_terms": self.top_terms[:5]}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size"] = self.size
        out["documents"] = [list(d) for d in self.documents]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Community:
        return cls(d["id"], int(d["level"]), d["title"], d["parent"], list(d["children"]), list(d["members"]),
                   [CommunityEntity(**e) for e in d["top_entities"]], list(d["top_terms"]),
                   [RepresentativeChunk(**c) for c in d["chunks"]], [(a, b) for a, b in d["documents"]],
                   {t: dict(v) for t, v in d["labels"].items()}, int(d["chunk_count"]))


@dataclass(slots=True)
class CommunityIndex:
    """Every community of an index, the chunks' communities, and the summary vectors.

    >>> index = load_communities(Settings(out_dir=".kgbuild"))
    >>> [c.title for c in index.at_level(0)][:3]
    >>> index.get("c0-3f2a9c1b").top_entities
    """

    communities: list[Community]
    chunk_communities: dict[str, list[str]]  # chunk id -> community ids (chunks with none left out)
    signature: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    embedding_model: str = ""
    vectors: np.ndarray | None = None  # len(communities) x dim, normalised; rows of zeros where not embedded
    folder: Path | None = None
    _by_id: dict[str, Community] | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Community]:
        return iter(self.communities)

    def __len__(self) -> int:
        return len(self.communities)

    @property
    def by_id(self) -> dict[str, Community]:
        if self._by_id is None:
            self._by_id = {c.id: c for c in self.communities}
        return self._by_id

    @property
    def levels(self) -> list[int]:
        return sorted({c.level for c in self.communities})

    def check_level(self, level: int | None) -> int | None:
        """``level`` where the index has it (or None: every level); else a ``ConfigError`` naming it."""
        if level is not None and level not in self.levels:
            raise ConfigError(f"--level {level}: the index has community levels {self.levels or 'none'}")
        return level

    def at_level(self, level: int | None) -> list[Community]:
        """The communities of one level (None: all), largest first (none for a level there is not)."""
        found = [c for c in self.communities if level is None or c.level == level]
        return sorted(found, key=lambda c: (c.level, -c.size, c.id))

    def get(self, community_id: str) -> Community:
        """The community with this id (case and surrounding blanks ignored); ``ConfigError`` naming the value if none."""
        found = self.by_id.get(community_id.strip().lower())
        if found is None:
            where = f" in {self.folder.parent}" if self.folder is not None else ""
            raise ConfigError(f"no community {community_id!r}{where} (`kgbuild communities` lists them)")
        return found

    def document_communities(self, level: int = 0) -> dict[str, str]:
        """Each document's dominant community at a level: the one most of its chunks belong to (a chunk in several
        counts 1/n for each; ties: the smaller id). Documents with no community at that level are left out."""
        ids = {c.id for c in self.communities if c.level == level}
        votes: dict[str, dict[str, float]] = {}
        for chunk, found in self.chunk_communities.items():
            mine = [c for c in found if c in ids]
            doc = chunk.rsplit(":", 1)[0]
            for c in mine:
                votes.setdefault(doc, {})
                votes[doc][c] = votes[doc].get(c, 0.0) + 1.0 / len(mine)
        return {doc: min(v, key=lambda c: (-v[c], c)) for doc, v in sorted(votes.items())}

    def of_entity(self, entity_id: str) -> list[Community]:
        """The communities an entity is in, coarse to fine."""
        return [c for c in self.communities if entity_id in set(c.members)]

    # -- storage -----------------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        tmp = staging_folder(folder)
        # written a community (a chunk) at a time, the same bytes as json.dumps of the whole: that string and the
        # dicts it is made from were the largest things an ingest's last step held
        with open(tmp / "communities.json", "w", encoding="utf-8") as fh:
            fh.write('{"communities":[')
            for i, c in enumerate(self.communities):
                fh.write(("," if i else "") + _dumps(c.to_dict()))
            fh.write("]}")
        with open(tmp / "chunks.json", "w", encoding="utf-8") as fh:
            fh.write("{")
            for i, chunk in enumerate(sorted(self.chunk_communities)):
                fh.write(("," if i else "") + _dumps(chunk) + ":" + _dumps(self.chunk_communities[chunk]))
            fh.write("}")
        if self.vectors is not None and len(self.vectors):
            np.save(tmp / "vectors.npy", self.vectors.astype(np.float32, copy=False))
        meta = {"format": FORMAT, "signature": self.signature, "params": self.params, "communities": len(self.communities),
                "levels": self.levels, "chunks": len(self.chunk_communities), "embedding_model": self.embedding_model}
        _write_json(tmp / "meta.json", meta, indent=1)
        for name in ("communities.json", "chunks.json", "meta.json"):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        replace_folder(tmp, folder)
        self.folder = folder

    @classmethod
    def load(cls, folder: Path) -> CommunityIndex | None:
        """The stored communities, or None where there are none (or of another format)."""
        folder = Path(folder)
        meta = stored_meta(folder)
        if meta is None:
            return None
        communities = [Community.from_dict(d) for d in _read_json(folder / "communities.json")["communities"]]
        chunks = _read_json(folder / "chunks.json")
        vectors = np.load(folder / "vectors.npy") if (folder / "vectors.npy").exists() else None
        return cls(communities, chunks, meta.get("signature", ""), meta.get("params", {}), meta.get("embedding_model", ""),
                   vectors, folder)


def stored_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = _read_json(Path(folder) / "meta.json")
    except (OSError, ValueError):
        return None
    return meta if meta.get("format") == FORMAT else None


def _write_json(path: Path, value: Any, indent: int | None = None) -> None:
    separators = (",", ": ") if indent else (",", ":")
    path.write_text(json.dumps(value, ensure_ascii=False, sort_keys=True, indent=indent, separators=separators), encoding="utf-8")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class WithCurrentCommunities(Mapping[str, dict[str, Any]]):
    """Chunk payloads (the retrieval folder's chunk table) with each one's ``communities`` as the communities folder
    has it now. The chunk table is a copy of the vector payloads taken before the communities of the same ingest
    were computed, so its own field lags one ingest behind; hybrid retrieval filters and shows chunks through this.
    Payloads are passed through unchanged where the index has no communities."""

    def __init__(self, table: Any, out_dir: str | Path):
        self.table = table
        self.ids = getattr(table, "ids", None)
        self._folder = communities_dir(out_dir)
        self._assigned: dict[str, list[str]] | None = None
        self._loaded = False

    def _current(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not self._loaded:
            self._loaded = True
            if stored_meta(self._folder) is not None:
                self._assigned = _read_json(self._folder / "chunks.json")
        if self._assigned is None:
            return payload
        return {**payload, "communities": self._assigned.get(str(payload.get("chunk_id")), [])}

    def at(self, i: int) -> dict[str, Any]:
        return self._current(self.table.at(i))

    def __getitem__(self, chunk: str) -> dict[str, Any]:
        return self._current(self.table[chunk])

    def __contains__(self, chunk: object) -> bool:
        return chunk in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def add_community_context(hits: Any, out_dir: str | Path) -> None:
    """Fill each hit's ``community_context`` from its ``communities`` (``Community.context``), where the index has
    communities."""
    found = CommunityIndex.load(communities_dir(out_dir))
    if found is None:
        return
    for hit in hits:
        hit.community_context = [found.by_id[c].context() for c in hit.communities if c in found.by_id]
