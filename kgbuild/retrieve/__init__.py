"""The retrieve stage: queries over what ``kgbuild ingest`` wrote."""

from kgbuild.retrieve.vector import build_filter, query

__all__ = ["build_filter", "query"]
