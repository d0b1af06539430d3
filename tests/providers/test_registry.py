"""The registry: a plain engine → provider dict; the app builds one with its upstream POST."""

from __future__ import annotations

import pytest

from tests.clock import FakeClock
from tests.providers.builders import TokenEndpoint, channel, service_account_channel
from unigate.dialects import anthropic, gemini, openai_chat
from unigate.providers import registry
from unigate.providers.registry import PROVIDERS, build_providers, provider_for
from unigate.providers.vertex import DEFAULT_TOKEN_URI, TOKEN_URI_ENV, VertexProvider


def test_every_host_is_registered_under_its_engine() -> None:
    assert {"openai", "anthropic", "gemini", "vertex", "azure", "cloudflare"} <= set(PROVIDERS)
    assert all(host.engine == engine for engine, host in PROVIDERS.items())


@pytest.mark.parametrize(
    ("fields", "engine", "model", "dialect"),
    [
        ({"base_url": "https://api.openai.com/v1"}, "openai", "gpt-4o", openai_chat.DIALECT),
        ({"engine": "openrouter", "base_url": "https://openrouter.ai/api/v1"}, "openai", "x/y", openai_chat.DIALECT),
        ({"base_url": "https://api.anthropic.com/v1/messages"}, "anthropic", "claude-sonnet-4-5", anthropic.DIALECT),
        ({"engine": "claude"}, "anthropic", "claude-sonnet-4-5", anthropic.DIALECT),
        (
            {"base_url": "https://generativelanguage.googleapis.com/v1beta"},
            "gemini",
            "gemini-2.5-flash",
            gemini.DIALECT,
        ),
        ({"project_id": "p", "api": ["AQ.k"]}, "vertex", "gemini-2.5-flash", gemini.DIALECT),
        (
            {"engine": "vertex-claude", "project_id": "p", "api": ["AQ.k"]},
            "vertex",
            "claude-x",
            anthropic.VERTEX_DIALECT,
        ),
    ],
)
def test_provider_for_looks_up_the_channel_engine(
    fields: dict[str, object], engine: str, model: str, dialect: object
) -> None:
    ch = channel(model=[model], **fields)
    host = provider_for(ch)
    assert host is PROVIDERS[engine]
    assert host.dialect_for(ch, model) is dialect


def test_an_engine_without_a_host_is_a_wiring_error() -> None:
    with pytest.raises(LookupError, match="'codex'"):
        provider_for(channel(engine="codex", model=["m"]))


def test_the_token_uri_comes_from_the_environment() -> None:
    vertex_host = build_providers(env={TOKEN_URI_ENV: "http://127.0.0.1:9/token"})["vertex"]
    assert isinstance(vertex_host, VertexProvider)
    assert vertex_host.token_uri == "http://127.0.0.1:9/token"
    default = build_providers()["vertex"]
    assert isinstance(default, VertexProvider)
    assert default.token_uri == DEFAULT_TOKEN_URI
    assert isinstance(registry.PROVIDERS["vertex"], VertexProvider)


@pytest.mark.anyio
async def test_a_built_registry_signs_vertex_calls_through_the_injected_post() -> None:
    endpoint = TokenEndpoint()
    providers = build_providers(endpoint, clock=FakeClock(), env={TOKEN_URI_ENV: "http://127.0.0.1:9/token"})
    ch = service_account_channel()
    host = provider_for(ch, providers)
    call = await host.authorize(ch, host.chat_call(ch, "gemini-2.5-flash", True, None), None)
    assert call.headers["authorization"] == "Bearer ya29.t1"
    assert [url for url, _, _ in endpoint.calls] == ["http://127.0.0.1:9/token"]
