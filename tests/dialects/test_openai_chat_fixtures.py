"""Golden fixture runner for the OpenAI Chat dialect: every directory under
``tests/fixtures/openai_chat/<scenario>/`` is walked and each input file found there is checked.

Inputs (hand-written from wire-formats.md §1) and their goldens:

* ``request.json`` (a client body) → ``expected_ir.json`` (``parse_request``); the round trip
  ``encode_request(parse_request(b))`` must equal ``upstream_request.json`` when present, else the
  body with ``model`` replaced by ``upstream-model``.
* ``upstream_response.json`` → ``expected_response_ir.json`` (``decode_response``) and
  ``expected_client.json`` (``encode_response`` of that IR).
* ``upstream_stream.txt`` (raw SSE bytes) → ``expected_events.json`` (events, and the error the
  decoder raised, if any) and ``expected_client_stream.txt`` (``StreamEncoder`` frames).
  Every stream is also re-split at every byte boundary, and with ``\\r\\n`` / ``\\r`` line ends.
* ``upstream_error.json`` (``{status, headers, body}``) → ``expected_error.json``.
* ``options.json`` (optional): ``settings``/``default_max_tokens`` for ``DialectOptions``,
  ``include_usage`` for the ``StreamEncoder``.

An ``upstream_quirk`` key (in ``options.json`` or ``upstream_error.json``) says why an upstream
payload is deliberately not OpenAI's own shape (a compatible server's deviation); its SDK type
check is skipped, the check of what we produce is not.

Upstream payloads and everything we produce for clients are validated with the official
``openai`` SDK types. Goldens are regenerated with ``UNIGATE_UPDATE_GOLDENS=1`` — then review the
diff: a golden is a claim about the wire, not a snapshot of whatever the code does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from openai.types.shared import ErrorObject

from unigate.dialects.base import DialectOptions
from unigate.dialects.openai_chat import (
    OpenAIStreamDecoder,
    StreamEncoder,
    decode_error,
    decode_response,
    encode_request,
    encode_response,
    parse_request,
)
from unigate.dialects.sse import SSEFramer
from unigate.errors import UnigateError, UpstreamError
from unigate.events import Event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai_chat"
UPDATE = os.environ.get("UNIGATE_UPDATE_GOLDENS") == "1"
CLIENT_MODEL = "client-model"
UPSTREAM_MODEL = "upstream-model"
CLIENT_ID = "chatcmpl-unigate-0001"
CLIENT_CREATED = 1767225700

INPUTS = {"request.json", "upstream_response.json", "upstream_stream.txt", "upstream_error.json", "options.json"}
GOLDENS = {
    "expected_ir.json",
    "upstream_request.json",
    "expected_response_ir.json",
    "expected_client.json",
    "expected_events.json",
    "expected_client_stream.txt",
    "expected_error.json",
}

SECRET_SHAPES = re.compile(
    r"sk-(?:proj-|ant-|or-v1-)?[A-Za-z0-9_\-]{20,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|Bearer\s+[A-Za-z0-9._\-]{20,}"
)


# --------------------------------------------------------------------------- helpers shared with
# the other test_openai_chat_* modules


def to_jsonable(obj: Any) -> Any:
    """IR / event dataclasses → JSON: ``{"_type": ClassName, field: value}``, fields left at their
    default omitted (goldens stay readable and exact)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"_type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
                continue
            out[f.name] = to_jsonable(value)
        return out
    if isinstance(obj, list | tuple):
        return [to_jsonable(item) for item in obj]
    if isinstance(obj, Mapping):
        return {key: to_jsonable(value) for key, value in obj.items()}
    return obj


def describe_error(err: UnigateError) -> dict[str, Any]:
    out: dict[str, Any] = {
        "class": type(err).__name__,
        "message": err.message,
        "code": err.code,
        "param": err.param,
        "http_status": err.http_status(),
        "headers": err.headers(),
    }
    if isinstance(err, UpstreamError):
        out["upstream_status"] = err.upstream_status
        out["retry_after"] = err.retry_after
    return out


def options(scenario: Path | None = None) -> DialectOptions:
    spec = _options_spec(scenario)
    return DialectOptions(
        upstream_model=UPSTREAM_MODEL,
        client_model=CLIENT_MODEL,
        default_max_tokens=spec.get("default_max_tokens"),
        settings=spec.get("settings", {}),
    )


