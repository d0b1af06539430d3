"""Battery: tools — declarations, single and parallel calls, results, tool_choice."""

from __future__ import annotations

from typing import Any

import pytest

from tests.battery.cases import cases
from tests.battery.checks import TOOLS, Got, ask, user
from tests.battery.harness import Harness, Say

WEATHER_SCHEMA = TOOLS[0]["function"]["parameters"]
TIME_SCHEMA = TOOLS[1]["function"]["parameters"]


def check_declared(h: Harness, body: dict[str, Any]) -> None:
    """The two battery tools, in the provider's declaration form."""
    if h.family in ("openai", "cohere"):  # Cohere v2 declares tools in OpenAI's shape
        assert body["tools"] == TOOLS
    elif h.family == "anthropic":
        assert body["tools"] == [
            {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA},
            {"name": "get_time", "description": "Time in a zone", "input_schema": TIME_SCHEMA},
        ]
    elif h.family == "bedrock":
        assert body["toolConfig"]["tools"] == [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "inputSchema": {"json": WEATHER_SCHEMA},
                }
            },
            {"toolSpec": {"name": "get_time", "description": "Time in a zone", "inputSchema": {"json": TIME_SCHEMA}}},
        ]
    else:
        assert body["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parametersJsonSchema": WEATHER_SCHEMA,
                    },
                    {"name": "get_time", "description": "Time in a zone", "parametersJsonSchema": TIME_SCHEMA},
                ]
            }
        ]


def check_call_ids(got: Got, n: int) -> None:
    calls = got.message.tool_calls or []
    assert len(calls) == n
    ids = [c.id for c in calls]
    assert all(ids) and len(set(ids)) == n, ids
    assert all(c.type == "function" for c in calls)
    if got.chunks:
        # Each call opens once, at its own index, with its id and name; arguments follow by index.
        opened: dict[int, str] = {}
        for chunk in got.chunks:
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                if delta.id is not None:
                    assert delta.index not in opened, "a tool call was opened twice"
                    assert delta.function is not None and delta.function.name
                    opened[delta.index] = delta.id
                else:
                    assert delta.index in opened, "arguments before the call was opened"
        assert opened == dict(enumerate(ids))


@pytest.mark.parametrize("h", cases("tool_single"), indirect=True)
def test_single_tool_call(h: Harness, stream: bool) -> None:
    h.say(Say(calls=(("get_weather", {"city": "Paris"}),)), stream=stream)
    got = ask(h, stream, user("weather in Paris?"), tools=TOOLS)
    assert got.calls() == [("get_weather", {"city": "Paris"})]
    assert got.finish == "tool_calls"
    check_call_ids(got, 1)
    check_declared(h, h.last())


@pytest.mark.parametrize("h", cases("tool_parallel"), indirect=True)
def test_parallel_tool_calls(h: Harness, stream: bool) -> None:
    calls = (
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo", "unit": "celsius", "note": "a longer argument, to be split"}),
        ("get_time", {"tz": "CET"}),
    )
    h.say(Say(text="Checking.", calls=calls), stream=stream)
    got = ask(h, stream, user("weather in Paris and Oslo, and the time?"), tools=TOOLS)
    assert got.calls() == [(name, args) for name, args in calls]
    assert got.text == "Checking."
    assert got.finish == "tool_calls"
    check_call_ids(got, 3)


CALL_W = "call_weather_01"
CALL_T = "call_time_02"
ASKED: list[dict[str, Any]] = [
    {"role": "user", "content": "weather in Paris, and the time?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": CALL_W, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": CALL_T, "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
        ],
    },
]


