"""Patching a client's OpenAI body for an OpenAI-compatible channel (the fast path).

Only ``model`` changes, plus what the channel's config asks for: ``tools: false`` and
``image: false`` strip what the upstream cannot take, ``post_body_parameter_overrides`` merge or
remove keys. Everything else — unknown fields included — reaches the upstream unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.config.compile import Channel


def apply_overrides(out: dict[str, Any], channel: Channel, alias: str, upstream_model: str) -> None:
    """``post_body_parameter_overrides``: global keys, then the model's own, then removals."""
    if channel.overrides_all:
        out.update(channel.overrides_all)
    per_model = channel.overrides_by_model.get(alias) or channel.overrides_by_model.get(upstream_model)
    if per_model:
        out.update(per_model)
    for key in channel.remove_keys:
        out.pop(key, None)


def upstream_body(body: Mapping[str, Any], channel: Channel, alias: str, upstream_model: str) -> bytes:
    """Patch the client's body for an OpenAI-compatible channel (the fast path)."""
    out = dict(body)
    out["model"] = upstream_model
    if not channel.tools:
        _strip_tools(out)
    if not channel.image:
        _strip_images(out)
    apply_overrides(out, channel, alias, upstream_model)
    return orjson.dumps(out)


def _strip_tools(body: dict[str, Any]) -> None:
    """``tools: false`` channels: drop tool definitions and the tool turns of the history."""
    for key in ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"):
        body.pop(key, None)
    messages = []
    for message in body.get("messages", ()):
        if not isinstance(message, dict):
            messages.append(message)
            continue
        if message.get("role") == "tool":
            continue
        if "tool_calls" in message:
            message = {k: v for k, v in message.items() if k != "tool_calls"}
            if message.get("content") is None:
                continue
        messages.append(message)
    body["messages"] = messages


def _strip_images(body: dict[str, Any]) -> None:
    """``image: false`` channels (uni-api's documented switch): image parts are removed from
    message contents, because the operator said this upstream cannot take them."""
    messages = []
    for message in body.get("messages", ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            kept = [p for p in content if not (isinstance(p, dict) and p.get("type") == "image_url")]
            message = {**message, "content": kept}
        messages.append(message)
    body["messages"] = messages
