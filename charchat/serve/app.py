"""The HTTP edge: OpenAI- and Ollama-compatible routes and the page, on Starlette.

Routes check what they are sent (wire.py), hand the work to the models' streams
(streams.py, in worker threads, so the event loop never waits on arithmetic) and turn what
comes back into Server-Sent Events, newline-delimited JSON or one JSON body. Errors use each
format's own error object; nothing a client sends reaches the file system.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from charchat import __version__
from charchat.modelfile import Model
from charchat.serve import formats
from charchat.serve.generation import Char, Done, Generation
from charchat.serve.streams import ModelStreams
from charchat.serve.wire import (
    WireError,
    chat_completions,
    completions,
    ollama_chat,
    ollama_generate,
    page_request,
    sampling,
)

MAX_BODY = 1 << 20
RETRY_AFTER = 1  # seconds a client turned away for too many streams is asked to wait
DISCONNECT_POLL = 0.5  # seconds between checks that a non-streaming client is still there
GATHER = 0.02  # seconds an unpaced stream's characters gather between writes


@dataclass
class Serving:
    models: dict[str, Model]
    max_streams: int = 64
    api_key: str | None = None
    cache_bytes: int = 64 << 20
    streams: dict[str, ModelStreams] = field(default_factory=dict)
    tags: list = field(default_factory=list)  # GET /api/tags, made once
    open_streams: int = 0
    page_streams: dict[str, Generation] = field(default_factory=dict)

    def start(self) -> None:
        for name, model in self.models.items():
            self.streams[name] = ModelStreams(model, self.cache_bytes)
        self.tags = [formats.ollama_tag(name, m) for name, m in self.models.items()]

    def stop(self) -> None:
        """Every open stream gets its final event; the workers end."""
        for streams in self.streams.values():
            streams.close()


class Outlet:
    """Items delivered by worker threads, taken on the event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.items, self.event, self.waiting = loop, deque(), asyncio.Event(), False

    def deliver(self, item) -> None:
        self.items.append(item)
        if self.waiting:  # one wake-up however many items come before the loop runs
            self.waiting = False
            self.loop.call_soon_threadsafe(self.event.set)

    async def batch(self, timeout: float | None = None) -> list:
        while not self.items:
            self.waiting = True
            self.event.clear()
            if self.items:
                break
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        self.waiting = False
        out = []
        while self.items:
            out.append(self.items.popleft())
        return out


def error_response(status: int, message: str, ollama: bool, param=None, code=None, headers=None):
    if ollama:
        return JSONResponse({"error": message}, status, headers=headers)
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


