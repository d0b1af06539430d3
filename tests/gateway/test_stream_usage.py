"""Exact usage for streams the client did not ask usage of (relay_body + relay_streams).

A pass-through stream without ``stream_options.include_usage`` used to reach the statistics with
estimated tokens. Now the gateway asks the upstream for usage anyway (on hosts that honour it —
providers/quirks.py ``stream_usage``), records the provider's counts, and strips the usage chunk
and the ``"usage": null`` members it caused, so the client reads exactly the stream it asked for.

Everything runs through a real gateway with statistics on (SQLite in ``tmp_path``) against the
fake OpenAI upstream, which answers ``include_usage`` as OpenAI does (checked first with the
official SDK pointed straight at it). Mistral's host is reached through the fake as an HTTP proxy,
so the quirk is decided on the real host name, as in production.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, RawStream, Reply
from tests.fakes.openai_wire import Answer, dumps, stream_chunks
from tests.gateway.harness import RunningGateway, run_gateway

ADMIN = "sk-admin-stream-usage-3e1f"
USER = "sk-user-stream-usage-7a2b"
UP = "sk-up-stream-usage-0c4d"
HI: Any = [{"role": "user", "content": "say something short"}]
DONE = b"data: [DONE]\n\n"


def frames(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [b"data: " + dumps(c) + b"\n\n" for c in chunks]


def wait_until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (records are written after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


# ---- the fake answers include_usage as OpenAI documents it ---------------------------------------


def test_the_fake_honours_include_usage_like_openai() -> None:
    """OpenAI: "an additional chunk will be streamed before the data: [DONE] message. The usage field on
    this chunk shows the token usage statistics for the entire request, and the choices field will
    always be an empty array. All other chunks will also include a usage field, but with a null
    value." (openai-openapi ChatCompletionStreamOptions)."""
    with FakeOpenAI(api_key=UP) as fake, openai.OpenAI(base_url=fake.base_url, api_key=UP, max_retries=0) as sdk:
        fake.script(Reply(text="one two three", usage=(9, 3)))
        chunks = list(
            sdk.chat.completions.create(
                model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
            )
        )
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (9, 3, 12)
        assert all(c.choices and c.usage is None for c in chunks[:-1])

        fake.script(Reply(text="one two three"))
        raw = httpx.post(
            fake.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": HI, "stream": True, "stream_options": {"include_usage": True}},
            headers={"authorization": f"Bearer {UP}"},
        )
        events = [json.loads(line[6:]) for line in raw.text.split("\n\n") if line.startswith("data: {")]
        assert all("usage" in e and e["usage"] is None for e in events[:-1]) and events[-1]["usage"]

        fake.script(Reply(text="one two three"))
        plain = list(sdk.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
        assert all(c.choices and c.usage is None and "usage" not in c.model_fields_set for c in plain)


# ---- through the gateway -------------------------------------------------------------------------


def config(fake: FakeOpenAI) -> str:
    return f"""
providers:
  - provider: openai
    base_url: {fake.base_url}
    api: {UP}
    model: [gpt-4o, gpt-4o-mini: smart]
  - provider: operator-removes
    base_url: {fake.base_url}
    api: {UP}
    model: [gpt-4o: removed]
    preferences:
      post_body_parameter_overrides:
        __remove__: [stream_options]
  - provider: mistral
    base_url: http://api.mistral.ai/v1
    api: {UP}
    model: [mistral-large-latest]
    preferences:
      proxy: http://127.0.0.1:{fake.port}
api_keys:
  - api: {ADMIN}
    role: admin
  - api: {USER}
    model: [all]
"""


@dataclass
class Gw:
    gw: RunningGateway
    fake: FakeOpenAI
    client: openai.OpenAI

    def post(self, body: dict[str, Any]) -> httpx.Response:
        resp = httpx.post(
            self.gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {USER}"}
        )
        assert resp.status_code == 200, resp.text
        return resp

    def sent(self) -> dict[str, Any]:
        return dict(self.fake.chat_requests[-1].json)

    def record(self) -> dict[str, Any]:
        """The statistics record of the latest chat request (waits for it to be written)."""
        want = len(self.fake.chat_requests)

        def fetch() -> list[dict[str, Any]] | None:
            resp = httpx.get(self.gw.base_url + "/stats/requests", headers={"authorization": f"Bearer {ADMIN}"})
            rows: list[dict[str, Any]] = resp.json()["data"]
            return rows if len(rows) >= want else None

        rows = wait_until(fetch)
        assert rows is not None, f"fewer than {want} records were written"
        return sorted(rows, key=lambda r: r["timestamp"])[-1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, FakeOpenAI]]:
    db: Path = tmp_path_factory.mktemp("stream-usage") / "stats.db"
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(db)}
    models = ("gpt-4o", "gpt-4o-mini", "mistral-large-latest")
    with FakeOpenAI(models=models, api_key=UP) as fake, run_gateway(config(fake), env=env) as gw:
        yield gw, fake


@pytest.fixture
def g(stack: tuple[RunningGateway, FakeOpenAI]) -> Iterator[Gw]:
    gw, fake = stack
    client = gw.client(USER)
    yield Gw(gw, fake, client)
    client.close()
    assert fake.pending_scripts == 0 and fake.errors == []


