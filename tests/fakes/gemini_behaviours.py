"""What the fake Gemini upstream (and Gemini on the fake Vertex) does with one
``generateContent`` / ``streamGenerateContent`` request: frozen dataclasses.

The Gemini-specific ones are ``GReply``, ``GEcho``, ``GFail``, ``GStreamError``, ``GSafety`` and
``GBlocked``; the generic ones (``Hang``, ``Gate``, ``Delay``, ``Refuse``, ``StreamThenDie``,
``Stall``, ``EmptyStream``, ``Raw``, ``RawStream``) are shared with the other fakes, and here
"content chunks" means stream chunks with one text part each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_wire import (
    Answer,
    Call,
    args_words,
    calling_config,
    function_names,
    last_user_text,
    prompt_tokens,
)
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
class GEcho:
    """Reply ``"echo: " + <text of the last user turn>`` (text parts joined with a space).

    If ``toolConfig.functionCallingConfig.mode`` is ``ANY`` and functions are declared, answer
    with one ``functionCall`` instead: to the first of ``allowedFunctionNames``, else the first
    declared function, with ``function_args`` as its args.
    """

    function_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GReply:
    """A fixed reply. ``function_calls`` are ``(name, args_dict)`` pairs (parallel calls ok);
    ``thoughts`` is ``(summary_text, signature)`` (signature ``""`` for none).

    ``usage=(prompt, candidates, thoughts)`` overrides the word counts; ``cached`` sets
    ``cachedContentTokenCount``; ``model_version`` overrides ``modelVersion``; ``chunk_delay``
    (seconds) spaces stream chunks; ``headers`` are added to the response.
    """

    text: str = ""
    function_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    thoughts: tuple[str, str] | None = None
    finish_reason: str = "STOP"
    usage: tuple[int, int, int] | None = None
    cached: int = 0
    model_version: str | None = None
    chunk_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "function_calls", tuple((n, dict(a)) for n, a in self.function_calls))


@dataclass(frozen=True)
class GFail:
    """An HTTP error in Google's shape ``{"error": {"code", "message", "status", "details"?}}``.

    ``google_status`` and ``message`` default from the status (429 → ``RESOURCE_EXHAUSTED``);
    a 429 carries a ``QuotaFailure`` detail, plus ``RetryInfo.retryDelay`` when ``retry_delay``
    is given (seconds, or a Duration string like ``"37s"``). ``details`` replaces the details;
    ``body`` (dict, str or bytes) the whole body."""

    status: int
    google_status: str | None = None
    message: str | None = None
    retry_delay: float | str | None = None
    details: Sequence[Mapping[str, Any]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Mapping[str, Any] | None = None
    content_type: str = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class GStreamError:
    """A stream whose event after ``after`` content chunks is ``data: {"error": {...}}``, then the
    body ends. Non-stream requests get HTTP ``code`` with that body."""

    after: int = 0
    code: int = 500
    google_status: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class GSafety:
    """HTTP 200, a candidate with ``finishReason`` (default ``SAFETY``), ``safetyRatings`` and no
    content; streams send it as their only chunk."""

    finish_reason: str = "SAFETY"


@dataclass(frozen=True)
class GBlocked:
    """HTTP 200, no ``candidates``, ``promptFeedback.blockReason`` (default ``SAFETY``)."""

    reason: str = "SAFETY"


GBehaviour = (
    GEcho
    | GReply
    | GFail
    | GStreamError
    | GSafety
    | GBlocked
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
GEMINI_ONLY = (GEcho, GReply, GFail, GStreamError, GSafety, GBlocked)


def echo_answer(b: GEcho, body: Mapping[str, Any], model: str, vertex: bool = False) -> Answer:
    names = function_names(body)
    config = calling_config(body)
    prompt = prompt_tokens(body)
    if names and str(config.get("mode", "")).upper() == "ANY":
        allowed = config.get("allowedFunctionNames") or config.get("allowed_function_names") or names
        call = Call(str(allowed[0]), dict(b.function_args))
        return Answer(
            model, calls=(call,), prompt_tokens=prompt, candidates_tokens=1 + args_words(call.args), vertex=vertex
        )
    text = "echo: " + last_user_text(body.get("contents") or [])
    return Answer(model, text, prompt_tokens=prompt, candidates_tokens=count_words(text), vertex=vertex)


def reply_answer(b: GReply, body: Mapping[str, Any], model: str, vertex: bool = False) -> Answer:
    calls = tuple(Call(name, args) for name, args in b.function_calls)
    if b.usage is not None:
        prompt, candidates, thoughts = b.usage
    else:
        prompt = prompt_tokens(body)
        candidates = count_words(b.text) + sum(1 + args_words(c.args) for c in calls)
        thoughts = count_words(b.thoughts[0]) if b.thoughts else 0
    return Answer(
        b.model_version or model,
        b.text,
        calls,
        thoughts=b.thoughts,
        finish_reason=b.finish_reason,
        prompt_tokens=prompt,
        candidates_tokens=candidates,
        thoughts_tokens=thoughts,
        cached_tokens=b.cached,
        vertex=vertex,
    )
