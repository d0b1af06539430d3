"""Vertex service-account OAuth: the JWT, the exchange through the injected post, the cache."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import parse_qs

import google.auth.jwt
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from tests.clock import FakeClock
from tests.providers.builders import EMAIL, TokenEndpoint, key_pair, public_pem, service_account_channel
from unigate.config.compile import ServiceAccount
from unigate.errors import UpstreamAuthError, UpstreamConnectError
from unigate.providers.base import UpstreamCall
from unigate.providers.vertex import DEFAULT_TOKEN_URI, SCOPE, VertexProvider, sign_assertion

pytestmark = pytest.mark.anyio

TOKEN_URI = "http://127.0.0.1:9/token"
FLASH = "gemini-2.5-flash"


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def account() -> ServiceAccount:
    return ServiceAccount(EMAIL, key_pair()[1])


async def authorized(host: VertexProvider, **fields: object) -> UpstreamCall:
    ch = service_account_channel(**fields)
    return await host.authorize(ch, host.chat_call(ch, FLASH, False, None), None)


def test_the_assertion_is_an_rs256_jwt_signed_by_the_service_account() -> None:
    jwt = sign_assertion(account(), DEFAULT_TOKEN_URI, 1767225600.7)
    head, claims, signature = jwt.split(".")
    assert "=" not in jwt
    assert orjson.loads(b64decode(head)) == {"alg": "RS256", "typ": "JWT"}
    assert orjson.loads(b64decode(claims)) == {
        "iss": EMAIL,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1767225600,
        "exp": 1767229200,
    }
    key = key_pair()[0].public_key()
    key.verify(b64decode(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    # and google-auth, an independent implementation, accepts it too
    decoded = google.auth.jwt.decode(
        jwt, certs=public_pem(), audience=DEFAULT_TOKEN_URI, verify=True, clock_skew_in_seconds=10**10
    )
    assert decoded["iss"] == EMAIL


def test_a_key_with_literal_backslash_n_is_read() -> None:
    pasted = ServiceAccount(EMAIL, key_pair()[1].replace("\n", "\\n"))
    head, claims, signature = sign_assertion(pasted, TOKEN_URI, 0).split(".")
    key = key_pair()[0].public_key()
    key.verify(b64decode(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())


async def test_exchange_form_and_bearer_header() -> None:
    endpoint = TokenEndpoint()
    clock = FakeClock(1767225600.0)
    provider = VertexProvider(endpoint, clock=clock, token_uri=TOKEN_URI)
    call = await authorized(provider)
    assert call.headers["authorization"] == "Bearer ya29.t1"
    assert call.url.endswith(f"/publishers/google/models/{FLASH}:generateContent")
    [(url, headers, body)] = endpoint.calls
    assert url == TOKEN_URI
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert body.startswith(b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
    form = parse_qs(body.decode(), strict_parsing=True)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = orjson.loads(b64decode(form["assertion"][0].split(".")[1]))
    assert claims == {"iss": EMAIL, "scope": SCOPE, "aud": TOKEN_URI, "iat": 1767225600, "exp": 1767229200}


async def test_the_token_replaces_a_configured_authorization_header() -> None:
    provider = VertexProvider(TokenEndpoint(), token_uri=TOKEN_URI)
    call = await authorized(provider, preferences={"headers": {"Authorization": "Bearer stale", "x-extra": "1"}})
    assert [k for k in call.headers if k.lower() == "authorization"] == ["authorization"]
    assert call.headers["authorization"] == "Bearer ya29.t1"
    assert call.headers["x-extra"] == "1"


async def test_cached_until_five_minutes_before_expiry_then_refreshed() -> None:
    endpoint = TokenEndpoint(answers=[(200, {"access_token": "ya29.t1", "expires_in": 3599}),
                                      (200, {"access_token": "ya29.t2", "expires_in": 3599})])  # fmt: skip
    clock = FakeClock(1000.0)
    provider = VertexProvider(endpoint, clock=clock, token_uri=TOKEN_URI)
    assert (await authorized(provider)).headers["authorization"] == "Bearer ya29.t1"
    clock.advance(3599 - 300 - 1)
    assert (await authorized(provider)).headers["authorization"] == "Bearer ya29.t1"
    # another channel with the same service account shares its token
    assert (await authorized(provider, provider="other-channel")).headers["authorization"] == "Bearer ya29.t1"
    assert len(endpoint.calls) == 1
    clock.advance(1)
    assert (await authorized(provider)).headers["authorization"] == "Bearer ya29.t2"
    assert len(endpoint.calls) == 2
    claims = orjson.loads(b64decode(parse_qs(endpoint.calls[1][2].decode())["assertion"][0].split(".")[1]))
    assert claims["iat"] == int(clock.now)


async def test_a_short_lived_token_is_refreshed_at_half_its_life() -> None:
    endpoint = TokenEndpoint(answers=[(200, {"access_token": "ya29.short", "expires_in": 120})])
    clock = FakeClock()
    provider = VertexProvider(endpoint, clock=clock, token_uri=TOKEN_URI)
    await provider.access_token(account())
    clock.advance(59)
    await provider.access_token(account())
    assert len(endpoint.calls) == 1
    clock.advance(1)
    await provider.access_token(account())
    assert len(endpoint.calls) == 2


async def test_one_exchange_for_fifty_concurrent_callers() -> None:
    endpoint = TokenEndpoint(gate=asyncio.Event())
    provider = VertexProvider(endpoint, clock=FakeClock(), token_uri=TOKEN_URI)
    tasks = [asyncio.create_task(authorized(provider)) for _ in range(50)]
    await endpoint.entered.wait()
    assert endpoint.gate is not None
    endpoint.gate.set()
    calls = await asyncio.gather(*tasks)
    assert {c.headers["authorization"] for c in calls} == {"Bearer ya29.t1"}
    assert len(endpoint.calls) == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_exchange() -> None:
    endpoint = TokenEndpoint(gate=asyncio.Event())
    provider = VertexProvider(endpoint, clock=FakeClock(), token_uri=TOKEN_URI)
    first = asyncio.create_task(provider.access_token(account()))
    second = asyncio.create_task(provider.access_token(account()))
    await endpoint.entered.wait()
    first.cancel()
    assert endpoint.gate is not None
    endpoint.gate.set()
    assert await second == "ya29.t1"
    assert first.cancelled()
    assert len(endpoint.calls) == 1


def secret_free(message: str, assertion: str) -> None:
    pem_body = key_pair()[1].splitlines()[1]
    assert "PRIVATE KEY" not in message
    assert pem_body not in message
    assert assertion not in message
    assert assertion.split(".")[2] not in message


async def test_a_refused_exchange_is_an_auth_error_without_secrets() -> None:
    refusal = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    endpoint = TokenEndpoint(answers=[(400, refusal)])
    provider = VertexProvider(endpoint, clock=FakeClock(), token_uri=TOKEN_URI)
    with pytest.raises(UpstreamAuthError) as caught:
        await authorized(provider)
    err = caught.value
    assert err.upstream_status == 400
    assert "invalid_grant" in err.message and "Invalid JWT Signature." in err.message
    assert EMAIL in err.message
    secret_free(str(err) + err.message + repr(err.args), parse_qs(endpoint.calls[0][2].decode())["assertion"][0])


async def test_an_endpoint_echoing_the_assertion_is_redacted() -> None:
    endpoint = TokenEndpoint()
    provider = VertexProvider(endpoint, clock=FakeClock(), token_uri=TOKEN_URI)

    async def echo(url: str, headers: object, body: bytes) -> tuple[int, bytes]:
        await endpoint(url, {}, body)
        assertion = parse_qs(body.decode())["assertion"][0]
        return 401, orjson.dumps({"error": "unauthorized_client", "error_description": f"bad {assertion}"})

    provider = VertexProvider(echo, clock=FakeClock(), token_uri=TOKEN_URI)
    with pytest.raises(UpstreamAuthError) as caught:
        await provider.access_token(account())
    secret_free(caught.value.message, parse_qs(endpoint.calls[0][2].decode())["assertion"][0])


@pytest.mark.parametrize(
    "answer",
    [b"not json", b"[]", {"token_type": "Bearer"}, {"access_token": ""}, {"access_token": "t", "expires_in": 0},
     {"access_token": "t", "expires_in": "3600"}, {"access_token": "t", "expires_in": True}],
)  # fmt: skip
async def test_a_malformed_answer_is_an_auth_error(answer: object) -> None:
    provider = VertexProvider(TokenEndpoint(answers=[(200, answer)]), clock=FakeClock(), token_uri=TOKEN_URI)
    with pytest.raises(UpstreamAuthError, match="no access_token"):
        await provider.access_token(account())


async def test_a_failure_reaches_every_waiter_once_and_is_not_cached() -> None:
    endpoint = TokenEndpoint(
        answers=[(503, b"<html>busy</html>"), (200, {"access_token": "ya29.ok"})], gate=asyncio.Event()
    )
    provider = VertexProvider(endpoint, clock=FakeClock(), token_uri=TOKEN_URI)
    tasks = [asyncio.create_task(provider.access_token(account())) for _ in range(10)]
    await endpoint.entered.wait()
    assert endpoint.gate is not None
    endpoint.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, UpstreamAuthError) and r.upstream_status == 503 for r in results)
    assert len(endpoint.calls) == 1
    assert await provider.access_token(account()) == "ya29.ok"
    assert len(endpoint.calls) == 2


def ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    encoding, fmt = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, fmt, serialization.NoEncryption()).decode()


BROKEN_PEM = "\n".join(
    [
        "-----BEGIN PRIVATE KEY-----",
        "TUlJRXZRSUJBREFOQmdrcWhraUc5dzBDQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lC",
        "-----END PRIVATE KEY-----",
    ]
)


async def test_a_failed_early_refresh_keeps_serving_the_old_token_while_it_lives() -> None:
    endpoint = TokenEndpoint(
        answers=[
            (200, {"access_token": "ya29.t1", "expires_in": 3600}),
            (500, {"error": "internal_failure"}),
            (500, {"error": "internal_failure"}),
            (200, {"access_token": "ya29.t2", "expires_in": 3600}),
        ]
    )
    clock = FakeClock(0.0)
    provider = VertexProvider(endpoint, clock=clock, token_uri=TOKEN_URI)
    assert await provider.access_token(account()) == "ya29.t1"
    clock.advance(3600 - 300)  # inside the refresh margin: a refresh is tried, fails, the old token serves
    assert await provider.access_token(account()) == "ya29.t1"
    clock.advance(300 - 60)  # less than a minute left: the failure surfaces
    with pytest.raises(UpstreamAuthError, match="HTTP 500"):
        await provider.access_token(account())
    assert await provider.access_token(account()) == "ya29.t2"
    assert len(endpoint.calls) == 4


@pytest.mark.parametrize("pem", [BROKEN_PEM, "TUlJRXZRSUJBREFOQmdrcWhraUc5dzBD", ec_pem()])
async def test_an_unreadable_private_key_fails_before_any_exchange(pem: str) -> None:
    endpoint = TokenEndpoint()
    provider = VertexProvider(endpoint, clock=FakeClock(), token_uri=TOKEN_URI)
    with pytest.raises(UpstreamAuthError) as caught:
        await provider.access_token(ServiceAccount(EMAIL, pem))
    assert "private_key is not a PEM RSA key" in caught.value.message
    assert "TUlJ" not in caught.value.message and "BEGIN" not in caught.value.message
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert endpoint.calls == []


async def test_transport_failures_keep_their_class() -> None:
    async def down(url: str, headers: object, body: bytes) -> tuple[int, bytes]:
        raise UpstreamConnectError("could not connect to upstream")

    provider = VertexProvider(down, clock=FakeClock(), token_uri=TOKEN_URI)
    with pytest.raises(UpstreamConnectError):
        await provider.access_token(account())


async def test_without_an_injected_post_a_service_account_is_a_wiring_error() -> None:
    with pytest.raises(RuntimeError, match="build_providers"):
        await VertexProvider(token_uri=TOKEN_URI).access_token(account())
