"""AWS Bedrock Runtime as a host: region, URLs, which API a model goes through, SigV4 signing.

Docs: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html ,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html ,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-signing-request.html (wire-formats.md §6;
config keys uni-api-compat.md §2.2). Contract:

* **Credentials.** ``aws_access_key`` + ``aws_secret_key`` (+ ``aws_session_token`` for temporary
  credentials) sign every request with SigV4, signing name ``bedrock`` (botocore's signer). Without
  them, each ``api`` key is a Bedrock API key sent as ``Authorization: Bearer`` (the model's
  ``smithy.api#httpBearerAuth``). Neither → ``UpstreamAuthError`` naming the keys to set.
* **Region**, decided once per channel: from a ``base_url`` on ``bedrock-runtime[-fips].<region>.
  amazonaws.com`` (uni-api's rule), else the channel's ``region`` key (when not uni-api's default
  ``global``). Both given and different, or neither → ``UpstreamAuthError`` naming the keys: there
  is no default region, because signing for the wrong one fails every request.
* **Host.** ``base_url``'s scheme and host (its path too when it is not an AWS host: a proxy prefix
  or a loopback fake), else ``https://bedrock-runtime.<region>.amazonaws.com``.
* **API per model** (decided by one rule, ``uses_invoke``): an upstream model id containing
  ``anthropic.claude`` (base ids ``anthropic.claude-…``, inference profiles ``us.``/``eu.``/``global.``
  ``anthropic.claude-…``, and ARNs that name them) goes to ``POST /model/{id}/invoke`` or
  ``/invoke-with-response-stream`` with the Anthropic Messages body (``bedrock_invoke``); every other
  id (Nova, Llama, Mistral, DeepSeek, application-inference-profile ARNs …) to ``/converse`` or
  ``/converse-stream`` (``bedrock_converse``). Converse serves Claude as well; InvokeModel keeps
  Anthropic's native features (server tools, citations, betas) for ids known to be Claude.
* **Model id in the path**: one segment, percent-encoded except ``:`` (``quote(id, safe=":")``), as
  Anthropic's own Bedrock client sends it (``anthropic/lib/bedrock/_client.py``); ``/`` of an ARN is
  ``%2F``. aiohttp (yarl) would decode a ``%3A`` anyway, and SigV4 must cover the path actually sent.
* **Signing** needs the exact body, so it happens in ``sign_body(channel, call, body)``, which the
  relay calls after ``authorize`` for hosts that have it. It signs every header we send (plus
  ``host``), adds ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization``; the time comes from
  the injected wall clock. The secret key never leaves the signer (not in errors, not in ``repr``).
* **Headers.** ``content-type: application/json``; ``accept: application/json`` or, streaming,
  ``application/vnd.amazon.eventstream``; then the channel's ``headers``. For Claude models an
  ``anthropic-beta`` header becomes the body's ``anthropic_beta`` list (how Bedrock takes betas).
* **botocore** is optional (``pip install 'unigate[bedrock]'``): without it every Bedrock attempt
  fails with ``UpstreamAuthError`` saying so (the channel is unusable, other channels still serve).
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from unigate.config.compile import AwsCredentials, Channel
from unigate.dialects import bedrock_converse, bedrock_invoke
from unigate.dialects.base import UpstreamDialect
from unigate.dialects.bedrock_claude_body import BEDROCK_BETA_SETTING
from unigate.dialects.bedrock_eventstream import EVENTSTREAM_MEDIA_TYPE, MISSING_BOTOCORE, require_botocore
from unigate.errors import UpstreamAuthError
from unigate.providers.anthropic import with_channel_headers
from unigate.providers.base import UpstreamCall

__all__ = ["PROVIDER", "SIGNING_NAME", "BedrockPlan", "BedrockProvider", "build_plan", "sign_v4", "uses_invoke"]

SIGNING_NAME = "bedrock"
_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})
_SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"


def uses_invoke(upstream_model: str) -> bool:
    """THE API rule: InvokeModel (Anthropic body) for ids naming ``anthropic.claude``, else Converse."""
    return "anthropic.claude" in upstream_model.lower()


@lru_cache(maxsize=1024)
def model_url(root: str, upstream_model: str, stream: bool) -> str:
    """``{root}/model/{id}/{operation}`` for one model (module docstring: the id's encoding)."""
    if uses_invoke(upstream_model):
        operation = "invoke-with-response-stream" if stream else "invoke"
    else:
        operation = "converse-stream" if stream else "converse"
    return f"{root}/model/{quote(upstream_model, safe=':')}/{operation}"


def sign_v4(
    credentials: AwsCredentials,
    region: str,
    service: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> dict[str, str]:
    """``headers`` plus the SigV4 ones (``X-Amz-Date``, ``X-Amz-Security-Token``, ``Authorization``)
    for a request signed at ``now`` (wall-clock seconds) with botocore's ``SigV4Auth``.

    ``SigV4Auth.add_auth`` reads the clock itself; this is its sequence of steps with the timestamp
    set from ``now`` instead, so tests pin the time (AWS's published test vectors) without sleeping.
    Raises ``RuntimeError`` when botocore is missing."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError as exc:
        raise RuntimeError(MISSING_BOTOCORE) from exc
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signer = SigV4Auth(
        Credentials(credentials.access_key, credentials.secret_key, credentials.session_token), service, region
    )
    stamp = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    request.context["timestamp"] = stamp.strftime(_SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return {str(k): str(v) for k, v in request.headers.items()}


@dataclass(frozen=True, slots=True)
class BedrockPlan:
    """Decided once per channel: where requests go and for which region they are signed."""

    root: str
    region: str


def _problem(channel: Channel, text: str) -> UpstreamAuthError:
    return UpstreamAuthError(f"Bedrock channel '{channel.name}': {text}")


def build_plan(channel: Channel) -> BedrockPlan:
    """Region and host of ``channel`` (module docstring); raises ``UpstreamAuthError`` naming the
    config keys when they cannot be decided."""
    configured = channel.region if channel.region and channel.region != "global" else None
    if configured is not None and not _REGION.fullmatch(configured):
        raise _problem(channel, f"region {configured!r} is not an AWS region such as 'us-east-1'")
    parts = urlsplit(channel.raw_base_url.strip()) if channel.raw_base_url else None
    host = (parts.hostname or "").lower() if parts is not None else ""
    found = _HOST.fullmatch(host)
    if found is not None:
        region = found.group(1)
        if configured is not None and configured != region:
            raise _problem(channel, f"region {configured!r} disagrees with base_url's region {region!r}")
    elif configured is not None:
        region = configured
    else:
        raise _problem(
            channel, "set base_url to https://bedrock-runtime.<region>.amazonaws.com or set region (e.g. us-east-1)"
        )
    if parts is None or not parts.netloc:
        return BedrockPlan(f"https://bedrock-runtime.{region}.amazonaws.com", region)
    path = "" if host.endswith((".amazonaws.com", ".amazonaws.com.cn")) else parts.path.rstrip("/")
    return BedrockPlan(urlunsplit((parts.scheme, parts.netloc, path, "", "")), region)


class BedrockProvider:
    """``Provider`` for ``engine: bedrock`` (uni-api's ``aws``). ``clock`` returns wall-clock seconds
    and stamps signatures."""

    engine = "bedrock"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._plans: dict[str, tuple[Channel, BedrockPlan]] = {}

    def plan(self, channel: Channel) -> BedrockPlan:
        """The channel's plan, built on first sight and again only when the ``Channel`` object changes."""
        entry = self._plans.get(channel.name)
        if entry is not None and entry[0] is channel:
            return entry[1]
        plan = build_plan(channel)
        self._plans[channel.name] = (channel, plan)
        return plan

    def dialect_for(self, channel: Channel, upstream_model: str) -> UpstreamDialect:
        """Claude through InvokeModel, every other model through Converse (``uses_invoke``)."""
        return bedrock_invoke.DIALECT if uses_invoke(upstream_model) else bedrock_converse.DIALECT

    def chat_call(self, channel: Channel, upstream_model: str, stream: bool, api_key: str | None) -> UpstreamCall:
        """URL and unsigned headers; a Bedrock API key (no AWS credentials) as ``Authorization: Bearer``."""
        try:
            require_botocore()
        except RuntimeError as exc:
            raise _problem(channel, str(exc)) from None
        if channel.aws is None and not api_key:
            raise _problem(channel, "set aws_access_key and aws_secret_key (or api: a Bedrock API key)")
        plan = self.plan(channel)
        headers = {
            "content-type": "application/json",
            "accept": EVENTSTREAM_MEDIA_TYPE if stream else "application/json",
        }
        if channel.aws is None and api_key:
            headers["authorization"] = "Bearer " + api_key
        headers = with_channel_headers(headers, channel)
        if uses_invoke(upstream_model):
            headers = {k: v for k, v in headers.items() if k.lower() != "anthropic-beta"}
        return UpstreamCall(model_url(plan.root, upstream_model, stream), headers)

    async def authorize(self, channel: Channel, call: UpstreamCall, api_key: str | None) -> UpstreamCall:
        """Nothing to fetch: SigV4 covers the body, so it is done in :meth:`sign_body`."""
        return call

    def sign_body(self, channel: Channel, call: UpstreamCall, body: bytes) -> UpstreamCall:
        """The call with SigV4 headers for ``body`` (channels with AWS credentials; others unchanged)."""
        credentials = channel.aws
        if credentials is None:
            return call
        region = self.plan(channel).region
        try:
            headers = sign_v4(credentials, region, SIGNING_NAME, "POST", call.url, call.headers, body, self._clock())
        except RuntimeError as exc:
            raise _problem(channel, str(exc)) from None
        return UpstreamCall(call.url, headers, call.params)

    def body_settings(self, channel: Channel, upstream_model: str) -> Mapping[str, Any]:
        """For Claude models, the channel's ``anthropic-beta`` header values as ``anthropic_beta``."""
        if not uses_invoke(upstream_model):
            return _NO_SETTINGS
        betas = [v for k, v in channel.headers.items() if k.lower() == "anthropic-beta"]
        names = tuple(name.strip() for value in betas for name in value.split(",") if name.strip())
        return MappingProxyType({BEDROCK_BETA_SETTING: names}) if names else _NO_SETTINGS


PROVIDER = BedrockProvider()
"""The default instance (wall clock); the app builds its own in ``registry.build_providers``."""
