"""The fake Anthropic upstream is faithful: the official ``anthropic`` SDK, pointed at it, parses
what it sends (checked strictly: no key the SDK types do not know); its failures surface as the
SDK errors a real outage would cause; raw-wire checks pin the SSE framing the SDK would forgive."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pydantic
import pytest
from anthropic.types import Message, MessageParam, RawMessageStreamEvent, ToolParam

from tests.fakes.anthropic_upstream import (
    AEcho,
    AFail,
    AReply,
    AStreamError,
    EmptyStream,
    FakeAnthropic,
    Hang,
    Refuse,
    Stall,
    StreamThenDie,
)

KEY = "sk-ant-test-0001"
MODEL = "claude-sonnet-4-6"
HELLO: list[MessageParam] = [{"role": "user", "content": "hello there world"}]
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "get_time", "input_schema": {"type": "object"}},
]
EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)


def assert_strict(obj: Any, where: str = "") -> None:
    """No key anywhere in a parsed SDK object that its type does not declare."""
    if isinstance(obj, pydantic.BaseModel):
        assert not obj.model_extra, f"{where or type(obj).__name__}: unknown keys {obj.model_extra}"
        for name in type(obj).model_fields:
            assert_strict(getattr(obj, name), f"{where}.{name}")
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            assert_strict(item, f"{where}[{i}]")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(models=(MODEL, "claude-haiku-4-5"), api_key=KEY) as f:
        yield f
    assert f.errors == []


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0, timeout=5.0)
    yield c
    c.close()


def create(client: anthropic.Anthropic, **kwargs: Any) -> Message:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_tokens", 256)
    kwargs.setdefault("messages", HELLO)
    message: Message = client.messages.create(**kwargs)
    return message


def text_of(message: Message) -> str:
    block = message.content[0]
    assert block.type == "text"
    return block.text


def body_of(error: anthropic.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, dict)
    return error.body


def stream_events(client: anthropic.Anthropic, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_tokens", 256)
    kwargs.setdefault("messages", HELLO)
    return list(client.messages.create(stream=True, **kwargs))


def raw_post(
    fake: FakeAnthropic, body: dict[str, Any], headers: dict[str, str] | None = None, path: str = "/v1/messages"
) -> tuple[int, bytes]:
    """One request through the stdlib client (it de-chunks but forgives nothing in the SSE bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        sent = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
        sent.update(headers or {})
        conn.request("POST", path, json.dumps(body), {k: v for k, v in sent.items() if v})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- happy paths --------------------------------------------------------------------------------


def test_non_stream_echo_is_a_full_message(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, system="be brief", messages=HELLO)
    message = raw.parse()
    assert_strict(message)
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL and message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "echo: hello there world")]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 4)
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (0, 0)
    assert raw.http_response.headers["request-id"].startswith("req_")
    assert raw.http_response.headers["content-type"] == "application/json"


def test_parallel_tool_uses_non_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(
        AReply(text="Checking both.", tool_uses=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})])
    )
    message = create(client, tools=TOOLS)
    assert_strict(message)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    assert len({u.id for u in uses}) == 2 and all(u.id.startswith("toolu_") for u in uses)


def test_stream_helper_accumulates_thinking_text_and_tools(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(
        AReply(
            text="Checking both cities.",
            thinking=("Two cities, two lookups.", "EqQBCkYIBxgCKkBzZmFrZXNpZw=="),
            tool_uses=[("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Oslo", "fmt": "24h"})],
            usage=(512, 96),
            cache_read=1024,
        )
    )
    with client.messages.stream(model=MODEL, max_tokens=4096, messages=HELLO, tools=TOOLS) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, weather, clock = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Two cities, two lookups."
    assert thinking.signature == "EqQBCkYIBxgCKkBzZmFrZXNpZw=="
    assert text.type == "text" and text.text == "Checking both cities."
    assert weather.type == "tool_use" and weather.input == {"city": "Paris"}
    assert clock.type == "tool_use" and clock.input == {"tz": "Europe/Oslo", "fmt": "24h"}
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (512, 96, 1024)


