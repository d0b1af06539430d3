"""OpenAI and every OpenAI-compatible host: where to send a chat request and how to sign it.

Thin by design (DESIGN.md "Adapters"): the URL comes from the channel's compiled API root,
the credential goes in ``Authorization: Bearer``, and the channel's configured ``headers`` are
added last, replacing ours whatever their case, so a user can set e.g. OpenRouter's attribution
headers (``HTTP-Referer``, ``X-OpenRouter-Title``/``X-Title``: https://openrouter.ai/docs/app-attribution)
or their own ``Authorization``. Client-supplied headers never reach the upstream. Host quirks
(OpenRouter's ``reasoning`` field, Groq's refusals …) are data in ``providers/quirks.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.config.compile import Channel
from unigate.dialects import openai_chat
from unigate.dialects.base import UpstreamDialect
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import UpstreamCall


def chat_headers(channel: Channel, api_key: str | None) -> dict[str, str]:
    """Headers for one chat attempt on ``channel`` with upstream key ``api_key``."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if api_key:
        headers["authorization"] = "Bearer " + api_key
    return with_channel_headers(headers, channel)


def models_headers(channel: Channel, api_key: str | None) -> dict[str, str]:
    """Headers for ``GET …/models`` (model discovery at start-up)."""
    headers = {"accept": "application/json"}
    if api_key:
        headers["authorization"] = "Bearer " + api_key
    return with_channel_headers(headers, channel)


class OpenAIProvider:
    """The ``Provider`` for OpenAI-compatible hosts: the pass-through dialect, Bearer keys."""

    engine = "openai"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        return openai_chat.DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        return UpstreamCall(channel.chat_url, chat_headers(channel, api_key))

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        return {}


PROVIDER = OpenAIProvider()


def endpoint_call(channel: Channel, path: str, api_key: str | None, content_type: str | None) -> UpstreamCall:
    """Where a non-chat OpenAI request goes (``/embeddings``, ``/audio/speech``, ``/moderations``
    …): ``path`` under the channel's API root, the key as ``Authorization: Bearer``, the channel's
    ``headers`` last. ``content_type`` is the body's (JSON, or multipart with its boundary)."""
    headers = {"accept": "*/*"}
    if content_type:
        headers["content-type"] = content_type
    if api_key:
        headers["authorization"] = "Bearer " + api_key
    if channel.headers:
        headers.update(channel.headers)
    return UpstreamCall(channel.base_url + path, headers)
