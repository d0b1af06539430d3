"""Bedrock through a real unigate: what the battery's matrix marks n/a (a lone 429 has no Retry-After to
relay), and a Bedrock API key (``api``) instead of AWS credentials."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fakes.bedrock_upstream import BFail, FakeBedrock
from tests.gateway.harness import RunningGateway, run_gateway

NOVA = "amazon.nova-pro-v1:0"
CLIENT = "sk-bedrock-gateway-test"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock("us-east-1", models=(NOVA,), api_keys=("bedrock-api-key-1",)) as running:
        yield running


def config(fake: FakeBedrock, auth: str) -> str:
    return (
        "providers:\n"
        "  - provider: solo\n"
        "    engine: bedrock\n"
        f"    base_url: {fake.url}\n"
        "    region: us-east-1\n"
        f"{auth}"
        "    model:\n"
        f"      - {NOVA}: nova\n"
        f"api_keys:\n  - api: {CLIENT}\n    model: [all]\n"
    )


@pytest.fixture(scope="module")
def gateway(fake: FakeBedrock) -> Iterator[RunningGateway]:
    access_key, secret = fake.add_credentials()
    with run_gateway(config(fake, f'    aws_access_key: {access_key}\n    aws_secret_key: "{secret}"\n')) as gw:
        yield gw


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_429_reaches_the_client_without_an_invented_retry_after(
    fake: FakeBedrock, gateway: RunningGateway, stream: bool
) -> None:
    fake.script_for(NOVA, BFail("ThrottlingException", "Too many requests, please wait before trying again."))
    with pytest.raises(openai.RateLimitError) as info:
        client = gateway.client(CLIENT)
        if stream:
            list(client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "x"}], stream=True))
        else:
            client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert "Too many requests" in info.value.message
    assert "retry-after" not in info.value.response.headers
    assert fake.pending_scripts == 0


def test_a_bedrock_api_key_channel(fake: FakeBedrock) -> None:
    with run_gateway(config(fake, "    api: bedrock-api-key-1\n")) as gw:
        answer = gw.client(CLIENT).chat.completions.create(model="nova", messages=[{"role": "user", "content": "hey"}])
    assert answer.choices[0].message.content == "echo: hey"
    sent = fake.model_requests[-1]
    assert sent.headers["authorization"] == "Bearer bedrock-api-key-1" and "x-amz-date" not in sent.headers
