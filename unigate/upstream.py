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
import ipaddress
import socket
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from unigate.errors import (
    BadRequest,
    PayloadTooLarge,
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
        body: bytes | AsyncIterable[bytes] | None = None,
        timeouts: Timeouts = Timeouts(),
        proxy: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send one request; returns once headers arrived, within ``timeouts.first_byte``. An
        async-iterable ``body`` (a multipart upload) is streamed as it is read; give its
        ``content-length`` in ``headers`` to send it unchunked."""
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


MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_REDIRECTS = 3
IMAGE_TIMEOUT = 15.0


def is_internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Addresses an image fetch must not reach unless the channel allows private targets:
    loopback, private ranges, link-local (cloud metadata at 169.254.169.254), multicast,
    reserved, unspecified, and IPv4-mapped IPv6 forms of those."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified


class _VettingResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses internal addresses. Every
    connection goes through it, so a redirect or a DNS answer that changes between checks
    (rebinding) cannot reach an internal host."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            if is_internal(ipaddress.ip_address(info["host"])):
                raise BadRequest(
                    "The image URL resolves to a private or internal address; refused.",
                    param="messages",
                    code="image_url_refused",
                )
        return infos

    async def close(self) -> None:
        await self._inner.close()


class ImageFetcher:
    """Fetches http(s) image URLs for channels that opted in (``fetch_images``).

    Only http and https; at most ``MAX_IMAGE_BYTES``; ``IMAGE_TIMEOUT`` seconds; redirects
    followed by hand (each hop re-checked, at most ``MAX_IMAGE_REDIRECTS``); a non-image
    content type is refused. Every failure is the client's (``BadRequest`` / 413), never a
    reason to fail over. Unless ``allow_private``, literal IPs are checked here and host names
    by ``_VettingResolver`` at connect time.
    """

    def __init__(self) -> None:
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def _session(self, allow_private: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(allow_private)
        if session is None:
            connector = (
                aiohttp.TCPConnector(limit=32)
                if allow_private
                else aiohttp.TCPConnector(limit=32, resolver=_VettingResolver(), use_dns_cache=False)
            )
            session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=IMAGE_TIMEOUT))
            self._sessions[allow_private] = session
        return session

    async def fetch(self, url: str, *, allow_private: bool) -> tuple[str, bytes]:
        """(media type, bytes) of the image at ``url``."""
        session = self._session(allow_private)
        for _ in range(MAX_IMAGE_REDIRECTS + 1):
            self._check_url(url, allow_private)
            try:
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status != 200:
                        raise BadRequest(
                            f"Fetching the image URL failed with status {resp.status}.",
                            param="messages",
                            code="image_fetch_failed",
                        )
                    media = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    if not media.startswith("image/"):
                        raise BadRequest(
                            "The image URL did not return an image.", param="messages", code="image_fetch_failed"
                        )
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        data += chunk
                        if len(data) > MAX_IMAGE_BYTES:
                            raise PayloadTooLarge(f"The image at the URL is larger than {MAX_IMAGE_BYTES} bytes.")
                    return media, bytes(data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if isinstance(exc.__cause__, BadRequest):
                    raise exc.__cause__ from None
                raise BadRequest(
                    "Fetching the image URL failed.", param="messages", code="image_fetch_failed"
                ) from None
        raise BadRequest("The image URL redirected too many times.", param="messages", code="image_fetch_failed")

    @staticmethod
    def _check_url(url: str, allow_private: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest("Only http(s) image URLs can be fetched.", param="messages", code="image_url_refused")
        if allow_private:
            return
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return
        if is_internal(ip):
            raise BadRequest(
                "The image URL points to a private or internal address; refused.",
                param="messages",
                code="image_url_refused",
            )

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
