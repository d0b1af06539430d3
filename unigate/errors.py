"""The one error tree of unigate.

Every failure that can reach a client, or that the relay must act on, is one of these classes.
Each class knows the HTTP status and the OpenAI error ``type`` it is reported with, so the HTTP
layer maps an exception to a response by reading two attributes and never by ``isinstance``
chains; ``routing/retry.py`` maps the *class* to an action (retry? cool down what?) in one table.

::

    UnigateError                         status  OpenAI type
    ├── ClientError                      4xx     the client's own request is at fault
    │   ├── BadRequest                   400     invalid_request_error
    │   │   └── UnsupportedFeature       400     invalid_request_error (a dialect cannot express it)
    │   ├── Unauthorized                 401     authentication_error
    │   ├── PaymentRequired              402     insufficient_quota
    │   ├── PermissionDenied             403     permission_error
    │   ├── NotFound                     404     not_found_error
    │   ├── MethodNotAllowed             405     invalid_request_error
    │   ├── PayloadTooLarge              413     invalid_request_error
    │   ├── UnsupportedMediaType         415     invalid_request_error
    │   └── RateLimited                  429     rate_limit_error (our own limits)
    ├── NoChannelAvailable               503     service_unavailable (nothing could be tried)
    └── UpstreamError                    the outcome of one attempt at a provider
        ├── UpstreamRateLimited          429     rate_limit_error      cool the upstream key
        ├── UpstreamAuthError            401/403 upstream_auth_error   cool the upstream key longer
        ├── UpstreamRequestError         4xx     invalid_request_error the client's request: no retry
        │   ├── ContextLengthExceeded    400
        │   └── ContentFiltered          400
        ├── UpstreamUnavailable          5xx     upstream_error        cool the channel
        ├── UpstreamTimeout              504     timeout_error         cool the channel
        ├── UpstreamConnectError         503     upstream_connect_error cool the channel
        └── UpstreamProtocolError        502     upstream_error        malformed / empty / truncated

Messages never contain secrets: upstream bodies are passed through ``redact`` before they are
stored on an error (providers echo keys in 401 bodies).
"""

from __future__ import annotations

import re
from typing import ClassVar

_SECRETISH = re.compile(r"(?:sk|pk|rk|ak|AIza|xai|gsk|key)[-_A-Za-z0-9]{12,}|Bearer\s+\S+|AKIA[0-9A-Z]{12,}", re.ASCII)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` with every configured secret and anything shaped like an API key masked.

    ``secrets`` are exact strings known to the caller (the channel's upstream keys); the regular
    expression catches keys the upstream echoes that we do not know (another provider's format).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SECRETISH.sub("***", text)


class UnigateError(Exception):
    """Base of the tree: carries the client-facing message, status and OpenAI error type."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param

    def http_status(self) -> int:
        """The status the client sees; instance-level so upstream errors can keep theirs."""
        return self.status

    def to_openai(self) -> dict[str, object]:
        """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After`` for rate limits)."""
        return {}


class ClientError(UnigateError):
    """The client's request is at fault; never retried, never cools anything down."""

    status = 400
    error_type = "invalid_request_error"


class BadRequest(ClientError):
    status = 400


class UnsupportedFeature(BadRequest):
    """A field or content part the target dialect cannot express: refused, never dropped."""


class Unauthorized(ClientError):
    status = 401
    error_type = "authentication_error"


class PaymentRequired(ClientError):
    status = 402
    error_type = "insufficient_quota"


class PermissionDenied(ClientError):
    status = 403
    error_type = "permission_error"


class NotFound(ClientError):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(ClientError):
    status = 405


class PayloadTooLarge(ClientError):
    status = 413


class UnsupportedMediaType(ClientError):
    status = 415


class RateLimited(ClientError):
    """One of our own limits refused the request."""

    status = 429
    error_type = "rate_limit_error"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.extra_headers = extra_headers or {}

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, int(self.retry_after + 0.999)))
        return headers


class InsufficientCredits(ClientError):
    """The client key has spent its ``credits`` (USD budget) since its ``created_at``."""

    status = 402
    error_type = "insufficient_quota"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="insufficient_quota")


class NoChannelAvailable(UnigateError):
    status = 503
    error_type = "service_unavailable"


class UpstreamError(UnigateError):
    """One attempt at a provider failed.

    ``upstream_status`` is what the provider answered (0 when no response arrived);
    ``retry_after`` is the provider's hint in seconds, when it gave one.
    """

    status = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int = 0,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    def http_status(self) -> int:
        if type(self).keeps_upstream_status and 400 <= self.upstream_status <= 599:
            return self.upstream_status
        return self.status

    keeps_upstream_status: ClassVar[bool] = True

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, int(self.retry_after + 0.999)))}


class UpstreamRateLimited(UpstreamError):
    status = 429
    error_type = "rate_limit_error"


class UpstreamAuthError(UpstreamError):
    """The channel's upstream key was refused (401/403): the client gets 502, not our key's fault."""

    status = 502
    error_type = "upstream_auth_error"
    keeps_upstream_status = False


class UpstreamRequestError(UpstreamError):
    """The provider rejected the client's request itself (400, 404 model, 413, 422)."""

    status = 400
    error_type = "invalid_request_error"


class ContextLengthExceeded(UpstreamRequestError):
    pass


class ContentFiltered(UpstreamRequestError):
    pass


class UpstreamUnavailable(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"
    keeps_upstream_status = False


class UpstreamConnectError(UpstreamError):
    status = 503
    error_type = "upstream_connect_error"
    keeps_upstream_status = False


class UpstreamProtocolError(UpstreamError):
    """The provider answered 2xx with something we cannot use: bad JSON, empty, truncated."""

    status = 502
    keeps_upstream_status = False


_BY_STATUS: dict[int, type[UpstreamError]] = {
    400: UpstreamRequestError,
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamRequestError,
    408: UpstreamTimeout,
    409: UpstreamUnavailable,
    413: UpstreamRequestError,
    422: UpstreamRequestError,
    429: UpstreamRateLimited,
}


def upstream_error_for_status(
    status: int, message: str, *, retry_after: float | None = None, code: str | None = None
) -> UpstreamError:
    """Classify a non-2xx provider answer by status alone (dialects refine by body first)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = UpstreamUnavailable if status >= 500 else UpstreamRequestError
    return cls(message, upstream_status=status, retry_after=retry_after, code=code)
