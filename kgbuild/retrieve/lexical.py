"""The lexical channel of hybrid retrieval: BM25 over the chunk texts (bm25s, sparse-matrix BM25).

Lucene's BM25 variant (k1 1.5, b 0.75), English stop words removed, lower-cased word tokens.
The index is built in memory from the chunk payloads the vector store already holds, so it always
matches what was ingested (about a second per 10,000 chunks).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from kgbuild.types import VectorFilter


class BM25ChunkIndex:
    """
    >>> index = BM25ChunkIndex([{"chunk_id": "c1", "text": "Acme builds rockets"}])
    >>> index.search("rockets", limit=5)
    [(0, 0.28...)]
    """

    def __init__(self, payloads: Sequence[dict[str, Any]], text_of: Any = None):
        import bm25s

        self.payloads = list(payloads)
        self._text_of = text_of or (lambda p: p.get("text", ""))
        self._retriever: Any = None
        if self.payloads:
            tokens = bm25s.tokenize([self._text_of(p) for p in self.payloads], stopwords="en", show_progress=False)
            self._retriever = bm25s.BM25()
            self._retriever.index(tokens, show_progress=False)
            self._vocab = set(tokens.vocab)

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