@pytest.mark.parametrize("answered", ["one", "all"])
@pytest.mark.parametrize("h", cases("tool_result"), indirect=True)
def test_tool_results(h: Harness, stream: bool, answered: str) -> None:
    """Results in reverse call order (``all``), or one result answering one of two calls (``one``)."""
    results = [{"role": "tool", "tool_call_id": CALL_T, "content": "12:00"}]
    if answered == "all":
        results.append({"role": "tool", "tool_call_id": CALL_W, "content": '{"sky": "clear"}'})
    messages = [*ASKED, *results]
    h.say(Say(text="Clear sky at noon."), stream=stream)
    got = ask(h, stream, messages, tools=TOOLS)
    assert got.text == "Clear sky at noon."

    body = h.last()
    if h.family == "openai":
        assert body["messages"] == messages
    elif h.family == "anthropic":
        uses = [
            {"type": "tool_use", "id": CALL_W, "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": CALL_T, "name": "get_time", "input": {"tz": "CET"}},
        ]
        answers = [{"type": "tool_result", "tool_use_id": CALL_T, "content": "12:00"}]
        if answered == "all":
            answers.append({"type": "tool_result", "tool_use_id": CALL_W, "content": '{"sky": "clear"}'})
        assert body["messages"][1:] == [{"role": "assistant", "content": uses}, {"role": "user", "content": answers}]
    elif h.family == "cohere":  # results keep the client's order: Cohere pairs them by id
        assert body["messages"][1:] == [{"role": "assistant", "tool_calls": ASKED[1]["tool_calls"]}, *results]
    elif h.family == "bedrock":
        uses = [
            {"toolUse": {"toolUseId": CALL_W, "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": CALL_T, "name": "get_time", "input": {"tz": "CET"}}},
        ]
        answers = [{"toolResult": {"toolUseId": CALL_T, "content": [{"text": "12:00"}]}}]
        if answered == "all":
            answers.append({"toolResult": {"toolUseId": CALL_W, "content": [{"text": '{"sky": "clear"}'}]}})
        assert body["messages"][1:] == [{"role": "assistant", "content": uses}, {"role": "user", "content": answers}]
    else:
        calls = [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
        ]
        responses = [{"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}}]
        if answered == "all":  # Gemini pairs by order: results go back in call order
            responses.insert(0, {"functionResponse": {"name": "get_weather", "response": {"result": {"sky": "clear"}}}})
        assert body["contents"][1:] == [{"role": "model", "parts": calls}, {"role": "user", "parts": responses}]


NATIVE_CHOICE: dict[str, dict[str, Any]] = {
    "anthropic": {
        "none": {"type": "none"},
        "auto": {"type": "auto"},
        "required": {"type": "any"},
        "named": {"type": "tool", "name": "get_time"},
    },
    "bedrock": {  # Converse has no "none": the tools are left out instead
        "none": {},
        "auto": {"auto": {}},
        "required": {"any": {}},
        "named": {"tool": {"name": "get_time"}},
    },
    "gemini": {
        "none": {"functionCallingConfig": {"mode": "NONE"}},
        "auto": {"functionCallingConfig": {"mode": "AUTO"}},
        "required": {"functionCallingConfig": {"mode": "ANY"}},
        "named": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
    },
    # Cohere: auto is the default (no field); named = only that tool declared, REQUIRED.
    "cohere": {"none": "NONE", "auto": None, "required": "REQUIRED", "named": "REQUIRED"},
}
CLIENT_CHOICE: dict[str, Any] = {
    "none": "none",
    "auto": "auto",
    "required": "required",
    "named": {"type": "function", "function": {"name": "get_time"}},
}


@pytest.mark.parametrize("choice", list(CLIENT_CHOICE))
@pytest.mark.parametrize("h", cases("tool_choice"), indirect=True)
def test_tool_choice(h: Harness, stream: bool, choice: str) -> None:
    """The fakes answer like the real APIs: a forced choice gets a call to the forced tool (the
    first tool for ``required``), ``none``/``auto`` get text — so the native form is visible twice."""
    got = ask(h, stream, user("what time is it?"), tools=TOOLS, tool_choice=CLIENT_CHOICE[choice])
    if choice in ("none", "auto"):
        assert got.text == "echo: what time is it?"
        assert not got.message.tool_calls
        assert got.finish == "stop"
    else:
        expected = "get_time" if choice == "named" else "get_weather"
        assert [name for name, _ in got.calls()] == [expected]
        assert got.finish == "tool_calls"

    body = h.last()
    if h.family == "bedrock" and choice == "none":
        assert "toolConfig" not in body
    elif h.family == "cohere" and choice == "named":
        assert body["tools"] == [TOOLS[1]]
    else:
        check_declared(h, body)
    if h.family == "openai":
        assert body["tool_choice"] == CLIENT_CHOICE[choice]
    elif h.family == "anthropic":
        assert body["tool_choice"] == NATIVE_CHOICE["anthropic"][choice]
    elif h.family == "cohere":
        assert body.get("tool_choice") == NATIVE_CHOICE["cohere"][choice]
    elif h.family == "bedrock":
        assert body.get("toolConfig", {}).get("toolChoice", {}) == NATIVE_CHOICE["bedrock"][choice]
    else:
        assert body["toolConfig"] == NATIVE_CHOICE["gemini"][choice]


@pytest.mark.parametrize("h", cases("parallel_off"), indirect=True)
def test_parallel_tool_calls_off(h: Harness, stream: bool) -> None:
    h.say(Say(calls=(("get_time", {"tz": "UTC"}),)), stream=stream)
    got = ask(h, stream, user("time?"), tools=TOOLS, parallel_tool_calls=False)
    assert got.calls() == [("get_time", {"tz": "UTC"})]

    body = h.last()
    if h.family == "openai":
        assert body["parallel_tool_calls"] is False
    else:
        assert h.family == "anthropic", "a yes cell without a native expectation"
        assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("h", cases("reasoning_tool"), indirect=True)
def test_reasoning_with_forced_tool(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("time?"), tools=TOOLS, tool_choice="required", reasoning_effort="low")
    assert [name for name, _ in got.calls()] == ["get_weather"]

    body = h.last()
    if h.family == "openai":
        assert body["reasoning_effort"] == "low" and body["tool_choice"] == "required"
    elif h.family == "cohere":
        assert body["tool_choice"] == "REQUIRED"
        assert body["thinking"] == {"type": "enabled", "token_budget": 2048}
    elif h.family == "bedrock":
        assert body["toolConfig"]["toolChoice"] == {"any": {}} and body["outputConfig"] == {"effort": "low"}
    else:
        assert h.family == "gemini", "a yes cell without a native expectation"
        assert body["toolConfig"] == NATIVE_CHOICE["gemini"]["required"]
        assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
