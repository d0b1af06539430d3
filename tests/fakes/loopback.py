"""Provider-agnostic plumbing shared by the Anthropic, Gemini and Vertex fakes.

Nothing in here knows a provider; the module carries the ``anthropic_`` prefix only because of
file ownership when it was written (a natural home would be ``tests/fakes/loopback.py``).

Owns :class:`LoopbackFake` — the server skeleton of ``FakeOpenAI`` made reusable: its own event
loop in a daemon thread, a synchronous thread-safe API (``script``/``script_for`` queues,
``requests``, ``connections``, ``parked``, ``wait_for``, ``release``, ``stop``, context manager),
raw HTTP/1.1 from ``http11`` — and the generic behaviours whose ``then`` may be any fake's
behaviour (:class:`Hang`, :class:`Gate`, :class:`Delay`). The provider-independent behaviours
``Refuse``, ``Raw``, ``RawStream``, ``StreamThenDie``, ``Stall`` and ``EmptyStream`` are the OpenAI
fake's own classes, re-exported. A subclass implements ``_serve`` (routing, auth, the provider's
behaviours).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from tests.fakes.http11 import MAX_HEAD_BYTES, BadRequest, Conn, ConnectionRecord, HttpRequest, read_request
from tests.fakes.openai_behaviours import EmptyStream, Raw, RawStream, Refuse, Stall, StreamThenDie
from tests.fakes.openai_runners import Exchange, run_raw, run_raw_stream, run_refuse
from tests.fakes.openai_upstream import RecordedRequest

__all__ = [
    "ConnectionRecord",
    "Delay",
    "EmptyStream",
    "Exchange",
    "Gate",
    "Hang",
    "LoopbackFake",
    "Raw",
    "RawStream",
    "RecordedRequest",
    "Refuse",
    "Stall",
    "StreamThenDie",
    "run_generic",
]

GATE_POLL_S = 0.002


@dataclass(frozen=True)
class Hang:
    """Read the request, answer nothing until ``fake.release()`` or stop; then behave like
    ``then`` (a behaviour of the same fake), or (``then=None``) close the connection with a FIN."""

    then: object | None = None


@dataclass(frozen=True)
class Gate:
    """Park until ``event`` (a ``threading.Event``) is set, then behave like ``then``
    (``None``: the provider's echo)."""

    event: threading.Event
    then: object | None = None


@dataclass(frozen=True)
class Delay:
    """Park ``seconds`` (time to first byte), then behave like ``then`` (``None``: the echo)."""

    seconds: float
    then: object | None = None


ThenRunner = Callable[[object | None], Awaitable[bool]]


async def run_generic(b: object, ex: Exchange, run_then: ThenRunner) -> bool | None:
    """Perform a provider-independent behaviour; ``None`` when ``b`` is not one of them.
    ``run_then(x)`` performs a follow-up behaviour (``x=None``: the provider's echo)."""
    if isinstance(b, Hang):
        if not await ex.park(ex.new_hang()):
            return False
        if b.then is not None:
            return await run_then(b.then)
        await ex.conn.close()
        return False
    if isinstance(b, Gate):
        event = b.event

        async def opened() -> None:
            while not event.is_set():
                await asyncio.sleep(GATE_POLL_S)

        if not await ex.park(opened()):
            return False
        return await run_then(b.then)
    if isinstance(b, Delay):
        if not await ex.park(asyncio.sleep(b.seconds)):
            return False
        return await run_then(b.then)
    if isinstance(b, Refuse):
        return await run_refuse(b, ex)
    if isinstance(b, Raw):
        return await run_raw(b, ex)
    if isinstance(b, RawStream):
        return await run_raw_stream(b, ex)
    return None


B = TypeVar("B")


class LoopbackFake(Generic[B]):
    """A fake upstream on ``host:port`` (port 0 = any free port), started on construction.

    Thread-safe: behaviours may be scripted and records read from any thread while requests are
    served. Use as a context manager, or call :meth:`stop`. ``url`` is ``http://host:port``.
    """

    name = "LoopbackFake"

    def __init__(self, *, default: B, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.default: B = default
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[B] = deque()
        self._per_model: dict[str, deque[B]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: list[ConnectionRecord] = []
        self._parked = 0
        self.errors: list[BaseException] = []
        """Unexpected exceptions inside the fake (its own bugs); tests may assert it stays empty."""
        self._conn_ids = itertools.count(1)
        self._hangs: set[asyncio.Future[None]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._stopped = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
        self._thread.start()
        try:
            self.port: int = self._call(self._start(port))
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            raise
        self.url = f"http://{host}:{self.port}"

    # ---- public, synchronous API ------------------------------------------------------------

    def script(self, *behaviours: B) -> None:
        """Queue behaviours, consumed one per model request (after the per-model queues)."""
        with self._cond:
            self._queue.extend(behaviours)

    def script_for(self, model: str, *behaviours: B) -> None:
        """Queue behaviours for requests naming upstream ``model`` (checked before ``script``)."""
        with self._cond:
            self._per_model.setdefault(model, deque()).extend(behaviours)

    @property
    def pending_scripts(self) -> int:
        """Behaviours queued and not yet consumed (global plus per-model)."""
        with self._cond:
            return len(self._queue) + sum(len(q) for q in self._per_model.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (including rejected ones)."""
        with self._cond:
            return list(self._requests)

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

    def wait_for(self, predicate: Callable[[Self], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every request, connection and park
        change); False on timeout. The no-sleep way to order a test against the server."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

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
        return f"{type(self).__name__}({self.url!r})"

    # ---- for subclasses -----------------------------------------------------------------------

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        """Answer one request; False when the connection must not be reused."""
        raise NotImplementedError

    def _record(self, req: HttpRequest, conn: Conn) -> RecordedRequest:
        parsed: Any = None
        with contextlib.suppress(ValueError):
            parsed = json.loads(req.body) if req.body else None
        recorded = RecordedRequest(req.method, req.path, req.headers, req.body, parsed, req.query, conn.record.id)
        with self._cond:
            self._requests.append(recorded)
            self._cond.notify_all()
        return recorded

    def _take(self, model: str) -> B | None:
        """The next scripted behaviour for ``model`` (per-model queue first), or None."""
        with self._cond:
            queue = self._per_model.get(model)
            if queue:
                return queue.popleft()
            if self._queue:
                return self._queue.popleft()
            return None

    def _next_behaviour(self, model: str) -> B:
        taken = self._take(model)
        return self.default if taken is None else taken

    def _fake_error(self, exc: BaseException) -> None:
        with self._cond:
            self.errors.append(exc)
            self._cond.notify_all()

    def _parker(self, conn: Conn) -> Callable[[Awaitable[Any]], Awaitable[bool]]:
        return lambda waiter: self._park(conn, waiter)

    def _new_hang(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._hangs.add(fut)
        fut.add_done_callback(self._hangs.discard)
        return fut

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
                    body = str(exc).encode()
                    head = [("content-type", "text/plain"), ("content-length", str(len(body))), ("connection", "close")]
                    await conn.send_head(400, head)
                    await conn.send(body)
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
        except Exception as exc:  # a bug in the fake (or a behaviour of the wrong family): keep it visible
            self._fake_error(exc)
            writer.transport.abort()
        finally:
            if not conn.closed:
                writer.close()
                conn.mark_closed()
            self._tasks.discard(task)