def test_stream_event_sequence_is_anthropic(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(AReply(text="Sunny and mild.", tool_uses=[("get_weather", {"city": "Paris", "unit": "celsius"})]))
    events = stream_events(client, tools=TOOLS)
    for event in events:
        assert_strict(event)
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start"
    start = events[0].message
    assert start.content == [] and start.stop_reason is None and start.usage.input_tokens == 3
    texts = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert len(texts) == 3 and "".join(texts) == "Sunny and mild."
    fragments = [
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert fragments[0] == "" and len(fragments) >= 3, "input arrives as '' then several fragments"
    assert json.loads("".join(fragments)) == {"city": "Paris", "unit": "celsius"}
    tool_start = next(e for e in events if e.type == "content_block_start" and e.content_block.type == "tool_use")
    assert tool_start.index == 1 and tool_start.content_block.input == {}
    assert [e.index for e in events if e.type == "content_block_stop"] == [0, 1]
    delta = events[-2]
    assert delta.delta.stop_reason == "tool_use" and delta.usage.output_tokens > 1


def test_stream_wire_bytes_are_named_sse_events(fake: FakeAnthropic) -> None:
    fake.script(AReply(text="hé there", thinking=("hmm", "c2ln")))
    status, data = raw_post(fake, {"model": MODEL, "max_tokens": 64, "messages": HELLO, "stream": True})
    assert status == 200 and data.endswith(b"\n\n")
    blocks = data.decode().split("\n\n")[:-1]
    names = []
    for block in blocks:
        event_line, data_line = block.split("\n")
        name = event_line.removeprefix("event: ")
        payload = json.loads(data_line.removeprefix("data: "))
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert payload["type"] == name
        if name != "ping":  # the SDK drops pings before parsing; they are not a stream-event type
            assert_strict(EVENTS.validate_python(payload), name)
        names.append(name)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    deltas = [json.loads(b.split("\n")[1][6:])["delta"] for b in blocks if b.startswith("event: content_block_delta")]
    assert [d["type"] for d in deltas].count("signature_delta") == 1
    assert deltas.index({"type": "signature_delta", "signature": "c2ln"}) < [d["type"] for d in deltas].index(
        "text_delta"
    )
    assert "hé" in data.decode(), "non-ASCII is sent raw, not escaped"


@pytest.mark.parametrize(
    ("tool_choice", "expected"), [({"type": "any"}, "get_weather"), ({"type": "tool", "name": "get_time"}, "get_time")]
)
def test_echo_obeys_forced_tool_choice(client: anthropic.Anthropic, tool_choice: Any, expected: str) -> None:
    message = create(client, tools=TOOLS, tool_choice=tool_choice)
    assert message.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None)) for b in message.content] == [("tool_use", expected)]
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO, tools=TOOLS, tool_choice=tool_choice) as s:
        final = s.get_final_message()
    assert [getattr(b, "input", None) for b in final.content] == [{}]


