"""The battery's Cohere (v2 Chat) harness: the fake Cohere upstream behind a real unigate.

Channels ``a``, ``b`` and ``solo`` are three ``engine: cohere`` providers on the one fake, told
apart by the upstream model each maps (the fake scripts per model); each keyed channel has its own
bearer keys. The neutral vocabulary maps to Cohere's: finish reasons ``COMPLETE``/``MAX_TOKENS``/
``TOOL_CALL``; reasoning as a ``thinking`` block; usage as ``usage.tokens`` (``billed_units`` are
smaller and must not be what the client sees) plus ``cached_tokens``; upstream errors as Cohere's
``{"id", "message"}`` bodies (429 with ``Retry-After``); an in-band error as a ``message-end``
whose ``finish_reason`` is ``ERROR`` with ``delta.error``.

``pause_after_content`` is implemented here (``paused.PIECES`` is keyed by the first families):
the battery's ``Paused`` behaviour is added to the Cohere fake's runner table, with Cohere's own
content and error events.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Literal

from tests.battery import paused
from tests.battery.harness import (
    ERROR_MESSAGE,
    KEYS,
    RETRY_AFTER,
    Channel,
    ErrorKind,
    Finish,
    Harness,
    Say,
    _bearer,
    _serve,
    config_text,
)
from tests.fakes import cohere_runners
from tests.fakes.cohere_upstream import CFail, CReply, CStreamError, FakeCohere, RecordedRequest
from tests.fakes.cohere_wire import DONE, error_end, partial_events, sse_event

PROVIDER = "cohere"
COHERE_MODELS: Mapping[Channel, str] = {
    "a": "command-a-03-2025",
    "b": "command-r7b-12-2024",
    "solo": "command-a-reasoning-08-2025",
}
FAMILY = "cohere"
"""``Harness.family`` of this harness: the battery's native expectations for Cohere bodies are
keyed on it."""

_FINISH: Mapping[Finish, str] = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}


def cohere_content(chunks: int) -> list[bytes]:
    """``message-start``, the text block's start and ``chunks`` text deltas (``part0 part1 …``)."""
    return [sse_event(name, obj) for name, obj in partial_events(chunks)]


def cohere_error(message: str) -> list[bytes]:
    """A failed ending: ``message-end`` with ``finish_reason: ERROR`` and ``delta.error``."""
    name, obj = error_end(message)
    return [sse_event(name, obj), DONE]


class CohereHarness(Harness):
    def _model_of(self, req: RecordedRequest) -> str | None:
        if req.method == "POST" and req.path.rstrip("/").endswith("/v2/chat") and isinstance(req.json, dict):
            return str(req.json.get("model"))
        return None

    def _credential(self, req: RecordedRequest) -> str | None:
        return _bearer(req)

    def _answer(self, answer: Say, stream: bool) -> object:
        usage = None
        if answer.usage is not None:
            usage = answer.usage  # tokens.input_tokens already includes the cached part
        return CReply(
            text=answer.text,
            tool_calls=answer.calls,
            thinking=answer.reasoning,
            finish_reason=_FINISH[answer.finish_reason],
            usage=usage,
            cached=answer.cached,
        )

    def _error(self, kind: ErrorKind) -> object:
        headers = {"retry-after": str(RETRY_AFTER)} if kind == "rate_limited" else {}
        return CFail(self.status_of(kind), message=ERROR_MESSAGE, headers=headers)

    def _stream_error(self, after: int) -> object:
        return CStreamError(after=after, message=ERROR_MESSAGE)

    def pause_after_content(
        self, gate: threading.Event, *, then: Literal["error", "end", "reset", "fin"], chunks: int = 2
    ) -> None:
        rest = cohere_error(ERROR_MESSAGE) if then == "error" else []
        self.script("a", paused.Paused(cohere_content(chunks), gate, rest, "end" if then == "error" else then))


def register_paused() -> None:
    """Let the Cohere fake perform the battery's ``Paused`` behaviour (as ``paused.register``
    does for the other fakes)."""
    cohere_runners.RUNNERS[paused.Paused] = paused.run_paused


@contextlib.contextmanager
def start() -> Iterator[Harness]:
    """The Cohere fake and a gateway with three ``engine: cohere`` channels on it."""
    register_paused()
    with FakeCohere(models=COHERE_MODELS.values()) as fake:
        harness = CohereHarness(PROVIDER, FAMILY, fake, COHERE_MODELS, KEYS, 503)  # type: ignore[arg-type]
        head = f"    engine: cohere\n    base_url: {fake.url}\n"
        with _serve(harness, config_text(PROVIDER, head, COHERE_MODELS, KEYS)) as h:
            yield h
