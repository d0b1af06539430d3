"""Azure OpenAI and Azure AI Foundry as a host: three URL forms, the ``api-key`` header.

Docs: https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference ,
https://learn.microsoft.com/en-us/azure/ai-foundry/openai/api-version-lifecycle ,
https://learn.microsoft.com/en-us/azure/ai-foundry/foundry-models/concepts/endpoints
(wire-formats.md §5). Azure speaks the OpenAI dialect, so the relay passes requests through;
this module only decides where they go and how they are signed. Contract:

* The form is read from the configured ``base_url`` (``engine: azure``, or a host ending in
  ``.openai.azure.com`` / ``.services.ai.azure.com``):

  ==========================================================  ===========================================
  configured ``base_url`` (path)                              request URL
  ==========================================================  ===========================================
  ``…/openai/v1`` (or ``…/openai/v1/chat/completions``)       ``{root}/openai/v1/chat/completions`` —
                                                              the v1 API: no dated api-version, the
                                                              deployment is the body's ``model``
  ``…/openai…`` (e.g. a pasted deployment URL), or no path    ``{root}/openai/deployments/{deployment}/
  on ``*.openai.azure.com`` / ``*.cognitiveservices…`` / any  chat/completions?api-version=…`` (classic)
  other host
  ``…/models…``, or no path on ``*.services.ai.azure.com``    ``{root}/models/chat/completions?api-version=…``
                                                              (Foundry models endpoint; ``model`` in body)
  ==========================================================  ===========================================

  ``{root}`` is the scheme, host and any path prefix before ``/openai`` or ``/models``.
* The deployment is the upstream model name (the channel's ``model`` entry), percent-encoded
  as one path segment; a deployment named in a pasted URL is replaced by it.
* ``api-version``: the configured URL's query wins (every query parameter is kept, in
  ``UpstreamCall.params``); else ``DEFAULT_API_VERSION`` (2024-10-21, the latest dated GA
  version: it knows ``max_completion_tokens`` and ``stream_options``) for the classic form and
  ``FOUNDRY_API_VERSION`` for the models endpoint. The v1 form gets none unless configured.
* Headers: ``api-key`` (when the channel has a key; Entra ID users set ``Authorization`` in the
  channel's ``headers`` instead), ``content-type``, ``accept``; the channel's ``headers`` last,
  replacing ours whatever their case. Client-supplied headers never reach Azure.
* Other endpoints (``endpoint_call``): the same three forms with ``/chat/completions`` replaced by
  the endpoint's path — ``/embeddings``, ``/images/generations``, ``/images/edits``,
  ``/audio/speech``, ``/audio/transcriptions``, ``/audio/translations`` (``ENDPOINT_PATHS``: the
  deployment-scoped routes of https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference ,
  the set ``openai.lib.azure`` rewrites to ``/deployments/{model}``). Azure has no
  ``/moderations``. The Foundry models endpoint serves only ``/embeddings`` of these
  (https://learn.microsoft.com/en-us/rest/api/aifoundry/model-inference/get-embeddings/get-embeddings);
  ``serves`` says which paths a channel takes, so routing skips it for the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

from unigate.config.compile import Channel
from unigate.dialects import openai_chat
from unigate.dialects.base import UpstreamDialect
from unigate.errors import UpstreamAuthError
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import UpstreamCall

__all__ = [
    "DEFAULT_API_VERSION",
    "ENDPOINT_PATHS",
    "FOUNDRY_API_VERSION",
    "PROVIDER",
    "AzureProvider",
    "AzureTarget",
    "azure_target",
    "endpoint_call",
    "serves",
]

DEFAULT_API_VERSION = "2024-10-21"
FOUNDRY_API_VERSION = "2024-05-01-preview"
_V1 = re.compile(r"/openai/v1(?:/|$)")
_OPENAI = re.compile(r"/openai(?:/|$)")
_MODELS = re.compile(r"/models(?:/|$)")
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})
ENDPOINT_PATHS = frozenset(
    {
        "/embeddings",
        "/images/generations",
        "/images/edits",
        "/audio/speech",
        "/audio/transcriptions",
        "/audio/translations",
    }
)
_MODELS_PATHS = frozenset({"/embeddings"})
_CHAT = "/chat/completions"

Form = Literal["deployments", "v1", "models"]


@dataclass(frozen=True, slots=True)
class AzureTarget:
    """A configured ``base_url`` decoded once: the URL form, ``origin`` + ``prefix`` (the root),
    and the query parameters every request carries."""

    form: Form
    origin: str
    prefix: str
    params: Mapping[str, str]

    def chat_url(self, deployment: str) -> str:
        return self.url(deployment, _CHAT)

    def url(self, deployment: str, path: str) -> str:
        """``path`` (``/chat/completions``, ``/embeddings``…) in this form, for ``deployment``."""
        root = self.origin + self.prefix
        if self.form == "deployments":
            return f"{root}/openai/deployments/{quote(deployment, safe='')}{path}"
        if self.form == "v1":
            return f"{root}/openai/v1{path}"
        return f"{root}/models{path}"


@lru_cache(maxsize=256)
def azure_target(base_url: str) -> AzureTarget:
    """Decode a configured ``base_url`` (see the module docstring)."""
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    form: Form
    if found := _V1.search(path):
        form, prefix = "v1", path[: found.start()]
    elif found := _OPENAI.search(path):
        form, prefix = "deployments", path[: found.start()]
    elif found := _MODELS.search(path):
        form, prefix = "models", path[: found.start()]
    else:
        foundry = (parts.hostname or "").lower().endswith(".services.ai.azure.com")
        form, prefix = ("models" if foundry else "deployments"), path
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "api-version" not in params:
        if form == "deployments":
            params["api-version"] = DEFAULT_API_VERSION
        elif form == "models":
            params["api-version"] = FOUNDRY_API_VERSION
    return AzureTarget(form, f"{parts.scheme}://{parts.netloc}", prefix, MappingProxyType(params))


def _target(channel: Channel) -> AzureTarget:
    if not channel.raw_base_url:
        raise UpstreamAuthError(
            f"Azure channel '{channel.name}': set base_url to the resource endpoint (https://<resource>.openai.azure.com)"
        )
    return azure_target(channel.raw_base_url)


class AzureProvider:
    """``Provider`` for ``engine: azure``. Stateless; one instance."""

    engine = "azure"

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """The OpenAI dialect: Azure requests are passed through."""
        return openai_chat.DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """The deployment (or v1 / models) URL with its api-version, and the ``api-key`` header."""
        target = _target(channel)
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if api_key:
            headers["api-key"] = api_key
        return UpstreamCall(target.chat_url(upstream_model), with_channel_headers(headers, channel), target.params)

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Nothing to add: the key is already a header."""
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """No dialect settings (pass-through)."""
        return _NO_SETTINGS


PROVIDER = AzureProvider()


def serves(channel: Channel, path: str) -> bool:
    """Whether ``channel`` takes the non-chat ``path``: one of ``ENDPOINT_PATHS``, and only
    ``/embeddings`` on the Foundry models endpoint. A channel without ``base_url`` says yes, so
    the attempt fails with the message naming the setting."""
    if path not in ENDPOINT_PATHS:
        return False
    if not channel.raw_base_url:
        return True
    return azure_target(channel.raw_base_url).form != "models" or path in _MODELS_PATHS


def endpoint_call(
    channel: Channel, upstream_model: str, path: str, api_key: str | None, content_type: str | None
) -> UpstreamCall:
    """Where a non-chat request goes (module docstring): ``path`` in the channel's URL form, the
    deployment being ``upstream_model``, the query (``api-version``) as for chat, the key as
    ``api-key``. ``content_type`` is the body's (JSON, or multipart with its boundary)."""
    target = _target(channel)
    headers = {"accept": "*/*"}
    if content_type:
        headers["content-type"] = content_type
    if api_key:
        headers["api-key"] = api_key
    return UpstreamCall(target.url(upstream_model, path), with_channel_headers(headers, channel), target.params)
