"""Patching a client's OpenAI body for an OpenAI-compatible channel (the fast path).

Only ``model`` changes, plus what the channel's config asks for: ``tools: false`` and
``image: false`` strip what the upstream cannot take, ``post_body_parameter_overrides`` merge or
remove keys. Then the host's documented quirks (providers/quirks.py) refuse what it refuses —
a clear 400, never a silent drop — and rename what it knows under another name; they run after
the overrides, so an operator's explicit ``__remove__`` wins over a refusal. Everything else —
unknown fields included — reaches the upstream unchanged.

One addition of our own: a stream whose client did not ask for usage gets
``stream_options.include_usage: true`` (on hosts that honour it, ``quirks.injects_stream_usage``),
so the statistics and credits see the provider's exact token counts; the stream side strips what
it adds. It is added before the overrides: an operator's own ``stream_options`` (or its removal)
wins.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import orjson

from unigate.config.compile import Channel
from unigate.providers.quirks import NO_QUIRKS, Quirks, apply_request


class ImageSource(Protocol):
    """What ``inline_images`` needs of ``upstream.ImageFetcher`` (structural: this module sits
    below ``upstream`` in the layer order)."""

    def fetch(self, url: str, *, allow_private: bool) -> Awaitable[tuple[str, bytes]]: ...


def apply_overrides(out: dict[str, Any], channel: Channel, alias: str, upstream_model: str) -> None:
    """``post_body_parameter_overrides``: global keys, then the model's own, then removals."""
    if channel.overrides_all:
        out.update(channel.overrides_all)
    per_model = channel.overrides_by_model.get(alias) or channel.overrides_by_model.get(upstream_model)
    if per_model:
        out.update(per_model)
    for key in channel.remove_keys:
        out.pop(key, None)


def upstream_body(
    body: Mapping[str, Any],
    channel: Channel,
    alias: str,
    upstream_model: str,
    quirks: Quirks = NO_QUIRKS,
    ask_usage: bool = False,
) -> bytes:
    """Patch the client's body for an OpenAI-compatible channel (the fast path). ``quirks`` are the
    channel's host quirks (``quirks_for``); ``ask_usage`` adds ``stream_options.include_usage``
    (``injects_stream_usage``, decided by the relay for both this body and its stream)."""
    out = dict(body)
    out["model"] = upstream_model
    if not channel.tools:
        _strip_tools(out)
    if not channel.image:
        _strip_images(out)
    if ask_usage:
        out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
    apply_overrides(out, channel, alias, upstream_model)
    if quirks.request:
        apply_request(quirks, out)
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


async def inline_images(body: Mapping[str, Any], fetcher: ImageSource, allow_private: bool) -> dict[str, Any]:
    """A copy of ``body`` whose http(s) ``image_url`` parts carry the fetched bytes as a
    ``data:`` URI; each distinct URL is fetched once. Other parts are shared, not copied."""
    cache: dict[str, str] = {}
    messages = []
    for message in body.get("messages", ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(_remote_image(p) for p in content):
            parts = []
            for part in content:
                if _remote_image(part):
                    url = part["image_url"]["url"]
                    if url not in cache:
                        media, data = await fetcher.fetch(url, allow_private=allow_private)
                        cache[url] = f"data:{media};base64," + base64.b64encode(data).decode()
                    part = {**part, "image_url": {**part["image_url"], "url": cache[url]}}
                parts.append(part)
            message = {**message, "content": parts}
        messages.append(message)
    return {**body, "messages": messages}


def _remote_image(part: Any) -> bool:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return False
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    return isinstance(url, str) and url.startswith(("http://", "https://"))