async def read_json(request: Request) -> dict:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise WireError(413, f"the request body is over {MAX_BODY // (1 << 20)} MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise WireError(413, f"the request body is over {MAX_BODY // (1 << 20)} MB")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WireError(400, "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise WireError(400, "the request body must be a JSON object")
    return value


def generating(parse, shape, ollama: bool = False):
    """A route that generates: checks, the stream budget, then streaming or one body."""

    async def route(request: Request) -> Response:
        serving: Serving = request.app.state.serving
        try:
            check_key(request, serving)
            asked = parse(await read_json(request))
            if asked.model not in serving.streams:
                raise WireError(404, f"no model named {asked.model!r}", "model", "model_not_found")
            if serving.open_streams + len(asked.asks) > serving.max_streams:
                raise WireError(429, f"more than {serving.max_streams} streams at once")
        except WireError as e:
            headers = {"Retry-After": str(RETRY_AFTER)} if e.status == 429 else None
            return error_response(e.status, e.message, ollama, e.param, e.code, headers)
        outlet = Outlet(asyncio.get_running_loop())
        streams = serving.streams[asked.model]
        generations = [
            Generation(ask, lambda item, i=i: outlet.deliver((i, item)))
            for i, ask in enumerate(asked.asks)
        ]
        serving.open_streams += len(generations)
        for g in generations:
            streams.start(g)
        shaper = shape(asked, asked.model)
        paced = any(ask.pace for ask in asked.asks)
        if asked.live:
            serving.page_streams[shaper.id] = generations[0]

        async def pieces():
            try:
                finished = 0
                while finished < len(generations):
                    taken = await outlet.batch()
                    out, wrote = [], False
                    for i, item in taken:
                        if isinstance(item, Char):
                            generations[i].took(1)
                            wrote = True
                        finished += isinstance(item, Done)
                        out.append(shaper.piece(i, item))
                    yield "".join(out)
                    if wrote and not paced:  # let characters gather: one write, not one each
                        await asyncio.sleep(GATHER)
                yield shaper.end()
            finally:
                serving.page_streams.pop(shaper.id, None)
                serving.open_streams -= len(generations)
                for g in generations:
                    streams.cancel(g)

        if asked.stream:
            media = "application/x-ndjson" if ollama else "text/event-stream"
            return StreamingResponse(pieces(), media_type=media)
        return await whole(request, pieces(), shaper, outlet)

    return route


async def whole(request: Request, pieces, shaper, outlet) -> Response:
    """A non-streaming answer; a client that goes away stops the work at once."""
    task = asyncio.ensure_future(_drain(pieces))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                await pieces.aclose()
                return Response(status_code=499)
    finally:
        if not task.done():
            task.cancel()
    return JSONResponse(shaper.whole())


async def _drain(pieces) -> None:
    async for _ in pieces:
        pass


def check_key(request: Request, serving: Serving) -> None:
    if serving.api_key is None:
        return
    if request.headers.get("authorization", "") != f"Bearer {serving.api_key}":
        raise WireError(401, "a valid API key is needed (Authorization: Bearer KEY)")


def refusal(request: Request, ollama: bool) -> Response | None:
    """The 401 answer when an API key is wanted and not given; None when all is well."""
    try:
        check_key(request, request.app.state.serving)
    except WireError as e:
        return error_response(e.status, e.message, ollama)
    return None


async def list_models(request: Request) -> Response:
    if refused := refusal(request, ollama=False):
        return refused
    model = {"object": "model", "created": int(time.time()), "owned_by": "charchat"}
    data = [{"id": name} | model for name in request.app.state.serving.models]
    return JSONResponse({"object": "list", "data": data})


async def ollama_tags(request: Request) -> Response:
    if refused := refusal(request, ollama=True):
        return refused
    return JSONResponse({"models": request.app.state.serving.tags})


async def ollama_version(request: Request) -> Response:
    return JSONResponse({"version": __version__})


async def page(request: Request) -> Response:
    html = resources.files("charchat.serve").joinpath("page.html").read_text(encoding="utf-8")
    return HTMLResponse(html)


async def page_settings(request: Request) -> Response:
    """The page's slider and mode selector: the stream's settings from its next character."""
    serving: Serving = request.app.state.serving
    try:
        check_key(request, serving)
        body = await read_json(request)
        g = serving.page_streams.get(body.get("id"))
        if g is None:
            raise WireError(404, "no such stream (it has ended)", "id")
        g.settings = sampling({"temperature": g.settings.temperature} | body, 0.8).check()
    except WireError as e:
        return error_response(e.status, e.message, False, e.param)
    except Exception as e:  # CharchatError from check(): a value out of range
        return error_response(400, str(e), False)
    return JSONResponse({"temperature": g.settings.temperature, "mode": g.settings.mode})


def create_app(serving: Serving, cors: str | None = None) -> Starlette:
    routes = [
        Route("/", page),
        Route("/v1/models", list_models),
        Route("/v1/completions", generating(completions, formats.Completion), methods=["POST"]),
        Route(
            "/v1/chat/completions",
            generating(chat_completions, formats.ChatCompletion),
            methods=["POST"],
        ),
        Route(
            "/api/generate",
            generating(ollama_generate, formats.OllamaGenerate, ollama=True),
            methods=["POST"],
        ),
        Route(
            "/api/chat", generating(ollama_chat, formats.OllamaChat, ollama=True), methods=["POST"]
        ),
        Route("/api/tags", ollama_tags),
        Route("/api/version", ollama_version),
        Route("/page/stream", generating(page_request, formats.PageStream), methods=["POST"]),
        Route("/page/settings", page_settings, methods=["POST"]),
    ]
    middleware = []
    if cors:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=[cors], allow_methods=["*"], allow_headers=["*"]
            )
        )
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={500: server_error})
    app.state.serving = serving
    return app


async def server_error(request: Request, exc: Exception) -> Response:
    ollama = request.url.path.startswith("/api/")
    return error_response(500, "the server failed on this request", ollama)
