"""The Gemini API (Google AI Studio) as a host: the URL, the ``x-goog-api-key`` header.

Docs: https://ai.google.dev/api/generate-content , https://ai.google.dev/gemini-api/docs/api-key
(wire-formats.md §3). Contract:

* API root: unset means ``https://generativelanguage.googleapis.com/v1beta``. A configured
  ``base_url`` keeps its path up to (not including) a ``/models`` segment, and up to a ``:method``
  suffix, so ``…/v1beta``, ``…/v1`` and a pasted ``…/v1beta/models/gemini-2.5-flash:generateContent``
  all work; when the remaining path does not end in a version segment (``v1``, ``v1beta``,
  ``v1alpha``…), ``/v1beta`` is appended (a bare host, or a proxy prefix that mirrors Google's
  paths). Query and fragment are dropped (a ``?key=`` in the config never goes on the wire).
* URL: ``{root}/models/{model}:generateContent``, or ``:streamGenerateContent`` with the query
  ``alt=sse`` (without it Google streams one JSON array, not SSE).
* ``{model}`` is percent-encoded as exactly ONE path segment (``/``, ``:``, ``?``, ``#``, ``%``
  and spaces are escaped; only unreserved characters and ``@`` stay), so a name such as
  ``../../x`` or ``m:generateContent?key=`` can never change the path or add a query
  (reliability-matrix A17). Routing only ever passes configured names anyway.
* The key goes in the ``x-goog-api-key`` header, never in the query string, so it never lands
  in access logs or error messages that quote the URL. Channel ``headers`` are added last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from unigate.config.compile import Channel
from unigate.dialects.base import UpstreamDialect
from unigate.dialects.gemini import DIALECT
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import UpstreamCall

__all__ = ["DEFAULT_ROOT", "PROVIDER", "GeminiProvider", "api_root", "embed_call", "method_for", "model_segment"]

DEFAULT_ROOT = "https://generativelanguage.googleapis.com/v1beta"
_MODELS = re.compile(r"/models(?:/|$)")
_VERSION = re.compile(r"v[0-9]+(?:(?:alpha|beta)[0-9]*)?")
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


@lru_cache(maxsize=256)
def api_root(base_url: str | None) -> str:
    """The versioned API root for a configured ``base_url`` (see the module docstring)."""
    if not base_url:
        return DEFAULT_ROOT
    parts = urlsplit(base_url.strip())
    path = parts.path
    if found := _MODELS.search(path):
        path = path[: found.start()]
    path = path.rstrip("/")
    head, _, last = path.rpartition("/")
    if ":" in last:
        last = last.partition(":")[0]
        path = f"{head}/{last}" if last else head
    if not _VERSION.fullmatch(path.rpartition("/")[2]):
        path += "/v1beta"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@lru_cache(maxsize=1024)
def model_segment(model: str) -> str:
    """``model`` percent-encoded as one URL path segment (``@`` kept: Vertex's ``claude-…@2025…``)."""
    return quote(model, safe="@")


def method_for(stream: bool) -> tuple[str, dict[str, str]]:
    """The ``generateContent`` custom method and query for a (non-)streamed call."""
    return ("streamGenerateContent", {"alt": "sse"}) if stream else ("generateContent", {})


def google_headers(stream: bool, api_key: str | None) -> dict[str, str]:
    """JSON in, JSON or SSE out; ``x-goog-api-key`` when there is a key (AI Studio, Vertex express)."""
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    if api_key:
        headers["x-goog-api-key"] = api_key
    return headers


class GeminiProvider:
    """``Provider`` for ``engine: gemini`` (AI Studio). Stateless; one instance."""

    engine = "gemini"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """Always the Gemini ``generateContent`` dialect."""
        return DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """``POST {root}/models/{model}:generateContent`` (or the SSE stream) with the key header."""
        method, params = method_for(stream)
        url = f"{api_root(channel.raw_base_url)}/models/{model_segment(upstream_model)}:{method}"
        return UpstreamCall(url, with_channel_headers(google_headers(stream, api_key), channel), params)

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Nothing to add: the key is already a header."""
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """No dialect settings."""
        return _NO_SETTINGS


PROVIDER = GeminiProvider()


def embed_call(channel: Channel, upstream_model: str, batch: bool, api_key: str | None) -> UpstreamCall:
    """``POST {root}/models/{model}:embedContent`` (one text) or ``:batchEmbedContents`` (a list),
    https://ai.google.dev/api/embeddings ; the key header as for chat."""
    method = "batchEmbedContents" if batch else "embedContent"
    url = f"{api_root(channel.raw_base_url)}/models/{model_segment(upstream_model)}:{method}"
    return UpstreamCall(url, with_channel_headers(google_headers(False, api_key), channel))
