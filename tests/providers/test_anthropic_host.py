"""Anthropic host: every base_url form ends at …/v1/messages; headers pin the version."""

from __future__ import annotations

import pytest

from tests.providers.builders import channel
from unigate.dialects.anthropic import DIALECT
from unigate.providers.anthropic import PROVIDER, messages_url


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/v1/messages", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/v1/messages/", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/v1", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/v1/", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/messages"),
        ("https://gw.example/v1/acct/gw/anthropic", "https://gw.example/v1/acct/gw/anthropic/v1/messages"),
        ("https://proxy.example/claude/v1/messages?x=1#f", "https://proxy.example/claude/v1/messages"),
    ],
)
def test_every_base_url_form_reaches_the_messages_endpoint(base_url: str | None, expected: str) -> None:
    assert messages_url(base_url) == expected
    fields = {"engine": "claude", "model": ["claude-sonnet-4-5"]}
    ch = channel(**fields) if base_url is None else channel(base_url=base_url, **fields)
    assert PROVIDER.chat_call(ch, "claude-sonnet-4-5", False, "sk-ant-1").url == expected


def test_an_anthropic_url_selects_the_engine_and_keeps_its_path() -> None:
    ch = channel(base_url="https://api.anthropic.com/v1/messages", model=["claude-sonnet-4-5"])
    assert ch.engine == "anthropic"
    assert ch.raw_base_url == "https://api.anthropic.com/v1/messages"


@pytest.mark.parametrize("stream", [False, True])
def test_headers_carry_the_key_and_the_pinned_version(stream: bool) -> None:
    call = PROVIDER.chat_call(channel(engine="claude"), "claude-sonnet-4-5", stream, "sk-ant-1")
    assert dict(call.headers) == {
        "x-api-key": "sk-ant-1",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    assert call.params == {}
    assert "sk-ant-1" not in call.url


def test_no_key_no_key_header() -> None:
    call = PROVIDER.chat_call(channel(engine="claude"), "claude-sonnet-4-5", False, None)
    assert "x-api-key" not in call.headers


def test_channel_headers_come_last_and_replace_ours_whatever_their_case() -> None:
    ch = channel(
        engine="claude",
        preferences={"headers": {"anthropic-beta": "context-1m-2025-08-07", "Anthropic-Version": "2026-10-21"}},
    )
    headers = PROVIDER.chat_call(ch, "claude-sonnet-4-5", False, "sk-ant-1").headers
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    versions = [(k, v) for k, v in headers.items() if k.lower() == "anthropic-version"]
    assert versions == [("Anthropic-Version", "2026-10-21")]
    assert list(headers)[-2:] == ["anthropic-beta", "Anthropic-Version"]


@pytest.mark.anyio
async def test_dialect_authorize_and_settings() -> None:
    ch = channel(engine="claude")
    assert PROVIDER.engine == "anthropic"
    assert PROVIDER.dialect_for(ch, "claude-sonnet-4-5") is DIALECT
    call = PROVIDER.chat_call(ch, "claude-sonnet-4-5", True, "sk-ant-1")
    assert await PROVIDER.authorize(ch, call, "sk-ant-1") is call
    assert PROVIDER.body_settings(ch, "claude-sonnet-4-5") == {}