def _options_spec(scenario: Path | None) -> dict[str, Any]:
    path = scenario / "options.json" if scenario is not None else None
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


def split_at(raw: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    last = 0
    for cut in sorted(cuts):
        yield raw[last:cut]
        last = cut
    yield raw[last:]


def decode_stream(
    raw: bytes, opts: DialectOptions, cuts: Sequence[int] = ()
) -> tuple[list[Event], UpstreamError | None]:
    """Feed ``raw`` (cut at ``cuts``) through ``SSEFramer`` + the decoder; the events produced
    and the error raised, if any."""
    framer = SSEFramer()
    decoder = OpenAIStreamDecoder(opts)
    events: list[Event] = []
    try:
        for piece in split_at(raw, cuts):
            for sse in framer.feed(piece):
                events.extend(decoder.feed(sse))
        for sse in framer.close():
            events.extend(decoder.feed(sse))
        events.extend(decoder.close())
    except UpstreamError as err:
        return events, err
    return events, None


def encode_stream(events: Iterable[Event], error: UnigateError | None, include_usage: bool) -> bytes:
    encoder = StreamEncoder(id=CLIENT_ID, model=CLIENT_MODEL, created=CLIENT_CREATED, include_usage=include_usage)
    frames: list[bytes] = []
    for event in events:
        frames.extend(encoder.feed(event))
    frames.extend(encoder.error_frames(error) if error is not None else encoder.finish())
    return b"".join(frames)


def sse_payloads(raw: bytes) -> list[str]:
    framer = SSEFramer()
    return [event.data for event in [*framer.feed(raw), *framer.close()]]


def validate_chunks(raw: bytes) -> None:
    """Every data event is a valid ``ChatCompletionChunk``, an OpenAI error object, or [DONE]."""
    for data in sse_payloads(raw):
        if data == "[DONE]":
            continue
        obj = json.loads(data)
        if "error" in obj:
            ErrorObject.model_validate(obj["error"])
        else:
            ChatCompletionChunk.model_validate(obj)


_REQUEST_PARAMS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(CompletionCreateParamsBase)


def _force(value: Any) -> Any:
    """Pydantic validates ``Iterable`` fields lazily: walk everything so errors surface."""
    if isinstance(value, Mapping):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Iterable):
        return [_force(v) for v in value]
    return value


def validate_request(body: Mapping[str, Any]) -> None:
    """``body`` is a valid ``openai.types.chat.CompletionCreateParams``."""
    _force(_REQUEST_PARAMS.validate_python(dict(body)))


def golden_json(path: Path, actual: Any) -> None:
    if UPDATE:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"missing golden {path.name}: run with UNIGATE_UPDATE_GOLDENS=1, then review it"
    assert actual == json.loads(path.read_text())


def golden_bytes(path: Path, actual: bytes) -> None:
    if UPDATE:
        path.write_bytes(actual)
        return
    assert path.exists(), f"missing golden {path.name}: run with UNIGATE_UPDATE_GOLDENS=1, then review it"
    assert actual == path.read_bytes()


def scenarios(filename: str) -> list[Any]:
    return [pytest.param(d, id=d.name) for d in sorted(FIXTURES.iterdir()) if (d / filename).exists()]


# --------------------------------------------------------------------------- the runner


def test_fixture_tree_is_well_formed() -> None:
    dirs = [d for d in FIXTURES.iterdir() if d.is_dir()]
    assert len(dirs) >= 30
    for d in dirs:
        names = {p.name for p in d.iterdir()}
        assert names & (INPUTS - {"options.json"}), f"{d.name} has no input file"
        assert names <= INPUTS | GOLDENS, f"{d.name} has unknown files: {names - INPUTS - GOLDENS}"


def test_no_fixture_contains_a_secret() -> None:
    assert SECRET_SHAPES.search("key " + "sk-" + "A1b2C3d4" * 4), "the scanner itself must work"
    for path in FIXTURES.rglob("*"):
        if path.is_file():
            match = SECRET_SHAPES.search(path.read_text(encoding="utf-8"))
            assert match is None, f"{path.relative_to(FIXTURES)} contains a secret-shaped string: {match}"


