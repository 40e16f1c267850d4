"""The retrieve stage: queries over what ``kgbuild ingest`` wrote.

Submodules load on first use, so that importing one channel (``kgbuild.retrieve.graph``) does not
import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.retrieve.vector import build_filter, query

__all__ = ["build_filter", "query"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kgbuild.retrieve import vector

        return getattr(vector, name)
    raise AttributeError(f"module 'kgbuild.retrieve' has no attribute {name!r}")
