"""The HTTP API of ``kgbuild serve`` (FastAPI): routes over ``IndexService``, errors as JSON, a token and limits.

Every answer is JSON; an error is ``{"error": "...", "field": ..., "candidates": [...]}`` with its status:
400 a bad request field (named), 401 a missing or wrong token, 404 an unknown entity, document or route,
413 a request body over the limit, 503 while no committed state of the index can be served (none yet, a
first ingest writing it, an interrupted ingest to recover), with ``Retry-After``.

``GuardMiddleware`` wraps the whole application (the MCP endpoint included): it checks the token
(``Authorization: Bearer``, compared with ``hmac.compare_digest``; never logged) and reads a request body
only up to the limit, so an oversized one is refused before anything parses it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping, Optional

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kgbuild import __version__
from kgbuild.errors import ConfigError, KgbuildError, SinkError, TransientError
from kgbuild.serve import models as m
from kgbuild.serve.service import FieldError, IndexService, IndexUnavailable, NotFound

log = logging.getLogger("kgbuild.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

RETRY_AFTER_S = 5
ERRORS = {status: {"model": m.ErrorResponse, "description": what} for status, what in (
    (400, "A request field has a bad value; `field` names it."),
    (401, "KGBUILD_API_TOKEN is set and the request lacks `Authorization: Bearer <token>` or has another token."),
    (413, "The request body is over the server's --max-body-bytes."),
    (503, "No committed state of the index can be served yet; retry after `Retry-After` seconds."),
)}
NOT_FOUND = {404: {"model": m.ErrorResponse, "description": "No such entity or document; `candidates` are close names."}}


def create_app(service: IndexService, *, token: str | None = None, max_body_bytes: int = 65536,
               mcp_server: Any = None, host: str = "127.0.0.1") -> ASGIApp:
    """The ASGI application: the API (and, with ``mcp_server``, its streamable HTTP endpoint at ``/mcp``) behind
    the guard. The service is started by the caller; the application closes it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            if mcp_server is not None:
                async with mcp_server.session_manager.run():
                    yield
            else:
                yield
        finally:
            service.close()

    app = FastAPI(
        title="kgbuild", version=__version__, lifespan=lifespan,
        description="A kgbuild index (knowledge graph + vector index) over HTTP: hybrid retrieval with filters, entities"
                    " with their provenance, documents and counts. The server answers from the last committed state of"
                    " the index and swaps in the next one when an ingest finishes.")

    @app.exception_handler(FieldError)
    async def _field(_: Request, exc: FieldError) -> JSONResponse:
        return _error(400, str(exc), field=exc.field)

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc), candidates=exc.candidates)

    @app.exception_handler(IndexUnavailable)
    async def _unavailable(_: Request, exc: IndexUnavailable) -> JSONResponse:
        return _error(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(TransientError)
    async def _transient(_: Request, exc: TransientError) -> JSONResponse:
        return _error(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(SinkError)
    async def _store(_: Request, exc: SinkError) -> JSONResponse:
        return _error(503, f"a store of the index did not answer: {exc}", headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(KgbuildError)
    async def _kgbuild(_: Request, exc: KgbuildError) -> JSONResponse:
        log.error("request failed: %s", exc)
        return _error(500, str(exc))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the traceback")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = validation_message(exc.errors())
        return _error(400, message, field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; GET /docs lists them"
        return _error(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.post("/query", response_model=m.QueryResponse, responses=ERRORS, tags=["retrieval"],
              summary="Ranked chunks for a text, filtered by what was extracted; hybrid fuses vector, graph and BM25")
    def query(request: m.QueryRequest) -> m.QueryResponse:
        return service.query(request)

    @app.get("/entities/{entity}/neighbourhood", response_model=m.NeighbourhoodResponse, responses={**ERRORS, **NOT_FOUND},
             tags=["graph"], summary="The entities within N relation steps of one, and the relations among them")
    def neighbourhood(entity: str = Path(description="An entity id, or TYPE:NAME."),
                      hops: int = Query(1, description="Relation steps, 1 to the server's limit (3).")) -> m.NeighbourhoodResponse:
        return service.neighbourhood(entity, hops)

    @app.get("/entities/{entity_type}/{name}", response_model=m.EntityResponse, responses={**ERRORS, **NOT_FOUND},
             tags=["graph"], summary="An entity by type and name (its key, name or any alias): aliases, mentions, documents,"
                                     " why its names were merged")
    def entity(entity_type: str, name: str) -> m.EntityResponse:
        return service.entity(f"{entity_type}:{name}")

    @app.get("/entities/{entity}", response_model=m.EntityResponse, responses={**ERRORS, **NOT_FOUND}, tags=["graph"],
             summary="An entity by id, or by TYPE:NAME")
    def entity_by_id(entity: str) -> m.EntityResponse:
        return service.entity(entity)

    @app.get("/documents/{document:path}", response_model=m.DocumentResponse, responses={**ERRORS, **NOT_FOUND},
             tags=["documents"], summary="A document by id or by its path as stored, with its chunks")
    def document(document: str) -> m.DocumentResponse:
        return service.document(document)

    @app.get("/stats", response_model=m.StatsResponse, responses=ERRORS, tags=["index"],
             summary="What the index holds and what it was built with (as `kgbuild stats`)")
    def stats() -> m.StatsResponse:
        return service.stats()

    @app.get("/health", response_model=m.HealthResponse, responses={503: {"model": m.HealthResponse}}, tags=["index"],
             summary="200 while a committed state is served; 503 with the reason while none can be")
    def health() -> JSONResponse:
        report = service.health()
        return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.status == "ok" else 503,
                            headers=None if report.status == "ok" else {"Retry-After": str(RETRY_AFTER_S)})

    if mcp_server is not None:
        from kgbuild.serve.mcp_server import MCP_PATH

        mcp_app = mcp_server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True, json_response=True,
                                                 host=host)
        app.router.routes.extend(mcp_app.routes)  # the session manager runs in the lifespan above
    return GuardMiddleware(app, token=token, max_body_bytes=max_body_bytes)


def validation_message(errors: Any) -> tuple[str, Optional[str]]:
    """The first validation error in words, and the request field it is about."""
    first = dict(errors[0]) if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    if first.get("type") == "json_invalid":
        return f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", None
    if first.get("type") == "missing" and not location:
        return "the request needs a JSON body, for example {\"text\": \"new headsets\"}", None
    field = location[0] if location else None
    where = ".".join(location)
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "extra_forbidden":
        message = "unknown field; see POST /query in /docs for the fields"
    return (f"{where}: {message}" if where else message), field


def _error(status: int, message: str, *, field: str | None = None, candidates: list[str] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = m.ErrorResponse(error=message, field=field, candidates=candidates or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


class GuardMiddleware:
    """Token check and request body limit in front of an ASGI application (see the module doc)."""

    def __init__(self, app: Any, *, token: str | None, max_body_bytes: int):
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", ())}
        if self._token is not None and not self._authorised(headers.get("authorization", b"")):
            await _send_json(send, 401, m.ErrorResponse(
                error="missing or wrong API token: send the header `Authorization: Bearer <token>` with the value of"
                      " the server's KGBUILD_API_TOKEN"), {"www-authenticate": "Bearer"})
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, int(declared))
            return
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            body, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    await self._too_large(send, None)
                    return
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": b"".join(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, header: bytes) -> bool:
        assert self._token is not None
        scheme, _, given = header.partition(b" ")
        # compared whatever the scheme, so the time taken says nothing about the token
        return hmac.compare_digest(given.strip(), self._token) and scheme.lower() == b"bearer"

    async def _too_large(self, send: Callable[[Message], Awaitable[None]], declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "the request body"
        await _send_json(send, 413, m.ErrorResponse(
            error=f"{size} is over the server's limit of {self.max_body_bytes} bytes (kgbuild serve --max-body-bytes)"))


async def _send_json(send: Callable[[Message], Awaitable[None]], status: int, body: m.ErrorResponse,
                     extra: dict[str, str] | None = None) -> None:
    payload = json.dumps(body.model_dump(mode="json")).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
