"""kgbuild: an LLM-free knowledge-graph builder and RAG indexer on GLiNER2.

>>> import kgbuild
>>> report = kgbuild.ingest("./corpus", kgbuild.Settings(model="./my-gliner2"))
>>> hits = kgbuild.query("new headsets", entities=["COMPANY:Apple"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.pipeline import ingest
    from kgbuild.retrieve.hybrid import hybrid_query
    from kgbuild.retrieve.vector import query
    from kgbuild.settings import Settings
    from kgbuild.index import stats

__all__ = ["Settings", "__version__", "hybrid_query", "ingest", "query", "stats"]

# Imports are lazy so that `kgbuild --help` and re-runs with nothing to do never import torch.
_LAZY = {
    "ingest": ("kgbuild.pipeline", "ingest"),
    "query": ("kgbuild.retrieve.vector", "query"),
    "hybrid_query": ("kgbuild.retrieve.hybrid", "hybrid_query"),
    "stats": ("kgbuild.index", "stats"),
    "Settings": ("kgbuild.settings", "Settings"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kgbuild' has no attribute {name!r}")
