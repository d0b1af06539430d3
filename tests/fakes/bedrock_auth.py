"""How the fake Bedrock runtime authenticates a request: SigV4 recomputed with botocore, or a Bedrock
API key (``Authorization: Bearer``).

SigV4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-signing-request.html): the
``Authorization`` header names the credential scope, the signed headers and the signature. The
verifier rebuilds the canonical request from the request *as received* (raw path and query, the
signed headers' values, the body) and signs it again with botocore's ``SigV4Auth`` for the scope's
date, the fake's region and the service ``bedrock`` — so a signature passes only if the client
signed exactly what went over the wire. Checked, each failure with AWS's own exception and message:
known access key (``UnrecognizedClientException``), session token of temporary credentials, scope
(region, service ``bedrock``, date = ``X-Amz-Date``'s), ``host`` and ``x-amz-date`` signed, the
time within 5 minutes of the fake's clock (``InvalidSignatureException: Signature expired``), and
the signature itself. No header at all → ``MissingAuthenticationTokenException``.
"""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SERVICE = "bedrock"
MAX_SKEW_S = 300
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class AwsKey:
    secret: str
    session_token: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Why the fake refuses a request: the AWS exception name and its message."""

    exception: str
    message: str


@dataclass(frozen=True)
class Caller:
    """Who made an accepted request: ``access_key`` (SigV4) or ``api_key`` (Bearer)."""

    access_key: str | None = None
    api_key: str | None = None


def _amz_seconds(stamp: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def expected_signature(
    key: AwsKey,
    access_key: str,
    region: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    signed: list[str],
    body: bytes,
    amz_date: str,
) -> str:
    """The signature botocore computes for this request as received, signing only ``signed`` headers."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = headers.get("host", "")
    request = AWSRequest(
        method=method, url=f"http://{host}{target}", headers={h: headers.get(h, "") for h in signed}, data=body
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, key.secret, key.session_token), SERVICE, region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def authenticate(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    region: str,
    keys: Mapping[str, AwsKey],
    api_keys: frozenset[str],
    clock: Callable[[], float],
) -> Caller | Refusal:
    """``Caller`` if the request is authentic, else the ``Refusal`` AWS would answer (403)."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        token = authorization.removeprefix("Bearer ")
        if token in api_keys:
            return Caller(api_key=token)
        return Refusal("UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix")
    if not authorization:
        return Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    found = _AUTH.fullmatch(authorization)
    if found is None:
        return Refusal("IncompleteSignatureException", "Authorization header requires 'Credential' parameter.")
    key = keys.get(found["key"])
    if key is None:
        return Refusal("UnrecognizedClientException", "The security token included in the request is invalid.")
    if key.session_token is not None and headers.get("x-amz-security-token") != key.session_token:
        return Refusal("UnrecognizedClientException", "The security token included in the request is invalid.")
    if found["service"] != SERVICE:
        return Refusal("InvalidSignatureException", f"Credential should be scoped to correct service: '{SERVICE}'.")
    if found["region"] != region:
        return Refusal(
            "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{found['region']}'."
        )
    signed = found["signed"].split(";")
    amz_date = headers.get("x-amz-date", "")
    when = _amz_seconds(amz_date)
    if "host" not in signed or "x-amz-date" not in signed or when is None or amz_date[:8] != found["date"]:
        return Refusal("IncompleteSignatureException", "Authorization header requires signed 'host' and 'x-amz-date'.")
    if abs(clock() - when) > MAX_SKEW_S:
        return Refusal(
            "InvalidSignatureException", f"Signature expired: {amz_date} is now earlier or later than 5 min."
        )
    if any(name not in headers for name in signed):
        return Refusal("InvalidSignatureException", "A signed header is missing from the request.")
    want = expected_signature(key, found["key"], region, method, target, headers, signed, body, amz_date)
    if not hmac.compare_digest(want, found["signature"]):
        return Refusal(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.",
        )
    return Caller(access_key=found["key"])
