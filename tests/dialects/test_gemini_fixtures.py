"""Golden fixtures for the Gemini dialect: ``tests/fixtures/gemini/<scenario>/``.

Inputs (hand-written from wire-formats.md §3 and the Gemini API reference):
  ``request.json``            the OpenAI client request
  ``options.json``            optional ``DialectOptions`` overrides
  ``upstream_response.json``  a ``generateContent`` answer
  ``upstream_stream.txt``     raw ``streamGenerateContent?alt=sse`` bytes (``data: {…}\\r\\n\\r\\n``)
  ``upstream_error.json`` / ``upstream_error.txt`` + ``upstream_error_meta.json`` (status, headers)
Goldens (reviewed by hand; ``UPDATE_GOLDENS=1`` rewrites them):
  ``expected_upstream_request.json``, ``expected_response.json`` / ``expected_response_error.json``,
  ``expected_events.json`` (+ ``expected_stream_error.json``), ``expected_error.json``.

Every upstream payload is validated with the official ``google-genai`` types (which forbid unknown
keys), keys are checked to be camelCase as on the wire, and every stream is re-split at every byte
boundary. ``request.json`` is read by a small local OpenAI parser so these goldens do not depend on
the OpenAI dialect; ``test_gemini_e2e.py`` runs the same fixtures through it when it exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types as gt

from unigate.dialects.base import DialectOptions
from unigate.dialects.gemini import DIALECT
from unigate.dialects.sse import SSEFramer
from unigate.errors import UnigateError, redact
from unigate.events import Event
from unigate.ir import (
    Audio,
    ChatRequest,
    Image,
    Message,
    NamedToolChoice,
    Part,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"
UPSTREAM_MODEL = "gemini-2.5-flash"


# ---------------------------------------------------------------- helpers


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def golden(path: Path, actual: Any) -> None:
    """Compare ``actual`` with the golden file (or write it under UPDATE_GOLDENS=1)."""
    if UPDATE:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"missing golden {path.relative_to(FIXTURES)} (run with UPDATE_GOLDENS=1)"
    assert actual == load(path), f"golden mismatch: {path.relative_to(FIXTURES)}"


def dump(value: Any) -> Any:
    """IR / event dataclasses → plain JSON, tagged with the class name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = dump(getattr(value, f.name))
        return out
    if isinstance(value, tuple | list):
        return [dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: dump(v) for k, v in value.items()}
    return value


def dump_error(exc: UnigateError) -> dict[str, Any]:
    return {
        "class": type(exc).__name__,
        "http_status": exc.http_status(),
        "upstream_status": getattr(exc, "upstream_status", None),
        "retry_after": getattr(exc, "retry_after", None),
        "code": exc.code,
        "message": exc.message,
        "headers": exc.headers(),
    }


def options_for(scenario: str, client_model: str = "gemini-flash") -> DialectOptions:
    path = FIXTURES / scenario / "options.json"
    extra = load(path) if path.exists() else {}
    return DialectOptions(
        upstream_model=UPSTREAM_MODEL,
        client_model=client_model,
        default_max_tokens=extra.get("default_max_tokens"),
        settings=extra.get("settings", {}),
    )


# ------------------------------------------------ a minimal OpenAI request parser (test-only)

_TYPED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "user",
}


def _content_parts(content: Any) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Text(content),)
    parts: list[Part] = []
    for item in content:
        if item["type"] == "text":
            parts.append(Text(item["text"]))
        elif item["type"] == "image_url":
            parts.append(Image(item["image_url"]["url"], item["image_url"].get("detail")))
        elif item["type"] == "input_audio":
            parts.append(Audio(item["input_audio"]["data"], item["input_audio"]["format"]))
        else:  # pragma: no cover - fixtures use only the kinds above
            raise AssertionError(item)
    return tuple(parts)


