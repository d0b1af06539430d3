"""A fake OpenAI-compatible upstream: a real loopback HTTP/1.1 server that misbehaves on demand.

Owns the server side of the fake: its event loop (in a daemon thread, so synchronous tests and
the synchronous ``openai`` SDK can drive it), routing, auth, the behaviour queues, and the
records tests assert on. Wire shapes come from ``openai_wire``, behaviours from
``openai_behaviours``, raw HTTP/1.1 from ``http11``.

    with FakeOpenAI(models=("gpt-4o",), api_key="sk-up-1") as fake:
        fake.script(Fail(429, headers={"retry-after": "2"}), Reply(text="hi"))
        fake.script_for("gpt-4o", Hang())      # checked before the global queue
        ...  # point the gateway (or openai.OpenAI(base_url=fake.base_url)) at it
        assert fake.chat_requests[0].json["model"] == "gpt-4o"

Routes (any path prefix is accepted, so ``/v1/chat/completions``, ``/chat/completions`` and
``/openai/v1/chat/completions`` all work): ``POST …/chat/completions``, ``GET …/models``,
``GET …/models/{id}``, ``POST …/embeddings``; anything else is a 404 OpenAI error. Requests
failing auth (401), unparseable JSON or missing fields (400) and unknown models (404, when
``strict_models``) are answered before a behaviour is consumed; a consumed behaviour always
belongs to a well-formed, authorised chat request.

``flavor="azure"`` makes it Azure OpenAI (``openai_azure``): chat is served only on
``/openai/deployments/{deployment}/chat/completions`` (the deployment is the model; the body's
``model`` is ignored), ``/openai/v1/chat/completions`` and ``/models/chat/completions``, the
dated forms only with an ``api-version`` query (else Azure's 404); the key is checked in the
``api-key`` header (``Authorization: Bearer`` is accepted too, as for Entra tokens); an unknown
deployment is Azure's 404 ``DeploymentNotFound``; answers carry the content-filter annotations.
``url`` is the server root (what ``openai.AzureOpenAI(azure_endpoint=...)`` takes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, Self

from tests.fakes import openai_azure as azure
from tests.fakes.http11 import MAX_HEAD_BYTES, BadRequest, Conn, ConnectionRecord, HttpRequest, read_request
from tests.fakes.openai_behaviours import (
    BadJSON,
    Behaviour,
    Delay,
    Echo,
    EmptyStream,
    Fail,
    Gate,
    Hang,
    Raw,
    RawStream,
    Refuse,
    Reply,
    Stall,
    StreamError,
    StreamThenDie,
)
from tests.fakes.openai_runners import Exchange, run
from tests.fakes.openai_wire import (
    dumps,
    embedding_inputs,
    embeddings_json,
    error_json,
    model_json,
    models_json,
)

__all__ = [
    "BadJSON",
    "Behaviour",
    "ConnectionRecord",
    "Delay",
    "Echo",
    "EmptyStream",
    "Fail",
    "FakeOpenAI",
    "FakeOpenAIFactory",
    "Gate",
    "Hang",
    "Raw",
    "RawStream",
    "RecordedRequest",
    "Refuse",
    "Reply",
    "Stall",
    "StreamError",
    "StreamThenDie",
]

AUTH_ERROR = error_json("Incorrect API key provided", "invalid_request_error", "invalid_api_key")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as received. ``headers`` keys are lowercased; ``json`` is the parsed body or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    query: str = ""
    connection_id: int = 0


class FakeOpenAI:
    """A fake OpenAI upstream on ``host:port`` (port 0 = any free port), started on construction.

    Thread-safe: behaviours may be scripted and records read from any thread while requests are
    served. Use as a context manager, or call :meth:`stop`.
    """

    def __init__(
        self,
        models: Iterable[str] = ("gpt-4o", "gpt-4o-mini"),
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Behaviour | None = None,
        strict_models: bool = True,
        embedding_dim: int = 8,
        flavor: Literal["openai", "azure"] = "openai",
    ) -> None:
        self.models = tuple(models)
        self.flavor = flavor
        self.api_key = api_key
        self.host = host
        self.default: Behaviour = default if default is not None else Echo()
        self.strict_models = strict_models
        self.embedding_dim = embedding_dim
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[Behaviour] = deque()
        self._per_model: dict[str, deque[Behaviour]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: list[ConnectionRecord] = []
        self._parked = 0
        self.errors: list[BaseException] = []
        """Unexpected exceptions inside the fake (its own bugs); tests may assert it stays empty."""
        self._conn_ids = itertools.count(1)
        # Loop-thread state.
        self._hangs: set[asyncio.Future[None]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._stopped = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="FakeOpenAI", daemon=True)
        self._thread.start()
        try:
            self.port: int = self._call(self._start(port))
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            raise
        self.url = f"http://{host}:{self.port}"
        self.base_url = self.url + "/v1"

    # ---- public, synchronous API ------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per chat request (after the per-model queues)."""
        with self._cond:
            self._queue.extend(behaviours)

    def script_for(self, model: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for requests whose body names upstream ``model``."""
        with self._cond:
            self._per_model.setdefault(model, deque()).extend(behaviours)

    @property
    def pending_scripts(self) -> int:
        """Behaviours queued and not yet consumed (global plus per-model)."""
        with self._cond:
            return len(self._queue) + sum(len(q) for q in self._per_model.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def connections(self) -> list[ConnectionRecord]:
        """Copies of every accepted connection's record, in accept order."""
        with self._cond:
            return [replace(c) for c in self._connections]

    @property
    def parked(self) -> int:
        """Requests currently waiting in ``Hang``/``Gate``/``Delay``/``Stall``."""
        with self._cond:
            return self._parked

    def wait_for(self, predicate: Callable[[FakeOpenAI], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every request, connection and park
        change); False on timeout. The no-sleep way to order a test against the server."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_for_chat_requests(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda f: len(f.chat_requests) >= n, timeout)

    def release(self) -> int:
        """Release every ``Hang``/``Stall`` currently waiting; returns how many were released."""
        if self._stopped:
            return 0
        return int(self._call(self._release_all()))

    def stop(self) -> None:
        """Release hangs, close every connection and the listener, and end the loop thread."""
        if self._stopped:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeOpenAI({self.base_url!r}, models={self.models!r})"

    # ---- loop plumbing ----------------------------------------------------------------------

    def _call(self, coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result(timeout=10)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    async def _start(self, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, port, limit=MAX_HEAD_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def _release_all(self) -> int:
        hangs = [f for f in self._hangs if not f.done()]
        for fut in hangs:
            fut.set_result(None)
        self._hangs.clear()
        return len(hangs)

    async def _shutdown(self) -> None:
        await self._release_all()
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _new_hang(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._hangs.add(fut)
        fut.add_done_callback(self._hangs.discard)
        return fut

    async def _park(self, conn: Conn, waiter: Awaitable[Any]) -> bool:
        with self._cond:
            self._parked += 1
            self._cond.notify_all()
        try:
            return await conn.park(waiter)
        finally:
            with self._cond:
                self._parked -= 1
                self._cond.notify_all()

    # ---- connection and request handling ------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        record = ConnectionRecord(id=next(self._conn_ids), opened_at=time.monotonic())
        with self._cond:
            self._connections.append(record)
            self._cond.notify_all()
        conn = Conn(reader, writer, record, self._notify)
        try:
            while True:
                try:
                    req = await read_request(reader)
                except BadRequest as exc:
                    await self._exchange(conn, keep_alive=False).error(400, str(exc))
                    break
                if req is None:
                    conn.peer_closed()
                    break
                record.requests += 1
                record.bytes_in += req.head_size + len(req.body)
                if not await self._serve(req, conn) or not req.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.peer_closed()
        except asyncio.CancelledError:
            writer.transport.abort()
        except Exception as exc:  # a bug in the fake: keep it visible to tests, drop the connection
            with self._cond:
                self.errors.append(exc)
            writer.transport.abort()
        finally:
            if not conn.closed:
                writer.close()
                conn.mark_closed()
            self._tasks.discard(task)

    def _exchange(self, conn: Conn, keep_alive: bool) -> Exchange:
        return Exchange(conn, keep_alive, lambda waiter: self._park(conn, waiter), self._new_hang)

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        """Answer one request; False when the connection must not be reused."""
        parsed: Any = None
        with contextlib.suppress(ValueError):
            parsed = json.loads(req.body) if req.body else None
        recorded = RecordedRequest(req.method, req.path, req.headers, req.body, parsed, req.query, conn.record.id)
        with self._cond:
            self._requests.append(recorded)
            self._cond.notify_all()
        ex = self._exchange(conn, req.keep_alive)
        if self.flavor == "azure":
            return await self._serve_azure(req, parsed, ex)
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return await ex.respond(401, dumps(AUTH_ERROR))
        path = req.path.rstrip("/")
        if req.method == "POST" and path.endswith("/chat/completions"):
            return await self._chat(parsed, ex)
        if req.method == "POST" and path.endswith("/embeddings"):
            return await self._embeddings(parsed, ex)
        if req.method == "GET" and path.endswith("/models"):
            return await ex.respond(200, dumps(models_json(self.models)))
        if req.method == "GET" and "/models/" in path:
            model = path.rsplit("/models/", 1)[1]
            if model in self.models:
                return await ex.respond(200, dumps(model_json(model)))
            return await ex.error(404, f"The model '{model}' does not exist", "model_not_found")
        return await ex.error(404, f"Invalid URL ({req.method} {req.path})")

    async def _serve_azure(self, req: HttpRequest, parsed: Any, ex: Exchange) -> bool:
        """Azure OpenAI's routes, auth and errors (see the module docstring)."""
        key = self.api_key
        bearer = req.headers.get("authorization")
        if key is not None and req.headers.get("api-key") != key and bearer != f"Bearer {key}":
            return await ex.respond(401, dumps(azure.ACCESS_DENIED))
        found = azure.route(req.path) if req.method == "POST" else None
        if found is None or (found.needs_version and not azure.api_version(req.query)):
            return await ex.respond(404, dumps(azure.RESOURCE_NOT_FOUND))
        if found.deployment is not None and self.strict_models and found.deployment not in self.models:
            return await ex.respond(404, dumps(azure.deployment_not_found(found.deployment)))
        ex.azure = True
        return await self._chat(parsed, ex, found.deployment)

    async def _chat(self, body: Any, ex: Exchange, deployment: str | None = None) -> bool:
        if not isinstance(body, dict):
            return await ex.error(400, "We could not parse the JSON body of your request.")
        model = deployment or body.get("model")
        if not isinstance(model, str) or not model:
            return await ex.error(400, "you must provide a model parameter")
        if not isinstance(body.get("messages"), list):
            return await ex.error(400, "Missing required parameter: 'messages'.")
        if self.strict_models and self.models and model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return await ex.error(404, message, "model_not_found")
        with self._cond:
            queue = self._per_model.get(model)
            if queue:
                behaviour = queue.popleft()
            elif self._queue:
                behaviour = self._queue.popleft()
            else:
                behaviour = self.default
        options = body.get("stream_options")
        ex.body, ex.model, ex.stream = body, model, bool(body.get("stream"))
        ex.include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return await run(behaviour, ex)

    async def _embeddings(self, body: Any, ex: Exchange) -> bool:
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return await ex.error(400, "you must provide a model parameter")
        try:
            inputs = embedding_inputs(body.get("input"))
        except (ValueError, TypeError) as exc:
            return await ex.error(400, str(exc))
        dims = int(body.get("dimensions") or self.embedding_dim)
        encoding = str(body.get("encoding_format") or "float")
        return await ex.respond(200, dumps(embeddings_json(body["model"], inputs, dims, encoding)))


class FakeOpenAIFactory:
    """Makes any number of fakes (one per channel) and stops them all on exit.

    As a pytest fixture::

        @pytest.fixture
        def fake_openai() -> Iterator[FakeOpenAIFactory]:
            with FakeOpenAIFactory() as make:
                yield make

        def test_x(fake_openai): a, b = fake_openai(), fake_openai(host="127.0.0.2")
    """

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self.instances: list[FakeOpenAI] = []

    def __call__(self, **kwargs: Any) -> FakeOpenAI:
        fake = FakeOpenAI(**{**self.defaults, **kwargs})
        self.instances.append(fake)
        return fake

    def close(self) -> None:
        for fake in self.instances:
            fake.stop()
        self.instances.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
