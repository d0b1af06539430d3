"""Appending request rows to the SQLite statistics file from a writer process of its own.

Why a process: a gateway worker is one Python process and its event loop one core, and every
statistics row inserted on that core — binding its values, SQLite's B-tree and WAL work, the
checkpoint — was CPU the request path could not use, and more than the instructions show: the
bursts of inserts pushed the request path's code and data out of the caches, and it ran slower
after each (docs/performance.md). A thread would not help (the ``sqlite3`` module holds the GIL
while it binds). So :class:`ProcessAppender` hands each batch of rows, already built and
sanitised by :mod:`unigate.stats.rows`, to a child process over a pipe, and the child inserts them
with the same :class:`~unigate.stats.sqlite_append.SqliteAppender` the in-process path uses. What
stays on the gateway's core is one ``marshal.dumps`` of the batch (C, no per-row interpreter work)
and two pipe writes and a read per batch. The operating system is free to run the child on
another core; on a single core it saves nothing (``UNIGATE_STATS_PROCESS=false`` keeps the
appender in process).

Protocol (both directions: a 4-byte big-endian length, then a ``marshal`` payload; marshal is
used because rows hold only ``str``, ``int``, ``float``, ``bool`` and ``None`` and it encodes
them in C; both ends are this module, of the same installation, over a private pipe):

- first the configuration: ``(path, insert_sql, chunk, checkpoint_every, blocks, shared,
  busy_timeout_ms)``, ``blocks`` being ``(last_id, insert, stamp)`` or ``None``;
- then requests ``(seq, "append", rows)``, ``(seq, "stored", request_id)`` (is a row with this id
  among the newest :data:`DOUBT_WINDOW`?) or ``(seq, "idle")``; each gets one answer
  ``(seq, "ok", checkpoints, stored)`` or ``(seq, "error", class name, message)``.

Contract (the same as :class:`SqliteAppender`'s, as the statistics writer sees it):

- :meth:`ProcessAppender.append` inserts all rows in one transaction or raises: the child's
  ``sqlite3`` errors come back as the same ``sqlite3`` exception classes (so
  :func:`~unigate.stats.store.is_permanent_error` classifies them as before); a child that
  cannot be started, dies, or breaks the protocol raises ``sqlite3.OperationalError``
  (transient: the writer keeps the rows queued and retries; the next append starts a new child).
- A batch whose outcome is unknown — the append was cancelled (the writer's timeout, shutdown)
  after the batch was sent, or the child died before answering — is **doubtful**: the child is
  killed at once (so it cannot commit later), and before the next append the new child is asked
  whether the doubtful batch's last ``request_id`` is among the table's newest
  :data:`DOUBT_WINDOW` rows. If it is, the batch was committed, and the rows of the next append
  that came from it (the writer queues the very same tuples again) are left out. So a retried
  batch is stored exactly once.
- The child ignores SIGINT and SIGTERM (a terminal or a service manager signals the whole process
  group, but the gateway still has to flush its queue through it) and exits when its input
  closes: at :meth:`ProcessAppender.close`, or when the gateway itself dies. Its log lines go to
  the gateway's stderr.
- Secrets: rows never contain one (see :mod:`unigate.stats.records`); error messages are SQLite's
  own, which never quote parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import signal
import sqlite3
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from unigate.stats.sqlite_append import Blocks, SqliteAppender

__all__ = ["DOUBT_WINDOW", "ProcessAppender", "main"]

_log = logging.getLogger("unigate.stats")

Row = tuple[Any, ...]

DOUBT_WINDOW = 65_536
"""How many of the newest rows are searched for a doubtful batch's last ``request_id``: more than
any one worker's batch plus what other workers sharing the file write in the seconds between."""

CHILD_BUSY_TIMEOUT_MS = 2_000
"""The child may wait for another worker's write lock (it blocks nobody); well under the
statistics writer's ``write_timeout``."""

