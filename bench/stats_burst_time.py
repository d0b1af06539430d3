"""How long the statistics path's own bursts take inside a loaded gateway, against the same code
in a hot loop: the split between the statistics code's own time and the rest of what
``bench/stats_cost.py`` attributes to statistics (docs/performance.md, ninth session).

The gateway runs with three stretches timed by ``time.perf_counter_ns`` (nothing else changes):
``StatsWriter._convert`` (records → rows), ``SqliteAppender.append`` with the clock stopped
while it yields to the loop between chunks (so other requests' time is not counted), and the
checkpoint thread's own CPU clock. The hot loop converts and appends 512-record batches back to
back on the same core. Both use the in-process appender (``UNIGATE_STATS_PROCESS=false``): it is what
the ninth session measured, before rows went to a writer process of their own.

    .venv/bin/python bench/stats_burst_time.py [--seconds 25]

Prints µs a record for each stretch, in the server and in the hot loop. Needs wrk, node and
taskset (as bench/run.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from stats_cost import CLIENT_KEY, run_wrk, wait_ready  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parent.parent
TOTALS: dict[str, int] = {"convert_ns": 0, "records": 0, "append_ns": 0, "rows": 0, "checkpoint_ns": 0}


def serve(argv: list[str]) -> None:
    """The gateway (``unigate serve argv``) with the three stretches timed; totals to stderr."""
    from unigate.cli import main
    from unigate.stats import sqlite_append, writer

    convert = writer.StatsWriter._convert
    append = sqlite_append.SqliteAppender.append
    checkpoint = sqlite_append.SqliteAppender._checkpoint
    clock = {"since": 0}

    def timed_convert(self: writer.StatsWriter) -> None:
        count, start = len(self._records), time.perf_counter_ns()
        convert(self)
        TOTALS["convert_ns"] += time.perf_counter_ns() - start
        TOTALS["records"] += count

    async def paused_sleep(delay: float) -> None:  # the appender yields here between chunks
        TOTALS["append_ns"] += time.perf_counter_ns() - clock["since"]
        await asyncio.sleep(delay)
        clock["since"] = time.perf_counter_ns()

    async def timed_append(self: sqlite_append.SqliteAppender, rows: Any) -> None:
        clock["since"] = time.perf_counter_ns()
        await append(self, rows)
        TOTALS["append_ns"] += time.perf_counter_ns() - clock["since"]
        TOTALS["rows"] += len(rows)
        print(f"BURSTS {json.dumps(TOTALS)}", file=sys.stderr, flush=True)

    def timed_checkpoint(self: sqlite_append.SqliteAppender) -> None:
        start = time.thread_time_ns()
        checkpoint(self)
        TOTALS["checkpoint_ns"] += time.thread_time_ns() - start

    proxy = types.ModuleType("asyncio_paused")
    proxy.__dict__.update(vars(asyncio))
    proxy.sleep = paused_sleep  # type: ignore[attr-defined]
    sqlite_append.asyncio = proxy  # type: ignore[attr-defined]
    writer.StatsWriter._convert = timed_convert  # type: ignore[method-assign]
    sqlite_append.SqliteAppender.append = timed_append  # type: ignore[method-assign]
    sqlite_append.SqliteAppender._checkpoint = timed_checkpoint  # type: ignore[method-assign]
    sys.argv = ["unigate", "serve", *argv]
    main()


async def hot_loop(batches: int = 200) -> dict[str, float]:
    """µs a record of converting and of appending 512-record batches back to back."""
    sys.path.insert(0, str(ROOT / "bench"))
    from datetime import UTC, datetime, timedelta

    from stats_write_cost import record

    from unigate.stats.rows import SQLITE_ROWS
    from unigate.stats.store import StatsStore

    store = StatsStore(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/stats.db", writer_process=False)
    await store.open()
    start, row = datetime.now(UTC), SQLITE_ROWS.row
    converting = appending = count = 0
    for k in range(batches):
        records = [record(None, start + timedelta(milliseconds=k * 512 + i)) for i in range(512)]
        t0 = time.perf_counter_ns()
        rows = list(map(row, records))
        t1 = time.perf_counter_ns()
        await store.write_rows(rows)
        if k >= batches // 10:  # the first tenth warms up
            converting, appending, count = converting + t1 - t0, appending + time.perf_counter_ns() - t1, count + 512
    await store.close()
    return {"convert": converting / count / 1000, "append": appending / count / 1000}


def drive(seconds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="unigate-bursts-"))
    upstream, port = 18790, 18791
    (work / "api.yaml").write_text(
        f"providers:\n  - provider: bench\n    base_url: http://127.0.0.1:{upstream}/v1\n    api: sk-bench-upstream\n"
        f"    model: [gpt-4o]\napi_keys:\n  - api: {CLIENT_KEY}\n    model: [all]\n"
    )
    node = subprocess.Popen(
        ["taskset", "-c", "0", "node", str(ROOT / "bench/fake_upstream.js"), str(upstream)], stdout=subprocess.DEVNULL
    )
    log = work / "gateway.log"
    serve_args = ["--config", str(work / "api.yaml"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    gateway = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "--serve", *serve_args],
        env={**os.environ, "DB_PATH": str(work / "stats.db"), "UNIGATE_STATS_PROCESS": "false"},
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        cwd=ROOT,
    )
    try:
        wait_ready(port)
        run_wrk(port, seconds, "nonstream", 32, "0")  # stops the run on any failed request
    finally:
        for proc in (gateway, node):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("BURSTS ")]
    if not lines:
        raise SystemExit(f"no statistics were written; see {log}")
    totals = json.loads(lines[-1][len("BURSTS ") :])
    hot = subprocess.run(
        ["taskset", "-c", "1", sys.executable, __file__, "--hot"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    print("| stretch | in the loaded gateway (µs a record) | hot loop (µs a record) |\n|---|---:|---:|")
    print(f"| convert | {totals['convert_ns'] / totals['records'] / 1000:.2f} | {hot[0]} |")
    print(f"| append | {totals['append_ns'] / totals['rows'] / 1000:.2f} | {hot[1]} |")
    print(f"| checkpoint (its thread's CPU) | {totals['checkpoint_ns'] / totals['rows'] / 1000:.2f} | — |")
    print(f"\n{totals['rows']} rows in {seconds} s of wrk load.")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
    elif sys.argv[1:2] == ["--hot"]:
        result = asyncio.run(hot_loop())
        print(f"{result['convert']:.2f} {result['append']:.2f}")
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--seconds", type=int, default=25)
        drive(parser.parse_args().seconds)
