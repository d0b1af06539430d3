"""OpenRouter through a running gateway: nothing dropped or flattened (uni-api's ``openrouter`` engine
dropped ``temperature``, ``max_tokens`` and ``tools`` and flattened content parts — uni-api-compat.md
§4.4), attribution headers from ``preferences.headers``, model discovery, and the ``reasoning``
field normalised to ``reasoning_content``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Reply
from tests.gateway.harness import RunningGateway, run_gateway
from tests.providers.builders import channel
from unigate.providers.openai import PROVIDER, chat_headers
from unigate.providers.quirks import quirks_for

KEY = "sk-or-v1-canary-2f1b"
CLIENT = "sk-client-openrouter-8e04"
MODELS = ("meta-llama/llama-3-8b-instruct", "deepseek/deepseek-r1")
HEADERS = {"HTTP-Referer": "https://chat.example.com", "X-OpenRouter-Title": "Example Chat"}


def test_attribution_headers_come_from_the_channel_and_replace_ours_whatever_their_case() -> None:
    ch = channel(
        engine="openrouter",
        base_url="https://openrouter.ai/api/v1",
        preferences={"headers": {**HEADERS, "Accept": "text/event-stream"}},
    )
    assert ch.engine == "openai" and quirks_for(ch).provider == "OpenRouter"
    headers = PROVIDER.chat_call(ch, MODELS[0], True, KEY).headers
    assert headers == chat_headers(ch, KEY)
    assert headers["HTTP-Referer"] == HEADERS["HTTP-Referer"]
    assert headers["X-OpenRouter-Title"] == HEADERS["X-OpenRouter-Title"]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert [k for k in headers if k.lower() == "accept"] == ["Accept"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=MODELS, api_key=KEY) as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[RunningGateway]:
    headers = "".join(f"        {k}: {v}\n" for k, v in HEADERS.items())
    text = (
        "providers:\n  - provider: openrouter\n    engine: openrouter\n"
        f"    base_url: {fake.base_url}\n    api: {KEY}\n    preferences:\n      headers:\n{headers}"
        f"api_keys:\n  - api: {CLIENT}\n    model: [all]\n"
    )  # no `model:` list: the models are discovered from GET …/models
    with run_gateway(text) as gateway:
        yield gateway


TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
MESSAGES: Any = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is on this card,"},
            {"type": "text", "text": "and the weather in Oslo?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        ],
    },
]


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_is_dropped_or_flattened(gw: RunningGateway, fake: FakeOpenAI, stream: bool) -> None:
    mark = len(fake.chat_requests)
    params: dict[str, Any] = {
        "temperature": 0.4,
        "top_p": 0.9,
        "max_tokens": 77,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "n": 1,
        "user": "u-1",
        "stop": ["END"],
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }
    with gw.client(CLIENT) as client:
        reply: Any = client.chat.completions.create(model=MODELS[0], messages=MESSAGES, stream=stream, **params)
        if stream:
            list(reply)
    [req] = fake.chat_requests[mark:]
    expected = {"model": MODELS[0], "messages": MESSAGES, "stream": stream, **params}
    assert req.json == expected
    assert req.headers["http-referer"] == HEADERS["HTTP-Referer"]
    assert req.headers["x-openrouter-title"] == HEADERS["X-OpenRouter-Title"]
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert CLIENT not in str(req.headers)


def test_reasoning_is_normalised(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.script_for(MODELS[1], Reply(text="9.8", reasoning="compare tenths", reasoning_field="reasoning"))
    with gw.client(CLIENT) as client:
        completion = client.chat.completions.create(model=MODELS[1], messages=[{"role": "user", "content": "?"}])
    extra = completion.choices[0].message.model_extra or {}
    assert extra.get("reasoning_content") == "compare tenths" and "reasoning" not in extra
    assert fake.pending_scripts == 0
