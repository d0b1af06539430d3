"""Builders for provider tests: channels compiled from ``providers[]`` fields, an RSA key pair,
and a fake ``HttpPost`` token endpoint (the injected seam, not a mock of our HTTP client)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from unigate.config.compile import Channel, compile_channel
from unigate.config.schema import ProviderConfig


def channel(**fields: Any) -> Channel:
    """Compile one ``providers[]`` entry (``provider`` defaults to ``"p"``)."""
    fields.setdefault("provider", "p")
    return compile_channel(ProviderConfig.model_validate(fields), 0, {})


@cache
def key_pair() -> tuple[rsa.RSAPrivateKey, str]:
    """A 2048-bit RSA key and its PKCS#8 PEM (what a service-account key file holds)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key, pem


def public_pem() -> bytes:
    return (
        key_pair()[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


EMAIL = "unigate@my-project.iam.gserviceaccount.com"


def service_account_channel(**fields: Any) -> Channel:
    """A Vertex channel signed by the test key pair."""
    base: dict[str, Any] = {
        "engine": "vertex",
        "project_id": "my-project",
        "client_email": EMAIL,
        "private_key": key_pair()[1],
        "model": ["gemini-2.5-flash"],
    }
    return channel(**(base | fields))


@dataclass
class TokenEndpoint:
    """A scripted token endpoint: answers come from ``answers`` in order (the last one repeats).

    ``gate``, when given, holds every exchange until the test sets it; ``entered`` is set as
    soon as one exchange arrived."""

    answers: list[tuple[int, Any]] = field(
        default_factory=lambda: [(200, {"access_token": "ya29.t1", "expires_in": 3599})]
    )
    gate: asyncio.Event | None = None
    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        self.calls.append((url, dict(headers), body))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        status, answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return status, answer if isinstance(answer, bytes) else orjson.dumps(answer)
