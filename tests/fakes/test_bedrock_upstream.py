"""The fake Bedrock runtime is faithful: boto3's ``bedrock-runtime`` client, pointed at it, signs requests
the fake verifies and parses every answer, stream and error the fake produces — and the fake's own
event-stream encoder reproduces AWS's documented frame byte for byte."""

from __future__ import annotations

import base64
import http.client
import json
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import anthropic.types as at
import boto3
import pydantic
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from tests.fakes.anthropic_behaviours import AReply
from tests.fakes.bedrock_eventstream import error_frame, event_frame, exception_frame, frame
from tests.fakes.bedrock_upstream import BFail, BStreamError, CReply, FakeBedrock
from tests.fakes.loopback import StreamThenDie

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"
REGION = "us-east-1"

# wire-formats.md §6.3: one complete frame (159 bytes), decoded and CRC-checked by botocore there.
DOCUMENTED_FRAME = bytes.fromhex(
    "0000009f00000057c37babff0b3a6576656e742d7479706507001163"
    "6f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d7479"
    "70650700106170706c69636174696f6e2f6a736f6e0d3a6d65737361"
    "67652d747970650700056576656e747b22636f6e74656e74426c6f63"
    "6b496e646578223a302c2264656c7461223a7b2274657874223a2248"
    "69227d2c2270223a2261626364227df2ace5ff"
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(REGION, api_keys=("bedrock-api-key-fake-1",)) as running:
        yield running


@pytest.fixture
def keys(fake: FakeBedrock) -> tuple[str, str]:
    return fake.add_credentials()


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """boto3 must use only what a test gives it (no profile, no environment credentials)."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client(fake: FakeBedrock, access_key: str, secret: str, token: str | None = None) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1}),
    )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def claude_body(text: str, **more: Any) -> bytes:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }
    return json.dumps(body | more).encode()


def decode_all(data: bytes) -> list[Any]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


# ---- the encoder, against AWS's documented frame and botocore's decoder -------------------------------


def test_encoder_reproduces_the_documented_frame() -> None:
    built = event_frame("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}')
    assert built == DOCUMENTED_FRAME
    total, headers_length, prelude_crc = struct.unpack(">III", built[:12])
    assert (total, headers_length, len(built)) == (159, 87, 159)
    assert prelude_crc == zlib.crc32(built[:8])
    [message] = decode_all(built)
    assert message.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }


def test_every_header_type_decodes_with_botocore() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = [
        ("t", True),
        ("f", False),
        ("b", (2, -7)),
        ("s", (3, -300)),
        ("i", 70000),
        ("l", (5, 2**40)),
        ("raw", b"\x00\xff"),
        ("str", "héllo"),
        ("ts", (8, 1_700_000_000_000)),
        ("id", ident),
    ]
    [message] = decode_all(frame(headers, b"payload"))
    assert message.payload == b"payload"
    assert message.headers["t"] is True and message.headers["f"] is False
    assert (message.headers["b"], message.headers["s"], message.headers["i"]) == (-7, -300, 70000)
    assert message.headers["l"] == 2**40 and message.headers["raw"] == b"\x00\xff"
    assert message.headers["str"] == "héllo" and message.headers["id"] == ident.bytes
    assert message.headers["ts"] == 1_700_000_000_000


def test_exception_and_error_frames_decode() -> None:
    first, second = decode_all(exception_frame("throttlingException", b'{"message":"slow"}') + error_frame("E", "bad"))
    assert first.headers[":message-type"] == "exception" and first.headers[":exception-type"] == "throttlingException"
    assert second.headers == {":error-code": "E", ":error-message": "bad", ":message-type": "error"}


# ---- boto3 against the fake ------------------------------------------------------------------------------


def test_converse_round_trip(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    fake.script_for(NOVA, CReply(text="Sunny and mild.", usage=(19, 4), cache_read=3))
    answer = client(fake, *keys).converse(
        modelId=NOVA,
        system=[{"text": "Be terse."}],
        messages=user("Weather?"),
        inferenceConfig={"maxTokens": 64, "temperature": 0.2},
    )
    assert answer["output"]["message"] == {"role": "assistant", "content": [{"text": "Sunny and mild."}]}
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"] == {
        "inputTokens": 19,
        "outputTokens": 4,
        "totalTokens": 26,
        "cacheReadInputTokens": 3,
        "cacheWriteInputTokens": 0,
    }
    sent = fake.model_requests[-1]
    assert sent.path == "/model/amazon.nova-pro-v1%3A0/converse"  # boto3 percent-encodes the id
    assert sent.json["system"] == [{"text": "Be terse."}] and "modelId" not in sent.json
    caller = fake.caller_of(sent)
    assert caller is not None and caller.access_key == keys[0]


def test_converse_stream_events(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    fake.script_for(
        NOVA,
        CReply(text="Two calls.", tool_uses=[("get_weather", {"city": "Paris"})], reasoning=("Think.", "sig-1")),
    )
    response = client(fake, *keys).converse_stream(modelId=NOVA, messages=user("go"))
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert {"reasoningContent": {"signature": "sig-1"}} in deltas
    assert "".join(d["text"] for d in deltas if "text" in d) == "Two calls."
    arguments = "".join(d["toolUse"]["input"] for d in deltas if "toolUse" in d)
    assert json.loads(arguments) == {"city": "Paris"}
    [start] = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert start["start"]["toolUse"]["name"] == "get_weather" and start["contentBlockIndex"] == 2
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0


def test_invoke_model_with_claude(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    fake.script_for(CLAUDE, AReply(text="Hi there", usage=(9, 2)))
    response = client(fake, *keys).invoke_model(modelId=CLAUDE, body=claude_body("hello"))
    message = at.Message.model_validate_json(response["body"].read())
    assert [b.text for b in message.content if b.type == "text"] == ["Hi there"]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 2)
    assert fake.model_requests[-1].path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"


def test_invoke_model_with_response_stream(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    fake.script_for(CLAUDE, AReply(text="Hi there", tool_uses=[("get_time", {"tz": "CET"})]))
    response = client(fake, *keys).invoke_model_with_response_stream(modelId=CLAUDE, body=claude_body("hello"))
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(at.RawMessageStreamEvent)
    raw = [json.loads(part["chunk"]["bytes"]) for part in response["body"]]
    events = [adapter.validate_python(e) for e in raw if e["type"] != "ping"]  # pings are outside the union
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "Hi there"
    assert any(e.type == "content_block_start" and e.content_block.type == "tool_use" for e in events)


@pytest.mark.parametrize(
    ("exception", "status"),
    [("ThrottlingException", 429), ("ValidationException", 400), ("ServiceUnavailableException", 503)],
)
def test_errors_parse_as_boto3_client_errors(
    fake: FakeBedrock, keys: tuple[str, str], exception: str, status: int
) -> None:
    fake.script_for(NOVA, BFail(exception, "fake says no"))
    with pytest.raises(ClientError) as info:
        client(fake, *keys).converse(modelId=NOVA, messages=user("x"))
    error = info.value.response
    assert error["Error"]["Code"] == exception and error["Error"]["Message"] == "fake says no"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize("api", ["converse", "invoke"])
def test_in_stream_exceptions_parse_as_event_stream_errors(fake: FakeBedrock, keys: tuple[str, str], api: str) -> None:
    model = NOVA if api == "converse" else CLAUDE
    fake.script_for(model, BStreamError(after=2, exception="ThrottlingException", message="Too many tokens"))
    bedrock = client(fake, *keys)
    with pytest.raises(EventStreamError) as info:
        if api == "converse":
            list(bedrock.converse_stream(modelId=model, messages=user("x"))["stream"])
        else:
            list(bedrock.invoke_model_with_response_stream(modelId=model, body=claude_body("x"))["body"])
    assert info.value.response["Error"] == {"Code": "throttlingException", "Message": "Too many tokens"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_body_cut_short_is_truncated_on_the_wire(fake: FakeBedrock, stream: bool) -> None:
    """``StreamThenDie`` sends part of the answer and closes: the HTTP body is incomplete (a raw client
    sees it; a streamed one ends after the content frames, without ``messageStop``)."""
    fake.script_for(NOVA, StreamThenDie(chunks=2, how="fin"))
    connection = http.client.HTTPConnection(fake.host, fake.port, timeout=10)
    headers = {"authorization": "Bearer bedrock-api-key-fake-1", "content-type": "application/json"}
    operation = "converse-stream" if stream else "converse"
    connection.request("POST", f"/model/{NOVA}/{operation}", json.dumps({"messages": user("x")}), headers)
    response = connection.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    if stream:
        events = [m.headers[":event-type"] for m in decode_all(info.value.partial)]
        assert events == ["messageStart", "contentBlockDelta", "contentBlockDelta"]
    connection.close()


# ---- the fake's authentication ---------------------------------------------------------------------------


def refused(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_wrong_secret_is_an_invalid_signature(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    bad = client(fake, keys[0], keys[1] + "x")
    assert refused(lambda: bad.converse(modelId=NOVA, messages=user("x"))) == ("InvalidSignatureException", 403)
    stranger = client(fake, "AKIAUNKNOWN000000", keys[1])
    assert refused(lambda: stranger.converse(modelId=NOVA, messages=user("x"))) == ("UnrecognizedClientException", 403)


def test_temporary_credentials_need_their_session_token(fake: FakeBedrock) -> None:
    access_key, secret = fake.add_credentials(session_token="FwoGZXIvYXdzEFAKE")
    good = client(fake, access_key, secret, "FwoGZXIvYXdzEFAKE")
    assert good.converse(modelId=NOVA, messages=user("x"))["stopReason"] == "end_turn"
    assert fake.model_requests[-1].headers["x-amz-security-token"] == "FwoGZXIvYXdzEFAKE"
    without = client(fake, access_key, secret)
    assert refused(lambda: without.converse(modelId=NOVA, messages=user("x")))[0] == "UnrecognizedClientException"


def test_a_stale_signature_is_refused() -> None:
    with FakeBedrock(REGION, clock=lambda: time.time() + 3600) as late:
        access_key, secret = late.add_credentials()
        bedrock = client(late, access_key, secret)
        assert refused(lambda: bedrock.converse(modelId=NOVA, messages=user("x"))) == ("InvalidSignatureException", 403)
    with FakeBedrock("eu-west-1") as elsewhere:
        access_key, secret = elsewhere.add_credentials()
        wrong_region = client(elsewhere, access_key, secret)  # signs for us-east-1
        assert (
            refused(lambda: wrong_region.converse(modelId=NOVA, messages=user("x")))[0] == "InvalidSignatureException"
        )


def post_raw(fake: FakeBedrock, path: str, body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(fake.host, fake.port, timeout=10)
    try:
        connection.request("POST", path, json.dumps(body), {"content-type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_bedrock_api_key_is_a_bearer_token(fake: FakeBedrock) -> None:
    """boto3 sends ``AWS_BEARER_TOKEN_BEDROCK`` only over TLS, so this one is checked with a raw client."""
    path = f"/model/{NOVA}/converse"
    status, _ = post_raw(fake, path, {"messages": user("x")}, {"authorization": "Bearer bedrock-api-key-fake-1"})
    assert status == 200
    caller = fake.caller_of(fake.model_requests[-1])
    assert caller is not None and caller.api_key == "bedrock-api-key-fake-1"
    status, body = post_raw(fake, path, {"messages": user("x")}, {"authorization": "Bearer not-a-key"})
    assert status == 403 and b"API Key" in body
    status, body = post_raw(fake, path, {"messages": user("x")}, {})
    assert status == 403 and json.loads(body) == {"message": "Missing Authentication Token"}


def test_the_fake_checks_models_and_bodies(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    bedrock = client(fake, *keys)
    assert refused(lambda: bedrock.converse(modelId="no.such-model-v1:0", messages=user("x"))) == (
        "ValidationException",
        400,
    )
    assert refused(lambda: bedrock.invoke_model(modelId=NOVA, body=claude_body("x")))[0] == "ValidationException"
    with_model = claude_body("x", model="claude")
    assert refused(lambda: bedrock.invoke_model(modelId=CLAUDE, body=with_model))[0] == "ValidationException"
    two_users = [*user("a"), *user("b")]
    assert refused(lambda: bedrock.converse(modelId=NOVA, messages=two_users))[0] == "ValidationException"
    hot = {"temperature": 1.5}
    assert refused(lambda: bedrock.converse(modelId=NOVA, messages=user("x"), inferenceConfig=hot))[1] == 400
    assert fake.errors == []


def test_chunk_payloads_are_padded_base64(fake: FakeBedrock, keys: tuple[str, str]) -> None:
    """The raw frames carry ``{"bytes", "p"}`` as documented (boto3 hides both)."""
    from tests.fakes.anthropic_wire import Answer
    from tests.fakes.bedrock_wire import claude_frames

    messages = decode_all(b"".join(claude_frames(Answer("m", "Hi", input_tokens=3, output_tokens=1))))
    payloads = [json.loads(m.payload) for m in messages]
    assert all(set(p) == {"bytes", "p"} and p["p"] for p in payloads)
    last = json.loads(base64.b64decode(payloads[-1]["bytes"]))
    assert last["type"] == "message_stop" and last["amazon-bedrock-invocationMetrics"]["inputTokenCount"] == 3
