"""Global retrieval: which communities a question about themes is about (``kgbuild query TEXT --global``).

Each community is ranked by its summary (``Community.summary_text``: title, top entities with types, key terms,
representative passages) in two ways, BM25 over the summary texts (bm25s, as the BM25 channel) and the cosine
of the query's embedding with the summary's (the index's embedder, stored with the communities), fused by
reciprocal rank fusion (``kgbuild.retrieve.hybrid.reciprocal_rank_fusion``, both weights 1). A community is
returned with its representative chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kgbuild.communities.model import Community, CommunityIndex
from kgbuild.errors import ConfigError


@dataclass(slots=True)
class CommunityHit:
    community: Community
    score: float
    reasons: dict[str, int] = field(default_factory=dict)  # channel (bm25, vector) -> rank

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "reasons": self.reasons, **self.community.to_dict()}


def rank_communities(communities: CommunityIndex, text: str, *, k: int = 5, level: int | None = None,
                     embedder: Any = None) -> list[CommunityHit]:
    """The ``k`` communities (of one ``level``, or all) whose summaries best answer ``text``."""
    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    if not text.strip():
        raise ConfigError("the query text is empty")
    communities.check_level(level)
    from kgbuild.retrieve.hybrid import reciprocal_rank_fusion

    positions = [i for i, c in enumerate(communities.communities) if level is None or c.level == level]
    if not positions:
        return []
    texts = [communities.communities[i].summary_text() for i in positions]
    ids = [communities.communities[i].id for i in positions]
    rankings: dict[str, list[str]] = {}
    import bm25s

    tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
    vocab = set(tokens.vocab)
    words = [w for w in bm25s.tokenize([text], stopwords="en", return_ids=False, show_progress=False)[0] if w in vocab]
    if words:
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        found, scores = retriever.retrieve([words], k=min(len(texts), max(k * 4, 20)), show_progress=False)
        rankings["bm25"] = [ids[int(d)] for d, s in zip(found[0], scores[0]) if s > 0]
    if embedder is not None:
        vectors = _vectors(communities, positions, texts, embedder)
        query = np.asarray(embedder.embed([text])[0], dtype=np.float32)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        cosine = vectors @ query
        order = sorted(range(len(ids)), key=lambda i: (-round(float(cosine[i]), 9), ids[i]))[:max(k * 4, 20)]
        rankings["vector"] = [ids[i] for i in order]
    fused = reciprocal_rank_fusion(rankings, weights={"bm25": 1.0, "vector": 1.0})[:k]
    by_id = communities.by_id
    return [CommunityHit(by_id[cid], round(score, 6), {ch: r.index(cid) + 1 for ch, r in rankings.items() if cid in r})
            for cid, score in fused]


def _vectors(communities: CommunityIndex, positions: list[int], texts: list[str], embedder: Any) -> np.ndarray:
    """The stored summary vectors of these communities; those missing (or of another embedder) embedded now."""
    stored = communities.vectors
    same = stored is not None and communities.embedding_model == getattr(embedder, "name", "")
    rows: list[np.ndarray | None] = [stored[i] if same and stored[i].any() else None for i in positions] if same \
        else [None] * len(positions)
    missing = [j for j, row in enumerate(rows) if row is None]
    if missing:
        for j, vector in zip(missing, embedder.embed([texts[j] for j in missing])):
            v = np.asarray(vector, dtype=np.float32)
            rows[j] = v / max(float(np.linalg.norm(v)), 1e-12)
    return np.stack(rows).astype(np.float32)  # type: ignore[arg-type]
