"""Records ⇄ table rows, with the sanitising every backend needs.

``request_row`` turns a record into insert parameters (one row per request, its attempts as a
JSON array, or ``NULL`` for the one attempt that the row's own columns describe) that any
supported database accepts, whatever the producer put in them:

- ``\\x00`` in text becomes U+FFFD (PostgreSQL ``TEXT`` rejects NUL); lone surrogates become ``?``
  (they cannot be encoded as UTF-8);
- ``error_message`` is cut to :data:`MAX_ERROR_CHARS` characters;
- integers are clamped to ``[0, 2**63 - 1]`` (token counts) or the 32-bit range (status);
- non-finite floats (NaN, ±inf) become 0 in required columns and NULL in optional ones.

``record_from_row`` rebuilds a :class:`RequestRecord` (as read back, i.e. sanitised) from a
``request_stats`` row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from unigate.stats.records import AttemptRecord, RequestRecord

__all__ = [
    "MAX_ERROR_CHARS",
    "POSTGRES_ROWS",
    "REQUEST_COLUMNS",
    "SQLITE_ROWS",
    "RowFormat",
    "attempts_json",
    "aware_stamp",
    "clean_text",
    "record_from_row",
    "request_row",
    "request_values",
    "sqlite_stamp",
]

MAX_ERROR_CHARS = 4000
_INT64_MAX = 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def clean_text(value: str) -> str:
    """``value`` made storable in PostgreSQL ``TEXT`` and SQLite: NUL → U+FFFD, lone surrogates → ``?``."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if value.isascii():  # the common case: nothing more to check
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _text(value: str | None, limit: int | None = None) -> str | None:
    if value is None:
        return None
    value = clean_text(value if type(value) is str else str(value))
    return value[:limit] if limit is not None else value


def _required_text(value: str | None) -> str:
    return _text(value) or ""


def _count(value: int) -> int:
    return min(max(int(value), 0), _INT64_MAX)


def _status(value: int) -> int:
    return min(max(int(value), _INT32_MIN), _INT32_MAX)