def parse_openai(body: Mapping[str, Any]) -> ChatRequest:
    messages = []
    for m in body["messages"]:
        if m["role"] == "tool":
            parts: tuple[Part, ...] = (ToolResult(m["tool_call_id"], _content_parts(m["content"])),)
        else:
            parts = _content_parts(m.get("content"))
            calls = tuple(
                ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or ()
            )
            parts += calls
        messages.append(Message(m["role"], parts, m.get("name")))
    fmt = body.get("response_format")
    response_format = None
    if fmt is not None:
        schema = fmt.get("json_schema") or {}
        response_format = ResponseFormat(fmt["type"], schema.get("schema"), schema.get("name"), schema.get("strict"))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = NamedToolChoice(choice["function"]["name"])
    stop = body.get("stop")
    return ChatRequest(
        model=body["model"],
        messages=tuple(messages),
        stream=body.get("stream", False),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        max_tokens=body.get("max_tokens", body.get("max_completion_tokens")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        seed=body.get("seed"),
        n=body.get("n"),
        response_format=response_format,
        tools=tuple(
            Tool(
                t["function"]["name"],
                t["function"].get("description"),
                t["function"].get("parameters"),
                t["function"].get("strict"),
            )
            for t in body.get("tools") or ()
        ),
        tool_choice=choice,
        parallel_tool_calls=body.get("parallel_tool_calls"),
        reasoning_effort=body.get("reasoning_effort"),
        user=body.get("user"),
        extra={k: v for k, v in body.items() if k not in _TYPED},
    )


# --------------------------------------------------------- SDK validation of wire payloads

# Keys under these hold user data (schemas, arguments, quota dimensions), not wire field names.
_OPAQUE_KEYS = {
    "args",
    "response",
    "parametersJsonSchema",
    "responseJsonSchema",
    "quotaDimensions",
    "metadata",
}
_CAMEL = re.compile(r"^(@type|[a-z][A-Za-z0-9]*)$")


def assert_camel_case(obj: Any, path: str = "$") -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert _CAMEL.match(key), f"{path}.{key} is not a camelCase wire key"
            if key not in _OPAQUE_KEYS:
                assert_camel_case(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            assert_camel_case(value, f"{path}[{i}]")


def validate_response(obj: Mapping[str, Any]) -> None:
    assert_camel_case(obj)
    if "error" in obj:
        validate_error(obj["error"]["code"], obj)
    else:
        gt.GenerateContentResponse.model_validate(obj)


def validate_request(body: Mapping[str, Any]) -> None:
    assert_camel_case(body)
    allowed = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    assert set(body) <= allowed, set(body) - allowed
    for content in body["contents"]:
        assert content["role"] in ("user", "model")
        assert content["parts"], "Gemini rejects a content without parts"
        for part in content["parts"]:
            assert part.get("text", "x") != "", "Gemini rejects empty text parts"
        gt.Content.model_validate(content)
    if "systemInstruction" in body:
        gt.Content.model_validate(body["systemInstruction"])
    for tool in body.get("tools", ()):
        gt.Tool.model_validate(tool)
    if "toolConfig" in body:
        gt.ToolConfig.model_validate(body["toolConfig"])
    if "generationConfig" in body:
        gt.GenerationConfig.model_validate(body["generationConfig"])


def validate_error(status: int, body: Any) -> None:
    assert_camel_case(body)
    err = genai_errors.APIError(status, body)
    inner = (body[0] if isinstance(body, list) else body)["error"]
    assert (err.code, err.status, err.message) == (inner["code"], inner["status"], inner["message"])


def sse_data(raw: bytes) -> list[Any]:
    framer = SSEFramer()
    events = framer.feed(raw) + framer.close()
    return [json.loads(e.data) for e in events]


# --------------------------------------------------------------------- stream helpers


def run_stream(chunks: list[bytes], options: DialectOptions) -> tuple[list[Event], UnigateError | None]:
    """Feed byte chunks through SSEFramer and the decoder; return events and the error raised."""
    framer = SSEFramer()
    decoder = DIALECT.stream_decoder(options)
    events: list[Event] = []
    try:
        for chunk in chunks:
            for frame in framer.feed(chunk):
                events += decoder.feed(frame)
        for frame in framer.close():
            events += decoder.feed(frame)
        events += decoder.close()
    except UnigateError as exc:
        return events, exc
    return events, None


# ------------------------------------------------------------------------------ tests


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 30


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fixture_inputs_are_valid_wire_payloads(scenario: str) -> None:
    d = FIXTURES / scenario
    if (d / "upstream_response.json").exists():
        validate_response(load(d / "upstream_response.json"))
    if (d / "upstream_stream.txt").exists():
        raw = (d / "upstream_stream.txt").read_bytes()
        assert raw.endswith(b"\r\n\r\n") and b"\n\n" not in raw.replace(b"\r\n\r\n", b"")
        chunks = sse_data(raw)
        assert chunks
        for chunk in chunks:
            validate_response(chunk)
    if (d / "upstream_error.json").exists():
        validate_error(load(d / "upstream_error_meta.json")["status"], load(d / "upstream_error.json"))
    if (d / "expected_upstream_request.json").exists():
        validate_request(load(d / "expected_upstream_request.json"))


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (FIXTURES / s / "request.json").exists()])
def test_encode_request(scenario: str) -> None:
    d = FIXTURES / scenario
    body = load(d / "request.json")
    encoded = DIALECT.encode_request(parse_openai(body), options_for(scenario, body["model"]))
    validate_request(encoded)
    golden(d / "expected_upstream_request.json", encoded)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (FIXTURES / s / "upstream_response.json").exists()])
