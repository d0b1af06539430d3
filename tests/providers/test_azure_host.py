"""Azure OpenAI host: the three URL forms, api-version, the ``api-key`` header, content-filter
errors — unit-tested on the provider, then end to end through a running gateway against the
Azure flavour of the fake (which the official ``AzureOpenAI`` SDK checks in tests/fakes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.clock import FakeClock
from tests.fakes.openai_azure import content_filter_error
from tests.fakes.openai_upstream import Fail, FakeOpenAI, Reply
from tests.gateway.harness import RunningGateway, run_gateway
from tests.providers.builders import channel
from unigate.config.compile import IMPLEMENTED_ENGINES
from unigate.dialects import openai_chat
from unigate.errors import ContentFiltered, UpstreamAuthError, UpstreamRateLimited, UpstreamRequestError
from unigate.providers.azure import DEFAULT_API_VERSION, FOUNDRY_API_VERSION, PROVIDER, azure_target
from unigate.routing.retry import decide

KEY = "azure-key-canary-5d1c"
CLIENT = "sk-client-azure-host-77aa"
R = "https://res.openai.azure.com"
F = "https://res.services.ai.azure.com"


@pytest.mark.parametrize(
    ("base_url", "url", "params"),
    [
        (R, f"{R}/openai/deployments/dep/chat/completions", {"api-version": DEFAULT_API_VERSION}),
        (R + "/", f"{R}/openai/deployments/dep/chat/completions", {"api-version": DEFAULT_API_VERSION}),
        (R + "/openai", f"{R}/openai/deployments/dep/chat/completions", {"api-version": DEFAULT_API_VERSION}),
        (
            R + "/openai/deployments/other/chat/completions?api-version=2025-04-01-preview",
            f"{R}/openai/deployments/dep/chat/completions",
            {"api-version": "2025-04-01-preview"},
        ),
        (R + "/openai/v1", f"{R}/openai/v1/chat/completions", {}),
        (R + "/openai/v1/chat/completions", f"{R}/openai/v1/chat/completions", {}),
        (R + "/openai/v1?api-version=preview", f"{R}/openai/v1/chat/completions", {"api-version": "preview"}),
        (F, f"{F}/models/chat/completions", {"api-version": FOUNDRY_API_VERSION}),
        (F + "/models", f"{F}/models/chat/completions", {"api-version": FOUNDRY_API_VERSION}),
        (
            F + "/models/chat/completions?api-version=2024-05-01-preview&x=1",
            f"{F}/models/chat/completions",
            {"api-version": "2024-05-01-preview", "x": "1"},
        ),
        (F + "/openai", f"{F}/openai/deployments/dep/chat/completions", {"api-version": DEFAULT_API_VERSION}),
        (
            "https://res.cognitiveservices.azure.com",
            "https://res.cognitiveservices.azure.com/openai/deployments/dep/chat/completions",
            {"api-version": DEFAULT_API_VERSION},
        ),
        (
            "http://127.0.0.1:8080/prefix",
            "http://127.0.0.1:8080/prefix/openai/deployments/dep/chat/completions",
            {"api-version": DEFAULT_API_VERSION},
        ),
    ],
)
def test_url_forms(base_url: str, url: str, params: dict[str, str]) -> None:
    ch = channel(engine="azure", base_url=base_url, api=KEY, model=["dep"])
    call = PROVIDER.chat_call(ch, "dep", False, KEY)
    assert call.url == url
    assert dict(call.params) == params


def test_the_deployment_stays_one_path_segment() -> None:
    assert azure_target(R).chat_url("a/b?c") == f"{R}/openai/deployments/a%2Fb%3Fc/chat/completions"


@pytest.mark.parametrize("stream", [False, True])
def test_the_key_goes_in_api_key_never_bearer(stream: bool) -> None:
    call = PROVIDER.chat_call(channel(engine="azure", base_url=R), "dep", stream, KEY)
    assert dict(call.headers) == {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "api-key": KEY,
    }
    assert KEY not in call.url


def test_entra_tokens_come_from_the_channel_headers() -> None:
    ch = channel(engine="azure", base_url=R, preferences={"headers": {"Authorization": "Bearer entra-token"}})
    headers = PROVIDER.chat_call(ch, "dep", False, None).headers
    assert "api-key" not in headers
    assert headers["Authorization"] == "Bearer entra-token"


@pytest.mark.parametrize(
    "fields",
    [
        {"base_url": R},
        {"base_url": F + "/models"},
        {"engine": "azure", "base_url": "http://127.0.0.1:1"},
    ],
)
def test_azure_urls_and_engine_select_the_azure_host(fields: dict[str, Any]) -> None:
    ch = channel(model=["dep"], **fields)
    assert ch.engine == "azure" and "azure" in IMPLEMENTED_ENGINES
    assert PROVIDER.dialect_for(ch, "dep") is openai_chat.DIALECT
    assert PROVIDER.body_settings(ch, "dep") == {}


@pytest.mark.anyio
async def test_authorize_adds_nothing() -> None:
    ch = channel(engine="azure", base_url=R)
    call = PROVIDER.chat_call(ch, "dep", False, KEY)
    assert await PROVIDER.authorize(ch, call, KEY) is call


def test_a_channel_without_base_url_names_the_key_to_fix() -> None:
    with pytest.raises(UpstreamAuthError, match="base_url"):
        PROVIDER.chat_call(channel(engine="azure"), "dep", False, KEY)


# ---- errors (the OpenAI dialect's decoder, on Azure's bodies) -------------------------------------


def test_a_filtered_prompt_is_the_clients_problem() -> None:
    body = json.dumps(content_filter_error(("jailbreak", "violence"))).encode()
    err = openai_chat.DIALECT.decode_error(400, {}, body)
    assert isinstance(err, ContentFiltered)
    assert err.http_status() == 400 and err.code == "content_filter" and err.param == "prompt"
    assert "content management policy" in err.message and "jailbreak, violence filtered" in err.message
    assert decide(err).retry is False and decide(err).cool_key == "none" and not decide(err).cool_channel


def test_a_filter_error_without_innererror_keeps_azures_message() -> None:
    body = json.dumps({"error": {"code": "content_filter", "message": "filtered", "status": 400}}).encode()
    err = openai_chat.DIALECT.decode_error(400, {}, body)
    assert isinstance(err, ContentFiltered) and err.message == "filtered"
    quiet = {"content_filter_result": {"hate": {"filtered": False, "severity": "low"}}}
    body = json.dumps({"error": {"code": "content_filter", "message": "filtered", "innererror": quiet}}).encode()
    assert openai_chat.DIALECT.decode_error(400, {}, body).message == "filtered"


def test_azure_rate_limits_and_missing_deployments() -> None:
    body = b'{"error": {"code": "429", "message": "Requests exceeded token rate limit. Retry after 6 seconds."}}'
    err = openai_chat.DIALECT.decode_error(429, {"retry-after": "6"}, body)
    assert isinstance(err, UpstreamRateLimited) and err.retry_after == 6.0
    body = (
        b'{"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}'
    )
    err = openai_chat.DIALECT.decode_error(404, {}, body)
    assert type(err) is UpstreamRequestError and err.code == "DeploymentNotFound" and err.http_status() == 404


# ---- end to end ---------------------------------------------------------------------------------


CLOCK = FakeClock()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("dep-a", "dep-b"), api_key=KEY, flavor="azure") as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[RunningGateway]:
    def block(name: str, base_url: str, upstream: str, alias: str) -> str:
        return (
            f"  - provider: {name}\n    engine: azure\n    base_url: {base_url}\n    api: {KEY}\n"
            f"    model:\n      - {upstream}: {alias}\n"
        )

    pinned = f"{fake.url}/openai/deployments/ignored/chat/completions?api-version=2025-04-01-preview"
    text = (
        "providers:\n"
        + block("azure-a", fake.url, "dep-a", "az")
        + block("azure-b", fake.url, "dep-b", "az")
        + block("azure-v1", fake.url + "/openai/v1", "dep-a", "az-v1")
        + block("azure-foundry", fake.url + "/models", "dep-a", "az-foundry")
        + block("azure-pinned", pinned, "dep-a", "az-pinned")
        + f"api_keys:\n  - api: {CLIENT}\n    model: [all]\n"
    )
    with run_gateway(text, clock=CLOCK) as gateway:
        yield gateway


@dataclass
class Session:
    """The SDK pointed at the gateway, and where this test's upstream requests start."""

    client: openai.OpenAI
    fake: FakeOpenAI
    mark: int

    def sent(self) -> list[Any]:
        return self.fake.chat_requests[self.mark :]


