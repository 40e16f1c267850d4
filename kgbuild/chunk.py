"""Token-aware chunking with overlap, sentence-respecting where possible.

Tokens are counted with the extraction model's own tokenizer (a ``TokenCounter``
supplied by the extractor), so that no chunk plus the schema prompt exceeds the
model's window. Every chunk is an exact slice of its document:
``document.text[chunk.start:chunk.end] == chunk.text``.

With ``headers=True`` each chunk of a titled document carries the title as its ``header``
(``Chunk.contextual_text``: what is embedded, BM25-indexed and extracted), and the window
shrinks by the header's tokens so that header and text still fit. A passage whose subject is
named only in its title ("Polish-Russian War (film)": "It was directed by ...") is then found
by that name; offsets still point into the document text.
"""

from __future__ import annotations

import bisect
import ctypes
import re
from dataclasses import dataclass
from typing import Protocol, Sequence

import blingfire
import numpy as np

from kgbuild.ids import chunk_id
from kgbuild.read.base import file_stem
from kgbuild.types import HEADER_SEPARATOR, Chunk, Document

_WORD = re.compile(r"\S+")
HEADER_MAX_TOKENS = 32  # a longer title is cut (at a word) to this many tokens


def document_header(document: Document) -> str:
    """The header each chunk of ``document`` is read with: its title, unless its source gave none and the
    reader named it after its file (``"notes"`` for notes.txt, ``"people #3"`` for a record of people.jsonl)."""
    path, _, record_id = document.path.partition("#")
    stem = file_stem(path)
    if document.title in (stem, f"{stem} #{record_id}"):
        return ""
    return document.title.strip()


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
    """Character offsets where sentences begin (blingfire's sentence breaker).

    blingfire's own Python wrapper (``text_to_sentences_and_offsets``) maps the breaker's UTF-8 byte offsets
    to string offsets in a Python loop over every byte of the text: about a second per megabyte, 70 % of
    chunking a 50 MB file. Here the same C function is called, and the byte offsets map through one numpy
    count of the characters before each byte (none to do for ASCII text)."""
    if not text.strip():
        return []
    data = text.encode("utf-8")
    capacity = len(data) * 2  # the wrapper's buffer sizes
    out = ctypes.create_string_buffer(capacity)
    starts = (ctypes.c_int32 * capacity)()
    ends = (ctypes.c_int32 * capacity)()
    written = blingfire.blingfire.TextToSentencesWithOffsets(
        ctypes.c_char_p(data), ctypes.c_int(len(data)), ctypes.byref(out), ctypes.byref(starts), ctypes.byref(ends),
        ctypes.c_int(capacity))
    if written == -1 or written > capacity:
        return []
    byte_starts = np.frombuffer(starts, dtype=np.int32, count=out.value.count(b"\n") + 1)
    if len(data) == len(text):
        return byte_starts.tolist()
    first_bytes = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80  # a character's first byte
    chars_before = np.concatenate(([0], np.cumsum(first_bytes)))
    return chars_before[byte_starts].tolist()


class TokenChunker:
    """Splits a document into chunks of at most ``max_tokens`` model tokens.

    A chunk ends at a sentence end when one falls in the second half of the window,
    else at a word start, and only inside a word when a single word is longer than
    the window. The next chunk starts up to ``overlap_tokens`` before the previous
    end, at a sentence start if one is there, else at a word start.

    >>> chunker = TokenChunker(counter, max_tokens=256, overlap_tokens=32)
    >>> chunks = chunker.chunk(document)
    """

    def __init__(self, counter: TokenCounter, max_tokens: int, overlap_tokens: int = 0, *, headers: bool = False):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError(f"overlap_tokens must be in [0, {max_tokens}), got {overlap_tokens}")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.headers = headers

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        spans = self.counter.token_spans(text)
        n = len(spans)
        if n == 0:
            return []
        header, window = self._header(document)
        overlap = self.overlap_tokens if window == self.max_tokens else min(self.overlap_tokens, window // 2)
        sentence_token_starts = self._sentence_token_starts(text, spans)
        chunks: list[Chunk] = []
        start = 0
        while start < n:
            end = self._choose_end(start, n, spans, sentence_token_starts, window)
            chunks.append(self._make_chunk(document, len(chunks), spans, start, end, header))
            if end >= n:
                break
            start = self._choose_next_start(start, end, spans, sentence_token_starts, overlap)
        return chunks

    def _header(self, document: Document) -> tuple[str, int]:
        """The document's header (cut to ``HEADER_MAX_TOKENS``, and to half the window) and the tokens left
        for text; no header where headers are off or the document has no title."""
        header = document_header(document) if self.headers else ""
        if not header:
            return "", self.max_tokens
        spans = self.counter.token_spans(header + HEADER_SEPARATOR)
        limit = min(HEADER_MAX_TOKENS, self.max_tokens // 2)
        if len(spans) > limit:
            cut = next((i for i in range(limit, 0, -1) if spans.word_start[i]), limit)
            header = header[: spans.starts[cut]].rstrip()
            spans = self.counter.token_spans(header + HEADER_SEPARATOR)
        return header, self.max_tokens - len(spans)

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

    def _choose_end(self, start: int, n: int, spans: TokenSpans, sentence_starts_: list[int], window: int) -> int:
        limit = start + window
        if limit >= n:
            return n
        # the last sentence start in (start + max/2, limit]: end the chunk just before it
        lo = start + max(1, window // 2)
        i = bisect.bisect_right(sentence_starts_, limit) - 1
        if i >= 0 and sentence_starts_[i] > lo:
            return sentence_starts_[i]
        for cut in range(limit, start, -1):
            if spans.word_start[cut]:
                return cut
        return limit  # one word longer than the window: cut inside it

    def _choose_next_start(self, start: int, end: int, spans: TokenSpans, sentence_starts_: list[int], overlap: int) -> int:
        if overlap == 0:
            return end
        earliest = max(start + 1, end - overlap)
        i = bisect.bisect_left(sentence_starts_, earliest)
        if i < len(sentence_starts_) and sentence_starts_[i] < end:
            return sentence_starts_[i]
        for candidate in range(earliest, end):
            if spans.word_start[candidate]:
                return candidate
        return end

    @staticmethod
    def _make_chunk(document: Document, position: int, spans: TokenSpans, start: int, end: int, header: str = "") -> Chunk:
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
            header=header,
        )


class WhitespaceCounter:
    """A model-free counter (one token per whitespace-separated word), for tests and fake extractors."""

    def token_spans(self, text: str) -> TokenSpans:
        matches = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        return TokenSpans([s for s, _ in matches], [e for _, e in matches], [True] * len(matches))
