"""Extraction that one bad chunk cannot stop: chunks go to the model in windows; when a window
raises, its chunks go one at a time, and the chunk that broke it is reported as a failure string
while the others still count.

A ``KgbuildError`` (a missing model, a wrong result count) is the run's fault, not a chunk's: it
propagates. After each window the runner reports progress, gives the model's freed memory back to
the OS, and announces the hook point ``extract``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from kgbuild.errors import KgbuildError
from kgbuild.extract.base import Extractor, RawExtraction, link_extraction, without_header
from kgbuild.memory import release_heap
from kgbuild.hooks import reached
from kgbuild.schema import ExtractionSchema
from kgbuild.timing import StageTimer
from kgbuild.types import Chunk, ChunkExtraction


def extract_chunks(
    extractor: Extractor,
    schema: ExtractionSchema,
    chunks: Sequence[Chunk],
    *,
    window: int,
    timer: StageTimer,
    on_done: Callable[[int], None],
) -> list[ChunkExtraction | str]:
    """One result per chunk, in order: its linked extraction, or why the model failed on it. The model reads
    each chunk with its header (``Chunk.contextual_text``); what it finds in the header is dropped.

    ``window`` chunks go to the model at a time; ``on_done(n)`` follows each window; the timer gets
    ``model`` (the extractor's calls) and ``link`` (schema checks and document offsets).
    """
    results: list[ChunkExtraction | str] = []
    window = max(window, 1)
    for i in range(0, len(chunks), window):
        part = chunks[i : i + window]
        try:
            raws: list[RawExtraction | str] = list(_extract_texts(extractor, [c.contextual_text for c in part], timer))
        except KgbuildError:
            raise
        except Exception:
            # find the chunk that broke the window; the others still count
            raws = [_extract_one(extractor, c.contextual_text, timer) for c in part]
        with timer("link"):
            results.extend(r if isinstance(r, str) else
                           link_extraction(c, without_header(r, len(c.contextual_text) - len(c.text), c.text), schema)
                           for c, r in zip(part, raws))
        on_done(len(part))
        release_heap()
        reached("extract")
    return results


def _extract_texts(extractor: Extractor, texts: list[str], timer: StageTimer) -> list[RawExtraction]:
    with timer("model"):
        raw = extractor.extract(texts)
    if len(raw) != len(texts):
        raise KgbuildError(f"extractor {extractor.name} returned {len(raw)} results for {len(texts)} texts")
    return raw


def _extract_one(extractor: Extractor, text: str, timer: StageTimer) -> RawExtraction | str:
    try:
        return _extract_texts(extractor, [text], timer)[0]
    except KgbuildError:
        raise
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
