"""The battery's AWS Bedrock harnesses: the fake Bedrock runtime behind a real unigate.

Two providers of the matrix: ``bedrock-claude`` (Claude model ids → InvokeModel with the Anthropic
body; ``family`` ``anthropic``, so the battery's Anthropic body expectations apply) and
``bedrock-converse`` (other model ids → Converse; ``family`` ``bedrock``, whose expectations the
battery keys on it). Channels ``a``, ``b`` and ``solo`` are three ``engine: bedrock`` providers on the
one fake, told apart by their upstream model ids; each has one SigV4 credential set and no ``api``
keys (``NO_KEYS``), so a refused credential fails the channel over, like a Vertex service account.
The credential a request was signed with (the access key id, never the secret) is what
``Sent.credential`` holds.

The neutral vocabulary maps to Bedrock's: errors as Bedrock exceptions (400 ValidationException,
403 UnrecognizedClientException / AccessDeniedException, 429 ThrottlingException — with no
``Retry-After``, as Bedrock sends none —, 500 InternalServerException, 503
ServiceUnavailableException); in-band errors as ``modelStreamErrorException`` frames;
``pause_after_content`` with the fake's own ``BPaused`` (event-stream frames, not SSE).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Literal
from urllib.parse import unquote

from tests.battery.harness import (
    ERROR_MESSAGE,
    NO_KEYS,
    THINKING_SIGNATURE,
    Channel,
    ErrorKind,
    Finish,
    Harness,
    Say,
    _anthropic_answer,
    _serve,
    config_text,
)
from tests.fakes.bedrock_behaviours import BPaused, content_frames
from tests.fakes.bedrock_upstream import ROUTE, BFail, BStreamError, CReply, FakeBedrock
from tests.fakes.bedrock_wire import stream_exception
from tests.fakes.loopback import RecordedRequest

REGION = "us-east-1"
CLAUDE_MODELS: Mapping[Channel, str] = {
    "a": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "b": "anthropic.claude-haiku-4-5-20251001-v1:0",
    "solo": "global.anthropic.claude-opus-4-1-20250805-v1:0",
}
CONVERSE_MODELS: Mapping[Channel, str] = {
    "a": "amazon.nova-pro-v1:0",
    "b": "meta.llama3-3-70b-instruct-v1:0",
    "solo": "mistral.mistral-large-2407-v1:0",
}
_STOP: Mapping[Finish, str] = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_EXCEPTIONS: Mapping[ErrorKind, str] = {
    "bad_request": "ValidationException",
    "unauthorized": "UnrecognizedClientException",
    "forbidden": "AccessDeniedException",
    "rate_limited": "ThrottlingException",
    "server": "InternalServerException",
    "overloaded": "ServiceUnavailableException",
}


class BedrockHarness(Harness):
    """Either API on the fake Bedrock; ``family`` says which (``anthropic``: InvokeModel)."""

    @property
    def api(self) -> Literal["invoke", "converse"]:
        return "invoke" if self.family == "anthropic" else "converse"

    def _model_of(self, req: RecordedRequest) -> str | None:
        found = ROUTE.match(req.path) if req.method == "POST" else None
        return unquote(found["model"]) if found else None

    def _credential(self, req: RecordedRequest) -> str | None:
        assert isinstance(self.fake, FakeBedrock)
        caller = self.fake.caller_of(req)
        return caller.access_key if caller is not None else None

    def _answer(self, answer: Say, stream: bool) -> object:
        if self.api == "invoke":
            return _anthropic_answer(answer)
        usage = None
        if answer.usage is not None:
            prompt, completion = answer.usage
            usage = (prompt - answer.cached, completion)  # inputTokens leaves the cache reads out
        return CReply(
            text=answer.text,
            tool_uses=answer.calls,
            reasoning=(answer.reasoning, THINKING_SIGNATURE) if answer.reasoning else None,
            stop_reason=_STOP[answer.finish_reason],
            usage=usage,
            cache_read=answer.cached,
        )

    def _error(self, kind: ErrorKind) -> object:
        return BFail(_EXCEPTIONS[kind], ERROR_MESSAGE)

    def _stream_error(self, after: int) -> object:
        return BStreamError(after=after, exception="ModelStreamErrorException", message=ERROR_MESSAGE)

    def pause_after_content(
        self, gate: threading.Event, *, then: Literal["error", "end", "reset", "fin"], chunks: int = 2
    ) -> None:
        first = content_frames(self.api, self.models["a"], chunks)
        rest = [stream_exception("ModelStreamErrorException", ERROR_MESSAGE)] if then == "error" else []
        self.script("a", BPaused(first, gate, rest, "end" if then == "error" else then))


@contextlib.contextmanager
def start(provider: Literal["bedrock-claude", "bedrock-converse"]) -> Iterator[Harness]:
    """The fake Bedrock runtime and a gateway with three ``engine: bedrock`` channels on it."""
    claude = provider == "bedrock-claude"
    models = CLAUDE_MODELS if claude else CONVERSE_MODELS
    with FakeBedrock(REGION, models=models.values()) as fake:
        access_key, secret = fake.add_credentials()
        family = "anthropic" if claude else "bedrock"
        harness = BedrockHarness(provider, family, fake, models, NO_KEYS, 503)  # type: ignore[arg-type]
        head = (
            "    engine: bedrock\n"
            f"    base_url: {fake.url}\n"
            f"    region: {REGION}\n"
            f"    aws_access_key: {access_key}\n"
            f"    aws_secret_key: {json.dumps(secret)}\n"
        )
        with _serve(harness, config_text(provider, head, models, NO_KEYS)) as h:
            yield h
