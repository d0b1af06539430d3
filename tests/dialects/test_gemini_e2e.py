"""End to end through the OpenAI dialect: an OpenAI client body → Gemini request, and Gemini answers
→ what an OpenAI client receives, parsed with the official ``openai`` SDK types.

The Gemini dialect does not depend on ``openai_chat``; these tests join the two on the golden
fixtures of ``tests/fixtures/gemini``. Client output is checked semantically against the Gemini
goldens (text, reasoning, tool calls, finish reason, usage), not byte for byte, so the OpenAI
encoder's formatting can evolve without touching Gemini fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from unigate.dialects.base import DialectOptions
from unigate.dialects.gemini import DIALECT
from unigate.dialects.sse import SSEFramer
from unigate.errors import UnigateError

openai_chat = pytest.importorskip("unigate.dialects.openai_chat")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def options(client_model: str = "gemini-flash") -> DialectOptions:
    return DialectOptions(upstream_model="gemini-2.5-flash", client_model=client_model)


def has(scenario: str, *names: str) -> bool:
    return all((FIXTURES / scenario / n).exists() for n in names)


def expected_view(response: dict[str, Any]) -> dict[str, Any]:
    """What the client should see, from a Gemini ``expected_response.json`` golden."""
    parts = response["message"]["parts"]
    calls = [{"id": p["id"], "name": p["name"], "arguments": p["arguments"]} for p in parts if p["type"] == "ToolCall"]
    usage = response["usage"]
    return {
        "content": "".join(p["text"] for p in parts if p["type"] == "Text"),
        "reasoning": "".join(p["text"] for p in parts if p["type"] == "Reasoning"),
        "tool_calls": calls,
        "finish_reason": response["finish_reason"],
        "usage": None
        if usage is None
        else (usage["prompt_tokens"], usage["completion_tokens"], usage["cached_tokens"], usage["reasoning_tokens"]),
    }


def usage_tuple(usage: Any) -> tuple[int, int, int, int] | None:
    if usage is None:
        return None
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    reasoning = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    return (usage.prompt_tokens, usage.completion_tokens, cached or 0, reasoning or 0)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if has(s, "request.json", "expected_upstream_request.json")])
def test_openai_request_to_gemini_body(scenario: str) -> None:
    body = load(FIXTURES / scenario / "request.json")
    request = openai_chat.parse_request(body)
    encoded = DIALECT.encode_request(request, options(body["model"]))
    assert encoded == load(FIXTURES / scenario / "expected_upstream_request.json")


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if has(s, "expected_response.json")])
def test_gemini_answer_to_openai_completion(scenario: str) -> None:
    decoded = DIALECT.decode_response((FIXTURES / scenario / "upstream_response.json").read_bytes(), options())
    completion = ChatCompletion.model_validate(openai_chat.encode_response(decoded))
    choice = completion.choices[0]
    seen = {
        "content": choice.message.content or "",
        "reasoning": (choice.message.model_extra or {}).get("reasoning_content") or "",
        "tool_calls": [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
            for c in choice.message.tool_calls or ()
        ],
        "finish_reason": choice.finish_reason,
        "usage": usage_tuple(completion.usage),
    }
    assert seen == expected_view(load(FIXTURES / scenario / "expected_response.json"))
    assert completion.model == "gemini-flash"


def client_stream(scenario: str) -> tuple[list[ChatCompletionChunk], list[bytes], UnigateError | None]:
    framer = SSEFramer()
    decoder = DIALECT.stream_decoder(options())
    encoder = openai_chat.StreamEncoder(id="chatcmpl-test", model="gemini-flash", created=0, include_usage=True)
    frames: list[bytes] = []
    raw = (FIXTURES / scenario / "upstream_stream.txt").read_bytes()
    error: UnigateError | None = None
    try:
        for frame in framer.feed(raw) + framer.close():
            for event in decoder.feed(frame):
                frames += encoder.feed(event)
        for event in decoder.close():
            frames += encoder.feed(event)
        frames += encoder.finish()
    except UnigateError as exc:
        error = exc
        frames += encoder.error_frames(exc)
    client = SSEFramer()
    data = [e.data for e in client.feed(b"".join(frames)) + client.close()]
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1] if '"error"' not in d[:12]]
    return chunks, frames, error


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if has(s, "upstream_stream.txt")])
def test_gemini_stream_to_openai_chunks(scenario: str) -> None:
    chunks, frames, error = client_stream(scenario)
    events = load(FIXTURES / scenario / "expected_events.json")
    text = "".join(e["text"] for e in events if e["type"] == "TextDelta")
    calls = [(e["index"], e["id"], e["name"]) for e in events if e["type"] == "ToolCallStart"]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == text
    seen_calls = [(t.index, t.id, t.function.name) for d in deltas for t in d.tool_calls or () if t.id]  # type: ignore[union-attr]
    assert seen_calls == calls
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    if error is not None:
        assert finishes == []
        assert json.loads(frames[-2].removeprefix(b"data: "))["error"]["message"] == error.message
        return
    assert finishes == [e["reason"] for e in events if e["type"] == "Finish"]
    usage = [e["usage"] for e in events if e["type"] == "UsageEvent"]
    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == len(usage) == 1
    u = usage[0]
    assert usage_tuple(usage_chunks[0].usage) == (
        u["prompt_tokens"],
        u["completion_tokens"],
        u["cached_tokens"],
        u["reasoning_tokens"],
    )
