"""The lexical channel of hybrid retrieval: BM25 over the chunk texts (bm25s, sparse-matrix BM25).

Lucene's BM25 variant (k1 1.5, b 0.75), English stop words removed, lower-cased word tokens.
The index is built from the chunk payloads the vector store holds (about a second per 10,000
chunks), at the end of each ingest that changed the index, and stored under ``<out>/retrieval/bm25/``
(``save``; bm25s's own format, memory-mapped by ``load``), so a retriever opens it in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kgbuild.types import VectorFilter


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Each text's words as BM25 indexes them: lower-cased, English stop words out (bm25s's tokenizer)."""
    import bm25s

    if not texts:
        return []
    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


def save_index(folder: Path, tokens: Sequence[Sequence[str]]) -> None:
    """The BM25 index of already tokenized chunks (``tokenize``), in bm25s's files under ``folder``: what
    ``BM25ChunkIndex.load`` opens. Kept tokens are what lets an update of the retrieval graph index again
    without reading and tokenizing every chunk's text."""
    import bm25s

    folder.mkdir(parents=True, exist_ok=True)
    if len(tokens):
        retriever = bm25s.BM25()
        retriever.index([list(t) for t in tokens], show_progress=False)
        retriever.save(str(folder), show_progress=False)


class BM25ChunkIndex:
    """
    >>> index = BM25ChunkIndex([{"chunk_id": "c1", "text": "Acme builds rockets"}])
    >>> index.search("rockets", limit=5)
    [(0, 0.28...)]
    """

    def __init__(self, payloads: Sequence[dict[str, Any]], text_of: Any = None):
        import bm25s

        self.payloads: Sequence[dict[str, Any]] = list(payloads)
        self._text_of = text_of or (lambda p: p.get("text", ""))
        self._retriever: Any = None
        self._vocab: set[str] = set()
        if self.payloads:
            self._retriever = bm25s.BM25()
            self._retriever.index(tokenize([self._text_of(p) for p in self.payloads]), show_progress=False)
            self._vocab = set(self._retriever.vocab_dict)

    def chunk_id(self, index: int) -> str:
        """The chunk id of a search result's payload index (without parsing a stored payload)."""
        ids = getattr(self.payloads, "ids", None)
        return ids[index] if ids is not None else str(self.payloads[index]["chunk_id"])

    def save(self, folder: Path) -> None:
        """bm25s's files under ``folder`` (the payloads are the caller's: kept in the same order elsewhere)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, payloads: Sequence[dict[str, Any]]) -> BM25ChunkIndex:
        """The index ``save`` wrote (memory-mapped), over ``payloads`` in the order it was built from."""
        import bm25s

        index = cls([])
        index.payloads = payloads
        if len(payloads) and (folder / "params.index.json").exists():
            index._retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
            index._vocab = set(index._retriever.vocab_dict)
        return index

    def search(self, text: str, limit: int = 10, query_filter: VectorFilter | None = None) -> list[tuple[int, float]]:
        """(payload index, BM25 score) of the best chunks with a score above zero, best first."""
        import bm25s

        if self._retriever is None or limit < 1:
            return []
        words = [w for w in bm25s.tokenize([text], stopwords="en", return_ids=False, show_progress=False)[0] if w in self._vocab]
        if not words:
            return []
        mask = None
        if query_filter is not None and not query_filter.is_empty():
            mask = np.array([1.0 if query_filter.matches(p) else 0.0 for p in self.payloads], dtype=np.float32)
            if not mask.any():
                return []
        k = min(limit, len(self.payloads))
        docs, scores = self._retriever.retrieve([words], k=k, show_progress=False, weight_mask=mask)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