@pytest.mark.parametrize("scenario", scenarios("request.json"))
def test_request(scenario: Path) -> None:
    body = json.loads((scenario / "request.json").read_text())
    validate_request(body)
    opts = options(scenario)
    request = parse_request(body)
    golden_json(scenario / "expected_ir.json", to_jsonable(request))

    encoded = encode_request(request, opts)
    explicit = scenario / "upstream_request.json"
    expected = json.loads(explicit.read_text()) if explicit.exists() else {**body, "model": UPSTREAM_MODEL}
    assert encoded == expected
    validate_request(encoded)
    assert encode_request(parse_request(encoded), opts) == encoded, "a second round trip changes nothing"


@pytest.mark.parametrize("scenario", scenarios("upstream_response.json"))
def test_response(scenario: Path) -> None:
    raw = (scenario / "upstream_response.json").read_bytes()
    if "upstream_quirk" not in _options_spec(scenario):
        ChatCompletion.model_validate(json.loads(raw))
    response = decode_response(raw, options(scenario))
    golden_json(scenario / "expected_response_ir.json", to_jsonable(response))
    client = encode_response(response)
    golden_json(scenario / "expected_client.json", client)
    ChatCompletion.model_validate(client)


@pytest.mark.parametrize("scenario", scenarios("upstream_stream.txt"))
def test_stream(scenario: Path) -> None:
    raw = (scenario / "upstream_stream.txt").read_bytes()
    if "upstream_quirk" not in _options_spec(scenario):
        validate_chunks(raw)
    events, error = decode_stream(raw, options(scenario))
    golden_json(
        scenario / "expected_events.json",
        {"events": to_jsonable(events), "error": describe_error(error) if error is not None else None},
    )
    client = encode_stream(events, error, bool(_options_spec(scenario).get("include_usage")))
    golden_bytes(scenario / "expected_client_stream.txt", client)
    validate_chunks(client)
    payloads = sse_payloads(client)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1] if "error" not in json.loads(p)]
    if chunks:
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c for c in chunks for choice in c["choices"] if choice["finish_reason"] is not None]
    assert len(finishes) == (0 if error is not None else 1), "exactly one chunk carries finish_reason"


def _line_end_variants(raw: bytes) -> list[bytes]:
    lf = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return [raw, lf, lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r")]


def _same(a: tuple[list[Event], UpstreamError | None], b: tuple[list[Event], UpstreamError | None]) -> bool:
    errors = [describe_error(e) if e is not None else None for e in (a[1], b[1])]
    return a[0] == b[0] and errors[0] == errors[1]


@pytest.mark.parametrize("scenario", scenarios("upstream_stream.txt"))
def test_stream_survives_every_split(scenario: Path) -> None:
    opts = options(scenario)
    original = (scenario / "upstream_stream.txt").read_bytes()
    reference = decode_stream(original, opts)
    for raw in _line_end_variants(original):
        assert _same(decode_stream(raw, opts), reference)
        for cut in range(1, len(raw)):
            assert _same(decode_stream(raw, opts, [cut]), reference), f"split at byte {cut}"
        assert _same(decode_stream(raw, opts, range(1, len(raw))), reference), "byte by byte"


_STREAMS = sorted(p.parent for p in FIXTURES.glob("*/upstream_stream.txt"))


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(_STREAMS) - 1),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=12),
)
def test_stream_survives_random_splits(index: int, cuts: list[float]) -> None:
    scenario = _STREAMS[index]
    raw = (scenario / "upstream_stream.txt").read_bytes()
    opts = options(scenario)
    positions = sorted({int(c * len(raw)) for c in cuts})
    assert _same(decode_stream(raw, opts, positions), decode_stream(raw, opts))


@pytest.mark.parametrize("scenario", scenarios("upstream_error.json"))
def test_error(scenario: Path) -> None:
    spec = json.loads((scenario / "upstream_error.json").read_text())
    body = spec["body"].encode()
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict) and "upstream_quirk" not in spec:
        ErrorObject.model_validate(payload["error"])
    err = decode_error(spec["status"], spec["headers"], body)
    golden_json(scenario / "expected_error.json", describe_error(err))
    if body.lstrip().startswith(b"<"):
        assert "<" not in err.message, "HTML is summarised, never echoed"
    assert len(err.message) <= 4001
