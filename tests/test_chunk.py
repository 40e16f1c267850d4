"""The token-aware chunker: exact offsets, token budget, overlap, sentence boundaries."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgbuild.chunk import TokenChunker, WhitespaceCounter, split_word_spans
from kgbuild.ids import content_hash, document_id
from kgbuild.types import Document


def doc(text: str, path: str = "a.txt") -> Document:
    return Document(document_id(path), path, path, "t", text, 0.0, content_hash(text))


def words_of(text: str, chunk) -> list[str]:
    return text[chunk.start : chunk.end].split()


def test_short_text_is_one_chunk():
    chunks = TokenChunker(WhitespaceCounter(), 50, 5).chunk(doc("One short sentence. Another one."))
    assert len(chunks) == 1
    assert chunks[0].text == "One short sentence. Another one."
    assert (chunks[0].start, chunks[0].end, chunks[0].position) == (0, 32, 0)


def test_empty_and_whitespace_documents_have_no_chunks():
    assert TokenChunker(WhitespaceCounter(), 10).chunk(doc("")) == []
    assert TokenChunker(WhitespaceCounter(), 10).chunk(doc("   \n\t ")) == []


def test_chunks_respect_budget_sentences_and_overlap():
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(30)]
    text = " ".join(sentences)
    chunks = TokenChunker(WhitespaceCounter(), max_tokens=30, overlap_tokens=8).chunk(doc(text))
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.token_count <= 30
        assert c.text.startswith("Sentence") and c.text.endswith("words.")  # whole sentences
    for a, b in zip(chunks, chunks[1:]):
        shared = a.end - b.start
        assert 0 < shared  # the next chunk starts inside the previous one
        assert len(text[b.start : a.end].split()) <= 8
    # every word of the document is in some chunk
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_no_overlap_means_adjacent_chunks():
    text = " ".join(f"w{i}." for i in range(100))
    chunks = TokenChunker(WhitespaceCounter(), 10, 0).chunk(doc(text))
    assert sum(c.token_count for c in chunks) == 100
    for a, b in zip(chunks, chunks[1:]):
        assert a.end < b.start and text[a.end : b.start].isspace()


def test_sentence_longer_than_window_is_cut_at_words():
    text = " ".join(f"word{i}" for i in range(95)) + "."
    chunks = TokenChunker(WhitespaceCounter(), 20, 4).chunk(doc(text))
    assert all(c.token_count <= 20 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert chunks[-1].end == len(text)


def test_word_longer_than_window_is_cut_inside():
    # one "word" of 12 model tokens, window of 5 tokens
    spans = split_word_spans([(0, 24)], [12])

    class Counter:
        def token_spans(self, text):
            return spans

    text = "x" * 24
    chunks = TokenChunker(Counter(), 5, 1).chunk(doc(text))
    assert all(c.token_count <= 5 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == 24
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_chunk_ids_are_deterministic_and_positional():
    text = " ".join(f"Sentence {i} here." for i in range(40))
    a = TokenChunker(WhitespaceCounter(), 12, 3).chunk(doc(text))
    b = TokenChunker(WhitespaceCounter(), 12, 3).chunk(doc(text))
    assert a == b
    assert [c.id for c in a] == [f"{document_id('a.txt')}:{i:05d}" for i in range(len(a))]


def test_bad_parameters():
    with pytest.raises(ValueError):
        TokenChunker(WhitespaceCounter(), 0)
    with pytest.raises(ValueError):
        TokenChunker(WhitespaceCounter(), 10, 10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=600),
    max_tokens=st.integers(min_value=1, max_value=40),
    overlap_ratio=st.floats(min_value=0.0, max_value=0.9),
)
def test_offsets_always_map_back(text, max_tokens, overlap_ratio):
    overlap = min(int(max_tokens * overlap_ratio), max_tokens - 1)
    chunks = TokenChunker(WhitespaceCounter(), max_tokens, overlap).chunk(doc(text))
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert 1 <= c.token_count <= max_tokens
    for a, b in zip(chunks, chunks[1:]):
        assert b.start > a.start and b.end > a.end
    if text.split():  # the first and the last word are inside chunks
        assert chunks[0].start == len(text) - len(text.lstrip())
        assert chunks[-1].end == len(text.rstrip())
    else:
        assert chunks == []


@pytest.mark.parametrize("text", [
    "One. Two! Three? Four.",
    "Plain ASCII text without a full stop",
    "Zoë met Ångström in Köln. Then 東京に行きました。 Une phrase «ici». Done.",
    "Emoji first 🎉🎉. Combining e\u0301 accents. 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral planes. End",
    "Line one\nLine two.\n\nNew paragraph after a blank line. And tabs\tinside.",
    "  Leading spaces. Trailing spaces.   ",
    "Mr. Smith went to Washington, D.C. on Jan. 5. He met Dr. Who.",
    "\u00a0Non-breaking\u00a0space. Zero\u200bwidth joiner. Done.",
])
def test_sentence_starts_are_blingfires_own(text):
    """The C call with numpy offsets gives what blingfire's Python wrapper gives, on ASCII and multi-byte text."""
    import blingfire

    from kgbuild.chunk import sentence_starts

    _, offsets = blingfire.text_to_sentences_and_offsets(text)
    assert sentence_starts(text) == [start for start, _ in offsets]
    assert len(sentence_starts(text)) >= 1


def test_sentence_starts_of_blank_text():
    from kgbuild.chunk import sentence_starts

    assert sentence_starts("") == [] and sentence_starts(" \n\t ") == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_sentence_starts_match_blingfire_on_any_text(text):
    import blingfire

    from kgbuild.chunk import sentence_starts

    expected = [start for start, _ in blingfire.text_to_sentences_and_offsets(text)[1]] if text.strip() else []
    assert sentence_starts(text) == expected
