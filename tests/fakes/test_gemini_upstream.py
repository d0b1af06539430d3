"""The fake Gemini API upstream is faithful: the official ``google-genai`` SDK, pointed at it,
parses what it sends; every raw body and stream chunk validates strictly against
``types.GenerateContentResponse`` (it forbids unknown keys); failures surface as the SDK's
``ClientError``/``ServerError`` with Google's code and status."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_upstream import (
    FakeGemini,
    GBlocked,
    GEcho,
    GFail,
    GReply,
    GSafety,
    GStreamError,
    Hang,
    Refuse,
    StreamThenDie,
)

KEY = "AIza-fake-test-key-0001"
MODEL = "gemini-2.5-flash"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city",
            parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}),
        ),
        types.FunctionDeclaration(name="get_time", parameters=types.Schema(type=types.Type.OBJECT)),
    ]
)


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(models=(MODEL, "gemini-2.5-pro"), api_key=KEY) as f:
        yield f
    assert f.errors == []


@pytest.fixture
def client(fake: FakeGemini) -> Iterator[genai.Client]:
    c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake.url, timeout=5000))
    yield c
    c.close()


def raw(
    fake: FakeGemini,
    body: Any,
    path: str = f"/v1beta/models/{MODEL}:generateContent",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, str]:
    """One request through the stdlib client; returns status, body and content-type."""
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        sent = {"x-goog-api-key": KEY, "content-type": "application/json"}
        sent.update(headers or {})
        conn.request("POST", path, json.dumps(body), {k: v for k, v in sent.items() if v})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("content-type") or ""
    finally:
        conn.close()


def strict(obj: Any) -> types.GenerateContentResponse:
    """Validate wire JSON against the SDK type, which forbids unknown keys."""
    return types.GenerateContentResponse.model_validate(obj)


HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello there world"}]}]}


# ---- happy paths --------------------------------------------------------------------------------


def test_generate_content_echo(fake: FakeGemini, client: genai.Client) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="hello there world", config=types.GenerateContentConfig(system_instruction="be brief")
    )
    assert response.text == "echo: hello there world"
    assert response.model_version == MODEL and response.response_id
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (5, 4, 9)
    assert usage.thoughts_token_count is None and usage.cached_content_token_count is None
    request = fake.generate_requests[0]
    assert request.path == f"/v1/models/{MODEL}:generateContent", "google-genai 3.x defaults to v1"
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json["systemInstruction"] == {"parts": [{"text": "be brief"}], "role": "user"}


def test_raw_body_is_strictly_a_generate_content_response(fake: FakeGemini) -> None:
    fake.script(
        GReply(
            text="Checking.", thoughts=("Two cities.", "c2lnLTE="), function_calls=[("get_weather", {"city": "Oslo"})]
        )
    )
    status, body, content_type = raw(fake, HELLO)
    assert status == 200 and content_type == "application/json; charset=UTF-8"
    wire = json.loads(body)
    strict(wire)
    parts = wire["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "Two cities.", "thought": True},
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "c2lnLTE="},
    ]
    assert wire["candidates"][0]["finishReason"] == "STOP" and wire["candidates"][0]["content"]["role"] == "model"
    usage = wire["usageMetadata"]
    assert (
        usage["totalTokenCount"]
        == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )
    assert "createTime" not in wire and "trafficType" not in usage, "Vertex-only fields"


def test_parallel_function_calls_and_thoughts(fake: FakeGemini, client: genai.Client) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    fake.script(
        GReply(function_calls=calls, thoughts=("Looking up both.", "CiQBZmFrZQ=="), usage=(318, 34, 120), cached=256)
    )
    response = client.models.generate_content(
        model=MODEL, contents="Weather?", config=types.GenerateContentConfig(tools=[WEATHER])
    )
    assert response.function_calls is not None
    assert [(c.name, c.args) for c in response.function_calls] == calls
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    parts = response.candidates[0].content.parts
    assert [p.thought for p in parts] == [True, None, None]
    assert parts[0].text == "Looking up both." and parts[1].thought_signature == b"\n$\x01fake"
    assert parts[2].thought_signature is None, "only the first of parallel calls is signed"
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (318, 34, 120)
    assert (usage.cached_content_token_count, usage.total_token_count) == (256, 472)


def test_stream_chunks(fake: FakeGemini, client: genai.Client) -> None:
    fake.script(GReply(text="Sunny and mild.", thoughts=("Easy one.", ""), function_calls=[("get_time", {})]))
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hello there world"))
    assert fake.generate_requests[0].query == "alt=sse"
    assert all(c.usage_metadata is not None for c in chunks), "every chunk carries usage"
    parts = [p for c in chunks if c.candidates and c.candidates[0].content for p in c.candidates[0].content.parts or []]
    assert "".join(p.text or "" for p in parts if p.thought) == "Easy one."
    assert "".join(p.text or "" for p in parts if p.text and not p.thought) == "Sunny and mild."
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates]
    assert finishes[:-1] == [None] * (len(chunks) - 1) and finishes[-1] == types.FinishReason.STOP
    assert chunks[-1].function_calls is not None and [c.name for c in chunks[-1].function_calls] == ["get_time"]
    last = chunks[-1].usage_metadata
    assert (
        last is not None and last.candidates_token_count == 5 and last.thoughts_token_count == 2
    )  # 3 + call (1 + "{}")
    assert chunks[0].usage_metadata is not None and chunks[0].usage_metadata.candidates_token_count is None
    assert len({c.response_id for c in chunks}) == 1


def test_stream_wire_is_crlf_framed_sse(fake: FakeGemini) -> None:
    path = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    status, body, content_type = raw(fake, HELLO, path)
    assert status == 200 and content_type == "text/event-stream"
    events = body.split(b"\r\n\r\n")
    assert events[-1] == b"" and len(events) == 5
    payloads = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert all(e.startswith(b"data: {") for e in events[:-1])
    for payload in payloads:
        strict(payload)
    assert "".join(p["candidates"][0]["content"]["parts"][0]["text"] for p in payloads) == "echo: hello there world"


def test_stream_without_alt_sse_is_one_json_array(fake: FakeGemini) -> None:
    status, body, content_type = raw(fake, HELLO, f"/v1beta/models/{MODEL}:streamGenerateContent")
    assert status == 200 and content_type.startswith("application/json")
    items = json.loads(body)
    assert isinstance(items, list) and len(items) == 4
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(("allowed", "expected"), [(None, "get_weather"), (["get_time"], "get_time")])
def test_echo_obeys_mode_any(client: genai.Client, allowed: list[str] | None, expected: str) -> None:
    config = types.GenerateContentConfig(
        tools=[WEATHER],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=allowed
            )
        ),
    )
    response = client.models.generate_content(model=MODEL, contents="hi", config=config)
    assert response.function_calls is not None
    assert [(c.name, c.args) for c in response.function_calls] == [(expected, {})]
    assert response.text is None


def test_echo_uses_last_user_turn_with_text(fake: FakeGemini, client: genai.Client) -> None:
    fake.default = GEcho()
    contents = [
        types.Content(role="user", parts=[types.Part(text="weather"), types.Part(text="please")]),
        types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={}))]),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"t": 1}))],
        ),
    ]
    assert client.models.generate_content(model=MODEL, contents=contents).text == "echo: weather please"


def test_models_list_get_and_count_tokens(client: genai.Client) -> None:
    assert [m.name for m in client.models.list()] == [f"models/{MODEL}", "models/gemini-2.5-pro"]
    model = client.models.get(model="gemini-2.5-pro")
    assert model.name == "models/gemini-2.5-pro" and model.input_token_limit == 1048576
    assert client.models.count_tokens(model=MODEL, contents="three small words").total_tokens == 3


def test_v1beta_and_query_key(fake: FakeGemini) -> None:
    beta = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake.url, api_version="v1beta"))
    assert beta.models.generate_content(model=MODEL, contents="hi").text == "echo: hi"
    beta.close()
    assert fake.generate_requests[-1].path.startswith("/v1beta/")
    status, body, _ = raw(fake, HELLO, f"/v1beta/models/{MODEL}:generateContent?key={KEY}", {"x-goog-api-key": ""})
    assert status == 200 and json.loads(body)["candidates"][0]["content"]["parts"][0]["text"].startswith("echo")


# ---- errors ---------------------------------------------------------------------------------------


def test_429_is_client_error_with_retry_info(fake: FakeGemini, client: genai.Client) -> None:
    fake.script(GFail(429, retry_delay="37s"))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    details = info.value.details["error"]["details"]
    assert details[0]["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"
    assert details[1] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


@pytest.mark.parametrize(
    ("status", "error", "google_status"),
    [
        (503, errors.ServerError, "UNAVAILABLE"),
        (500, errors.ServerError, "INTERNAL"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
    ],
)
def test_fail_maps_to_sdk_error(
    fake: FakeGemini, client: genai.Client, status: int, error: type[errors.APIError], google_status: str
) -> None:
    fake.script(GFail(status, message="nope"))
    with pytest.raises(error) as info:
        list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert (info.value.code, info.value.status, info.value.message) == (status, google_status, "nope")


def test_wrong_and_missing_key(fake: FakeGemini) -> None:
    fake.script(GReply(text="kept"))
    wrong = genai.Client(api_key="AIza-wrong", http_options=types.HttpOptions(base_url=fake.url))
    with pytest.raises(errors.ClientError) as info:
        wrong.models.generate_content(model=MODEL, contents="hi")
    wrong.close()
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, body, _ = raw(fake, HELLO, headers={"x-goog-api-key": ""})
    assert status == 403 and json.loads(body)["error"]["status"] == "PERMISSION_DENIED"
    assert fake.pending_scripts == 1


def test_unknown_model_field_and_empty_contents(fake: FakeGemini, client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-nope", contents="hi")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    status, body, _ = raw(fake, HELLO | {"messages": []})
    assert status == 400 and 'Unknown name "messages"' in json.loads(body)["error"]["message"]
    status, body, _ = raw(fake, {"contents": []})
    assert status == 400 and "contents is not specified" in json.loads(body)["error"]["message"]
    status, body, _ = raw(fake, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
    assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"
    assert fake.pending_scripts == 0


def test_stream_error_chunk_raises_in_the_sdk(fake: FakeGemini, client: genai.Client) -> None:
    fake.script(GStreamError(after=2, code=503))
    got: list[types.GenerateContentResponse] = []
    with pytest.raises(errors.ServerError) as info:
        got.extend(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")
    assert [c.text for c in got] == ["part0 ", "part1 "]


def test_safety_finish_has_no_text(fake: FakeGemini, client: genai.Client) -> None:
    fake.script(GSafety(), GSafety())
    response = client.models.generate_content(model=MODEL, contents="hi")
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.candidates[0].content is None and response.text is None
    assert response.candidates[0].safety_ratings and response.candidates[0].safety_ratings[-1].blocked
    (chunk,) = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert chunk.candidates and chunk.candidates[0].finish_reason == types.FinishReason.SAFETY


def test_blocked_prompt_has_prompt_feedback_and_no_candidates(fake: FakeGemini, client: genai.Client) -> None:
    fake.script(GBlocked(), GBlocked("PROHIBITED_CONTENT"))
    response = client.models.generate_content(model=MODEL, contents="hi")
    assert response.candidates is None and response.text is None
    assert response.prompt_feedback and response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    status, body, _ = raw(fake, HELLO)
    assert status == 200
    feedback = strict(json.loads(body)).prompt_feedback
    assert feedback is not None and feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT


# ---- recording, hangs, broken connections --------------------------------------------------------------


def test_per_model_script_and_hang_then(fake: FakeGemini, client: genai.Client) -> None:
    fake.script_for("gemini-2.5-pro", Hang(then=GReply(text="late")))
    result: list[str | None] = []
    worker = threading.Thread(
        target=lambda: result.append(client.models.generate_content(model="gemini-2.5-pro", contents="x").text)
    )
    worker.start()
    assert fake.wait_for(lambda f: f.parked == 1)
    assert client.models.generate_content(model=MODEL, contents="first").text == "echo: first"
    assert fake.release() == 1
    worker.join(timeout=5)
    assert result == ["late"]


def test_refuse_and_stream_then_die(fake: FakeGemini, client: genai.Client) -> None:
    """Transport failures reach the caller as the SDK's HTTP library raises them (unwrapped)."""
    fake.script(Refuse(), StreamThenDie(chunks=2, how="fin"))
    with pytest.raises(httpx2.ReadError):
        client.models.generate_content(model=MODEL, contents="hi")
    assert fake.connections[0].reset_by_us
    got: list[types.GenerateContentResponse] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        got.extend(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert [c.text for c in got] == ["part0 ", "part1 "]
