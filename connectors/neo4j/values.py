"""Values as Neo4j stores them: property maps for Bolt, and the names Cypher cannot take as parameters.

Every value travels as a query parameter. Labels and relationship types cannot be
parameters: they must match ``^[A-Za-z][A-Za-z0-9_]*$`` (the extraction schema already
enforces it) and are quoted with backticks; anything else is a ``SinkError``.

Bolt carries UTF-8, which cannot hold a lone surrogate (JSON readers let ``"\\ud800"``
through into document text). A string property holding one is stored with U+FFFD in its
place, and the exact value, JSON-escaped, in a sibling property ``<name>__exact``;
:func:`decode_properties` gives the exact value back.

>>> encode_properties({"text": "a\\ud800"})
{'text': 'a\ufffd', 'text__exact': '"a\\\\ud800"'}
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from kgbuild.errors import SinkError
from kgbuild.types import STRUCTURAL_EDGES

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
NODE_LABELS = frozenset({"Document", "Chunk", "Entity"})
EXACT_SUFFIX = "__exact"

_SURROGATE = re.compile("[\ud800-\udfff]")


def quote_name(name: Any, what: str = "label") -> str:
    """``COMPANY`` -> ``\\`COMPANY\\```; anything but ``[A-Za-z][A-Za-z0-9_]*`` is a SinkError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise SinkError(f"cannot use {name!r} as a Neo4j {what}: it must match ^[A-Za-z][A-Za-z0-9_]*$")
    return f"`{name}`"


def entity_label(entity_type: Any) -> str:
    """The quoted label of an entity type; one that names a node kind (``Chunk``) is a SinkError."""
    if entity_type in NODE_LABELS:
        raise SinkError(f"entity type {entity_type!r} collides with the node label {entity_type}")
    return quote_name(entity_type, "entity type label")


def relation_type(label: Any) -> str:
    """The quoted relationship type of a relation label; a structural one (``MENTIONS``) is a SinkError."""
    if label in STRUCTURAL_EDGES:
        raise SinkError(f"relation label {label!r} collides with the structural relationship {label}")
    return quote_name(label, "relationship type")


def utf8_ok(text: str) -> bool:
    """Whether Bolt can carry ``text`` as it is (no lone surrogate)."""
    return _SURROGATE.search(text) is None


def to_json(value: Any) -> str:
    """JSON text for a string property; ASCII-escaped only when it would hold a lone surrogate."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if utf8_ok(text) else json.dumps(value, ensure_ascii=True, default=str)


def encode_properties(props: dict[str, Any], *, clear: Iterable[str] = ()) -> dict[str, Any]:
    """Property map ready for Bolt: strings (or string lists) with a lone surrogate get an exact twin.

    ``clear`` names properties whose ``__exact`` twin is set to null when not needed (for ``SET +=``).
    """
    out: dict[str, Any] = {}
    for key, value in props.items():
        out[key] = value
        if isinstance(value, str):
            if not utf8_ok(value):
                out[key] = _SURROGATE.sub("\ufffd", value)
                out[key + EXACT_SUFFIX] = json.dumps(value)
        elif isinstance(value, list) and any(isinstance(v, str) and not utf8_ok(v) for v in value):
            out[key] = [_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for v in value]
            out[key + EXACT_SUFFIX] = json.dumps(value)
    for key in clear:
        out.setdefault(key + EXACT_SUFFIX, None)
    return out


def decode_properties(props: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`encode_properties`: exact values back in place, twins dropped."""
    out = {k: v for k, v in props.items() if not k.endswith(EXACT_SUFFIX)}
    for key, value in props.items():
        if key.endswith(EXACT_SUFFIX) and value is not None:
            out[key[: -len(EXACT_SUFFIX)]] = json.loads(value)
    return out


def relation_properties(relation_id: str, evidence: list[dict[str, Any]]) -> dict[str, Any]:
    """A relationship's properties: the best confidence, the count, and each piece of evidence as JSON."""
    return {
        "id": relation_id,
        "confidence": max(e["confidence"] for e in evidence),
        "count": len(evidence),
        "evidence": [to_json(e) for e in evidence],
        "evidence_chunk_ids": [e["chunk_id"] for e in evidence],
    }
