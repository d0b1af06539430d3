"""Chat through a real unigate, driven by the official ``openai`` SDK, against fake upstreams."""

from __future__ import annotations

import asyncio
import gc
import json
from collections import Counter
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import (
    Fail,
    FakeOpenAI,
    Hang,
    Refuse,
    Reply,
    StreamError,
    StreamThenDie,
)
from tests.gateway.harness import RunningGateway, run_gateway
from unigate.http.disconnect import DisconnectWatch

CLIENT = "sk-client-canary-7f3a9c2e"
UP_A = "sk-upstream-a-canary-91bd"
UP_B = "sk-upstream-b-canary-c4e0"


@pytest.fixture
def two() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(api_key=UP_A) as a, FakeOpenAI(api_key=UP_B) as b:
        yield a, b


def config(a: FakeOpenAI, b: FakeOpenAI, extra_keys: str = "") -> str:
    return f"""
providers:
  - provider: alpha
    base_url: {a.base_url}
    api: {UP_A}
    model:
      - gpt-4o
      - gpt-4o-mini: mini
  - provider: beta
    base_url: {b.base_url}/chat/completions
    api: {UP_B}
    model:
      - gpt-4o
api_keys:
  - api: {CLIENT}
    model: [all]
{extra_keys}
"""


@pytest.fixture
def gw(two: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with run_gateway(config(*two)) as gateway:
        yield gateway


def test_non_stream_chat(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = two
    resp = gw.client(CLIENT).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello there"}]
    )
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-4o"
    assert resp.usage is not None and resp.usage.total_tokens > 0
    sent = a.chat_requests[-1]
    assert sent.headers["authorization"] == f"Bearer {UP_A}"
    assert CLIENT not in sent.body.decode() and CLIENT not in json.dumps(sent.headers)
    assert b.chat_requests == []


def test_stream_chat_with_usage(gw: RunningGateway) -> None:
    stream = gw.client(CLIENT).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_stream_raw_bytes_end_with_done(gw: RunningGateway) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream(
        "POST", gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"}
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-unigate-channel"] == "alpha"
        raw = b"".join(resp.iter_bytes())
    assert raw.endswith(b"data: [DONE]\n\n")
    assert raw.count(b"[DONE]") == 1


def test_alias_is_translated_both_ways(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, _ = two
    client = gw.client(CLIENT)
    resp = client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}])
    assert a.chat_requests[-1].json["model"] == "gpt-4o-mini"
    assert resp.model == "mini"
    chunks = list(
        client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert {c.model for c in chunks} == {"mini"}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_tool_calls_parallel_non_stream_and_stream(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, _ = two
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]
    calls = [("get_weather", '{"city": "Paris"}'), ("get_time", '{"tz": "CET"}')]
    a.script(Reply(tool_calls=calls), Reply(tool_calls=calls))
    client = gw.client(CLIENT)
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,  # type: ignore[arg-type]
    )
    got = [(c.function.name, json.loads(c.function.arguments)) for c in resp.choices[0].message.tool_calls or []]
    assert got == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert a.chat_requests[-1].json["tools"] == tools
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_completion()
    streamed = [(c.function.name, json.loads(c.function.arguments)) for c in final.choices[0].message.tool_calls or []]
    assert streamed == got


def test_image_parts_and_unknown_fields_reach_upstream_unchanged(
    gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, _ = two
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            ],
        }
    ]
    gw.client(CLIENT).chat.completions.create(
        model="gpt-4o",
        messages=messages,  # type: ignore[arg-type]
        stop=["END"],
        seed=7,
        logprobs=True,
        response_format={"type": "json_object"},
        extra_body={"vendor_flag": {"x": 1}},
    )
    sent = a.chat_requests[-1].json
    assert sent["messages"] == messages
    assert sent["stop"] == ["END"] and sent["seed"] == 7 and sent["logprobs"] is True
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["vendor_flag"] == {"x": 1}


