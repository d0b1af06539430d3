"""Gemini (AI Studio) host: API roots, the model as ONE path segment, the key in a header only."""

from __future__ import annotations

import pytest
from yarl import URL

from tests.providers.builders import channel
from unigate.dialects.gemini import DIALECT
from unigate.providers.gemini import PROVIDER, api_root


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com/v1beta", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com/v1beta/", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com/v1", "https://generativelanguage.googleapis.com/v1"),
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://generativelanguage.googleapis.com/v1beta/models", "https://generativelanguage.googleapis.com/v1beta"),
        (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
            "https://generativelanguage.googleapis.com/v1beta",
        ),
        (
            "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "https://generativelanguage.googleapis.com/v1",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta?key=AIzaSECRET",
            "https://generativelanguage.googleapis.com/v1beta",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta:generateContent",
            "https://generativelanguage.googleapis.com/v1beta",
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1beta"),
        ("https://proxy.example/gemini", "https://proxy.example/gemini/v1beta"),
        ("https://proxy.example/gemini/v1alpha/", "https://proxy.example/gemini/v1alpha"),
    ],
)
def test_api_root(base_url: str | None, expected: str) -> None:
    assert api_root(base_url) == expected


def test_urls_for_both_methods() -> None:
    ch = channel(base_url="https://generativelanguage.googleapis.com/v1beta", model=["gemini-2.5-flash"])
    assert ch.engine == "gemini"
    call = PROVIDER.chat_call(ch, "gemini-2.5-flash", False, "AIza-key-1")
    assert call.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert call.params == {}
    call = PROVIDER.chat_call(ch, "gemini-2.5-flash", True, "AIza-key-1")
    assert call.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert call.params == {"alt": "sse"}


def test_the_default_root_applies_when_base_url_is_unset() -> None:
    call = PROVIDER.chat_call(channel(engine="gemini"), "gemini-2.5-pro", False, "k")
    assert call.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"


@pytest.mark.parametrize("stream", [False, True])
def test_the_key_is_a_header_and_never_in_the_url(stream: bool) -> None:
    call = PROVIDER.chat_call(channel(engine="gemini"), "gemini-2.5-flash", stream, "AIzaSyKEY")
    assert dict(call.headers) == {
        "x-goog-api-key": "AIzaSyKEY",
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    sent = URL(call.url).extend_query(dict(call.params))
    assert "AIzaSyKEY" not in str(sent)
    assert "key" not in sent.query


def test_channel_headers_come_last() -> None:
    ch = channel(engine="gemini", preferences={"headers": {"X-Goog-Api-Key": "override", "x-extra": "1"}})
    headers = PROVIDER.chat_call(ch, "gemini-2.5-flash", False, "AIzaSyKEY").headers
    assert [k for k in headers if k.lower() == "x-goog-api-key"] == ["X-Goog-Api-Key"]
    assert headers["X-Goog-Api-Key"] == "override"
    assert headers["x-extra"] == "1"


HOSTILE = [
    "../../v1beta/files",
    "x%2f..%2fy",
    "m:generateContent?key=",
    "#frag",
    "a/b",
    "..",
    ".",
    "a b\r\nx-injected: 1",
    "files?pageSize=1000",
    "gemini-2.5-flash/../../../../v1beta/cachedContents",
]


@pytest.mark.parametrize("model", HOSTILE)
@pytest.mark.parametrize("stream", [False, True])
def test_a_model_name_stays_inside_one_path_segment(model: str, stream: bool) -> None:
    """Reliability matrix A17: parse the URL the way the pool (aiohttp/yarl) will send it."""
    call = PROVIDER.chat_call(channel(engine="gemini"), model, stream, "k")
    sent = URL(call.url).extend_query(dict(call.params))
    method = "streamGenerateContent" if stream else "generateContent"
    assert sent.host == "generativelanguage.googleapis.com"
    assert sent.parts == ("/", "v1beta", "models", f"{model}:{method}")
    assert dict(sent.query) == ({"alt": "sse"} if stream else {})
    assert sent.fragment == ""
    assert "\r" not in sent.raw_path and "\n" not in sent.raw_path


@pytest.mark.anyio
async def test_dialect_authorize_and_settings() -> None:
    ch = channel(engine="gemini")
    assert PROVIDER.engine == "gemini"
    assert PROVIDER.dialect_for(ch, "gemini-2.5-flash") is DIALECT
    call = PROVIDER.chat_call(ch, "gemini-2.5-flash", False, "k")
    assert await PROVIDER.authorize(ch, call, "k") is call
    assert PROVIDER.body_settings(ch, "gemini-2.5-flash") == {}
