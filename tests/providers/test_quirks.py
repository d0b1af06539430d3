"""Host quirks (providers/quirks.py): the table's resolution and semantics, then every quirk end to
end through a running gateway against the fake OpenAI upstream — request side (what the upstream
receives, or our 400 and nothing sent) and response side (what the client reads).

Host-matched rules need the real host in the URL: those channels use ``http://<host>/…`` with
the fake as their HTTP proxy, so the fake sees the absolute-form target and the gateway decides
quirks on the configured host exactly as in production. Engine-matched rules (``openrouter``,
``ollama``, ``vllm``) point straight at the fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.clock import FakeClock
from tests.fakes.openai_upstream import FakeOpenAI, RawStream, Reply
from tests.fakes.openai_wire import Answer, dumps, stream_chunks
from tests.gateway.harness import RunningGateway, run_gateway
from tests.providers.builders import channel
from unigate.errors import UnsupportedFeature
from unigate.providers.quirks import (
    NO_QUIRKS,
    RULES,
    ChunkNormaliser,
    Quirks,
    Verdict,
    apply_request,
    injects_stream_usage,
    markdown_table,
    normalise_completion,
    quirks_for,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "hosts" / "openai-compatible.md"
BEGIN, END = "<!-- quirks-table:begin -->\n", "<!-- quirks-table:end -->"


def by_provider(name: str) -> Quirks:
    return next(rule.quirks for rule in RULES if rule.quirks.provider == name)


# ---- resolution -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "provider"),
    [
        ({"base_url": "https://api.groq.com/openai/v1"}, "Groq"),
        ({"base_url": "https://API.Groq.com/openai/v1/chat/completions"}, "Groq"),
        ({"base_url": "https://api.deepseek.com"}, "DeepSeek"),
        ({"base_url": "https://api.mistral.ai/v1"}, "Mistral"),
        ({"base_url": "https://api.siliconflow.cn/v1"}, "SiliconFlow"),
        ({"base_url": "https://api.siliconflow.com/v1"}, "SiliconFlow"),
        ({"base_url": "https://openrouter.ai/api/v1"}, "OpenRouter"),
        ({"engine": "openrouter", "base_url": "https://corp-proxy.example/or/v1"}, "OpenRouter"),
        ({"engine": "OpenRouter", "base_url": "https://api.groq.com/openai/v1"}, "OpenRouter"),
        ({"engine": "ollama", "base_url": "http://localhost:11434/v1"}, "Ollama"),
        ({"engine": "vllm", "base_url": "http://gpu-box:8000/v1"}, "vLLM"),
        ({"engine": "azure", "base_url": "https://res.openai.azure.com"}, "Azure OpenAI"),
        ({"base_url": "https://res.openai.azure.com"}, "Azure OpenAI"),
    ],
)
def test_rules_match_the_configured_engine_then_the_host(fields: dict[str, Any], provider: str) -> None:
    assert quirks_for(channel(**fields)).provider == provider


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"base_url": "https://api.openai.com/v1"},
        {"base_url": "https://notgroq.com/v1"},
        {"base_url": "https://api.groq.com.evil.example/v1"},
        {"engine": "gpt", "base_url": "http://127.0.0.1:1/v1"},
        {"cf_account_id": "acc"},
    ],
)
def test_everything_else_has_no_quirks(fields: dict[str, Any]) -> None:
    quirks = quirks_for(channel(**fields))
    assert quirks is NO_QUIRKS and not quirks.request and not quirks.response


def test_the_decision_is_cached_per_channel_shape() -> None:
    a = quirks_for(channel(base_url="https://api.groq.com/openai/v1"))
    b = quirks_for(channel(provider="other", base_url="https://api.groq.com/openai/v1"))
    assert a is b is by_provider("Groq")


def test_the_flags_say_which_side_has_work() -> None:
    assert by_provider("DeepSeek").request and not by_provider("DeepSeek").response
    assert by_provider("OpenRouter").response and not by_provider("OpenRouter").request
    assert by_provider("Groq").request and by_provider("Groq").response
    assert Quirks(max_n=1).request and Quirks(usage_path=("x",)).response


def test_every_rule_cites_a_document_and_matches_something() -> None:
    for rule in RULES:
        assert rule.docs and all(url.startswith("https://") for url in rule.docs), rule.quirks.provider
        assert rule.hosts or rule.engines
        assert rule.quirks.request or rule.quirks.response


@pytest.mark.parametrize(
    ("provider", "asked"),
    [
        ("Groq", False),  # x_groq.usage always comes
        ("DeepSeek", True),
        ("Mistral", False),  # 422 extra_forbidden
        ("SiliconFlow", False),  # not documented
        ("OpenRouter", False),  # "has no effect"
        ("Ollama", True),
        ("vLLM", True),
        ("Azure OpenAI", True),
    ],
)
def test_stream_usage_is_asked_only_of_hosts_that_honour_it(provider: str, asked: bool) -> None:
    assert by_provider(provider).stream_usage is asked
    assert NO_QUIRKS.stream_usage  # a plain OpenAI-compatible host: OpenAI's documented field


@pytest.mark.parametrize(
    ("base_url", "asked"),
    [
        ("https://res.openai.azure.com", True),  # the default api-version, 2024-10-21
        ("https://res.openai.azure.com/openai/v1", True),
        ("https://res.openai.azure.com?api-version=2024-09-01-preview", True),
        ("https://res.openai.azure.com/openai?api-version=2025-04-01-preview", True),
        ("https://res.openai.azure.com?api-version=2024-08-01-preview", False),
        ("https://res.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-06-01", False),
        ("https://proj.services.ai.azure.com/models", False),  # Foundry models endpoint
    ],
)
def test_azure_asks_for_stream_usage_from_api_version_2024_09_01(base_url: str, asked: bool) -> None:
    quirks = quirks_for(channel(engine="azure", base_url=base_url))
    assert quirks.provider == "Azure OpenAI" and quirks.fold_filter_chunks
    assert quirks.stream_usage is asked


@pytest.mark.parametrize(
    ("body", "injected"),
    [
        ({"stream": True}, True),
        ({"stream": True, "stream_options": None}, True),
        ({"stream": True, "stream_options": {}}, True),
        ({"stream": True, "stream_options": {"include_usage": False}}, True),
        ({"stream": True, "stream_options": {"include_usage": True}}, False),
        ({"stream": True, "stream_options": "bad"}, False),  # the upstream's 400, as before
        ({"stream": False}, False),
        ({}, False),
    ],
)
def test_usage_is_injected_only_into_streams_that_did_not_ask(body: dict[str, Any], injected: bool) -> None:
    assert injects_stream_usage(NO_QUIRKS, body) is injected
    assert not injects_stream_usage(by_provider("Mistral"), body)


# ---- semantics, on plain dicts ------------------------------------------------------------------


def test_renames_move_the_value_and_refuse_a_disagreement() -> None:
    quirks = Quirks(provider="P", renames={"max_completion_tokens": "max_tokens"})
    body: dict[str, Any] = {"max_completion_tokens": 9}
    apply_request(quirks, body)
    assert body == {"max_tokens": 9}
    body = {"max_completion_tokens": 9, "max_tokens": 9}
    apply_request(quirks, body)
    assert body == {"max_tokens": 9}
    body = {"max_completion_tokens": None, "max_tokens": 4}
    apply_request(quirks, body)
    assert body == {"max_tokens": 4}
    with pytest.raises(UnsupportedFeature, match="disagree") as info:
        apply_request(quirks, {"max_completion_tokens": 9, "max_tokens": 4})
    assert info.value.param == "max_completion_tokens"


def test_refusals_ignore_null_values() -> None:
    body: dict[str, Any] = {"logprobs": None, "n": None, "messages": [{"role": "user", "name": None}, "odd"]}
    apply_request(by_provider("Groq"), body)
    assert body["logprobs"] is None


def test_the_normaliser_folds_filter_chunks_into_the_next_one() -> None:
    n = ChunkNormaliser(Quirks(fold_filter_chunks=True))
    assert n.apply({"choices": [], "id": "", "prompt_filter_results": [1]}) is Verdict.HOLD
    chunk: dict[str, Any] = {"id": "c", "choices": [{"delta": {"content": "x"}}]}
    assert n.apply(chunk) is Verdict.CHANGED and chunk["prompt_filter_results"] == [1]
    assert n.apply({"id": "c", "choices": [{"delta": {}}]}) is Verdict.KEEP
    usage_chunk: dict[str, Any] = {"choices": [], "usage": {"prompt_tokens": 1}, "prompt_filter_results": [2]}
    assert n.apply(usage_chunk) is Verdict.KEEP  # a usage chunk is never held back


def test_reasoning_is_renamed_only_where_reasoning_content_is_empty() -> None:
    n = ChunkNormaliser(Quirks(reasoning_field="reasoning"))
    both: dict[str, Any] = {"choices": [{"delta": {"reasoning": "a", "reasoning_content": "b"}}]}
    assert n.apply(both) is Verdict.KEEP and both["choices"][0]["delta"] == {"reasoning": "a", "reasoning_content": "b"}
    one: dict[str, Any] = {"choices": [{"delta": {"reasoning": "a", "reasoning_content": None}}, "junk"]}
    assert n.apply(one) is Verdict.CHANGED and one["choices"][0]["delta"] == {"reasoning_content": "a"}
    data: dict[str, Any] = {"choices": [{"message": {"content": "x", "reasoning": "r"}}, None]}
    normalise_completion(Quirks(reasoning_field="reasoning"), data)
    assert data["choices"][0]["message"] == {"content": "x", "reasoning_content": "r"}


def test_nested_usage_is_lifted_only_when_usage_is_missing() -> None:
    quirks = Quirks(usage_path=("x_groq", "usage"))
    n = ChunkNormaliser(quirks)
    top = {"prompt_tokens": 1}
    chunk: dict[str, Any] = {"choices": [], "usage": top, "x_groq": {"usage": {"prompt_tokens": 2}}}
    assert n.apply(chunk) is Verdict.KEEP and chunk["usage"] is top
    chunk = {"choices": [], "usage": None, "x_groq": {"usage": {"prompt_tokens": 2}}}
    assert n.apply(chunk) is Verdict.CHANGED and chunk["usage"] == {"prompt_tokens": 2}
    odds: list[dict[str, Any]] = [{"x_groq": {"id": "req"}}, {"x_groq": "text"}, {"x_groq": {"usage": {}}}]
    for odd in odds:
        assert n.apply({"choices": [], **odd}) is Verdict.KEEP
    data: dict[str, Any] = {"choices": [], "x_groq": {"usage": {"prompt_tokens": 3}}}
    normalise_completion(quirks, data)
    assert data["usage"] == {"prompt_tokens": 3}


def test_the_document_shows_the_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    assert text[start : text.index(END)] == markdown_table(), "regenerate the table from quirks.markdown_table()"


# ---- end to end ---------------------------------------------------------------------------------

CLIENT = "sk-client-quirks-5a0e"
KEY = "up-key-quirks-9c1d"
CLOCK = FakeClock()
MODELS = {
    "groq": "llama-3.3-70b-versatile",
    "groq-cleaned": "llama-3.1-8b-instant",
    "deepseek": "deepseek-chat",
    "mistral": "mistral-large-latest",
    "siliconflow": "Qwen/Qwen3-8B",
    "openrouter": "deepseek/deepseek-r1",
    "ollama": "qwen3:8b",
    "vllm": "Qwen/QwQ-32B",
    "gpt-4o": "gpt-4o",
}
HOSTS = {
    "groq": "http://api.groq.com/openai/v1",
    "groq-cleaned": "http://api.groq.com/openai/v1",
    "deepseek": "http://api.deepseek.com",
    "mistral": "http://api.mistral.ai/v1",
    "siliconflow": "http://api.siliconflow.cn/v1",
}
ENGINES = {"openrouter": "openrouter", "ollama": "ollama", "vllm": "vllm"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=MODELS.values(), api_key=KEY) as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[RunningGateway]:
    blocks = []
    for alias, upstream in MODELS.items():
        head = f"  - provider: {alias}\n    api: {KEY}\n    model:\n      - {upstream}: {alias}\n"
        if alias in HOSTS:
            prefs = f"      proxy: http://127.0.0.1:{fake.port}\n"
            if alias == "groq-cleaned":
                prefs += "      post_body_parameter_overrides:\n        __remove__: [logit_bias]\n"
            blocks.append(head + f"    base_url: {HOSTS[alias]}\n    preferences:\n" + prefs)
        else:
            engine = f"    engine: {ENGINES[alias]}\n" if alias in ENGINES else ""
            blocks.append(head + engine + f"    base_url: {fake.base_url}\n")
    text = "providers:\n" + "".join(blocks) + f"api_keys:\n  - api: {CLIENT}\n    model: [all]\n"
    with run_gateway(text, clock=CLOCK) as gateway:
        yield gateway


@dataclass
class Session:
    gw: RunningGateway
    client: openai.OpenAI
    fake: FakeOpenAI
    mark: int

    def sent(self) -> list[Any]:
        return self.fake.chat_requests[self.mark :]

    def last(self) -> dict[str, Any]:
        [req] = self.sent()
        return dict(req.json)

    def raw(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            self.gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"}
        )


@pytest.fixture
def s(gw: RunningGateway, fake: FakeOpenAI) -> Iterator[Session]:
    with fake._cond:
        fake._queue.clear()
        fake._per_model.clear()
    CLOCK.advance(86_400.0)
    session = Session(gw, gw.client(CLIENT), fake, len(fake.chat_requests))
    yield session
    session.client.close()
    assert fake.pending_scripts == 0 and fake.errors == []


HI: Any = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2, "logprobs": False}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "hi", "name": "ann"}]}, "messages"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_groq_refusals_are_clear_400s_and_nothing_is_sent(
    s: Session, kwargs: dict[str, Any], param: str, stream: bool
) -> None:
    kwargs = {"messages": HI, **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        s.client.chat.completions.create(model="groq", stream=stream, **kwargs)
    assert info.value.status_code == 400 and info.value.param == param
    assert "Groq" in info.value.message and info.value.type == "invalid_request_error"
    assert s.sent() == []


def test_groq_gets_what_it_supports_unchanged(s: Session) -> None:
    s.client.chat.completions.create(model="groq", messages=HI, n=1, temperature=0.2, max_completion_tokens=7)
    req = s.sent()[0]
    assert req.path == "http://api.groq.com/openai/v1/chat/completions"
    assert req.json["n"] == 1 and req.json["temperature"] == 0.2 and req.json["max_completion_tokens"] == 7


def test_an_operators_explicit_removal_wins_over_a_refusal(s: Session) -> None:
    s.client.chat.completions.create(model="groq-cleaned", messages=HI, logit_bias={"1": 1})
    assert "logit_bias" not in s.last()


@pytest.mark.parametrize(
    ("alias", "kwargs", "expected", "gone"),
    [
        ("deepseek", {"max_completion_tokens": 50}, {"max_tokens": 50}, "max_completion_tokens"),
        ("siliconflow", {"max_completion_tokens": 50}, {"max_tokens": 50}, "max_completion_tokens"),
        ("ollama", {"max_completion_tokens": 50}, {"max_tokens": 50}, "max_completion_tokens"),
        ("mistral", {"max_completion_tokens": 50, "seed": 7}, {"max_tokens": 50, "random_seed": 7}, "seed"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_renamed_parameters_arrive_under_the_providers_name(
    s: Session, alias: str, kwargs: dict[str, Any], expected: dict[str, Any], gone: str, stream: bool
) -> None:
    reply: Any = s.client.chat.completions.create(model=alias, messages=HI, stream=stream, temperature=0.5, **kwargs)
    if stream:
        list(reply)
    body = s.last()
    assert {k: body[k] for k in expected} == expected and gone not in body
    assert "max_completion_tokens" not in body and body["temperature"] == 0.5 and body["messages"] == HI


def test_disagreeing_token_limits_are_refused(s: Session) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        s.client.chat.completions.create(model="deepseek", messages=HI, max_completion_tokens=50, max_tokens=10)
    assert info.value.param == "max_completion_tokens" and "DeepSeek" in info.value.message
    assert s.sent() == []


def test_a_host_without_quirks_gets_the_body_unchanged(s: Session) -> None:
    s.client.chat.completions.create(
        model="gpt-4o", messages=HI, max_completion_tokens=50, seed=3, logprobs=True, n=2, logit_bias={"1": 1}
    )
    body = s.last()
    assert (body["max_completion_tokens"], body["seed"], body["logprobs"], body["n"]) == (50, 3, True, 2)
    assert "max_tokens" not in body and "random_seed" not in body


@pytest.mark.parametrize("alias", ["openrouter", "ollama", "vllm", "groq"])
def test_reasoning_arrives_as_reasoning_content(s: Session, alias: str) -> None:
    upstream = MODELS[alias]
    s.fake.script_for(upstream, Reply(text="42", reasoning="six sevens", reasoning_field="reasoning"))
    resp = s.raw({"model": alias, "messages": HI})
    message = resp.json()["choices"][0]["message"]
    assert message["reasoning_content"] == "six sevens" and "reasoning" not in message
    assert message["content"] == "42"

    s.fake.script_for(upstream, Reply(text="42", reasoning="six sevens", reasoning_field="reasoning"))
    chunks = list(s.client.chat.completions.create(model=alias, messages=HI, stream=True))
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "six sevens"
    assert not any("reasoning" in d for d in deltas)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "42"


def test_groq_stream_usage_is_lifted_to_usage(s: Session) -> None:
    answer = Answer(MODELS["groq"], "fast answer", prompt_tokens=11, completion_tokens=2)
    chunks = stream_chunks(answer, include_usage=False)
    chunks[-1]["x_groq"] = {"id": "req_01", "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}}
    s.fake.script_for(
        MODELS["groq"], RawStream([b"data: " + dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"])
    )
    got = list(s.client.chat.completions.create(model="groq", messages=HI, stream=True))
    assert got[-1].usage is not None
    assert (got[-1].usage.prompt_tokens, got[-1].usage.completion_tokens, got[-1].usage.total_tokens) == (11, 2, 13)
    assert (got[-1].model_extra or {})["x_groq"]["id"] == "req_01"  # the original stays too
    assert all(c.usage is None for c in got[:-1])


def test_without_quirks_a_stream_is_forwarded_byte_for_byte(s: Session) -> None:
    answer = Answer("gpt-4o", "plain bytes", reasoning="kept as sent", reasoning_field="reasoning")
    frames = [b"data: " + dumps(c) + b"\n\n" for c in stream_chunks(answer, include_usage=False)]
    s.fake.script_for("gpt-4o", RawStream([*frames, b"data: [DONE]\n\n"]))
    resp = s.raw({"model": "gpt-4o", "messages": HI, "stream": True})
    assert resp.content == b"".join(frames) + b"data: [DONE]\n\n"
    s.fake.script_for("gpt-4o", Reply(text="x", reasoning="kept", reasoning_field="reasoning"))
    message = s.raw({"model": "gpt-4o", "messages": HI}).json()["choices"][0]["message"]
    assert message["reasoning"] == "kept" and "reasoning_content" not in message
    assert json.loads(frames[1][6:])["choices"][0]["delta"] == {"reasoning": "kept "}
