"""The fake Cohere upstream is faithful: the official ``cohere`` SDK (``ClientV2``), pointed at
it, parses what it sends (checked strictly: no key the SDK types do not know, except the
``message-start`` lists wire-formats.md §7 allows); its failures surface as the SDK's error
classes; raw-wire checks pin the SSE framing the SDK would forgive."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import cohere
import httpx
import pytest
from cohere.core.api_error import ApiError

from tests.dialects.test_cohere_fixtures import START_EXTRAS, assert_strict, check_stream
from tests.fakes.cohere_upstream import (
    CEcho,
    CFail,
    CReply,
    CStreamError,
    EmptyStream,
    FakeCohere,
    Refuse,
    StreamThenDie,
)

KEY = "co-test-key-0001"
MODEL = "command-a-03-2025"
HELLO: Any = [{"role": "user", "content": "hello there world"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]
NO_RETRIES: Any = {"max_retries": 0}


@pytest.fixture
def fake() -> Iterator[FakeCohere]:
    with FakeCohere(models=(MODEL, "command-r7b-12-2024"), api_key=KEY) as f:
        yield f
    assert f.errors == []


@pytest.fixture
def client(fake: FakeCohere) -> cohere.ClientV2:
    return cohere.ClientV2(api_key=KEY, base_url=fake.url, timeout=5.0, log_warning_experimental_features=False)


def chat(client: cohere.ClientV2, **kwargs: Any) -> Any:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", HELLO)
    return client.chat(request_options=NO_RETRIES, **kwargs)


def stream(client: cohere.ClientV2, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", HELLO)
    events = list(client.chat_stream(request_options=NO_RETRIES, **kwargs))
    for event in events:
        assert_strict(event, event.type, START_EXTRAS if event.type == "message-start" else frozenset())
    return events


def raw_post(fake: FakeCohere, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One request through the stdlib client (it de-chunks but forgives nothing in the SSE bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        sent = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        sent.update(headers or {})
        conn.request("POST", "/v2/chat", json.dumps(body), {k: v for k, v in sent.items() if v})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read()
    finally:
        conn.close()


# ---- happy paths --------------------------------------------------------------------------------


def test_non_stream_echo(fake: FakeCohere, client: cohere.ClientV2) -> None:
    response = chat(client, max_tokens=64, temperature=0.2, p=0.9, k=40)
    assert_strict(response)
    assert response.finish_reason == "COMPLETE"
    assert response.message.content is not None
    assert [(c.type, c.text) for c in response.message.content] == [("text", "echo: hello there world")]
    assert response.usage is not None and response.usage.tokens is not None and response.usage.billed_units is not None
    assert (response.usage.tokens.input_tokens, response.usage.tokens.output_tokens) == (3, 4)
    assert response.usage.billed_units.input_tokens == 0  # 3 words minus the unbilled template
    [request] = fake.chat_requests
    assert request.path == "/v2/chat" and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["stream"] is False and request.json["p"] == 0.9 and request.json["k"] == 40


def test_a_reply_with_thinking_plan_and_parallel_calls(fake: FakeCohere, client: cohere.ClientV2) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    fake.script(CReply(thinking="Two cities.", tool_plan="Look both up.", tool_calls=calls, cached=2))
    response = chat(client, tools=TOOLS)
    assert_strict(response)
    assert response.finish_reason == "TOOL_CALL"
    assert response.message.tool_plan == "Look both up."
    assert response.message.content is not None and response.message.content[0].type == "thinking"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in response.message.tool_calls or []] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    ids = [c.id for c in response.message.tool_calls or []]
    assert len(set(ids)) == 2 and all(i.startswith("get_weather_") for i in ids)
    assert response.usage is not None and response.usage.cached_tokens == 2


def test_stream_of_text(fake: FakeCohere, client: cohere.ClientV2) -> None:
    fake.script(CReply(text="Sunny and mild today.", usage=(205, 4)))
    events = stream(client)
    kinds = [e.type for e in events]
    assert kinds[0] == "message-start" and kinds[1] == "content-start" and kinds[-1] == "message-end"
    assert "".join(e.delta.message.content.text for e in events if e.type == "content-delta") == "Sunny and mild today."
    end = events[-1]
    assert end.delta.finish_reason == "COMPLETE"
    assert end.delta.usage.tokens.input_tokens == 205 and end.delta.usage.billed_units.input_tokens == 202
    assert fake.chat_requests[0].json["stream"] is True


def test_stream_of_tool_calls(fake: FakeCohere, client: cohere.ClientV2) -> None:
    args = {"city": "Oslo", "note": "long enough to be cut into three fragments"}
    fake.script(CReply(tool_plan="I will look it up.", tool_calls=[("get_weather", args), ("get_time", {})]))
    events = stream(client, tools=TOOLS)
    plan = "".join(e.delta.message.tool_plan for e in events if e.type == "tool-plan-delta")
    assert plan == "I will look it up."
    starts = [e for e in events if e.type == "tool-call-start"]
    assert [(e.index, e.delta.message.tool_calls.function.name) for e in starts] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    fragments = [
        e.delta.message.tool_calls.function.arguments for e in events if e.type == "tool-call-delta" and e.index == 0
    ]
    assert len(fragments) == 3 and json.loads("".join(fragments)) == args
    assert [e.index for e in events if e.type == "tool-call-end"] == [0, 1]
    assert events[-1].delta.finish_reason == "TOOL_CALL"


def test_echo_obeys_a_required_tool_choice(fake: FakeCohere, client: cohere.ClientV2) -> None:
    fake.script(CEcho(tool_arguments={"tz": "UTC"}))
    response = chat(client, tools=TOOLS[1:], tool_choice="REQUIRED")
    assert response.finish_reason == "TOOL_CALL"
    [call] = response.message.tool_calls or []
    assert call.function is not None and (call.function.name, call.function.arguments) == ("get_time", '{"tz": "UTC"}')
    none = chat(client, tools=TOOLS, tool_choice="NONE")
    assert none.finish_reason == "COMPLETE" and not none.message.tool_calls


def test_the_raw_stream_is_named_events_then_done(fake: FakeCohere) -> None:
    fake.script(CReply(text="a b", thinking="t", tool_plan="p", tool_calls=[("get_time", {})]))
    status, content_type, raw = raw_post(fake, {"model": MODEL, "messages": HELLO, "stream": True, "tools": TOOLS})
    assert status == 200 and content_type == "text/event-stream"
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    check_stream(raw)  # every data line is its SDK event type, and event: == type


# ---- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, cohere.BadRequestError),
        (401, cohere.UnauthorizedError),
        (403, cohere.ForbiddenError),
        (404, cohere.NotFoundError),
        (422, cohere.UnprocessableEntityError),
        (429, cohere.TooManyRequestsError),
        (498, cohere.InvalidTokenError),
        (499, cohere.ClientClosedRequestError),
        (500, cohere.InternalServerError),
        (501, cohere.NotImplementedError),
        (503, cohere.ServiceUnavailableError),
        (504, cohere.GatewayTimeoutError),
    ],
)
def test_errors_surface_as_the_sdk_classes(
    fake: FakeCohere, client: cohere.ClientV2, status: int, error: type[ApiError]
) -> None:
    fake.script(CFail(status, message="the fake says no", headers={"retry-after": "7"}))
    with pytest.raises(error) as info:
        chat(client)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["message"] == "the fake says no"
    assert info.value.headers is not None and info.value.headers["retry-after"] == "7"


def test_errors_on_a_streaming_request(fake: FakeCohere, client: cohere.ClientV2) -> None:
    fake.script(CFail(429))
    with pytest.raises(cohere.TooManyRequestsError) as info:
        stream(client)
    assert isinstance(info.value.body, dict) and "Trial key" in info.value.body["message"]


def test_keys_are_checked(fake: FakeCohere) -> None:
    wrong = cohere.ClientV2(api_key="co-wrong", base_url=fake.url, timeout=5.0)
    with pytest.raises(cohere.UnauthorizedError) as info:
        wrong.chat(model=MODEL, messages=HELLO, request_options=NO_RETRIES)
    assert isinstance(info.value.body, dict) and info.value.body["message"] == "invalid api token"
    status, _, body = raw_post(fake, {"model": MODEL, "messages": HELLO}, {"authorization": ""})
    assert status == 401 and json.loads(body)["message"] == "no api key supplied"
    assert fake.pending_scripts == 0


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"tool_choice": "AUTO", "tools": TOOLS}, "tool_choice must be one of"),
        ({"tool_choice": "REQUIRED"}, "needs tools"),
        ({"stop_sequences": list("abcdef")}, "at most 5"),
        ({"response_format": {"type": "json_object"}, "tools": TOOLS}, "not supported with tools"),
        ({"messages": [{"role": "developer", "content": "x"}]}, "role must be one of"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id is required"),
        ({"messages": []}, "non-empty list"),
    ],
)
def test_bad_bodies_are_400(fake: FakeCohere, fields: dict[str, Any], says: str) -> None:
    status, _, body = raw_post(fake, {"model": MODEL, "messages": HELLO, **fields})
    assert status == 400 and says in json.loads(body)["message"]


def test_an_unknown_model_is_404(client: cohere.ClientV2) -> None:
    with pytest.raises(cohere.NotFoundError) as info:
        chat(client, model="command-nope")
    assert isinstance(info.value.body, dict) and "command-nope" in info.value.body["message"]


def test_a_stream_that_fails_ends_with_an_error_message_end(fake: FakeCohere, client: cohere.ClientV2) -> None:
    fake.script(CStreamError(after=2, message="model overloaded"))
    events = stream(client)
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert text == "part0 part1 "
    assert events[-1].type == "message-end"
    assert (events[-1].delta.finish_reason, events[-1].delta.error) == ("ERROR", "model overloaded")
    fake.script(CStreamError(message="model overloaded", status=503))
    with pytest.raises(cohere.ServiceUnavailableError):
        chat(client)


def test_a_stream_cut_short_breaks_the_sdk_read(fake: FakeCohere, client: cohere.ClientV2) -> None:
    fake.script(StreamThenDie(chunks=2, how="fin"))
    with pytest.raises(httpx.RemoteProtocolError):
        stream(client)
    fake.script(StreamThenDie(chunks=1, how="end"))
    events = list(client.chat_stream(model=MODEL, messages=HELLO, request_options=NO_RETRIES))
    assert [e.type for e in events] == ["message-start", "content-start", "content-delta"]  # no message-end


def test_empty_stream_and_refused_connection(fake: FakeCohere, client: cohere.ClientV2) -> None:
    fake.script(EmptyStream(done=True))
    assert stream(client) == []
    fake.script(Refuse())
    with pytest.raises(httpx.TransportError):
        chat(client)
