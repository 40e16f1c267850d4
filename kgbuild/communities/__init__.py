"""Communities and a map of the corpus, without an LLM.

Hierarchical Leiden communities over the entity graph (``detect``: relations plus specificity-weighted co-mention,
graspologic-native, levels coarse to fine), summarised extractively (``build``: top entities with types,
representative chunks, c-TF-IDF key terms, label distribution, documents, parent and children, a title), stored in
``<out>/communities/`` (``model``), as ``Community`` nodes with ``IN_COMMUNITY {level}`` edges in the graph store and
as every chunk's ``communities`` payload field in the vector store (``refresh``), and ranked by their summaries for
questions about themes (``search``, ``kgbuild query TEXT --global``).

>>> import kgbuild
>>> from kgbuild.communities import load_communities
>>> communities = load_communities(kgbuild.Settings(out_dir=".kgbuild"))
>>> for c in communities.at_level(0)[:5]:
...     print(c.id, c.size, c.title, [e.name for e in c.top_entities[:3]], c.top_terms[:3], c.labels)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from kgbuild.communities.detect import CommunityParams
from kgbuild.communities.model import (
    Community, CommunityEntity, CommunityIndex, RepresentativeChunk, communities_dir, stored_meta,
)
from kgbuild.communities.refresh import refresh_after_removal, refresh_communities
from kgbuild.communities.search import CommunityHit, rank_communities
from kgbuild.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.settings import Settings

__all__ = [
    "Community", "CommunityEntity", "CommunityHit", "CommunityIndex", "CommunityParams", "RepresentativeChunk",
    "communities_dir", "community_resolver", "global_query", "load_communities", "refresh_after_removal",
    "refresh_communities",
]


def load_communities(settings: Settings | None = None) -> CommunityIndex:
    """The communities of the index under ``settings.out_dir``, as its last ingest (or ``kgbuild remove``, or
    LlamaIndex ``KgbuildWriter`` call) computed them; ``ConfigError`` (one line, with the command to run) where it has
    none."""
    from kgbuild.index import Index
    from kgbuild.settings import Settings

    index = Index.open_existing(settings or Settings())
    found = CommunityIndex.load(communities_dir(index.out_dir))
    if found is None:
        raise ConfigError(f"no communities in {index.out_dir}: run `kgbuild ingest` on its folder again to build them")
    return found


def community_resolver(out_dir: Any) -> Callable[[str], str]:
    """A function that turns a ``--community`` value into the stored id (case-insensitive), or raises a
    ``ConfigError`` naming the value; the communities are read on the first call."""
    loaded: list[CommunityIndex] = []

    def resolve(value: str) -> str:
        if not loaded:
            found = CommunityIndex.load(communities_dir(out_dir))
            if found is None:
                raise ConfigError(f"--community {value}: no communities in {out_dir}; run `kgbuild ingest` to build them")
            loaded.append(found)
        try:
            return loaded[0].get(value).id
        except ConfigError as exc:
            raise ConfigError(f"--community {value}: {exc}") from None

    return resolve


def global_query(text: str, settings: Settings | None = None, *, k: int = 5, level: int | None = None,
                 embedder: Any = None) -> list[CommunityHit]:
    """``kgbuild query TEXT --global``: the communities whose summaries best answer a question about themes, each
    with its representative chunks (``hit.community.chunks``); see ``kgbuild.communities.search``.

    >>> for hit in global_query("electric cars", Settings(out_dir=".kgbuild"), k=3):
    ...     print(hit.community.title, [c.path for c in hit.community.chunks])
    """
    from kgbuild.embed import query_embedder
    from kgbuild.index import Index
    from kgbuild.settings import Settings

    communities = load_communities(settings)
    if embedder is None:
        index = Index.open_existing(settings or Settings())
        embedder = query_embedder(index.manifest.embedding_model or index.settings.embedding_model)
    return rank_communities(communities, text, k=k, level=level, embedder=embedder)