def test_a_stream_without_include_usage_is_recorded_with_the_providers_exact_usage(g: Gw) -> None:
    g.fake.script(Reply(text="exact counts please", usage=(37, 4)))
    resp = g.post({"model": "gpt-4o", "messages": HI, "stream": True})
    assert g.sent()["stream_options"] == {"include_usage": True}
    body = resp.content
    assert b"usage" not in body and body.endswith(b"\n\n" + DONE)
    events = [json.loads(part[6:]) for part in body.decode().split("\n\n") if part.startswith("data: {")]
    assert all(e["choices"] for e in events)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "exact counts please"
    rec = g.record()
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["tokens_estimated"]) == (37, 4, False)


def test_the_client_reads_byte_for_byte_the_stream_it_would_have_read(g: Gw) -> None:
    """Frames as OpenAI sends them with include_usage in, the frames without it out."""
    answer = Answer("gpt-4o", "same bytes as ever", prompt_tokens=21, completion_tokens=4)
    g.fake.script(RawStream([*frames(stream_chunks(answer, include_usage=True)), DONE]))
    resp = g.post({"model": "gpt-4o", "messages": HI, "stream": True})
    assert resp.content == b"".join(frames(stream_chunks(answer, include_usage=False))) + DONE
    rec = g.record()
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["tokens_estimated"]) == (21, 4, False)


def test_null_usage_in_other_spellings_and_an_alias_are_re_encoded_without_it(g: Gw) -> None:
    """Where the member cannot be cut from the text (spaced JSON) or the chunk is re-encoded
    anyway (the alias replaces ``model``), the chunk the client gets has no ``usage`` key."""
    answer = Answer("gpt-4o-mini", "spaced out", prompt_tokens=5, completion_tokens=2)
    spaced = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in stream_chunks(answer, include_usage=True)]
    assert b'"usage": null' in spaced[0]
    g.fake.script(RawStream([*spaced, DONE]))
    resp = g.post({"model": "smart", "messages": HI, "stream": True})
    events = [json.loads(part[6:]) for part in resp.text.split("\n\n") if part.startswith("data: {")]
    expected = stream_chunks(answer, include_usage=False)
    for chunk in expected:
        chunk["model"] = "smart"
    assert events == expected
    rec = g.record()
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["tokens_estimated"]) == (5, 2, False)


def test_a_client_that_asks_for_usage_gets_it_unchanged(g: Gw) -> None:
    answer = Answer("gpt-4o", "asked for it", prompt_tokens=8, completion_tokens=3)
    upstream = [*frames(stream_chunks(answer, include_usage=True)), DONE]
    g.fake.script(RawStream(upstream))
    options = {"include_usage": True, "include_obfuscation": False}
    resp = g.post({"model": "gpt-4o", "messages": HI, "stream": True, "stream_options": options})
    assert g.sent()["stream_options"] == options
    assert resp.content == b"".join(upstream)
    rec = g.record()
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["tokens_estimated"]) == (8, 3, False)

    g.fake.script(Reply(text="sdk view", usage=(6, 2)))
    chunks = list(
        g.client.chat.completions.create(
            model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 2)


def test_other_stream_options_are_kept_and_include_usage_false_is_overridden(g: Gw) -> None:
    g.fake.script(Reply(text="kept", usage=(3, 1)))
    resp = g.post(
        {
            "model": "gpt-4o",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": False, "include_obfuscation": False},
        }
    )
    assert g.sent()["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert b"usage" not in resp.content
    assert g.record()["tokens_estimated"] is False


def test_the_openai_sdk_reads_the_stripped_stream_normally(g: Gw) -> None:
    g.fake.script(Reply(text="parsed by the sdk", usage=(12, 4)))
    chunks = list(g.client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    assert chunks and all(c.choices and c.usage is None for c in chunks)
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "parsed by the sdk"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert g.sent()["stream_options"] == {"include_usage": True}
    rec = g.record()
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["tokens_estimated"]) == (12, 4, False)


def test_a_host_that_refuses_stream_options_gets_none_and_tokens_stay_estimated(g: Gw) -> None:
    """Mistral answers 422 ``extra_forbidden`` to ``stream_options`` (quirks.py cites it)."""
    g.fake.script(Reply(text="bonjour tout le monde", usage=(50, 50)))
    chunks = list(g.client.chat.completions.create(model="mistral-large-latest", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "bonjour tout le monde"
    assert g.fake.chat_requests[-1].path == "http://api.mistral.ai/v1/chat/completions"
    assert "stream_options" not in g.sent()
    rec = g.record()
    assert rec["tokens_estimated"] is True and rec["completion_tokens"] > 0
    assert (rec["prompt_tokens"], rec["completion_tokens"]) != (50, 50)


def test_an_operators_removal_of_stream_options_wins(g: Gw) -> None:
    g.fake.script(Reply(text="left alone", usage=(40, 40)))
    resp = g.post({"model": "removed", "messages": HI, "stream": True})
    assert "stream_options" not in g.sent()
    assert b"usage" not in resp.content
    assert g.record()["tokens_estimated"] is True


def test_non_streamed_requests_are_not_touched(g: Gw) -> None:
    g.fake.script(Reply(text="whole", usage=(7, 1)))
    resp = g.post({"model": "gpt-4o", "messages": HI})
    assert "stream_options" not in g.sent() and resp.json()["usage"]["prompt_tokens"] == 7
