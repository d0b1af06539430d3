"""Client-side helpers of the battery: ask through the official ``openai`` SDK, stream or not,
and the invariants every answer must keep."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.battery.harness import MODEL, Harness

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time in a zone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def user(text: str) -> Any:
    """One user message (typed ``Any``: the SDK's message params are TypedDicts)."""
    return [{"role": "user", "content": text}]


@dataclass
class Got:
    """What the client saw: the completion (for a stream, the SDK's accumulation) and the chunks."""

    completion: ChatCompletion
    chunks: list[ChatCompletionChunk]

    @property
    def message(self) -> Any:
        return self.completion.choices[0].message

    @property
    def finish(self) -> str:
        return str(self.completion.choices[0].finish_reason)

    @property
    def text(self) -> str:
        return self.message.content or ""

    def calls(self) -> list[tuple[str, Any]]:
        """``(name, parsed arguments)`` of every tool call."""
        return [(c.function.name, json.loads(c.function.arguments)) for c in self.message.tool_calls or []]

    def reasoning(self) -> str:
        """``reasoning_content``: from the message, or concatenated from the stream's deltas."""
        if not self.chunks:
            return str((self.message.model_extra or {}).get("reasoning_content") or "")
        pieces = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in self.chunks if c.choices]
        return "".join(p for p in pieces if isinstance(p, str))


def check_stream(chunks: list[ChatCompletionChunk]) -> None:
    """Invariants of every OpenAI stream the gateway writes: one id, the client's model name,
    choice index 0, exactly one ``finish_reason``."""
    assert chunks, "the stream carried no chunk"
    assert len({c.id for c in chunks}) == 1
    assert {c.model for c in chunks} == {MODEL}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1, finishes
    assert all(ch.index == 0 for c in chunks for ch in c.choices)


def ask(h: Harness, stream: bool, messages: Any, **kwargs: Any) -> Got:
    """One chat request for ``battery``; streams go through ``chat.completions.stream(...)`` and
    are accumulated by the SDK (``get_final_completion``)."""
    client = h.client()
    if not stream:
        completion = client.chat.completions.create(model=MODEL, messages=messages, **kwargs)
        assert completion.model == MODEL
        assert completion.object == "chat.completion"
        return Got(completion, [])
    chunks: list[ChatCompletionChunk] = []
    with client.chat.completions.stream(model=MODEL, messages=messages, **kwargs) as events:
        for event in events:
            if event.type == "chunk":
                chunks.append(event.chunk)
        try:
            final: ChatCompletion = events.get_final_completion()
        except openai.LengthFinishReasonError as cut:  # the SDK's parse helper refuses "length"
            final = cut.completion
    check_stream(chunks)
    return Got(final, chunks)


def raw_chunks(h: Harness, messages: Any, model: str = MODEL, **kwargs: Any) -> list[ChatCompletionChunk]:
    """A stream read chunk by chunk with ``create(stream=True)`` (no accumulation)."""
    return list(h.client().chat.completions.create(model=model, messages=messages, stream=True, **kwargs))
