"""The internal request/response model: a small neutral IR in OpenAI's vocabulary.

Dialects translate between a provider's wire format and these frozen dataclasses. Content is
always a tuple of parts, never a bare string. Fields that differ between providers are typed;
every other field of an inbound request rides in ``ChatRequest.extra`` untouched, so an
OpenAI→OpenAI route loses nothing. The pass-through fast path does not build an IR at all.

Contract: nothing here imports anything of unigate's; instances are immutable and hashable
only where their fields are (``extra`` and JSON schemas are plain dicts, treat them as read-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image part. ``url`` is either a ``data:`` URI or an http(s) URL (fetched only when the
    channel allows it); ``detail`` is OpenAI's ``low``/``high``/``auto`` hint."""

    url: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Audio:
    """OpenAI ``input_audio``: base64 ``data`` and its ``format`` (wav, mp3)."""

    data: str
    format: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call made by the assistant; ``arguments`` is the JSON text, verbatim."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The answer to one tool call (an OpenAI ``tool`` message); ``content`` holds text/image parts."""

    call_id: str
    content: tuple[Part, ...]
    name: str | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Reasoning:
    """Model reasoning. ``signature`` is Anthropic's thinking signature or Gemini's thought
    signature, kept so a multi-turn round trip can send it back; ``redacted`` marks Anthropic
    ``redacted_thinking`` whose opaque ``data`` travels in ``signature``."""

    text: str
    signature: str | None = None
    redacted: bool = False


@dataclass(frozen=True, slots=True)
class Opaque:
    """A provider-specific block carried through unchanged for the dialect that made it."""

    dialect: str
    data: Mapping[str, Any]


Part = Text | Image | Audio | ToolCall | ToolResult | Reasoning | Opaque


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function tool. ``parameters`` is the JSON schema as the client sent it."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class NamedToolChoice:
    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``text``, ``json_object`` or ``json_schema`` (then ``schema``/``name``/``strict`` are set)."""

    type: Literal["text", "json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat request after decoding. ``model`` is what the client asked for (an alias);
    the upstream model name is passed to ``encode_request`` separately."""

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """One complete (non-streamed) assistant answer; ``message.parts`` may hold Reasoning,
    Text and ToolCall parts in the order the provider produced them."""

    id: str
    model: str
    created: int
    message: Message
    finish_reason: FinishReason | None
    usage: Usage | None = None
