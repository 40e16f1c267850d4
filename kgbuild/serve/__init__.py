"""``kgbuild serve``: one long-lived process answering from an index over HTTP (FastAPI) and MCP.

    kgbuild serve [--out DIR] [--host 127.0.0.1] [--port 8000] [--mcp]     # HTTP API (+ MCP at /mcp)
    kgbuild serve --mcp --transport stdio                                 # MCP over stdin/stdout

The layers, in order: ``snapshot`` (freeze a committed state of the index folder without blocking an ingest),
``service`` (``IndexService``: generations of the index held open, swapped when an ingest commits, and the
answers), ``models`` (the typed requests and answers), ``http`` (the FastAPI routes, token and limits),
``mcp_server`` (the MCP tools). ``serve()`` wires them; ``create_app()`` gives the ASGI application to run
under any server.

>>> from kgbuild.serve import create_app
>>> app = create_app(Settings(out_dir=".kgbuild"))            # uvicorn.run(app, port=8000)
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kgbuild.errors import ConfigError
from kgbuild.settings import Settings

TOKEN_ENV = "KGBUILD_API_TOKEN"
log = logging.getLogger("kgbuild.serve")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    mcp: bool = False  # the MCP endpoint at /mcp beside the HTTP API
    transport: Literal["http", "stdio"] = "http"
    max_k: int = 100
    max_body_bytes: int = 65536
    max_text_chars: int = 2000
    poll_seconds: float = 0.5
    log_level: str = "info"

    def check(self) -> None:
        if self.transport not in ("http", "stdio"):
            raise ConfigError(f"--transport {self.transport!r}: use http or stdio")
        if self.transport == "stdio" and not self.mcp:
            raise ConfigError("--transport stdio serves MCP only: pass --mcp as well (kgbuild serve --mcp --transport stdio)")
        for name, value, least in (("--port", self.port, 0), ("--max-k", self.max_k, 1),
                                   ("--max-body-bytes", self.max_body_bytes, 1024), ("--poll-seconds", self.poll_seconds, 0.05)):
            if value < least:
                raise ConfigError(f"{name} must be at least {least}, got {value}")


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def api_token(host: str, environ: Any = None) -> str | None:
    """The token clients must send (``KGBUILD_API_TOKEN``), or None; ``ConfigError`` where ``host`` is reachable
    from other machines and no token is set."""
    token = (environ if environ is not None else os.environ).get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise ConfigError(f"--host {host} is reachable from other machines: set {TOKEN_ENV} to a secret that clients send"
                          f" as `Authorization: Bearer <token>`, or serve on 127.0.0.1")
    return token


def create_app(settings: Settings, options: ServeOptions | None = None, *, service: Any = None, token: str | None = None) -> Any:
    """The ASGI application (HTTP API, and MCP at /mcp with ``options.mcp``) over a started ``IndexService``;
    ``token`` defaults to ``KGBUILD_API_TOKEN`` (required off loopback)."""
    from kgbuild.serve.http import create_app as http_app
    from kgbuild.serve.service import IndexService, ServeLimits

    options = options or ServeOptions()
    options.check()
    token = token if token is not None else api_token(options.host)
    if service is None:
        service = IndexService(settings, limits=ServeLimits(max_k=options.max_k, max_text_chars=options.max_text_chars),
                               poll_seconds=options.poll_seconds).start()
    mcp_server = None
    if options.mcp:
        from kgbuild.serve.mcp_server import build_mcp_server

        mcp_server = build_mcp_server(service)
    return http_app(service, token=token, max_body_bytes=options.max_body_bytes, mcp_server=mcp_server, host=options.host)


def serve(settings: Settings, options: ServeOptions | None = None) -> None:
    """Run until interrupted: the HTTP API on ``options.host:port`` (MCP at /mcp with ``options.mcp``), or the MCP
    tools over stdio (``transport="stdio"``). Refuses a non-loopback host without ``KGBUILD_API_TOKEN``."""
    from kgbuild.serve.service import IndexService, ServeLimits

    options = options or ServeOptions()
    options.check()
    token = api_token(options.host) if options.transport == "http" else None
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = IndexService(settings, limits=ServeLimits(max_k=options.max_k, max_text_chars=options.max_text_chars),
                           poll_seconds=options.poll_seconds)
    service.start()
    if options.transport == "stdio":
        import anyio

        from kgbuild.serve.mcp_server import run_stdio

        try:
            anyio.run(run_stdio, service)
        finally:
            service.close()
        return
    import uvicorn

    app = create_app(settings, options, service=service, token=token or "")
    log.info("kgbuild serve: %s on http://%s:%d%s%s", Path(settings.out_dir).absolute(), options.host, options.port,
             " (MCP at /mcp)" if options.mcp else "", " (token required)" if token else "")
    uvicorn.run(app, host=options.host, port=options.port, log_level=options.log_level, access_log=False,
                server_header=False)


__all__ = ["ServeOptions", "TOKEN_ENV", "api_token", "create_app", "is_loopback", "serve"]
