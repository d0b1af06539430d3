"""A fake Gemini API (Google AI Studio) upstream: a real loopback HTTP/1.1 server speaking
wire-formats.md §3.

    with FakeGemini(models=("gemini-2.5-flash",), api_key="AIza-test") as fake:
        fake.script(GFail(429, retry_delay="37s"), GReply(function_calls=[("get_weather", {"city": "Oslo"})]))
        client = genai.Client(api_key="AIza-test", http_options=types.HttpOptions(base_url=fake.url))
        ...
        assert fake.generate_requests[0].json["contents"][0]["parts"][0]["text"] == "hi"

Routes, under ``/v1``, ``/v1beta`` or ``/v1alpha``: ``POST models/{model}:generateContent``,
``POST models/{model}:streamGenerateContent`` (``?alt=sse``: SSE events; without it one JSON
array), ``POST models/{model}:countTokens``, ``:embedContent`` and ``:batchEmbedContents``
(gemini_embed.py), ``GET models``, ``GET models/{model}``; anything
else is a 404 ``NOT_FOUND``. Checked before a behaviour is consumed: the key
(``x-goog-api-key`` header or ``?key=``; missing → 403 ``PERMISSION_DENIED``, wrong → 400
``INVALID_ARGUMENT`` with ``ErrorInfo.reason: API_KEY_INVALID``), the model (404 with
``strict_models``) and the body (unknown top-level field, missing/empty ``contents`` or
``parts``, a bad role → 400 ``INVALID_ARGUMENT``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.gemini_behaviours import GBehaviour, GBlocked, GEcho, GFail, GReply, GSafety, GStreamError
from tests.fakes.gemini_embed import EMBED_METHODS, serve_embed
from tests.fakes.gemini_runners import GeminiExchange, run
from tests.fakes.gemini_wire import api_key_invalid_json, check_body, error_json, model_json, models_json, prompt_tokens
from tests.fakes.http11 import Conn, HttpRequest
from tests.fakes.loopback import (
    ConnectionRecord,
    Delay,
    EmptyStream,
    Gate,
    Hang,
    LoopbackFake,
    Raw,
    RawStream,
    RecordedRequest,
    Refuse,
    Stall,
    StreamThenDie,
)

__all__ = [
    "ConnectionRecord",
    "Delay",
    "EmptyStream",
    "FakeGemini",
    "GBehaviour",
    "GBlocked",
    "GEcho",
    "GFail",
    "GReply",
    "GSafety",
    "GStreamError",
    "Gate",
    "Hang",
    "Raw",
    "RawStream",
    "RecordedRequest",
    "Refuse",
    "Stall",
    "StreamThenDie",
    "serve_model_method",
]

API_VERSIONS = ("v1", "v1beta", "v1alpha")
METHOD_PATH = re.compile(r"^/(?P<version>v1\w*)/models/(?P<model>[^/:]+):(?P<method>\w+)$")
MODEL_PATH = re.compile(r"^/(?P<version>v1\w*)/models(?:/(?P<model>[^/:]+))?/?$")
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


async def serve_model_method(
    ex: GeminiExchange, method: str, body: Any, model: str, query: str, next_behaviour: Callable[[str], object]
) -> bool:
    """Answer ``POST …/models/{model}:{method}`` once the route, auth and model are accepted;
    shared by the Gemini and Vertex fakes."""
    if method == "countTokens":
        request = body.get("generateContentRequest") if isinstance(body, dict) else None
        source = request if isinstance(request, dict) else body if isinstance(body, dict) else {}
        tokens = prompt_tokens(source)
        return await ex.respond_json(
            200, {"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}
        )
    if method in EMBED_METHODS:
        return await serve_embed(ex, method, body, model, next_behaviour)
    if method not in ("generateContent", "streamGenerateContent"):
        return await ex.error(404, f"Method {method} is not found for model {model}.")
    problem = check_body(body, ex.vertex)
    if problem is not None:
        return await ex.error(400, problem)
    ex.body, ex.model = body, model
    ex.stream = method == "streamGenerateContent"
    ex.sse = parse_qs(query).get("alt") == ["sse"]
    return await run(next_behaviour(model), ex)


class FakeGemini(LoopbackFake[GBehaviour]):
    """A fake Gemini API on ``host:port`` (port 0 = any free port), started on construction.
    ``url`` is ``http://host:port`` — the ``base_url`` for ``genai.Client`` (it adds the version)."""

    name = "FakeGemini"

    def __init__(
        self,
        models: Iterable[str] = ("gemini-2.5-flash", "gemini-2.5-pro"),
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: GBehaviour | None = None,
        strict_models: bool = True,
    ) -> None:
        self.models = tuple(models)
        self.api_key = api_key
        self.strict_models = strict_models
        super().__init__(default=default if default is not None else GEcho(), host=host, port=port)

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        """``:generateContent`` and ``:streamGenerateContent`` requests, accepted or not."""
        suffixes = (":generateContent", ":streamGenerateContent")
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffixes)]

    def wait_for_generate_requests(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda f: len(f.generate_requests) >= n, timeout)

    def __repr__(self) -> str:
        return f"FakeGemini({self.url!r}, models={self.models!r})"

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        recorded = self._record(req, conn)
        ex = GeminiExchange(conn, req.keep_alive, self._parker(conn), self._new_hang)
        if self.api_key is not None:
            keys = parse_qs(req.query).get("key") or []
            key = req.headers.get("x-goog-api-key") or (keys[0] if keys else None)
            if key is None:
                return await ex.error(403, UNREGISTERED)
            if key != self.api_key:
                return await ex.respond_json(400, api_key_invalid_json())
        route = METHOD_PATH.match(req.path)
        if req.method == "POST" and route and route["version"] in API_VERSIONS:
            model = route["model"]
            if self.strict_models and self.models and model not in self.models:
                return await ex.respond_json(404, not_found(model, route["version"], route["method"]))
            return await serve_model_method(ex, route["method"], recorded.json, model, req.query, self._next_behaviour)
        listing = MODEL_PATH.match(req.path)
        if req.method == "GET" and listing and listing["version"] in API_VERSIONS:
            model = listing["model"]
            if model is None:
                return await ex.respond_json(200, models_json(self.models))
            if model in self.models:
                return await ex.respond_json(200, model_json(model))
            return await ex.respond_json(404, not_found(model, listing["version"], "get"))
        return await ex.error(404, f"The requested URL {req.path} was not found on this server.")


def not_found(model: str, version: str, method: str) -> dict[str, Any]:
    message = (
        f"models/{model} is not found for API version {version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods."
    )
    return error_json(404, "NOT_FOUND", message)
