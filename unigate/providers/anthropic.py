"""Anthropic's Messages API as a host: the URL, the ``x-api-key`` header, the pinned version.

Docs: https://platform.claude.com/docs/en/api/messages , https://platform.claude.com/docs/en/api/versioning
(wire-formats.md §2). Contract:

* URL: the configured ``base_url`` may be the full endpoint (``https://api.anthropic.com/v1/messages``),
  the versioned root (``…/v1``) or the bare host / a proxy prefix (``https://api.anthropic.com``,
  ``https://gateway.example/anthropic``); every form ends up as ``…/v1/messages``. Unset means
  ``https://api.anthropic.com/v1/messages``. Query and fragment of a configured URL are dropped.
* Headers: ``x-api-key`` (when the channel has a key), ``anthropic-version: 2023-06-01`` (the
  dialect's ``ANTHROPIC_VERSION``: ``2026-10-21`` refuses ``temperature``/``top_p``/``top_k``),
  ``content-type``, ``accept``; then the channel's configured ``headers`` (e.g. ``anthropic-beta``),
  which replace ours case-insensitively. Client-supplied headers never reach the upstream.
* The key is a plain header, so ``authorize`` does no I/O and returns the call unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from unigate.config.compile import Channel
from unigate.dialects.anthropic import ANTHROPIC_VERSION, DIALECT
from unigate.dialects.base import UpstreamDialect
from unigate.providers.base import UpstreamCall

__all__ = ["DEFAULT_ENDPOINT", "PROVIDER", "AnthropicProvider", "messages_url", "with_channel_headers"]

DEFAULT_ENDPOINT = "https://api.anthropic.com/v1/messages"
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


@lru_cache(maxsize=256)
def messages_url(base_url: str | None) -> str:
    """The Messages endpoint for a configured ``base_url`` (see the module docstring)."""
    if not base_url:
        return DEFAULT_ENDPOINT
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/messages"):
        path += "/messages" if path.endswith("/v1") else "/v1/messages"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def with_channel_headers(headers: dict[str, str], channel: Channel) -> dict[str, str]:
    """Add the channel's configured headers last; a configured name replaces ours whatever its case.

    Shared by the Google hosts (``gemini``, ``vertex``); its natural home is ``providers/base.py``."""
    if channel.headers:
        configured = {name.lower() for name in channel.headers}
        headers = {k: v for k, v in headers.items() if k.lower() not in configured}
        headers.update(channel.headers)
    return headers


class AnthropicProvider:
    """``Provider`` for ``engine: anthropic`` (uni-api's ``claude``). Stateless; one instance."""

    engine = "anthropic"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """Always the Messages dialect (with ``model`` in the body)."""
        return DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """``POST …/v1/messages`` with the key, the pinned version and the channel's headers."""
        headers = {
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if api_key:
            headers["x-api-key"] = api_key
        return UpstreamCall(messages_url(channel.raw_base_url), with_channel_headers(headers, channel))

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Nothing to add: the key is already a header."""
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """No dialect settings."""
        return _NO_SETTINGS


PROVIDER = AnthropicProvider()
