"""Battery: generation parameters, reasoning and usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.battery.cases import cases
from tests.battery.checks import ask, raw_chunks, user
from tests.battery.harness import MODEL, Harness, Say

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def generation(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig")
    assert isinstance(config, dict), "no generationConfig"
    return config


@pytest.mark.parametrize("h", cases("json_mode"), indirect=True)
def test_json_mode(h: Harness, stream: bool) -> None:
    h.say(Say(text='{"answer": 42}'), stream=stream)
    got = ask(h, stream, user("answer in JSON"), response_format={"type": "json_object"})
    assert json.loads(got.text) == {"answer": 42}

    body = h.last()
    if h.family in ("openai", "cohere"):
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert h.family == "gemini", "a yes cell without a native expectation"
        assert generation(body)["responseMimeType"] == "application/json"
        assert "responseJsonSchema" not in generation(body)


@pytest.mark.parametrize("h", cases("json_schema"), indirect=True)
def test_json_schema(h: Harness, stream: bool) -> None:
    h.say(Say(text='{"answer": 42}'), stream=stream)
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    got = ask(h, stream, user("answer in JSON"), response_format=fmt)
    assert json.loads(got.text) == {"answer": 42}

    body = h.last()
    if h.family == "openai":
        assert body["response_format"] == fmt
    elif h.family == "anthropic":
        assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    elif h.family == "cohere":
        assert body["response_format"] == {"type": "json_object", "json_schema": SCHEMA}
    elif h.family == "bedrock":
        text_format = body["outputConfig"]["textFormat"]
        assert text_format["type"] == "json_schema"
        assert text_format["structure"]["jsonSchema"]["name"] == "answer"
        assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == SCHEMA  # a JSON string there
    else:
        assert generation(body)["responseMimeType"] == "application/json"
        assert generation(body)["responseJsonSchema"] == SCHEMA


@pytest.mark.parametrize("h", cases("stop"), indirect=True)
def test_stop_sequences(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("count"), stop=["END", "STOP"])
    assert got.finish == "stop"

    body = h.last()
    if h.family == "openai":
        assert body["stop"] == ["END", "STOP"]
    elif h.family in ("anthropic", "cohere"):
        assert body["stop_sequences"] == ["END", "STOP"]
    elif h.family == "bedrock":
        assert body["inferenceConfig"]["stopSequences"] == ["END", "STOP"]
    else:
        assert generation(body)["stopSequences"] == ["END", "STOP"]


@pytest.mark.parametrize("h", cases("stop_many"), indirect=True)
def test_six_stop_sequences(h: Harness, stream: bool) -> None:
    stops = [f"S{i}" for i in range(6)]
    got = ask(h, stream, user("count"), stop=stops)
    assert got.finish == "stop"

    body = h.last()
    if h.family == "openai":
        assert body["stop"] == stops
    elif h.family == "bedrock":
        assert body["inferenceConfig"]["stopSequences"] == stops
    else:
        assert h.family == "anthropic", "a yes cell without a native expectation"
        assert body["stop_sequences"] == stops


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("h", cases("max_tokens"), indirect=True)
def test_max_tokens_gives_length(h: Harness, stream: bool, field: str) -> None:
    h.say(Say(text="cut short", finish="length"), stream=stream)
    got = ask(h, stream, user("a long story"), **{field: 5})
    assert got.text == "cut short"
    assert got.finish == "length"

    body = h.last()
    if h.family == "openai":
        assert body[field] == 5
    elif h.family in ("anthropic", "cohere"):
        assert body["max_tokens"] == 5
    elif h.family == "bedrock":
        assert body["inferenceConfig"]["maxTokens"] == 5
    else:
        assert generation(body)["maxOutputTokens"] == 5


@pytest.mark.parametrize("h", cases("temperature_2"), indirect=True)
def test_temperature_above_one(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("be creative"), temperature=1.5, top_p=0.9)
    assert got.text == "echo: be creative"

    body = h.last()
    if h.family == "openai":
        assert body["temperature"] == 1.5 and body["top_p"] == 0.9
    elif h.family == "cohere":
        assert body["temperature"] == 1.5 and body["p"] == 0.9
    else:
        assert h.family == "gemini", "a yes cell without a native expectation"
        assert generation(body)["temperature"] == 1.5 and generation(body)["topP"] == 0.9


@pytest.mark.parametrize("h", cases("seed"), indirect=True)
def test_seed(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("roll"), seed=7)
    assert got.text == "echo: roll"

    body = h.last()
    if h.family in ("openai", "cohere"):
        assert body["seed"] == 7
    else:
        assert h.family == "gemini", "a yes cell without a native expectation"
        assert generation(body)["seed"] == 7


@pytest.mark.parametrize("h", cases("n"), indirect=True)
def test_n(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("twice"), n=2)
    assert got.text == "echo: twice"
    assert h.family == "openai", "a yes cell without a native expectation"
    assert h.last()["n"] == 2


@pytest.mark.parametrize("h", cases("logprobs"), indirect=True)
def test_logprobs(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("how sure"), logprobs=True, top_logprobs=2)
    assert got.text == "echo: how sure"
    assert h.family == "openai", "a yes cell without a native expectation"
    body = h.last()
    assert body["logprobs"] is True and body["top_logprobs"] == 2


@pytest.mark.parametrize("h", cases("reasoning"), indirect=True)
def test_reasoning(h: Harness, stream: bool) -> None:
    h.say(Say(text="42", reasoning="Six times seven is forty-two."), stream=stream)
    got = ask(h, stream, user("6*7?"), reasoning_effort="medium")
    assert got.text == "42"
    assert got.reasoning() == "Six times seven is forty-two."
    if got.chunks:  # reasoning streams before the answer
        kinds = []
        for chunk in got.chunks:
            delta = chunk.choices[0].delta if chunk.choices else None
            if delta is not None and (delta.model_extra or {}).get("reasoning_content"):
                kinds.append("r")
            elif delta is not None and delta.content:
                kinds.append("t")
        assert kinds == sorted(kinds, key="rt".index) and kinds[0] == "r" and kinds[-1] == "t"

    body = h.last()
    if h.family == "openai":
        assert body["reasoning_effort"] == "medium"
    elif h.family == "anthropic":
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
        assert body["max_tokens"] > 8192  # thinking counts inside max_tokens
    elif h.family == "cohere":
        assert body["thinking"] == {"type": "enabled", "token_budget": 8192}
    elif h.family == "bedrock":
        assert body["outputConfig"] == {"effort": "medium"}
    else:
        assert generation(body)["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}


@pytest.mark.parametrize("h", cases("usage"), indirect=True)
def test_usage(h: Harness) -> None:
    h.say(Say(text="counted", usage=(20, 5), cached=8))
    got = ask(h, False, user("count my tokens"))
    usage = got.completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (20, 5, 25)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 8


@pytest.mark.parametrize("h", cases("include_usage"), indirect=True)
def test_include_usage(h: Harness) -> None:
    h.say(Say(text="counted twice", usage=(20, 5), cached=8), stream=True)
    chunks = raw_chunks(h, user("count my tokens"), stream_options={"include_usage": True})
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    final = chunks[-1]
    assert final.choices == []
    assert final.model == MODEL
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (20, 5, 25)
    details = final.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens == 8
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "counted twice"

    # Without include_usage: no usage chunk at all.
    plain = raw_chunks(h, user("again"))
    assert all(c.choices for c in plain) and all(c.usage is None for c in plain)
