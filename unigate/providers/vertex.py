"""Vertex AI as a host: Gemini and Claude publisher models, service-account OAuth, express keys.

Docs: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference ,
https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude ,
https://developers.google.com/identity/protocols/oauth2/service-account (wire-formats.md §4;
config keys uni-api-compat.md §2.2). Contract:

* **Host.** ``region`` (default ``global``) → ``https://aiplatform.googleapis.com`` for ``global``,
  ``https://aiplatform.{us,eu}.rep.googleapis.com`` for the multi-regions ``us``/``eu``, else
  ``https://{region}-aiplatform.googleapis.com``. A configured ``base_url`` on a non-Google host (a
  proxy, Cloudflare's AI Gateway, a loopback fake) replaces the host, with a trailing ``/v1`` or
  ``/v1/projects/…`` tail removed; a ``base_url`` on ``*.googleapis.com`` is ignored (uni-api sets
  it automatically too), so the host always follows ``region``.
* **Publisher, decided once per model** when a channel is first seen (then cached per channel,
  rebuilt when a config reload brings a new ``Channel``), by one documented rule
  (``publisher_for``): an upstream model name starting with ``claude`` (any case) is published by
  ``anthropic``; every other name by ``google``. Never by substring checks per request.
* **URLs.** Google: ``{host}/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent``
  or ``:streamGenerateContent`` + ``alt=sse``, gemini dialect. Anthropic: ``…/publishers/anthropic/
  models/{m}:rawPredict`` or ``:streamRawPredict``, the anthropic dialect's ``VERTEX_DIALECT`` (body
  without ``model``, with ``anthropic_version: vertex-2023-10-16``). ``{m}`` is one percent-encoded
  path segment (``gemini.model_segment``; ``@`` kept for ``claude-…@20250929``).
* **Auth.** A channel with ``client_email`` + ``private_key`` uses the service account (its API
  keys, if any, are not sent): a self-signed RS256 JWT (``iss`` = client_email, ``scope``
  cloud-platform, ``aud`` = the token URI, ``exp = iat + 3600``; no ``sub``, which Google reserves
  for domain-wide delegation) is exchanged at the token URI (RFC 7523 jwt-bearer grant) through the
  injected ``HttpPost`` and sent as ``Authorization: Bearer``. Without a service account the channel
  is in **express mode**: each ``api`` key goes in ``x-goog-api-key``; Gemini then uses the
  project-less express URL ``{global host}/v1/publishers/google/models/{m}:…`` (as google-genai builds
  it); Claude keeps the project path (whether Vertex takes an API key for it is Vertex's call).
* **Token URI.** ``https://oauth2.googleapis.com/token``; the operator may point it elsewhere
  with the environment variable ``UNIGATE_VERTEX_TOKEN_URI`` (read by ``registry.build_providers``,
  e.g. for a loopback fake). The JWT's ``aud`` follows it, so an assertion made for a fake is
  useless at Google.
* **Token cache.** One access token per service account, reused until ``expires_in`` minus 5
  minutes (minus half the lifetime when that is shorter). At most one exchange per account is in
  flight: concurrent callers await the same task, and its failure reaches all of them (a failed
  exchange is not cached; the next request tries again) — unless the old token still has more
  than a minute to live, which is then used instead. The clock is injected (wall-clock
  seconds: it also stamps ``iat``). RSA signing (~1 ms) runs in a worker thread.
* **Errors.** A refused or malformed exchange, or an unreadable private key, raises
  ``UpstreamAuthError`` whose message never contains the key or the assertion. Transport failures
  of the injected ``post`` propagate as the pool classified them (timeouts, connect errors).
  A channel that cannot be addressed (no project, no credentials, a malformed region) raises
  ``UpstreamAuthError`` naming the config key to fix.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from unigate.config.compile import Channel, ServiceAccount
from unigate.dialects import anthropic as anthropic_dialect
from unigate.dialects import gemini as gemini_dialect
from unigate.dialects.base import UpstreamDialect
from unigate.errors import NotFound, UpstreamAuthError, UpstreamError, redact
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import HttpPost, UpstreamCall
from unigate.providers.gemini import google_headers, method_for, model_segment

__all__ = [
    "DEFAULT_TOKEN_URI",
    "GLOBAL_HOST",
    "PROVIDER",
    "SCOPE",
    "TOKEN_URI_ENV",
    "Target",
    "VertexPlan",
    "VertexProvider",
    "build_plan",
    "publisher_for",
    "sign_assertion",
]

DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
TOKEN_URI_ENV = "UNIGATE_VERTEX_TOKEN_URI"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GLOBAL_HOST = "https://aiplatform.googleapis.com"
TOKEN_LIFETIME = 3600
REFRESH_MARGIN = 300.0
EXPIRY_GUARD = 60.0

_MULTI_REGION_HOSTS = {
    "us": "https://aiplatform.us.rep.googleapis.com",
    "eu": "https://aiplatform.eu.rep.googleapis.com",
}
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_VERSION_TAIL = re.compile(r"/v1(?:beta1)?(?:/(?:projects|publishers)/.*)?$")
_FORM_HEADERS: Mapping[str, str] = MappingProxyType(
    {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
)
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})
_DIALECTS: Mapping[str, UpstreamDialect] = MappingProxyType(
    {"anthropic": anthropic_dialect.VERTEX_DIALECT, "google": gemini_dialect.DIALECT}
)
_METHODS: Mapping[str, Callable[[bool], tuple[str, dict[str, str]]]] = MappingProxyType(
    {"anthropic": lambda stream: ("streamRawPredict" if stream else "rawPredict", {}), "google": method_for}
)


def publisher_for(upstream_model: str) -> str:
    """THE publisher rule: ``anthropic`` for a name starting with ``claude`` (any case), else ``google``."""
    return "anthropic" if upstream_model.lower().startswith("claude") else "google"


# ---------------------------------------------------------------------------- per-channel plan


@dataclass(frozen=True, slots=True)
class Target:
    """One configured model: its publisher, dialect, and URL up to (not including) ``:method``."""

    publisher: str
    dialect: UpstreamDialect
    url: str


@dataclass(frozen=True, slots=True)
class VertexPlan:
    """Everything decided once per channel. ``account`` is None in express mode."""

    account: ServiceAccount | None
    targets: Mapping[str, Target]


def _problem(channel: Channel, text: str) -> UpstreamAuthError:
    return UpstreamAuthError(f"Vertex channel '{channel.name}': {text}")


def _override(channel: Channel) -> str | None:
    """A configured non-Google ``base_url`` as the root the ``/v1/…`` paths hang from, else None."""
    if not channel.raw_base_url:
        return None
    parts = urlsplit(channel.raw_base_url.strip())
    if not parts.netloc or (parts.hostname or "").lower().endswith(".googleapis.com"):
        return None
    path = _VERSION_TAIL.sub("", parts.path.rstrip("/"))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _regional_host(region: str) -> str:
    if region == "global":
        return GLOBAL_HOST
    return _MULTI_REGION_HOSTS.get(region) or f"https://{region}-aiplatform.googleapis.com"


def build_plan(channel: Channel) -> VertexPlan:
    """Decide hosts, publishers and URLs for every model of ``channel``; raises ``UpstreamAuthError``
    naming the config key when the channel cannot be addressed or signed."""
    region = channel.region or "global"
    if not _REGION.fullmatch(region):
        raise _problem(channel, "region must be a Vertex location such as 'global' or 'us-central1'")
    account = channel.service_account
    if account is None and not channel.keys:
        raise _problem(channel, "set client_email and private_key (service account) or api (express-mode keys)")
    project = quote(channel.project_id or "", safe="")
    if account is not None and not project:
        raise _problem(channel, "set project_id (service-account auth addresses a project)")
    override = _override(channel)
    host = override or _regional_host(region)
    express_host = override or GLOBAL_HOST
    targets: dict[str, Target] = {}
    for upstream in channel.models.values():
        publisher = publisher_for(upstream)
        segment = model_segment(upstream)
        if account is None and publisher == "google":
            url = f"{express_host}/v1/publishers/google/models/{segment}"
        elif not project:
            raise _problem(channel, f"set project_id (Claude model '{upstream}' is addressed through a project)")
        else:
            url = f"{host}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{segment}"
        targets[upstream] = Target(publisher, _DIALECTS[publisher], url)
    return VertexPlan(account, MappingProxyType(targets))


# ---------------------------------------------------------------------------- service-account token


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign_assertion(account: ServiceAccount, audience: str, now: float) -> str:
    """The RS256 JWT of the jwt-bearer grant (RFC 7523; wire-formats.md §4), issued at ``now``.

    CPU-bound (PEM parsing and an RSA signature): call it through ``asyncio.to_thread``. A key
    that is not a PEM RSA private key raises ``UpstreamAuthError`` (the message names the
    account, never the key). Literal ``\\n`` sequences in the key (a PEM pasted into a
    single-quoted YAML string or an environment variable) are read as newlines.
    """
    pem = account.private_key.replace("\\n", "\n").encode()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UpstreamAuthError(f"Vertex service account {account.client_email}: private_key is not a PEM RSA key")
    issued = int(now)
    header = {"alg": "RS256", "typ": "JWT"}
    claims: dict[str, Any] = {"iss": account.client_email, "scope": SCOPE, "aud": audience}
    claims |= {"iat": issued, "exp": issued + TOKEN_LIFETIME}
    signing_input = _b64(orjson.dumps(header)) + b"." + _b64(orjson.dumps(claims))
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def _read_token(status: int, raw: bytes, account: ServiceAccount, assertion: str) -> tuple[str, float]:
    """``(access_token, expires_in)`` from the token endpoint's answer, or ``UpstreamAuthError``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    data = data if isinstance(data, dict) else {}
    if 200 <= status < 300:
        token = data.get("access_token")
        lifetime = data.get("expires_in", TOKEN_LIFETIME)
        if isinstance(token, str) and token and type(lifetime) in (int, float) and lifetime > 0:
            return token, float(lifetime)
        detail = "the answer carries no access_token with a positive expires_in"
    else:
        described = [data[k] for k in ("error", "error_description") if isinstance(data.get(k), str)]
        detail = f"HTTP {status}" + (f" ({': '.join(described)[:300]})" if described else "")
    message = f"Vertex token exchange for {account.client_email} failed: {detail}"
    raise UpstreamAuthError(redact(message, (assertion, account.private_key)), upstream_status=status)


