"""Cohere host: every base_url form ends at …/v2/chat (uni-api's v1 forms too); a bearer key."""

from __future__ import annotations

import pytest

from tests.providers.builders import channel
from unigate.dialects.cohere import DIALECT
from unigate.providers.cohere import PROVIDER, chat_url
from unigate.providers.registry import PROVIDERS, provider_for

MODEL = "command-a-03-2025"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com/", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com/v2", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com/v2/", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com/v2/chat", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com/v1", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.com/v1/chat", "https://api.cohere.com/v2/chat"),
        ("https://api.cohere.ai/v1/chat/", "https://api.cohere.ai/v2/chat"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v2/chat"),
        ("https://gw.example/cohere", "https://gw.example/cohere/v2/chat"),
        ("https://gw.example/cohere/v2/chat?key=x#f", "https://gw.example/cohere/v2/chat"),
    ],
)
def test_every_base_url_form_reaches_the_v2_chat_endpoint(base_url: str | None, expected: str) -> None:
    assert chat_url(base_url) == expected
    fields = {"engine": "cohere", "model": [MODEL]}
    ch = channel(**fields) if base_url is None else channel(base_url=base_url, **fields)
    assert PROVIDER.chat_call(ch, MODEL, False, "co-key-1").url == expected


@pytest.mark.parametrize("base_url", ["https://api.cohere.com/v1/chat", "https://api.cohere.ai"])
def test_a_cohere_url_selects_the_engine_and_its_host(base_url: str) -> None:
    ch = channel(base_url=base_url, model=[MODEL])
    assert ch.engine == "cohere"
    assert ch.raw_base_url == base_url
    host = provider_for(ch)
    assert host is PROVIDERS["cohere"] is PROVIDER
    assert host.dialect_for(ch, MODEL) is DIALECT


@pytest.mark.parametrize("stream", [False, True])
def test_headers_carry_the_bearer_key(stream: bool) -> None:
    call = PROVIDER.chat_call(channel(engine="cohere"), MODEL, stream, "co-key-1")
    assert dict(call.headers) == {
        "authorization": "Bearer co-key-1",
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    assert call.params == {}
    assert "co-key-1" not in call.url


def test_no_key_no_authorization_header() -> None:
    call = PROVIDER.chat_call(channel(engine="cohere"), MODEL, False, None)
    assert "authorization" not in call.headers


def test_channel_headers_come_last_and_replace_ours_whatever_their_case() -> None:
    ch = channel(
        engine="cohere", preferences={"headers": {"X-Client-Name": "unigate", "Accept": "application/x-ndjson"}}
    )
    call = PROVIDER.chat_call(ch, MODEL, True, "co-key-1")
    assert call.headers["X-Client-Name"] == "unigate"
    assert call.headers["Accept"] == "application/x-ndjson" and "accept" not in call.headers
    assert call.headers["authorization"] == "Bearer co-key-1"


@pytest.mark.anyio
async def test_authorize_adds_nothing() -> None:
    ch = channel(engine="cohere")
    call = PROVIDER.chat_call(ch, MODEL, False, "co-key-1")
    assert await PROVIDER.authorize(ch, call, "co-key-1") is call
    assert PROVIDER.body_settings(ch, MODEL) == {}
    assert PROVIDER.engine == "cohere"
