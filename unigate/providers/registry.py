"""engine → Provider: a plain dict, looked up once per attempt (no if/elif over names).

``PROVIDERS`` is the default registry: every host, with a Vertex provider that has no token
exchange wired (it serves express-mode channels; a service-account channel raises
``RuntimeError``). The app builds its own with ``build_providers(post=upstream POST)`` once the
upstream pool exists and hands it to ``provider_for``. Adding a host is one module and one entry
in ``build_providers``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from unigate.config.compile import Channel
from unigate.providers import anthropic, azure, bedrock, cloudflare, cohere, gemini, openai, vertex
from unigate.providers.base import HttpPost, Provider


def build_providers(
    post: HttpPost | None = None,
    *,
    clock: Callable[[], float] = time.time,
    env: Mapping[str, str] | None = None,
) -> dict[str, Provider]:
    """Every host by engine. ``post`` and ``clock`` (wall-clock seconds) go to the Vertex token
    cache; ``env`` is read for ``UNIGATE_VERTEX_TOKEN_URI`` (the token endpoint, default Google's)."""
    token_uri = (env or {}).get(vertex.TOKEN_URI_ENV) or vertex.DEFAULT_TOKEN_URI
    hosts: tuple[Provider, ...] = (
        openai.PROVIDER,
        azure.PROVIDER,
        cloudflare.PROVIDER,
        anthropic.PROVIDER,
        gemini.PROVIDER,
        cohere.PROVIDER,
        vertex.VertexProvider(post, clock=clock, token_uri=token_uri),
        bedrock.BedrockProvider(clock=clock),
    )
    return {host.engine: host for host in hosts}


PROVIDERS: dict[str, Provider] = build_providers()


def provider_for(channel: Channel, providers: Mapping[str, Provider] = PROVIDERS) -> Provider:
    """The host of ``channel.engine``. Compiling skips channels whose engine has no host, so a
    miss here is a wiring bug and raises ``LookupError``."""
    try:
        return providers[channel.engine]
    except KeyError:
        raise LookupError(f"no provider for engine '{channel.engine}' (channel '{channel.name}')") from None
