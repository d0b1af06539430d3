"""Cloudflare Workers AI as a host, through its OpenAI-compatible endpoint.

Docs: https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility/ ,
https://developers.cloudflare.com/workers-ai/platform/errors/ (wire-formats.md §8). uni-api sent
only the last message to the native ``/ai/run/{model}`` endpoint as a ``prompt`` (history and
system dropped, uni-api-compat.md §4.2); unigate uses the OpenAI-compatible endpoint instead, so
the whole conversation, tools and parameters pass through with ``model`` = the ``@cf/…`` name.

Contract (``chat_url``):

* No ``base_url``: ``https://api.cloudflare.com/client/v4/accounts/{cf_account_id}/ai/v1/chat/completions``.
* A ``base_url`` with no path overrides the host only (a proxy, or a test's loopback fake).
* A path ending in ``/chat/completions`` is used as given; a native ``…/ai/run…`` path (as old
  uni-api configs hold) becomes ``…/ai/v1/chat/completions``; any other path is an OpenAI-style
  root (e.g. AI Gateway's ``https://gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai/v1``)
  and gets ``/chat/completions``. Query and fragment are dropped.
* The API token goes in ``Authorization: Bearer``; the channel's ``headers`` come last.
* ``/v1/embeddings`` (``endpoint_call``): the same URL with ``/chat/completions`` replaced by
  ``/embeddings`` — the OpenAI-compatible endpoints Workers AI documents are chat completions,
  embeddings (and responses), https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility/ ;
  ``ENDPOINT_PATHS`` lists the ones served here.

Errors come in Cloudflare's envelope (``{"success": false, "errors": [{"code", "message"}]}``);
``dialects/openai_chat_errors.py`` reads it and classifies the documented codes (3040 out of
capacity: retried elsewhere; 3036 daily allocation used: the key is cooled, not retried today).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from unigate.config.compile import Channel
from unigate.dialects import openai_chat
from unigate.dialects.base import UpstreamDialect
from unigate.errors import UpstreamAuthError
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import UpstreamCall

__all__ = ["DEFAULT_HOST", "ENDPOINT_PATHS", "PROVIDER", "CloudflareProvider", "chat_url", "endpoint_call"]

DEFAULT_HOST = "https://api.cloudflare.com"
_CHAT = "/chat/completions"
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})
ENDPOINT_PATHS = frozenset({"/embeddings"})


def _account_path(name: str, account: str | None) -> str:
    if not account:
        raise UpstreamAuthError(
            f"Cloudflare channel '{name}': set cf_account_id (or a base_url with the full endpoint path)"
        )
    return f"/client/v4/accounts/{quote(account, safe='')}/ai/v1{_CHAT}"


def chat_url(channel: Channel) -> str:
    """The chat-completions URL of a Cloudflare channel (see the module docstring)."""
    return _chat_url(channel.name, channel.raw_base_url, channel.cf_account_id)


@lru_cache(maxsize=256)
def _chat_url(name: str, base_url: str | None, account: str | None) -> str:
    if not base_url:
        return DEFAULT_HOST + _account_path(name, account)
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    if not path:
        path = _account_path(name, account)
    elif not path.endswith(_CHAT):
        native = path.find("/ai/run")
        path = (path[:native] + "/ai/v1" if native >= 0 else path) + _CHAT
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class CloudflareProvider:
    """``Provider`` for ``engine: cloudflare`` (or ``cf_account_id``). Stateless; one instance."""

    engine = "cloudflare"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """The OpenAI dialect: the OpenAI-compatible endpoint is passed through."""
        return openai_chat.DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """``POST …/ai/v1/chat/completions`` with the API token as a Bearer credential."""
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if api_key:
            headers["authorization"] = "Bearer " + api_key
        return UpstreamCall(chat_url(channel), with_channel_headers(headers, channel))

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Nothing to add: the token is already a header."""
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """No dialect settings (pass-through)."""
        return _NO_SETTINGS


PROVIDER = CloudflareProvider()


def endpoint_call(
    channel: Channel, upstream_model: str, path: str, api_key: str | None, content_type: str | None
) -> UpstreamCall:
    """``path`` (``/embeddings``) next to the channel's chat URL, with the token as for chat."""
    headers = {"accept": "application/json"}
    if content_type:
        headers["content-type"] = content_type
    if api_key:
        headers["authorization"] = "Bearer " + api_key
    url = chat_url(channel).removesuffix(_CHAT) + path
    return UpstreamCall(url, with_channel_headers(headers, channel))
