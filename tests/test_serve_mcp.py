"""``kgbuild serve``'s MCP server, through the official SDK's own client: over streamable HTTP (``/mcp`` beside the
HTTP API, a real uvicorn server) and over stdio (``kgbuild serve --mcp --transport stdio`` as a process)."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest
from test_serve import QUESTION, ServerThread, app_for, build_index, start_service

TOOLS = {"search", "get_entity", "neighbourhood", "stats"}


@pytest.fixture(scope="module")
def index(tmp_path_factory, business_schema):
    return build_index(tmp_path_factory.mktemp("serve-mcp"), business_schema)


@pytest.fixture(scope="module")
def mcp_url(index):
    with ServerThread(app_for(start_service(index), mcp=True)) as url:
        yield url + "/mcp"


def structured(result) -> dict:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


async def call_every_tool(client) -> dict[str, dict]:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert TOOLS <= set(tools) and set(tools) - TOOLS <= {"list_communities"}
    assert "TYPE:NAME" in tools["get_entity"].description and "entities=" in tools["search"].description
    assert tools["search"].annotations.read_only_hint
    found = {
        "search": structured(await client.call_tool("search", {"query": QUESTION, "k": 3})),
        "vector": structured(await client.call_tool("search", {"query": "chief executive", "mode": "vector",
                                                               "entities": ["PERSON:Tobias Reyes"]})),
        "get_entity": structured(await client.call_tool("get_entity", {"name": "COMPANY:Halden Foods"})),
        "neighbourhood": structured(await client.call_tool("neighbourhood", {"entity": "PERSON:Tobias Reyes", "hops": 2})),
        "stats": structured(await client.call_tool("stats", {})),
    }
    if "list_communities" in tools:
        found["list_communities"] = structured(await client.call_tool("list_communities", {}))
    missing = await client.call_tool("get_entity", {"name": "PERSON:Tobias Reyez"})
    assert missing.is_error and "no entity PERSON:Tobias Reyez" in missing.content[0].text
    assert "PERSON:tobias reyes" in missing.content[0].text  # the close names, for the agent to try
    bad = await client.call_tool("search", {"query": "x", "types": ["SPACESHIP"]})
    assert bad.is_error and "unknown entity type 'SPACESHIP'" in bad.content[0].text
    return found


def check_answers(found: dict[str, dict]) -> None:
    hits = found["search"]["hits"]
    assert hits[0]["path"] == "corpus.jsonl#p03" and hits[0]["why"] and hits[0]["reasons"]
    assert {"start", "end", "doc_id", "chunk_id", "text"} <= set(hits[0])  # provenance: document and span
    assert [h["path"] for h in found["vector"]["hits"]] == ["corpus.jsonl#p03"]
    entity = found["get_entity"]
    assert entity["entity"]["key"] == "COMPANY:halden foods" and entity["entity"]["mention_count"] == 2
    assert {m["path"] for m in entity["mentions"]} == {"corpus.jsonl#p03", "corpus.jsonl#p04"}
    assert all(0 < m["confidence"] <= 1 and m["end"] > m["start"] for m in entity["mentions"])
    assert [n["entity"]["key"] for n in found["neighbourhood"]["neighbours"]][:2] == ["COMPANY:halden foods", "PRODUCT:crispo"]
    assert found["stats"]["documents"] == 32


def test_streamable_http_lists_and_calls_every_tool(mcp_url):
    from mcp import Client

    async def main():
        async with Client(mcp_url) as client:
            return await call_every_tool(client)

    check_answers(anyio.run(main))


def test_streamable_http_needs_the_token_where_one_is_set(index):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = "mcp-" + "t" * 28

    async def tools(url: str, headers: dict[str, str]) -> set[str]:
        async with create_mcp_http_client(headers=headers) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                return {tool.name for tool in (await client.list_tools()).tools}

    with ServerThread(app_for(start_service(index), mcp=True, token=token)) as url:
        assert TOOLS <= anyio.run(tools, url + "/mcp", {"Authorization": f"Bearer {token}"})
        with pytest.raises(Exception):  # refused at the HTTP layer: 401 before any MCP message is read
            anyio.run(tools, url + "/mcp", {"Authorization": "Bearer nope"})


def test_stdio_server_process_lists_and_calls_every_tool(index, tmp_path):
    """`kgbuild serve --mcp --transport stdio`, as an MCP client configuration launches it (MiniLM as query embedder:
    the vector channel's order means nothing against hash vectors, so only the filtered and graph answers are checked)."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, cwd=str(tmp_path),
                                   args=["-m", "kgbuild.cli", "serve", "--mcp", "--transport", "stdio", "--out", str(index.out_dir)],
                                   env={"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1"})

    async def main():
        async with Client(params) as client:
            found = await call_every_tool(client)
            only_graph = structured(await client.call_tool("search", {"query": QUESTION, "k": 2, "channels": ["graph"]}))
            return found, only_graph

    found, only_graph = anyio.run(main)
    assert [h["path"] for h in only_graph["hits"]] == ["corpus.jsonl#p03", "corpus.jsonl#p04"]
    assert [h["path"] for h in found["vector"]["hits"]] == ["corpus.jsonl#p03"]
    assert found["get_entity"]["entity"]["mention_count"] == 2 and found["stats"]["documents"] == 32
