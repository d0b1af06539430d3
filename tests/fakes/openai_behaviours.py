"""What the fake OpenAI upstream does with one chat request: a closed set of frozen dataclasses.

Each behaviour applies to streaming and non-streaming requests according to the request's
``stream`` flag. The server (``openai_upstream.py``) dispatches on the type; the pure parts
(turning ``Echo``/``Reply`` into an :class:`~tests.fakes.openai_wire.Answer`) live here.

"Content chunks" below means ``chat.completion.chunk`` events that carry text; a stream that
sends any of them first sends the role chunk (``delta: {"role": "assistant", "content": ""}``).
"Parked" behaviours (``Hang``, ``Gate``, ``Delay``, ``Stall``) watch the socket meanwhile, so a
client that gives up is seen at once (``ConnectionRecord.peer_closed_first``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes.openai_wire import (
    Answer,
    ToolCall,
    count_words,
    last_user_text,
    new_call_id,
    prompt_tokens,
)


@dataclass(frozen=True)
class Echo:
    """Reply ``"echo: " + <last user message text>`` (text parts joined with a space).

    If the request has ``tools`` and ``tool_choice`` is ``"required"`` (→ first function) or
    names a function, answer with one call to it instead, with ``tool_arguments`` as arguments.
    """

    tool_arguments: str = "{}"


@dataclass(frozen=True)
class Reply:
    """A fixed reply. ``tool_calls`` are ``(name, arguments_json_text)`` pairs (parallel calls ok).

    ``finish_reason`` defaults to ``"tool_calls"`` when there are calls, else ``"stop"``;
    ``usage=(prompt, completion)`` overrides the word counts; ``model`` overrides the echoed
    request model; ``reasoning`` is sent as ``reasoning_field`` (DeepSeek's ``reasoning_content``
    by default). ``chunk_delay`` (seconds) spaces stream events; ``headers`` are added to the response.
    """

    text: str = ""
    tool_calls: Sequence[tuple[str, str]] = ()
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    model: str | None = None
    reasoning_field: str = "reasoning_content"
    chunk_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(tuple(c) for c in self.tool_calls))


@dataclass(frozen=True)
class Fail:
    """An HTTP error before any body. ``body=None`` → OpenAI error JSON for the status
    (``message``/``code`` override its fields); a dict is sent as JSON; bytes/str verbatim."""

    status: int
    body: bytes | str | Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    message: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request, answer nothing until ``fake.release()`` or stop; then behave like
    ``then``, or (``then=None``) close the connection with a FIN."""

    then: Behaviour | None = None


@dataclass(frozen=True)
class Refuse:
    """Reset the connection (RST, ``SO_LINGER`` 0) right after reading the request."""


@dataclass(frozen=True)
class StreamThenDie:
    """Send headers, the role chunk and ``chunks`` content chunks (``chunks=0``: headers only),
    then die without a finish chunk or ``[DONE]``.

    ``how``: ``"reset"`` = RST; ``"fin"`` = TCP close mid-body (no chunked terminator, so the
    HTTP body is incomplete); ``"end"`` = a well-formed HTTP body that just lacks the SSE ending.
    Non-stream requests get headers with the full Content-Length and half the JSON body, then
    the same death (``"end"`` acts as ``"fin"``).
    """

    chunks: int = 2
    how: Literal["reset", "fin", "end"] = "reset"


@dataclass(frozen=True)
class EmptyStream:
    """200 ``text/event-stream`` with no events (``done=True``: only ``data: [DONE]``), well
    terminated. Non-stream requests get 200 ``application/json`` with an empty body."""

    done: bool = False


@dataclass(frozen=True)
class BadJSON:
    """200 ``application/json`` whose body is a completion cut in half (Content-Length matches
    the cut body). Streams get the role chunk, one event with truncated JSON, then ``[DONE]``."""


