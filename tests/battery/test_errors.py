"""Battery: upstream errors, in-band stream errors and truncated streams.

Channel ``a`` is tried first and ``b`` second; ``solo`` is alone. The error classes follow the
retry table (routing/retry.py): a client's 400 is final, a refused key makes way for the
channel's other key and then the next channel, a 429 or 5xx for the next channel.
"""

from __future__ import annotations

import threading
from typing import Literal

import openai
import pytest

from tests.battery.cases import cases
from tests.battery.checks import ask, raw_chunks, user
from tests.battery.harness import ERROR_MESSAGE, MODEL, RETRY_AFTER, SOLO, Harness


def check_every_key_then(h: Harness, channels: list[str]) -> None:
    """The upstream saw channel ``a`` once per key (each key once), then the rest of ``channels``."""
    sent = h.sent()
    tried_a = [s for s in sent if s.channel == "a"]
    assert len(tried_a) == max(1, len(h.keys["a"]))
    if h.keys["a"]:
        assert sorted(s.credential or "" for s in tried_a) == sorted(h.keys["a"])
    assert [s.channel for s in sent if s.channel != "a"] == channels


@pytest.mark.parametrize("h", cases("error_400"), indirect=True)
def test_upstream_400_is_final(h: Harness, stream: bool) -> None:
    h.fail("bad_request")
    with pytest.raises(openai.BadRequestError) as info:
        ask(h, stream, user("bad"))
    assert info.value.status_code == 400
    assert ERROR_MESSAGE in info.value.message
    assert [s.channel for s in h.sent()] == ["a"]  # not retried, not failed over


@pytest.mark.parametrize("kind", ["unauthorized", "forbidden"])
@pytest.mark.parametrize("h", cases("error_auth"), indirect=True)
def test_refused_key_tries_other_key_then_next_channel(
    h: Harness, stream: bool, kind: Literal["unauthorized", "forbidden"]
) -> None:
    h.fail_every_key(kind, "a")
    got = ask(h, stream, user("let me in"))
    assert got.text == "echo: let me in"
    check_every_key_then(h, ["b"])


@pytest.mark.parametrize("h", cases("error_auth"), indirect=True)
def test_every_key_refused_is_an_error(h: Harness, stream: bool) -> None:
    h.fail_every_key("unauthorized", "a")
    h.fail_every_key("forbidden", "b")
    with pytest.raises(openai.APIStatusError) as info:
        ask(h, stream, user("let me in"))
    assert info.value.status_code == 502  # the gateway's keys were refused, not the client's
    assert ERROR_MESSAGE in info.value.message
    assert len(h.sent("b")) == max(1, len(h.keys["b"]))
    check_every_key_then(h, ["b"] * max(1, len(h.keys["b"])))


@pytest.mark.parametrize("h", cases("error_429_only"), indirect=True)
def test_429_on_the_only_channel(h: Harness, stream: bool) -> None:
    h.fail("rate_limited", "solo")
    client = h.client()
    with pytest.raises(openai.RateLimitError) as info:
        if stream:
            list(client.chat.completions.create(model=SOLO, messages=user("hurry"), stream=True))
        else:
            client.chat.completions.create(model=SOLO, messages=user("hurry"))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == str(RETRY_AFTER)
    assert ERROR_MESSAGE in info.value.message
    assert [s.channel for s in h.sent()] == ["solo"]


@pytest.mark.parametrize("h", cases("error_429"), indirect=True)
def test_429_moves_to_next_channel(h: Harness, stream: bool) -> None:
    h.fail_every_key("rate_limited", "a")
    got = ask(h, stream, user("hurry"))
    assert got.text == "echo: hurry"
    check_every_key_then(h, ["b"])


@pytest.mark.parametrize("kind", ["server", "overloaded"])
@pytest.mark.parametrize("h", cases("error_5xx"), indirect=True)
def test_5xx_moves_to_next_channel(h: Harness, stream: bool, kind: Literal["server", "overloaded"]) -> None:
    h.fail(kind, "a")
    got = ask(h, stream, user("again"))
    assert got.text == "echo: again"
    assert [s.channel for s in h.sent()] == ["a", "b"]  # a 5xx blames the channel, not the key


@pytest.mark.parametrize("h", cases("error_5xx"), indirect=True)
def test_5xx_everywhere_keeps_the_last_status(h: Harness, stream: bool) -> None:
    h.fail("server", "a")
    h.fail("overloaded", "b")
    with pytest.raises(openai.InternalServerError) as info:
        ask(h, stream, user("again"))
    assert info.value.status_code == h.status_of("overloaded")
    assert ERROR_MESSAGE in info.value.message
    assert [s.channel for s in h.sent()] == ["a", "b"]


def read_until_error(h: Harness, gate: threading.Event) -> str:
    """Read a stream that must fail after content; returns the content seen before the error.

    ``gate`` holds the upstream back after its first content. The gateway answers with headers
    only once it has committed the stream (seen content), so the gate opens right after them:
    whatever the upstream does next happens after the commit point."""
    seen: list[str] = []
    try:
        stream = h.client().chat.completions.create(model=MODEL, messages=user("go"), stream=True)
        gate.set()
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
    finally:
        gate.set()
    # An in-band error event, not a broken connection: the gateway closes the stream cleanly.
    assert not isinstance(info.value, openai.APIConnectionError)
    return "".join(seen)


@pytest.mark.parametrize("h", cases("mid_stream_error"), indirect=True)
def test_error_event_after_content_ends_the_stream(h: Harness) -> None:
    gate = threading.Event()
    h.pause_after_content(gate, then="error")
    seen = read_until_error(h, gate)
    assert seen == "part0 part1 "
    assert [s.channel for s in h.sent()] == ["a"]  # committed: never retried


@pytest.mark.parametrize("h", cases("mid_stream_error"), indirect=True)
def test_error_event_before_content_fails_over(h: Harness) -> None:
    h.stream_error(after=0)
    chunks = raw_chunks(h, user("go"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: go"
    assert [s.channel for s in h.sent()] == ["a", "b"]


@pytest.mark.parametrize("how", ["reset", "fin", "end"])
@pytest.mark.parametrize("h", cases("truncated"), indirect=True)
def test_stream_dying_after_content_is_an_error(h: Harness, how: Literal["reset", "fin", "end"]) -> None:
    """``end``: a well-formed HTTP body that stops without the stream's own ending."""
    gate = threading.Event()
    h.pause_after_content(gate, then=how)
    seen = read_until_error(h, gate)
    assert seen == "part0 part1 "
    assert [s.channel for s in h.sent()] == ["a"]


@pytest.mark.parametrize("how", ["reset", "fin", "end"])
@pytest.mark.parametrize("h", cases("truncated"), indirect=True)
def test_dying_before_content_fails_over(h: Harness, stream: bool, how: Literal["reset", "fin", "end"]) -> None:
    """A stream that dies before its first content, or a non-streamed body cut in half."""
    h.die(0 if stream else 2, how)
    got = ask(h, stream, user("go"))
    assert got.text == "echo: go"
    assert [s.channel for s in h.sent()] == ["a", "b"]
