"""What the fake Anthropic upstream does with one Messages request: frozen dataclasses.

Each behaviour applies to streaming and non-streaming requests according to the body's
``stream`` flag. The Anthropic-specific ones are ``AReply``, ``AEcho``, ``AFail`` and
``AStreamError``; the generic ones (``Hang``, ``Gate``, ``Delay``, ``Refuse``, ``StreamThenDie``,
``Stall``, ``EmptyStream``, ``Raw``, ``RawStream``) are shared with the other fakes, and here
"content chunks" means text deltas (after ``message_start``, the text block start and ``ping``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.anthropic_wire import Answer, ToolUse, input_tokens, last_user_text, new_tool_use_id
from tests.fakes.loopback import (
    Delay,
    EmptyStream,
    Gate,
    Hang,
    Raw,
    RawStream,
    Refuse,
    Stall,
    StreamThenDie,
)
from tests.fakes.openai_wire import count_words


@dataclass(frozen=True)
class AEcho:
    """Reply ``"echo: " + <text of the last user message>`` (text blocks joined with a space).

    If the request has ``tools`` and ``tool_choice`` is ``{"type": "tool", "name": N}`` (→ N) or
    ``{"type": "any"}`` (→ the first tool), answer with one ``tool_use`` of it instead, with
    ``tool_input`` as its input and ``stop_reason: "tool_use"``.
    """

    tool_input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AReply:
    """A fixed reply. ``tool_uses`` are ``(name, input_dict)`` pairs (parallel calls ok);
    ``thinking`` is ``(text, signature)`` and comes first.

    ``stop_reason`` defaults to ``"tool_use"`` with tool uses, else ``"end_turn"``;
    ``usage=(input, output)`` overrides the word counts; ``cache_read`` sets
    ``cache_read_input_tokens``; ``model`` overrides the echoed model; ``chunk_delay`` (seconds)
    spaces stream events; ``headers`` are added to the response.
    """

    text: str = ""
    tool_uses: Sequence[tuple[str, Mapping[str, Any]]] = ()
    thinking: tuple[str, str] | None = None
    stop_reason: str | None = None
    usage: tuple[int, int] | None = None
    cache_read: int = 0
    model: str | None = None
    chunk_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_uses", tuple((n, dict(i)) for n, i in self.tool_uses))


@dataclass(frozen=True)
class AFail:
    """An HTTP error before any body, in Anthropic's shape
    ``{"type": "error", "error": {"type", "message"}, "request_id"}``. ``error_type`` and
    ``message`` default from the status (529 → ``overloaded_error``/``"Overloaded"``); ``body``
    (dict, str or bytes) replaces the whole body."""

    status: int
    error_type: str | None = None
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Mapping[str, Any] | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class AStreamError:
    """A stream that, after ``message_start`` and ``after`` text deltas, sends
    ``event: error`` with ``{"type": "error", "error": {"type": error_type, "message"}}`` and then
    ends the body (well terminated, no ``message_stop``). Non-stream requests get HTTP ``status``
    (default: the status of ``error_type``, 529 for ``overloaded_error``) with that body."""

    after: int = 0
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    status: int | None = None


ABehaviour = (
    AEcho
    | AReply
    | AFail
    | AStreamError
    | Hang
    | Gate
    | Delay
    | Refuse
    | StreamThenDie
    | Stall
    | EmptyStream
    | Raw
    | RawStream
)
ANTHROPIC_ONLY = (AEcho, AReply, AFail, AStreamError)


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    return [str(t["name"]) for t in body.get("tools") or () if isinstance(t, dict) and "name" in t]


def echo_answer(b: AEcho, body: Mapping[str, Any], model: str) -> Answer:
    names = _tool_names(body)
    choice = body.get("tool_choice")
    forced: str | None = None
    if names and isinstance(choice, dict):
        if choice.get("type") == "any":
            forced = names[0]
        elif choice.get("type") == "tool":
            forced = str(choice.get("name"))
    prompt = input_tokens(body)
    if forced is not None:
        use = ToolUse(new_tool_use_id(), forced, dict(b.tool_input))
        output = 1 + count_words(json.dumps(use.input))
        return Answer(model, tool_uses=(use,), stop_reason="tool_use", input_tokens=prompt, output_tokens=output)
    text = "echo: " + last_user_text(body.get("messages") or [])
    return Answer(model, text, input_tokens=prompt, output_tokens=count_words(text))


def reply_answer(b: AReply, body: Mapping[str, Any], model: str) -> Answer:
    uses = tuple(ToolUse(new_tool_use_id(), name, args) for name, args in b.tool_uses)
    if b.usage is not None:
        prompt, output = b.usage
    else:
        prompt = input_tokens(body)
        output = count_words(b.text) + (count_words(b.thinking[0]) if b.thinking else 0)
        output += sum(1 + count_words(json.dumps(dict(u.input))) for u in uses)
    return Answer(
        b.model or model,
        b.text,
        uses,
        thinking=b.thinking,
        stop_reason=b.stop_reason or ("tool_use" if uses else "end_turn"),
        input_tokens=prompt,
        output_tokens=output,
        cache_read=b.cache_read,
    )
