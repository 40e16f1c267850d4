"""The exception tree: everything kgbuild raises on purpose derives from KgbuildError.

Transient errors (a service that may come back) are kept apart from terminal
ones (bad input or configuration) so that retries can be principled.
"""

from __future__ import annotations


class KgbuildError(Exception):
    """Base of every error kgbuild raises on purpose."""

    transient = False


class TransientError(KgbuildError):
    """Worth retrying: a database restarting, a timeout."""

    transient = True


class ConfigError(KgbuildError):
    """A setting has a bad value; the message names the setting and the value."""


class SchemaError(KgbuildError):
    """An extraction schema is invalid; the message names the file and the key."""


class ModelLoadError(KgbuildError):
    """The extraction or embedding model cannot be loaded."""


class DocumentError(KgbuildError):
    """One document cannot be read; the pipeline records it and goes on."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickled from a Ray task to the driver
        return type(self), (self.path, self.reason)


class SinkError(KgbuildError):
    """A graph or vector store refused a write or a read."""


class IndexNotFoundError(KgbuildError):
    """There is no kgbuild index at the given output directory."""