@dataclass(frozen=True)
class StreamError:
    """A stream whose event after ``after`` content chunks is ``data: {"error": error}``; then
    the body ends (terminated, no ``[DONE]``). Non-stream requests get HTTP ``status`` with
    ``{"error": error}`` (200 by default: an error inside a success)."""

    after: int = 0
    error: Mapping[str, Any] = field(
        default_factory=lambda: {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    )
    status: int = 200


@dataclass(frozen=True)
class Gate:
    """Park until ``event`` (a ``threading.Event``) is set, then behave like ``then``."""

    event: threading.Event
    then: Behaviour = field(default_factory=Echo)


@dataclass(frozen=True)
class Delay:
    """Park ``seconds`` (time to first byte), then behave like ``then``."""

    seconds: float
    then: Behaviour = field(default_factory=Echo)


@dataclass(frozen=True)
class Stall:
    """Send headers (and, for streams, the role chunk plus ``chunks`` content chunks), then go
    silent with the socket open until ``fake.release()``/stop, then close with a FIN.
    Non-stream: headers with a Content-Length, and no body."""

    chunks: int = 3


@dataclass(frozen=True)
class Raw:
    """Write ``data`` verbatim as the whole response (status line and headers included), then
    close with a FIN if ``close`` (else keep the connection for the next request)."""

    data: bytes
    close: bool = True


@dataclass(frozen=True)
class RawStream:
    """HTTP ``status`` with a chunked body whose HTTP chunks are ``pieces`` verbatim (one write
    each: hand-made SSE variants, garbage, splits inside UTF-8). ``end=False``: FIN instead of
    the chunked terminator."""

    pieces: Sequence[bytes]
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    end: bool = True


Behaviour = (
    Echo
    | Reply
    | Fail
    | Hang
    | Refuse
    | StreamThenDie
    | EmptyStream
    | BadJSON
    | StreamError
    | Gate
    | Delay
    | Stall
    | Raw
    | RawStream
)


def echo_answer(behaviour: Echo, body: Mapping[str, Any], model: str) -> Answer:
    messages = body.get("messages") or []
    names = [
        t["function"]["name"]
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    ]
    choice = body.get("tool_choice")
    forced: str | None = None
    if names and choice == "required":
        forced = names[0]
    elif names and isinstance(choice, dict) and choice.get("type") == "function":
        forced = (choice.get("function") or {}).get("name") or choice.get("name")
    if forced is not None:
        call = ToolCall(new_call_id(), forced, behaviour.tool_arguments)
        completion = 1 + count_words(call.arguments)
        return Answer(
            model,
            "",
            (call,),
            finish_reason="tool_calls",
            prompt_tokens=prompt_tokens(messages),
            completion_tokens=completion,
        )
    text = "echo: " + last_user_text(messages)
    return Answer(model, text, prompt_tokens=prompt_tokens(messages), completion_tokens=count_words(text))


def reply_answer(behaviour: Reply, body: Mapping[str, Any], model: str) -> Answer:
    calls = tuple(ToolCall(new_call_id(), name, args) for name, args in behaviour.tool_calls)
    if behaviour.usage is not None:
        p_tokens, c_tokens = behaviour.usage
    else:
        p_tokens = prompt_tokens(body.get("messages") or [])
        c_tokens = count_words(behaviour.text) + count_words(behaviour.reasoning or "")
        c_tokens += sum(count_words(c.name) + count_words(c.arguments) for c in calls)
    return Answer(
        behaviour.model or model,
        behaviour.text,
        calls,
        reasoning=behaviour.reasoning,
        reasoning_field=behaviour.reasoning_field,
        finish_reason=behaviour.finish_reason or ("tool_calls" if calls else "stop"),
        prompt_tokens=p_tokens,
        completion_tokens=c_tokens,
    )


def filler_answer(model: str, chunks: int) -> Answer:
    """A text answer with exactly ``chunks`` content chunks, for the partial-stream behaviours."""
    text = "".join(f"part{i} " for i in range(max(chunks, 1)))
    return Answer(model, text, prompt_tokens=0, completion_tokens=count_words(text))
