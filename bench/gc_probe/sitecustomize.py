"""Garbage-collector probe for a running gateway (diagnostics, not part of unigate).

Put this directory on ``PYTHONPATH`` of a gateway; on ``SIGUSR1`` it writes to ``GCPROBE_OUT``
(default ``gc-probe.json``) the collections per generation with the CPU seconds they took (from
``gc.callbacks``; thread CPU time, so time spent descheduled is not counted), the process's CPU
seconds, the objects each generation tracks now, the frozen count and the most common types in
the oldest generation::

    PYTHONPATH=bench/gc_probe GCPROBE_OUT=/tmp/gc.json .venv/bin/python -m unigate serve --config api.yaml
    kill -USR1 <pid>

With ``GCPROBE_EVERY=S`` it also writes the dump from a collection at most every S seconds — for
runs that end with SIGTERM, which uvicorn re-raises after shutdown (so ``atexit`` never runs),
e.g. under ``bench/stats_cost.py --on-env``.

With ``GCPROBE_SAVEALL=1`` every object a collection frees is kept instead (``gc.DEBUG_SAVEALL``)
and the dump counts them by type: what makes reference cycles. Memory grows; use it briefly.
"""

import collections
import gc
import json
import os
import signal
import time

_stats: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
_started = [0.0]
_every = float(os.environ.get("GCPROBE_EVERY", "0"))
_last_dump = [time.monotonic()]


def _callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.thread_time()
    else:
        entry = _stats[info["generation"]]
        entry[0] += 1
        entry[1] += time.thread_time() - _started[0]
        if _every and time.monotonic() - _last_dump[0] > _every:
            _last_dump[0] = time.monotonic()
            _dump()


def _dump(*_: object) -> None:
    oldest = collections.Counter(type(o).__qualname__ for o in gc.get_objects(2)).most_common(25)
    body = {
        "collections": {g: {"count": int(c), "seconds": round(s, 4)} for g, (c, s) in _stats.items()},
        "process_cpu_seconds": round(time.process_time(), 3),
        "tracked": [len(gc.get_objects(g)) for g in range(3)],
        "frozen": gc.get_freeze_count(),
        "oldest_generation_types": oldest,
    }
    if os.environ.get("GCPROBE_SAVEALL") == "1":
        body["freed_by_collections"] = collections.Counter(type(o).__qualname__ for o in gc.garbage).most_common(25)
    with open(os.environ.get("GCPROBE_OUT", "gc-probe.json"), "w") as out:
        json.dump(body, out, indent=1)


gc.callbacks.append(_callback)
if os.environ.get("GCPROBE_SAVEALL") == "1":
    gc.set_debug(gc.DEBUG_SAVEALL)
signal.signal(signal.SIGUSR1, _dump)