def test_echo_skips_tool_result_turns(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.default = AEcho()
    messages: list[MessageParam] = [
        {"role": "user", "content": [{"type": "text", "text": "weather"}, {"type": "text", "text": "please"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
    ]
    assert text_of(create(client, messages=messages)) == "echo: weather please"


def test_models_list_retrieve_and_count_tokens(client: anthropic.Anthropic) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == [MODEL, "claude-haiku-4-5"]
    for m in models:
        assert_strict(m)
    assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")
    assert client.messages.count_tokens(model=MODEL, messages=HELLO, system="be brief").input_tokens == 5


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (504, anthropic.GatewayTimeoutError, "timeout_error"),
    ],
)
def test_fail_maps_to_sdk_error(
    fake: FakeAnthropic,
    client: anthropic.Anthropic,
    status: int,
    error: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    fake.script(AFail(status, headers={"retry-after": "3"}))
    with pytest.raises(error) as info:
        stream_events(client)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == error_type and info.value.body["request_id"].startswith("req_")
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.request_id == info.value.response.headers["request-id"]


def test_overloaded_is_an_internal_server_error_in_the_sdk(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(AFail(529))
    with pytest.raises(anthropic.InternalServerError) as info:
        create(client)
    assert type(info.value) is anthropic.OverloadedError
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": body_of(info.value)["request_id"],
    }


def test_wrong_key_is_rejected_before_consuming_a_behaviour(fake: FakeAnthropic) -> None:
    fake.script(AReply(text="kept"))
    wrong = anthropic.Anthropic(base_url=fake.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        create(wrong)
    wrong.close()
    assert body_of(info.value)["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert fake.pending_scripts == 1


def test_x_api_key_header_and_missing_version(fake: FakeAnthropic) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO}
    status, data = raw_post(fake, body)
    assert status == 200 and json.loads(data)["content"][0]["text"] == "echo: hello there world"
    status, data = raw_post(fake, body, {"anthropic-version": ""})
    assert status == 400
    assert json.loads(data)["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    status, data = raw_post(fake, body, {"x-api-key": ""})
    assert status == 401 and json.loads(data)["error"]["type"] == "authentication_error"


def test_body_checks_are_400s(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": MODEL, "messages": HELLO}, "max_tokens: Field required"),
        ({"max_tokens": 8, "messages": HELLO}, "model: Field required"),
        ({"model": MODEL, "max_tokens": 8, "messages": []}, "messages: at least one message is required"),
        ({"model": MODEL, "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ]
    for body, message in cases:
        status, data = raw_post(fake, body)
        assert status == 400 and json.loads(data)["error"]["message"].startswith(message)
    with pytest.raises(anthropic.NotFoundError) as info:
        create(client, model="claude-nope")
    assert body_of(info.value)["error"]["type"] == "not_found_error"


def test_sampling_fields_are_rejected_only_under_2026_10_21(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        create(client, extra_body={"temperature": 0.5})
    assert fake.message_requests[-1].headers["anthropic-version"] == "2026-10-21"
    pinned = client.with_options(default_headers={"anthropic-version": "2023-06-01"})
    assert text_of(create(pinned, extra_body={"temperature": 0.5})) == "echo: hello there world"
    assert fake.message_requests[-1].headers["anthropic-version"] == "2023-06-01"


def test_stream_error_event_raises_in_the_sdk(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(AStreamError(after=2))
    got: list[Any] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        got.extend(client.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True))
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert type(info.value) is anthropic.APIStatusError and info.value.status_code == 200, "the SDK's mapping"
    assert [e.type for e in got] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    fake.script(AStreamError(error_type="api_error", message="boom"))
    with pytest.raises(anthropic.InternalServerError):
        create(client)


def test_stream_error_wire_has_no_message_stop(fake: FakeAnthropic) -> None:
    fake.script(AStreamError(after=0))
    status, data = raw_post(fake, {"model": MODEL, "max_tokens": 8, "messages": HELLO, "stream": True})
    assert status == 200
    names = [line[7:] for line in data.decode().split("\n") if line.startswith("event: ")]
    assert names == ["message_start", "error"]


# ---- recording, scripting, hangs, broken connections -------------------------------------------------


def test_requests_are_recorded_with_headers_and_body(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    create(client, model="claude-haiku-4-5", max_tokens=32, metadata={"user_id": "u1"})
    (request,) = fake.message_requests
    assert request.path == "/v1/messages" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "messages": HELLO,
        "metadata": {"user_id": "u1"},
    }


def test_per_model_script_wins_over_global_queue(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(AReply(text="global"))
    fake.script_for("claude-haiku-4-5", AReply(text="haiku"))
    texts = [text_of(create(client, model=m)) for m in ("claude-haiku-4-5", "claude-haiku-4-5", MODEL)]
    assert texts == ["haiku", "global", "echo: hello there world"]


def test_hang_then_reply_runs_on_release(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(Hang(then=AReply(text="after release")))
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(text_of(create(client))))
    worker.start()
    assert fake.wait_for(lambda f: f.parked == 1)
    assert result == []
    assert fake.release() == 1
    worker.join(timeout=5)
    assert result == ["after release"]


def test_hang_times_out_in_the_sdk(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(Hang())
    with pytest.raises(anthropic.APITimeoutError):
        create(client.with_options(timeout=0.3))
    assert fake.wait_for(lambda f: f.connections[0].peer_closed_first)


def test_refuse_resets_the_connection(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(Refuse())
    with pytest.raises(anthropic.APIConnectionError):
        create(client)
    assert fake.connections[0].reset_by_us


@pytest.mark.parametrize(("how", "error"), [("reset", httpx2.ReadError), ("fin", httpx2.RemoteProtocolError)])
def test_stream_then_die_after_text_deltas(
    fake: FakeAnthropic, client: anthropic.Anthropic, how: Any, error: type[Exception]
) -> None:
    """Mid-stream transport failures reach the caller unwrapped (the SDK's own behaviour)."""
    fake.script(StreamThenDie(chunks=2, how=how))
    got: list[Any] = []
    with pytest.raises(error):
        got.extend(client.messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True))
    assert [e.type for e in got] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    assert [e.delta.text for e in got[2:]] == ["part0 ", "part1 "]


def test_stream_then_end_is_a_silently_truncated_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(StreamThenDie(chunks=1, how="end"), EmptyStream())
    assert [e.type for e in stream_events(client)] == ["message_start", "content_block_start", "content_block_delta"]
    assert stream_events(client) == []


def test_stall_mid_stream_times_out(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script(Stall(chunks=1))
    got: list[Any] = []
    with pytest.raises(httpx2.ReadTimeout):  # mid-stream, the SDK does not wrap it
        got.extend(
            client.with_options(timeout=0.3).messages.create(model=MODEL, max_tokens=8, messages=HELLO, stream=True)
        )
    assert len(got) == 3
