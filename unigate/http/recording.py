"""One record per client request: built here, then fanned out to the statistics queue, the
Prometheus metrics and the JSON access log.

The request path only calls ``Recorder.finish`` (a few µs: build a frozen record, a
``deque.append`` in the writer, counter increments, one log line) — it never waits on the
database. Tokens come from the provider's usage; when there is none (a stream without a usage
chunk, a client that disconnected) they are counted locally and the record is marked
estimated. Nothing here ever sees a key: the client key appears as its label, upstream keys as
fingerprints (relay.AttemptLog).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from unigate.config.compile import ClientKey
from unigate.errors import UnigateError
from unigate.ir import Usage
from unigate.relay import Served
from unigate.stats.records import AttemptRecord, RequestRecord

access_log = logging.getLogger("unigate.access")
log = logging.getLogger("unigate.stats")

CostFn = Callable[[str, str | None, Usage], float]
"""cost(requested model, upstream model, usage) → USD."""
EstimateFn = Callable[[Mapping[str, Any], list[str]], tuple[int, int]]
"""estimate(request body, completion text pieces) → (prompt tokens, completion tokens)."""


class Sink(Protocol):
    def submit(self, record: RequestRecord) -> bool: ...


class Observer(Protocol):
    def observe(self, record: RequestRecord) -> None: ...


def _no_cost(model: str, upstream: str | None, usage: Usage) -> float:
    return 0.0


def _no_estimate(body: Mapping[str, Any], pieces: list[str]) -> tuple[int, int]:
    return 0, 0


def new_request_id() -> str:
    """A new request id: 24 hex digits, the Unix time in milliseconds (12 digits) then 48 random
    bits. Ids are time-ordered so that each statistics row lands at the right edge of the unique
    ``request_id`` index (PostgreSQL's; SQLite keeps none): with random ids every insert dirties
    a random page of that index, and the insert cost grows with the table (measured at 1 M rows:
    ~4× the cost of time-ordered ids, docs/performance.md). The random part only keeps ids of one
    millisecond apart (workers are separate processes, each seeded by ``random`` from the OS);
    ids are not secrets."""
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(48):012x}"


@dataclass(slots=True)
class Pending:
    """What is known about a request while it runs (the HTTP handler fills it in)."""

    request_id: str
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    arrived: datetime = field(default_factory=lambda: datetime.now(UTC))
    key: ClientKey | None = None
    model: str | None = None
    body: Mapping[str, Any] | None = None
    stream: bool = False
    ttft_ms: float | None = None
    token_charges: list[Any] = field(default_factory=list)
    moderation_ms: float | None = None

    def first_byte(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = round((time.perf_counter() - self.started) * 1000, 3)


class Recorder:
    """Builds and distributes request records. ``sink`` is the statistics writer (None when
    ``DISABLE_DATABASE``), ``observer`` the metrics."""

    def __init__(
        self,
        *,
        sink: Sink | None = None,
        observer: Observer | None = None,
        cost: CostFn = _no_cost,
        estimate: EstimateFn = _no_estimate,
        after: Callable[[Pending, RequestRecord], None] | None = None,
    ) -> None:
        self.after = after
        self.sink = sink
        self.observer = observer
        self.cost = cost
        self.estimate = estimate
        self._background: set[asyncio.Task[None]] = set()

    def finish(
        self,
        pending: Pending,
        status: int,
        served: Served | None = None,
        error: UnigateError | None = None,
    ) -> None:
        """Build the request's record and hand it on. When tokens must be counted locally the
        count runs in a worker thread (tokenizing is CPU work, and the first use loads the BPE
        ranks, ~0.3 s), so the event loop never waits for it."""
        reported = served.final_usage() if served else None
        if reported is None and served is not None and served.channel and pending.body is not None:
            pieces = served.stream.text if served.stream is not None else []
            task = asyncio.ensure_future(self._estimated(pending, status, served, error, pieces))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        self._emit(pending, self._record(pending, status, served, error, reported or Usage(), False))

    async def _estimated(
        self, pending: Pending, status: int, served: Served, error: UnigateError | None, pieces: list[str]
    ) -> None:
        body = pending.body or {}
        try:
            prompt, completion = await asyncio.to_thread(self.estimate, body, pieces)
        except Exception:
            log.exception("token estimate failed for request %s", pending.request_id)
            prompt = completion = 0
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=True)
        self._emit(pending, self._record(pending, status, served, error, usage, True))

    def _emit(self, pending: Pending, record: RequestRecord) -> None:
        if self.after is not None:
            self.after(pending, record)
        if self.sink is not None:
            self.sink.submit(record)
        if self.observer is not None:
            self.observer.observe(record)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s", orjson.dumps(_log_line(record)).decode())

    async def drain(self) -> None:
        """Wait for records still being estimated (shutdown, before the writer's last flush)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _record(
        self,
        pending: Pending,
        status: int,
        served: Served | None,
        error: UnigateError | None,
        usage: Usage,
        estimated: bool,
    ) -> RequestRecord:
        model = pending.model
        return RequestRecord(
            request_id=pending.request_id,
            timestamp=pending.arrived,
            endpoint=pending.endpoint,
            client_key=pending.key.label if pending.key else None,
            model=model,
            status=status,
            success=200 <= status < 300 and error is None,
            latency_ms=round((time.perf_counter() - pending.started) * 1000, 3),
            channel=(served.channel or (served.attempts[-1].channel if served.attempts else None)) if served else None,
            upstream_model=(served.upstream_model or None) if served else None,
            upstream_key=served.upstream_key if served else None,
            attempts=tuple(
                AttemptRecord(
                    channel=a.channel,
                    upstream_model=a.upstream_model,
                    key_fingerprint=a.key_fingerprint,
                    outcome=a.outcome,
                    status=a.status,
                    latency_ms=a.latency_ms,
                )
                for a in (served.attempts if served else ())
            ),
            error_class=type(error).__name__ if error else None,
            error_message=error.message if error else None,
            ttft_ms=pending.ttft_ms,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            tokens_estimated=estimated,
            cost=self.cost(model, served.upstream_model if served else None, usage) if model else 0.0,
            stream=pending.stream,
            moderation_ms=pending.moderation_ms,
        )


def _log_line(record: RequestRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "key": record.client_key,
        "model": record.model,
        "status": record.status,
        "ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "channel": record.channel,
        "attempts": [f"{a.channel}:{a.outcome}" for a in record.attempts],
        "tokens": [record.prompt_tokens, record.completion_tokens],
        "error": record.error_class,
    }
