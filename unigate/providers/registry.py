"""engine → Provider: a plain dict, looked up once per attempt (no if/elif over names)."""

from __future__ import annotations

from unigate.config.compile import Channel
from unigate.providers import openai
from unigate.providers.base import Provider

PROVIDERS: dict[str, Provider] = {
    "openai": openai.PROVIDER,
}


def provider_for(channel: Channel) -> Provider:
    return PROVIDERS[channel.engine]
