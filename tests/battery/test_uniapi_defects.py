"""The uni-api defects named by issue 4, one test each, through the gateway.

uni-api's early versions returned raw Anthropic JSON for non-streamed Claude calls, sent no
``finish_reason`` in Claude or Gemini streams, dropped Gemini usage and function calls, converted
only the first of several parallel tool calls, and mapped ``tool_choice: "none"`` to "any".
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletion

from tests.battery.checks import TOOLS, ask, raw_chunks, user
from tests.battery.harness import CLIENT_KEY, MODEL, Harness, Say

CLAUDE = ["anthropic", "vertex-claude"]
GEMINI = ["gemini", "vertex-gemini"]
TRANSLATED = ["anthropic", "gemini", "vertex-gemini", "vertex-claude"]


def post(h: Harness, body: dict[str, Any]) -> httpx.Response:
    assert h.gw is not None
    return httpx.post(
        h.gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=30
    )


def sse_chunks(h: Harness, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a raw stream, ``[DONE]`` last and excluded."""
    resp = post(h, {**body, "stream": True})
    assert resp.status_code == 200
    datas = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    return [json.loads(d) for d in datas[:-1]]


@pytest.mark.parametrize("h", CLAUDE, indirect=True)
def test_non_streamed_claude_answers_openai_json(h: Harness) -> None:
    resp = post(h, {"model": MODEL, "messages": user("hi Claude")})
    assert resp.status_code == 200
    body = resp.json()
    # Not Anthropic's message object ...
    assert body.get("type") != "message"
    assert not {"content", "stop_reason", "stop_sequence", "role"} & body.keys()
    # ... but a chat.completion the openai SDK types accept, with OpenAI's usage names.
    completion = ChatCompletion.model_validate(body)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "echo: hi Claude"
    assert completion.choices[0].finish_reason == "stop"
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


@pytest.mark.parametrize("h", TRANSLATED, indirect=True)
def test_claude_and_gemini_streams_carry_a_finish_reason(h: Harness) -> None:
    chunks = sse_chunks(h, {"model": MODEL, "messages": user("finish me")})
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f is not None] == ["stop"]
    assert finishes[-1] == "stop"  # the last choice chunk closes the answer

    h.say(Say(calls=(("get_time", {"tz": "UTC"}),)))
    chunks = sse_chunks(h, {"model": MODEL, "messages": user("time?"), "tools": TOOLS})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "tool_calls"
    ]


@pytest.mark.parametrize("h", GEMINI, indirect=True)
def test_gemini_usage_is_present(h: Harness) -> None:
    h.say(Say(text="eleven words? no, three", usage=(11, 3)))
    usage = h.client().chat.completions.create(model=MODEL, messages=user("count")).usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 3, 14)

    h.say(Say(text="streamed", usage=(12, 4)))
    chunks = raw_chunks(h, user("count"), stream_options={"include_usage": True})
    final = chunks[-1].usage
    assert final is not None and (final.prompt_tokens, final.completion_tokens, final.total_tokens) == (12, 4, 16)


@pytest.mark.parametrize("h", GEMINI, indirect=True)
def test_gemini_function_calls_are_present(h: Harness, stream: bool) -> None:
    h.say(Say(calls=(("get_weather", {"city": "Lyon"}),)))
    got = ask(h, stream, user("weather?"), tools=TOOLS)
    assert got.calls() == [("get_weather", {"city": "Lyon"})]
    assert got.finish == "tool_calls"


@pytest.mark.parametrize("h", TRANSLATED, indirect=True)
def test_every_parallel_tool_call_is_converted(h: Harness, stream: bool) -> None:
    calls = tuple(("get_weather", {"city": city}) for city in ("Paris", "Oslo", "Lima", "Pune"))
    h.say(Say(calls=calls))
    got = ask(h, stream, user("four cities"), tools=TOOLS)
    assert got.calls() == [(name, args) for name, args in calls]
    assert len({c.id for c in got.message.tool_calls or []}) == 4


@pytest.mark.parametrize("h", TRANSLATED, indirect=True)
def test_tool_choice_none_is_not_any(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("no tools please"), tools=TOOLS, tool_choice="none")
    assert got.text == "echo: no tools please" and not got.message.tool_calls  # the fakes obey the native choice
    body = h.last()
    if h.family == "anthropic":
        assert body["tool_choice"] == {"type": "none"}
    else:
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
