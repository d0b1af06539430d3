"""The statistics write path alone, for callgrind: submit N records to StatsWriter + StatsStore
(SQLite in a temporary directory) and flush; with ``build`` as second argument, only build them.

    export PYTHONHASHSEED=0   # the same string hashes in every run (dict probes vary with them)
    valgrind --tool=callgrind --callgrind-out-file=w0.out .venv/bin/python bench/stats_write_cost.py 0
    valgrind --tool=callgrind --callgrind-out-file=w.out  .venv/bin/python bench/stats_write_cost.py 3000
    valgrind --tool=callgrind --callgrind-out-file=wb.out .venv/bin/python bench/stats_write_cost.py 3000 build

``(I(w) - I(wb)) / 3000`` is the write path's instructions per record, record building excluded
(``I`` = the ``summary:`` line of each output file). Callgrind follows the gateway's process only:
by default the rows are inserted by the SQLite writer process (unigate/stats/sqlite_process.py),
so this counts what stays on the request path's core; ``UNIGATE_STATS_PROCESS=false`` counts the
in-process appender.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime

from unigate.http.recording import new_request_id
from unigate.stats.records import AttemptRecord, RequestRecord
from unigate.stats.store import StatsStore
from unigate.stats.writer import StatsWriter

KEY = "key-abcdef0123"


def record(request_id: str | None = None, timestamp: datetime | None = None) -> RequestRecord:
    """One successful chat request as the gateway records it (new id and the time now by default);
    also the template of ``bench/stats_index_growth.py`` and ``bench/stats_cost.py --prefill``."""
    attempt = AttemptRecord(
        channel="bench", upstream_model="gpt-4o", key_fingerprint=KEY, outcome="ok", status=200, latency_ms=1.2
    )
    return RequestRecord(
        request_id=request_id or new_request_id(),
        timestamp=timestamp or datetime.now(UTC),
        endpoint="POST /v1/chat/completions",
        client_key="team-0",
        model="gpt-4o",
        status=200,
        success=True,
        latency_ms=1.5,
        channel="bench",
        upstream_model="gpt-4o",
        upstream_key=KEY,
        attempts=(attempt,),
        prompt_tokens=12,
        completion_tokens=5,
    )


async def main(n: int, build_only: bool) -> None:
    in_child = os.environ.get("UNIGATE_STATS_PROCESS", "").strip().lower() != "false"
    store = StatsStore(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/stats.db", writer_process=in_child)
    await store.open()
    writer = StatsWriter(store)
    writer.start()
    for _ in range(100):  # warm: statements prepared, caches filled
        writer.submit(record())
    await writer.flush()
    for i in range(n):
        built = record()
        if not build_only:
            writer.submit(built)
        if i % 50 == 49:  # let the writer run, as the event loop would between requests
            await asyncio.sleep(0)
    await writer.flush()
    await writer.stop()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "build"))
