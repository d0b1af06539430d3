"""The fake Vertex AI upstream is faithful: google-auth's service-account credentials get their
token from its OAuth endpoint (JWT signatures really checked), ``google-genai`` in Vertex mode and
``anthropic.AnthropicVertex`` talk to its publisher-model routes and parse what it sends."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.genai import errors, types
from google.oauth2 import service_account

from tests.fakes.vertex_upstream import (
    SCOPE_CLOUD_PLATFORM,
    AFail,
    AReply,
    FakeVertex,
    GFail,
    GReply,
    Refuse,
    service_account_info,
)

PROJECT, REGION = "test-project", "us-east5"
GEMINI, CLAUDE = "gemini-2.5-flash", "claude-sonnet-4-6@20250929"
HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello there world"}]


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    with FakeVertex(project=PROJECT, region=REGION) as f:
        yield f
    assert f.errors == []


def credentials(info: dict[str, str], scopes: list[str] | None = None) -> service_account.Credentials:
    creds: service_account.Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=[SCOPE_CLOUD_PLATFORM] if scopes is None else scopes
    )
    return creds


def refresh(creds: service_account.Credentials) -> None:
    """What a client does before its first call: the JWT-bearer exchange at ``token_uri``."""
    creds.refresh(Request())  # type: ignore[no-untyped-call]


def gemini_client(fake: FakeVertex, creds: Any, location: str = REGION) -> genai.Client:
    options = types.HttpOptions(base_url=fake.url, timeout=5000)
    return genai.Client(vertexai=True, project=PROJECT, location=location, credentials=creds, http_options=options)


def claude_client(fake: FakeVertex, region: str = REGION, **auth: Any) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region=region, project_id=PROJECT, base_url=fake.url + "/v1", max_retries=0, timeout=5.0, **auth
    )


def raw(fake: FakeVertex, path: str, body: Any, token: str | None, form: bool = False) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        headers = {"content-type": "application/x-www-form-urlencoded" if form else "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        conn.request("POST", path, body if form else json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


CLAUDE_PATH = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/anthropic/models/{CLAUDE}:rawPredict"
GEMINI_PATH = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{GEMINI}:generateContent"
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


# ---- OAuth ----------------------------------------------------------------------------------------


def test_service_account_token_exchange_with_a_test_supplied_key(fake: FakeVertex) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = service_account_info(fake.token_uri, project_id=PROJECT, private_key=key)
    fake.trust(info["client_email"], key.public_key())
    client = gemini_client(fake, credentials(info))
    assert client.models.generate_content(model=GEMINI, contents="hello there").text == "echo: hello there"
    assert client.models.generate_content(model=GEMINI, contents="again").text == "echo: again"
    assert fake.tokens_issued == 1, "the token is cached by google-auth"
    (token_request,) = fake.token_requests
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(pair.split("=", 1) for pair in token_request.body.decode().split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    assert form["assertion"].count(".") == 2
    tokens = {r.headers["authorization"] for r in fake.predict_requests}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer ya29.fake-")
    paths = [r.path for r in fake.predict_requests]
    assert (
        paths
        == [f"/v1beta1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{GEMINI}:generateContent"] * 2
    )
    client.close()


def test_wrong_signature_unknown_account_and_missing_scope_are_refused(fake: FakeVertex) -> None:
    info = service_account_info(fake.token_uri, project_id=PROJECT)
    with pytest.raises(auth_exceptions.RefreshError, match="account not found"):
        refresh(credentials(info))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake.trust(info["client_email"], other.public_key())
    with pytest.raises(auth_exceptions.RefreshError, match="Invalid JWT Signature"):
        refresh(credentials(info))
    fake.trust(info["client_email"], info["private_key"])
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_scope"):
        refresh(credentials(info, scopes=[]))
    creds = credentials(info)
    refresh(creds)
    assert creds.token and creds.token.startswith("ya29.fake-") and fake.tokens_issued == 1
    status, body = raw(fake, "/token", "grant_type=password&username=x", None, form=True)
    assert (status, body["error"]) == (400, "unsupported_grant_type")


def test_bearer_token_is_required_and_expires(fake: FakeVertex) -> None:
    assert raw(fake, GEMINI_PATH, GEMINI_BODY, None)[0] == 401
    status, body = raw(fake, GEMINI_PATH, GEMINI_BODY, "ya29.made-up")
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    token = fake.issue_token()
    assert raw(fake, GEMINI_PATH, GEMINI_BODY, token)[0] == 200
    fake.clock = lambda: time.time() + 3601
    status, body = raw(
        fake, CLAUDE_PATH, {"anthropic_version": "vertex-2023-10-16", "max_tokens": 8, "messages": HELLO}, token
    )
    assert status == 401 and body["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    fake.clock = time.time
    fake.revoke_tokens()
    assert raw(fake, GEMINI_PATH, GEMINI_BODY, token)[0] == 401


def test_project_location_and_model_checks(fake: FakeVertex) -> None:
    token = fake.issue_token()
    status, body = raw(fake, GEMINI_PATH.replace(PROJECT, "other-project"), GEMINI_BODY, token)
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, body = raw(fake, GEMINI_PATH.replace(REGION, "europe-west4"), GEMINI_BODY, token)
    assert (status, body["error"]["status"]) == (404, "NOT_FOUND")
    status, body = raw(fake, GEMINI_PATH.replace(GEMINI, "gemini-nope"), GEMINI_BODY, token)
    assert (status, body["error"]["status"]) == (404, "NOT_FOUND")
    assert raw(fake, GEMINI_PATH.replace(REGION, "global"), GEMINI_BODY, token)[0] == 200
    status, body = raw(fake, GEMINI_PATH, {"contents": [{"parts": [{"text": "no role"}]}]}, token)
    assert (status, body["error"]["message"]) == (400, "Please use a valid role: user, model.")


# ---- Gemini on Vertex -------------------------------------------------------------------------------


def test_gemini_function_calls_thoughts_and_vertex_fields(fake: FakeVertex) -> None:
    client = gemini_client(fake, credentials(fake.service_account_info()), location="global")
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    fake.script_for(
        GEMINI, GReply(function_calls=calls, thoughts=("Both cities.", "c2ln")), GReply(text="Sunny and mild.")
    )
    response = client.models.generate_content(model=GEMINI, contents="Weather?")
    assert response.function_calls is not None and [(c.name, c.args) for c in response.function_calls] == calls
    assert response.create_time is not None
    usage = response.usage_metadata
    assert usage is not None and usage.traffic_type == types.TrafficType.ON_DEMAND and usage.thoughts_token_count == 2
    chunks = list(client.models.generate_content_stream(model=GEMINI, contents="Weather?"))
    assert "".join(c.text or "" for c in chunks) == "Sunny and mild."
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert fake.predict_requests[-1].path.endswith(
        f"/locations/global/publishers/google/models/{GEMINI}:streamGenerateContent"
    )
    assert fake.predict_requests[-1].query == "alt=sse"
    assert all(r.json["contents"][0]["role"] == "user" for r in fake.predict_requests)
    client.close()


def test_gemini_quota_error(fake: FakeVertex) -> None:
    client = gemini_client(fake, credentials(fake.service_account_info()))
    fake.script(GFail(429, retry_delay=2.5))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert info.value.details["error"]["details"][-1]["retryDelay"] == "2.5s"
    client.close()


# ---- Claude on Vertex -------------------------------------------------------------------------------


def test_claude_raw_predict_and_stream_with_an_access_token(fake: FakeVertex) -> None:
    client = claude_client(fake, access_token=fake.issue_token())
    fake.script(AReply(text="Hei!", tool_uses=[("get_weather", {"city": "Oslo"})], thinking=("Norwegian.", "c2ln")))
    message = client.messages.create(model=CLAUDE, max_tokens=64, messages=HELLO)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.stop_reason == "tool_use" and message.model == "claude-sonnet-4-6-20250929"
    with client.messages.stream(model=CLAUDE, max_tokens=64, messages=HELLO) as stream:
        assert stream.get_final_text() == "echo: hello there world"
    first, second = fake.predict_requests
    assert first.path == CLAUDE_PATH and second.path == CLAUDE_PATH.replace(":rawPredict", ":streamRawPredict")
    assert first.json == {"max_tokens": 64, "messages": HELLO, "anthropic_version": "2026-10-21"}
    assert second.json["stream"] is True and "model" not in second.json
    assert fake.tokens_issued == 0
    client.close()


def test_claude_with_google_credentials_and_global_region(fake: FakeVertex) -> None:
    client = claude_client(fake, region="global", credentials=credentials(fake.service_account_info()))
    fake.script_for(CLAUDE, AFail(529))
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model=CLAUDE, max_tokens=8, messages=HELLO)
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "overloaded_error"
    assert client.messages.create(model=CLAUDE, max_tokens=8, messages=HELLO).content[0].type == "text"
    assert fake.tokens_issued == 1
    assert "/locations/global/publishers/anthropic/" in fake.predict_requests[-1].path
    client.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": 8, "messages": HELLO}, "anthropic_version: Field required"),
        ({"anthropic_version": "2023-06-01", "max_tokens": 8, "messages": HELLO}, "anthropic_version: Input should be"),
        (
            {"anthropic_version": "vertex-2023-10-16", "model": "claude-x", "max_tokens": 8, "messages": HELLO},
            "model: Extra inputs are not permitted",
        ),
        ({"anthropic_version": "vertex-2023-10-16", "messages": HELLO}, "max_tokens: Field required"),
    ],
)
def test_claude_body_checks_are_anthropic_400s(fake: FakeVertex, body: dict[str, Any], message: str) -> None:
    status, answer = raw(fake, CLAUDE_PATH, body, fake.issue_token())
    assert status == 400 and answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"].startswith(message)


def test_vertex_2023_body_is_accepted_and_counts_tokens(fake: FakeVertex) -> None:
    token = fake.issue_token()
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 8, "messages": HELLO, "temperature": 0.2}
    status, answer = raw(fake, CLAUDE_PATH, body, token)
    assert status == 200 and answer["content"] == [{"type": "text", "text": "echo: hello there world"}]
    count_path = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/anthropic/models/count-tokens:rawPredict"
    status, answer = raw(fake, count_path, {"model": CLAUDE, "messages": HELLO}, token)
    assert (status, answer) == (200, {"input_tokens": 3})


def test_wrong_family_script_is_a_visible_test_bug(fake: FakeVertex) -> None:
    fake.script(GReply(text="for gemini"), Refuse())
    status, answer = raw(
        fake,
        CLAUDE_PATH,
        {"anthropic_version": "vertex-2023-10-16", "max_tokens": 8, "messages": HELLO},
        fake.issue_token(),
    )
    assert status == 500 and "other publisher" in answer["error"]["message"]
    assert len(fake.errors) == 1 and isinstance(fake.errors[0], TypeError)
    with pytest.raises(ConnectionError):
        raw(fake, GEMINI_PATH, GEMINI_BODY, fake.issue_token())
    fake.errors.clear()
