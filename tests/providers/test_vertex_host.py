"""Vertex host: hosts per region, publisher decided once per model, URLs, express mode, config errors."""

from __future__ import annotations

from typing import Any

import pytest
from yarl import URL

from tests.providers.builders import EMAIL, key_pair, service_account_channel
from tests.providers.builders import channel as make_channel
from unigate.config.compile import ServiceAccount
from unigate.dialects import anthropic, gemini
from unigate.errors import NotFound, UpstreamAuthError
from unigate.providers import vertex
from unigate.providers.vertex import VertexProvider, publisher_for

SONNET = "claude-sonnet-4-5@20250929"
FLASH = "gemini-2.5-flash"


def project_url(host: str, region: str, publisher: str, model: str, method: str) -> str:
    return f"{host}/v1/projects/my-project/locations/{region}/publishers/{publisher}/models/{model}:{method}"


def test_compile_keeps_the_vertex_keys_and_hides_the_private_key() -> None:
    ch = service_account_channel(region="europe-west4", base_url="http://127.0.0.1:9")
    assert ch.engine == "vertex"
    assert (ch.project_id, ch.region, ch.raw_base_url) == ("my-project", "europe-west4", "http://127.0.0.1:9")
    assert ch.service_account == ServiceAccount(EMAIL, key_pair()[1])
    assert "PRIVATE KEY" not in repr(ch.service_account)
    assert "PRIVATE KEY" not in repr(ch)
    assert make_channel(engine="vertex", project_id="p", api=["AQ.x"]).service_account is None
    assert make_channel(engine="vertex", project_id="p", client_email=EMAIL).service_account is None


@pytest.mark.parametrize(
    ("model", "publisher"),
    [
        (SONNET, "anthropic"),
        ("claude-3-5-haiku@20241022", "anthropic"),
        ("Claude-Opus-4", "anthropic"),
        (FLASH, "google"),
        ("gemini-2.5-pro", "google"),
        ("text-embedding-005", "google"),
        ("my-claude-tune", "google"),
    ],
)
def test_publisher_rule(model: str, publisher: str) -> None:
    assert publisher_for(model) == publisher


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("global", "https://aiplatform.googleapis.com"),
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
        ("us", "https://aiplatform.us.rep.googleapis.com"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_service_account_urls_per_region(region: str, host: str, stream: bool) -> None:
    provider = VertexProvider()
    ch = service_account_channel(region=region, model=[FLASH, SONNET])
    call = provider.chat_call(ch, FLASH, stream, None)
    method = "streamGenerateContent" if stream else "generateContent"
    assert call.url == project_url(host, region, "google", FLASH, method)
    assert call.params == ({"alt": "sse"} if stream else {})
    call = provider.chat_call(ch, SONNET, stream, None)
    method = "streamRawPredict" if stream else "rawPredict"
    assert call.url == project_url(host, region, "anthropic", SONNET, method)
    assert call.params == {}


def test_region_defaults_to_global() -> None:
    ch = service_account_channel()
    assert ch.region == "global"
    assert VertexProvider().chat_call(ch, FLASH, False, None).url == project_url(
        "https://aiplatform.googleapis.com", "global", "google", FLASH, "generateContent"
    )


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1/projects/x/locations/y", "http://127.0.0.1:8080"),
        (
            "https://gateway.ai.cloudflare.com/v1/acct/gw/google-vertex-ai",
            "https://gateway.ai.cloudflare.com/v1/acct/gw/google-vertex-ai",
        ),
        # a Google host is uni-api's automatic base_url: the host follows the region instead
        ("https://aiplatform.googleapis.com/", "https://us-east5-aiplatform.googleapis.com"),
        ("https://us-central1-aiplatform.googleapis.com/v1", "https://us-east5-aiplatform.googleapis.com"),
    ],
)
def test_a_configured_base_url_replaces_the_host(base_url: str, host: str) -> None:
    ch = service_account_channel(base_url=base_url, region="us-east5", model=[SONNET])
    call = VertexProvider().chat_call(ch, SONNET, True, None)
    assert call.url == project_url(host, "us-east5", "anthropic", SONNET, "streamRawPredict")


def test_dialects_follow_the_publisher_of_the_upstream_name_not_the_alias() -> None:
    provider = VertexProvider()
    ch = service_account_channel(model=[{SONNET: "fast-one"}, {FLASH: "claude-like-alias"}])
    assert provider.dialect_for(ch, SONNET) is anthropic.VERTEX_DIALECT
    assert provider.dialect_for(ch, FLASH) is gemini.DIALECT
    assert "/publishers/google/" in provider.chat_call(ch, FLASH, False, None).url
    assert provider.body_settings(ch, SONNET) == {}


