"""Battery: every ``400`` cell of the matrix — a clear refusal, and nothing sent upstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

from tests.battery.cases import refusal_cases
from tests.battery.checks import TOOLS, user
from tests.battery.harness import MODEL, Harness


@dataclass(frozen=True)
class Refusal:
    """The request that exercises a scenario the provider cannot express, and the ``param`` the
    400 must name."""

    param: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    messages: Any = field(default_factory=lambda: user("please"))


REFUSALS: dict[str, Refusal] = {
    "image_url": Refusal(
        "messages",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and this"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    ),
    "audio": Refusal(
        "messages",
        messages=[
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}],
            }
        ],
    ),
    "parallel_off": Refusal("parallel_tool_calls", {"tools": TOOLS, "parallel_tool_calls": False}),
    "json_mode": Refusal("response_format", {"response_format": {"type": "json_object"}}),
    "stop_many": Refusal("stop", {"stop": [f"S{i}" for i in range(6)]}),
    "temperature_2": Refusal("temperature", {"temperature": 1.5}),
    "seed": Refusal("seed", {"seed": 7}),
    "n": Refusal("n", {"n": 2}),
    "logprobs": Refusal("logprobs", {"logprobs": True}),
    "reasoning_tool": Refusal("tool_choice", {"tools": TOOLS, "tool_choice": "required", "reasoning_effort": "low"}),
}


@pytest.mark.parametrize(("h", "scenario"), refusal_cases(), indirect=["h"])
def test_refused_with_a_clear_400(h: Harness, scenario: str, stream: bool) -> None:
    refusal = REFUSALS[scenario]
    with pytest.raises(openai.BadRequestError) as info:
        h.client().chat.completions.create(model=MODEL, messages=refusal.messages, stream=stream, **refusal.kwargs)
    err = info.value
    assert err.status_code == 400
    assert err.type == "invalid_request_error"
    assert err.param == refusal.param
    assert len(err.message) > 20  # says what cannot be done, not just "bad request"
    assert h.sent() == []  # refused before anything reached the provider