_LENGTH = struct.Struct(">I")
_CLOSE_TIMEOUT = 10.0
_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        sqlite3.Error,
        sqlite3.DatabaseError,
        sqlite3.OperationalError,
        sqlite3.IntegrityError,
        sqlite3.DataError,
        sqlite3.ProgrammingError,
        sqlite3.InterfaceError,
        sqlite3.NotSupportedError,
        sqlite3.InternalError,
        ValueError,
        TypeError,
        OverflowError,
    )
}
"""The exception classes an answer may name; any other comes back as ``OperationalError``."""


def _frame(payload: tuple[Any, ...]) -> bytes:
    data = marshal.dumps(payload)
    return _LENGTH.pack(len(data)) + data


class ProcessAppender:
    """See the module docstring. Takes :class:`SqliteAppender`'s arguments (``busy_timeout_ms``
    is the child's: :data:`CHILD_BUSY_TIMEOUT_MS` by default); ``command`` is the
    child's argv (tests; default: this module run by the gateway's own interpreter, from the
    directory this package was imported from). Each row begins with its ``request_id``
    (:data:`~unigate.stats.rows.REQUEST_COLUMNS`), the one column a doubtful batch is looked up
    by."""

    def __init__(
        self,
        path: str,
        insert_sql: str,
        *,
        chunk: int = 64,
        checkpoint_every: int = 20_000,
        blocks: Blocks | None = None,
        shared: tuple[int, ...] = (),
        busy_timeout_ms: int = CHILD_BUSY_TIMEOUT_MS,
        command: Sequence[str] | None = None,
    ) -> None:
        block_spec = None if blocks is None else (blocks.last_id, blocks.insert, blocks.stamp)
        self._config = _frame((path, insert_sql, chunk, checkpoint_every, block_spec, tuple(shared), busy_timeout_ms))
        self._command = tuple(command) if command is not None else (sys.executable, "-m", __name__)
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._seq = 0
        self._doubtful: tuple[Sequence[Row], str] | None = None
        self.checkpoints = 0
        """Checkpoints the current child completed (for tests and diagnostics)."""
        self.started = 0
        """Children started (1 unless one died or was killed)."""
        self.doubtful_stored = 0
        """Doubtful batches found already stored, so not written again."""

    @property
    def pid(self) -> int | None:
        """The running child's process id (benchmarks place it on a core of its own)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def info(self) -> dict[str, Any]:
        """For ``/v1/stats/health`` and ``/metrics`` (JSON-ready): the child's pid (None when none
        runs), how many children were started, and how many doubtful batches had been stored."""
        return {"pid": self.pid, "started": self.started, "doubtful_already_stored": self.doubtful_stored}

    async def append(self, rows: Sequence[Row]) -> None:
        """Insert ``rows`` in one transaction (through the child): all of them, or none when it
        raises."""
        if not rows:
            return
        async with self._lock:
            if self._doubtful is not None:
                rows = await self._settle(rows)
                if not rows:
                    return
            batch = rows if type(rows) is list else list(rows)
            answer = await self._exchange(_frame((self._next_seq(), "append", batch)), rows)
            self.checkpoints = answer[2]

    async def _settle(self, rows: Sequence[Row]) -> Sequence[Row]:
        """Find out whether the doubtful batch was stored; ``rows`` without its rows if it was."""
        assert self._doubtful is not None
        doubtful, last_id = self._doubtful
        answer = await self._exchange(_frame((self._next_seq(), "stored", last_id)), ())
        self._doubtful = None
        if not answer[3]:
            return rows
        self.doubtful_stored += 1
        _log.info("statistics: a batch whose commit was in doubt had been stored; not storing it again")
        done = set(map(id, doubtful))  # the writer queues the same tuple objects again
        return [row for row in rows if id(row) not in done]

    async def idle(self) -> None:
        """Wait for the child's running checkpoint (tests, shutdown); a no-op without a child."""
        async with self._lock:
            if self.pid is not None:
                answer = await self._exchange(_frame((self._next_seq(), "idle")), ())
                self.checkpoints = answer[2]

    async def close(self) -> None:
        """Close the child's input and wait for it to finish its last write and exit (it
        checkpoints on close); killed after 10 s."""
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), _CLOSE_TIMEOUT)
            except TimeoutError:
                _log.warning("statistics writer process did not exit; killing it")
                await _kill(proc)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _exchange(self, frame: bytes, rows: Sequence[Row]) -> tuple[Any, ...]:
        """Send one request and read its answer; see the module docstring for failures."""
        proc = await self._process()
        assert proc.stdin is not None and proc.stdout is not None
        sent = False
        try:
            proc.stdin.write(frame)
            sent = True
            await proc.stdin.drain()
            header = await proc.stdout.readexactly(_LENGTH.size)
            answer = marshal.loads(await proc.stdout.readexactly(_LENGTH.unpack(header)[0]))
        except BaseException as exc:
            if sent and rows:
                self._doubtful = (list(rows), str(rows[-1][0]))
            await self._discard(proc)
            if isinstance(exc, Exception) and not isinstance(exc, sqlite3.Error):
                raise sqlite3.OperationalError(f"statistics writer process failed: {type(exc).__name__}") from None
            raise
        if not isinstance(answer, tuple) or len(answer) != 4 or answer[0] != self._seq:
            await self._discard(proc)
            raise sqlite3.OperationalError("statistics writer process answered out of turn")
        if answer[1] == "error":
            raise _ERRORS.get(answer[2], sqlite3.OperationalError)(answer[3])
        return answer

    async def _process(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            return proc
        if proc is not None:
            await self._discard(proc)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the directory holding the unigate package
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
            )
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot start the statistics writer process: {exc.strerror}") from None
        assert proc.stdin is not None
        proc.stdin.write(self._config)
        self._proc = proc
        self.started += 1
        self.checkpoints = 0
        return proc

    async def _discard(self, proc: asyncio.subprocess.Process) -> None:
        """Kill ``proc`` (its state is unknown) and forget it."""
        if self._proc is proc:
            self._proc = None
        await asyncio.shield(_kill(proc))


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(Exception):
        await proc.wait()


