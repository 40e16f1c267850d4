"""The MCP server of ``kgbuild serve`` (the official ``mcp`` SDK's ``MCPServer``): the index as tools for an agent.

Tools: ``search`` (hybrid retrieval with filters), ``get_entity``, ``neighbourhood``, ``stats``, and
``list_communities`` where the index has communities. Each returns structured output (the same pydantic
models as the HTTP API) with its provenance: the document and character span of every hit and mention,
confidences, and why a hit was retrieved (channel, rank, graph path). Over stdio
(``kgbuild serve --mcp --transport stdio``) or streamable HTTP at ``/mcp`` beside the HTTP API
(``kgbuild serve --mcp``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, Optional

from kgbuild.errors import KgbuildError
from kgbuild.serve import models as m
from kgbuild.serve.service import IndexService, communities_module

MCP_PATH = "/mcp"

INSTRUCTIONS = (
    "A kgbuild index: documents cut into chunks, with the entities (people, companies, products, ...) and relations a"
    " model extracted from them, merged into one knowledge graph. Use `search` to find passages (it combines meaning,"
    " the graph around the entities your question names, and keywords; filter by entity, type, label or document);"
    " `get_entity` to see an entity's names, mentions and documents; `neighbourhood` for what it is related to;"
    " `stats` for what the index holds. Every result says which document and character span it comes from; cite them."
)

SEARCH = (
    "Search the indexed documents for passages relevant to a question or topic. Returns the best chunks, best first,"
    " each with its document path, character span [start, end), text, the entities it mentions, and `why`: which"
    " retrieval channels found it and how (vector similarity, a graph path from an entity your query names, BM25"
    " keywords). Hybrid (all three channels) is the default and is best for questions that name entities; pass"
    " mode='vector' for plain semantic similarity. Narrow it with filters: entities=['PERSON:Tim Cook'] (the chunk"
    " mentions that entity; names and aliases are resolved as in the index), types=['MONEY'] (mentions an entity of"
    " that type), classes=['document_type=earnings_report'], documents=['press/vision-pro.md']. An unknown type or"
    " label is an error that lists the known ones."
)
GET_ENTITY = (
    "Look up one entity by TYPE:NAME (for example 'PERSON:Tim Cook' or 'COMPANY:Apple'; any name or alias it is"
    " written as works) or by its id. Returns its canonical name and key, every alias with its mention count, why"
    " each name was merged into it (resolution rule and the name it joined), the documents that mention it, and its"
    " mentions with document, character span and confidence. An unknown name is an error listing close names."
)
NEIGHBOURHOOD = (
    "The entities related to one entity (TYPE:NAME or id) within `hops` relation steps (1 to 3), and the relations"
    " among them (head, label, tail: for example PERSON:tim cook CEO_OF COMPANY:apple). Use it to explore who or"
    " what is connected to an entity before searching passages about those connections."
)
STATS = ("What the index holds: documents, chunks, mentions, entities and relations (by type), and the schema,"
         " model and stores it was built with. Call it first to learn which entity types and labels exist.")
COMMUNITIES = ("The index's communities: groups of entities that belong together (topics of the corpus), with"
               " their titles, sizes, top entities and terms. Use it to learn what the corpus is about.")

Mode = Literal["hybrid", "vector"]


def build_mcp_server(service: IndexService) -> Any:
    """An ``MCPServer`` whose tools answer from ``service``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    from kgbuild import __version__

    server = MCPServer("kgbuild", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    def search(query: str, k: int = 8, entities: Optional[list[str]] = None, types: Optional[list[str]] = None,
               classes: Optional[list[str]] = None, documents: Optional[list[str]] = None,
               channels: Optional[list[m.Channel]] = None, mode: Mode = "hybrid") -> m.QueryResponse:
        request = m.QueryRequest.model_validate({
            "text": query, "k": k, "entity": entities or [], "type": types or [], "class": classes or [],
            "doc": documents or [], "hybrid": mode == "hybrid", "channels": channels if mode == "hybrid" else None})
        return service.query(request)

    def get_entity(name: str) -> m.EntityResponse:
        return service.entity(name, mention_limit=20)

    def neighbourhood(entity: str, hops: int = 1) -> m.NeighbourhoodResponse:
        return service.neighbourhood(entity, hops)

    def stats() -> m.StatsResponse:
        return service.stats()

    for fn, description in ((search, SEARCH), (get_entity, GET_ENTITY), (neighbourhood, NEIGHBOURHOOD), (stats, STATS)):
        server.add_tool(_tool_errors(fn), name=fn.__name__, description=description, annotations=read_only)
    if _has_communities(service):
        def list_communities(level: Optional[int] = None) -> list[dict[str, Any]]:
            return service.communities(level)

        server.add_tool(_tool_errors(list_communities), name="list_communities", description=COMMUNITIES,
                        annotations=read_only)
    return server


def _has_communities(service: IndexService) -> bool:
    """``list_communities`` is offered only where the code for communities exists and the index holds some."""
    if communities_module() is None:
        return False
    try:
        return bool(service.communities())
    except Exception:
        return False


def _tool_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """kgbuild's errors reach the agent as the tool's error text (the SDK shows other exceptions as a bare crash)."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KgbuildError as exc:
            candidates = getattr(exc, "candidates", None)
            raise ToolError(str(exc) + (f" (close: {', '.join(map(str, candidates))})" if candidates else "")) from None

    return call


async def run_stdio(service: IndexService) -> None:
    """Serve the MCP tools over stdin/stdout until the client closes them."""
    await build_mcp_server(service).run_stdio_async()
