"""The fake OpenAI upstream is faithful: the official ``openai`` SDK, pointed at it, parses what it
sends; its misbehaviours surface as the SDK errors a real outage would cause; raw-wire checks
(http.client, sockets) pin the framing the SDK would forgive."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolParam

from tests.fakes.openai_upstream import (
    BadJSON,
    Delay,
    EmptyStream,
    Fail,
    FakeOpenAI,
    FakeOpenAIFactory,
    Gate,
    Hang,
    Raw,
    RawStream,
    Refuse,
    Reply,
    Stall,
    StreamError,
    StreamThenDie,
)

KEY = "sk-up-test-0001"
HELLO: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there world"},
]
WEATHER: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("gpt-4o", "gpt-4o-mini"), api_key=KEY) as f:
        yield f
    assert f.errors == []


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=5.0)
    yield c
    c.close()


def stream_chunks(client: openai.OpenAI, **kwargs: Any) -> list[ChatCompletionChunk]:
    kwargs.setdefault("model", "gpt-4o")
    kwargs.setdefault("messages", HELLO)
    return list(client.chat.completions.create(stream=True, **kwargs))


def raw_post(fake: FakeOpenAI, body: dict[str, Any], path: str = "/v1/chat/completions") -> tuple[int, bytes]:
    """One request through the stdlib client (it de-chunks but forgives nothing in the SSE bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        conn.request("POST", path, json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- happy paths --------------------------------------------------------------------------------


def test_non_stream_echo_is_a_full_chat_completion(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o"
    assert completion.system_fingerprint
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", "echo: hello there world")
    assert choice.message.refusal is None and choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 4)
    assert completion.usage.total_tokens == 9
    wire = json.loads(raw.http_response.content)
    assert wire["choices"][0]["logprobs"] is None
    assert wire["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert wire["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert raw.http_response.headers["content-type"] == "application/json"
    assert raw.http_response.headers["x-request-id"].startswith("req_")


def test_echo_joins_text_parts_of_the_last_user_message(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    completion = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.choices[0].message.content == "echo: a b"


def test_stream_with_usage_has_openai_chunk_sequence(client: openai.OpenAI) -> None:
    chunks = stream_chunks(client, stream_options={"include_usage": True})
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"gpt-4o"}
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    texts = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert len(texts) >= 3
    assert "".join(t or "" for t in texts) == "echo: hello there world"
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["stop"]
    assert chunks[-2].choices[0].delta.content is None
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, 4)
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_wire_bytes_are_exact_sse(fake: FakeOpenAI) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": True}
    status, data = raw_post(fake, body)
    assert status == 200
    events = data.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    payloads = [json.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert all(e.startswith(b"data: {") for e in events[:-2])
    assert all("usage" not in p for p in payloads), "no usage key without include_usage"
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert payloads[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert {p["model"] for p in payloads} == {"gpt-4o-mini"}
    assert all(p["system_fingerprint"] and isinstance(p["created"], int) for p in payloads)


def test_stream_helper_accumulates_text(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="gpt-4o", messages=HELLO) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "echo: hello there world"
    assert final.choices[0].finish_reason == "stop"


def test_parallel_tool_calls_streamed_assemble_in_the_sdk(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    calls = [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Oslo", "unit": "c"}')]
    fake.script(Reply(tool_calls=calls))
    with client.chat.completions.stream(model="gpt-4o", messages=HELLO, tools=WEATHER) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    got = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert got == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo", "unit": "c"})]
    assert len({c.id for c in message.tool_calls}) == 2


def test_streamed_tool_call_deltas_open_then_fragment(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply(tool_calls=[("get_weather", '{"city": "Paris"}'), ("get_time", '{"tz": "CET"}')]))
    deltas = [tc for c in stream_chunks(client) for ch in c.choices for tc in ch.delta.tool_calls or []]
    for index, name in ((0, "get_weather"), (1, "get_time")):
        mine = [d for d in deltas if d.index == index]
        assert mine[0].id and mine[0].type == "function"
        assert mine[0].function is not None
        assert (mine[0].function.name, mine[0].function.arguments) == (name, "")
        assert len(mine) >= 3, "arguments arrive in several fragments"
        assert all(d.id is None and d.function and d.function.name is None for d in mine[1:])


def test_parallel_tool_calls_non_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply(tool_calls=[("get_weather", '{"city": "Paris"}'), ("get_time", "{}")]))
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=WEATHER)
    message = completion.choices[0].message
    assert message.content is None and completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    got = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]  # type: ignore[union-attr]
    assert got == [("get_weather", {"city": "Paris"}), ("get_time", {})]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [("required", "get_weather"), ({"type": "function", "function": {"name": "get_time"}}, "get_time")],
)
def test_echo_obeys_forced_tool_choice(client: openai.OpenAI, tool_choice: Any, expected: str) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=WEATHER, tool_choice=tool_choice)
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and [c.function.name for c in calls] == [expected]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {}  # type: ignore[union-attr]
    with client.chat.completions.stream(
        model="gpt-4o", messages=HELLO, tools=WEATHER, tool_choice=tool_choice
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"


def test_reply_overrides_reasoning_usage_model_finish(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    reply = Reply(
        text="Paris.",
        reasoning="think hard",
        usage=(11, 22),
        model="gpt-4o-2024-08-06",
        finish_reason="length",
        headers={"x-ratelimit-remaining-requests": "7"},
    )
    fake.script(reply, reply)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    completion = raw.parse()
    assert raw.http_response.headers["x-ratelimit-remaining-requests"] == "7"
    assert completion.model == "gpt-4o-2024-08-06" and completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.model_extra == {"reasoning_content": "think hard"}
    assert completion.usage is not None and completion.usage.total_tokens == 33
    chunks = stream_chunks(client, stream_options={"include_usage": True})
    kinds = [
        "reasoning" if (d.model_extra or {}).get("reasoning_content") else "content" if d.content else None
        for c in chunks
        for d in [c.choices[0].delta if c.choices else None]
        if d is not None
    ]
    assert [k for k in kinds if k] == ["reasoning", "reasoning", "content"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_embeddings_are_deterministic_in_both_encodings(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input=["Paris", "Oslo"])
    again = client.embeddings.create(model="text-embedding-3-small", input="Paris", dimensions=8)
    assert fake.requests[-1].json["encoding_format"] == "base64"  # the SDK's default
    assert [d.index for d in first.data] == [0, 1] and len(first.data[0].embedding) == 8
    assert first.data[0].embedding == again.data[0].embedding != first.data[1].embedding
    status, body = raw_post(fake, {"model": "e", "input": "Paris", "encoding_format": "float"}, "/v1/embeddings")
    vector = json.loads(body)["data"][0]["embedding"]
    assert status == 200 and vector == pytest.approx(first.data[0].embedding, abs=1e-6)


# ---- errors ---------------------------------------------------------------------------------------


def test_429_is_rate_limit_error_with_retry_after(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Fail(429, headers={"retry-after": "2"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, openai.AuthenticationError),
        (400, openai.BadRequestError),
        (403, openai.PermissionDeniedError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_fail_maps_to_sdk_error(
    fake: FakeOpenAI, client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    fake.script(Fail(status))
    with pytest.raises(error) as info:
        list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["message"]


def test_fail_with_html_body(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Fail(502, body=b"<html>bad gateway</html>", content_type="text/html"))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.response.headers["content-type"] == "text/html"
    assert info.value.body == "<html>bad gateway</html>"


def test_wrong_key_is_rejected_before_consuming_a_behaviour(fake: FakeOpenAI) -> None:
    fake.script(Reply(text="kept"))
    wrong = openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model="gpt-4o", messages=HELLO)
    wrong.close()
    assert info.value.body == {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert fake.pending_scripts == 1


def test_unknown_model_and_unknown_route_are_404(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-5-nope", messages=HELLO)
    assert info.value.code == "model_not_found"
    status, body = raw_post(fake, {}, "/v1/nothing/here")
    assert status == 404 and json.loads(body)["error"]["message"] == "Invalid URL (POST /v1/nothing/here)"


def test_chat_path_without_v1_prefix(fake: FakeOpenAI) -> None:
    bare = openai.OpenAI(base_url=f"http://127.0.0.1:{fake.port}", api_key=KEY, max_retries=0)
    assert bare.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content
    bare.close()
    assert fake.chat_requests[-1].path == "/chat/completions"


# ---- recording, scripting, connections --------------------------------------------------------------


def test_requests_are_recorded_with_headers_and_body(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    client.models.list()
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, temperature=0.5, user="u1")
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]
    (chat,) = fake.chat_requests
    assert chat.headers["authorization"] == f"Bearer {KEY}"
    assert chat.headers["content-type"] == "application/json"
    assert json.loads(chat.body) == chat.json
    assert chat.json == {"model": "gpt-4o-mini", "messages": HELLO, "temperature": 0.5, "user": "u1"}


def test_keep_alive_reuses_the_connection(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert len({r.connection_id for r in fake.chat_requests}) == 1
    assert fake.connections[0].requests == 3


def test_per_model_script_wins_over_global_queue(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply(text="global"))
    fake.script_for("gpt-4o-mini", Reply(text="mini"))
    texts = [
        client.chat.completions.create(model=m, messages=HELLO).choices[0].message.content
        for m in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o")
    ]
    assert texts == ["mini", "global", "echo: hello there world"]
    assert fake.pending_scripts == 0


def test_default_behaviour_is_settable(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.default = Reply(text="always")
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content == "always"


def test_chunked_request_body_is_accepted(fake: FakeOpenAI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    body = json.dumps({"model": "gpt-4o", "messages": HELLO}).encode()
    conn.request(
        "POST",
        "/v1/chat/completions",
        iter([body[:10], body[10:]]),
        {"authorization": f"Bearer {KEY}"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["choices"][0]["message"]["content"].startswith("echo")
    conn.close()
    assert fake.chat_requests[0].headers["transfer-encoding"] == "chunked"


def test_malformed_http_gets_400_and_close(fake: FakeOpenAI) -> None:
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = sock.makefile("rb").read()
    assert data.startswith(b"HTTP/1.1 400 ")


# ---- hangs, gates, broken connections ---------------------------------------------------------------


def test_hang_times_out_in_the_sdk_and_frees_promptly(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Hang())
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).chat.completions.create(model="gpt-4o", messages=HELLO)
    fake.release()
    assert fake.wait_for(lambda f: f.connections[0].closed_at is not None, timeout=2)
    assert time.monotonic() - started < 2.0
    assert fake.connections[0].bytes_out == 0


def test_hang_then_behaviour_runs_on_release(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Hang(then=Reply(text="after release")))
    result: list[str | None] = []
    worker = threading.Thread(
        target=lambda: result.append(
            client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content
        )
    )
    worker.start()
    assert fake.wait_for(lambda f: f.parked == 1)
    assert result == []
    assert fake.release() == 1
    worker.join(timeout=5)
    assert result == ["after release"]


def test_gate_orders_concurrent_requests(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    gate = threading.Event()
    fake.script_for("gpt-4o", Gate(gate, then=Reply(text="slow")))
    order: list[str] = []
    worker = threading.Thread(
        target=lambda: order.append(
            client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content or ""
        )
    )
    worker.start()
    assert fake.wait_for(lambda f: f.parked == 1)
    order.append(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content or "")
    assert order == ["echo: hello there world"]
    gate.set()
    worker.join(timeout=5)
    assert order == ["echo: hello there world", "slow"]


def test_delay_then_reply(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Delay(0.05, then=Reply(text="late")))
    started = time.monotonic()
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content == "late"
    assert time.monotonic() - started >= 0.05


def test_refuse_resets_the_connection(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Refuse())
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert fake.connections[0].reset_by_us and fake.connections[0].bytes_out == 0
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message.content


@pytest.mark.parametrize("how", ["reset", "fin"])
def test_stream_then_die_is_an_sdk_error_after_the_chunks(fake: FakeOpenAI, client: openai.OpenAI, how: Any) -> None:
    fake.script(StreamThenDie(chunks=2, how=how))
    got: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        got.extend(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert [c.choices[0].delta.content for c in got] == ["", "part0 ", "part1 "]
    assert not any(c.choices[0].finish_reason for c in got)


def test_stream_then_end_is_a_silently_truncated_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(StreamThenDie(chunks=3, how="end"))
    chunks = stream_chunks(client)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "part0 part1 part2 "
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_stream_then_die_on_non_stream_request(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(StreamThenDie(how="fin"))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)


def test_stall_mid_stream_times_out_after_chunks(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Stall(chunks=3))
    got: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APITimeoutError):
        got.extend(
            client.with_options(timeout=0.5).chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
        )
    assert len(got) == 4
    assert fake.wait_for(lambda f: f.connections[0].peer_closed_first)


def test_empty_stream_yields_no_chunks(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(EmptyStream(), EmptyStream(done=True))
    assert stream_chunks(client) == []
    assert stream_chunks(client) == []
    fake.script(EmptyStream())
    status, body = raw_post(fake, {"model": "gpt-4o", "messages": HELLO})
    assert (status, body) == (200, b"")


def test_bad_json_breaks_sdk_parsing(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(BadJSON(), BadJSON())
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    with pytest.raises(json.JSONDecodeError):
        stream_chunks(client)


def test_in_stream_error_event_raises_api_error(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    error = {"message": "overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    fake.script(StreamError(after=1, error=error))
    got: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError, match="overloaded") as info:
        got.extend(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert info.value.body == error
    assert [c.choices[0].delta.content for c in got] == ["", "part0 "]


def test_raw_stream_pieces_reach_the_client_verbatim(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    chunk = {
        "id": "chatcmpl-r",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "hé"}, "finish_reason": None}],
    }
    text = b"data:" + json.dumps(chunk, ensure_ascii=False).encode() + b"\r\n\r\n"
    cut = text.index("é".encode()) + 1  # split inside the UTF-8 sequence
    fake.script(RawStream([text[:cut], text[cut:], b": keep-alive\n\n", b"data: [DONE]\n\n"]))
    assert [c.choices[0].delta.content for c in stream_chunks(client)] == ["hé"]


def test_raw_response_bytes(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    body = b'{"error": {"message": "teapot", "type": "x", "param": null, "code": null}}'
    head = b"HTTP/1.1 418 I'm a Teapot\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    fake.script(Raw(head % len(body) + body))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert info.value.status_code == 418 and info.value.message.endswith("teapot")


def test_factory_makes_independent_fakes_and_stops_them() -> None:
    with FakeOpenAIFactory(models=("m",)) as make:
        a, b = make(), make(api_key="k", host="127.0.0.2")
        assert b.base_url == f"http://127.0.0.2:{b.port}/v1"
        a.script(Reply(text="from a"))
        ca = openai.OpenAI(base_url=a.base_url, api_key="any", max_retries=0)
        assert ca.chat.completions.create(model="m", messages=HELLO).choices[0].message.content == "from a"
        ca.close()
        assert b.requests == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
