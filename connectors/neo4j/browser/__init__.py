"""Neo4j Browser helpers: a GRASS style for kgbuild graphs and a few starter queries.

>>> from kgbuild.connectors.neo4j.browser import grass_text, starter_queries
>>> ":style " + grass_text()        # paste into the Browser's editor to apply the style
>>> dict(starter_queries())["Neighbourhood of an entity"]

The files ship with the package: ``kgbuild.grass`` (drag it onto the Browser's style
panel, or run ``:style`` followed by its text) and ``starter-queries.cypher``.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["grass_path", "grass_rules", "grass_text", "starter_queries", "starter_queries_path", "starter_query"]

_HERE = Path(__file__).resolve().parent
_TITLE = re.compile(r"^//\s*title:\s*(?P<title>.+?)\s*$")


def grass_path() -> Path:
    """Path of the packaged GRASS style file."""
    return _HERE / "kgbuild.grass"


def grass_text() -> str:
    """The GRASS style, as text."""
    return grass_path().read_text(encoding="utf-8")


_RULE = re.compile(r"^\s*(?P<selector>(?:node|relationship)(?:\.[A-Za-z][\w]*)*)\s*\{(?P<body>[^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", re.M)
_PROP = re.compile(r"^\s*(?P<key>[a-z-]+)\s*:\s*(?P<value>.*?)\s*;?\s*$")


def grass_rules(text: str | None = None) -> dict[str, dict[str, str]]:
    """The style as ``{selector: {property: value}}`` (``"node.COMPANY": {"color": "#1F77B4", ...}``).

    Caption values keep their quotes stripped: ``{"caption": "{name}"}``. This is the shape
    Neo4j Browser keeps in its ``neo4j.grass`` localStorage entry.
    """
    rules: dict[str, dict[str, str]] = {}
    for match in _RULE.finditer(grass_text() if text is None else text):
        props = rules.setdefault(match.group("selector"), {})
        for line in match.group("body").splitlines():
            prop = _PROP.match(line)
            if prop:
                props[prop.group("key")] = prop.group("value").strip().strip('"').strip("'")
    return rules


def starter_queries_path() -> Path:
    """Path of the packaged starter queries."""
    return _HERE / "starter-queries.cypher"


def _parse(text: str) -> list[tuple[str, str]]:
    queries: list[tuple[str, str]] = []
    title: str | None = None
    body: list[str] = []

    def finish() -> None:
        if title is not None:
            cypher = "\n".join(body).strip()
            if cypher.endswith(";"):
                cypher = cypher[:-1].rstrip()
            if not cypher:
                raise ValueError(f"starter query {title!r} has no Cypher")
            queries.append((title, cypher))

    for line in text.splitlines():
        match = _TITLE.match(line)
        if match:
            finish()
            title, body = match.group("title"), []
        elif title is not None and not line.lstrip().startswith("//"):
            body.append(line)
    finish()
    return queries


def starter_queries() -> list[tuple[str, str]]:
    """``(title, cypher)`` for each query of ``starter-queries.cypher``, in file order.

    The Cypher has no comment lines and no trailing semicolon; parameters are ``$name`` style.
    """
    return _parse(starter_queries_path().read_text(encoding="utf-8"))


def starter_query(title: str) -> str:
    """The Cypher of the starter query with this title (case-insensitive); KeyError if none."""
    for name, cypher in starter_queries():
        if name.lower() == title.lower():
            return cypher
    raise KeyError(f"no starter query titled {title!r}; have {[name for name, _ in starter_queries()]}")
