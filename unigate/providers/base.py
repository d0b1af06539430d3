"""The seam every provider host implements, and the registry that picks one by engine.

A provider is thin (DESIGN.md "Adapters"): which dialect a channel's model speaks, where a chat
request goes, and how it is signed. ``chat_call`` is pure; ``authorize`` is the only place for
I/O (a Vertex OAuth token exchange), done through the ``HttpPost`` function the application
injects, because providers sit below ``upstream`` in the layer order and never import aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from unigate.config.compile import Channel
from unigate.dialects.base import UpstreamDialect

HttpPost = Callable[[str, Mapping[str, str], bytes], Awaitable[tuple[int, bytes]]]
"""``post(url, headers, body) -> (status, body)``: the upstream pool, injected by the app."""


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """Where and how to send one attempt. ``headers`` include the credential once authorized."""

    url: str
    headers: Mapping[str, str]
    params: Mapping[str, str] = field(default_factory=dict)


class Provider(Protocol):
    engine: str

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """The wire format this channel's model speaks (decided from config, never guessed)."""
        ...

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """URL, query and headers for a chat attempt (pure)."""
        ...

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Add credentials that need I/O; hosts whose key is a plain header return ``call``."""
        ...

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """The call with a signature over the exact ``body`` bytes (Bedrock's SigV4); hosts whose
        credential does not cover the body return ``call``. Pure: the clock is the provider's."""
        ...

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """Dialect settings for ``DialectOptions.settings`` (e.g. Claude-on-Vertex's body form)."""
        ...
