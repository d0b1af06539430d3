"""What the fake Cohere upstream does with one v2 Chat request: frozen dataclasses.

Each behaviour applies to streaming and non-streaming requests according to the body's
``stream`` flag. The Cohere-specific ones are ``CEcho``, ``CReply``, ``CFail`` and
``CStreamError``; the generic ones (``Hang``, ``Gate``, ``Delay``, ``Refuse``, ``StreamThenDie``,
``Stall``, ``EmptyStream``, ``Raw``, ``RawStream``) are shared with the other fakes, and here
"content chunks" means text deltas (after ``message-start`` and the text block's start).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.cohere_wire import Answer, ToolCall, input_tokens, last_user_text, new_tool_call_id
from tests.fakes.loopback import Delay, EmptyStream, Gate, Hang, Raw, RawStream, Refuse, Stall, StreamThenDie
from tests.fakes.openai_wire import count_words


@dataclass(frozen=True)
class CEcho:
    """Reply ``"echo: " + <text of the last user message>``.

    With ``tools`` and ``tool_choice: "REQUIRED"``, answer instead with one call of the FIRST
    declared tool (a named choice arrives as that tool alone + ``REQUIRED``), ``tool_arguments``
    as its arguments and ``finish_reason: "TOOL_CALL"`` — as the real API obeys the choice.
    """

    tool_arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CReply:
    """A fixed reply. ``tool_calls`` are ``(name, arguments_dict)`` pairs (parallel calls ok);
    ``thinking`` and ``tool_plan`` come before the text.

    ``finish_reason`` defaults to ``TOOL_CALL`` with calls, else ``COMPLETE``; ``usage=(input,
    output)`` overrides the word counts (these are ``tokens``; ``billed_units`` are derived);
    ``cached`` sets ``cached_tokens``; ``chunk_delay`` (seconds) spaces stream events; ``headers``
    are added to the response.
    """

    text: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    thinking: str | None = None
    tool_plan: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    cached: int = 0
    chunk_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple((n, dict(a)) for n, a in self.tool_calls))


@dataclass(frozen=True)
class CFail:
    """An HTTP error before any body, in Cohere's shape ``{"id", "message"}``; ``message``
    defaults from the status; ``body`` (dict, str or bytes) replaces the whole body."""

    status: int
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Mapping[str, Any] | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class CStreamError:
    """A stream that, after ``message-start``, the text block's start and ``after`` text deltas,
    ends with ``message-end`` whose ``finish_reason`` is ``finish_reason`` (``ERROR``) and whose
    ``delta.error`` is ``message``, then ``data: [DONE]``. Non-stream requests get HTTP ``status``
    with that message in Cohere's error body."""

    after: int = 0
    message: str = "internal server error"
    finish_reason: str = "ERROR"
    status: int = 500


CBehaviour = (
    CEcho
    | CReply
    | CFail
    | CStreamError
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


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _call_tokens(calls: Sequence[ToolCall]) -> int:
    return sum(1 + count_words(c.arguments) for c in calls)


def echo_answer(b: CEcho, body: Mapping[str, Any]) -> Answer:
    names = _tool_names(body)
    prompt = input_tokens(body)
    if names and body.get("tool_choice") == "REQUIRED":
        call = ToolCall(new_tool_call_id(names[0]), names[0], json.dumps(dict(b.tool_arguments)))
        return Answer(
            tool_calls=(call,),
            tool_plan=f"I will call {names[0]}.",
            finish_reason="TOOL_CALL",
            input_tokens=prompt,
            output_tokens=_call_tokens([call]) + 4,
        )
    text = "echo: " + last_user_text(body.get("messages") or [])
    return Answer(text, input_tokens=prompt, output_tokens=count_words(text))


def reply_answer(b: CReply, body: Mapping[str, Any]) -> Answer:
    calls = tuple(ToolCall(new_tool_call_id(n), n, json.dumps(dict(a))) for n, a in b.tool_calls)
    if b.usage is not None:
        prompt, output = b.usage
    else:
        prompt = input_tokens(body)
        output = count_words(b.text) + count_words(b.thinking or "") + count_words(b.tool_plan or "")
        output += _call_tokens(calls)
    return Answer(
        b.text,
        calls,
        thinking=b.thinking,
        tool_plan=b.tool_plan,
        finish_reason=b.finish_reason or ("TOOL_CALL" if calls else "COMPLETE"),
        input_tokens=prompt,
        output_tokens=output,
        cached=b.cached,
    )
