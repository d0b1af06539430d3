"""Client disconnects cancel work at once, with one watcher task instead of a task group.

``DisconnectWatch`` awaits the ASGI ``receive`` channel for ``http.disconnect`` and cancels the
task that created it; ``watch.fired`` tells that task the cancellation came from the client.
``SSEResponse`` streams frames under such a watch (Starlette's ``StreamingResponse`` runs an
anyio task group per response; measured, that doubled the relay's per-stream CPU).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


class DisconnectWatch:
    __slots__ = ("_task", "_watcher", "fired")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.fired = False
        self._watcher: asyncio.Task[None] | None = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.fired = True
                    self._task.cancel()
                    return
        except asyncio.CancelledError:
            # close(): end quietly. Left to propagate, the CancelledError would be stored on the
            # watcher task with a traceback whose frame holds this watch, which holds the task —
            # a reference cycle per request, left to the cyclic collector (docs/performance.md).
            return

    def close(self) -> None:
        """Stop watching. The reference to the watcher task is dropped too: a watcher cancelled
        before its first step (a response that never waited) ends with a stored CancelledError
        whose traceback holds this watch, and a watch that still held the task would close a
        reference cycle."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: True (and the cancellation undone) when the client caused it."""
        if self.fired:
            self._task.uncancel()
            return True
        return False


async def until_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientDisconnected."""
    watch = DisconnectWatch(receive)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.absorb():
            raise ClientDisconnected() from None
        raise
    finally:
        watch.close()


class SSEResponse(Response):
    """A ``text/event-stream`` response written straight to the ASGI ``send``; the upstream
    stream (``frames``) is closed when the client disconnects or the stream ends."""

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        watch = DisconnectWatch(receive)
        message: dict[str, Any] = {"type": "http.response.body", "body": b"", "more_body": True}
        try:
            async for frame in self.frames:
                message["body"] = frame
                await send(message)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
        finally:
            watch.close()
            aclose = getattr(self.frames, "aclose", None)
            if aclose is not None:
                await aclose()
