"""Golden fixtures of the Anthropic dialect: tests/fixtures/anthropic/<scenario>/.

Each scenario directory holds some of:

- ``options.json``: ``{"dialect": "anthropic"|"vertex", "upstream_model", "default_max_tokens"}``;
- ``request.json`` (an OpenAI Chat Completions request) → ``expected_upstream_request.json``;
- ``upstream_response.json`` → ``expected_response.json`` (the IR ``ChatResponse``) or
  ``expected_error.json``;
- ``upstream_stream.txt`` (raw SSE bytes as Anthropic sends them) → ``expected_events.json``
  (IR events; a last ``{"type": "raises", ...}`` entry is the error the decoder raises);
- ``upstream_error.json``/``.txt`` + ``meta.json`` (status, headers) → ``expected_error.json``.

Every Anthropic payload is validated against the official ``anthropic`` SDK types, strictly (no
undeclared keys); every stream is re-split at every byte boundary; no fixture may hold anything
shaped like a real secret.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anthropic.types as at
import pydantic
import pytest
import typing_extensions as te
from anthropic._types import SequenceNotStr
from anthropic.types import message_create_params as mcp

from unigate.dialects.anthropic import DIALECT, VERTEX_DIALECT
from unigate.dialects.base import DialectOptions, UpstreamDialect
from unigate.dialects.sse import SSEFramer
from unigate.errors import UpstreamError, redact
from unigate.events import Event
from unigate.ir import (
    Audio,
    ChatRequest,
    Image,
    Message,
    NamedToolChoice,
    Opaque,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
UPSTREAM_MODEL = "claude-sonnet-4-5"


def scenarios_with(*names: str) -> list[str]:
    return [s for s in SCENARIOS if all((FIXTURES / s / n).exists() for n in names)]


def load(scenario: str, name: str) -> Any:
    return json.loads((FIXTURES / scenario / name).read_text())


def setup(scenario: str) -> tuple[UpstreamDialect, DialectOptions]:
    path = FIXTURES / scenario / "options.json"
    raw = json.loads(path.read_text()) if path.exists() else {}
    dialect = VERTEX_DIALECT if raw.get("dialect") == "vertex" else DIALECT
    options = DialectOptions(
        upstream_model=raw.get("upstream_model", UPSTREAM_MODEL),
        client_model="claude",
        default_max_tokens=raw.get("default_max_tokens"),
    )
    return dialect, options


# --------------------------------------------------------------------------- OpenAI request → IR
# A test-side reader of OpenAI requests, so these fixtures do not depend on the OpenAI dialect.

_TYPED = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "top_k", "stop", "seed", "n", "response_format", "tools", "tool_choice",
    "parallel_tool_calls", "reasoning_effort", "user",
}  # fmt: skip


def _parts(content: object) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    assert isinstance(content, list)
    parts: list[Part] = []
    for item in content:
        if item.keys() - {"type", item["type"]}:  # kept verbatim by the OpenAI dialect
            parts.append(Opaque("openai", {"part": item}))
        elif item["type"] == "text":
            parts.append(Text(item["text"]))
        elif item["type"] == "image_url":
            parts.append(Image(item["image_url"]["url"], item["image_url"].get("detail")))
        else:
            assert item["type"] == "input_audio"
            parts.append(Audio(item["input_audio"]["data"], item["input_audio"]["format"]))
    return parts


def _message(m: Mapping[str, Any]) -> Message:
    role = m["role"]
    if role == "tool":
        return Message("tool", (ToolResult(m["tool_call_id"], tuple(_parts(m["content"]))),))
    parts = _parts(m.get("content"))
    if role == "assistant":
        if m.get("reasoning_content"):
            parts.insert(0, Reasoning(m["reasoning_content"]))
        for call in m.get("tool_calls") or []:
            parts.append(ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"]))
            fields = {k: v for k, v in call.items() if k not in ("id", "type", "function")}
            if fields:  # kept by the OpenAI dialect next to the call (e.g. Gemini's extra_content)
                parts.append(Opaque("openai", {"tool_call": call["id"], "fields": fields}))
    return Message(role, tuple(parts), name=m.get("name"))


def openai_to_ir(body: Mapping[str, Any]) -> ChatRequest:
    """An OpenAI Chat Completions request body → IR, as the inbound dialect would read it."""
    stop = body.get("stop")
    fmt = body.get("response_format")
    choice = body.get("tool_choice")
    return ChatRequest(
        model=body["model"],
        messages=tuple(_message(m) for m in body["messages"]),
        stream=bool(body.get("stream")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        max_tokens=body.get("max_completion_tokens", body.get("max_tokens")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        seed=body.get("seed"),
        n=body.get("n"),
        response_format=None
        if fmt is None
        else ResponseFormat(
            fmt["type"],
            schema=fmt.get("json_schema", {}).get("schema"),
            name=fmt.get("json_schema", {}).get("name"),
            strict=fmt.get("json_schema", {}).get("strict"),
        ),
        tools=tuple(
            Tool(
                t["function"]["name"],
                t["function"].get("description"),
                t["function"].get("parameters"),
                t["function"].get("strict"),
            )
            for t in body.get("tools") or ()
        ),
        tool_choice=NamedToolChoice(choice["function"]["name"]) if isinstance(choice, dict) else choice,
        parallel_tool_calls=body.get("parallel_tool_calls"),
        reasoning_effort=body.get("reasoning_effort"),
        user=body.get("user"),
        extra={k: v for k, v in body.items() if k not in _TYPED},
    )


# --------------------------------------------------------------------------- IR → JSON for goldens


def jsonable(value: object) -> Any:
    """Dataclasses → dicts tagged with their class name; tuples → lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__} | {
            f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def error_json(exc: UpstreamError) -> dict[str, Any]:
    return {
        "class": type(exc).__name__,
        "status": exc.http_status(),
        "upstream_status": exc.upstream_status,
        "retry_after": exc.retry_after,
        "code": exc.code,
        "message": exc.message,
    }


def run_stream(
    dialect: UpstreamDialect, options: DialectOptions, chunks: Iterable[bytes]
) -> tuple[list[Event], UpstreamError | None]:
    """Frame ``chunks`` and decode them as the relay does; the raised error is returned."""
    framer = SSEFramer()
    decoder = dialect.stream_decoder(options)
    events: list[Event] = []
    try:
        for chunk in chunks:
            for frame in framer.feed(chunk):
                events.extend(decoder.feed(frame))
        for frame in framer.close():
            events.extend(decoder.feed(frame))
        events.extend(decoder.close())
    except UpstreamError as exc:
        return events, exc
    return events, None


def stream_result(dialect: UpstreamDialect, options: DialectOptions, chunks: Iterable[bytes]) -> list[Any]:
    events, error = run_stream(dialect, options, chunks)
    out = [jsonable(e) for e in events]
    if error is not None:
        out.append({"type": "raises", **error_json(error)})
    return out


# --------------------------------------------------------------------------- the runner


@pytest.mark.parametrize("scenario", scenarios_with("request.json", "expected_upstream_request.json"))
def test_encode_request(scenario: str) -> None:
    dialect, options = setup(scenario)
    body = dialect.encode_request(openai_to_ir(load(scenario, "request.json")), options)
    assert body == load(scenario, "expected_upstream_request.json")
    assert json.loads(json.dumps(body)) == body  # plain JSON, nothing else


@pytest.mark.parametrize("scenario", scenarios_with("upstream_response.json", "expected_response.json"))
def test_decode_response(scenario: str) -> None:
    dialect, options = setup(scenario)
    response = dialect.decode_response((FIXTURES / scenario / "upstream_response.json").read_bytes(), options)
    assert jsonable(response) == load(scenario, "expected_response.json")


@pytest.mark.parametrize("scenario", scenarios_with("upstream_response.json", "expected_error.json"))
def test_decode_response_error(scenario: str) -> None:
    dialect, options = setup(scenario)
    with pytest.raises(UpstreamError) as info:
        dialect.decode_response((FIXTURES / scenario / "upstream_response.json").read_bytes(), options)
    assert error_json(info.value) == load(scenario, "expected_error.json")


@pytest.mark.parametrize("scenario", scenarios_with("meta.json", "expected_error.json"))
def test_decode_error(scenario: str) -> None:
    dialect, _ = setup(scenario)
    meta = load(scenario, "meta.json")
    path = FIXTURES / scenario / "upstream_error.json"
    body = (path if path.exists() else FIXTURES / scenario / "upstream_error.txt").read_bytes()
    error = dialect.decode_error(meta["status"], meta["headers"], body)
    assert error_json(error) == load(scenario, "expected_error.json")


@pytest.mark.parametrize("scenario", scenarios_with("upstream_stream.txt", "expected_events.json"))
def test_decode_stream(scenario: str) -> None:
    dialect, options = setup(scenario)
    raw = (FIXTURES / scenario / "upstream_stream.txt").read_bytes()
    assert stream_result(dialect, options, [raw]) == load(scenario, "expected_events.json")


@pytest.mark.parametrize("scenario", scenarios_with("upstream_stream.txt"))
def test_stream_split_at_every_byte(scenario: str) -> None:
    dialect, options = setup(scenario)
    raw = (FIXTURES / scenario / "upstream_stream.txt").read_bytes()
    whole = stream_result(dialect, options, [raw])
    for cut in range(len(raw) + 1):
        assert stream_result(dialect, options, [raw[:cut], raw[cut:]]) == whole, f"split at byte {cut}"
    assert stream_result(dialect, options, [raw[i : i + 1] for i in range(len(raw))]) == whole


def test_every_scenario_is_exercised() -> None:
    used = {"options.json", "request.json", "expected_upstream_request.json", "upstream_response.json"}
    used |= {"expected_response.json", "expected_error.json", "upstream_stream.txt", "expected_events.json"}
    used |= {"upstream_error.json", "upstream_error.txt", "meta.json"}
    used |= {"turn2_request.json", "expected_turn2_upstream_request.json"}  # see test_anthropic.py
    for scenario in SCENARIOS:
        files = {p.name for p in (FIXTURES / scenario).iterdir()}
        assert files <= used, (scenario, files - used)
        checks = [
            {"request.json", "expected_upstream_request.json"},
            {"upstream_response.json", "expected_response.json"},
            {"upstream_response.json", "expected_error.json"},
            {"upstream_stream.txt", "expected_events.json"},
            {"meta.json", "expected_error.json"},
            {"turn2_request.json", "expected_turn2_upstream_request.json"},
        ]
        assert any(pair <= files for pair in checks), scenario


# --------------------------------------------------------------------------- no secrets in fixtures

_SECRET_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{20,}|ya29\.[A-Za-z0-9_-]{20,}"
    r"|Bearer\s+[A-Za-z0-9._-]{12,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


@pytest.mark.parametrize("path", sorted(FIXTURES.rglob("*.*")), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_holds_no_secret(path: Path) -> None:
    text = path.read_text()
    assert not _SECRET_SHAPES.search(text)
    assert redact(text) == text, "something in this fixture is shaped like an API key"


# --------------------------------------------------------------------------- SDK validation

_STRICT_ERRORS_MISSING_FROM_SDK = {"request_too_large", "conflict_error"}
"""Documented error types (wire-formats.md §2 "Errors") the SDK's ``ErrorObject`` union lacks."""


def assert_no_extra(model: object, path: str = "$") -> None:
    """pydantic models of the SDK allow undeclared keys; a fixture must not use any."""
    if isinstance(model, pydantic.BaseModel):
        assert not model.model_extra, f"{path}: keys not in the SDK type: {sorted(model.model_extra or {})}"
        for name in type(model).model_fields:
            assert_no_extra(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for i, item in enumerate(model):
            assert_no_extra(item, f"{path}[{i}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            assert_no_extra(item, f"{path}.{key}")


def check_typed(value: Any, tp: Any, path: str = "$") -> None:
    """Strictly check JSON ``value`` against an SDK TypedDict annotation (the SDK's request params
    are TypedDicts, which pydantic would accept with any extra key)."""
    origin, args = te.get_origin(tp), te.get_args(tp)
    if tp is Any or tp is object:
        return
    if origin in (te.Annotated, te.Required, te.NotRequired, typing.Required, typing.NotRequired):
        return check_typed(value, args[0], path)
    if origin in (typing.Union, types.UnionType):
        failures = []
        for alternative in args:
            try:
                check_typed(value, alternative, path)
            except AssertionError as exc:
                failures.append(str(exc))
            else:
                return
        raise AssertionError(f"{path}: matches no alternative: {failures}")
    if origin in (typing.Literal, te.Literal):
        assert value in args, f"{path}: {value!r} not in {args}"
        return
    if te.is_typeddict(tp):
        assert isinstance(value, dict), f"{path}: not an object"
        hints = te.get_type_hints(tp, include_extras=True)
        unknown = set(value) - set(hints)
        assert not unknown, f"{path}: keys not in {tp.__name__}: {sorted(unknown)}"
        missing = set(tp.__required_keys__) - set(value)
        assert not missing, f"{path}: missing {sorted(missing)}"
        for key, item in value.items():
            check_typed(item, hints[key], f"{path}.{key}")
        return
    if origin in (list, Iterable, Sequence, SequenceNotStr) or tp is SequenceNotStr:
        assert isinstance(value, list), f"{path}: not an array"
        for i, item in enumerate(value):
            check_typed(item, args[0] if args else Any, f"{path}[{i}]")
        return
    if origin in (dict, Mapping):
        assert isinstance(value, dict), f"{path}: not an object"
        for key, item in value.items():
            check_typed(item, args[1], f"{path}.{key}")
        return
    if tp is type(None):
        assert value is None, f"{path}: not null"
        return
    if tp is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: not a number"
        return
    if tp is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: not an integer"
        return
    if tp in (str, bool):
        assert isinstance(value, tp), f"{path}: not {tp.__name__}"
        return
    raise NotImplementedError(f"{path}: cannot check {tp!r}")


# Accepted under ``anthropic-version: 2023-06-01`` (which providers pin), gone from SDK 2.x's
# params because the 2026-10-21 version refuses them (wire-formats.md §2 "API versions").
_LEGACY_SAMPLING = {"temperature": float, "top_p": float, "top_k": int}


def validate_request(body: dict[str, Any], vertex: bool) -> None:
    body = dict(body)
    if vertex:
        assert "model" not in body
        assert body.pop("anthropic_version") == "vertex-2023-10-16"
        body["model"] = "claude-on-vertex"  # in the URL on Vertex; the SDK type requires it
    for key, tp in _LEGACY_SAMPLING.items():
        if key in body:
            check_typed(body.pop(key), tp, f"$.{key}")
    params = mcp.MessageCreateParamsStreaming if body.get("stream") else mcp.MessageCreateParamsNonStreaming
    check_typed(body, params)


@pytest.mark.parametrize(
    "path",
    sorted(FIXTURES.glob("*/expected*upstream_request.json")),
    ids=lambda p: str(p.relative_to(FIXTURES)),
)
def test_sdk_accepts_upstream_request(path: Path) -> None:
    validate_request(json.loads(path.read_text()), vertex=setup(path.parent.name)[0] is VERTEX_DIALECT)


def validate_error(payload: Any) -> None:
    if payload["error"]["type"] == "rate_limit_error" and "details" in payload["error"]:
        # ``error.details.error_code`` is documented (wire-formats.md §2) but not in the SDK type.
        details = payload["error"]["details"]
        assert set(details) == {"error_code"} and isinstance(details["error_code"], str)
        payload = {**payload, "error": {k: v for k, v in payload["error"].items() if k != "details"}}
    if payload["error"]["type"] in _STRICT_ERRORS_MISSING_FROM_SDK:
        assert set(payload) <= {"type", "error", "request_id"} and payload["type"] == "error"
        assert set(payload["error"]) == {"type", "message"}
        return
    assert_no_extra(at.ErrorResponse.model_validate(payload))


@pytest.mark.parametrize("scenario", scenarios_with("upstream_response.json"))
def test_sdk_accepts_upstream_response(scenario: str) -> None:
    payload = load(scenario, "upstream_response.json")
    if payload["type"] == "error":
        validate_error(payload)
    else:
        assert_no_extra(at.Message.model_validate(payload))


@pytest.mark.parametrize("scenario", scenarios_with("upstream_error.json"))
def test_sdk_accepts_upstream_error(scenario: str) -> None:
    payload = load(scenario, "upstream_error.json")
    if isinstance(payload, list):  # Vertex's own errors: the Google RPC shape (wire-formats.md §3)
        assert set(payload[0]["error"]) <= {"code", "message", "status", "details"}
        return
    validate_error(payload)


_EVENTS: pydantic.TypeAdapter[at.RawMessageStreamEvent] = pydantic.TypeAdapter(at.RawMessageStreamEvent)


@pytest.mark.parametrize("scenario", scenarios_with("upstream_stream.txt"))
def test_sdk_accepts_stream_events(scenario: str) -> None:
    framer = SSEFramer()
    frames = framer.feed((FIXTURES / scenario / "upstream_stream.txt").read_bytes())
    assert frames  # framer.close() is not called: a truncated stream's partial last event is not checked
    for frame in frames:
        payload = json.loads(frame.data)
        assert frame.event == payload["type"], "event: must equal data.type"
        if payload["type"] == "ping":
            assert payload == {"type": "ping"}
        elif payload["type"] == "error":
            validate_error(payload)
        else:
            assert_no_extra(_EVENTS.validate_python(payload))
