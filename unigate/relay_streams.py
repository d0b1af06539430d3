"""The stream state machines of the relay: pass-through and translated.

Both expose the same surface to ``relay.py``: ``relay(event) -> frames`` for each upstream SSE
event, ``relay_close(framer) -> frames`` at the end of the upstream body, and the flags
``committed`` (a content event has been produced: from now on the stream belongs to the client)
and ``done`` (the stream's end has been seen). Errors are raised as ``UpstreamError``: before
commit the relay retries, after it the relay ends the stream with ``error_frames``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.dialects import openai_chat
from unigate.dialects.base import Framer, StreamDecoder
from unigate.dialects.sse import SSEEvent
from unigate.errors import UnigateError, UpstreamProtocolError
from unigate.events import CONTENT_EVENTS, Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, UsageEvent
from unigate.ir import Usage
from unigate.providers.quirks import NO_QUIRKS, ChunkNormaliser, Quirks, Verdict

DONE_FRAME = b"data: [DONE]\n\n"


def error_frames(err: UnigateError) -> list[bytes]:
    """The end of a committed stream that failed: an in-band error event, then ``[DONE]``.
    The official ``openai`` SDK raises ``APIError`` when a data event has an ``error`` key."""
    return [b"data: " + orjson.dumps(err.to_openai()) + b"\n\n", DONE_FRAME]


def _is_content(chunk: Mapping[str, Any]) -> bool:
    """Does this OpenAI chunk carry anything the client must see (the commit point)?"""
    choices = chunk.get("choices")
    if not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
        if delta.get("reasoning_content") or delta.get("reasoning") or delta.get("function_call"):
            return True
    return False


def _without_null_usage(data: str, chunk: Mapping[str, Any]) -> str | None:
    """``data`` less its top-level ``,"usage":null`` member, cut from the text so every other
    byte stays the upstream's; None when that cannot be shown safe (the caller then re-encodes
    the chunk). ``chunk`` is ``data`` parsed, its ``usage`` still present.

    The last ``,"usage":null`` in the text is the top-level member when what follows it is the
    object's closing ``}`` alone (usage is the last member: the closing brace of the whole text
    closes the object that member is in), or exactly the compact encoding of the top-level
    members that follow ``usage`` in ``chunk`` (OpenAI's ``obfuscation``): a nested occurrence
    would be followed by the closing brackets of what encloses it. Searching from the end keeps
    this to a few hundred ns on a typical chunk (a forward scan of the whole text costs more)."""
    at = data.rfind(',"usage":null')
    if at < 0:
        return None
    tail = data[at + 13 :]
    if tail != "}":
        keys = list(chunk)
        after = keys[keys.index("usage") + 1 :]
        if not after or tail != "," + orjson.dumps({k: chunk[k] for k in after}).decode()[1:]:
            return None
    return data[:at] + tail


def _collect_text(delta: Any, into: list[str]) -> None:
    """Content, reasoning and tool-argument text of an OpenAI delta (for token estimates)."""
    if not isinstance(delta, dict):
        return
    for key in ("content", "reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            into.append(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            into.append(function["arguments"])


class PassThroughStream:
    """The pass-through stream's state machine.

    ``committed``: a content event has been produced (from then on frames go to the client as
    they come). ``done``: ``[DONE]`` was seen (or synthesised after a finish_reason at EOF).
    ``finished``: some chunk carried a ``finish_reason``. ``usage`` is the last usage chunk's
    (when the upstream sent one) and ``text`` the content seen, for local token estimates when
    it did not. Before commit, an event containing one
    of the configured ``error_triggers`` fails the attempt (uni-api's rule). In-band ``{"error": …}`` events raise a
    classified ``UpstreamError`` — before commit the relay retries, after it ``_rest`` ends the
    stream with an error event.

    ``quirks``: the channel's response-side host quirks (providers/quirks.py), applied to every
    chunk by a ``ChunkNormaliser`` (``normaliser``; ``None`` when the channel has none, so a plain
    OpenAI stream pays one attribute check per chunk). A chunk the normaliser changed is
    re-encoded; one it holds back (folded into the next) produces no frame.

    ``strip_usage``: the relay asked the upstream for usage the client did not ask for
    (``quirks.injects_stream_usage``, decided once per attempt for the body and this stream).
    The usage chunk (``choices: []`` with a ``usage``) is then recorded and not forwarded, and the
    ``"usage": null`` OpenAI adds to every other chunk is cut out of the frame's text, so the
    client reads what it would have read without the injection. A usage on a chunk that has
    choices (a host's own habit, not ours) is forwarded as before.
    """

    __slots__ = (
        "alias",
        "committed",
        "done",
        "finished",
        "normaliser",
        "rewrite",
        "strip_usage",
        "text",
        "triggers",
        "upstream_model",
        "usage",
    )

    def __init__(
        self,
        alias: str,
        upstream_model: str,
        triggers: tuple[str, ...] = (),
        quirks: Quirks = NO_QUIRKS,
        *,
        strip_usage: bool = False,
    ) -> None:
        self.alias = alias
        self.normaliser = ChunkNormaliser(quirks) if quirks.response else None
        self.strip_usage = strip_usage
        self.usage: Usage | None = None
        self.text: list[str] = []
        self.triggers = triggers
        self.upstream_model = upstream_model
        self.rewrite = alias != upstream_model
        self.committed = False
        self.done = False
        self.finished = False

    def relay(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if self.done:
            return []
        if data == "[DONE]":
            self.done = True
            if not self.committed:
                raise UpstreamProtocolError("upstream stream ended before any content")
            return [DONE_FRAME]
        if not self.committed and self.triggers and any(t in data for t in self.triggers):
            raise UpstreamProtocolError("upstream stream matched an error trigger before any content")
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("upstream sent an event that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        if "error" in chunk and not chunk.get("choices"):
            raise openai_chat.DIALECT.decode_error(200, {}, data.encode())
        changed = False
        if self.strip_usage and "usage" in chunk:
            usage = chunk["usage"]
            if usage is None:
                cut = _without_null_usage(data, chunk)
                del chunk["usage"]
                if cut is None:
                    changed = True
                else:
                    data = cut
            elif not chunk.get("choices"):
                if usage:
                    self.usage = openai_chat.decode_usage(usage)
                return []
        if self.normaliser is not None:
            verdict = self.normaliser.apply(chunk)
            if verdict is Verdict.HOLD:
                return []
            changed = verdict is Verdict.CHANGED
        if not self.committed and _is_content(chunk):
            self.committed = True
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                if choice.get("finish_reason"):
                    self.finished = True
                _collect_text(choice.get("delta"), self.text)
        if chunk.get("usage"):
            self.usage = openai_chat.decode_usage(chunk["usage"])
        if self.rewrite and "model" in chunk:
            chunk["model"] = self.alias
            changed = True
        if changed:
            return [b"data: " + orjson.dumps(chunk) + b"\n\n"]
        return [b"data: " + data.encode() + b"\n\n"]

    def relay_close(self, framer: Framer) -> list[bytes]:
        """End of the upstream body: flush the framer; a stream that never finished is a
        truncated stream (an error), one that finished without ``[DONE]`` gets one."""
        frames: list[bytes] = []
        for event in framer.close():
            frames.extend(self.relay(event))
        if self.done:
            return frames
        if not self.finished:
            raise UpstreamProtocolError("upstream stream ended without finishing (truncated)")
        self.done = True
        frames.append(DONE_FRAME)
        return frames


class TranslatedStream:
    """A provider's stream decoded to IR events and re-encoded as OpenAI chunks.

    ``decoder`` is the upstream dialect's state machine; ``encoder`` the client's
    ``openai_chat.StreamEncoder``. Committed once an event in ``CONTENT_EVENTS`` (or a
    ``Finish``) has been produced; ``done`` once the encoder wrote ``[DONE]``. Before commit, a
    frame containing one of ``triggers`` fails the attempt, as in the pass-through stream.
    """

    __slots__ = ("committed", "decoder", "done", "encoder", "text", "triggers", "usage")

    def __init__(self, decoder: StreamDecoder, encoder: openai_chat.StreamEncoder, triggers: tuple[str, ...]) -> None:
        self.usage: Usage | None = None
        self.text: list[str] = []
        self.decoder = decoder
        self.encoder = encoder
        self.triggers = triggers
        self.committed = False
        self.done = False

    def relay(self, event: SSEEvent) -> list[bytes]:
        if self.done:
            return []
        if not self.committed and self.triggers and any(t in event.data for t in self.triggers):
            raise UpstreamProtocolError("upstream stream matched an error trigger before any content")
        return self._encode(self.decoder.feed(event))

    def relay_close(self, framer: Framer) -> list[bytes]:
        frames: list[bytes] = []
        for event in framer.close():
            frames.extend(self.relay(event))
        if self.done:
            return frames
        frames.extend(self._encode(self.decoder.close()))
        frames.extend(self.encoder.finish())
        self.done = True
        return frames

    def _encode(self, events: list[Event]) -> list[bytes]:
        frames: list[bytes] = []
        for ev in events:
            if not self.committed and isinstance(ev, (*CONTENT_EVENTS, Finish)):
                self.committed = True
            if isinstance(ev, UsageEvent):
                self.usage = ev.usage
            elif isinstance(ev, (TextDelta, ReasoningDelta)):
                self.text.append(ev.text)
            elif isinstance(ev, ToolCallDelta):
                self.text.append(ev.arguments)
            frames.extend(self.encoder.feed(ev))
        return frames
