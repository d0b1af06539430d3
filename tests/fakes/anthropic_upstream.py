"""A fake Anthropic Messages upstream: a real loopback HTTP/1.1 server speaking wire-formats.md §2.

    with FakeAnthropic(models=("claude-sonnet-4-6",), api_key="sk-ant-1") as fake:
        fake.script(AFail(529), AReply(text="hi", tool_uses=[("get_weather", {"city": "Oslo"})]))
        client = anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-1", max_retries=0)
        ...
        assert fake.message_requests[0].json["max_tokens"] == 64

Routes (any path prefix; the SDK uses ``/v1/...``): ``POST …/messages``,
``POST …/messages/count_tokens`` (``{"input_tokens": N}``), ``GET …/models``,
``GET …/models/{id}``; anything else is a 404 ``not_found_error``. Checked before a behaviour is
consumed, in this order: the key (``x-api-key: K`` or ``Authorization: Bearer K`` — the SDK >= 2.0
sends the latter; 401 ``authentication_error``), the ``anthropic-version`` header (missing or
unknown → 400 ``invalid_request_error``), the body (``model``, ``max_tokens``, non-empty
``messages`` with user/assistant roles; under ``2026-10-21`` no ``temperature``/``top_p``/``top_k``
→ 400) and, with ``strict_models``, the model (404 ``not_found_error``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fakes.anthropic_behaviours import (
    ABehaviour,
    AEcho,
    AFail,
    AReply,
    AStreamError,
    echo_answer,
)
from tests.fakes.anthropic_runners import AnthropicExchange, run
from tests.fakes.anthropic_wire import API_VERSIONS, check_body, input_tokens, model_json, models_json
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
from tests.fakes.openai_wire import dumps

__all__ = [
    "ABehaviour",
    "AEcho",
    "AFail",
    "AReply",
    "AStreamError",
    "ConnectionRecord",
    "Delay",
    "EmptyStream",
    "FakeAnthropic",
    "Gate",
    "Hang",
    "Raw",
    "RawStream",
    "RecordedRequest",
    "Refuse",
    "Stall",
    "StreamThenDie",
    "echo_answer",
]


class FakeAnthropic(LoopbackFake[ABehaviour]):
    """A fake Anthropic upstream on ``host:port`` (port 0 = any free port), started on construction.
    ``url`` (= ``base_url``) is ``http://host:port`` — the SDK's ``base_url`` (it adds ``/v1``)."""

    name = "FakeAnthropic"

    def __init__(
        self,
        models: Iterable[str] = ("claude-sonnet-4-6", "claude-haiku-4-5"),
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: ABehaviour | None = None,
        strict_models: bool = True,
        versions: Iterable[str] = API_VERSIONS,
    ) -> None:
        self.models = tuple(models)
        self.api_key = api_key
        self.strict_models = strict_models
        self.versions = tuple(versions)
        super().__init__(default=default if default is not None else AEcho(), host=host, port=port)
        self.base_url = self.url

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """``POST …/messages`` requests (not ``count_tokens``), accepted or not."""
        return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/").endswith("/messages")]

    def wait_for_message_requests(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda f: len(f.message_requests) >= n, timeout)

    def __repr__(self) -> str:
        return f"FakeAnthropic({self.url!r}, models={self.models!r})"

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        return headers.get("x-api-key") == self.api_key or headers.get("authorization") == f"Bearer {self.api_key}"

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        recorded = self._record(req, conn)
        ex = AnthropicExchange(conn, req.keep_alive, self._parker(conn), self._new_hang)
        if not self._authorised(req.headers):
            missing = "x-api-key" not in req.headers and "authorization" not in req.headers
            return await ex.error(401, "x-api-key header is required" if missing else "invalid x-api-key")
        version = req.headers.get("anthropic-version")
        if version is None:
            return await ex.error(400, "anthropic-version: header is required")
        if version not in self.versions:
            return await ex.error(400, f"anthropic-version: invalid version {version!r}")
        path = req.path.rstrip("/")
        if req.method == "POST" and path.endswith("/messages"):
            return await self._messages(recorded.json, version, ex)
        if req.method == "POST" and path.endswith("/messages/count_tokens"):
            body = recorded.json
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                return await ex.error(400, "model: Field required")
            return await ex.respond(200, dumps({"input_tokens": input_tokens(body)}))
        if req.method == "GET" and path.endswith("/models"):
            return await ex.respond(200, dumps(models_json(self.models)))
        if req.method == "GET" and "/models/" in path:
            model = path.rsplit("/models/", 1)[1]
            if model in self.models:
                return await ex.respond(200, dumps(model_json(model)))
            return await ex.error(404, f"model: {model}")
        return await ex.error(404, "Not found")

    async def _messages(self, body: Any, version: str, ex: AnthropicExchange) -> bool:
        problem = check_body(body, version)
        if problem is None and not isinstance(body.get("model"), str):
            problem = "model: Field required"
        if problem is not None:
            return await ex.error(400, problem)
        model = body["model"]
        if self.strict_models and self.models and model not in self.models:
            return await ex.error(404, f"model: {model}")
        ex.body, ex.model, ex.stream = body, model, bool(body.get("stream"))
        return await run(self._next_behaviour(model), ex)
