"""The only module that imports aiohttp: one pooled client, and one table of its exceptions.

``Upstream.send`` posts one request and returns an ``UpstreamResponse`` once the status line
and headers arrived (bounded by ``first_byte`` seconds). Reading the body is bounded by
``idle`` seconds between chunks. Every aiohttp/asyncio failure is mapped to the unigate error
tree by ``_EXCEPTIONS``, most specific first, so nothing above this module sees aiohttp.

Redirects are never followed (a provider that redirects could point us at an internal host).
One ``ClientSession`` serves all direct traffic with keep-alive pooling; a channel with an
``http(s)://`` proxy uses aiohttp's native proxy support, a ``socks*://`` proxy gets its own
session over an ``aiohttp_socks`` connector (created on first use, kept for reuse).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from unigate.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024

_EXCEPTIONS: tuple[tuple[type[BaseException], type[UpstreamError], str], ...] = (
    (asyncio.TimeoutError, UpstreamTimeout, "upstream timed out"),
    (aiohttp.ServerTimeoutError, UpstreamTimeout, "upstream timed out"),
    (aiohttp.ClientConnectorError, UpstreamConnectError, "could not connect to upstream"),
    (aiohttp.ServerDisconnectedError, UpstreamProtocolError, "upstream closed the connection"),
    (aiohttp.ClientPayloadError, UpstreamProtocolError, "upstream response was cut short"),
    (aiohttp.ClientResponseError, UpstreamProtocolError, "malformed upstream response"),
    (aiohttp.ClientOSError, UpstreamConnectError, "connection to upstream failed"),
    (aiohttp.ClientError, UpstreamProtocolError, "upstream request failed"),
    (ConnectionError, UpstreamConnectError, "connection to upstream failed"),
)


def map_exception(exc: BaseException) -> UpstreamError:
    """Translate a transport exception into the error tree (the most specific row wins)."""
    if isinstance(exc, UpstreamError):
        return exc
    for exc_type, error_type, message in _EXCEPTIONS:
        if isinstance(exc, exc_type):
            return error_type(message)
    return UpstreamProtocolError(f"upstream request failed: {type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 100.0
    idle: float = 120.0


class UpstreamResponse:
    """An open response. The caller must ``close()`` it (``async with`` does)."""

    __slots__ = ("_resp", "_timeouts", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, timeouts: Timeouts) -> None:
        self._resp = resp
        self._timeouts = timeouts
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The whole body; each gap between chunks is bounded by the idle timeout."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_chunks():
            size += len(chunk)
            if size > limit:
                raise UpstreamProtocolError(f"upstream response larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive off the socket; transport errors are mapped.

        The wait for the first chunk is bounded by ``first_byte`` (a stream that sends headers
        and then nothing is as dead as one that sends nothing), later gaps by ``idle``."""
        content = self._resp.content
        idle = self._timeouts.first_byte
        while True:
            # The guard covers the wait for bytes only, never the consumer's work between
            # chunks: a timeout armed across ``yield`` would cancel the consumer's task.
            try:
                async with asyncio.timeout(idle):
                    chunk = await content.readany()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                raise map_exception(exc) from exc
            if not chunk:
                return
            idle = self._timeouts.idle
            yield chunk

    def close(self) -> None:
        """Release the connection; an unfinished body closes the socket instead of reusing it."""
        self._resp.close()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Upstream:
    """The pooled HTTP client. Create inside a running loop; ``close()`` on shutdown."""

    def __init__(self, *, limit: int = 0, limit_per_host: int = 0) -> None:
        self._session = self._new_session(
            aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, ttl_dns_cache=300)
        )
        self._socks: dict[str, aiohttp.ClientSession] = {}

    @staticmethod
    def _new_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def _session_for(self, proxy: str | None) -> tuple[aiohttp.ClientSession, str | None]:
        if not proxy:
            return self._session, None
        if proxy.startswith(("http://", "https://")):
            return self._session, proxy
        session = self._socks.get(proxy)
        if session is None:
            from aiohttp_socks import ProxyConnector

            session = self._new_session(ProxyConnector.from_url(proxy, limit=0))
            self._socks[proxy] = session
        return session, None

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeouts: Timeouts = Timeouts(),
        proxy: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send one request; returns once headers arrived, within ``timeouts.first_byte``."""
        session, http_proxy = self._session_for(proxy)
        kwargs: dict[str, Any] = {
            "headers": headers,
            "data": body,
            "allow_redirects": False,
            "proxy": http_proxy,
            "timeout": aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
        }
        if params:
            kwargs["params"] = params
        try:
            async with asyncio.timeout(timeouts.first_byte):
                resp = await session.request(method, url, **kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            raise map_exception(exc) from exc
        return UpstreamResponse(resp, timeouts)

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        """A small one-shot POST (``providers.base.HttpPost``): token exchanges and the like."""
        resp = await self.send("POST", url, headers=headers, body=body, timeouts=Timeouts(first_byte=30.0, idle=30.0))
        async with resp:
            return resp.status, await resp.read(limit=1024 * 1024)

    async def close(self) -> None:
        await self._session.close()
        for session in self._socks.values():
            await session.close()
        self._socks.clear()