def test_failover_on_500_then_second_channel_serves(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = two
    a.script(Fail(500))
    raw = gw.client(CLIENT).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "fo"}]
    )
    assert raw.parse().choices[0].message.content == "echo: fo"
    assert raw.headers["x-unigate-channel"] == "beta"
    assert raw.headers["x-unigate-attempts"] == "2"
    assert len(a.chat_requests) == 1 and len(b.chat_requests) == 1
    assert b.chat_requests[0].path == "/v1/chat/completions"  # full-endpoint base_url works


def test_failover_when_connection_refused(two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = two
    dead = FakeOpenAI()
    dead_url = dead.base_url
    dead.stop()
    text = config(a, b).replace(a.base_url, dead_url)
    with run_gateway(text) as gateway:
        resp = gateway.client(CLIENT).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "r"}]
        )
    assert resp.choices[0].message.content == "echo: r"
    assert len(b.chat_requests) == 1


def test_failover_on_reset_and_on_stream_dying_before_content(
    gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = two
    a.script(Refuse(), StreamThenDie(chunks=0, how="reset"))
    client = gw.client(CLIENT)
    assert client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "1"}])
    chunks = list(
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "2"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: 2"
    assert len(b.chat_requests) == 2


def test_stream_failing_after_content_ends_with_error_event(
    gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = two
    a.script(StreamThenDie(chunks=2, how="reset"))
    stream = gw.client(CLIENT).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert b.chat_requests == []  # committed: never retried


def test_in_band_error_before_content_fails_over(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = two
    a.script(StreamError(after=0))
    chunks = list(
        gw.client(CLIENT).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "e"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: e"
    assert len(b.chat_requests) == 1


def test_client_400_is_not_retried_and_keeps_upstream_message(
    gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = two
    a.script(Fail(400, message="Invalid value for 'temperature'", code="invalid_value"))
    with pytest.raises(openai.BadRequestError) as info:
        gw.client(CLIENT).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "temperature" in info.value.message
    assert b.chat_requests == []


def test_all_channels_failing_keeps_last_upstream_status(
    gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    a, b = two
    a.script(Fail(500))
    b.script(Fail(503, message="beta is down"))
    with pytest.raises(openai.InternalServerError) as info:
        gw.client(CLIENT).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert "beta is down" in info.value.message
    body = info.value.response.text
    assert UP_A not in body and UP_B not in body


def test_upstream_error_echoing_the_key_is_redacted(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = two
    a.script(Fail(401, message=f"Incorrect API key provided: {UP_A}"))
    b.script(Fail(401, message=f"Incorrect API key provided: {UP_B}"))
    with pytest.raises(openai.APIStatusError) as info:
        gw.client(CLIENT).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    text = info.value.response.text
    assert UP_A not in text and UP_B not in text and "canary" not in text


def test_auto_retry_false_uses_one_channel(two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = two
    text = config(a, b).replace("    model: [all]\n", "    model: [all]\n    preferences:\n      AUTO_RETRY: false\n")
    a.script(Fail(500))
    with run_gateway(text) as gateway, pytest.raises(openai.InternalServerError):
        gateway.client(CLIENT).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert b.chat_requests == []


def test_client_disconnect_cancels_upstream(gw: RunningGateway, two: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, _ = two
    a.script(Hang())
    with pytest.raises(openai.APITimeoutError):
        gw.client(CLIENT, timeout=0.5).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert a.wait_for(lambda f: any(c.peer_closed_first for c in f.connections), timeout=10)


def test_requests_leave_no_reference_cycles(gw: RunningGateway) -> None:
    """The disconnect watcher used to end each request cancelled, with a CancelledError whose
    traceback held the watcher, which held its task: a reference cycle per request, left to the
    cyclic collector (docs/performance.md). Plain and streamed requests must leave none."""
    client = gw.client(CLIENT)

    def traffic() -> None:
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            list(
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )

    traffic()  # warm: pools and caches made once are not what this test is about
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        traffic()
        gc.collect()
        found = Counter(type(o).__name__ for o in gc.garbage if isinstance(o, DisconnectWatch | asyncio.CancelledError))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert found == Counter()
