"""Views of an index for people: the interactive HTML graph view (``kgbuild graph view``).

Views read the index only through ``kgbuild.index.Index`` and the graph store's Protocol
(``GraphSink.export()``), so they work with every graph backend.
"""

from kgbuild.explore.graph_html import GraphViewSummary, graph_from_export, view_index, write_graph_html

__all__ = ["GraphViewSummary", "graph_from_export", "view_index", "write_graph_html"]
