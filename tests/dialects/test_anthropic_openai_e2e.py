"""The Anthropic dialect behind the inbound OpenAI dialect, on the golden fixtures: what an OpenAI
client would really send and receive. The uni-api defects (uni-api-compat.md §4.2, §4.4) are
checked on the client's side too: a converted non-streamed answer, a finish reason in every
stream, every parallel tool call, no usage chunk the client did not ask for."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.dialects.test_anthropic_fixtures import FIXTURES, run_stream, scenarios_with, setup
from unigate.dialects import openai_chat
from unigate.dialects.anthropic import DIALECT
from unigate.dialects.base import DialectOptions
from unigate.events import Finish, ToolCallStart
from unigate.ir import ToolCall

OPTIONS = DialectOptions(upstream_model="claude-sonnet-4-5", client_model="claude")


@pytest.mark.parametrize("scenario", scenarios_with("request.json", "expected_upstream_request.json"))
def test_end_to_end_request(scenario: str) -> None:
    dialect, options = setup(scenario)
    raw = json.loads((FIXTURES / scenario / "request.json").read_text())
    body = dialect.encode_request(openai_chat.parse_request(raw), options)
    assert body == json.loads((FIXTURES / scenario / "expected_upstream_request.json").read_text())


@pytest.mark.parametrize("scenario", scenarios_with("upstream_response.json", "expected_response.json"))
def test_end_to_end_response(scenario: str) -> None:
    response = DIALECT.decode_response((FIXTURES / scenario / "upstream_response.json").read_bytes(), OPTIONS)
    out = openai_chat.encode_response(response)
    completion = ChatCompletion.model_validate(out)  # a real OpenAI completion, not Anthropic JSON
    assert out["object"] == "chat.completion" and "type" not in out  # converted, not Anthropic's JSON
    choice = completion.choices[0]
    assert choice.finish_reason == response.finish_reason
    calls = [p for p in response.message.parts if isinstance(p, ToolCall)]
    assert [(c.id, c.function.arguments) for c in choice.message.tool_calls or []] == [
        (c.id, c.arguments) for c in calls
    ]


@pytest.mark.parametrize("scenario", scenarios_with("upstream_stream.txt", "expected_events.json"))
@pytest.mark.parametrize("include_usage", [False, True])
def test_end_to_end_stream(scenario: str, include_usage: bool) -> None:
    events, error = run_stream(DIALECT, OPTIONS, [(FIXTURES / scenario / "upstream_stream.txt").read_bytes()])
    encoder = openai_chat.StreamEncoder(id="chatcmpl-1", model="claude", created=0, include_usage=include_usage)
    frames = [f for e in events for f in encoder.feed(e)]
    frames += encoder.error_frames(error) if error is not None else encoder.finish()
    chunks = [json.loads(f.decode()[len("data: ") :]) for f in frames if f.strip() != b"data: [DONE]"]
    if error is not None:
        assert "error" in chunks[-1]  # the client learns the stream failed
        return
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    reasons = [ch.finish_reason for c in parsed for ch in c.choices if ch.finish_reason]
    assert reasons == [next(e.reason for e in events if isinstance(e, Finish))]
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    ids = [t.id for c in parsed for ch in c.choices for t in ch.delta.tool_calls or [] if t.id]
    assert ids == [s.id for s in starts]
    assert any(c.usage for c in parsed) == include_usage  # no unasked-for usage chunk
