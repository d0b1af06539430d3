"""THE provider × scenario table: what each provider supports, as the battery tests it.

Every cell is one of:

* ``yes`` — a test of the battery passes for this provider (``cases.cases(scenario)`` hands the
  cell's provider to it);
* ``400`` — the gateway refuses the request with a clear 400 and sends nothing upstream
  (``test_refusals.py`` proves it with the request in ``REFUSALS``);
* ``n/a`` — the scenario does not apply (the note says why); nothing is tested;
* ``bug`` — the scenario should work but does not yet: its test runs as a strict xfail, so the
  fix flips the cell to ``yes`` (the note names the defect).

``scripts/providers_table.py`` renders this table into ``docs/providers.md``, and
``test_table_is_current.py`` fails when the document and the table disagree. Pure data: no
pytest, no gateway, so the script can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Status = Literal["yes", "400", "n/a", "bug"]


@dataclass(frozen=True)
class Cell:
    status: Status
    note: str = ""


Group = Literal["Conversation", "Tools", "Parameters", "Reasoning and usage", "Errors and streams"]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    """The column header in ``docs/providers.md``."""
    what: str
    """One line for the legend: what the test sends and checks."""
    group: Group
    """The table of ``docs/providers.md`` the column goes in."""


@dataclass(frozen=True)
class Provider:
    id: str
    title: str
    engine: str


PROVIDERS: tuple[Provider, ...] = (
    Provider("openai", "OpenAI-compatible (pass-through)", "openai"),
    Provider("anthropic", "Anthropic", "claude"),
    Provider("gemini", "Gemini (AI Studio)", "gemini"),
    Provider("vertex-gemini", "Vertex AI · Gemini", "vertex"),
    Provider("vertex-claude", "Vertex AI · Claude", "vertex"),
    Provider("cohere", "Cohere (v2 chat)", "cohere"),
    Provider("azure", "Azure OpenAI", "azure"),
    Provider("cloudflare", "Cloudflare Workers AI", "cloudflare"),
    Provider("openrouter", "OpenRouter", "openrouter"),
    Provider("bedrock-claude", "AWS Bedrock · Claude", "bedrock"),
    Provider("bedrock-converse", "AWS Bedrock · Converse", "bedrock"),
)
PROVIDER_IDS: tuple[str, ...] = tuple(p.id for p in PROVIDERS)

_C: Group = "Conversation"
_T: Group = "Tools"
_P: Group = "Parameters"
_R: Group = "Reasoning and usage"
_E: Group = "Errors and streams"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("text", "text", "a user message: the answer's text, finish reason, model alias, usage", _C),
    Scenario("system", "system", "system and developer messages → the provider's system field", _C),
    Scenario("multi_turn", "multi-turn", "consecutive same-role messages merged where the provider needs it", _C),
    Scenario("image", "image", "a `data:` URI image → the provider's inline image", _C),
    Scenario("image_url", "image URL", "an `https://` image URL, sent by reference", _C),
    Scenario("audio", "audio in", "an `input_audio` part → the provider's inline audio", _C),
    Scenario("tool_single", "tool call", "one tool call: its id, name and JSON arguments", _T),
    Scenario("tool_parallel", "parallel tools", "three calls in one turn: all of them, ids, stream indices", _T),
    Scenario("tool_result", "tool results", "results answering all, or one of several, calls", _T),
    Scenario("tool_choice", "tool_choice", "`none`/`auto`/`required`/named → the native form (`none` is not any)", _T),
    Scenario("parallel_off", "parallel off", "`parallel_tool_calls: false`", _T),
    Scenario("json_mode", "JSON mode", "`response_format: json_object`", _P),
    Scenario("json_schema", "json_schema", "`response_format: json_schema` → the native schema field", _P),
    Scenario("stop", "stop", "`stop` sequences", _P),
    Scenario("stop_many", "6 stops", "six `stop` sequences", _P),
    Scenario("max_tokens", "max_tokens", "`max_tokens` / `max_completion_tokens` → `finish_reason: length`", _P),
    Scenario("temperature_2", "temperature 1.5", "`temperature` above 1", _P),
    Scenario("seed", "seed", "`seed`", _P),
    Scenario("n", "n > 1", "`n: 2`", _P),
    Scenario("logprobs", "logprobs", "`logprobs: true`", _P),
    Scenario("reasoning", "reasoning", "thinking → `reasoning_content`; `reasoning_effort` → the native budget", _R),
    Scenario("reasoning_tool", "reasoning + forced tool", "`reasoning_effort` with `tool_choice: required`", _R),
    Scenario("usage", "usage", "prompt, completion and cached tokens of an answer", _R),
    Scenario(
        "include_usage",
        "include_usage",
        "`stream_options.include_usage`: one last chunk, with usage and `choices: []`",
        _R,
    ),
    Scenario("error_400", "upstream 400", "the client gets the 400 and the upstream's message; no retry", _E),
    Scenario("error_auth", "upstream 401/403", "the channel's other key, then the next channel; all refused → 502", _E),
    Scenario("error_429", "upstream 429", "the channel's other key, then the next channel", _E),
    Scenario("error_429_only", "429, one channel", "the only channel answers 429 → 429 with `Retry-After`", _E),
    Scenario("error_5xx", "upstream 5xx", "the next channel; all failing → the last upstream status", _E),
    Scenario("mid_stream_error", "mid-stream", "an in-band error after content: the stream ends with an error", _E),
    Scenario("truncated", "truncated stream", "dies after content → error; dies before content → next channel", _E),
)
SCENARIO_IDS: tuple[str, ...] = tuple(s.id for s in SCENARIOS)

YES = Cell("yes")
FORWARDED = Cell("yes", "forwarded unchanged: the upstream decides")


def refused(reason: str) -> Cell:
    return Cell("400", reason)


# Cells shared by the two Anthropic-speaking and the two Gemini-speaking hosts.
ANTHROPIC_CELLS: Mapping[str, Cell] = {
    "audio": refused("Anthropic models take no audio input"),
    "json_mode": refused("Anthropic has no JSON mode without a schema: use `json_schema`"),
    "temperature_2": refused("Anthropic accepts temperature 0–1 only"),
    "seed": refused("Anthropic has no `seed`"),
    "n": refused("one choice per request; `n` must be 1"),
    "logprobs": refused("Anthropic returns no log probabilities"),
    "reasoning_tool": refused("with thinking on, Anthropic allows tool_choice auto or none only"),
}
GEMINI_CELLS: Mapping[str, Cell] = {
    "image_url": refused(
        "Gemini takes images inline, from `gs://` or its Files API; unigate fetches and inlines "
        "http(s) URLs only for channels with `fetch_images: true` (tests/gateway/test_images.py)"
    ),
    "parallel_off": refused("Gemini has no switch to turn parallel function calls off"),
    "stop_many": refused("Gemini accepts at most 5 stop sequences"),
    "n": refused("one choice per request; `n` must be 1"),
    "logprobs": refused("log probabilities are not translated for Gemini"),
}
PASS_THROUGH_CELLS: Mapping[str, Cell] = {
    scenario: FORWARDED
    for scenario in ("parallel_off", "stop_many", "temperature_2", "seed", "n", "logprobs", "reasoning_tool")
}
"""OpenAI-compatible hosts: parameters the gateway forwards without translating."""

EXCEPT: Mapping[str, Mapping[str, Cell]] = {
    # provider id → the cells that are not a plain "yes" (one block per provider)
    "openai": PASS_THROUGH_CELLS,
    "anthropic": ANTHROPIC_CELLS,
    "gemini": GEMINI_CELLS,
    "vertex-gemini": GEMINI_CELLS,
    "vertex-claude": ANTHROPIC_CELLS,
    "cohere": {
        "audio": refused("Cohere models take no audio input"),
        "parallel_off": refused("Cohere has no switch to turn parallel tool calls off"),
        "stop_many": refused("Cohere accepts at most 5 stop sequences"),
        "n": refused("one choice per request; `n` must be 1"),
        "logprobs": refused("log probabilities are not translated for Cohere"),
    },
    "azure": PASS_THROUGH_CELLS,
    "cloudflare": {**PASS_THROUGH_CELLS, "image_url": FORWARDED, "audio": FORWARDED},
    "openrouter": PASS_THROUGH_CELLS,
    "bedrock-claude": {
        **ANTHROPIC_CELLS,
        "image_url": refused(
            "Claude on Bedrock takes base64 images only; unigate inlines http(s) URLs for channels with "
            "`fetch_images: true`"
        ),
        "error_429_only": Cell(
            "n/a", "Bedrock sends no `Retry-After`; the lone 429 is tested in tests/providers/test_bedrock_gateway.py"
        ),
    },
    "bedrock-converse": {
        "image_url": refused(
            "Converse takes images inline or from `s3://`; unigate inlines http(s) URLs for channels with "
            "`fetch_images: true`"
        ),
        "parallel_off": refused("Converse has no switch to turn parallel tool calls off"),
        "json_mode": refused("Converse has no JSON mode without a schema: use `json_schema`"),
        "temperature_2": refused("Converse accepts temperature 0–1 only"),
        "seed": refused("Converse has no `seed`"),
        "n": refused("one choice per request; `n` must be 1"),
        "logprobs": refused("Converse returns no log probabilities"),
        "error_429_only": Cell(
            "n/a", "Bedrock sends no `Retry-After`; the lone 429 is tested in tests/providers/test_bedrock_gateway.py"
        ),
    },
}

TABLE: Mapping[str, Mapping[str, Cell]] = {
    scenario: {p: EXCEPT.get(p, {}).get(scenario, YES) for p in PROVIDER_IDS} for scenario in SCENARIO_IDS
}
"""scenario → provider → cell."""


def cell(provider: str, scenario: str) -> Cell:
    return TABLE[scenario][provider]


def providers_with(scenario: str, *statuses: Status) -> list[str]:
    return [p for p in PROVIDER_IDS if TABLE[scenario][p].status in statuses]
