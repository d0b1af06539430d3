"""Client keys → identity.

A presented key is accepted only when it equals a configured key exactly (uni-api's seed
accepted any token that *started with* a configured key). The lookup is by SHA-256 digest, so
its timing depends on the digest, not on how many leading characters of a real key the
attacker guessed, and the final comparison is ``hmac.compare_digest``.

Keys are read from ``Authorization: Bearer``, ``x-api-key`` (Anthropic SDK) or
``x-goog-api-key`` (google-genai SDK). Every failure raises the same ``Unauthorized`` with one
fixed message, so responses never tell a wrong key from a missing one or echo it back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from unigate.config.compile import ClientKey
from unigate.errors import PermissionDenied, Unauthorized

UNAUTHORIZED_MESSAGE = "Invalid or missing API key. Send it as 'Authorization: Bearer <key>' (or x-api-key)."
MAX_KEY_LENGTH = 4096


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents, or None. ``headers`` keys are lower-case."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    for name in ("x-api-key", "x-goog-api-key"):
        value = headers.get(name)
        if value:
            return value.strip()
    return None


class KeyStore:
    """Immutable index of the configured client keys."""

    __slots__ = ("_by_digest",)

    def __init__(self, keys: Iterable[ClientKey]) -> None:
        self._by_digest = {_digest(k.key): k for k in keys}

    def authenticate(self, headers: Mapping[str, str]) -> ClientKey:
        """Return the identity for the request's key, or raise ``Unauthorized``."""
        token = presented_key(headers)
        if not token or len(token) > MAX_KEY_LENGTH:
            raise Unauthorized(UNAUTHORIZED_MESSAGE, code="invalid_api_key")
        found = self._by_digest.get(_digest(token))
        if found is None or not hmac.compare_digest(found.key.encode(), token.encode()):
            raise Unauthorized(UNAUTHORIZED_MESSAGE, code="invalid_api_key")
        return found


def require_admin(key: ClientKey) -> None:
    """Admin endpoints: ``role: admin`` keys, or the first key when none is marked."""
    if not key.is_admin:
        raise PermissionDenied("This endpoint needs an admin key.", code="admin_required")
