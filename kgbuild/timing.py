"""Clocks of a run: wall time per stage (`with timer("embed"): ...`), and an interval between checkpoints."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class StageTimer:
    """Accumulates seconds per stage into ``seconds`` (an ``IngestReport.stage_seconds``, the ingest summary's profile).

    >>> timer = StageTimer()
    >>> with timer("embed"):
    ...     vectors = embedder.embed(texts)
    >>> timer.seconds["embed"]
    """

    def __init__(self, seconds: dict[str, float] | None = None):
        self.seconds = {} if seconds is None else seconds

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


class Interval:
    """``due()`` once ``seconds`` have passed since it was made or last ``restart()``-ed (checkpoints every N seconds)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._since = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._since >= self.seconds

    def restart(self) -> None:
        self._since = time.monotonic()
