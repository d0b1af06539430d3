"""Bedrock host: config compile, region and host rules, which API a model uses, URLs and headers, and
signed requests sent by the real upstream pool (aiohttp) that the fake Bedrock verifies."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.fakes.bedrock_upstream import FakeBedrock
from tests.providers.builders import channel as make_channel
from unigate.config.compile import AwsCredentials, Channel, compile_runtime
from unigate.config.schema import ApiYaml
from unigate.dialects import bedrock_converse, bedrock_invoke
from unigate.errors import UpstreamAuthError
from unigate.providers.bedrock import BedrockPlan, BedrockProvider, build_plan, model_url, uses_invoke
from unigate.upstream import Upstream

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def aws_channel(**fields: Any) -> Channel:
    base: dict[str, Any] = {"aws_access_key": "AKIDEXAMPLE", "aws_secret_key": SECRET, "model": [NOVA, CLAUDE]}
    return make_channel(**(base | fields))


def test_compile_selects_bedrock_and_keeps_the_secret_out_of_repr() -> None:
    ch = aws_channel(base_url="https://bedrock-runtime.eu-west-1.amazonaws.com", aws_session_token="FwoGZXIvFAKE")
    assert ch.engine == "bedrock"
    assert ch.aws == AwsCredentials("AKIDEXAMPLE", SECRET, "FwoGZXIvFAKE")
    assert SECRET not in repr(ch) and "FwoGZXIvFAKE" not in repr(ch)
    assert make_channel(base_url="https://bedrock-runtime.us-east-1.amazonaws.com", api="k").engine == "bedrock"
    assert make_channel(engine="aws", api="k").engine == "bedrock"
    config = ApiYaml.model_validate(
        {"providers": [{"provider": "b", "aws_access_key": "AKID", "aws_secret_key": "s", "region": "us-east-1"}]}
    )
    runtime = compile_runtime(config, env={})
    assert [c.name for c in runtime.channels] == ["b"] and runtime.warnings == ()


@pytest.mark.parametrize(
    ("fields", "plan"),
    [
        (
            {"base_url": "https://bedrock-runtime.eu-west-1.amazonaws.com"},
            ("https://bedrock-runtime.eu-west-1.amazonaws.com", "eu-west-1"),
        ),
        (
            {"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke"},
            ("https://bedrock-runtime.us-east-1.amazonaws.com", "us-east-1"),
        ),
        (
            {"base_url": "https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com"},
            ("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ),
        ({"region": "ap-northeast-1"}, ("https://bedrock-runtime.ap-northeast-1.amazonaws.com", "ap-northeast-1")),
        ({"base_url": "http://127.0.0.1:9/prefix/", "region": "us-east-1"}, ("http://127.0.0.1:9/prefix", "us-east-1")),
        (
            {"base_url": "https://bedrock-runtime.us-west-2.amazonaws.com", "region": "us-west-2"},
            ("https://bedrock-runtime.us-west-2.amazonaws.com", "us-west-2"),
        ),
    ],
)
def test_region_and_host(fields: dict[str, Any], plan: tuple[str, str]) -> None:
    assert build_plan(aws_channel(**fields)) == BedrockPlan(*plan)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({}, "set base_url"),
        ({"base_url": "http://127.0.0.1:9"}, "set region"),
        ({"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com", "region": "eu-west-1"}, "disagrees"),
        ({"region": "moon-base"}, "not an AWS region"),
    ],
)
def test_region_problems_name_the_config_keys(fields: dict[str, Any], says: str) -> None:
    ch = aws_channel(**fields)
    with pytest.raises(UpstreamAuthError, match=says) as info:
        BedrockProvider().chat_call(ch, NOVA, False, None)
    assert "Bedrock channel 'p'" in info.value.message and SECRET not in info.value.message


@pytest.mark.parametrize(
    ("model", "invoke"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", True),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0", True),
        ("amazon.nova-pro-v1:0", False),
        ("meta.llama3-3-70b-instruct-v1:0", False),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", False),
    ],
)
def test_api_rule_and_dialect(model: str, invoke: bool) -> None:
    assert uses_invoke(model) is invoke
    dialect = BedrockProvider().dialect_for(aws_channel(region="us-east-1"), model)
    assert dialect is (bedrock_invoke.DIALECT if invoke else bedrock_converse.DIALECT)


def test_urls_encode_the_model_id_as_one_segment() -> None:
    root = "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert model_url(root, CLAUDE, False) == f"{root}/model/{CLAUDE}/invoke"
    assert model_url(root, CLAUDE, True) == f"{root}/model/{CLAUDE}/invoke-with-response-stream"
    assert model_url(root, NOVA, True) == f"{root}/model/amazon.nova-pro-v1:0/converse-stream"
    arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/a b"
    assert (
        model_url(root, arn, False)
        == f"{root}/model/arn:aws:bedrock:us-east-1:1:application-inference-profile%2Fa%20b/converse"
    )


def test_headers_betas_and_bearer_keys() -> None:
    provider = BedrockProvider()
    ch = aws_channel(
        region="us-east-1", preferences={"headers": {"Anthropic-Beta": "a-1, b-2", "X-Amzn-Bedrock-Trace": "ENABLED"}}
    )
    claude = provider.chat_call(ch, CLAUDE, True, None)
    assert claude.headers == {
        "content-type": "application/json",
        "accept": "application/vnd.amazon.eventstream",
        "X-Amzn-Bedrock-Trace": "ENABLED",
    }
    assert provider.body_settings(ch, CLAUDE) == {"anthropic_beta": ("a-1", "b-2")}
    nova = provider.chat_call(ch, NOVA, False, None)
    assert nova.headers["accept"] == "application/json" and nova.headers["Anthropic-Beta"] == "a-1, b-2"
    assert provider.body_settings(ch, NOVA) == {}
    keyed = make_channel(base_url="https://bedrock-runtime.us-east-1.amazonaws.com", api=["bedrock-key-1"])
    call = provider.chat_call(keyed, NOVA, False, "bedrock-key-1")
    assert call.headers["authorization"] == "Bearer bedrock-key-1"
    assert provider.sign_body(keyed, call, b"{}") is call
    with pytest.raises(UpstreamAuthError, match="aws_access_key"):
        provider.chat_call(make_channel(engine="bedrock", region="us-east-1"), NOVA, False, None)


def test_without_botocore_the_channel_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.eventstream", None)  # what an absent package looks like to import
    with pytest.raises(UpstreamAuthError, match=r"unigate\[bedrock\]"):
        BedrockProvider().chat_call(aws_channel(region="us-east-1"), NOVA, False, None)


def test_signing_is_deterministic_under_the_injected_clock() -> None:
    provider = BedrockProvider(clock=lambda: 1_440_938_160.0)  # 2015-08-30T12:36:00Z
    ch = aws_channel(region="us-east-1", aws_session_token="FwoGZXIvFAKE")
    call = provider.chat_call(ch, NOVA, False, None)
    first, second = provider.sign_body(ch, call, b"{}"), provider.sign_body(ch, call, b"{}")
    assert first == second
    assert first.headers["X-Amz-Date"] == "20150830T123600Z"
    assert first.headers["X-Amz-Security-Token"] == "FwoGZXIvFAKE"
    assert first.headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature="
    )


# ---- signed requests over the real upstream pool, verified by the fake ---------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    with FakeBedrock("us-east-1", models=(CLAUDE, NOVA, arn)) as running:
        yield running


async def send(
    fake: FakeBedrock,
    model: str,
    body: dict[str, Any],
    *,
    clock: Any = time.time,
    tamper: bool = False,
    token: str | None = None,
) -> tuple[int, bytes]:
    access_key, secret = fake.add_credentials(session_token=token)
    ch = make_channel(
        aws_access_key=access_key,
        aws_secret_key=secret,
        aws_session_token=token,
        base_url=fake.url,
        region="us-east-1",
        model=[model],
    )
    provider = BedrockProvider(clock=clock)
    raw = orjson.dumps(body)
    call = provider.sign_body(ch, await provider.authorize(ch, provider.chat_call(ch, model, False, None), None), raw)
    upstream = Upstream()
    try:
        resp = await upstream.send("POST", call.url, headers=call.headers, body=raw + (b" " if tamper else b""))
        async with resp:
            return resp.status, await resp.read()
    finally:
        await upstream.close()


CONVERSE_BODY = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "body"),
    [
        (NOVA, CONVERSE_BODY),
        (CLAUDE, CLAUDE_BODY),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            CLAUDE_BODY,
        ),
    ],
)
async def test_the_fake_verifies_what_the_pool_sends(fake: FakeBedrock, model: str, body: dict[str, Any]) -> None:
    status, raw = await send(fake, model, body, token="FwoGZXIvFAKE")
    assert status == 200, raw
    sent = fake.model_requests[-1]
    assert sent.path.startswith("/model/") and "%3A" not in sent.path  # ':' is sent (and signed) as is


@pytest.mark.anyio
async def test_the_fake_refuses_a_changed_body_or_a_wrong_clock(fake: FakeBedrock) -> None:
    status, raw = await send(fake, NOVA, CONVERSE_BODY, tamper=True)
    assert status == 403 and b"signature we calculated does not match" in raw
    status, raw = await send(fake, NOVA, CONVERSE_BODY, clock=lambda: time.time() - 3600)
    assert status == 403 and b"Signature expired" in raw
