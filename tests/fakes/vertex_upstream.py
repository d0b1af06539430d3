"""A fake Vertex AI upstream (wire-formats.md §4): the service-account OAuth token endpoint, Gemini
publisher models and Claude publisher models, on one loopback HTTP/1.1 server.

    with FakeVertex(project="test-project", region="us-east5") as fake:
        info = fake.service_account_info()       # fresh RSA key, trusted, token_uri = fake.token_uri
        creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE_CLOUD_PLATFORM])
        fake.script_for("gemini-2.5-flash", GReply(text="hi"))
        fake.script_for("claude-sonnet-4-6@20250929", AFail(529))
        ...
        assert fake.tokens_issued == 1

Routes:
- ``POST /token`` — the JWT-bearer grant (form body ``grant_type=urn:ietf:params:oauth:grant-type:
  jwt-bearer&assertion=<JWT>``); the RS256 signature is checked against the public key
  registered for the JWT's ``iss`` with :meth:`FakeVertex.trust` (or by
  :meth:`FakeVertex.service_account_info`); answers ``{"access_token": "ya29.fake-…",
  "expires_in": 3600, "token_type": "Bearer"}`` or Google's 400 ``invalid_grant``/``invalid_scope``.
- ``POST /{v1|v1beta1}/projects/{p}/locations/{loc}/publishers/google/models/{m}:generateContent``
  and ``:streamGenerateContent`` (``?alt=sse``), ``:countTokens`` — Gemini bodies and behaviours
  (``GReply`` …, see ``gemini_upstream``) with the Vertex differences: ``role`` required on every
  content, ``createTime``, ``usageMetadata.trafficType``.
- ``POST /{v1|v1beta1}/projects/{p}/locations/{loc}/publishers/anthropic/models/{m}:rawPredict``
  and ``:streamRawPredict`` — Anthropic Messages bodies without ``model`` and with
  ``anthropic_version`` (``vertex-2023-10-16``; ``2026-10-21`` as the SDK >= 2.0 sends) and
  Anthropic behaviours (``AReply`` …); ``models/count-tokens:rawPredict`` counts tokens.

Checked before a behaviour is consumed, as Google errors (``{"error": {"code", "message",
"status"}}``): a valid, unexpired Bearer token (401 ``UNAUTHENTICATED``), the project (403
``PERMISSION_DENIED``), the location (``region`` or ``global``; else 404) and, with
``strict_models``, the model (404); then the publisher's own body checks (Google 400 for Gemini,
Anthropic 400 ``invalid_request_error`` for Claude). ``url`` is ``http://host:port``: the
``base_url`` for ``genai.Client(vertexai=True, ...)``; ``url + "/v1"`` for ``AnthropicVertex``.

Behaviours of both families share ``script`` (a Gemini-only behaviour reaching a Claude model, or
the reverse, is a test bug: recorded in ``errors`` and answered with a 500); the generic ones
(``Hang``, ``Refuse``, ``StreamThenDie`` …) work for both.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.anthropic_behaviours import ANTHROPIC_ONLY, ABehaviour, AEcho, AFail, AReply, AStreamError
from tests.fakes.anthropic_runners import AnthropicExchange
from tests.fakes.anthropic_runners import run as run_anthropic
from tests.fakes.anthropic_wire import check_body as check_messages_body
from tests.fakes.anthropic_wire import input_tokens
from tests.fakes.gemini_behaviours import GEMINI_ONLY, GBehaviour, GBlocked, GEcho, GFail, GReply, GSafety, GStreamError
from tests.fakes.gemini_runners import GeminiExchange
from tests.fakes.gemini_upstream import serve_model_method
from tests.fakes.gemini_wire import error_json
from tests.fakes.http11 import Conn, HttpRequest
from tests.fakes.loopback import (
    ConnectionRecord,
    Delay,
    EmptyStream,
    Gate,
    Hang,
    LoopbackFake,
    Raw,
    RawStream,
    RecordedRequest,
    Refuse,
    Stall,
    StreamThenDie,
)
from tests.fakes.openai_wire import dumps
from tests.fakes.vertex_auth import (
    JWT_BEARER,
    SCOPE_CLOUD_PLATFORM,
    TOKEN_AUDIENCE,
    InvalidGrant,
    TrustedKey,
    load_public_key,
    public_key_pem,
    service_account_info,
    verify_assertion,
)

__all__ = [
    "SCOPE_CLOUD_PLATFORM",
    "AEcho",
    "AFail",
    "AReply",
    "AStreamError",
    "ConnectionRecord",
    "Delay",
    "EmptyStream",
    "FakeVertex",
    "GBlocked",
    "GEcho",
    "GFail",
    "GReply",
    "GSafety",
    "GStreamError",
    "Gate",
    "Hang",
    "Raw",
    "RawStream",
    "RecordedRequest",
    "Refuse",
    "Stall",
    "StreamThenDie",
    "VBehaviour",
    "public_key_pem",
    "service_account_info",
]

VBehaviour = ABehaviour | GBehaviour
VERTEX_VERSIONS = ("v1", "v1beta1")
ANTHROPIC_VERSIONS = ("vertex-2023-10-16", "2026-10-21")
PREDICT_PATH = re.compile(
    r"^/(?P<version>v1\w*)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def _error_info(reason: str, domain: str = "googleapis.com") -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": domain}


class FakeVertex(LoopbackFake[VBehaviour]):
    """A fake Vertex AI endpoint plus OAuth token endpoint, started on construction.

    Unscripted requests get ``default_anthropic`` / ``default_gemini`` (the echoes); the base
    class's single ``default`` is not used here.

    ``clock`` (wall-clock seconds, default ``time.time``) decides token expiry and JWT
    ``iat``/``exp`` checks; google-auth signs with the real time, so inject an offset clock
    (``lambda: time.time() + 3601``) to expire tokens without sleeping.
    """

    name = "FakeVertex"

    def __init__(
        self,
        project: str = "test-project",
        region: str = "us-east5",
        *,
        anthropic_models: Iterable[str] = ("claude-sonnet-4-6@20250929", "claude-haiku-4-5@20251001"),
        gemini_models: Iterable[str] = ("gemini-2.5-flash", "gemini-2.5-pro"),
        strict_models: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        default_anthropic: ABehaviour | None = None,
        default_gemini: GBehaviour | None = None,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 3600,
        anthropic_versions: Iterable[str] = ANTHROPIC_VERSIONS,
    ) -> None:
        self.project = project
        self.region = region
        self.locations = (region, "global")
        self.anthropic_models = tuple(anthropic_models)
        self.gemini_models = tuple(gemini_models)
        self.strict_models = strict_models
        self.default_anthropic: ABehaviour = default_anthropic if default_anthropic is not None else AEcho()
        self.default_gemini: GBehaviour = default_gemini if default_gemini is not None else GEcho()
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.anthropic_versions = tuple(anthropic_versions)
        self._trusted: dict[str, TrustedKey] = {}
        self._tokens: dict[str, float] = {}
        self._issued = 0
        super().__init__(default=self.default_gemini, host=host, port=port)
        self.token_uri = f"{self.url}/token"

    # ---- OAuth, synchronous API -------------------------------------------------------------

    def trust(
        self,
        client_email: str,
        public_key: rsa.RSAPublicKey | rsa.RSAPrivateKey | str | bytes,
        key_id: str | None = None,
    ) -> None:
        """Accept JWTs with ``iss == client_email`` signed by ``public_key``'s private key (and,
        when ``key_id`` is given, a matching ``kid`` header)."""
        with self._cond:
            self._trusted[client_email] = TrustedKey(load_public_key(public_key), key_id)

    def service_account_info(self, **kwargs: Any) -> dict[str, str]:
        """:func:`service_account_info` for this fake (``token_uri``, ``project_id``), already trusted."""
        kwargs.setdefault("project_id", self.project)
        info = service_account_info(self.token_uri, **kwargs)
        self.trust(info["client_email"], info["private_key"], info["private_key_id"])
        return info

    def issue_token(self) -> str:
        """A valid access token minted without the OAuth exchange (for ``access_token=`` clients)."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._cond:
            self._tokens[token] = self.clock() + self.token_lifetime
        return token

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (the next model request gets 401 until a new one)."""
        with self._cond:
            self._tokens.clear()

    @property
    def tokens_issued(self) -> int:
        """Successful ``POST /token`` exchanges."""
        with self._cond:
            return self._issued

    @property
    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/token"]

    @property
    def predict_requests(self) -> list[RecordedRequest]:
        """Model requests (either publisher), accepted or not."""
        return [r for r in self.requests if "/publishers/" in r.path]

    def __repr__(self) -> str:
        return f"FakeVertex({self.url!r}, project={self.project!r}, region={self.region!r})"

    # ---- serving ------------------------------------------------------------------------------

    def _token_valid(self, authorization: str | None) -> str | None:
        """None when the Bearer token is valid, else the ErrorInfo reason."""
        if not authorization:
            return "CREDENTIALS_MISSING"
        scheme, _, token = authorization.partition(" ")
        with self._cond:
            expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None:
            return "ACCESS_TOKEN_TYPE_UNSUPPORTED"
        return None if self.clock() < expiry else "ACCESS_TOKEN_EXPIRED"

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        recorded = self._record(req, conn)
        ex = GeminiExchange(conn, req.keep_alive, self._parker(conn), self._new_hang, vertex=True)
        if req.method == "POST" and req.path == "/token":
            return await self._token(req, ex)
        route = PREDICT_PATH.match(req.path)
        if req.method != "POST" or route is None or route["version"] not in VERTEX_VERSIONS:
            return await ex.error(404, f"The requested URL {req.path} was not found on this server.")
        reason = self._token_valid(req.headers.get("authorization"))
        if reason is not None:
            return await ex.respond_json(
                401, error_json(401, "UNAUTHENTICATED", INVALID_CREDENTIALS, [_error_info(reason)])
            )
        publisher, model, method = route["publisher"], unquote(route["model"]), route["method"]
        resource = f"projects/{route['project']}/locations/{route['location']}/publishers/{publisher}/models/{model}"
        if route["project"] != self.project:
            message = (
                f"Permission 'aiplatform.endpoints.predict' denied on resource"
                f" '//aiplatform.googleapis.com/{resource}' (or it may not exist)."
            )
            details = [_error_info("IAM_PERMISSION_DENIED", "aiplatform.googleapis.com")]
            return await ex.respond_json(403, error_json(403, "PERMISSION_DENIED", message, details))
        known = {"google": self.gemini_models, "anthropic": (*self.anthropic_models, "count-tokens")}.get(publisher)
        unknown_model = self.strict_models and known and model not in known
        if route["location"] not in self.locations or known is None or unknown_model:
            message = f"Publisher Model `{resource}` was not found or your project does not have access to it."
            return await ex.respond_json(404, error_json(404, "NOT_FOUND", message))
        if publisher == "google":
            return await serve_model_method(ex, method, recorded.json, model, req.query, self._gemini_behaviour)
        aex = AnthropicExchange(conn, req.keep_alive, self._parker(conn), self._new_hang)
        return await self._claude(model, method, recorded.json, aex)

    async def _token(self, req: HttpRequest, ex: GeminiExchange) -> bool:
        form = parse_qs(req.body.decode("utf-8", "replace"))
        grant_type = (form.get("grant_type") or [""])[0]
        try:
            if grant_type != JWT_BEARER:
                raise InvalidGrant("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
            with self._cond:
                trusted = dict(self._trusted)
            verify_assertion(
                (form.get("assertion") or [""])[0], trusted, self.clock(), (TOKEN_AUDIENCE, self.token_uri)
            )
        except InvalidGrant as exc:
            return await ex.respond_json(400, exc.body())
        token = self.issue_token()
        with self._cond:
            self._issued += 1
            self._cond.notify_all()
        return await ex.respond_json(
            200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _pick(self, model: str, default: object, wrong: tuple[type, ...]) -> tuple[object, str | None]:
        """The next behaviour for ``model`` (or ``default``), and a problem when it belongs to the
        other publisher — a test bug, also recorded in ``errors``."""
        behaviour = self._take(model)
        if behaviour is None:
            return default, None
        if isinstance(behaviour, wrong):
            problem = f"fake misuse: {behaviour!r} was scripted for {model}, a model of the other publisher"
            self._fake_error(TypeError(problem))
            return behaviour, problem
        return behaviour, None

    def _gemini_behaviour(self, model: str) -> object:
        behaviour, problem = self._pick(model, self.default_gemini, ANTHROPIC_ONLY)
        return behaviour if problem is None else GFail(500, message=problem)

    async def _claude(self, model: str, method: str, body: Any, ex: AnthropicExchange) -> bool:
        if model == "count-tokens" and method == "rawPredict":
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                return await ex.error(400, "model: Field required")
            return await ex.respond(200, dumps({"input_tokens": input_tokens(body)}))
        if method not in ("rawPredict", "streamRawPredict"):
            return await ex.error(404, f"Method {method} is not supported for publisher model {model}.")
        if not isinstance(body, dict):
            return await ex.error(400, "There was an issue with your request body: it must be a JSON object.")
        version = body.get("anthropic_version")
        if version is None:
            return await ex.error(400, "anthropic_version: Field required")
        if version not in self.anthropic_versions:
            return await ex.error(400, f"anthropic_version: Input should be 'vertex-2023-10-16', got {version!r}")
        if "model" in body:
            return await ex.error(400, "model: Extra inputs are not permitted")
        problem = check_messages_body(body, str(version))
        if problem is not None:
            return await ex.error(400, problem)
        ex.body, ex.model, ex.stream = body, model.replace("@", "-"), bool(body.get("stream"))
        behaviour, problem = self._pick(model, self.default_anthropic, GEMINI_ONLY)
        if problem is not None:
            return await ex.error(500, problem)
        return await run_anthropic(behaviour, ex)