def test_decode_response(scenario: str) -> None:
    d = FIXTURES / scenario
    raw = (d / "upstream_response.json").read_bytes()
    try:
        decoded = DIALECT.decode_response(raw, options_for(scenario))
    except UnigateError as exc:
        golden(d / "expected_response_error.json", dump_error(exc))
        return
    golden(d / "expected_response.json", dump(decoded))


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (FIXTURES / s / "upstream_stream.txt").exists()])
def test_decode_stream(scenario: str) -> None:
    d = FIXTURES / scenario
    events, error = run_stream([(d / "upstream_stream.txt").read_bytes()], options_for(scenario))
    golden(d / "expected_events.json", dump(events))
    if error is not None or (d / "expected_stream_error.json").exists():
        assert error is not None, "expected the stream to fail"
        golden(d / "expected_stream_error.json", dump_error(error))


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (FIXTURES / s / "upstream_stream.txt").exists()])
def test_stream_survives_every_split(scenario: str) -> None:
    raw = (FIXTURES / scenario / "upstream_stream.txt").read_bytes()
    options = options_for(scenario)
    whole_events, whole_error = run_stream([raw], options)
    expected = (dump(whole_events), whole_error and dump_error(whole_error))
    for i in range(len(raw) + 1):
        events, error = run_stream([raw[:i], raw[i:]], options)
        assert (dump(events), error and dump_error(error)) == expected, f"split at byte {i}"
    events, error = run_stream([raw[i : i + 1] for i in range(len(raw))], options)
    assert (dump(events), error and dump_error(error)) == expected, "byte-by-byte"


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (FIXTURES / s / "upstream_stream.txt").exists()])
def test_stream_agrees_with_non_stream(scenario: str) -> None:
    """Where a scenario has both forms of the same answer, the stream's tool calls and finish
    reason match the complete response's (ids are derived from the responseId, which differs)."""
    d = FIXTURES / scenario
    if not (d / "expected_response.json").exists() or not (d / "expected_events.json").exists():
        return
    response = load(d / "expected_response.json")
    events = load(d / "expected_events.json")
    finishes = [e["reason"] for e in events if e["type"] == "Finish"]
    assert finishes == [response["finish_reason"]]
    names = [e["name"] for e in events if e["type"] == "ToolCallStart"]
    assert names == [p["name"] for p in response["message"]["parts"] if p["type"] == "ToolCall"]


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if (FIXTURES / s / "upstream_error_meta.json").exists()])
def test_decode_error(scenario: str) -> None:
    d = FIXTURES / scenario
    meta = load(d / "upstream_error_meta.json")
    body_path = d / "upstream_error.json"
    if not body_path.exists():
        body_path = d / "upstream_error.txt"
    error = DIALECT.decode_error(meta["status"], meta["headers"], body_path.read_bytes())
    golden(d / "expected_error.json", dump_error(error))


_SECRET_SHAPES = re.compile(
    r"AIza[0-9A-Za-z_\-]{20,}|ya29\.[0-9A-Za-z_\-]{10,}|sk-[A-Za-z0-9_\-]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY"
    r"|\"private_key\"|Bearer [A-Za-z0-9._\-]{10,}|AKIA[0-9A-Z]{12,}|[?&]key=[A-Za-z0-9_\-]{8,}"
)


def test_no_fixture_contains_anything_shaped_like_a_secret() -> None:
    files = [p for p in FIXTURES.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        assert not _SECRET_SHAPES.search(text), f"{path.relative_to(FIXTURES)} holds a secret-shaped string"
        assert redact(text) == text, f"{path.relative_to(FIXTURES)} holds a string errors.redact would mask"
