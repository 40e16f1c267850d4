"""Views of an index for people: the interactive HTML graph view (``kgbuild graph view``).

The entity map (``entity_map``, drawn by ``map_page``) is the default view: communities as labelled clusters,
relations and co-mentions, click to expand. ``graph_html`` draws the graph store as it is (chunks and documents too,
``--chunks``). Views read the index only through ``kgbuild.index.Index``, the graph store's Protocol and the stored
retrieval graph and communities, so they work with every graph backend.
"""

from kgbuild.explore.entity_map import EntityMapSummary, map_index
from kgbuild.explore.graph_html import GraphViewSummary, graph_from_export, view_index, write_graph_html

__all__ = ["EntityMapSummary", "GraphViewSummary", "graph_from_export", "map_index", "view_index", "write_graph_html"]
