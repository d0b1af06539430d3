"""A fake AWS Bedrock Runtime: a real loopback HTTP/1.1 server speaking wire-formats.md §6.

    with FakeBedrock(region="us-east-1") as fake:
        access_key, secret = fake.add_credentials()                  # a fresh key pair it trusts
        fake.script_for("amazon.nova-pro-v1:0", CReply(text="hi"), BFail("ThrottlingException"))
        client = boto3.client("bedrock-runtime", endpoint_url=fake.url, region_name="us-east-1", ...)
        client.converse(modelId="amazon.nova-pro-v1:0", messages=[...])

Routes: ``POST /model/{modelId}/invoke``, ``/invoke-with-response-stream`` (Claude model ids only:
Anthropic Messages bodies in Bedrock's form, answers as Anthropic ``Message`` JSON or ``chunk``
frames), ``/converse`` and ``/converse-stream`` (any model id: bodies validated against botocore's
``ConverseRequest``; answers as ``ConverseResponse`` JSON or ConverseStream frames). ``{modelId}`` is
percent-decoded. Streams are ``application/vnd.amazon.eventstream``, encoded by
``bedrock_eventstream`` (written from the documented frame layout, not by botocore).

Checked before a behaviour is consumed, each failure as Bedrock answers it (``x-amzn-ErrorType`` +
``{"message"}``): authentication (``bedrock_auth``: SigV4 recomputed with botocore, or a Bedrock API
key; 403), the route (404 ``UnknownOperationException``), the model (``ValidationException`` "The
provided model identifier is invalid." when ``strict_models``; InvokeModel only for Claude ids), the
body (Claude: ``anthropic_version: bedrock-2023-05-31``, no ``model``/``stream``/``metadata``, plus the
Anthropic fake's Messages checks; Converse: the botocore shape, temperature ≤ 1, alternating roles
starting with ``user``, no blank text).

``caller_of(request)`` tells which credential made a recorded request (``Caller``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from tests.fakes.anthropic_behaviours import AEcho
from tests.fakes.anthropic_wire import check_body as check_messages_body
from tests.fakes.bedrock_auth import AwsKey, Caller, Refusal, authenticate
from tests.fakes.bedrock_behaviours import (
    BedrockExchange,
    BFail,
    BPaused,
    BStreamError,
    CEcho,
    CReply,
    run,
)
from tests.fakes.bedrock_wire import BEDROCK_VERSION, check_claude_body, check_converse_body
from tests.fakes.http11 import Conn, HttpRequest
from tests.fakes.loopback import LoopbackFake, RecordedRequest

__all__ = ["BFail", "BPaused", "BStreamError", "CEcho", "CReply", "FakeBedrock"]

ROUTE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream|converse|converse-stream)$")
DEFAULT_MODELS = (
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-3-70b-instruct-v1:0",
)


def is_claude(model: str) -> bool:
    return "anthropic.claude" in model


class FakeBedrock(LoopbackFake[object]):
    """A fake Bedrock Runtime on ``host:port`` for ``region``, started on construction; ``url`` is the
    ``endpoint_url``/``base_url``. ``clock`` (wall-clock seconds) judges signature expiry."""

    name = "FakeBedrock"

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        strict_models: bool = True,
        api_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.region = region
        self.models = tuple(models)
        self.strict_models = strict_models
        self.api_keys = frozenset(api_keys)
        self.clock = clock
        self._keys: dict[str, AwsKey] = {}
        self._callers: dict[int, Caller] = {}
        super().__init__(default=CEcho(), host=host, port=port)

    def add_credentials(self, session_token: str | None = None) -> tuple[str, str]:
        """A fresh ``(access_key, secret_key)`` the fake trusts (with ``session_token`` if given)."""
        access_key = "AKIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        self.trust(access_key, secret, session_token)
        return access_key, secret

    def trust(self, access_key: str, secret: str, session_token: str | None = None) -> None:
        with self._cond:
            self._keys[access_key] = AwsKey(secret, session_token)

    @property
    def model_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if ROUTE.match(r.path)]

    def caller_of(self, request: RecordedRequest) -> Caller | None:
        """The credential that made ``request`` (None when it was refused before authentication passed)."""
        with self._cond:
            return self._callers.get(id(request))

    def __repr__(self) -> str:
        return f"FakeBedrock({self.url!r}, region={self.region!r})"

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        recorded = self._record(req, conn)
        ex = BedrockExchange(conn, req.keep_alive, self._parker(conn), self._new_hang)
        with self._cond:
            keys = dict(self._keys)
        verdict = authenticate(
            req.method,
            req.target,
            req.headers,
            req.body,
            region=self.region,
            keys=keys,
            api_keys=self.api_keys,
            clock=self.clock,
        )
        if isinstance(verdict, Refusal):
            return await ex.fail(verdict.exception, verdict.message)
        with self._cond:
            self._callers[id(recorded)] = verdict
        route = ROUTE.match(req.path)
        if req.method != "POST" or route is None:
            return await ex.fail("UnknownOperationException", "")
        model, op = unquote(route["model"]), route["op"]
        invoke = op.startswith("invoke")
        if (self.strict_models and model not in self.models) or (invoke and not is_claude(model)):
            return await ex.fail("ValidationException", "The provided model identifier is invalid.")
        body = recorded.json
        if invoke:
            problem = check_claude_body(body) or check_messages_body(body, BEDROCK_VERSION)
        else:
            problem = check_converse_body(body, model)
        if problem is not None:
            return await ex.fail("ValidationException", problem)
        ex.api, ex.body, ex.model, ex.stream = ("invoke" if invoke else "converse"), body, model, op.endswith("stream")
        behaviour = self._take(model)
        if behaviour is None:
            return await run(AEcho() if invoke else CEcho(), ex)
        try:
            return await run(behaviour, ex)
        except TypeError as exc:
            self._fake_error(exc)
            return await ex.fail("InternalServerException", str(exc))