@pytest.fixture
def s(gw: RunningGateway, fake: FakeOpenAI) -> Iterator[Session]:
    with fake._cond:  # scripts a failed test left behind must not reach the next one
        fake._queue.clear()
        fake._per_model.clear()
    CLOCK.advance(86_400.0)  # cooldowns an earlier test caused have expired
    session = Session(gw.client(CLIENT), fake, len(fake.chat_requests))
    yield session
    session.client.close()
    assert fake.pending_scripts == 0 and fake.errors == []


HELLO: Any = [{"role": "user", "content": "hello azure"}]


def test_the_classic_form_reaches_the_deployment_signed_with_api_key(s: Session) -> None:
    raw = s.client.chat.completions.with_raw_response.create(model="az", messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello azure"
    assert completion.model == "az"
    assert "prompt_filter_results" in json.loads(raw.http_response.content)  # Azure's extras pass through
    [req] = s.sent()
    assert req.path == "/openai/deployments/dep-a/chat/completions"
    assert req.query == f"api-version={DEFAULT_API_VERSION}"
    assert req.headers["api-key"] == KEY and "authorization" not in req.headers
    assert CLIENT not in json.dumps(req.headers)


def test_a_configured_api_version_is_kept_and_the_deployment_is_the_model(s: Session) -> None:
    s.client.chat.completions.create(model="az-pinned", messages=HELLO)
    [req] = s.sent()
    assert req.path == "/openai/deployments/dep-a/chat/completions"
    assert req.query == "api-version=2025-04-01-preview"


def test_the_v1_form_puts_the_deployment_in_the_body(s: Session) -> None:
    s.client.chat.completions.create(model="az-v1", messages=HELLO)
    [req] = s.sent()
    assert (req.path, req.query, req.json["model"]) == ("/openai/v1/chat/completions", "", "dep-a")


def test_the_foundry_form_uses_the_models_endpoint(s: Session) -> None:
    s.client.chat.completions.create(model="az-foundry", messages=HELLO)
    [req] = s.sent()
    assert (req.path, req.json["model"]) == ("/models/chat/completions", "dep-a")
    assert req.query == f"api-version={FOUNDRY_API_VERSION}"


def test_a_stream_has_no_empty_id_chunk_and_keeps_the_prompt_filter_results(gw: RunningGateway, s: Session) -> None:
    body = {"model": "az", "messages": HELLO, "stream": True}
    resp = httpx.post(gw.base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT}"})
    datas = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(c["id"] for c in chunks) and len({c["id"] for c in chunks}) == 1
    assert all(c["model"] == "az" for c in chunks)
    assert chunks[0]["choices"] and chunks[0]["prompt_filter_results"][0]["prompt_index"] == 0
    assert sum("prompt_filter_results" in c for c in chunks) == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: hello azure"


@pytest.mark.parametrize("stream", [False, True])
def test_a_filtered_prompt_is_a_400_and_is_not_retried(s: Session, stream: bool) -> None:
    s.fake.script_for("dep-a", Fail(400, body=content_filter_error(("jailbreak",))))
    with pytest.raises(openai.BadRequestError) as info:
        s.client.chat.completions.create(model="az", messages=HELLO, stream=stream)
    assert info.value.status_code == 400 and info.value.code == "content_filter"
    assert "jailbreak filtered" in info.value.message
    assert [r.path for r in s.sent()] == ["/openai/deployments/dep-a/chat/completions"]  # no failover


def test_a_filtered_answer_is_an_answer_with_finish_reason_content_filter(s: Session) -> None:
    s.fake.script_for("dep-a", Reply(text="partial", finish_reason="content_filter"))
    completion = s.client.chat.completions.create(model="az", messages=HELLO)
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content == "partial"
    s.fake.script_for("dep-a", Reply(text="partial", finish_reason="content_filter"))
    chunks = list(s.client.chat.completions.create(model="az", messages=HELLO, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]
    assert len(s.sent()) == 2  # one per request: a filtered answer is not retried elsewhere