@dataclass(slots=True)
class _TokenSlot:
    """One account's cached token and its in-flight refresh (mutated on the event loop only)."""

    token: str | None = None
    refresh_at: float = 0.0
    expires_at: float = 0.0
    task: asyncio.Task[str] | None = None


def _retrieve(task: asyncio.Task[str]) -> None:
    """Mark a refresh's exception as seen even when every caller was cancelled meanwhile."""
    if not task.cancelled():
        task.exception()


# ---------------------------------------------------------------------------- the provider


class VertexProvider:
    """``Provider`` for ``engine: vertex`` (uni-api's ``vertex``, ``vertex-gemini``, ``vertex-claude``).

    ``post`` is the upstream pool's POST, needed only for service-account channels (an instance
    without it serves express-mode channels and raises ``RuntimeError`` on a token exchange);
    ``clock`` returns wall-clock seconds; ``token_uri`` is where assertions are exchanged.
    """

    engine = "vertex"

    def __init__(
        self,
        post: HttpPost | None = None,
        *,
        clock: Callable[[], float] = time.time,
        token_uri: str = DEFAULT_TOKEN_URI,
    ) -> None:
        self._post = post
        self._clock = clock
        self.token_uri = token_uri
        self._plans: dict[str, tuple[Channel, VertexPlan]] = {}
        self._slots: dict[ServiceAccount, _TokenSlot] = {}

    def plan(self, channel: Channel) -> VertexPlan:
        """The channel's plan, built on first sight and again only when the ``Channel`` object changes."""
        entry = self._plans.get(channel.name)
        if entry is not None and entry[0] is channel:
            return entry[1]
        plan = build_plan(channel)
        self._plans[channel.name] = (channel, plan)
        return plan

    def _target(self, channel: Channel, upstream_model: str) -> Target:
        target = self.plan(channel).targets.get(upstream_model)
        if target is None:
            raise NotFound(f"The model '{upstream_model}' is not configured on channel '{channel.name}'.")
        return target

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """Gemini for the ``google`` publisher, Claude-on-Vertex for ``anthropic`` (decided once)."""
        return self._target(channel, upstream_model).dialect

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """The publisher's URL and method; ``x-goog-api-key`` in express mode; channel headers last."""
        target = self._target(channel, upstream_model)
        method, params = _METHODS[target.publisher](stream)
        key = api_key if channel.service_account is None else None
        headers = with_channel_headers(google_headers(stream, key), channel)
        return UpstreamCall(f"{target.url}:{method}", headers, params)

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Add ``Authorization: Bearer`` for a service account (replacing any configured one)."""
        account = channel.service_account
        if account is None:
            return call
        token = await self.access_token(account)
        headers = {k: v for k, v in call.headers.items() if k.lower() != "authorization"}
        headers["authorization"] = "Bearer " + token
        return UpstreamCall(call.url, headers, call.params)

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """Nothing to sign: the credential does not cover the body."""
        return call

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """No settings: the Claude body form is the ``VERTEX_DIALECT`` itself."""
        return _NO_SETTINGS

    async def access_token(self, account: ServiceAccount) -> str:
        """A valid access token for ``account``: cached, or from the one in-flight exchange."""
        slot = self._slots.get(account)
        if slot is None:
            slot = self._slots[account] = _TokenSlot()
        if slot.token is not None and self._clock() < slot.refresh_at:
            return slot.token
        loop = asyncio.get_running_loop()
        task = slot.task
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._refresh(account, slot))
            task.add_done_callback(_retrieve)
            slot.task = task
        try:
            return await asyncio.shield(task)
        except UpstreamError:
            if slot.token is not None and self._clock() < slot.expires_at - EXPIRY_GUARD:
                return slot.token  # the refresh failed early: the old token is still good for a while
            raise

    async def _refresh(self, account: ServiceAccount, slot: _TokenSlot) -> str:
        if self._post is None:
            raise RuntimeError("VertexProvider needs the upstream pool's post for service accounts (build_providers)")
        issued = self._clock()
        assertion = await asyncio.to_thread(sign_assertion, account, self.token_uri, issued)
        body = urlencode({"grant_type": GRANT_TYPE, "assertion": assertion}).encode()
        status, raw = await self._post(self.token_uri, _FORM_HEADERS, body)
        token, lifetime = _read_token(status, raw, account, assertion)
        slot.token = token
        slot.refresh_at = issued + lifetime - min(REFRESH_MARGIN, lifetime / 2)
        slot.expires_at = issued + lifetime
        return token


PROVIDER = VertexProvider()
"""Serves express-mode channels; the app builds one with ``post`` (``registry.build_providers``)."""