# --- the child -------------------------------------------------------------------------------


def _read(stream: BinaryIO) -> Any:
    """The next request, or ``None`` at end of input."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    size = _LENGTH.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        return None
    return marshal.loads(data)


def _answer(out: BinaryIO, payload: tuple[Any, ...]) -> None:
    out.write(_frame(payload))
    out.flush()


def _serve(requests: BinaryIO, out: BinaryIO) -> None:
    config = _read(requests)
    if config is None:
        return
    path, insert_sql, chunk, checkpoint_every, block_spec, shared, busy_ms = config
    appender = SqliteAppender(
        path,
        insert_sql,
        chunk=chunk,
        checkpoint_every=checkpoint_every,
        blocks=None if block_spec is None else Blocks(*block_spec),
        shared=tuple(shared),
        busy_timeout_ms=busy_ms,
    )
    loop = asyncio.new_event_loop()
    try:
        while (request := _read(requests)) is not None:
            seq, kind = request[0], request[1]
            try:
                stored = False
                if kind == "append":
                    loop.run_until_complete(appender.append(request[2]))
                elif kind == "stored":
                    stored = appender.stored_recently(request[2], DOUBT_WINDOW)
                else:
                    loop.run_until_complete(appender.idle())
                _answer(out, (seq, "ok", appender.checkpoints, stored))
            except Exception as exc:  # every failure is an answer; the parent decides
                _answer(out, (seq, "error", type(exc).__name__, str(exc)))
    finally:
        loop.run_until_complete(appender.close())
        loop.close()


def main() -> None:
    """The child's entry point (``python -m unigate.stats.sqlite_process``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers may reach the parent's pipe
    logging.basicConfig(level=logging.WARNING, format="unigate stats writer: %(message)s")
    _serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
