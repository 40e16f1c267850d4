"""Deterministic identifiers: the same input gives the same ids, run after run."""

from __future__ import annotations

import hashlib
import uuid

_POINT_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")


def stable_id(prefix: str, *parts: object) -> str:
    """``stable_id("doc", "a/b.txt")`` -> ``"doc_3f2a..."`` (20 hex digits of BLAKE2b)."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass"), digest_size=10)
    return f"{prefix}_{digest.hexdigest()}"


def document_id(path: str) -> str:
    return stable_id("doc", path)


def chunk_id(doc_id: str, position: int) -> str:
    return f"{doc_id}:{position:05d}"


def entity_id(entity_type: str, normalized_name: str) -> str:
    return stable_id("ent", entity_type, normalized_name)


def relation_id(label: str, head_id: str, tail_id: str) -> str:
    return stable_id("rel", label, head_id, tail_id)


def mention_id(chunk_id_: str, label: str, start: int, end: int) -> str:
    return stable_id("men", chunk_id_, label, start, end)


def point_id(chunk_id_: str) -> str:
    """Qdrant point ids must be integers or UUIDs: a UUIDv5 of the chunk id."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id_))


def content_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def file_hash(path: str, block_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(block_size):
            h.update(block)
    return h.hexdigest()