def test_the_publisher_is_decided_once_per_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = VertexProvider()
    ch = service_account_channel(model=[FLASH, SONNET])
    plan = provider.plan(ch)
    assert {m: t.publisher for m, t in plan.targets.items()} == {FLASH: "google", SONNET: "anthropic"}

    def no_more(model: str) -> str:
        raise AssertionError("publisher decided at request time")

    monkeypatch.setattr(vertex, "publisher_for", no_more)
    for _ in range(3):
        provider.chat_call(ch, SONNET, True, None)
        provider.dialect_for(ch, FLASH)
    assert provider.plan(ch) is plan
    # a reload brings a new Channel object: its plan is built again
    monkeypatch.undo()
    reloaded = service_account_channel(model=[FLASH])
    assert provider.plan(reloaded) is not plan
    with pytest.raises(NotFound):
        provider.chat_call(reloaded, SONNET, False, None)


def test_a_model_not_configured_on_the_channel_is_refused() -> None:
    with pytest.raises(NotFound):
        VertexProvider().dialect_for(service_account_channel(), "gemini-1.0-pro")


def test_service_account_calls_send_no_api_key_and_keep_channel_headers() -> None:
    ch = service_account_channel(api=["AQ.unused"], model=[SONNET], preferences={"headers": {"anthropic-beta": "b1"}})
    headers = VertexProvider().chat_call(ch, SONNET, True, "AQ.unused").headers
    assert dict(headers) == {"content-type": "application/json", "accept": "text/event-stream", "anthropic-beta": "b1"}


def express(**fields: Any) -> Any:
    base: dict[str, Any] = {"engine": "vertex", "project_id": "my-project", "api": ["AQ.key1", "AQ.key2"]}
    return make_channel(**(base | fields))


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_express_mode_gemini_uses_the_projectless_url_and_the_key_header(stream: bool) -> None:
    provider = VertexProvider()
    ch = express(region="us-central1", model=[FLASH])
    call = provider.chat_call(ch, FLASH, stream, "AQ.key2")
    method = "streamGenerateContent" if stream else "generateContent"
    assert call.url == f"https://aiplatform.googleapis.com/v1/publishers/google/models/{FLASH}:{method}"
    assert call.headers["x-goog-api-key"] == "AQ.key2"
    assert "authorization" not in call.headers
    assert "AQ.key2" not in str(URL(call.url).extend_query(dict(call.params)))
    assert await provider.authorize(ch, call, "AQ.key2") is call


def test_express_mode_follows_a_configured_host() -> None:
    call = VertexProvider().chat_call(express(base_url="http://127.0.0.1:7", model=[FLASH]), FLASH, False, "AQ.key1")
    assert call.url == f"http://127.0.0.1:7/v1/publishers/google/models/{FLASH}:generateContent"


def test_express_mode_claude_keeps_the_project_path() -> None:
    call = VertexProvider().chat_call(express(region="us-east5", model=[SONNET]), SONNET, False, "AQ.key1")
    assert call.url == project_url(
        "https://us-east5-aiplatform.googleapis.com", "us-east5", "anthropic", SONNET, "rawPredict"
    )
    assert call.headers["x-goog-api-key"] == "AQ.key1"


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"engine": "vertex", "project_id": "p", "model": [FLASH]}, "client_email and private_key"),
        ({"engine": "vertex", "api": ["AQ.k"], "model": [SONNET]}, "project_id"),
        ({"engine": "vertex", "client_email": EMAIL, "private_key": "x", "model": [FLASH]}, "project_id"),
        (
            {"engine": "vertex", "project_id": "p", "api": ["k"], "region": "evil.example/x?", "model": [FLASH]},
            "region",
        ),
        ({"engine": "vertex", "project_id": "p", "api": ["k"], "region": "US-CENTRAL1", "model": [FLASH]}, "region"),
    ],
)
def test_channels_that_cannot_be_addressed_say_which_key_to_fix(fields: dict[str, Any], names: str) -> None:
    with pytest.raises(UpstreamAuthError) as caught:
        VertexProvider().chat_call(make_channel(**fields), fields["model"][0], False, None)
    assert names in caught.value.message
    assert "'p'" in caught.value.message  # the channel's name


HOSTILE = ["../../v1/projects/other/locations/global", "m:rawPredict?key=", "#frag", "a/b", "x%2f..%2fy", ".."]


@pytest.mark.parametrize("model", HOSTILE)
def test_a_model_name_stays_inside_one_path_segment(model: str) -> None:
    provider = VertexProvider()
    for name in (model, "claude" + model):
        ch = service_account_channel(model=[name], region="us-central1")
        call = provider.chat_call(ch, name, True, None)
        sent = URL(call.url).extend_query(dict(call.params))
        publisher = publisher_for(name)
        method = "streamRawPredict" if publisher == "anthropic" else "streamGenerateContent"
        assert sent.host == "us-central1-aiplatform.googleapis.com"
        assert sent.parts == (
            "/", "v1", "projects", "my-project", "locations", "us-central1",
            "publishers", publisher, "models", f"{name}:{method}",
        )  # fmt: skip
        assert dict(sent.query) == ({} if publisher == "anthropic" else {"alt": "sse"})
        assert sent.fragment == ""
