"""OpenAI and every OpenAI-compatible host: where to send a chat request and how to sign it.

Thin by design (DESIGN.md "Adapters"): the URL comes from the channel's compiled API root,
the credential goes in ``Authorization: Bearer``, and the channel's configured ``headers`` are
added last so a user can set e.g. OpenRouter's attribution headers. Client-supplied headers
never reach the upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.config.compile import Channel
from unigate.dialects import openai_chat
from unigate.dialects.base import UpstreamDialect
from unigate.providers.base import UpstreamCall


def chat_headers(channel: Channel, api_key: str | None) -> dict[str, str]:
    """Headers for one chat attempt on ``channel`` with upstream key ``api_key``."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if api_key:
        headers["authorization"] = "Bearer " + api_key
    if channel.headers:
        headers.update(channel.headers)
    return headers


def models_headers(channel: Channel, api_key: str | None) -> dict[str, str]:
    """Headers for ``GET …/models`` (model discovery at start-up)."""
    headers = {"accept": "application/json"}
    if api_key:
        headers["authorization"] = "Bearer " + api_key
    if channel.headers:
        headers.update(channel.headers)
    return headers


class OpenAIProvider:
    """The ``Provider`` for OpenAI-compatible hosts: the pass-through dialect, Bearer keys."""

    engine = "openai"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        return openai_chat.DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        return UpstreamCall(channel.chat_url, chat_headers(channel, api_key))

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        return {}


PROVIDER = OpenAIProvider()
