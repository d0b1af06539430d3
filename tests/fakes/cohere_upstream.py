"""A fake Cohere v2 Chat upstream: a real loopback HTTP/1.1 server speaking wire-formats.md §7.

    with FakeCohere(models=("command-a-03-2025",), api_key="co-key-1") as fake:
        fake.script(CFail(429, headers={"retry-after": "7"}), CReply(text="hi", tool_calls=[("f", {})]))
        client = cohere.ClientV2(api_key="co-key-1", base_url=fake.url)
        ...
        assert fake.chat_requests[0].json["max_tokens"] == 64

Routes (any path prefix; the SDK uses ``/v2/chat``): ``POST …/v2/chat``; anything else is a 404
with Cohere's ``{"id", "message"}`` body. ``POST …/v2/embed`` (cohere_embed.py) answers embeddings:
``CEcho`` is the normal answer, other behaviours run as for chat (``CFail``, ``Refuse``…).
Checked before a behaviour is consumed, in this order:
the key (``Authorization: Bearer K``; 401 ``no api key supplied`` / ``invalid api token``), the
body (``cohere_wire.check_body``: 400) and, with ``strict_models``, the model (404).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fakes.cohere_behaviours import CBehaviour, CEcho, CFail, CReply, CStreamError
from tests.fakes.cohere_embed import EMBED_PATH, check_embed_body, embed_json
from tests.fakes.cohere_runners import CohereExchange, run
from tests.fakes.cohere_wire import check_body, default_message
from tests.fakes.http11 import Conn, HttpRequest
from tests.fakes.loopback import (
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
    "CBehaviour",
    "CEcho",
    "CFail",
    "CReply",
    "CStreamError",
    "Delay",
    "EmptyStream",
    "FakeCohere",
    "Gate",
    "Hang",
    "Raw",
    "RawStream",
    "RecordedRequest",
    "Refuse",
    "Stall",
    "StreamThenDie",
]

CHAT_PATH = "/v2/chat"


class FakeCohere(LoopbackFake[CBehaviour]):
    """A fake Cohere upstream on ``host:port`` (port 0 = any free port), started on construction.
    ``url`` is ``http://host:port`` — the SDK's ``base_url`` (it adds ``/v2/chat``)."""

    name = "FakeCohere"

    def __init__(
        self,
        models: Iterable[str] = ("command-a-03-2025", "command-r7b-12-2024"),
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: CBehaviour | None = None,
        strict_models: bool = True,
    ) -> None:
        self.models = tuple(models)
        self.api_key = api_key
        self.strict_models = strict_models
        super().__init__(default=default if default is not None else CEcho(), host=host, port=port)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """``POST …/v2/chat`` requests, accepted or not."""
        return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/").endswith(CHAT_PATH)]

    def __repr__(self) -> str:
        return f"FakeCohere({self.url!r}, models={self.models!r})"

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        recorded = self._record(req, conn)
        ex = CohereExchange(conn, req.keep_alive, self._parker(conn), self._new_hang)
        authorization = req.headers.get("authorization")
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return await ex.error(401, "no api key supplied" if authorization is None else default_message(401))
        if req.method == "POST" and req.path.rstrip("/").endswith(CHAT_PATH):
            return await self._chat(recorded.json, ex)
        if req.method == "POST" and req.path.rstrip("/").endswith(EMBED_PATH):
            return await self._embed(recorded.json, ex)
        return await ex.error(404, f"{req.method} {req.path} not found")

    async def _chat(self, body: Any, ex: CohereExchange) -> bool:
        problem = check_body(body)
        if problem is not None:
            return await ex.error(400, problem)
        model = body["model"]
        if self.strict_models and self.models and model not in self.models:
            return await ex.error(404, f"model '{model}' not found, make sure the correct model ID was used")
        ex.body, ex.model, ex.stream = body, model, bool(body.get("stream"))
        return await run(self._next_behaviour(model), ex)

    async def _embed(self, body: Any, ex: CohereExchange) -> bool:
        problem = check_embed_body(body)
        if problem is not None:
            return await ex.error(400, problem)
        model = body["model"]
        if self.strict_models and self.models and model not in self.models:
            return await ex.error(404, f"model '{model}' not found, make sure the correct model ID was used")
        behaviour = self._next_behaviour(model)
        if isinstance(behaviour, CEcho):
            return await ex.respond(200, dumps(embed_json(body)))
        ex.body, ex.model, ex.stream = body, model, False
        return await run(behaviour, ex)
