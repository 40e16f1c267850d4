"""Token-aware chunking with overlap, sentence-respecting where possible.

Tokens are counted with the extraction model's own tokenizer (a ``TokenCounter``
supplied by the extractor), so that no chunk plus the schema prompt exceeds the
model's window. Every chunk is an exact slice of its document:
``document.text[chunk.start:chunk.end] == chunk.text``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Protocol, Sequence

import blingfire

from kgbuild.ids import chunk_id
from kgbuild.types import Chunk, Document

_WORD = re.compile(r"\S+")


@dataclass(slots=True)
class TokenSpans:
    """Model tokens of a text: character span of each, and whether a word starts there.

    Subword tokens of one word get consecutive slices of the word's characters, so a
    word too long for one chunk can still be cut, but cuts prefer word starts.
    """

    starts: list[int]
    ends: list[int]
    word_start: list[bool]

    def __len__(self) -> int:
        return len(self.starts)


class TokenCounter(Protocol):
    def token_spans(self, text: str) -> TokenSpans: ...


def split_word_spans(word_spans: Sequence[tuple[int, int]], token_counts: Sequence[int]) -> TokenSpans:
    """Expand word spans into per-token spans, given how many model tokens each word has."""
    starts: list[int] = []
    ends: list[int] = []
    word_start: list[bool] = []
    for (ws, we), count in zip(word_spans, token_counts):
        count = max(count, 1)
        length = we - ws
        for k in range(count):
            s = ws + (length * k) // count
            e = ws + (length * (k + 1)) // count
            if e <= s:  # more tokens than characters: keep the span non-empty
                s, e = ws + min(k, length - 1), ws + min(k, length - 1) + 1
            starts.append(s)
            ends.append(e)
            word_start.append(k == 0)
    return TokenSpans(starts, ends, word_start)


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences begin (blingfire's sentence breaker)."""
    if not text.strip():
        return []
    _, offsets = blingfire.text_to_sentences_and_offsets(text)
    return [start for start, _ in offsets]


class TokenChunker:
    """Splits a document into chunks of at most ``max_tokens`` model tokens.

    A chunk ends at a sentence end when one falls in the second half of the window,
    else at a word start, and only inside a word when a single word is longer than
    the window. The next chunk starts up to ``overlap_tokens`` before the previous
    end, at a sentence start if one is there, else at a word start.

    >>> chunker = TokenChunker(counter, max_tokens=256, overlap_tokens=32)
    >>> chunks = chunker.chunk(document)
    """

    def __init__(self, counter: TokenCounter, max_tokens: int, overlap_tokens: int = 0):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError(f"overlap_tokens must be in [0, {max_tokens}), got {overlap_tokens}")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        spans = self.counter.token_spans(text)
        n = len(spans)
        if n == 0:
            return []
        sentence_token_starts = self._sentence_token_starts(text, spans)
        chunks: list[Chunk] = []
        start = 0
        while start < n:
            end = self._choose_end(start, n, spans, sentence_token_starts)
            chunks.append(self._make_chunk(document, len(chunks), spans, start, end))
            if end >= n:
                break
            start = self._choose_next_start(start, end, spans, sentence_token_starts)
        return chunks

    # -- boundaries -------------------------------------------------------------

    @staticmethod
    def _sentence_token_starts(text: str, spans: TokenSpans) -> list[int]:
        """Token indices at which a sentence begins (sorted, deduplicated)."""
        result: list[int] = []
        for char_start in sentence_starts(text):
            index = bisect.bisect_left(spans.starts, char_start)
            if index < len(spans) and (not result or result[-1] != index):
                result.append(index)
        return result

    def _choose_end(self, start: int, n: int, spans: TokenSpans, sentence_starts_: list[int]) -> int:
        limit = start + self.max_tokens
        if limit >= n:
            return n
        # the last sentence start in (start + max/2, limit]: end the chunk just before it
        lo = start + max(1, self.max_tokens // 2)
        i = bisect.bisect_right(sentence_starts_, limit) - 1
        if i >= 0 and sentence_starts_[i] > lo:
            return sentence_starts_[i]
        for cut in range(limit, start, -1):
            if spans.word_start[cut]:
                return cut
        return limit  # one word longer than the window: cut inside it

    def _choose_next_start(self, start: int, end: int, spans: TokenSpans, sentence_starts_: list[int]) -> int:
        if self.overlap_tokens == 0:
            return end
        earliest = max(start + 1, end - self.overlap_tokens)
        i = bisect.bisect_left(sentence_starts_, earliest)
        if i < len(sentence_starts_) and sentence_starts_[i] < end:
            return sentence_starts_[i]
        for candidate in range(earliest, end):
            if spans.word_start[candidate]:
                return candidate
        return end

    @staticmethod
    def _make_chunk(document: Document, position: int, spans: TokenSpans, start: int, end: int) -> Chunk:
        char_start = spans.starts[start]
        char_end = spans.ends[end - 1]
        return Chunk(
            id=chunk_id(document.id, position),
            doc_id=document.id,
            position=position,
            start=char_start,
            end=char_end,
            text=document.text[char_start:char_end],
            token_count=end - start,
        )


class WhitespaceCounter:
    """A model-free counter (one token per whitespace-separated word), for tests and fake extractors."""

    def token_spans(self, text: str) -> TokenSpans:
        matches = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        return TokenSpans([s for s, _ in matches], [e for _, e in matches], [True] * len(matches))
