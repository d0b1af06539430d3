"""The Bedrock form of an Anthropic Messages body: what Claude on Bedrock's InvokeModel takes.

Docs: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html
(wire-formats.md §6.1). ``AnthropicDialect(bedrock=True)`` builds the Messages body as usual, then
:func:`bedrock_form` turns it into this one:

* no ``model`` and no ``stream``: both are in the URL (``/model/{id}/invoke`` or
  ``/invoke-with-response-stream``); ``anthropic_version: "bedrock-2023-05-31"`` comes first;
* betas as the body's ``anthropic_beta`` list, from ``options.settings["anthropic_beta"]`` (the
  provider moves a channel's ``anthropic-beta`` header there);
* Bedrock's request schema has no ``metadata``: ``user`` (and OpenAI's metadata tags) are left out,
  as they do not change the answer;
* ``service_tier`` is a header on Bedrock, not a body field → 400;
* image sources must be base64 (the only documented form): an http(s) image URL, also inside a tool
  result → 400 (a channel with ``fetch_images: true`` has it inlined by the relay first).
"""

from __future__ import annotations

from typing import Any

from unigate.dialects.base import DialectOptions
from unigate.errors import UnsupportedFeature

BEDROCK_VERSION = "bedrock-2023-05-31"
"""``anthropic_version`` in the body for Claude on Bedrock's InvokeModel."""

BEDROCK_BETA_SETTING = "anthropic_beta"
"""``DialectOptions.settings`` key: the beta names a Bedrock channel sends as ``anthropic_beta``."""

_DROPPED = frozenset({"model", "stream", "metadata"})


def bedrock_form(body: dict[str, Any], options: DialectOptions) -> dict[str, Any]:
    """The InvokeModel body for the Messages ``body`` (module docstring); raises ``UnsupportedFeature``."""
    if "service_tier" in body:
        raise UnsupportedFeature(
            "service_tier is not a body field for Claude on Bedrock (Bedrock sets it by header)", param="service_tier"
        )
    for turn in body["messages"]:
        for block in turn["content"]:
            nested = block.get("content") if block.get("type") == "tool_result" else None
            for item in [block, *(nested if isinstance(nested, list) else ())]:
                source = item.get("source") if item.get("type") == "image" else None
                if isinstance(source, dict) and source.get("type") == "url":
                    raise UnsupportedFeature(
                        "Claude on Bedrock takes base64 images only: use a data: URI "
                        "(or fetch_images: true on the channel to inline image URLs)",
                        param="messages",
                    )
    form: dict[str, Any] = {"anthropic_version": BEDROCK_VERSION}
    betas = options.settings.get(BEDROCK_BETA_SETTING)
    if betas:
        form["anthropic_beta"] = list(betas)
    form.update((k, v) for k, v in body.items() if k not in _DROPPED)
    return form
