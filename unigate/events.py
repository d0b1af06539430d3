"""The closed set of stream events every dialect's stream decoder produces and every inbound
dialect's stream encoder consumes.

A well-formed stream is: ``Start``, then any mix of ``TextDelta`` / ``ReasoningDelta`` /
``ToolCallStart`` + ``ToolCallDelta``, then at most one ``Usage`` and exactly one ``Finish``
(``Usage`` may come before or after ``Finish``; encoders hold it until the end). Tool calls are
numbered by ``index`` in the order they start, from 0, like OpenAI's ``tool_calls[].index``.
A decoder signals an in-stream provider error by raising an ``UpstreamError`` from ``feed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from unigate.ir import FinishReason, Usage


@dataclass(frozen=True, slots=True)
class Start:
    id: str
    model: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning text; a delta with only ``signature`` set closes a signed thinking block."""

    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class UsageEvent:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


Event = Start | TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | UsageEvent | Finish

CONTENT_EVENTS = (TextDelta, ReasoningDelta, ToolCallStart, ToolCallDelta)
"""Events that commit a stream: once one reached the client, the relay never retries."""
