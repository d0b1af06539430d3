"""Cohere end to end: the official ``openai`` SDK → a real unigate → the fake Cohere upstream.

What the fake receives is checked natively (the v2 body the dialect writes), and what the client
gets back is checked through the SDK. The battery (``tests/battery``, provider ``cohere``) runs the
full scenario matrix; these tests pin the Cohere-specific translations in one place.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.battery.checks import PNG, TOOLS, ask, raw_chunks, user
from tests.battery.harness import ERROR_MESSAGE, KEYS, MODEL, RETRY_AFTER, SOLO, Harness, Say
from tests.battery.harness_cohere import COHERE_MODELS, start


@pytest.fixture(scope="module")
def running() -> Iterator[Harness]:
    with start() as harness:
        yield harness


@pytest.fixture
def h(running: Harness) -> Iterator[Harness]:
    running.begin()
    yield running
    running.end()


@pytest.mark.parametrize("stream", [False, True])
def test_text_with_system_and_image(h: Harness, stream: bool) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
    ]
    messages: Any = [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": content},
    ]
    got = ask(h, stream, messages, temperature=1.5, top_p=0.9, seed=7, stop=["END"], max_completion_tokens=50)
    assert got.text == "echo: what is this" and got.finish == "stop"

    [sent] = h.sent()
    assert sent.path == "/v2/chat" and sent.credential in KEYS["a"]
    assert sent.headers["accept"] == ("text/event-stream" if stream else "application/json")
    system = {
        "role": "system",
        "content": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}],
    }
    assert sent.json == {
        "model": COHERE_MODELS["a"],
        "messages": [system, {"role": "user", "content": content}],
        "max_tokens": 50,
        "temperature": 1.5,
        "p": 0.9,
        "stop_sequences": ["END"],
        "seed": 7,
        "stream": stream,
    }


def test_usage_is_tokens_not_billed_units(h: Harness) -> None:
    h.say(Say(text="counted", usage=(20, 5), cached=8))
    usage = ask(h, False, user("count")).completion.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (20, 5)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 8
    h.say(Say(text="again", usage=(30, 2)), stream=True)
    final = raw_chunks(h, user("count"), stream_options={"include_usage": True})[-1].usage
    assert final is not None and (final.prompt_tokens, final.completion_tokens) == (30, 2)


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tool_calls_and_their_results(h: Harness, stream: bool) -> None:
    calls = (("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"}))
    h.say(Say(calls=calls), stream=stream)
    got = ask(h, stream, user("weather and time?"), tools=TOOLS)
    assert got.calls() == list(calls) and got.finish == "tool_calls"
    assert h.last()["tools"] == TOOLS  # Cohere v2 declares tools in OpenAI's shape

    asked = got.message.model_dump(exclude_none=True)
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in reversed(asked["tool_calls"])]
    h.begin()
    ask(h, stream, [*user("weather and time?"), asked, *results], tools=TOOLS)
    body = h.last()
    sent_calls = [{k: v for k, v in c.items() if k != "index"} for c in asked["tool_calls"]]  # SDK-accumulated
    assert body["messages"][1] == {"role": "assistant", "tool_calls": sent_calls}
    assert body["messages"][2:] == results


@pytest.mark.parametrize(
    ("choice", "declared", "native", "called"),
    [
        ("none", ["get_weather", "get_time"], "NONE", None),
        ("auto", ["get_weather", "get_time"], None, None),
        ("required", ["get_weather", "get_time"], "REQUIRED", "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], "REQUIRED", "get_time"),
    ],
)
def test_tool_choice(h: Harness, choice: Any, declared: list[str], native: str | None, called: str | None) -> None:
    got = ask(h, True, user("time?"), tools=TOOLS, tool_choice=choice)
    assert [name for name, _ in got.calls()] == ([called] if called else [])
    body = h.last()
    assert [t["function"]["name"] for t in body["tools"]] == declared
    assert body.get("tool_choice") == native


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_and_structured_output(h: Harness, stream: bool) -> None:
    h.say(Say(text='{"answer": 42}', reasoning="Six times seven."), stream=stream)
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    got = ask(h, stream, user("6*7?"), reasoning_effort="medium", response_format=fmt)
    assert json.loads(got.text) == {"answer": 42}
    assert got.reasoning() == "Six times seven."
    body = h.last()
    assert body["thinking"] == {"type": "enabled", "token_budget": 8192}
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}


def test_a_refusal_sends_nothing(h: Harness) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        h.client().chat.completions.create(model=MODEL, messages=user("x"), logprobs=True)
    assert info.value.param == "logprobs" and "not translated" in info.value.message
    assert h.sent() == []


def test_a_429_keeps_its_retry_after(h: Harness) -> None:
    h.fail("rate_limited", "solo")
    with pytest.raises(openai.RateLimitError) as info:
        h.client().chat.completions.create(model=SOLO, messages=user("hurry"))
    assert info.value.response.headers["retry-after"] == str(RETRY_AFTER)
    assert ERROR_MESSAGE in info.value.message


def test_an_error_ending_before_content_fails_over(h: Harness) -> None:
    h.stream_error(after=0)
    chunks = raw_chunks(h, user("go"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: go"
    assert [s.channel for s in h.sent()] == ["a", "b"]


def test_an_error_ending_after_content_ends_the_stream_with_an_error(h: Harness) -> None:
    gate = threading.Event()
    h.pause_after_content(gate, then="error")
    seen = ""
    try:
        stream = h.client().chat.completions.create(model=MODEL, messages=user("go"), stream=True)
        gate.set()
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                seen += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    finally:
        gate.set()
    assert seen == "part0 part1 "
    assert ERROR_MESSAGE in str(info.value)
    assert [s.channel for s in h.sent()] == ["a"]
