"""Cohere's v2 Chat API as a host: the URL, the ``Authorization: Bearer`` header.

Docs: https://docs.cohere.com/v2/reference/chat (wire-formats.md §7). Contract:

* URL: every configured ``base_url`` form ends at ``…/v2/chat``: the full endpoint
  (``https://api.cohere.com/v2/chat``), the versioned root (``…/v2``), the bare host or a proxy
  prefix (``https://api.cohere.com``, ``http://127.0.0.1:8080``), and uni-api's v1 forms
  (``…/v1``, ``…/v1/chat``), which are moved to v2 — unigate speaks only v2, whose body is a
  different shape (uni-api-compat.md §4.2). Unset means ``https://api.cohere.com/v2/chat``.
  Query and fragment of a configured URL are dropped.
* Headers: ``Authorization: Bearer <key>`` (when the channel has a key), ``content-type``,
  ``accept`` (``text/event-stream`` for a stream), then the channel's configured ``headers``
  (e.g. ``X-Client-Name``), which replace ours case-insensitively. Client-supplied headers never
  reach the upstream.
* The key is a plain header, so ``authorize`` does no I/O and returns the call unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from unigate.config.compile import Channel
from unigate.dialects.base import UpstreamDialect
from unigate.dialects.cohere import DIALECT
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import UpstreamCall

__all__ = ["DEFAULT_ENDPOINT", "PROVIDER", "CohereProvider", "chat_url", "embed_call"]

DEFAULT_ENDPOINT = "https://api.cohere.com/v2/chat"
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


@lru_cache(maxsize=256)
def chat_url(base_url: str | None) -> str:
    """The v2 Chat endpoint for a configured ``base_url`` (see the module docstring)."""
    if not base_url:
        return DEFAULT_ENDPOINT
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    for suffix in ("/v2/chat", "/v1/chat", "/v2", "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path + "/v2/chat", "", ""))


class CohereProvider:
    """``Provider`` for ``engine: cohere``. Stateless; one instance."""

    engine = "cohere"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """Always the v2 Chat dialect."""
        return DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """``POST …/v2/chat`` with the bearer key and the channel's headers."""
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return UpstreamCall(chat_url(channel.raw_base_url), with_channel_headers(headers, channel))

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Nothing to add: the key is already a header."""
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """No dialect settings."""
        return _NO_SETTINGS


PROVIDER = CohereProvider()


def embed_call(channel: Channel, api_key: str | None) -> UpstreamCall:
    """``POST …/v2/embed`` (https://docs.cohere.com/reference/embed) next to the channel's
    ``…/v2/chat``, with the same headers as a non-streamed chat call."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    url = chat_url(channel.raw_base_url).removesuffix("/chat") + "/embed"
    return UpstreamCall(url, with_channel_headers(headers, channel))
