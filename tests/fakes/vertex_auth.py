"""Google service-account OAuth for the fake Vertex AI upstream (wire-formats.md §4).

Owns: fresh RSA keys and a service-account key file for tests (:func:`service_account_info`),
and the server side of the JWT-bearer grant (RFC 7523) — :func:`verify_assertion` checks an
assertion's RS256 signature against the public key registered for its ``iss``, its audience,
lifetime and scope, and raises :class:`InvalidGrant` with the body Google's token endpoint sends.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""What google-auth puts in ``aud`` whatever the key file's ``token_uri``."""
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_LIFETIME_S = 3600
CLOCK_SKEW_S = 60
SCOPE_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM, as in Google key files."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def load_public_key(key: rsa.RSAPublicKey | rsa.RSAPrivateKey | str | bytes | Mapping[str, Any]) -> rsa.RSAPublicKey:
    """The RSA public key from a public/private key object, a PEM (public or private), or a
    service-account info dict (its ``private_key``)."""
    if isinstance(key, Mapping):
        key = str(key["private_key"])
    if isinstance(key, str):
        key = key.encode("ascii")
    if isinstance(key, bytes):
        loaded: Any
        if b"PRIVATE KEY" in key:
            loaded = serialization.load_pem_private_key(key, password=None)
        else:
            loaded = serialization.load_pem_public_key(key)
        key = loaded
    if isinstance(key, rsa.RSAPrivateKey):
        return key.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key
    raise TypeError(f"not an RSA key: {type(key).__name__}")


def public_key_pem(key: rsa.RSAPublicKey | rsa.RSAPrivateKey | str | bytes | Mapping[str, Any]) -> str:
    return (
        load_public_key(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def service_account_info(
    token_uri: str,
    *,
    project_id: str = "test-project",
    client_email: str | None = None,
    private_key: rsa.RSAPrivateKey | None = None,
) -> dict[str, str]:
    """A dict shaped like a Google service-account JSON key file, with a fresh RSA key (unless
    ``private_key`` is given) and ``token_uri`` pointing wherever the test says (the fake)."""
    key = private_key if private_key is not None else new_private_key()
    email = client_email or f"unigate-test@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_key_pem(key),
        "client_email": email,
        "client_id": str(100000000000000000000 + secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email.replace('@', '%40')}",
        "universe_domain": "googleapis.com",
    }


@dataclass(frozen=True)
class TrustedKey:
    public_key: rsa.RSAPublicKey
    key_id: str | None = None


class InvalidGrant(Exception):
    """A rejected token request; ``body()`` is Google's 400 JSON."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)


def verify_assertion(
    assertion: str,
    keys: Mapping[str, TrustedKey],
    now: float,
    audiences: Collection[str] = (TOKEN_AUDIENCE,),
) -> dict[str, Any]:
    """The claims of a valid JWT-bearer assertion; raises :class:`InvalidGrant` otherwise."""
    pieces = assertion.split(".")
    try:
        if len(pieces) != 3:
            raise ValueError("not three parts")
        header = json.loads(_b64url(pieces[0]))
        claims = json.loads(_b64url(pieces[1]))
        signature = _b64url(pieces[2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("not JSON objects")
    except (ValueError, binascii.Error) as exc:
        raise InvalidGrant("invalid_grant", "Invalid JWT: malformed assertion.") from exc
    if header.get("alg") != "RS256":
        raise InvalidGrant("invalid_grant", f"Invalid JWT: unsupported algorithm {header.get('alg')!r}.")
    trusted = keys.get(str(claims.get("iss")))
    if trusted is None:
        raise InvalidGrant("invalid_grant", "Invalid grant: account not found")
    if trusted.key_id is not None and header.get("kid") != trusted.key_id:
        raise InvalidGrant("invalid_grant", "Invalid JWT Signature.")
    signed = f"{pieces[0]}.{pieces[1]}".encode("ascii")
    try:
        trusted.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise InvalidGrant("invalid_grant", "Invalid JWT Signature.") from exc
    if claims.get("aud") not in audiences:
        raise InvalidGrant(
            "invalid_grant", f"Invalid JWT: Failed audience check. The expected audience is {TOKEN_AUDIENCE}."
        )
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise InvalidGrant("invalid_grant", SHORT_LIVED)
    if exp - iat > MAX_LIFETIME_S or iat > now + CLOCK_SKEW_S or exp <= now - CLOCK_SKEW_S:
        raise InvalidGrant("invalid_grant", SHORT_LIVED)
    if not claims.get("scope") and not claims.get("target_audience"):
        raise InvalidGrant("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return claims
