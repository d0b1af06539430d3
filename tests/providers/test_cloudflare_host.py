"""Cloudflare Workers AI host: the OpenAI-compatible endpoint (every message is sent — uni-api sent
only the last), the Bearer token, Cloudflare's error envelope; unit tests, then end to end through
a running gateway against the fake OpenAI upstream standing in for ``api.cloudflare.com``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.clock import FakeClock
from tests.fakes.openai_upstream import Fail, FakeOpenAI
from tests.gateway.harness import RunningGateway, run_gateway
from tests.providers.builders import channel
from unigate.config.compile import IMPLEMENTED_ENGINES
from unigate.dialects import openai_chat
from unigate.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
)
from unigate.providers.cloudflare import PROVIDER, chat_url
from unigate.routing.retry import decide

TOKEN = "cf-token-canary-0c3e"
CLIENT = "sk-client-cloudflare-host-31f0"
ACCOUNT = "0123abcd"
LLAMA = "@cf/meta/llama-3.1-8b-instruct"
QWEN = "@cf/qwen/qwen2.5-coder-32b-instruct"
API = "https://api.cloudflare.com"


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({}, f"{API}/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"),
        ({"base_url": "http://127.0.0.1:9"}, f"http://127.0.0.1:9/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"),
        ({"base_url": API + "/"}, f"{API}/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"),
        (
            {"base_url": f"{API}/client/v4/accounts/other/ai/run/"},
            f"{API}/client/v4/accounts/other/ai/v1/chat/completions",
        ),
        (
            {"base_url": f"{API}/client/v4/accounts/{ACCOUNT}/ai/v1"},
            f"{API}/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions",
        ),
        (
            {"base_url": "https://gateway.ai.cloudflare.com/v1/acc/gw/workers-ai/v1?x=1"},
            "https://gateway.ai.cloudflare.com/v1/acc/gw/workers-ai/v1/chat/completions",
        ),
        (
            {"base_url": "https://proxy.example/cf/chat/completions"},
            "https://proxy.example/cf/chat/completions",
        ),
    ],
)
def test_chat_url(fields: dict[str, Any], url: str) -> None:
    ch = channel(cf_account_id=ACCOUNT, model=[LLAMA], **fields)
    assert ch.engine == "cloudflare" and "cloudflare" in IMPLEMENTED_ENGINES
    assert chat_url(ch) == url
    assert PROVIDER.chat_call(ch, LLAMA, False, TOKEN).url == url


def test_the_account_id_stays_one_path_segment() -> None:
    ch = channel(cf_account_id="a/../b?", model=[LLAMA])
    assert chat_url(ch) == f"{API}/client/v4/accounts/a%2F..%2Fb%3F/ai/v1/chat/completions"


@pytest.mark.parametrize("fields", [{"engine": "cloudflare"}, {"base_url": API}])
def test_without_an_account_id_the_error_names_the_key(fields: dict[str, Any]) -> None:
    ch = channel(model=[LLAMA], **fields)
    assert ch.engine == "cloudflare"
    with pytest.raises(UpstreamAuthError, match="cf_account_id"):
        PROVIDER.chat_call(ch, LLAMA, False, TOKEN)


@pytest.mark.anyio
async def test_bearer_token_and_channel_headers() -> None:
    ch = channel(cf_account_id=ACCOUNT, preferences={"headers": {"cf-aig-cache-ttl": "60"}})
    call = PROVIDER.chat_call(ch, LLAMA, True, TOKEN)
    assert dict(call.headers) == {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {TOKEN}",
        "cf-aig-cache-ttl": "60",
    }
    assert call.params == {}
    assert await PROVIDER.authorize(ch, call, TOKEN) is call
    assert PROVIDER.dialect_for(ch, LLAMA) is openai_chat.DIALECT
    assert PROVIDER.body_settings(ch, LLAMA) == {}
    assert "authorization" not in PROVIDER.chat_call(ch, LLAMA, True, None).headers


# ---- Cloudflare's error envelope ------------------------------------------------------------------


def envelope(code: int, message: str) -> dict[str, Any]:
    return {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []}


def decode(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return openai_chat.DIALECT.decode_error(status, headers or {}, json.dumps(body).encode())


def test_daily_allocation_used_cools_the_key_instead_of_retrying_today() -> None:
    err = decode(429, envelope(3036, "You have used up your daily free allocation of 10,000 neurons."))
    assert isinstance(err, UpstreamAuthError) and err.code == "3036"
    assert "daily free allocation" in err.message
    assert decide(err).cool_key == "auth"


def test_out_of_capacity_is_a_rate_limit_retried_elsewhere() -> None:
    err = decode(429, envelope(3040, "No more data centers to forward the request to"), {"retry-after": "2"})
    assert isinstance(err, UpstreamRateLimited) and err.retry_after == 2.0 and decide(err).retry


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [(400, 5007, UpstreamRequestError), (404, 3042, UpstreamRequestError), (408, 3007, UpstreamTimeout)],
)
def test_other_codes_follow_their_status(status: int, code: int, cls: type[UpstreamError]) -> None:
    err = decode(status, envelope(code, f"cloudflare says {code}"))
    assert type(err) is cls and err.message == f"cloudflare says {code}" and err.code == str(code)


# ---- end to end ---------------------------------------------------------------------------------


CLOCK = FakeClock()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=(LLAMA, QWEN), api_key=TOKEN) as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI) -> Iterator[RunningGateway]:
    def block(name: str, upstream: str) -> str:
        return (
            f"  - provider: {name}\n    base_url: {fake.url}\n    cf_account_id: {ACCOUNT}\n    api: {TOKEN}\n"
            f'    model:\n      - "{upstream}": llama\n'
        )

    text = "providers:\n" + block("cf-a", LLAMA) + block("cf-b", QWEN)
    with run_gateway(text + f"api_keys:\n  - api: {CLIENT}\n    model: [all]\n", clock=CLOCK) as gateway:
        yield gateway


@dataclass
class Session:
    client: openai.OpenAI
    fake: FakeOpenAI
    mark: int

    def sent(self) -> list[Any]:
        return self.fake.chat_requests[self.mark :]


@pytest.fixture
def s(gw: RunningGateway, fake: FakeOpenAI) -> Iterator[Session]:
    with fake._cond:
        fake._queue.clear()
        fake._per_model.clear()
    CLOCK.advance(86_400.0)  # cooldowns an earlier test caused have expired
    session = Session(gw.client(CLIENT), fake, len(fake.chat_requests))
    yield session
    session.client.close()
    assert fake.pending_scripts == 0 and fake.errors == []


CONVERSATION: Any = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
]


@pytest.mark.parametrize("stream", [False, True])
def test_every_message_and_parameter_reaches_the_openai_compatible_endpoint(s: Session, stream: bool) -> None:
    kwargs: dict[str, Any] = {"temperature": 0.3, "max_tokens": 64, "stream": stream}
    answer: Any = s.client.chat.completions.create(model="llama", messages=CONVERSATION, **kwargs)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
    else:
        text = answer.choices[0].message.content or ""
    assert text == "echo: second question"
    [req] = s.sent()
    assert req.path == f"/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.json["model"] == LLAMA
    assert req.json["messages"] == CONVERSATION  # uni-api sent only the last message, as a prompt
    assert (req.json["temperature"], req.json["max_tokens"], req.json.get("stream", False)) == (0.3, 64, stream)


def test_a_spent_daily_allocation_moves_to_the_next_channel(s: Session) -> None:
    s.fake.script_for(LLAMA, Fail(429, body=envelope(3036, "daily free allocation used")))
    answer = s.client.chat.completions.create(model="llama", messages=CONVERSATION)
    assert answer.choices[0].message.content == "echo: second question"
    assert [r.json["model"] for r in s.sent()] == [LLAMA, QWEN]


def test_a_bad_request_reaches_the_client_with_cloudflares_message(s: Session) -> None:
    s.fake.script_for(LLAMA, Fail(400, body=envelope(5007, "No such model @cf/meta/llama-3.1-8b-instruct")))
    with pytest.raises(openai.BadRequestError) as info:
        s.client.chat.completions.create(model="llama", messages=CONVERSATION)
    assert "No such model" in info.value.message and info.value.code == "5007"
    assert len(s.sent()) == 1