def _number(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _optional_number(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id",
    "timestamp",
    "endpoint",
    "client_key",
    "model",
    "channel",
    "upstream_model",
    "upstream_key",
    "attempts",
    "status",
    "success",
    "error_class",
    "error_message",
    "latency_ms",
    "upstream_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "tokens_estimated",
    "cost",
    "stream",
    "moderation_ms",
    "content",
)
"""The ``request_stats`` columns :func:`request_values` fills, in its tuples' order."""

Stamp = Callable[[datetime], Any]
"""How a backend's driver takes a timestamp (see :func:`sqlite_stamp`)."""


_PREFIXES: dict[tuple[int, int, int, int, int, int], str] = {}
_NEVER = datetime.min.replace(tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_LAST_SECOND = datetime.max.replace(microsecond=0, tzinfo=UTC)
_SECOND: tuple[datetime, datetime, str] = (_NEVER, _NEVER, "")
"""The last second stamped: its start, the next second's start, and its text. One tuple, so that
a reader never pairs one second's bounds with another's text."""


def sqlite_stamp(value: datetime) -> str:
    """A UTC timestamp as SQLite stores ``DateTime`` columns: naive text with microseconds,
    exactly SQLAlchemy's own format, so stored values and bound query bounds compare as text.
    The ``YYYY-MM-DD HH:MM:SS.`` part is cached (``datetime.isoformat`` formats through
    ``PyUnicode_FromFormat``, ~10 000 instructions a call): first the last second stamped, which
    two comparisons find (aware datetimes with the same ``tzinfo`` compare by ``memcmp``), then
    the few seconds before it, keyed by their fields (``datetime.timestamp`` costs ~2 000
    instructions), since records arrive a little out of order. The microseconds are formatted as
    ``str(1_000_000 + µs)[1:]`` (a ``:06d`` format spec costs ~3 500; callgrind,
    docs/performance.md)."""
    global _SECOND
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    second = _SECOND
    if second[0] <= value < second[1]:
        return second[2] + str(1_000_000 + value.microsecond)[1:]
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if len(_PREFIXES) > 8:
            _PREFIXES.clear()
        prefix = _PREFIXES[key] = value.replace(microsecond=0, tzinfo=None).isoformat(" ") + "."
    start = value.replace(microsecond=0)
    if start < _LAST_SECOND:  # the next second exists
        _SECOND = (start, start + _ONE_SECOND, prefix)
    return prefix + str(1_000_000 + value.microsecond)[1:]


def aware_stamp(value: datetime) -> datetime:
    """A UTC timestamp for drivers that take aware datetimes (asyncpg's ``timestamptz``)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


_ONE_ATTEMPT: dict[tuple[Any, ...], str] = {}
"""JSON of a one-attempt array up to its latency, by (channel, model, key, outcome, status)."""
_LATENCY_TAIL = "0}]"


def _one_attempt_prefix(a: AttemptRecord, key: tuple[Any, ...]) -> str | None:
    """``[{…, "latency_ms":`` for ``a``, cached; None when ``a`` needs the careful path."""
    status = a.status
    if type(status) is not int or not _INT32_MIN <= status <= _INT32_MAX:
        return None
    try:
        text = orjson.dumps([_attempt_dict(a, 0)]).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None
    if "\\u0000" in text or not text.endswith(_LATENCY_TAIL):
        return None
    if len(_ONE_ATTEMPT) >= 256:
        _ONE_ATTEMPT.clear()
    prefix = _ONE_ATTEMPT[key] = text[: -len(_LATENCY_TAIL)]
    return prefix


def _attempt_dict(a: AttemptRecord, latency: float) -> dict[str, Any]:
    return {
        "channel": a.channel,
        "upstream_model": a.upstream_model,
        "key_fingerprint": a.key_fingerprint,
        "outcome": a.outcome,
        "status": a.status,
        "latency_ms": latency,
    }


def attempts_json(attempts: Sequence[AttemptRecord]) -> str:
    """The ``attempts`` column: a JSON array of :meth:`AttemptRecord.to_row` objects, sanitised.

    Fastest path, for the common single attempt with a finite ``float`` latency: the JSON up to
    the latency is cached per (channel, model, key, outcome, status), and the latency appended as
    ``repr`` (the shortest text that reads back as the same float, as orjson writes it, though
    exponents may be spelled differently: ``1e-05``). It halves the column's cost.
    Fast path: the fields as they are, serialised by orjson. orjson would write NaN as ``null``,
    refuses lone surrogates, and writes NUL as ``\\u0000`` (which PostgreSQL's ``jsonb`` refuses):
    attempts with any of that take the field-by-field path."""
    if len(attempts) == 1:
        a = attempts[0]
        latency = a.latency_ms
        if type(latency) is float and math.isfinite(latency):
            try:
                key = (a.channel, a.upstream_model, a.key_fingerprint, a.outcome, a.status)
                prefix = _ONE_ATTEMPT.get(key) or _one_attempt_prefix(a, key)
            except TypeError:  # an unhashable value: a producer bug, for the careful path
                prefix = None
            if prefix is not None:
                return f"{prefix}{latency!r}}}]"
    try:
        fast = [
            _attempt_dict(a, a.latency_ms)
            for a in attempts
            if math.isfinite(a.latency_ms) and _INT32_MIN <= a.status <= _INT32_MAX
        ]
        if len(fast) == len(attempts):
            out = orjson.dumps(fast)  # dicts: much cheaper for orjson than dataclass introspection
            if out.find(b"\\u0000") < 0:  # not ``in``: bytes.__contains__ first tries the needle
                return out.decode()  # as an int and formats a TypeError (~2 000 instructions)
    except (TypeError, orjson.JSONEncodeError):  # a value of the wrong type, a lone surrogate
        pass
    return orjson.dumps(
        [
            {
                "channel": _required_text(a.channel),
                "upstream_model": _required_text(a.upstream_model),
                "key_fingerprint": _text(a.key_fingerprint),
                "outcome": _required_text(a.outcome),
                "status": _status(a.status),
                "latency_ms": _number(a.latency_ms),
            }
            for a in attempts
        ]
    ).decode()


@dataclass(frozen=True, slots=True)
class RowFormat:
    """How one backend's driver takes the two kinds of values that need converting."""

    stamp: Stamp
    truth: Callable[[bool], Any]
    """``bool`` or ``int``: what the boolean columns are bound as."""
    bits: Mapping[Any, Any]
    """``{False: truth(False), True: truth(True)}``: the fast path looks the record's flag up in
    it, which costs a fraction of a call and finds only values equal to 0 or 1 (for which
    ``bool`` agrees); anything else is a ``KeyError`` (or ``TypeError``) and takes the careful
    path. Not a tuple: ``(0, 1)[-2]`` would quietly answer 0 for a true value."""

    def row(self, record: RequestRecord) -> tuple[Any, ...]:
        """:func:`request_row` in this format. The statistics writer calls this bound method for
        every record, one Python frame fewer than through :func:`request_row`."""
        row = _fast_row(record, self.stamp, self.bits)
        return row if row is not None else _clean_row(record, self.stamp, self.truth)


SQLITE_ROWS = RowFormat(sqlite_stamp, int, {False: 0, True: 1})
"""SQLite: text timestamps; booleans as 0/1, because the ``sqlite3`` module sends every value that
is not exactly ``int``, ``float``, ``str`` or ``bytearray`` through its adapter lookup, whose miss
formats an ``AttributeError`` (~3 000 instructions per value, measured with callgrind)."""

POSTGRES_ROWS = RowFormat(aware_stamp, bool, {False: False, True: True})
"""PostgreSQL: aware timestamps; asyncpg takes only ``bool`` for ``boolean`` columns."""


def request_row(record: RequestRecord, fmt: RowFormat) -> tuple[Any, ...]:
    """The ``request_stats`` row of ``record`` as a tuple in :data:`REQUEST_COLUMNS` order, ready
    for the driver (no dict, no ORM processing: this is the statistics cost every request pays).
    The attempts go in the same row: as ``NULL`` when there is exactly one and it is the row's
    own (same channel, upstream model, key and status, outcome ``ok``; its latency is
    ``upstream_ms``), else as JSON — building that JSON cost ~5 000 instructions a row. A record
    whose values are all storable as they are (ASCII text without NUL, counts in range, finite
    numbers — nearly every record) takes a fast path that checks them in bulk; any other is
    sanitised field by field. The tuple holds only plain values, so the garbage collector
    untracks it."""
    return fmt.row(record)


def request_values(records: Sequence[RequestRecord], fmt: RowFormat) -> list[tuple[Any, ...]]:
    """:func:`request_row` of each record."""
    return [request_row(r, fmt) for r in records]


_COUNT_MAX = _INT64_MAX // 2
"""Each token count is at most this, so that ``prompt_tokens + completion_tokens`` (which the
queries add) fits in 64 bits too. It is ``2**62 - 1``, so the fast path checks four counts at
once: ``(a | b | c | d) >> 62 == 0`` holds exactly when each is in ``0 … _COUNT_MAX`` (a negative
int keeps its sign bits through the shift). Larger cached or reasoning counts are valid but
rare: the careful path takes them."""


def _fast_row(r: RequestRecord, stamp: Stamp, bits: Mapping[Any, Any]) -> tuple[Any, ...] | None:
    """The row of a record whose values are all storable as they are, or None. Written for the
    interpreter (it runs for every request): one ``str.join`` checks all the text at once (it
    refuses anything but ``str``), chained ``is`` comparisons check the types, and no call is
    made that an operator can do."""
    try:
        request_id, endpoint, client_key, model = r.request_id, r.endpoint, r.client_key, r.model
        channel, upstream_model, upstream_key = r.channel, r.upstream_model, r.upstream_key
        error_class, error, content = r.error_class, r.error_message, r.content
        text = "".join(
            [
                request_id,
                endpoint,
                "" if client_key is None else client_key,
                "" if model is None else model,
                "" if channel is None else channel,
                "" if upstream_model is None else upstream_model,
                "" if upstream_key is None else upstream_key,
                "" if error_class is None else error_class,
                "" if error is None else error,
                "" if content is None else content,
            ]
        )  # TypeError if one is no str
        if not text.isascii() or "\x00" in text or (error is not None and len(error) > MAX_ERROR_CHARS):
            return None
        prompt, completion = r.prompt_tokens, r.completion_tokens
        cached, reasoning = r.cached_tokens, r.reasoning_tokens
        status, latency, cost = r.status, r.latency_ms, r.cost
        if not (
            type(prompt) is type(completion) is type(cached) is type(reasoning) is type(status) is int
            and type(latency) is type(cost) is float
            and (prompt | completion | cached | reasoning) >> 62 == 0  # each in 0 … _COUNT_MAX
            and _INT32_MIN <= status <= _INT32_MAX
        ):
            return None
        ttft, moderation, attempts = r.ttft_ms, r.moderation_ms, r.attempts
        last = attempts[-1] if attempts else None
        upstream = None if last is None else last.latency_ms
        if not (
            (ttft is None or type(ttft) is float)
            and (moderation is None or type(moderation) is float)
            and (upstream is None or type(upstream) is float)
            and math.isfinite(latency + cost + (ttft or 0.0) + (moderation or 0.0) + (upstream or 0.0))
        ):
            return None
        success, estimated, stream = bits[r.success], bits[r.tokens_estimated], bits[r.stream]
        if last is None:
            detail: str | None = "[]"
        elif (
            len(attempts) == 1
            and last.outcome == "ok"
            and last.status == status
            and last.channel == channel  # checked str or None above; None takes the JSON
            and last.upstream_model == upstream_model
            and last.key_fingerprint == upstream_key
            and channel is not None
            and upstream_model is not None
        ):
            detail = None  # the row's own attempt: NULL, expanded on read (see record_from_row)
        else:
            detail = attempts_json(attempts)
    except (TypeError, KeyError):  # a value of the wrong type: the careful path converts or refuses it
        return None
    return (
        request_id,
        stamp(r.timestamp),
        endpoint,
        client_key,
        model,
        channel,
        upstream_model,
        upstream_key,
        detail,
        status,
        success,
        error_class,
        error,
        latency,
        upstream,
        ttft,
        prompt,
        completion,
        cached,
        reasoning,
        estimated,
        cost,
        stream,
        moderation,
        content,
    )


def _clean_row(r: RequestRecord, stamp: Stamp, truth: Callable[[bool], Any]) -> tuple[Any, ...]:
    channel, upstream_model, upstream_key = _text(r.channel), _text(r.upstream_model), _text(r.upstream_key)
    status = _status(r.status)
    detail, upstream = _clean_attempts(r.attempts, channel, upstream_model, upstream_key, status)
    return (
        _required_text(r.request_id),
        stamp(r.timestamp),
        _required_text(r.endpoint),
        _text(r.client_key),
        _text(r.model),
        channel,
        upstream_model,
        upstream_key,
        detail,
        status,
        truth(bool(r.success)),
        _text(r.error_class),
        _text(r.error_message, MAX_ERROR_CHARS),
        _number(r.latency_ms),
        upstream,
        _optional_number(r.ttft_ms),
        _count(r.prompt_tokens),
        _count(r.completion_tokens),
        _count(r.cached_tokens),
        _count(r.reasoning_tokens),
        truth(bool(r.tokens_estimated)),
        _number(r.cost),
        truth(bool(r.stream)),
        _optional_number(r.moderation_ms),
        _text(r.content),
    )


def _clean_attempts(
    attempts: Sequence[AttemptRecord], channel: str | None, model: str | None, key: str | None, status: int
) -> tuple[str | None, float | None]:
    """The careful path's ``attempts`` and ``upstream_ms`` columns, from sanitised row values:
    the same choice as the fast path's, made on what will be stored."""
    if not attempts:
        return "[]", None
    last = attempts[-1]
    upstream = _optional_number(last.latency_ms)
    if (
        len(attempts) == 1
        and upstream is not None
        and channel is not None
        and model is not None
        and _required_text(last.outcome) == "ok"
        and _status(last.status) == status
        and _required_text(last.channel) == channel
        and _required_text(last.upstream_model) == model
        and _text(last.key_fingerprint) == key
    ):
        return None, upstream
    return attempts_json(attempts), upstream


def _attempts_of(row: Mapping[str, Any]) -> tuple[AttemptRecord, ...]:
    """The attempts a row stores: its JSON array, or (``NULL``) the one attempt its own columns
    describe."""
    text = row["attempts"]
    if text is not None:
        return tuple(AttemptRecord.from_row(a) for a in orjson.loads(text or "[]"))
    upstream = row["upstream_ms"]
    return (
        AttemptRecord(
            channel=row["channel"],
            upstream_model=row["upstream_model"],
            key_fingerprint=row["upstream_key"],
            outcome="ok",
            status=int(row["status"]),
            latency_ms=0.0 if upstream is None else float(upstream),
        ),
    )


def record_from_row(row: Mapping[str, Any]) -> RequestRecord:
    """A record rebuilt from its ``request_stats`` row (attempts from its JSON column, or from the
    row's own columns when that is ``NULL``)."""
    return RequestRecord(
        request_id=row["request_id"],
        timestamp=row["timestamp"],
        endpoint=row["endpoint"],
        client_key=row["client_key"],
        model=row["model"],
        channel=row["channel"],
        upstream_model=row["upstream_model"],
        upstream_key=row["upstream_key"],
        attempts=_attempts_of(row),
        status=int(row["status"]),
        success=bool(row["success"]),
        error_class=row["error_class"],
        error_message=row["error_message"],
        latency_ms=float(row["latency_ms"]),
        ttft_ms=None if row["ttft_ms"] is None else float(row["ttft_ms"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        tokens_estimated=bool(row["tokens_estimated"]),
        cost=float(row["cost"]),
        stream=bool(row["stream"]),
        moderation_ms=None if row["moderation_ms"] is None else float(row["moderation_ms"]),
        content=row["content"],
    )
